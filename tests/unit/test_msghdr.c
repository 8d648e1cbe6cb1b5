/*
 * test_msghdr.c - where the header section of a message ends, and which
 * fields it holds: the empty line, folding, no body, no header, a body
 * with no separator, a last line without CRLF, bare LF, and names that
 * only share a prefix.
 *
 * Each message is copied into a buffer of exactly its length first, so
 * that a read past the end shows under the sanitizers.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "msghdr.h"

/* a message and where its header section ends */
struct end_case {
	const char	*what;
	const char	*msg;
	size_t		 len;		/* 0: strlen(msg) */
	size_t		 end;
};

/* a field name looked up in a message's header section */
struct has_case {
	const char	*what;
	const char	*msg;
	const char	*name;
	int		 has;
};

static char	*exact_copy(const char *, size_t);
static size_t	 end_of(const char *, size_t);
static int	 has_in(const char *, const char *);

static const struct end_case end_cases[] = {
	/* the empty line ends it, and is not part of it */
	{ "empty line", "From: a\r\nTo: b\r\n\r\nbody\r\n", 0, 16 },
	{ "empty line, one field", "From: a\r\n\r\n", 0, 9 },
	{ "empty line, then more fields", "From: a\r\n\r\nTo: b\r\n", 0, 9 },
	{ "empty line, then another", "A: 1\r\n\r\n\r\n", 0, 6 },

	/* folding: a line that starts with space or tab continues a field */
	{ "folded with space", "Subject: a\r\n b\r\n\r\nx", 0, 16 },
	{ "folded with tab", "Subject: a\r\n\tb\r\nTo: c\r\n\r\n", 0, 23 },
	{ "folded twice", "Subject: a\r\n b\r\n  c\r\n\r\n", 0, 21 },
	{ "continuation of blanks", "Subject: a\r\n \r\n\r\nbody", 0, 15 },
	{ "folded last line", "Subject: a\r\n b", 0, 14 },
	{ "continuation that looks like a field",
	    "Subject: a\r\n To: b\r\n\r\n", 0, 20 },

	/* all header: no empty line, or nothing after it */
	{ "no body", "From: a\r\nTo: b\r\n", 0, 16 },
	{ "no body, last line open", "From: a\r\nTo: b", 0, 14 },
	{ "no body, only the empty line", "From: a\r\n\r\n", 0, 9 },
	{ "one field, no CRLF", "X-A:", 0, 4 },
	{ "field with an empty value", "X-Empty:\r\nTo: b\r\n\r\n", 0, 17 },

	/* no header at all */
	{ "nothing", "", 0, 0 },
	{ "empty line first", "\r\nFrom: a\r\n", 0, 0 },
	{ "bare LF first", "\nFrom: a\n", 0, 0 },
	{ "text first", "hello world\r\nFrom: a\r\n\r\n", 0, 0 },
	{ "continuation first", " From: a\r\n\r\n", 0, 0 },
	{ "tab first", "\tFrom: a\r\n\r\n", 0, 0 },
	{ "colon first", ": a\r\n\r\n", 0, 0 },
	{ "one byte", "x", 0, 0 },
	{ "a colon alone", ":", 0, 0 },
	{ "a name without its colon", "From", 0, 0 },
	{ "mbox From line", "From alice@example.org Mon Jan 1\r\n"
	    "To: b\r\n\r\n", 0, 0 },

	/* a body that starts without the empty line */
	{ "body without separator", "From: a\r\nthis is body\r\n", 0, 9 },
	{ "space before the colon", "From: a\r\nTo : b\r\n\r\n", 0, 9 },
	{ "space inside the name", "From: a\r\nRe ply: b\r\n", 0, 9 },
	{ "8-bit name", "From: a\r\nFr\xc3\xb6m: b\r\n", 0, 9 },
	{ "DEL in the name", "From: a\r\nX\x7f: b\r\n", 0, 9 },
	{ "control in the name", "From: a\r\nX\x01Y: b\r\n", 0, 9 },
	{ "NUL in the name", "From: a\r\nX\0Y: b\r\n", 17, 9 },
	{ "NUL in a value is still a field", "From: a\0b\r\n\r\n", 11, 11 },
	{ "last line without CRLF, not a field", "From: a\r\nbody", 0, 9 },

	/* bare LF is a line end for this purpose */
	{ "bare LF lines", "From: a\nTo: b\n\nbody\n", 0, 14 },
	{ "bare LF, CRLF mixed", "From: a\nTo: b\r\n\r\nbody", 0, 15 },
	{ "bare LF fold", "Subject: a\n b\n\n", 0, 14 },
	{ "bare LF, no body", "From: a\nTo: b\n", 0, 14 },
	/* a CR alone in the first column also ends it */
	{ "bare CR line", "From: a\r\n\rTo: b\r\n", 0, 9 },
};

