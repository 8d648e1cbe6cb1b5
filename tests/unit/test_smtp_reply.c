/*
 * test_smtp_reply.c - reply lines and whole replies, enhanced status
 * codes, EHLO extensions and dot-stuffing.  Most of it is tables; the
 * bounds (lines 64/65, text 4096/4097, status 15/16, SIZE INT64_MAX
 * and one more, a SIZE parameter of 63/64 octets) are built at run
 * time, and every dot-stuffing row is sent in pieces of several sizes
 * and must come out the same each time.
 *
 * Every input is copied into a block of exactly its length first, so
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

#include "smtp_reply.h"

/* error rows leave the expected results out: they are not checked */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#define L(s)		s, sizeof(s) - 1	/* a literal with its NULs */
#define LN(s)		{ s, sizeof(s) - 1 }
#define NLINES		6
#define MAXLINES	64		/* what deliverd allows */
#define SIZE_KEPT	424242		/* *size before; "left alone" */

struct rline {
	const char	*s;		/* NULL ends the list */
	size_t		 len;
};

struct reply_case {
	const char	*what;
	struct rline	 lines[NLINES];
	int		 rc;		/* of the last line; MORE before */
	int		 code;
	const char	*status;
	const char	*text;
};

struct ehlo_case {
	const char	*what;
	const char	*ext;
	size_t		 len;
	unsigned int	 bits;
	uint64_t	 size;
};

struct dot_case {
	const char	*what;
	const char	*body;
	size_t		 len;
	const char	*wire;		/* stuffed, and the end */
	size_t		 wirelen;
};

static char	*exact_copy(const char *, size_t);
static int	 line_of(struct smtp_reply *, const char *, size_t, int);
static unsigned int ehlo_of(const char *, size_t, unsigned int *,
		    uint64_t *);
static char	*stuff_all(const char *, size_t, size_t, size_t *);
static void	 expect_reply(const struct smtp_reply *, int, const char *,
		    const char *);

