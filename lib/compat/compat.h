/*
 * NAME
 *	compat - functions the C library may lack
 * SYNOPSIS
 *	#include "compat/compat.h"
 * DESCRIPTION
 *	configure probes for each function and defines HAVE_<NAME> in
 *	config.h; the replacement is compiled only where it is missing
 *	(glibc 2.36 has neither strlcpy nor strtonum).
 */
#ifndef SLUICE_COMPAT_H
#define SLUICE_COMPAT_H

#include "config.h"

#include <stddef.h>

#ifndef HAVE_STRLCPY
size_t		 strlcpy(char *, const char *, size_t);
#endif
#ifndef HAVE_STRLCAT
size_t		 strlcat(char *, const char *, size_t);
#endif
#ifndef HAVE_STRTONUM
long long	 strtonum(const char *, long long, long long, const char **);
#endif

#endif
