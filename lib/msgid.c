/*
 * msgid.c - unique, time-sortable message ids
 *
 * 128 bits: 48 of milliseconds since the epoch, then 80 random bits,
 * written most significant first as 26 base32 characters (130 bits, the
 * top 2 always zero).  Because the time comes first and every character
 * sorts in the order of its value, string order is time order.
 */
#include "config.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "msgid.h"

#define MSGID_TIME_MASK	0xffffffffffffULL	/* 48 bits */
#define MSGID_RND_LEN	10			/* 80 bits */

/* Crockford's base32: no I, L, O or U to misread */
static const char	msgid_alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* the last id this process made, the base of the next one */
static uint64_t		msgid_last_ms;
static uint8_t		msgid_last_rnd[MSGID_RND_LEN];
static pid_t		msgid_pid;

static int		msgid_digit(char);
static uint64_t		msgid_now(void);
static void		msgid_next(uint64_t);

/* msgid_from - encode 48 bits of ms and 80 random bits as 26 characters */
void
msgid_from(uint64_t ms, const uint8_t rnd[10], char id[MSGID_SIZE])
{
	uint8_t	 raw[16];
	int	 i, k, bit;

	for (i = 0; i < 6; i++)
		raw[i] = (uint8_t)(ms >> (40 - 8 * i));
	memcpy(raw + 6, rnd, MSGID_RND_LEN);

	/* bit -2 and -1 are the padding that makes 128 bits into 26 * 5 */
	for (i = 0; i < MSGID_LEN; i++) {
		unsigned	 v = 0;

		for (k = 0; k < 5; k++) {
			bit = i * 5 + k - 2;
			v <<= 1;
			if (bit >= 0 && (raw[bit / 8] >> (7 - bit % 8)) & 1)
				v |= 1;
		}
		id[i] = msgid_alphabet[v];
	}
	id[MSGID_LEN] = '\0';
}

/* msgid_now - wall-clock milliseconds, cut to the 48 bits an id holds */
static uint64_t
msgid_now(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000) &
	    MSGID_TIME_MASK;
}

/* msgid_next - advance the saved state to the id that follows it at now */
static void
msgid_next(uint64_t now)
{
	pid_t	 pid = getpid();
	int	 i;

	/*
	 * A child forked without exec starts with its parent's state, and
	 * counting on from it would give the ids the parent gives in the
	 * same millisecond.  A new process draws fresh random bits.
	 */
	if (pid != msgid_pid || now > msgid_last_ms) {
		msgid_pid = pid;
		msgid_last_ms = now;
		randombytes_buf(msgid_last_rnd, sizeof(msgid_last_rnd));
		return;
	}

	/*
	 * The same millisecond, or the clock went back: count the random
	 * part up by one so that this process's ids stay strictly
	 * increasing.  If all 80 bits wrap, carry into the time instead of
	 * waiting for the clock; the id then names a millisecond that has
	 * not quite come, which no reader can tell from a fast clock.
	 */
	for (i = MSGID_RND_LEN - 1; i >= 0; i--)
		if (++msgid_last_rnd[i] != 0)
			return;
	msgid_last_ms++;
}

/* msgid_new - the next id of this process */
void
msgid_new(char id[MSGID_SIZE])
{
	msgid_next(msgid_now());
	msgid_from(msgid_last_ms, msgid_last_rnd, id);
}

/* msgid_digit - the value of one base32 character, -1 if it is none */
static int
msgid_digit(char c)
{
	const char	*p;

	/* strchr() would find the alphabet's own terminator */
	if (c == '\0' || (p = strchr(msgid_alphabet, c)) == NULL)
		return -1;
	return (int)(p - msgid_alphabet);
}

/* msgid_valid - 26 characters of the alphabet, nothing after them */
int
msgid_valid(const char *s)
{
	int	 i;

	/* stops at the first bad byte, so a short string is never overread */
	for (i = 0; i < MSGID_LEN; i++)
		if (msgid_digit(s[i]) == -1)
			return 0;
	/* the first character carries the 2 zero padding bits */
	return s[MSGID_LEN] == '\0' && msgid_digit(s[0]) < 8;
}

/* msgid_time - the milliseconds an id was made at */
int
msgid_time(const char *id, uint64_t *ms)
{
	uint64_t	 v = 0;
	int		 i;

	if (!msgid_valid(id))
		return -1;
	/* 10 characters = 50 bits: the 2 padding bits and 48 of time */
	for (i = 0; i < 10; i++)
		v = (v << 5) | (uint64_t)msgid_digit(id[i]);
	*ms = v;
	return 0;
}
