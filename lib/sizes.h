/*
 * NAME
 *	sizes - parse sizes, durations and rates written by people
 * SYNOPSIS
 *	#include "sizes.h"
 *
 *	int size_parse(const char *s, uint64_t *out);
 *	int duration_parse(const char *s, uint32_t *seconds);
 *	int rate_parse(const char *s, uint32_t *count, uint32_t *period);
 * DESCRIPTION
 *	size_parse() reads a decimal number with an optional suffix K, M
 *	or G (powers of 1024; lower case accepted): "35M" is 36700160.
 *
 *	duration_parse() reads a decimal number with an optional suffix s,
 *	m, h or d; a bare number is seconds.  "5d" is 432000.
 *
 *	rate_parse() reads "N/s", "N/m", "N/h" or "N/d": count N > 0 per
 *	period, the period returned in seconds.
 *
 *	No sign, no white space, no fractions, no empty number.
 * DIAGNOSTICS
 *	Each returns 0 on success and -1 on malformed input or on a value
 *	that does not fit its output type (checked before multiplying).
 */
#ifndef SLUICE_SIZES_H
#define SLUICE_SIZES_H

#include <stdint.h>

int	size_parse(const char *, uint64_t *);
int	duration_parse(const char *, uint32_t *);
int	rate_parse(const char *, uint32_t *, uint32_t *);

#endif