static const struct has_case has_cases[] = {
	{ "present", "From: a\r\nTo: b\r\n\r\n", "To", 1 },
	{ "first", "From: a\r\nTo: b\r\n\r\n", "From", 1 },
	{ "absent", "From: a\r\nTo: b\r\n\r\n", "Date", 0 },
	{ "lower case asked", "From: a\r\n\r\n", "from", 1 },
	{ "upper case asked", "From: a\r\n\r\n", "FROM", 1 },
	{ "mixed case written", "mEsSaGe-Id: <x@y>\r\n\r\n", "Message-ID", 1 },

	/* one name only prefixes the other */
	{ "longer name written", "Date-Received: x\r\n\r\n", "Date", 0 },
	{ "shorter name written", "Date: x\r\n\r\n", "Date-Received", 0 },
	{ "asked a prefix", "Date: x\r\n\r\n", "Dat", 0 },
	{ "both written", "Date-Received: x\r\nDate: y\r\n\r\n", "Date", 1 },
	{ "suffix written", "X-Date: x\r\n\r\n", "Date", 0 },

	/* what is not a field of the header section */
	{ "in the body", "From: a\r\n\r\nTo: b\r\n", "To", 0 },
	{ "after a body line", "From: a\r\nbody\r\nTo: b\r\n", "To", 0 },
	{ "in a continuation", "Subject: a\r\n To: b\r\n\r\n", "To", 0 },
	{ "in a value", "Subject: To: b\r\n\r\n", "To", 0 },
	{ "with a space before the colon", "From: a\r\nTo : b\r\n\r\n", "To",
	    0 },
	{ "no header", "\r\nTo: b\r\n", "To", 0 },
	{ "empty message", "", "To", 0 },
	{ "empty name asked", "From: a\r\n b\r\n\r\n", "", 0 },
	{ "empty name asked, body line", "From: a\r\nbody\r\n", "", 0 },
	{ "name with its colon asked", "From: a\r\n\r\n", "From:", 0 },

	/* line ends */
	{ "last line without CRLF", "From: a\r\nTo: b", "To", 1 },
	{ "bare LF lines", "From: a\nTo: b\n\nx", "To", 1 },
	{ "bare LF body", "From: a\n\nTo: b\n", "To", 0 },
	{ "field with an empty value", "X-Empty:\r\n\r\n", "X-Empty", 1 },
	{ "field with no value, no CRLF", "X-Empty:", "X-Empty", 1 },
};

/* exact_copy - n bytes in a block of exactly n, so overreads show */
static char *
exact_copy(const char *p, size_t n)
{
	char	*q;

	/* malloc(0) may give NULL; one byte keeps a valid pointer */
	if ((q = malloc(n > 0 ? n : 1)) == NULL)
		fail_msg("malloc");
	memcpy(q, p, n);
	return q;
}

static size_t
end_of(const char *msg, size_t n)
{
	char	*q = exact_copy(msg, n);
	size_t	 end;

	end = msghdr_end(q, n);
	free(q);
	return end;
}

/* has_in - name among the fields of msg's header section? */
static int
has_in(const char *msg, const char *name)
{
	size_t	 n = strlen(msg), end;
	char	*q = exact_copy(msg, n);
	int	 r;

	end = msghdr_end(q, n);
	r = msghdr_has(q, end, name);
	free(q);
	return r;
}

static void
test_msghdr_end_table(void **state)
{
	const struct end_case	*c;
	size_t			 i, n, end;

	for (i = 0; i < sizeof(end_cases) / sizeof(end_cases[0]); i++) {
		c = &end_cases[i];
		n = c->len != 0 ? c->len : strlen(c->msg);
		end = end_of(c->msg, n);
		if (end != c->end)
			fail_msg("%s: end %zu, want %zu", c->what, end, c->end);
		/* it stops at the start of a line, or at the very end */
		if (end != 0 && end != n && c->msg[end - 1] != '\n')
			fail_msg("%s: %zu is not a line start", c->what, end);
	}
}

static void
test_msghdr_has_table(void **state)
{
	const struct has_case	*c;
	size_t			 i;
	int			 r;

	for (i = 0; i < sizeof(has_cases) / sizeof(has_cases[0]); i++) {
		c = &has_cases[i];
		r = has_in(c->msg, c->name);
		if (r != c->has)
			fail_msg("%s: \"%s\" %s", c->what, c->name,
			    r ? "found" : "not found");
	}
}

