/*
 * test_netaddr.c - IP literals, CIDR networks (prefix bounds, host
 * bits, IPv4-mapped matching) and host:port values (brackets, port
 * bounds, host length).
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "netaddr.h"

struct ip_case {
	const char	*in;
	int		 family;	/* 0: refused */
};

struct cidr_case {
	const char	*in;
	int		 rc;
	int		 family;
	unsigned	 prefix;
};

struct match_case {
	const char	*net;
	const char	*addr;
	int		 match;
};

struct hostport_case {
	const char	*in;
	int		 rc;
	const char	*host;
	int		 port;
};

static const struct ip_case ip_cases[] = {
	{ "127.0.0.1",		AF_INET },
	{ "0.0.0.0",		AF_INET },
	{ "255.255.255.255",	AF_INET },
	{ "::",			AF_INET6 },
	{ "::1",		AF_INET6 },
	{ "2001:db8::25",	AF_INET6 },
	{ "::ffff:10.1.2.3",	AF_INET6 },
	{ "",			0 },
	{ "localhost",		0 },
	{ "256.0.0.1",		0 },
	{ "1.2.3",		0 },
	{ "1.2.3.4.5",		0 },
	{ " 1.2.3.4",		0 },
	{ "1.2.3.4 ",		0 },
	{ "1.2.3.4/32",		0 },
	{ "[::1]",		0 },
	{ "fe80::1%eth0",	0 },
	{ "2001:db8:::1",	0 },
};

static const struct cidr_case cidr_cases[] = {
	{ "10.0.0.0/8",		 0, AF_INET, 8 },
	{ "0.0.0.0/0",		 0, AF_INET, 0 },
	{ "192.0.2.7/32",	 0, AF_INET, 32 },
	{ "192.0.2.7",		 0, AF_INET, 32 },
	{ "192.0.2.0/24",	 0, AF_INET, 24 },
	{ "192.0.2.128/25",	 0, AF_INET, 25 },
	{ "2001:db8::/32",	 0, AF_INET6, 32 },
	{ "::/0",		 0, AF_INET6, 0 },
	{ "::1/128",		 0, AF_INET6, 128 },
	{ "::1",		 0, AF_INET6, 128 },
	{ "2001:db8::8000/113",	 0, AF_INET6, 113 },
	/* prefix beyond the family's width */
	{ "10.0.0.0/33",	-1, 0, 0 },
	{ "::/129",		-1, 0, 0 },
	/* host bits below the prefix */
	{ "10.0.0.1/8",		-1, 0, 0 },
	{ "192.0.2.128/24",	-1, 0, 0 },
	{ "192.0.2.7/31",	-1, 0, 0 },
	{ "2001:db8::1/32",	-1, 0, 0 },
	{ "2001:db8::8000/112",	-1, 0, 0 },
	{ "0.0.0.1/0",		-1, 0, 0 },
	/* malformed */
	{ "10.0.0.0/",		-1, 0, 0 },
	{ "/8",			-1, 0, 0 },
	{ "10.0.0.0/-1",	-1, 0, 0 },
	{ "10.0.0.0/+8",	-1, 0, 0 },
	{ "10.0.0.0/08",	-1, 0, 0 },
	{ "10.0.0.0/8/8",	-1, 0, 0 },
	{ "10.0.0.0/ 8",	-1, 0, 0 },
	{ "10.0.0.0/1000",	-1, 0, 0 },
	{ "10/8",		-1, 0, 0 },
	{ "example.org/8",	-1, 0, 0 },
	{ "",			-1, 0, 0 },
};

