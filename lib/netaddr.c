/*
 * netaddr.c - IP literals, CIDR networks and host:port values
 *
 * Only numeric forms are accepted for addresses: a configuration that
 * names a host where an address is expected would make start-up (and
 * the trust decisions built on it) depend on DNS.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "compat/compat.h"
#include "netaddr.h"

/* longest text any IP literal can take, with room to spare */
#define NETADDR_IP_MAX	64

static int	port_parse(const char *);
static int	prefix_parse(const char *, unsigned);
static int	bits_match(const uint8_t *, const uint8_t *, unsigned);

/* port_parse - "1".."65535", digits only; -1 for anything else */
static int
port_parse(const char *s)
{
	int	 v = 0;
	size_t	 n;

	for (n = 0; s[n] != '\0'; n++) {
		if (s[n] < '0' || s[n] > '9' || n >= 5)
			return -1;
		v = v * 10 + (s[n] - '0');
	}
	if (n == 0 || v < 1 || v > 65535)
		return -1;
	return v;
}

/* prefix_parse - a prefix length 0..max, digits only, no leading zeros */
static int
prefix_parse(const char *s, unsigned max)
{
	unsigned	 v = 0;
	size_t		 n;

	for (n = 0; s[n] != '\0'; n++) {
		if (s[n] < '0' || s[n] > '9' || n >= 3)
			return -1;
		v = v * 10 + (unsigned)(s[n] - '0');
	}
	/* "/08" is no typo we want to guess the meaning of */
	if (n == 0 || (n > 1 && s[0] == '0') || v > max)
		return -1;
	return (int)v;
}

/*
 * netaddr_domain_valid - a DNS name of letters, digits, '-' and '.',
 * with no empty label, no label over 63 octets, 253 octets in all
 */
int
netaddr_domain_valid(const char *s)
{
	size_t	 n, label = 0;

	for (n = 0; s[n] != '\0'; n++) {
		if (s[n] == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!((s[n] >= 'a' && s[n] <= 'z') ||
		    (s[n] >= 'A' && s[n] <= 'Z') ||
		    (s[n] >= '0' && s[n] <= '9') || s[n] == '-'))
			return 0;
		if (++label > 63)
			return 0;
	}
	return n > 0 && n <= 253 && label > 0;
}

/* bits_match - the first nbits bits of a and b are equal */
static int
bits_match(const uint8_t *a, const uint8_t *b, unsigned nbits)
{
	unsigned	 bytes = nbits / 8, rest = nbits % 8;
	uint8_t		 mask;

	if (memcmp(a, b, bytes) != 0)
		return 0;
	if (rest == 0)
		return 1;
	mask = (uint8_t)(0xff << (8 - rest));
	return (a[bytes] & mask) == (b[bytes] & mask);
}

/* netaddr_parse_ip - a numeric IPv4 or IPv6 literal into a sockaddr */
int
netaddr_parse_ip(const char *s, struct sockaddr_storage *ss,
    socklen_t *sslen)
{
	struct sockaddr_in	*sin;
	struct sockaddr_in6	*sin6;
	struct in_addr		 a4;
	struct in6_addr		 a6;

	if (s == NULL || strlen(s) >= NETADDR_IP_MAX)
		return -1;
	if (inet_pton(AF_INET, s, &a4) == 1) {
		memset(ss, 0, sizeof(*ss));
		sin = (struct sockaddr_in *)ss;
		sin->sin_family = AF_INET;
		sin->sin_addr = a4;
		*sslen = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, s, &a6) == 1) {
		memset(ss, 0, sizeof(*ss));
		sin6 = (struct sockaddr_in6 *)ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = a6;
		*sslen = sizeof(*sin6);
		return 0;
	}
	return -1;
}

/* netaddr_parse_cidr - "net/prefix" or a bare address; no host bits */
int
netaddr_parse_cidr(const char *s, struct netaddr_cidr *c)
{
	char		 ip[NETADDR_IP_MAX];
	const char	*slash;
	struct netaddr_cidr r;
	uint8_t		 zero[16];
	size_t		 len;
	int		 prefix;
	unsigned	 max;

	if (s == NULL)
		return -1;
	slash = strchr(s, '/');
	len = slash != NULL ? (size_t)(slash - s) : strlen(s);
	if (len == 0 || len >= sizeof(ip))
		return -1;
	memcpy(ip, s, len);
	ip[len] = '\0';

	memset(&r, 0, sizeof(r));
	if (inet_pton(AF_INET, ip, r.addr) == 1) {
		r.family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, ip, r.addr) == 1) {
		r.family = AF_INET6;
		max = 128;
	} else
		return -1;

	if (slash == NULL)
		r.prefix = max;
	else {
		if ((prefix = prefix_parse(slash + 1, max)) == -1)
			return -1;
		r.prefix = (unsigned)prefix;
	}

	/*
	 * Bits below the prefix must be zero: "10.0.0.1/8" is refused
	 * rather than silently widened to all of 10/8.
	 */
	memset(zero, 0, sizeof(zero));
	if (r.prefix < max) {
		uint8_t	 host[16];
		unsigned i;

		memcpy(host, r.addr, sizeof(host));
		for (i = 0; i < r.prefix; i++)
			host[i / 8] &= (uint8_t)~(0x80 >> (i % 8));
		if (memcmp(host, zero, max / 8) != 0)
			return -1;
	}
	*c = r;
	return 0;
}

