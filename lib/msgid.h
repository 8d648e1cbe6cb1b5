/*
 * NAME
 *	msgid - unique, time-sortable message ids
 * SYNOPSIS
 *	#include "msgid.h"
 *
 *	void msgid_new(char id[MSGID_SIZE]);
 *	void msgid_from(uint64_t ms, const uint8_t rnd[10], char id[MSGID_SIZE]);
 *	int msgid_valid(const char *s);
 *	int msgid_time(const char *id, uint64_t *ms);
 * DESCRIPTION
 *	An id is 26 characters of Crockford base32 (0-9, A-Z without
 *	I, L, O, U): 48 bits of milliseconds since the epoch, then 80
 *	random bits from libsodium.  Ids sort by creation time as plain
 *	strings; within one millisecond one process increments the random
 *	part, so its ids stay strictly increasing.  80 random bits make a
 *	collision between nodes sharing one Redis negligible.
 *	msgid_new() needs sodium_init() to have been called.
 * DIAGNOSTICS
 *	msgid_valid() returns 1 for a well-formed id, 0 otherwise.
 *	msgid_time() returns -1 for a malformed id.
 */
#ifndef SLUICE_MSGID_H
#define SLUICE_MSGID_H

#include <stdint.h>

#define MSGID_LEN	26
#define MSGID_SIZE	(MSGID_LEN + 1)

void	msgid_new(char [MSGID_SIZE]);
void	msgid_from(uint64_t, const uint8_t [10], char [MSGID_SIZE]);
int	msgid_valid(const char *);
int	msgid_time(const char *, uint64_t *);

#endif
