/*
 * test_route.c - which route a recipient domain takes: first match in
 * file order, exact names and "*.suffix" (the suffix itself excluded),
 * case and a trailing dot ignored, address literals only under "*", no
 * match without a "*" route; the destination and label of a route.
 *
 * Each struct conf comes from a real file through conf_load(), so the
 * routes are exactly what sluiced would hand to queued.
 */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"
#include "log.h"
#include "route.h"

#define LISTEN	"listen = ( { address = \"127.0.0.1\"; port = 2587; } );\n"

/* a domain and the route it must take, -1 for none */
struct match_case {
	const char	*domain;
	int		 route;
};

/* an address and its domain part */
struct domain_case {
	const char	*address;
	const char	*domain;
};

static struct conf	*conf_from(const char *);
static int		 conf_setup(void **, const char *);
static int		 star_setup(void **);
static int		 nostar_setup(void **);
static int		 default_setup(void **);
static int		 conf_teardown(void **);
static void		 expect_matches(const struct conf *,
			    const struct match_case *, size_t);

/*
 * Routes 0..2 as in the example file; route 3 comes after "*" and so is
 * never taken.
 */
static const char star_text[] = LISTEN
    "delivery = { routes = (\n"
    "  { domains = [ \"partner.example\", \"Partner2.Example\" ];\n"
    "    smarthost = \"relay.partner.example:25\"; tls = \"may\"; },\n"
    "  { domains = [ \"*.sub.example\" ]; mx = true; },\n"
    "  { domains = [ \"*\" ]; smarthost = \"smtp.provider.net:587\"; },\n"
    "  { domains = [ \"late.example\" ]; mx = true; }\n"
    "); };\n";

/*
 * No "*": some domains have no route.  Route 1 lies below route 0's
 * suffix and is shadowed by it; route 2 is that suffix itself.
 */
static const char nostar_text[] = LISTEN
    "delivery = { routes = (\n"
    "  { domains = [ \"*.example.org\", \"example.net\" ];\n"
    "    smarthost = \"Relay.Example.ORG:2525\"; },\n"
    "  { domains = [ \"deep.a.example.org\" ]; mx = true; },\n"
    "  { domains = [ \"example.org\", \"*.b.example.com\" ]; mx = true; }\n"
    "); };\n";

static const struct match_case star_cases[] = {
	/* exact names, in any case, with or without the root's dot */
	{ "partner.example", 0 },
	{ "PARTNER.EXAMPLE", 0 },
	{ "Partner.Example", 0 },
	{ "partner.example.", 0 },
	{ "PARTNER.example.", 0 },
	{ "partner2.example", 0 },		/* second domain of the route */
	{ "PARTNER2.EXAMPLE.", 0 },
	/* an exact name matches nothing above or below it */
	{ "x.partner.example", 2 },
	{ "partner.example.com", 2 },
	{ "apartner.example", 2 },
	{ "artner.example", 2 },
	{ "partner.exampl", 2 },
	{ "partner.example..", 2 },
	/* "*.sub.example": any depth below, not sub.example itself */
	{ "a.sub.example", 1 },
	{ "A.SUB.EXAMPLE", 1 },
	{ "a.b.c.sub.example", 1 },
	{ "a.sub.example.", 1 },
	{ "-.sub.example", 1 },
	{ "sub.example", 2 },
	{ "SUB.EXAMPLE.", 2 },
	{ "xsub.example", 2 },
	{ "a.xsub.example", 2 },
	{ ".sub.example", 2 },
	{ "a.sub.example.org", 2 },
	/* first match wins: route 3 is behind "*" */
	{ "late.example", 2 },
	/* "*" takes everything else, address literals included */
	{ "example.org", 2 },
	{ "localhost", 2 },
	{ "[192.0.2.1]", 2 },
	{ "[IPv6:2001:db8::1]", 2 },
	{ "[a.sub.example]", 2 },
	/* nothing to match: no domain at all */
	{ "", -1 },
	{ ".", -1 },
};

static const struct match_case nostar_cases[] = {
	{ "a.example.org", 0 },
	{ "A.Example.Org.", 0 },
	{ "x.y.z.example.org", 0 },
	{ "deep.a.example.org", 0 },	/* route 1 is shadowed */
	{ "example.net", 0 },
	{ "EXAMPLE.NET.", 0 },
	{ "example.org", 2 },		/* the suffix itself */
	{ "Example.Org.", 2 },
	{ "c.b.example.com", 2 },
	{ "b.example.com", -1 },
	{ "example.com", -1 },
	{ "xexample.org", -1 },
	{ "a.example.net", -1 },
	{ "org", -1 },
	{ "example.org.uk", -1 },
	/* an address literal only ever matches "*" */
	{ "[192.0.2.1]", -1 },
	{ "[IPv6:::1]", -1 },
	{ "[a.example.org]", -1 },
	{ "[example.net]", -1 },
	{ "", -1 },
};