static const struct reply_case reply_cases[] = {
	/* one line */
	{ "text", { LN("250 ok") }, SMTP_REPLY_DONE, 250, "", "250 ok" },
	{ "greeting", { LN("220 mx.example ESMTP ready") }, SMTP_REPLY_DONE,
	    220, "", "220 mx.example ESMTP ready" },
	{ "bare code", { LN("250") }, SMTP_REPLY_DONE, 250, "", "250" },
	{ "code and SP", { LN("250 ") }, SMTP_REPLY_DONE, 250, "", "250" },
	{ "200", { LN("200 x") }, SMTP_REPLY_DONE, 200, "", "200 x" },
	{ "599", { LN("599 x") }, SMTP_REPLY_DONE, 599, "", "599 x" },
	{ "354", { LN("354 go ahead") }, SMTP_REPLY_DONE, 354, "",
	    "354 go ahead" },
	{ "inner spaces kept", { LN("250 a  b  ") }, SMTP_REPLY_DONE, 250, "",
	    "250 a  b  " },
	{ "SP first in text", { LN("250  a") }, SMTP_REPLY_DONE, 250, "",
	    "250  a" },
	{ "8-bit kept", { LN("250 caf\xc3\xa9") }, SMTP_REPLY_DONE, 250, "",
	    "250 caf\xc3\xa9" },

	/* enhanced status codes */
	{ "status", { LN("250 2.0.0 Ok") }, SMTP_REPLY_DONE, 250, "2.0.0",
	    "250 2.0.0 Ok" },
	{ "status alone", { LN("250 2.0.0") }, SMTP_REPLY_DONE, 250, "2.0.0",
	    "250 2.0.0" },
	{ "status, SPs", { LN("451 4.3.0   try later") }, SMTP_REPLY_DONE,
	    451, "4.3.0", "451 4.3.0 try later" },
	{ "status, TAB", { LN("250 2.0.0\tok") }, SMTP_REPLY_DONE, 250,
	    "2.0.0", "250 2.0.0 ok" },
	{ "status, 5xx", { LN("550 5.1.1 <bob@b.test>: no such user") },
	    SMTP_REPLY_DONE, 550, "5.1.1",
	    "550 5.1.1 <bob@b.test>: no such user" },
	{ "status, long parts", { LN("452 4.123.456 x") }, SMTP_REPLY_DONE,
	    452, "4.123.456", "452 4.123.456 x" },
	{ "status of 15", { LN("250 2.1234567890123 x") }, SMTP_REPLY_DONE,
	    250, "2.1234567890123", "250 2.1234567890123 x" },
	{ "status of 16", { LN("250 2.12345678901234 x") }, SMTP_REPLY_DONE,
	    250, "", "250 2.12345678901234 x" },
	{ "wrong class, 2xx", { LN("250 5.0.0 odd") }, SMTP_REPLY_DONE, 250,
	    "", "250 5.0.0 odd" },
	{ "wrong class, 5xx", { LN("550 4.0.0 odd") }, SMTP_REPLY_DONE, 550,
	    "", "550 4.0.0 odd" },
	{ "wrong class, 3xx", { LN("354 3.0.0 go") }, SMTP_REPLY_DONE, 354,
	    "3.0.0", "354 3.0.0 go" },
	{ "too short", { LN("250 2.0 ok") }, SMTP_REPLY_DONE, 250, "",
	    "250 2.0 ok" },
	{ "no dot second", { LN("250 22.0.0 ok") }, SMTP_REPLY_DONE, 250, "",
	    "250 22.0.0 ok" },
	{ "glued text", { LN("250 2.0.0ok") }, SMTP_REPLY_DONE, 250, "",
	    "250 2.0.0ok" },
	{ "status after SP", { LN("250  2.0.0 ok") }, SMTP_REPLY_DONE, 250,
	    "", "250  2.0.0 ok" },
	{ "status, NUL after", { LN("250 2.0.0\0ok") }, SMTP_REPLY_DONE, 250,
	    "2.0.0", "250 2.0.0 ok" },

	/* several lines */
	{ "two lines", { LN("250-first"), LN("250 second") }, SMTP_REPLY_DONE,
	    250, "", "250 first second" },
	{ "repeated status dropped", { LN("250-2.1.0 first"),
	    LN("250-2.1.0 second"), LN("250 2.1.0 ok") }, SMTP_REPLY_DONE,
	    250, "2.1.0", "250 2.1.0 first second ok" },
	{ "other status kept", { LN("250-2.1.0 a"), LN("250 2.1.5 b") },
	    SMTP_REPLY_DONE, 250, "2.1.0", "250 2.1.0 a 2.1.5 b" },
	{ "prefix of status kept", { LN("250-2.1.00 a"), LN("250 2.1.0 b") },
	    SMTP_REPLY_DONE, 250, "2.1.00", "250 2.1.00 a 2.1.0 b" },
	{ "longer status kept", { LN("250-2.1.0 a"), LN("250 2.1.00 b") },
	    SMTP_REPLY_DONE, 250, "2.1.0", "250 2.1.0 a 2.1.00 b" },
	{ "status on a later line only", { LN("250-a"), LN("250 2.0.0 b") },
	    SMTP_REPLY_DONE, 250, "", "250 a 2.0.0 b" },
	{ "repeated status alone", { LN("250-2.0.0 a"), LN("250 2.0.0") },
	    SMTP_REPLY_DONE, 250, "2.0.0", "250 2.0.0 a" },
	{ "empty first line", { LN("250-"), LN("250 ok") }, SMTP_REPLY_DONE,
	    250, "", "250 ok" },
	{ "empty lines", { LN("250-"), LN("250-"), LN("250") },
	    SMTP_REPLY_DONE, 250, "", "250" },
	{ "bare code last", { LN("250-a"), LN("250") }, SMTP_REPLY_DONE, 250,
	    "", "250 a" },
	{ "EHLO reply", { LN("250-mx.example"), LN("250-PIPELINING"),
	    LN("250-SIZE 10240000"), LN("250 AUTH PLAIN LOGIN") },
	    SMTP_REPLY_DONE, 250, "",
	    "250 mx.example PIPELINING SIZE 10240000 AUTH PLAIN LOGIN" },
	{ "greeting, several", { LN("220-mx.example"), LN("220 no UCE") },
	    SMTP_REPLY_DONE, 220, "", "220 mx.example no UCE" },
	{ "more to come", { LN("250-a") }, SMTP_REPLY_MORE },

	/* control octets count as SP */
	{ "controls", { LN("250 a\rb\0c\x1b[2J\x7f") }, SMTP_REPLY_DONE, 250,
	    "", "250 a b c [2J " },
	{ "LF in text", { LN("250 a\nRCPT TO:<x@y>") }, SMTP_REPLY_DONE, 250,
	    "", "250 a RCPT TO:<x@y>" },
	{ "CR at end", { LN("250 ok\r") }, SMTP_REPLY_DONE, 250, "",
	    "250 ok " },
	{ "controls only", { LN("250 \0\t") }, SMTP_REPLY_DONE, 250, "",
	    "250   " },
	{ "controls, later line", { LN("250-a"), LN("250 \x1b]0;x\x07") },
	    SMTP_REPLY_DONE, 250, "", "250 a  ]0;x " },

	/* malformed lines */
	{ "empty", { LN("") }, SMTP_REPLY_ERR_SYNTAX },
	{ "two digits", { LN("25") }, SMTP_REPLY_ERR_SYNTAX },
	{ "four digits", { LN("2500 x") }, SMTP_REPLY_ERR_SYNTAX },
	{ "letter after code", { LN("250x") }, SMTP_REPLY_ERR_SYNTAX },
	{ "TAB after code", { LN("250\tok") }, SMTP_REPLY_ERR_SYNTAX },
	{ "NUL after code", { LN("250\0ok") }, SMTP_REPLY_ERR_SYNTAX },
	{ "1xx", { LN("150 x") }, SMTP_REPLY_ERR_SYNTAX },
	{ "6xx", { LN("650 x") }, SMTP_REPLY_ERR_SYNTAX },
	{ "0xx", { LN("050 x") }, SMTP_REPLY_ERR_SYNTAX },
	{ "letter second", { LN("2a0 x") }, SMTP_REPLY_ERR_SYNTAX },
	{ "letter third", { LN("25a x") }, SMTP_REPLY_ERR_SYNTAX },
	{ "colon third", { LN("25: x") }, SMTP_REPLY_ERR_SYNTAX },
	{ "SP first", { LN(" 250 x") }, SMTP_REPLY_ERR_SYNTAX },
	{ "NUL first", { LN("\0" "50 x") }, SMTP_REPLY_ERR_SYNTAX },
	{ "8-bit first", { LN("\xb2" "50 x") }, SMTP_REPLY_ERR_SYNTAX },
	{ "dash first", { LN("-250 x") }, SMTP_REPLY_ERR_SYNTAX },
	{ "text only", { LN("hello") }, SMTP_REPLY_ERR_SYNTAX },
	{ "bad later line", { LN("250-a"), LN("xyz") },
	    SMTP_REPLY_ERR_SYNTAX },
	{ "short later line", { LN("250-a"), LN("25") },
	    SMTP_REPLY_ERR_SYNTAX },

	/* the code must stay */
	{ "code changed", { LN("250-a"), LN("251 b") }, SMTP_REPLY_ERR_CODE },
	{ "class changed", { LN("250-a"), LN("550 b") }, SMTP_REPLY_ERR_CODE },
	{ "code changed late", { LN("250-a"), LN("250-b"), LN("252 c") },
	    SMTP_REPLY_ERR_CODE },
};

