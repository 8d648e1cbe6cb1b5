/*
 * NAME
 *	route - which delivery route a recipient takes
 * SYNOPSIS
 *	#include "route.h"
 *
 *	int route_match(const struct conf *conf, const char *domain);
 *	const char *route_domain(const char *address);
 *	int route_destination(const struct conf *conf, int route,
 *	    const char *domain, char *dst, size_t dstlen);
 *	void route_label(const struct conf *conf, int route, char *dst,
 *	    size_t dstlen);
 * DESCRIPTION
 *	route_match() returns the index of the first route in
 *	delivery.routes with a domain pattern that matches domain: the
 *	exact name, "*.suffix" (any name below suffix, not suffix itself)
 *	or "*".  Names compare without regard to case and to a trailing
 *	dot.  An address literal ("[192.0.2.1]") matches only "*".
 *
 *	route_domain() returns the part after the last '@' of an address,
 *	or "" when there is none.
 *
 *	route_destination() names where a route sends: the smarthost as
 *	written, or the domain (lower case) for an MX route.  Recipients
 *	with the same route and destination go in one delivery job.
 *	route_label() is the name counters use: the smarthost, or "mx".
 * DIAGNOSTICS
 *	route_match() returns -1 when no route matches (the message then
 *	bounces with 5.4.4).  route_destination() returns -1 when dst is
 *	too small.
 */
#ifndef SLUICE_ROUTE_H
#define SLUICE_ROUTE_H

#include <stddef.h>

struct conf;

int		 route_match(const struct conf *, const char *);
const char	*route_domain(const char *);
int		 route_destination(const struct conf *, int, const char *,
		    char *, size_t);
void		 route_label(const struct conf *, int, char *, size_t);

#endif
