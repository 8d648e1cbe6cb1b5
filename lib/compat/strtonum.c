/*
 * strtonum - parse a decimal integer within [min, max]; *errstr says why not
 */
#include "compat/compat.h"

#ifndef HAVE_STRTONUM
#include <errno.h>
#include <limits.h>
#include <stdlib.h>

long long
strtonum(const char *s, long long min, long long max, const char **errstr)
{
	long long	 v = 0;
	char		*end;
	int		 saved = errno;

	*errstr = NULL;
	if (min > max) {
		*errstr = "invalid";
		errno = EINVAL;
		return 0;
	}
	errno = 0;
	v = strtoll(s, &end, 10);
	if (s == end || *end != '\0') {
		*errstr = "invalid";
		errno = EINVAL;
		return 0;
	}
	if ((v == LLONG_MIN && errno == ERANGE) || v < min) {
		*errstr = "too small";
		errno = ERANGE;
		return 0;
	}
	if ((v == LLONG_MAX && errno == ERANGE) || v > max) {
		*errstr = "too large";
		errno = ERANGE;
		return 0;
	}
	errno = saved;
	return v;
}
#else
typedef int strtonum_unused;
#endif