static const struct ehlo_case ehlo_cases[] = {
	/* keywords without parameters, any case */
	{ "STARTTLS", L("STARTTLS"), SMTP_EXT_STARTTLS, SIZE_KEPT },
	{ "starttls", L("starttls"), SMTP_EXT_STARTTLS, SIZE_KEPT },
	{ "StartTLS", L("StartTLS"), SMTP_EXT_STARTTLS, SIZE_KEPT },
	{ "8BITMIME", L("8BITMIME"), SMTP_EXT_8BITMIME, SIZE_KEPT },
	{ "8bitmime", L("8bitmime"), SMTP_EXT_8BITMIME, SIZE_KEPT },
	{ "SMTPUTF8", L("SMTPUTF8"), SMTP_EXT_SMTPUTF8, SIZE_KEPT },
	{ "smtputf8", L("smtputf8"), SMTP_EXT_SMTPUTF8, SIZE_KEPT },
	{ "DSN", L("DSN"), SMTP_EXT_DSN, SIZE_KEPT },
	{ "dsn", L("dsn"), SMTP_EXT_DSN, SIZE_KEPT },
	{ "PIPELINING", L("PIPELINING"), SMTP_EXT_PIPELINING, SIZE_KEPT },
	{ "Pipelining", L("Pipelining"), SMTP_EXT_PIPELINING, SIZE_KEPT },
	{ "keyword, parameter", L("STARTTLS now"), SMTP_EXT_STARTTLS,
	    SIZE_KEPT },
	{ "keyword, '='", L("8BITMIME=x"), SMTP_EXT_8BITMIME, SIZE_KEPT },
	{ "keyword, TAB", L("PIPELINING\t"), SMTP_EXT_PIPELINING, SIZE_KEPT },
	{ "keyword, NUL", L("DSN\0"), SMTP_EXT_DSN, SIZE_KEPT },
	{ "keyword, CR", L("DSN\r"), SMTP_EXT_DSN, SIZE_KEPT },

	/* not ours */
	{ "empty", L(""), 0, SIZE_KEPT },
	{ "SP first", L(" STARTTLS"), 0, SIZE_KEPT },
	{ "'=' first", L("=STARTTLS"), 0, SIZE_KEPT },
	{ "longer", L("STARTTLSX"), 0, SIZE_KEPT },
	{ "shorter", L("START"), 0, SIZE_KEPT },
	{ "unknown", L("CHUNKING"), 0, SIZE_KEPT },
	{ "ENHANCEDSTATUSCODES", L("ENHANCEDSTATUSCODES"), 0, SIZE_KEPT },
	{ "8-bit", L("ST\xc1RTTLS"), 0, SIZE_KEPT },
	{ "0xff", L("\xff"), 0, SIZE_KEPT },
	{ "long keyword", L("XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX 1"),
	    0, SIZE_KEPT },
	{ "SIZES", L("SIZES 100"), 0, SIZE_KEPT },

	/* SIZE (RFC 1870) */
	{ "SIZE n", L("SIZE 10240000"), SMTP_EXT_SIZE, 10240000 },
	{ "size n", L("size 1"), SMTP_EXT_SIZE, 1 },
	{ "SIZE alone", L("SIZE"), SMTP_EXT_SIZE, SIZE_KEPT },
	{ "SIZE and SP", L("SIZE "), SMTP_EXT_SIZE, SIZE_KEPT },
	{ "SIZE and SPs", L("SIZE   "), SMTP_EXT_SIZE, SIZE_KEPT },
	{ "SIZE 0", L("SIZE 0"), SMTP_EXT_SIZE, 0 },
	{ "SIZE 2^63-1", L("SIZE 9223372036854775807"), SMTP_EXT_SIZE,
	    INT64_MAX },
	{ "SIZE 2^63", L("SIZE 9223372036854775808"), SMTP_EXT_SIZE, 0 },
	{ "SIZE 2^64", L("SIZE 18446744073709551616"), SMTP_EXT_SIZE, 0 },
	{ "SIZE huge", L("SIZE 99999999999999999999999999999"), SMTP_EXT_SIZE,
	    0 },
	{ "SIZE leading zeros", L("SIZE 000000000000000000000000000042"),
	    SMTP_EXT_SIZE, 42 },
	{ "SIZE letters", L("SIZE abc"), SMTP_EXT_SIZE, 0 },
	{ "SIZE digits, letters", L("SIZE 12abc"), SMTP_EXT_SIZE, 0 },
	{ "SIZE hex", L("SIZE 0x10"), SMTP_EXT_SIZE, 0 },
	{ "SIZE negative", L("SIZE -1"), SMTP_EXT_SIZE, 0 },
	{ "SIZE -0", L("SIZE -0"), SMTP_EXT_SIZE, 0 },
	{ "SIZE plus", L("SIZE +100"), SMTP_EXT_SIZE, 100 },
	{ "SIZE sign alone", L("SIZE +"), SMTP_EXT_SIZE, 0 },
	{ "SIZE two signs", L("SIZE +-1"), SMTP_EXT_SIZE, 0 },
	{ "SIZE 8-bit", L("SIZE 1\xff"), SMTP_EXT_SIZE, 0 },
	{ "SIZE, two values", L("SIZE 100 200"), SMTP_EXT_SIZE, 100 },
	{ "SIZE, two SPs", L("SIZE  100"), SMTP_EXT_SIZE, 100 },
	{ "SIZE, TAB", L("SIZE\t100"), SMTP_EXT_SIZE, 100 },
	{ "SIZE, NUL after", L("SIZE 100\0" "9"), SMTP_EXT_SIZE, 100 },
	{ "SIZE=n", L("SIZE=100"), SMTP_EXT_SIZE, 0 },
	{ "SIZE, NUL inside", L("SIZE 1\0" "00"), SMTP_EXT_SIZE, 1 },

	/* AUTH (RFC 4954), and the old AUTH= */
	{ "AUTH PLAIN LOGIN", L("AUTH PLAIN LOGIN"), SMTP_EXT_AUTH_PLAIN |
	    SMTP_EXT_AUTH_LOGIN, SIZE_KEPT },
	{ "AUTH LOGIN", L("AUTH LOGIN"), SMTP_EXT_AUTH_LOGIN, SIZE_KEPT },
	{ "auth plain", L("auth plain"), SMTP_EXT_AUTH_PLAIN, SIZE_KEPT },
	{ "AUTH mixed case", L("Auth Plain lOgIn"), SMTP_EXT_AUTH_PLAIN |
	    SMTP_EXT_AUTH_LOGIN, SIZE_KEPT },
	{ "AUTH=PLAIN LOGIN", L("AUTH=PLAIN LOGIN"), SMTP_EXT_AUTH_PLAIN |
	    SMTP_EXT_AUTH_LOGIN, SIZE_KEPT },
	{ "AUTH=LOGIN", L("AUTH=LOGIN"), SMTP_EXT_AUTH_LOGIN, SIZE_KEPT },
	{ "AUTH others", L("AUTH CRAM-MD5 DIGEST-MD5 GSSAPI"), 0, SIZE_KEPT },
	{ "AUTH others and PLAIN", L("AUTH CRAM-MD5 PLAIN XOAUTH2"),
	    SMTP_EXT_AUTH_PLAIN, SIZE_KEPT },
	{ "AUTH alone", L("AUTH"), 0, SIZE_KEPT },
	{ "AUTH and SP", L("AUTH "), 0, SIZE_KEPT },
	{ "AUTH PLAINX", L("AUTH PLAINX"), 0, SIZE_KEPT },
	{ "AUTH XPLAIN", L("AUTH XPLAIN"), 0, SIZE_KEPT },
	{ "AUTH PLA", L("AUTH PLA"), 0, SIZE_KEPT },
	{ "AUTH, two SPs", L("AUTH  PLAIN"), SMTP_EXT_AUTH_PLAIN, SIZE_KEPT },
	{ "AUTH, '=' inside", L("AUTH PLAIN=LOGIN"), 0, SIZE_KEPT },
	{ "AUTH, '=' runs", L("AUTH ==PLAIN = LOGIN"), SMTP_EXT_AUTH_PLAIN |
	    SMTP_EXT_AUTH_LOGIN, SIZE_KEPT },
	{ "AUTH, TAB", L("AUTH\tLOGIN"), SMTP_EXT_AUTH_LOGIN, SIZE_KEPT },
	{ "AUTH, NUL between", L("AUTH PLAIN\0LOGIN"), SMTP_EXT_AUTH_PLAIN |
	    SMTP_EXT_AUTH_LOGIN, SIZE_KEPT },
	{ "AUTHPLAIN", L("AUTHPLAIN"), 0, SIZE_KEPT },
	{ "AUTH, 8-bit", L("AUTH PL\xc1IN"), 0, SIZE_KEPT },
};