static const struct match_case match_cases[] = {
	{ "10.0.0.0/8",		"10.1.2.3",		1 },
	{ "10.0.0.0/8",		"11.0.0.0",		0 },
	{ "10.0.0.0/8",		"9.255.255.255",	0 },
	{ "192.0.2.128/25",	"192.0.2.128",		1 },
	{ "192.0.2.128/25",	"192.0.2.255",		1 },
	{ "192.0.2.128/25",	"192.0.2.127",		0 },
	{ "0.0.0.0/0",		"203.0.113.9",		1 },
	{ "192.0.2.7/32",	"192.0.2.7",		1 },
	{ "192.0.2.7/32",	"192.0.2.6",		0 },
	/* a dual-stack socket sees IPv4 clients as ::ffff:a.b.c.d */
	{ "10.0.0.0/8",		"::ffff:10.9.8.7",	1 },
	{ "10.0.0.0/8",		"::ffff:11.9.8.7",	0 },
	{ "0.0.0.0/0",		"::ffff:1.2.3.4",	1 },
	{ "0.0.0.0/0",		"::1",			0 },
	{ "0.0.0.0/0",		"2001:db8::1",		0 },
	{ "2001:db8::/32",	"2001:db8:ffff::1",	1 },
	{ "2001:db8::/32",	"2001:db9::1",		0 },
	{ "::/0",		"2001:db8::1",		1 },
	{ "::1/128",		"::1",			1 },
	{ "::1/128",		"::2",			0 },
	{ "2001:db8::8000/113",	"2001:db8::ffff",	1 },
	{ "2001:db8::8000/113",	"2001:db8::7fff",	0 },
	/* families do not mix the other way round */
	{ "::/0",		"10.0.0.1",		0 },
	{ "2001:db8::/32",	"10.0.0.1",		0 },
};

static const struct hostport_case hostport_cases[] = {
	{ "relay.example.org:25",	 0, "relay.example.org", 25 },
	{ "smtp.provider.net:587",	 0, "smtp.provider.net", 587 },
	{ "localhost:1",		 0, "localhost", 1 },
	{ "a:65535",			 0, "a", 65535 },
	{ "192.0.2.1:465",		 0, "192.0.2.1", 465 },
	{ "[2001:db8::1]:25",		 0, "2001:db8::1", 25 },
	{ "[::1]:6379",			 0, "::1", 6379 },
	{ "mx-1.example:2525",		 0, "mx-1.example", 2525 },
	/* port bounds */
	{ "relay.example:0",		-1, NULL, 0 },
	{ "relay.example:65536",	-1, NULL, 0 },
	{ "relay.example:99999",	-1, NULL, 0 },
	{ "relay.example:100000",	-1, NULL, 0 },
	{ "relay.example:-25",		-1, NULL, 0 },
	{ "relay.example:+25",		-1, NULL, 0 },
	{ "relay.example:25x",		-1, NULL, 0 },
	{ "relay.example: 25",		-1, NULL, 0 },
	{ "relay.example:",		-1, NULL, 0 },
	{ "relay.example",		-1, NULL, 0 },
	/* hosts */
	{ ":25",			-1, NULL, 0 },
	{ "2001:db8::1:25",		-1, NULL, 0 },
	{ "[2001:db8::1]25",		-1, NULL, 0 },
	{ "[2001:db8::1]",		-1, NULL, 0 },
	{ "[relay.example]:25",		-1, NULL, 0 },
	{ "[]:25",			-1, NULL, 0 },
	{ "relay..example:25",		-1, NULL, 0 },
	{ ".relay.example:25",		-1, NULL, 0 },
	{ "relay.example.:25",		-1, NULL, 0 },
	{ "relay_1.example:25",		-1, NULL, 0 },
	{ "relay example:25",		-1, NULL, 0 },
	{ "",				-1, NULL, 0 },
};

static void
test_netaddr_parse_ip_table(void **state)
{
	const struct ip_case	*c;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	size_t			 i;
	int			 rc;

	(void)state;
	for (i = 0; i < sizeof(ip_cases) / sizeof(ip_cases[0]); i++) {
		c = &ip_cases[i];
		sslen = 0;
		rc = netaddr_parse_ip(c->in, &ss, &sslen);
		if (rc != (c->family == 0 ? -1 : 0))
			fail_msg("netaddr_parse_ip(\"%s\") = %d", c->in, rc);
		if (rc == -1)
			continue;
		assert_int_equal(ss.ss_family, c->family);
		assert_int_equal(sslen, c->family == AF_INET ?
		    sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
		/* port 0: the caller sets the port it binds */
		if (c->family == AF_INET)
			assert_int_equal(
			    ((struct sockaddr_in *)&ss)->sin_port, 0);
		else
			assert_int_equal(
			    ((struct sockaddr_in6 *)&ss)->sin6_port, 0);
	}
	assert_int_equal(netaddr_parse_ip(NULL, &ss, &sslen), -1);
}

/* an input longer than any literal is refused before inet_pton */
static void
test_netaddr_parse_ip_long(void **state)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	char			 s[512];

	(void)state;
	memset(s, '1', sizeof(s) - 1);
	s[sizeof(s) - 1] = '\0';
	assert_int_equal(netaddr_parse_ip(s, &ss, &sslen), -1);
}

