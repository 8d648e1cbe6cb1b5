/*
 * cache.c - credentials verified recently, so that clients sending one
 * message per connection do not pay argon2id every time
 *
 * An entry is found by a keyed BLAKE2b MAC of login, NUL, password
 * under a key made at random when authd starts: the password itself
 * is never kept, and the MAC is worthless outside this process.  It
 * remembers the login, the user's gen and a fingerprint of the stored
 * hash it was verified against; a hit counts only while all three
 * still match the record just read from Redis and the user is enabled
 * (auth.c checks that), and for AUTHD_CACHE_TTL seconds at most.
 *
 * AUTHD_CACHE_SIZE entries live in a ring in the order they were made;
 * a new one takes the oldest slot.  A hash table of chains (by the
 * first bytes of the MAC, which are uniform) finds them.
 */
#include "config.h"

#include <string.h>
#include <time.h>

#include <sodium.h>

#include "authd.h"
#include "compat/compat.h"
#include "log.h"
#include "xmalloc.h"

#define CACHE_BUCKETS	(AUTHD_CACHE_SIZE * 2)	/* a power of two */
#define CACHE_FP_SIZE	16

struct cache_ent {
	int		 used;
	int		 next;		/* in its chain; -1 ends it */
	unsigned char	 mac[AUTHD_MAC_SIZE];
	unsigned char	 fp[CACHE_FP_SIZE];	/* of the stored hash */
	char		 login[AP_MAX_LOGIN];
	uint64_t	 gen;
	time_t		 expires;	/* CLOCK_MONOTONIC seconds */
};

static struct cache_ent	*cache_ents;
static int		 cache_buckets[CACHE_BUCKETS];
static int		 cache_ring;	/* the slot a new entry takes */
static unsigned char	 cache_key[crypto_generichash_KEYBYTES];

static unsigned int	 cache_bucket(const unsigned char *);
static void		 cache_unlink(int);
static void		 cache_fp(const char *, unsigned char *);
static time_t		 cache_now(void);

/* cache_init - empty table, and a MAC key that dies with the process */
void
cache_init(void)
{
	int	 i;

	cache_ents = xcalloc(AUTHD_CACHE_SIZE, sizeof(*cache_ents));
	for (i = 0; i < CACHE_BUCKETS; i++)
		cache_buckets[i] = -1;
	randombytes_buf(cache_key, sizeof(cache_key));
}

/* cache_mac - the entry's name for these credentials */
void
cache_mac(const char *login, const char *password, size_t pwlen,
    unsigned char *mac)
{
	crypto_generichash_state	 st;
	const unsigned char		 nul = 0;

	crypto_generichash_init(&st, cache_key, sizeof(cache_key),
	    AUTHD_MAC_SIZE);
	crypto_generichash_update(&st, (const unsigned char *)login,
	    strlen(login));
	/* the NUL keeps ("ab", "c") and ("a", "bc") apart */
	crypto_generichash_update(&st, &nul, 1);
	crypto_generichash_update(&st, (const unsigned char *)password,
	    pwlen);
	crypto_generichash_final(&st, mac, AUTHD_MAC_SIZE);
	sodium_memzero(&st, sizeof(st));
}

/*
 * cache_lookup - 1 when these credentials were verified for this very
 * record (login, gen, hash); an entry that no longer matches is dropped
 */
int
cache_lookup(const unsigned char *mac, const char *login, uint64_t gen,
    const char *hash)
{
	unsigned char		 fp[CACHE_FP_SIZE];
	struct cache_ent	*e;
	int			 i;

	for (i = cache_buckets[cache_bucket(mac)]; i != -1;
	    i = cache_ents[i].next) {
		e = &cache_ents[i];
		if (memcmp(e->mac, mac, AUTHD_MAC_SIZE) != 0)
			continue;
		cache_fp(hash, fp);
		if (e->expires <= cache_now() || e->gen != gen ||
		    strcmp(e->login, login) != 0 ||
		    memcmp(e->fp, fp, sizeof(fp)) != 0) {
			cache_unlink(i);
			return 0;
		}
		return 1;
	}
	return 0;
}

/* cache_insert - remember a verified credential, evicting the oldest */
void
cache_insert(const unsigned char *mac, const char *login, uint64_t gen,
    const char *hash)
{
	struct cache_ent	*e;
	unsigned int		 b = cache_bucket(mac);
	int			 i;

	for (i = cache_buckets[b]; i != -1; i = cache_ents[i].next)
		if (memcmp(cache_ents[i].mac, mac, AUTHD_MAC_SIZE) == 0) {
			cache_unlink(i);
			break;
		}
	i = cache_ring;
	cache_ring = (cache_ring + 1) % AUTHD_CACHE_SIZE;
	if (cache_ents[i].used)
		cache_unlink(i);
	e = &cache_ents[i];
	memcpy(e->mac, mac, AUTHD_MAC_SIZE);
	cache_fp(hash, e->fp);
	if (strlcpy(e->login, login, sizeof(e->login)) >= sizeof(e->login))
		return;		/* cannot happen: logins are checked */
	e->gen = gen;
	e->expires = cache_now() + AUTHD_CACHE_TTL;
	e->used = 1;
	e->next = cache_buckets[b];
	cache_buckets[b] = i;
}

/* cache_forget - every entry of one login (sluicectl changed it) */
void
cache_forget(const char *login)
{
	int	 i;

	for (i = 0; i < AUTHD_CACHE_SIZE; i++)
		if (cache_ents[i].used &&
		    strcmp(cache_ents[i].login, login) == 0)
			cache_unlink(i);
}

/* cache_clear - forget everything (we may have missed announcements) */
void
cache_clear(void)
{
	int	 i;

	if (cache_ents == NULL)
		return;
	for (i = 0; i < AUTHD_CACHE_SIZE; i++)
		if (cache_ents[i].used)
			cache_unlink(i);
}

static unsigned int
cache_bucket(const unsigned char *mac)
{
	unsigned int	 v;

	memcpy(&v, mac, sizeof(v));
	return v & (CACHE_BUCKETS - 1);
}

/* cache_unlink - take entry i out of its chain and wipe it */
static void
cache_unlink(int i)
{
	int	*pp = &cache_buckets[cache_bucket(cache_ents[i].mac)];

	while (*pp != -1 && *pp != i)
		pp = &cache_ents[*pp].next;
	log_assert(*pp == i);
	*pp = cache_ents[i].next;
	sodium_memzero(&cache_ents[i], sizeof(cache_ents[i]));
}

/* cache_fp - a short fingerprint of a stored hash */
static void
cache_fp(const char *hash, unsigned char *fp)
{
	crypto_generichash(fp, CACHE_FP_SIZE, (const unsigned char *)hash,
	    strlen(hash), NULL, 0);
}

static time_t
cache_now(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}