/* n limits both: nothing past it is a line, a field or a separator */
static void
test_msghdr_end_within_n(void **state)
{
	static const char	 msg[] = "From: a\r\nTo: b\r\n\r\nbody";
	size_t			 n;

	/* every prefix of the header is all header, or stops at a line */
	for (n = 0; n <= 16; n++) {
		size_t	 end = end_of(msg, n);

		if (end > n)
			fail_msg("end %zu past n %zu", end, n);
	}
	assert_int_equal(end_of(msg, 0), 0);
	assert_int_equal(end_of(msg, 4), 0);	/* "From": no colon yet */
	assert_int_equal(end_of(msg, 5), 5);	/* "From:" */
	assert_int_equal(end_of(msg, 9), 9);
	assert_int_equal(end_of(msg, 11), 9);	/* "To": not yet a field */
	assert_int_equal(end_of(msg, 12), 12);
	assert_int_equal(end_of(msg, 17), 16);	/* "\r" of the empty line */
	assert_int_equal(end_of(msg, sizeof(msg) - 1), 16);
}

/* hlen limits msghdr_has(): a field past it, or cut by it, is not seen */
static void
test_msghdr_has_within_hlen(void **state)
{
	static const char	 msg[] = "From: a\r\nSubject: s\r\n\r\n";
	char			*q = exact_copy(msg, sizeof(msg) - 1);

	assert_int_equal(msghdr_has(q, 21, "Subject"), 1);
	assert_int_equal(msghdr_has(q, 17, "Subject"), 1);	/* "Subject:" */
	assert_int_equal(msghdr_has(q, 16, "Subject"), 0);	/* "Subject" */
	assert_int_equal(msghdr_has(q, 9, "Subject"), 0);
	assert_int_equal(msghdr_has(q, 9, "From"), 1);
	assert_int_equal(msghdr_has(q, 5, "From"), 1);
	assert_int_equal(msghdr_has(q, 4, "From"), 0);
	assert_int_equal(msghdr_has(q, 0, "From"), 0);
	free(q);
}

/* a long header: many fields, long folded values, the right end */
static void
test_msghdr_long_header(void **state)
{
	char	*msg, *p;
	size_t	 i, n, hdr;

	n = 1000 * 20 + 50000 + 64;
	assert_non_null(msg = malloc(n));
	p = msg;
	for (i = 0; i < 1000; i++)
		p += sprintf(p, "X-F%05zu: v\r\n", i);	/* 13 bytes each */
	p += sprintf(p, "Subject: a");
	for (i = 0; i < 10000; i++)
		p += sprintf(p, "\r\n b");
	p += sprintf(p, "\r\n");
	hdr = (size_t)(p - msg);
	p += sprintf(p, "\r\nX-F00000: in the body\r\n");
	n = (size_t)(p - msg);

	p = exact_copy(msg, n);
	assert_int_equal(msghdr_end(p, n), hdr);
	assert_int_equal(msghdr_has(p, hdr, "x-f00999"), 1);
	assert_int_equal(msghdr_has(p, hdr, "Subject"), 1);
	assert_int_equal(msghdr_has(p, hdr, "X-F01000"), 0);
	assert_int_equal(msghdr_has(p, hdr, "b"), 0);
	free(p);
	free(msg);
}

/*
 * every printable but the colon may be in a name (RFC 5322 3.6.8); a
 * colon there only ends the name "X" early
 */
static void
test_msghdr_name_characters(void **state)
{
	char	 line[8];
	int	 c;

	for (c = 0; c < 256; c++) {
		size_t	 want = c >= 33 && c <= 126 ? 5 : 0;

		line[0] = 'X';
		line[1] = (char)c;
		memcpy(line + 2, ": v", 3);
		if (end_of(line, 5) != want)
			fail_msg("0x%02x in a name: end %zu, want %zu", c,
			    end_of(line, 5), want);
	}
	assert_int_equal(has_in("X:: v", "X"), 1);
	assert_int_equal(has_in("X:: v", "X:"), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_msghdr_end_table),
		cmocka_unit_test(test_msghdr_has_table),
		cmocka_unit_test(test_msghdr_end_within_n),
		cmocka_unit_test(test_msghdr_has_within_hlen),
		cmocka_unit_test(test_msghdr_long_header),
		cmocka_unit_test(test_msghdr_name_characters),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
