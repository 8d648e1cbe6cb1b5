/*
 * msgid.c - unique, time-sortable message ids
 */
#include "config.h"

#include <string.h>
#include <time.h>

#include <sodium.h>

#include "msgid.h"

/* Crockford's base32: no I, L, O or U to misread */
static const char	msgid_alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static uint64_t		last_ms;
static uint8_t		last_rnd[10];

static int	msgid_digit(char);

/* msgid_from - encode 48 bits of ms and 80 random bits as 26 characters */
void
msgid_from(uint64_t ms, const uint8_t rnd[10], char id[MSGID_SIZE])
{
	uint8_t	 raw[16];
	int	 i, bit;

	/* 128 bits, 2 of padding at the top: 26 * 5 = 130 */
	for (i = 0; i < 6; i++)
		raw[i] = (uint8_t)(ms >> (40 - 8 * i));
	memcpy(raw + 6, rnd, 10);
	for (i = 0; i < MSGID_LEN; i++) {
		unsigned	 v = 0, k;

		for (k = 0; k < 5; k++) {
			bit = i * 5 + (int)k - 2;
			v <<= 1;
			if (bit >= 0 && (raw[bit / 8] >> (7 - bit % 8)) & 1)
				v |= 1;
		}
		id[i] = msgid_alphabet[v];
	}
	id[MSGID_LEN] = '\0';
}

/*
 * msgid_new - a new id; within one millisecond the random part counts
 * up, so one process's ids are strictly increasing.  If it would wrap,
 * the carry goes into the time.
 */
void
msgid_new(char id[MSGID_SIZE])
{
	struct timespec	 ts;
	uint64_t	 ms;
	int		 i;

	clock_gettime(CLOCK_REALTIME, &ts);
	ms = ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000) &
	    0xffffffffffffULL;
	if (ms > last_ms) {
		last_ms = ms;
		randombytes_buf(last_rnd, sizeof(last_rnd));
	} else {
		for (i = 9; i >= 0; i--)
			if (++last_rnd[i] != 0)
				break;
		if (i < 0)
			last_ms++;
	}
	msgid_from(last_ms, last_rnd, id);
}

static int
msgid_digit(char c)
{
	const char	*p;

	if (c == '\0' || (p = strchr(msgid_alphabet, c)) == NULL)
		return -1;
	return (int)(p - msgid_alphabet);
}

int
msgid_valid(const char *s)
{
	int	 i;

	for (i = 0; i < MSGID_LEN; i++)
		if (msgid_digit(s[i]) == -1)
			return 0;
	/* the first character carries only 3 bits: 2 are padding */
	return s[MSGID_LEN] == '\0' && msgid_digit(s[0]) < 8;
}

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