static const struct dot_case dot_cases[] = {
	{ "empty", L(""), L(".\r\n") },
	{ "one line", L("a\r\n"), L("a\r\n.\r\n") },
	{ "no final newline", L("a"), L("a\r\n.\r\n") },
	{ "final CR only", L("a\r"), L("a\r\r\n.\r\n") },
	{ "final bare LF", L("a\n"), L("a\n.\r\n") },
	{ "dot at 0", L(".\r\n"), L("..\r\n.\r\n") },
	{ "dot alone, no newline", L("."), L("..\r\n.\r\n") },
	{ "dot at 0, text", L(".a\r\n"), L("..a\r\n.\r\n") },
	{ "two dots at 0", L("..\r\n"), L("...\r\n.\r\n") },
	{ "dot line inside", L("a\r\n.\r\nb\r\n"), L("a\r\n..\r\nb\r\n.\r\n") },
	{ "dot lines in a row", L(".\r\n.\r\n.\r\n"),
	    L("..\r\n..\r\n..\r\n.\r\n") },
	{ "dot last, no newline", L("a\r\n."), L("a\r\n..\r\n.\r\n") },
	{ "dot inside a line", L("a.b\r\n"), L("a.b\r\n.\r\n") },
	{ "dot at line end", L("a.\r\n"), L("a.\r\n.\r\n") },
	{ "dot after CR only", L("a\r.b"), L("a\r.b\r\n.\r\n") },
	{ "dot after bare LF", L("a\n.b\n"), L("a\n..b\n.\r\n") },
	{ "LFs and dots", L("\n.\n.\n"), L("\n..\n..\n.\r\n") },
	{ "empty lines", L("\r\n\r\n.\r\n"), L("\r\n\r\n..\r\n.\r\n") },
	{ "NUL kept", L("\0.\r\n.\0"), L("\0.\r\n..\0\r\n.\r\n") },
	{ "8-bit kept", L(".\xff\r\n"), L("..\xff\r\n.\r\n") },
	{ "smuggling attempt", L("a\r\n.\r\nMAIL FROM:<x@y>\r\n"),
	    L("a\r\n..\r\nMAIL FROM:<x@y>\r\n.\r\n") },
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

/* line_of - smtp_reply_line() on an exact copy, then the invariants */
static int
line_of(struct smtp_reply *r, const char *line, size_t len, int maxlines)
{
	char	*q = exact_copy(line, len);
	size_t	 i;
	int	 rc;

	rc = smtp_reply_line(r, q, len, maxlines);
	free(q);
	if (rc != SMTP_REPLY_MORE && rc != SMTP_REPLY_DONE)
		return rc;
	assert_true(r->len <= SMTP_REPLY_TEXT_MAX);
	assert_int_equal(r->text[r->len], '\0');
	assert_int_equal(strlen(r->text), r->len);
	for (i = 0; i < r->len; i++)
		if ((unsigned char)r->text[i] < 0x20 || r->text[i] == 0x7f)
			fail_msg("control octet %#x at %zu", r->text[i], i);
	assert_int_equal(memcmp(r->text, line, 3), 0);
	assert_true(strlen(r->status) < sizeof(r->status));
	return rc;
}

static unsigned int
ehlo_of(const char *ext, size_t len, unsigned int *caps, uint64_t *size)
{
	char		*q = exact_copy(ext, len);
	unsigned int	 bits;

	bits = smtp_reply_ehlo(q, len, caps, size);
	free(q);
	return bits;
}

/* expect_reply - a complete reply of this code, status and text */
static void
expect_reply(const struct smtp_reply *r, int code, const char *status,
    const char *text)
{
	assert_int_equal(r->code, code);
	assert_string_equal(r->status, status);
	assert_string_equal(r->text, text);
	assert_int_equal(r->len, strlen(text));
}

static void
test_smtp_reply_table(void **state)
{
	const struct reply_case	*c;
	struct smtp_reply	 r;
	size_t			 i, k;
	int			 rc, want;

	for (i = 0; i < sizeof(reply_cases) / sizeof(reply_cases[0]); i++) {
		c = &reply_cases[i];
		smtp_reply_init(&r);
		for (k = 0; k < NLINES && c->lines[k].s != NULL; k++) {
			want = k + 1 < NLINES && c->lines[k + 1].s != NULL ?
			    SMTP_REPLY_MORE : c->rc;
			rc = line_of(&r, c->lines[k].s, c->lines[k].len,
			    MAXLINES);
			if (rc != want)
				fail_msg("%s: line %zu: %d (%s), want %d (%s)",
				    c->what, k + 1, rc,
				    smtp_reply_strerror(rc), want,
				    smtp_reply_strerror(want));
		}
		if (c->rc != SMTP_REPLY_DONE)
			continue;
		if (r.code != c->code || strcmp(r.status, c->status) != 0 ||
		    strcmp(r.text, c->text) != 0 || r.len != strlen(c->text))
			fail_msg("%s: %d \"%s\" \"%s\"", c->what, r.code,
			    r.status, r.text);
		if (r.nlines != (int)k || !r.done)
			fail_msg("%s: nlines %d done %d", c->what, r.nlines,
			    r.done);
	}
}

/* test_smtp_reply_lines - at most maxlines lines, the last included */
static void
test_smtp_reply_lines(void **state)
{
	struct smtp_reply	 r;
	int			 k;

	smtp_reply_init(&r);
	for (k = 1; k < MAXLINES; k++)
		assert_int_equal(line_of(&r, L("250-x"), MAXLINES),
		    SMTP_REPLY_MORE);
	assert_int_equal(line_of(&r, L("250 ok"), MAXLINES), SMTP_REPLY_DONE);
	assert_int_equal(r.nlines, MAXLINES);

	smtp_reply_init(&r);
	for (k = 1; k <= MAXLINES; k++)
		assert_int_equal(line_of(&r, L("250-x"), MAXLINES),
		    SMTP_REPLY_MORE);
	assert_int_equal(line_of(&r, L("250 ok"), MAXLINES),
	    SMTP_REPLY_ERR_LINES);

	/* the count goes first: a bad code on line 65 is still too many */
	smtp_reply_init(&r);
	for (k = 1; k <= MAXLINES; k++)
		assert_int_equal(line_of(&r, L("250-x"), MAXLINES),
		    SMTP_REPLY_MORE);
	assert_int_equal(line_of(&r, L("251 ok"), MAXLINES),
	    SMTP_REPLY_ERR_CODE);

	smtp_reply_init(&r);
	assert_int_equal(line_of(&r, L("250 ok"), 1), SMTP_REPLY_DONE);
	assert_int_equal(line_of(&r, L("250-a"), 1), SMTP_REPLY_MORE);
	assert_int_equal(line_of(&r, L("250 b"), 1), SMTP_REPLY_ERR_LINES);
	assert_int_equal(line_of(&r, L("250 ok"), 0), SMTP_REPLY_ERR_LINES);
	assert_int_equal(line_of(&r, L("250 ok"), -1), SMTP_REPLY_ERR_LINES);
}

/* test_smtp_reply_text_bound - 4096 octets of text, whole lines only */
static void
test_smtp_reply_text_bound(void **state)
{
	struct smtp_reply	 r;
	char			 line[SMTP_REPLY_TEXT_MAX + 16];
	char			 want[SMTP_REPLY_TEXT_MAX + 1];
	size_t			 n;

	/* "250 " and 4092 more is exactly the room */
	memcpy(line, "250 ", 4);
	memset(line + 4, 'x', SMTP_REPLY_TEXT_MAX - 4);
	smtp_reply_init(&r);
	assert_int_equal(line_of(&r, line, SMTP_REPLY_TEXT_MAX, MAXLINES),
	    SMTP_REPLY_DONE);
	assert_int_equal(r.len, SMTP_REPLY_TEXT_MAX);
	assert_int_equal(memcmp(r.text, line, SMTP_REPLY_TEXT_MAX), 0);

	/* one more and the line is left out whole */
	line[SMTP_REPLY_TEXT_MAX] = 'x';
	assert_int_equal(line_of(&r, line, SMTP_REPLY_TEXT_MAX + 1, MAXLINES),
	    SMTP_REPLY_DONE);
	expect_reply(&r, 250, "", "250");

	/* with a status: the room is what the status leaves */
	memcpy(line, "250 2.0.0 ", 10);
	n = SMTP_REPLY_TEXT_MAX - 10;
	memset(line + 10, 'y', n);
	assert_int_equal(line_of(&r, line, 10 + n, MAXLINES),
	    SMTP_REPLY_DONE);
	assert_int_equal(r.len, SMTP_REPLY_TEXT_MAX);
	assert_string_equal(r.status, "2.0.0");
	assert_int_equal(line_of(&r, line, 10 + n + 1, MAXLINES),
	    SMTP_REPLY_DONE);
	expect_reply(&r, 250, "2.0.0", "250 2.0.0");

	/* a full text takes no more, not even one octet */
	memcpy(line, "250-", 4);
	memset(line + 4, 'x', SMTP_REPLY_TEXT_MAX - 4);
	assert_int_equal(line_of(&r, line, SMTP_REPLY_TEXT_MAX, MAXLINES),
	    SMTP_REPLY_MORE);
	assert_int_equal(line_of(&r, L("250 y"), MAXLINES), SMTP_REPLY_DONE);
	assert_int_equal(r.len, SMTP_REPLY_TEXT_MAX);
	assert_int_equal(r.text[SMTP_REPLY_TEXT_MAX - 1], 'x');

	/* a line that fits, one that no longer does, a short one that does */
	memset(line + 4, 'b', 4000);
	assert_int_equal(line_of(&r, L("250-aaa"), MAXLINES), SMTP_REPLY_MORE);
	assert_int_equal(line_of(&r, line, 4004, MAXLINES), SMTP_REPLY_MORE);
	assert_int_equal(line_of(&r, line, 4004, MAXLINES), SMTP_REPLY_MORE);
	assert_int_equal(line_of(&r, L("250 c"), MAXLINES), SMTP_REPLY_DONE);
	snprintf(want, sizeof(want), "250 aaa %.4000s c", line + 4);
	expect_reply(&r, 250, "", want);
	assert_int_equal(r.nlines, 4);

	/* exactly the room on a later line */
	smtp_reply_init(&r);
	assert_int_equal(line_of(&r, L("250-a"), MAXLINES), SMTP_REPLY_MORE);
	n = SMTP_REPLY_TEXT_MAX - 5 - 1;
	memcpy(line, "250 ", 4);
	memset(line + 4, 'z', n);
	assert_int_equal(line_of(&r, line, 4 + n, MAXLINES), SMTP_REPLY_DONE);
	assert_int_equal(r.len, SMTP_REPLY_TEXT_MAX);
	smtp_reply_init(&r);
	assert_int_equal(line_of(&r, L("250-a"), MAXLINES), SMTP_REPLY_MORE);
	assert_int_equal(line_of(&r, line, 4 + n + 1, MAXLINES),
	    SMTP_REPLY_DONE);
	expect_reply(&r, 250, "", "250 a");
}

/* test_smtp_reply_long_line - no bound of its own on a line */
static void
test_smtp_reply_long_line(void **state)
{
	struct smtp_reply	 r;
	size_t			 n = 1 << 20;
	char			*line;

	if ((line = malloc(n)) == NULL)
		fail_msg("malloc");
	memset(line, '\x01', n);
	memcpy(line, "554 5.7.1 ", 10);
	smtp_reply_init(&r);
	assert_int_equal(line_of(&r, line, n, MAXLINES), SMTP_REPLY_DONE);
	expect_reply(&r, 554, "5.7.1", "554 5.7.1");
	free(line);
}

/* test_smtp_reply_restart - what starts a new reply, what r keeps */
static void
test_smtp_reply_restart(void **state)
{
	struct smtp_reply	 r, copy;

	memset(&r, 0, sizeof(r));
	assert_int_equal(line_of(&r, L("220-a"), MAXLINES), SMTP_REPLY_MORE);
	assert_int_equal(r.nlines, 1);
	assert_int_equal(line_of(&r, L("220 2.0.0 b"), MAXLINES),
	    SMTP_REPLY_DONE);
	expect_reply(&r, 220, "", "220 a 2.0.0 b");
	assert_int_equal(r.nlines, 2);

	/* after a complete reply, any code starts the next */
	copy = r;
	assert_int_equal(line_of(&r, L("550-5.1.1 no"), MAXLINES),
	    SMTP_REPLY_MORE);
	assert_int_equal(r.nlines, 1);
	assert_int_equal(line_of(&r, L("550 5.1.1 such user"), MAXLINES),
	    SMTP_REPLY_DONE);
	expect_reply(&r, 550, "5.1.1", "550 5.1.1 no such user");
	expect_reply(&copy, 220, "", "220 a 2.0.0 b");

	/* after an error too */
	assert_int_equal(line_of(&r, L("250-a"), MAXLINES), SMTP_REPLY_MORE);
	assert_int_equal(line_of(&r, L("251 b"), MAXLINES),
	    SMTP_REPLY_ERR_CODE);
	assert_int_equal(line_of(&r, L("251 b"), MAXLINES), SMTP_REPLY_DONE);
	expect_reply(&r, 251, "", "251 b");
	assert_int_equal(line_of(&r, L("250-a"), MAXLINES), SMTP_REPLY_MORE);
	assert_int_equal(line_of(&r, L("x"), MAXLINES),
	    SMTP_REPLY_ERR_SYNTAX);
	assert_int_equal(line_of(&r, L("354 go"), MAXLINES), SMTP_REPLY_DONE);
	expect_reply(&r, 354, "", "354 go");

	/* init in the middle of a reply forgets it */
	assert_int_equal(line_of(&r, L("250-a"), MAXLINES), SMTP_REPLY_MORE);
	smtp_reply_init(&r);
	assert_int_equal(r.nlines, 0);
	assert_int_equal(line_of(&r, L("221 bye"), MAXLINES), SMTP_REPLY_DONE);
	expect_reply(&r, 221, "", "221 bye");
}

/* test_smtp_reply_status_bound - 15 octets of status, then none */
static void
test_smtp_reply_status_bound(void **state)
{
	struct smtp_reply	 r;
	char			 line[64], status[SMTP_REPLY_STATUS_MAX + 1];
	size_t			 n;

	for (n = 5; n <= SMTP_REPLY_STATUS_MAX; n++) {
		memset(status, '1', n);
		status[0] = '4';
		status[1] = '.';
		status[n] = '\0';
		snprintf(line, sizeof(line), "421 %s bye", status);
		smtp_reply_init(&r);
		assert_int_equal(line_of(&r, line, strlen(line), MAXLINES),
		    SMTP_REPLY_DONE);
		if (n < SMTP_REPLY_STATUS_MAX)
			assert_string_equal(r.status, status);
		else
			assert_string_equal(r.status, "");
		assert_string_equal(r.text, line);
	}
}

static void
test_smtp_reply_strerror(void **state)
{
	int	 rc;

	for (rc = 0; rc < SMTP_REPLY_RC_MAX; rc++) {
		assert_non_null(smtp_reply_strerror(rc));
		assert_string_not_equal(smtp_reply_strerror(rc),
		    "unknown error");
	}
	assert_string_equal(smtp_reply_strerror(-1), "unknown error");
	assert_string_equal(smtp_reply_strerror(SMTP_REPLY_RC_MAX),
	    "unknown error");
}

static void
test_smtp_reply_ehlo_table(void **state)
{
	const struct ehlo_case	*c;
	unsigned int		 caps, bits;
	uint64_t		 size;
	size_t			 i;

	for (i = 0; i < sizeof(ehlo_cases) / sizeof(ehlo_cases[0]); i++) {
		c = &ehlo_cases[i];
		caps = 0;
		size = SIZE_KEPT;
		bits = ehlo_of(c->ext, c->len, &caps, &size);
		if (bits != c->bits || caps != c->bits || size != c->size)
			fail_msg("%s: bits %#x caps %#x size %llu, want %#x "
			    "%llu", c->what, bits, caps,
			    (unsigned long long)size, c->bits,
			    (unsigned long long)c->size);
	}
}

/* test_smtp_reply_ehlo_size_arg - a SIZE parameter of 63 or 64 octets */
static void
test_smtp_reply_ehlo_size_arg(void **state)
{
	char		 ext[5 + SMTP_REPLY_SIZE_ARG + 1];
	unsigned int	 caps = 0;
	uint64_t	 size;
	size_t		 n;

	memcpy(ext, "SIZE ", 5);
	n = SMTP_REPLY_SIZE_ARG - 1;
	memset(ext + 5, '0', n);
	memcpy(ext + 5 + n - 3, "100", 3);
	size = SIZE_KEPT;
	assert_int_equal(ehlo_of(ext, 5 + n, &caps, &size), SMTP_EXT_SIZE);
	assert_int_equal(size, 100);

	/* one octet more: no value read, *size as it was */
	memset(ext + 5, '0', n + 1);
	memcpy(ext + 5 + n - 2, "100", 3);
	size = SIZE_KEPT;
	assert_int_equal(ehlo_of(ext, 5 + n + 1, &caps, &size),
	    SMTP_EXT_SIZE);
	assert_int_equal(size, SIZE_KEPT);
}

/* test_smtp_reply_ehlo_reply - a whole EHLO reply, as deliverd reads it */
static void
test_smtp_reply_ehlo_reply(void **state)
{
	static const char *const lines[] = {
		"250-mx.example Hello",
		"250-size 35882577",
		"250-8BITMIME",
		"250-AUTH=LOGIN",
		"250-AUTH CRAM-MD5 PLAIN",
		"250-ENHANCEDSTATUSCODES",
		"250-pipelining",
		"250-dsn",
		"250-SMTPUTF8",
		"250 STARTTLS",
	};
	struct smtp_reply	 r;
	unsigned int		 caps = 0;
	uint64_t		 size = 0;
	size_t			 i, n;
	int			 rc = -1;

	smtp_reply_init(&r);
	for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		n = strlen(lines[i]);
		rc = line_of(&r, lines[i], n, MAXLINES);
		assert_true(rc == SMTP_REPLY_MORE || rc == SMTP_REPLY_DONE);
		/* the first line is the server's name, whatever it says */
		if (r.nlines > 1)
			ehlo_of(lines[i] + 4, n - 4, &caps, &size);
	}
	assert_int_equal(rc, SMTP_REPLY_DONE);
	assert_int_equal(caps, SMTP_EXT_STARTTLS | SMTP_EXT_SIZE |
	    SMTP_EXT_8BITMIME | SMTP_EXT_SMTPUTF8 | SMTP_EXT_DSN |
	    SMTP_EXT_PIPELINING | SMTP_EXT_AUTH_PLAIN | SMTP_EXT_AUTH_LOGIN);
	assert_int_equal(size, 35882577);
}

