/*
 * authd.h - what the parts of authd share
 *
 * main.c sets the process up and owns the two Redis connections (one
 * for commands, one quiet one that listens on P userchg); auth.c runs
 * one AUTH_REQ or RATE_REQ from smtpd to its answer; users.c reads a
 * user record; throttle.c keeps the failure counters and the hourly
 * allowances; verify.c checks passwords on a small thread pool, off
 * the event loop; cache.c remembers verified credentials for a while.
 * Everything except the verify workers runs on the one event loop.
 */
#ifndef SLUICE_AUTHD_H
#define SLUICE_AUTHD_H

#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#include "auth_proto.h"

struct child_env;
struct child_peer;
struct event_base;
struct ipc_msg;
struct redis_ev;
struct redisAsyncContext;

#define AUTHD_KEY_MAX		512	/* prefix (<= 64) + kind + login */
#define AUTHD_CLIENT_MAX	64	/* an IPv6 literal is at most 45 */
#define AUTHD_MAX_REQUESTS	4096	/* in flight at once; then 454 */
#define AUTHD_VERIFY_THREADS	2
#define AUTHD_VERIFY_QUEUE	256	/* waiting verifications; then 454 */
#define AUTHD_CACHE_SIZE	4096	/* verified credentials kept */
#define AUTHD_CACHE_TTL		300	/* seconds one is trusted */
#define AUTHD_HASH_MAX		crypto_pwhash_STRBYTES
#define AUTHD_MAC_SIZE		32

struct authd {
	struct child_env	*env;
	struct redis_ev		*redis;		/* commands */
	struct redis_ev		*sub;		/* SUBSCRIBE P userchg */
	char			 dummy_hash[AUTHD_HASH_MAX];
};

extern struct authd	 authd;

/* a user record as users.c found it */
struct auth_user {
	int		 found;
	int		 enabled;
	char		 hash[AUTHD_HASH_MAX];	/* "" when unusable */
	uint64_t	 gen;
	uint32_t	 messages;		/* per hour: own or default */
	uint32_t	 recipients;
	char		 senders[AP_MAX_SENDERS]; /* joined by '\n' */
};

typedef void	authd_done_fn(void *, int);

/* main.c */
int	authd_key(char *, const char *, const char *);
int	authd_command(void (*)(struct redisAsyncContext *, void *, void *),
	    void *, int, const char **);
int	authd_login_ok(const char *);

/* auth.c */
void	auth_peer_msg(struct child_peer *, struct ipc_msg *);
void	auth_peer_gone(struct child_peer *);

/* users.c */
int	users_fetch(const char *, struct auth_user *, authd_done_fn *,
	    void *);

/* throttle.c */
struct throttle_block {
	long long	 ip_count, ip_ttl;
	long long	 login_count, login_ttl;
};
int	throttle_check(const char *, const char *, struct throttle_block *,
	    authd_done_fn *, void *);
int	throttle_blocked(const struct throttle_block *, uint32_t *);
int	throttle_fail(const char *, const char *, authd_done_fn *, void *);
typedef void	throttle_rate_fn(void *, int, uint32_t);
int	throttle_rate(const char *, uint32_t, uint32_t, throttle_rate_fn *,
	    void *);

/* verify.c */
void	verify_init(struct event_base *);
int	verify_submit(const char *, const char *, size_t, authd_done_fn *,
	    void *);

/* cache.c */
void	cache_init(void);
void	cache_mac(const char *, const char *, size_t, unsigned char *);
int	cache_lookup(const unsigned char *, const char *, uint64_t,
	    const char *);
void	cache_insert(const unsigned char *, const char *, uint64_t,
	    const char *);
void	cache_forget(const char *);
void	cache_clear(void);

#endif