static const struct domain_case domain_cases[] = {
	{ "user@example.org", "example.org" },
	{ "User@Example.ORG.", "Example.ORG." },
	{ "a@b@c.example", "c.example" },
	{ "\"a@b\"@example.org", "example.org" },
	{ "user@[192.0.2.1]", "[192.0.2.1]" },
	{ "@example.org", "example.org" },
	{ "user@", "" },
	{ "postmaster", "" },
	{ "", "" },
};

/* conf_from - text through a temporary file; the file is gone after */
static struct conf *
conf_from(const char *text)
{
	struct conf	*c;
	char		 path[64], err[512];
	size_t		 len = strlen(text);
	int		 fd;

	strcpy(path, "/tmp/test_route.XXXXXX");
	if ((fd = mkstemp(path)) == -1)
		fail_msg("mkstemp: %s", strerror(errno));
	if (write(fd, text, len) != (ssize_t)len)
		fail_msg("write %s: %s", path, strerror(errno));
	close(fd);
	c = conf_load(path, err, sizeof(err));
	unlink(path);
	if (c == NULL)
		fail_msg("refused: %s", err);
	return c;
}

static int
conf_setup(void **state, const char *text)
{
	*state = conf_from(text);
	return 0;
}

static int
star_setup(void **state)
{
	return conf_setup(state, star_text);
}

static int
nostar_setup(void **state)
{
	return conf_setup(state, nostar_text);
}

/* no delivery.routes at all: one "*" route to the MX hosts */
static int
default_setup(void **state)
{
	return conf_setup(state, LISTEN);
}

static int
conf_teardown(void **state)
{
	conf_free(*state);
	return 0;
}

static void
expect_matches(const struct conf *c, const struct match_case *mc, size_t n)
{
	size_t	 i;
	int	 r;

	for (i = 0; i < n; i++) {
		r = route_match(c, mc[i].domain);
		if (r != mc[i].route)
			fail_msg("\"%s\": route %d, want %d", mc[i].domain, r,
			    mc[i].route);
	}
}

static void
test_route_loaded(void **state)
{
	const struct conf	*c = *state;

	/* what the tests below take for granted of the file */
	assert_int_equal(c->delivery.nroutes, 4);
	assert_string_equal(c->delivery.routes[0].domains[1],
	    "partner2.example");
	assert_int_equal(c->delivery.routes[1].mx, 1);
	assert_string_equal(c->delivery.routes[2].smarthost,
	    "smtp.provider.net:587");
}

static void
test_route_match_star(void **state)
{
	expect_matches(*state, star_cases,
	    sizeof(star_cases) / sizeof(star_cases[0]));
}

static void
test_route_match_no_star(void **state)
{
	expect_matches(*state, nostar_cases,
	    sizeof(nostar_cases) / sizeof(nostar_cases[0]));
}

static void
test_route_match_default(void **state)
{
	const struct conf	*c = *state;
	static const struct match_case	 cases[] = {
		{ "example.org", 0 },
		{ "EXAMPLE.ORG.", 0 },
		{ "[192.0.2.1]", 0 },
		{ "localhost", 0 },
		{ "", -1 },
	};

	assert_int_equal(c->delivery.nroutes, 1);
	assert_int_equal(c->delivery.routes[0].mx, 1);
	expect_matches(c, cases, sizeof(cases) / sizeof(cases[0]));
}

/* the domain is only read, never changed, and need not be lower case */
static void
test_route_match_leaves_domain(void **state)
{
	char	 d[] = "A.Sub.Example.";

	assert_int_equal(route_match(*state, d), 1);
	assert_string_equal(d, "A.Sub.Example.");
}

static void
test_route_domain(void **state)
{
	size_t	 i;

	for (i = 0; i < sizeof(domain_cases) / sizeof(domain_cases[0]); i++)
		assert_string_equal(route_domain(domain_cases[i].address),
		    domain_cases[i].domain);
	/* a pointer into the address, not a copy */
	{
		const char	 a[] = "u@example.org";

		assert_ptr_equal(route_domain(a), a + 2);
	}
}

static void
test_route_destination_star(void **state)
{
	const struct conf	*c = *state;
	char			 dst[256];

	/* a smarthost as written, whatever the recipient's domain */
	assert_int_equal(route_destination(c, 0, "PARTNER.example", dst,
	    sizeof(dst)), 0);
	assert_string_equal(dst, "relay.partner.example:25");
	assert_int_equal(route_destination(c, 2, "Example.ORG", dst,
	    sizeof(dst)), 0);
	assert_string_equal(dst, "smtp.provider.net:587");
	/* an MX route: the domain, lower case, without the root's dot */
	assert_int_equal(route_destination(c, 1, "A.Sub.Example.", dst,
	    sizeof(dst)), 0);
	assert_string_equal(dst, "a.sub.example");
	assert_int_equal(route_destination(c, 1, "a.b.sub.example", dst,
	    sizeof(dst)), 0);
	assert_string_equal(dst, "a.b.sub.example");
	assert_int_equal(route_destination(c, 3, "LATE.EXAMPLE", dst,
	    sizeof(dst)), 0);
	assert_string_equal(dst, "late.example");
}