/*
 * stuff_all - the body as smtpc_body() sends it, in pieces of at most
 * max, and the end; checks each piece on the way
 */
static char *
stuff_all(const char *body, size_t len, size_t max, size_t *outlen)
{
	const char	*end;
	char		*out, *b = exact_copy(body, len);
	size_t		 off = 0, n, o = 0, en;
	int		 stuff;

	/* at worst every octet is a dot on a line of its own */
	if ((out = malloc(2 * len + 5)) == NULL)
		fail_msg("malloc");
	while (off < len) {
		n = smtp_reply_dot_span(b, len, off, max, &stuff);
		if (n == 0 || n > max || n > len - off)
			fail_msg("piece of %zu at %zu, max %zu", n, off, max);
		/* nothing but the first octet may start a line with a dot */
		if (memmem(b + off, n, "\n.", 2) != NULL)
			fail_msg("leading dot inside a piece at %zu", off);
		if (stuff)
			out[o++] = '.';
		memcpy(out + o, b + off, n);
		o += n;
		off += n;
	}
	assert_int_equal(smtp_reply_dot_span(b, len, len, max, &stuff), 0);
	assert_int_equal(stuff, 0);
	end = smtp_reply_dot_end(b, len, &en);
	assert_int_equal(strlen(end), en);
	memcpy(out + o, end, en);
	*outlen = o + en;
	free(b);
	return out;
}

