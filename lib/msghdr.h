/*
 * NAME
 *	msghdr - the header section of an RFC 5322 message
 * SYNOPSIS
 *	#include "msghdr.h"
 *
 *	size_t msghdr_end(const char *p, size_t n);
 *	int msghdr_has(const char *p, size_t hlen, const char *name);
 * DESCRIPTION
 *	msghdr_end() returns the length of the header section at the start
 *	of the n bytes at p: every line up to the empty line that ends it,
 *	or up to the first line that is neither a header field ("name:",
 *	name of printable US-ASCII without ':' or space) nor the
 *	continuation of one (it starts with a space or tab).  The empty
 *	line, or that first body line, is not included; a message that is
 *	all header gives n.  Lines end in CRLF; a last line without one
 *	still counts.
 *
 *	msghdr_has() says whether a field named name (case does not
 *	matter) is among the first hlen bytes, which msghdr_end() gave.
 * DIAGNOSTICS
 *	None: any bytes are a message, perhaps with no header at all.
 */
#ifndef SLUICE_MSGHDR_H
#define SLUICE_MSGHDR_H

#include <stddef.h>

size_t	msghdr_end(const char *, size_t);
int	msghdr_has(const char *, size_t, const char *);

#endif
