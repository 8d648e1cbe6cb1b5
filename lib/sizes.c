/*
 * sizes.c - parse sizes, durations and rates written by people
 *
 * All three parsers share one shape: a run of decimal digits, then a
 * unit letter from a short table.  Every step is checked against the
 * output type before it is taken, so no input can wrap around.
 * Malformed input leaves errno at EINVAL, a value too large at ERANGE.
 */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "sizes.h"

struct unit {
	char		 c;
	uint64_t	 mult;
};

static int	digits_parse(const char **, uint64_t, uint64_t *);
static int	unit_scale(const char *, const struct unit *, uint64_t,
		    uint64_t, uint64_t *);

static const struct unit size_units[] = {
	{ 'K', 1024ULL },	{ 'k', 1024ULL },
	{ 'M', 1024ULL * 1024 },	{ 'm', 1024ULL * 1024 },
	{ 'G', 1024ULL * 1024 * 1024 },	{ 'g', 1024ULL * 1024 * 1024 },
	{ '\0', 0 }
};

static const struct unit duration_units[] = {
	{ 's', 1 },
	{ 'm', 60 },
	{ 'h', 3600 },
	{ 'd', 86400 },
	{ '\0', 0 }
};

/*
 * digits_parse - read one or more decimal digits at *sp into *out,
 * refusing values above max; *sp is left on the first non-digit
 */
static int
digits_parse(const char **sp, uint64_t max, uint64_t *out)
{
	const char	*s = *sp;
	uint64_t	 v = 0, d;

	if (*s < '0' || *s > '9') {
		errno = EINVAL;
		return -1;
	}
	for (; *s >= '0' && *s <= '9'; s++) {
		d = (uint64_t)(*s - '0');
		/* v * 10 + d > max, asked without computing it */
		if (v > (max - d) / 10) {
			errno = ERANGE;
			return -1;
		}
		v = v * 10 + d;
	}
	*sp = s;
	*out = v;
	return 0;
}

/*
 * unit_scale - multiply v by the unit named at s (the rest of the
 * string); an empty rest means unit dflt
 */
static int
unit_scale(const char *s, const struct unit *units, uint64_t dflt,
    uint64_t v, uint64_t *out)
{
	const struct unit	*u;
	uint64_t		 mult = dflt;

	if (*s != '\0') {
		for (u = units; u->c != '\0'; u++)
			if (u->c == *s)
				break;
		if (u->c == '\0' || s[1] != '\0') {
			errno = EINVAL;
			return -1;
		}
		mult = u->mult;
	}
	if (v > UINT64_MAX / mult) {
		errno = ERANGE;
		return -1;
	}
	*out = v * mult;
	return 0;
}

/* size_parse - "35M" to 36700160; a bare number is bytes */
int
size_parse(const char *s, uint64_t *out)
{
	uint64_t	 v, r;

	if (s == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (digits_parse(&s, UINT64_MAX, &v) == -1 ||
	    unit_scale(s, size_units, 1, v, &r) == -1)
		return -1;
	*out = r;
	return 0;
}

/* duration_parse - "5d" to 432000; a bare number is seconds */
int
duration_parse(const char *s, uint32_t *seconds)
{
	uint64_t	 v, r;

	if (s == NULL) {
		errno = EINVAL;
		return -1;
	}
	/* the product is checked below, so the count may use 64 bits */
	if (digits_parse(&s, UINT32_MAX, &v) == -1 ||
	    unit_scale(s, duration_units, 1, v, &r) == -1)
		return -1;
	if (r > UINT32_MAX) {
		errno = ERANGE;
		return -1;
	}
	*seconds = (uint32_t)r;
	return 0;
}

/* rate_parse - "20/s" to count 20, period 1; the unit is required */
int
rate_parse(const char *s, uint32_t *count, uint32_t *period)
{
	const struct unit	*u;
	uint64_t		 v;

	if (s == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (digits_parse(&s, UINT32_MAX, &v) == -1)
		return -1;
	if (v == 0 || s[0] != '/' || s[1] == '\0' || s[2] != '\0') {
		errno = EINVAL;
		return -1;
	}
	for (u = duration_units; u->c != '\0'; u++)
		if (u->c == s[1])
			break;
	if (u->c == '\0') {
		errno = EINVAL;
		return -1;
	}
	*count = (uint32_t)v;
	*period = (uint32_t)u->mult;
	return 0;
}