static void
test_smtp_reply_dot_table(void **state)
{
	static const size_t	 maxes[] = { 1, 2, 3, 7, 64 * 1024 };
	const struct dot_case	*c;
	char			*out;
	size_t			 i, m, n;

	for (i = 0; i < sizeof(dot_cases) / sizeof(dot_cases[0]); i++) {
		c = &dot_cases[i];
		for (m = 0; m < sizeof(maxes) / sizeof(maxes[0]); m++) {
			out = stuff_all(c->body, c->len, maxes[m], &n);
			if (n != c->wirelen || memcmp(out, c->wire, n) != 0)
				fail_msg("%s: pieces of %zu: %zu octets",
				    c->what, maxes[m], n);
			free(out);
		}
	}
}

/* test_smtp_reply_dot_span - where pieces end, and the edge cases */
static void
test_smtp_reply_dot_span(void **state)
{
	const char	*b = "ab\r\n.cd\r\n";
	size_t		 len = strlen(b), n;
	int		 stuff;

	/* up to and including the LF before the dot */
	assert_int_equal(smtp_reply_dot_span(b, len, 0, 1000, &stuff), 4);
	assert_int_equal(stuff, 0);
	assert_int_equal(smtp_reply_dot_span(b, len, 4, 1000, &stuff), 5);
	assert_int_equal(stuff, 1);
	/* resumed in the middle of a line: no dot is owed */
	assert_int_equal(smtp_reply_dot_span(b, len, 5, 1000, &stuff), 4);
	assert_int_equal(stuff, 0);
	/* "\n" ends one piece and "." starts the next */
	assert_int_equal(smtp_reply_dot_span(b, len, 0, 4, &stuff), 4);
	assert_int_equal(smtp_reply_dot_span(b, len, 4, 1, &stuff), 1);
	assert_int_equal(stuff, 1);
	assert_int_equal(smtp_reply_dot_span(b, len, 3, 2, &stuff), 1);
	assert_int_equal(stuff, 0);
	/* nothing left, or no room */
	assert_int_equal(smtp_reply_dot_span(b, len, len, 1000, &stuff), 0);
	assert_int_equal(smtp_reply_dot_span(b, len, len + 5, 1000, &stuff),
	    0);
	assert_int_equal(smtp_reply_dot_span(b, len, 0, 0, &stuff), 0);
	assert_int_equal(stuff, 0);
	assert_int_equal(smtp_reply_dot_span(b, 0, 0, 1000, &stuff), 0);
	/* a max larger than what is left, near SIZE_MAX */
	n = smtp_reply_dot_span(b, len, 5, SIZE_MAX, &stuff);
	assert_int_equal(n, 4);
}