static void
test_route_destination_as_written(void **state)
{
	const struct conf	*c = *state;
	char			 dst[256];

	/* the smarthost keeps its case: it is a name for the resolver */
	assert_int_equal(route_destination(c, 0, "a.example.org", dst,
	    sizeof(dst)), 0);
	assert_string_equal(dst, "Relay.Example.ORG:2525");
	assert_int_equal(route_destination(c, 2, "EXAMPLE.ORG", dst,
	    sizeof(dst)), 0);
	assert_string_equal(dst, "example.org");
}

/* exactly enough room works; one byte less is refused */
static void
test_route_destination_small_buffer(void **state)
{
	const struct conf	*c = *state;
	static const char	 relay[] = "smtp.provider.net:587";
	char			 dst[64];

	memset(dst, 'X', sizeof(dst));
	assert_int_equal(route_destination(c, 2, "x", dst, sizeof(relay)), 0);
	assert_string_equal(dst, relay);
	assert_int_equal(route_destination(c, 2, "x", dst,
	    sizeof(relay) - 1), -1);
	memset(dst, 'X', sizeof(dst));
	assert_int_equal(route_destination(c, 2, "x", dst, 0), -1);
	assert_int_equal(dst[0], 'X');

	/* an MX domain: the root's dot needs no room */
	memset(dst, 'X', sizeof(dst));
	assert_int_equal(route_destination(c, 1, "A.SUB.EXAMPLE.", dst, 14),
	    0);
	assert_string_equal(dst, "a.sub.example");
	assert_int_equal(route_destination(c, 1, "A.SUB.EXAMPLE.", dst, 13),
	    -1);
	assert_int_equal(route_destination(c, 1, "a.sub.example", dst, 14), 0);
	assert_int_equal(route_destination(c, 1, "a.sub.example", dst, 13), -1);
	memset(dst, 'X', sizeof(dst));
	assert_int_equal(route_destination(c, 1, "a.sub.example", dst, 0), -1);
	assert_int_equal(route_destination(c, 1, "a.sub.example", dst, 1), -1);
	/* nothing written past dstlen */
	assert_int_equal(dst[0], 'X');
	assert_int_equal(dst[1], 'X');
}

static void
test_route_label(void **state)
{
	const struct conf	*c = *state;
	char			 l[64];

	route_label(c, 0, l, sizeof(l));
	assert_string_equal(l, "relay.partner.example:25");
	route_label(c, 1, l, sizeof(l));
	assert_string_equal(l, "mx");
	route_label(c, 2, l, sizeof(l));
	assert_string_equal(l, "smtp.provider.net:587");
	route_label(c, 3, l, sizeof(l));
	assert_string_equal(l, "mx");

	/* a short buffer is cut and terminated, never overrun */
	memset(l, 'X', sizeof(l));
	route_label(c, 2, l, 5);
	assert_string_equal(l, "smtp");
	assert_int_equal(l[5], 'X');
	route_label(c, 1, l, 2);
	assert_string_equal(l, "m");
}

static void
test_route_label_as_written(void **state)
{
	char	 l[64];

	route_label(*state, 0, l, sizeof(l));
	assert_string_equal(l, "Relay.Example.ORG:2525");
	route_label(*state, 2, l, sizeof(l));
	assert_string_equal(l, "mx");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_route_loaded,
		    star_setup, conf_teardown),
		cmocka_unit_test_setup_teardown(test_route_match_star,
		    star_setup, conf_teardown),
		cmocka_unit_test_setup_teardown(test_route_match_no_star,
		    nostar_setup, conf_teardown),
		cmocka_unit_test_setup_teardown(test_route_match_default,
		    default_setup, conf_teardown),
		cmocka_unit_test_setup_teardown(test_route_match_leaves_domain,
		    star_setup, conf_teardown),
		cmocka_unit_test(test_route_domain),
		cmocka_unit_test_setup_teardown(test_route_destination_star,
		    star_setup, conf_teardown),
		cmocka_unit_test_setup_teardown(
		    test_route_destination_as_written, nostar_setup,
		    conf_teardown),
		cmocka_unit_test_setup_teardown(
		    test_route_destination_small_buffer, star_setup,
		    conf_teardown),
		cmocka_unit_test_setup_teardown(test_route_label,
		    star_setup, conf_teardown),
		cmocka_unit_test_setup_teardown(test_route_label_as_written,
		    nostar_setup, conf_teardown),
	};

	log_init("test_route", LOG_F_STDERR | LOG_F_NOSYSLOG);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