static void
test_netaddr_parse_cidr_table(void **state)
{
	const struct cidr_case	*c;
	struct netaddr_cidr	 n;
	size_t			 i;
	int			 rc;

	(void)state;
	for (i = 0; i < sizeof(cidr_cases) / sizeof(cidr_cases[0]); i++) {
		c = &cidr_cases[i];
		memset(&n, 0xa5, sizeof(n));
		rc = netaddr_parse_cidr(c->in, &n);
		if (rc != c->rc)
			fail_msg("netaddr_parse_cidr(\"%s\") = %d, want %d",
			    c->in, rc, c->rc);
		if (rc == 0) {
			if (n.family != c->family || n.prefix != c->prefix)
				fail_msg("netaddr_parse_cidr(\"%s\"): family "
				    "%d prefix %u", c->in, n.family, n.prefix);
		} else
			/* nothing written on failure */
			assert_int_equal(n.prefix, 0xa5a5a5a5);
	}
	assert_int_equal(netaddr_parse_cidr(NULL, &n), -1);
}

static void
test_netaddr_cidr_stores_network(void **state)
{
	struct netaddr_cidr	 n;
	const uint8_t		 v4[4] = { 192, 0, 2, 128 };
	uint8_t			 v6[16];

	(void)state;
	assert_int_equal(netaddr_parse_cidr("192.0.2.128/25", &n), 0);
	assert_memory_equal(n.addr, v4, sizeof(v4));
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::", v6), 1);
	assert_int_equal(netaddr_parse_cidr("2001:db8::/32", &n), 0);
	assert_memory_equal(n.addr, v6, sizeof(v6));
}

static void
test_netaddr_cidr_match_table(void **state)
{
	const struct match_case	*c;
	struct netaddr_cidr	 n;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	size_t			 i;
	int			 m;

	(void)state;
	for (i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]); i++) {
		c = &match_cases[i];
		assert_int_equal(netaddr_parse_cidr(c->net, &n), 0);
		assert_int_equal(netaddr_parse_ip(c->addr, &ss, &sslen), 0);
		m = netaddr_cidr_match(&n, (struct sockaddr *)&ss);
		if (m != c->match)
			fail_msg("%s in %s: %d, want %d", c->addr, c->net, m,
			    c->match);
	}
}