/* test_smtp_reply_dot_large - pieces as large as allowed when dots are rare */
static void
test_smtp_reply_dot_large(void **state)
{
	size_t	 len = 1 << 20, max = 64 * 1024, off, n, pieces = 0, i;
	char	*b;
	int	 stuff;

	if ((b = malloc(len)) == NULL)
		fail_msg("malloc");
	for (i = 0; i < len; i++)
		b[i] = i % 100 == 98 ? '\r' : i % 100 == 99 ? '\n' : 'x';
	for (off = 0; off < len; off += n, pieces++) {
		n = smtp_reply_dot_span(b, len, off, max, &stuff);
		assert_int_equal(n, len - off < max ? len - off : max);
		assert_int_equal(stuff, 0);
	}
	assert_int_equal(pieces, len / max);

	/* a dot line every 1000 octets: a piece per line */
	for (i = 0; i < len; i += 1000)
		b[i] = '.';
	b[0] = 'x';
	pieces = 0;
	for (off = 0; off < len; off += n, pieces++) {
		n = smtp_reply_dot_span(b, len, off, max, &stuff);
		assert_int_equal(stuff, off > 0 && off % 1000 == 0);
	}
	assert_int_equal(pieces, (len + 999) / 1000);
	free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_smtp_reply_table),
		cmocka_unit_test(test_smtp_reply_lines),
		cmocka_unit_test(test_smtp_reply_text_bound),
		cmocka_unit_test(test_smtp_reply_long_line),
		cmocka_unit_test(test_smtp_reply_restart),
		cmocka_unit_test(test_smtp_reply_status_bound),
		cmocka_unit_test(test_smtp_reply_strerror),
		cmocka_unit_test(test_smtp_reply_ehlo_table),
		cmocka_unit_test(test_smtp_reply_ehlo_size_arg),
		cmocka_unit_test(test_smtp_reply_ehlo_reply),
		cmocka_unit_test(test_smtp_reply_dot_table),
		cmocka_unit_test(test_smtp_reply_dot_span),
		cmocka_unit_test(test_smtp_reply_dot_large),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
