/*
 * NAME
 *	netaddr - IP literals, CIDR networks and host:port values
 * SYNOPSIS
 *	#include "netaddr.h"
 *
 *	int netaddr_parse_ip(const char *s, struct sockaddr_storage *ss,
 *	    socklen_t *sslen);
 *	int netaddr_parse_cidr(const char *s, struct netaddr_cidr *c);
 *	int netaddr_cidr_match(const struct netaddr_cidr *c,
 *	    const struct sockaddr *sa);
 *	int netaddr_parse_hostport(const char *s, struct netaddr_hostport *hp);
 *	const char *netaddr_ntop(const struct sockaddr *sa, char *buf,
 *	    size_t len);
 *	int netaddr_domain_valid(const char *s);
 *	const char *netaddr_client_key(const char *addr, char *buf,
 *	    size_t len);
 * DESCRIPTION
 *	netaddr_parse_ip() accepts only numeric IPv4 or IPv6 literals (no
 *	name lookups) and fills a sockaddr with port 0.
 *
 *	netaddr_parse_cidr() accepts "10.0.0.0/8", "2001:db8::/32", or a
 *	bare address (a /32 or /128).  Host bits set below the prefix are
 *	an error: "10.0.0.1/8" is refused, as it is almost always a typo.
 *	netaddr_cidr_match() returns 1 when the address lies inside the
 *	network; an IPv4-mapped IPv6 address matches IPv4 networks.
 *
 *	netaddr_parse_hostport() accepts "host:port", "1.2.3.4:port" and
 *	"[v6addr]:port"; host is a DNS name (letters, digits, '-', '.') or
 *	an IP literal, port 1..65535.  The host is copied into hp->host.
 *
 *	netaddr_domain_valid() returns 1 for a DNS name: labels of 1..63
 *	letters, digits and '-', 253 octets at most; 0 otherwise.
 *
 *	netaddr_ntop() formats an address (without port) into buf.
 *	netaddr_client_key() names the client a per-address counter is
 *	kept for: an IPv4 address as it is (also when IPv4-mapped), an
 *	IPv6 address by its /64 ("2001:db8:1:2::/64"), since one host
 *	usually holds a whole /64; anything else as it is.  It returns
 *	buf, or NULL when len is too small.
 * DIAGNOSTICS
 *	Parsers return 0 on success and -1 on malformed input; they never
 *	write outside their output structure.
 */
#ifndef SLUICE_NETADDR_H
#define SLUICE_NETADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define NETADDR_HOST_MAX	255

struct netaddr_cidr {
	int		family;		/* AF_INET or AF_INET6 */
	uint8_t		addr[16];	/* network byte order */
	unsigned	prefix;		/* 0..32 or 0..128 */
};

struct netaddr_hostport {
	char		host[NETADDR_HOST_MAX + 1];
	int		port;
};

int		 netaddr_parse_ip(const char *, struct sockaddr_storage *,
		    socklen_t *);
int		 netaddr_parse_cidr(const char *, struct netaddr_cidr *);
const char	*netaddr_client_key(const char *, char *, size_t);
int		 netaddr_cidr_match(const struct netaddr_cidr *,
		    const struct sockaddr *);
int		 netaddr_parse_hostport(const char *, struct netaddr_hostport *);
const char	*netaddr_ntop(const struct sockaddr *, char *, size_t);
int		 netaddr_domain_valid(const char *);

#endif