static void
test_netaddr_cidr_match_other_family(void **state)
{
	struct netaddr_cidr	 n;
	struct sockaddr		 sa;

	(void)state;
	assert_int_equal(netaddr_parse_cidr("0.0.0.0/0", &n), 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_family = AF_UNIX;
	assert_int_equal(netaddr_cidr_match(&n, &sa), 0);
	assert_int_equal(netaddr_cidr_match(&n, NULL), 0);
	assert_int_equal(netaddr_cidr_match(NULL, &sa), 0);
}

static void
test_netaddr_parse_hostport_table(void **state)
{
	const struct hostport_case	*c;
	struct netaddr_hostport		 hp;
	size_t				 i;
	int				 rc;

	(void)state;
	for (i = 0; i < sizeof(hostport_cases) / sizeof(hostport_cases[0]);
	    i++) {
		c = &hostport_cases[i];
		memset(&hp, 0, sizeof(hp));
		rc = netaddr_parse_hostport(c->in, &hp);
		if (rc != c->rc)
			fail_msg("netaddr_parse_hostport(\"%s\") = %d, want %d",
			    c->in, rc, c->rc);
		if (rc == 0) {
			assert_string_equal(hp.host, c->host);
			assert_int_equal(hp.port, c->port);
		}
	}
	assert_int_equal(netaddr_parse_hostport(NULL, &hp), -1);
}

/* a DNS name of 253 octets fits (RFC 1035 2.3.4 less the root dot); 254 does not */
static void
test_netaddr_parse_hostport_host_length(void **state)
{
	struct netaddr_hostport	 hp;
	char			 s[NETADDR_HOST_MAX + 16];
	size_t			 i;

	(void)state;
	/* labels of 49 letters: a valid name of exactly 253, then 254 */
	for (i = 0; i < 253; i++)
		s[i] = (i % 50 == 49) ? '.' : 'a';
	strcpy(s + 253, ":25");
	assert_int_equal(netaddr_parse_hostport(s, &hp), 0);
	assert_int_equal(strlen(hp.host), 253);
	assert_int_equal(hp.port, 25);
	assert_int_equal(netaddr_domain_valid(hp.host), 1);

	for (i = 0; i < 254; i++)
		s[i] = (i % 50 == 49) ? '.' : 'a';
	strcpy(s + 254, ":25");
	assert_int_equal(netaddr_parse_hostport(s, &hp), -1);
	s[254] = '\0';
	assert_int_equal(netaddr_domain_valid(s), 0);
	assert_int_equal(netaddr_domain_valid(""), 0);
	assert_int_equal(netaddr_domain_valid("a..b"), 0);
	assert_int_equal(netaddr_domain_valid("mail.example.org"), 1);

	/* a label over 63 octets */
	memset(s, 'a', 64);
	strcpy(s + 64, ".example:25");
	assert_int_equal(netaddr_parse_hostport(s, &hp), -1);
}

static void
test_netaddr_ntop(void **state)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	struct sockaddr		 sa;
	char			 buf[64], tiny[4];

	(void)state;
	assert_int_equal(netaddr_parse_ip("192.0.2.1", &ss, &sslen), 0);
	assert_string_equal(netaddr_ntop((struct sockaddr *)&ss, buf,
	    sizeof(buf)), "192.0.2.1");
	assert_int_equal(netaddr_parse_ip("2001:DB8::1", &ss, &sslen), 0);
	assert_string_equal(netaddr_ntop((struct sockaddr *)&ss, buf,
	    sizeof(buf)), "2001:db8::1");
	assert_null(netaddr_ntop((struct sockaddr *)&ss, tiny, sizeof(tiny)));
	memset(&sa, 0, sizeof(sa));
	sa.sa_family = AF_UNIX;
	assert_null(netaddr_ntop(&sa, buf, sizeof(buf)));
}

/* netaddr_client_key - the /64 of IPv6 clients, IPv4 as it is */
static void
test_netaddr_client_key(void **state)
{
	static const struct {
		const char	*in, *out;
	} rows[] = {
		{ "192.0.2.7", "192.0.2.7" },
		{ "::ffff:192.0.2.7", "192.0.2.7" },
		{ "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64" },
		{ "2001:db8:1:2::1", "2001:db8:1:2::/64" },
		{ "2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64" },
		{ "::1", "::/64" },
		{ "fe80::1", "fe80::/64" },
		{ "unknown", "unknown" },
		{ "", "" },
	};
	char	 buf[64], tiny[8];
	size_t	 i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		assert_non_null(netaddr_client_key(rows[i].in, buf,
		    sizeof(buf)));
		assert_string_equal(buf, rows[i].out);
	}
	/* two hosts of one /64 share a key; another /64 does not */
	assert_string_equal(netaddr_client_key("2001:db8::a", buf,
	    sizeof(buf)), "2001:db8::/64");
	assert_string_equal(netaddr_client_key("2001:db8:0:1::a", buf,
	    sizeof(buf)), "2001:db8:0:1::/64");
	assert_null(netaddr_client_key("2001:db8:1:2::1", tiny,
	    sizeof(tiny)));
	assert_null(netaddr_client_key("192.0.2.77", tiny, sizeof(tiny)));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_netaddr_parse_ip_table),
		cmocka_unit_test(test_netaddr_parse_ip_long),
		cmocka_unit_test(test_netaddr_parse_cidr_table),
		cmocka_unit_test(test_netaddr_cidr_stores_network),
		cmocka_unit_test(test_netaddr_cidr_match_table),
		cmocka_unit_test(test_netaddr_cidr_match_other_family),
		cmocka_unit_test(test_netaddr_parse_hostport_table),
		cmocka_unit_test(test_netaddr_parse_hostport_host_length),
		cmocka_unit_test(test_netaddr_ntop),
		cmocka_unit_test(test_netaddr_client_key),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