/* netaddr_cidr_match - sa lies in c; ::ffff:a.b.c.d counts as IPv4 */
int
netaddr_cidr_match(const struct netaddr_cidr *c, const struct sockaddr *sa)
{
	const struct sockaddr_in	*sin;
	const struct sockaddr_in6	*sin6;
	const uint8_t			*a;

	if (c == NULL || sa == NULL)
		return 0;
	switch (sa->sa_family) {
	case AF_INET:
		if (c->family != AF_INET)
			return 0;
		sin = (const struct sockaddr_in *)sa;
		a = (const uint8_t *)&sin->sin_addr;
		break;
	case AF_INET6:
		sin6 = (const struct sockaddr_in6 *)sa;
		a = sin6->sin6_addr.s6_addr;
		/*
		 * A dual-stack listener sees IPv4 clients as mapped
		 * addresses; they must match the IPv4 networks written.
		 */
		if (c->family == AF_INET) {
			if (!IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
				return 0;
			a += 12;
		} else if (c->family != AF_INET6)
			return 0;
		break;
	default:
		return 0;
	}
	return bits_match(a, c->addr, c->prefix);
}

/* netaddr_parse_hostport - "host:port", "1.2.3.4:port", "[v6]:port" */
int
netaddr_parse_hostport(const char *s, struct netaddr_hostport *hp)
{
	char		 host[NETADDR_HOST_MAX + 1];
	const char	*colon, *end;
	struct in6_addr	 a6;
	size_t		 len;
	int		 port;

	if (s == NULL)
		return -1;
	if (s[0] == '[') {
		if ((end = strchr(s, ']')) == NULL || end[1] != ':')
			return -1;
		len = (size_t)(end - s - 1);
		if (len == 0 || len >= NETADDR_IP_MAX)
			return -1;
		memcpy(host, s + 1, len);
		host[len] = '\0';
		if (inet_pton(AF_INET6, host, &a6) != 1)
			return -1;
		colon = end + 1;
	} else {
		/* an IPv6 literal without brackets has no unambiguous port */
		if ((colon = strchr(s, ':')) == NULL ||
		    strchr(colon + 1, ':') != NULL)
			return -1;
		len = (size_t)(colon - s);
		if (len == 0 || len > NETADDR_HOST_MAX)
			return -1;
		memcpy(host, s, len);
		host[len] = '\0';
		if (!netaddr_domain_valid(host))
			return -1;
	}
	if ((port = port_parse(colon + 1)) == -1)
		return -1;
	if (strlcpy(hp->host, host, sizeof(hp->host)) >= sizeof(hp->host))
		return -1;
	hp->port = port;
	return 0;
}

/* netaddr_ntop - the address of sa as text, without the port */
const char *
netaddr_ntop(const struct sockaddr *sa, char *buf, size_t len)
{
	const void	*a;

	if (sa == NULL || buf == NULL || len == 0) {
		errno = EINVAL;
		return NULL;
	}
	switch (sa->sa_family) {
	case AF_INET:
		a = &((const struct sockaddr_in *)sa)->sin_addr;
		break;
	case AF_INET6:
		a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		break;
	default:
		errno = EAFNOSUPPORT;
		return NULL;
	}
	if (len > (socklen_t)-1)
		len = (socklen_t)-1;
	return inet_ntop(sa->sa_family, a, buf, (socklen_t)len);
}

/* netaddr_client_key - the address, or the /64 of an IPv6 one */
const char *
netaddr_client_key(const char *addr, char *buf, size_t len)
{
	struct in6_addr	 a6;
	char		 tmp[INET6_ADDRSTRLEN];
	int		 n;

	if (inet_pton(AF_INET6, addr, &a6) != 1) {
		n = snprintf(buf, len, "%s", addr);
		return n >= 0 && (size_t)n < len ? buf : NULL;
	}
	if (IN6_IS_ADDR_V4MAPPED(&a6)) {
		if (inet_ntop(AF_INET, &a6.s6_addr[12], tmp, sizeof(tmp)) ==
		    NULL)
			return NULL;
		n = snprintf(buf, len, "%s", tmp);
	} else {
		memset(&a6.s6_addr[8], 0, 8);
		if (inet_ntop(AF_INET6, &a6, tmp, sizeof(tmp)) == NULL)
			return NULL;
		n = snprintf(buf, len, "%s/64", tmp);
	}
	return n >= 0 && (size_t)n < len ? buf : NULL;
}
