/*
 * test_smtp_parse.c - command lines, paths, ESMTP parameters, xtext,
 * AUTH PLAIN / LOGIN decoding, --sender patterns and the reply each
 * error maps to.  Most of it is tables; the limits (line 510/511,
 * local part 64/65, label 63/64, domain 255/256, ENVID 100/101, ORCPT
 * 500/501) are built at run time, and UTF-8 is checked against an
 * independent decoder for every two- and three-octet sequence.
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
#include <sodium.h>

#include "smtp_parse.h"

/* error rows leave the expected results out: they are zero */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#define L(s)	s, sizeof(s) - 1	/* a literal with its NULs */

struct cmd_case {
	const char	*what;
	const char	*line;
	size_t		 len;
	int		 err;
	enum smtp_verb	 verb;
	const char	*arg;		/* NULL: cmd.arg must be NULL */
};

struct path_case {
	const char	*what;
	enum smtp_verb	 verb;
	const char	*in;
	size_t		 len;
	int		 utf8;
	int		 err;
	const char	*addr;
	size_t		 at;
	unsigned int	 flags;
	size_t		 used;
};

struct param_case {
	const char	*what;
	enum smtp_verb	 verb;
	const char	*in;
	int		 err;
	unsigned int	 seen;
	uint64_t	 size;
	int		 body;
	int		 ret;
	unsigned int	 notify;
	const char	*envid;
	const char	*auth;
	const char	*orcpt_type;
	const char	*orcpt;
};

struct args_case {
	const char	*what;
	const char	*line;
	int		 utf8;
	int		 err;
	const char	*addr;
	unsigned int	 seen;
};

struct xtext_case {
	const char	*in;
	int		 err;
	const char	*out;
	size_t		 outlen;
};

struct b64_case {
	const char	*what;
	const char	*in;
	int		 err;
	const char	*out;
};

struct plain_case {
	const char	*what;
	const char	*raw;		/* encoded by the test; NULL: use b64 */
	size_t		 rawlen;
	const char	*b64;
	int		 err;
	const char	*authzid;
	const char	*login;
	const char	*password;
};

struct sender_case {
	const char	*patterns;
	const char	*address;
	int		 allowed;
};

struct reply_case {
	int		 err;
	enum smtp_verb	 verb;
	int		 code;
	const char	*enhanced;
};

static char	*exact_copy(const char *, size_t);
static int	 cmd_of(const char *, size_t, struct smtp_cmd *);
static int	 path_of(enum smtp_verb, const char *, size_t, int,
		    struct smtp_path *, size_t *);
static int	 params_of(enum smtp_verb, const char *,
		    struct smtp_params *);
static void	 check_raw(const char *, const char *, const char *, size_t);
static size_t	 make_domain(char *, size_t);
static int	 ref_utf8(const unsigned char *, size_t);
static void	 check_utf8_seq(const unsigned char *, size_t);

static const struct cmd_case cmd_cases[] = {
	/* verbs, any case */
	{ "EHLO", L("EHLO client.example"), 0, SMTP_CMD_EHLO,
	    "client.example" },
	{ "ehlo", L("ehlo client.example"), 0, SMTP_CMD_EHLO,
	    "client.example" },
	{ "eHlO", L("eHlO x"), 0, SMTP_CMD_EHLO, "x" },
	{ "HELO", L("HELO x"), 0, SMTP_CMD_HELO, "x" },
	{ "EHLO, spaces", L("EHLO   x  "), 0, SMTP_CMD_EHLO, "x" },
	{ "EHLO, two words", L("EHLO a b"), 0, SMTP_CMD_EHLO, "a b" },
	{ "EHLO alone", L("EHLO"), SMTP_ERR_ARG_MISSING, SMTP_CMD_EHLO, NULL },
	{ "EHLO and SP", L("EHLO "), SMTP_ERR_ARG_MISSING, SMTP_CMD_EHLO,
	    NULL },
	{ "HELO alone", L("HELO"), SMTP_ERR_ARG_MISSING, SMTP_CMD_HELO, NULL },

	/* MAIL FROM: and RCPT TO: */
	{ "MAIL", L("MAIL FROM:<a@b>"), 0, SMTP_CMD_MAIL, "<a@b>" },
	{ "mail", L("mail from:<a@b>"), 0, SMTP_CMD_MAIL, "<a@b>" },
	{ "MAIL, mixed case", L("MaIl FrOm:<a@b>"), 0, SMTP_CMD_MAIL, "<a@b>" },
	{ "MAIL, SP after colon", L("MAIL FROM: <a@b>"), 0, SMTP_CMD_MAIL,
	    "<a@b>" },
	{ "MAIL, two SP after colon", L("MAIL FROM:  <a@b>"), 0,
	    SMTP_CMD_MAIL, "<a@b>" },
	{ "MAIL, two SP after verb", L("MAIL  FROM:<a@b>"), 0, SMTP_CMD_MAIL,
	    "<a@b>" },
	{ "MAIL, trailing SP", L("MAIL FROM:<a@b>  "), 0, SMTP_CMD_MAIL,
	    "<a@b>" },
	{ "MAIL, params", L("MAIL FROM:<a@b> SIZE=10"), 0, SMTP_CMD_MAIL,
	    "<a@b> SIZE=10" },
	{ "MAIL, null", L("MAIL FROM:<>"), 0, SMTP_CMD_MAIL, "<>" },
	{ "MAIL, 8-bit left to the path", L("MAIL FROM:<\xc3\xa9@b>"), 0,
	    SMTP_CMD_MAIL, "<\xc3\xa9@b>" },
	{ "MAIL, no path", L("MAIL FROM:"), SMTP_ERR_ARG_SYNTAX, SMTP_CMD_MAIL,
	    NULL },
	{ "MAIL, SP only", L("MAIL FROM: "), SMTP_ERR_ARG_SYNTAX,
	    SMTP_CMD_MAIL, NULL },
	{ "MAIL alone", L("MAIL"), SMTP_ERR_ARG_MISSING, SMTP_CMD_MAIL, NULL },
	{ "MAIL TO:", L("MAIL TO:<a@b>"), SMTP_ERR_ARG_SYNTAX, SMTP_CMD_MAIL,
	    NULL },
	{ "MAIL, no colon", L("MAIL FROM <a@b>"), SMTP_ERR_ARG_SYNTAX,
	    SMTP_CMD_MAIL, NULL },
	{ "MAIL, SP before colon", L("MAIL FROM :<a@b>"), SMTP_ERR_ARG_SYNTAX,
	    SMTP_CMD_MAIL, NULL },
	{ "MAIL FRO:", L("MAIL FRO:<a@b>"), SMTP_ERR_ARG_SYNTAX, SMTP_CMD_MAIL,
	    NULL },
	{ "MAILFROM:", L("MAILFROM:<a@b>"), SMTP_ERR_UNKNOWN, SMTP_CMD_UNKNOWN,
	    NULL },
	{ "MAIL, TAB", L("MAIL FROM:<a@b>\tSIZE=1"), SMTP_ERR_CTRL,
	    SMTP_CMD_MAIL, NULL },
	{ "RCPT", L("RCPT TO:<a@b>"), 0, SMTP_CMD_RCPT, "<a@b>" },
	{ "rcpt", L("rcpt to:<a@b>"), 0, SMTP_CMD_RCPT, "<a@b>" },
	{ "RCPT, SP after colon", L("RCPT TO: <a@b>"), 0, SMTP_CMD_RCPT,
	    "<a@b>" },
	{ "RCPT FROM:", L("RCPT FROM:<a@b>"), SMTP_ERR_ARG_SYNTAX,
	    SMTP_CMD_RCPT, NULL },
	{ "RCPT, no path", L("RCPT TO:"), SMTP_ERR_ARG_SYNTAX, SMTP_CMD_RCPT,
	    NULL },
	{ "RCPT, TAB at end", L("RCPT TO:<a@b>\t"), SMTP_ERR_CTRL,
	    SMTP_CMD_RCPT, NULL },

	/* no argument */
	{ "DATA", L("DATA"), 0, SMTP_CMD_DATA, NULL },
	{ "data", L("data"), 0, SMTP_CMD_DATA, NULL },
	{ "DATA and SP", L("DATA "), 0, SMTP_CMD_DATA, NULL },
	{ "DATA x", L("DATA x"), SMTP_ERR_ARG_EXTRA, SMTP_CMD_DATA, NULL },
	{ "RSET", L("RSET"), 0, SMTP_CMD_RSET, NULL },
	{ "RSET x", L("RSET x"), SMTP_ERR_ARG_EXTRA, SMTP_CMD_RSET, NULL },
	{ "QUIT", L("QUIT"), 0, SMTP_CMD_QUIT, NULL },
	{ "QUIT now", L("QUIT now"), SMTP_ERR_ARG_EXTRA, SMTP_CMD_QUIT, NULL },
	{ "STARTTLS", L("STARTTLS"), 0, SMTP_CMD_STARTTLS, NULL },
	{ "starttls", L("starttls"), 0, SMTP_CMD_STARTTLS, NULL },
	{ "STARTTLS x", L("STARTTLS x"), SMTP_ERR_ARG_EXTRA,
	    SMTP_CMD_STARTTLS, NULL },

	/* optional argument */
	{ "NOOP", L("NOOP"), 0, SMTP_CMD_NOOP, NULL },
	{ "NOOP text", L("NOOP hello there"), 0, SMTP_CMD_NOOP,
	    "hello there" },
	{ "HELP", L("HELP"), 0, SMTP_CMD_HELP, NULL },
	{ "HELP MAIL", L("HELP MAIL"), 0, SMTP_CMD_HELP, "MAIL" },

	/* required argument */
	{ "VRFY", L("VRFY user"), 0, SMTP_CMD_VRFY, "user" },
	{ "VRFY alone", L("VRFY"), SMTP_ERR_ARG_MISSING, SMTP_CMD_VRFY, NULL },
	{ "EXPN", L("EXPN list"), 0, SMTP_CMD_EXPN, "list" },
	{ "EXPN alone", L("EXPN"), SMTP_ERR_ARG_MISSING, SMTP_CMD_EXPN, NULL },

	/* BDAT chunk-size [LAST] */
	{ "BDAT", L("BDAT 100"), 0, SMTP_CMD_BDAT, "100" },
	{ "BDAT LAST", L("BDAT 100 LAST"), 0, SMTP_CMD_BDAT, "100 LAST" },
	{ "bdat last", L("bdat 0 last"), 0, SMTP_CMD_BDAT, "0 last" },
	{ "BDAT, two SP", L("BDAT 7  LAST"), 0, SMTP_CMD_BDAT, "7  LAST" },
	{ "BDAT 2^64-1", L("BDAT 18446744073709551615"), 0, SMTP_CMD_BDAT,
	    "18446744073709551615" },
	{ "BDAT 2^64", L("BDAT 18446744073709551616"), SMTP_ERR_ARG_SYNTAX,
	    SMTP_CMD_BDAT, NULL },
	{ "BDAT alone", L("BDAT"), SMTP_ERR_ARG_MISSING, SMTP_CMD_BDAT, NULL },
	{ "BDAT x", L("BDAT x"), SMTP_ERR_ARG_SYNTAX, SMTP_CMD_BDAT, NULL },
	{ "BDAT -1", L("BDAT -1"), SMTP_ERR_ARG_SYNTAX, SMTP_CMD_BDAT, NULL },
	{ "BDAT FIRST", L("BDAT 1 FIRST"), SMTP_ERR_ARG_SYNTAX, SMTP_CMD_BDAT,
	    NULL },
	{ "BDAT 1LAST", L("BDAT 1LAST"), SMTP_ERR_ARG_SYNTAX, SMTP_CMD_BDAT,
	    NULL },
	{ "BDAT LAST x", L("BDAT 1 LAST x"), SMTP_ERR_ARG_SYNTAX,
	    SMTP_CMD_BDAT, NULL },

	/* AUTH mechanism [initial-response] */
	{ "AUTH PLAIN", L("AUTH PLAIN"), 0, SMTP_CMD_AUTH, "PLAIN" },
	{ "AUTH PLAIN resp", L("AUTH PLAIN dGVzdA=="), 0, SMTP_CMD_AUTH,
	    "PLAIN dGVzdA==" },
	{ "AUTH PLAIN =", L("AUTH PLAIN ="), 0, SMTP_CMD_AUTH, "PLAIN =" },
	{ "auth login", L("auth login"), 0, SMTP_CMD_AUTH, "login" },
	{ "AUTH CRAM-MD5", L("AUTH CRAM-MD5"), 0, SMTP_CMD_AUTH, "CRAM-MD5" },
	{ "AUTH X_Y", L("AUTH X_Y"), 0, SMTP_CMD_AUTH, "X_Y" },
	{ "AUTH, 20-octet name", L("AUTH ABCDEFGHIJKLMNOPQRST"), 0,
	    SMTP_CMD_AUTH, "ABCDEFGHIJKLMNOPQRST" },
	{ "AUTH, 21-octet name", L("AUTH ABCDEFGHIJKLMNOPQRSTU"),
	    SMTP_ERR_ARG_SYNTAX, SMTP_CMD_AUTH, NULL },
	{ "AUTH alone", L("AUTH"), SMTP_ERR_ARG_MISSING, SMTP_CMD_AUTH, NULL },
	{ "AUTH, three words", L("AUTH PLAIN a b"), SMTP_ERR_ARG_SYNTAX,
	    SMTP_CMD_AUTH, NULL },
	{ "AUTH PL@IN", L("AUTH PL@IN"), SMTP_ERR_ARG_SYNTAX, SMTP_CMD_AUTH,
	    NULL },
	{ "AUTH, 8-bit", L("AUTH PLAIN \xc3\xa9"), SMTP_ERR_8BIT,
	    SMTP_CMD_AUTH, NULL },

	/* before the verb */
	{ "empty", L(""), SMTP_ERR_SYNTAX, SMTP_CMD_UNKNOWN, NULL },
	{ "SP alone", L(" "), SMTP_ERR_SYNTAX, SMTP_CMD_UNKNOWN, NULL },
	{ "SP first", L(" MAIL FROM:<a@b>"), SMTP_ERR_SYNTAX, SMTP_CMD_UNKNOWN,
	    NULL },
	{ "unknown", L("XYZZY"), SMTP_ERR_UNKNOWN, SMTP_CMD_UNKNOWN, NULL },
	{ "unknown with arg", L("XYZZY plugh"), SMTP_ERR_UNKNOWN,
	    SMTP_CMD_UNKNOWN, NULL },
	{ "MAIL:", L("MAIL:"), SMTP_ERR_UNKNOWN, SMTP_CMD_UNKNOWN, NULL },
	{ "EHL0", L("EHL0 x"), SMTP_ERR_UNKNOWN, SMTP_CMD_UNKNOWN, NULL },
	{ "EHLOX", L("EHLOX x"), SMTP_ERR_UNKNOWN, SMTP_CMD_UNKNOWN, NULL },
	{ "EHL", L("EHL x"), SMTP_ERR_UNKNOWN, SMTP_CMD_UNKNOWN, NULL },
	{ "TAB after verb", L("EHLO\tx"), SMTP_ERR_UNKNOWN, SMTP_CMD_UNKNOWN,
	    NULL },
	{ "8-bit verb", L("\xc3\x89HLO x"), SMTP_ERR_UNKNOWN,
	    SMTP_CMD_UNKNOWN, NULL },
	{ "verb with 8-bit", L("EHLO\xff"), SMTP_ERR_UNKNOWN,
	    SMTP_CMD_UNKNOWN, NULL },

	/* NUL, CR, LF anywhere */
	{ "NUL at end", L("NOOP\0"), SMTP_ERR_NUL, SMTP_CMD_UNKNOWN, NULL },
	{ "NUL in verb", L("MA\0IL FROM:<a@b>"), SMTP_ERR_NUL,
	    SMTP_CMD_UNKNOWN, NULL },
	{ "NUL alone", L("\0"), SMTP_ERR_NUL, SMTP_CMD_UNKNOWN, NULL },
	{ "NUL in path", L("MAIL FROM:<a\0@b>"), SMTP_ERR_NUL, SMTP_CMD_MAIL,
	    NULL },
	{ "NUL after path", L("RCPT TO:<a@b>\0"), SMTP_ERR_NUL, SMTP_CMD_RCPT,
	    NULL },
	{ "NUL before CR", L("NOOP \0\r"), SMTP_ERR_NUL, SMTP_CMD_NOOP, NULL },
	{ "CR at end", L("NOOP\r"), SMTP_ERR_CRLF, SMTP_CMD_UNKNOWN, NULL },
	{ "CR in argument", L("NOOP a\rb"), SMTP_ERR_CRLF, SMTP_CMD_NOOP,
	    NULL },
	{ "LF in argument", L("NOOP a\nRSET"), SMTP_ERR_CRLF, SMTP_CMD_NOOP,
	    NULL },
	{ "smuggled command", L("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>"),
	    SMTP_ERR_CRLF, SMTP_CMD_MAIL, NULL },
	{ "CRLF alone", L("\r\n"), SMTP_ERR_CRLF, SMTP_CMD_UNKNOWN, NULL },
	{ "DATA then LF", L("DATA \n"), SMTP_ERR_CRLF, SMTP_CMD_DATA, NULL },

	/* other controls and 8-bit in arguments */
	{ "EHLO 8-bit", L("EHLO h\xc3\xa9"), SMTP_ERR_8BIT, SMTP_CMD_EHLO,
	    NULL },
	{ "NOOP 0xff", L("NOOP \xff"), SMTP_ERR_8BIT, SMTP_CMD_NOOP, NULL },
	{ "VRFY 8-bit", L("VRFY \xc3\xa9"), SMTP_ERR_8BIT, SMTP_CMD_VRFY,
	    NULL },
	{ "RCPT 8-bit", L("RCPT TO:<\xc3\xa9@b>"), 0, SMTP_CMD_RCPT,
	    "<\xc3\xa9@b>" },
	{ "EHLO TAB", L("EHLO a\tb"), SMTP_ERR_CTRL, SMTP_CMD_EHLO, NULL },
	{ "NOOP ^A", L("NOOP \x01"), SMTP_ERR_CTRL, SMTP_CMD_NOOP, NULL },
	{ "NOOP DEL", L("NOOP \x7f"), SMTP_ERR_CTRL, SMTP_CMD_NOOP, NULL },
	{ "HELP ESC", L("HELP \x1b[2J"), SMTP_ERR_CTRL, SMTP_CMD_HELP, NULL },
	{ "DATA ^A", L("DATA \x01"), SMTP_ERR_CTRL, SMTP_CMD_DATA, NULL },
};

static const struct path_case path_cases[] = {
	/* plain addresses */
	{ "simple", SMTP_CMD_MAIL, L("<a@b>"), 0, 0, "a@b", 1, 0, 5 },
	{ "params follow", SMTP_CMD_MAIL, L("<a@b> SIZE=1"), 0, 0, "a@b", 1, 0,
	    5 },
	{ "case kept", SMTP_CMD_RCPT, L("<A.B-c+d@Example.COM>"), 0, 0,
	    "A.B-c+d@Example.COM", 7, 0, 21 },
	{ "all atext", SMTP_CMD_MAIL, L("<!#$%&'*+-/=?^_`{|}~@x>"), 0, 0,
	    "!#$%&'*+-/=?^_`{|}~@x", 19, 0, 23 },
	{ "dots", SMTP_CMD_MAIL, L("<a.b.c@x.y.z>"), 0, 0, "a.b.c@x.y.z", 5,
	    0, 13 },
	{ "hyphen inside", SMTP_CMD_MAIL, L("<a@b-c.d>"), 0, 0, "a@b-c.d", 1,
	    0, 9 },
	{ "digits", SMTP_CMD_MAIL, L("<1@123.4>"), 0, 0, "1@123.4", 1, 0, 9 },
	{ "'>' after path", SMTP_CMD_MAIL, L("<a@b>>"), 0, 0, "a@b", 1, 0, 5 },

	/* null path and postmaster */
	{ "null for MAIL", SMTP_CMD_MAIL, L("<>"), 0, 0, "", 0, SMTP_PATH_NULL,
	    2 },
	{ "null, params", SMTP_CMD_MAIL, L("<> SIZE=1"), 0, 0, "", 0,
	    SMTP_PATH_NULL, 2 },
	{ "null for RCPT", SMTP_CMD_RCPT, L("<>"), 0, SMTP_ERR_NULL_PATH },
	{ "postmaster", SMTP_CMD_RCPT, L("<postmaster>"), 0, 0, "postmaster",
	    10, SMTP_PATH_POSTMASTER, 12 },
	{ "PostMaster", SMTP_CMD_RCPT, L("<PostMaster>"), 0, 0, "PostMaster",
	    10, SMTP_PATH_POSTMASTER, 12 },
	{ "postmaster for MAIL", SMTP_CMD_MAIL, L("<postmaster>"), 0,
	    SMTP_ERR_NO_DOMAIN },
	{ "postmistress", SMTP_CMD_RCPT, L("<postmistress>"), 0,
	    SMTP_ERR_NO_DOMAIN },
	{ "postmaster quoted", SMTP_CMD_RCPT, L("<\"postmaster\">"), 0,
	    SMTP_ERR_NO_DOMAIN },
	{ "postmaster routed", SMTP_CMD_RCPT, L("<@a:postmaster>"), 0,
	    SMTP_ERR_NO_DOMAIN },
	{ "postmaster@domain", SMTP_CMD_MAIL, L("<postmaster@b>"), 0, 0,
	    "postmaster@b", 10, 0, 14 },
	{ "no domain", SMTP_CMD_RCPT, L("<a>"), 0, SMTP_ERR_NO_DOMAIN },

	/* Quoted-string */
	{ "quoted SP", SMTP_CMD_MAIL, L("<\"a b\"@c>"), 0, 0, "\"a b\"@c", 5,
	    SMTP_PATH_QUOTED, 9 },
	{ "quoted-pair quote", SMTP_CMD_MAIL, L("<\"a\\\"b\"@c>"), 0, 0,
	    "\"a\\\"b\"@c", 6, SMTP_PATH_QUOTED, 10 },
	{ "quoted-pair backslash", SMTP_CMD_MAIL, L("<\"a\\\\b\"@c>"), 0, 0,
	    "\"a\\\\b\"@c", 6, SMTP_PATH_QUOTED, 10 },
	{ "quoted-pair letter", SMTP_CMD_MAIL, L("<\"\\a\"@c>"), 0, 0,
	    "\"\\a\"@c", 4, SMTP_PATH_QUOTED, 8 },
	{ "quoted empty", SMTP_CMD_MAIL, L("<\"\"@c>"), 0, 0, "\"\"@c", 2,
	    SMTP_PATH_QUOTED, 6 },
	{ "quoted '@'", SMTP_CMD_MAIL, L("<\"a@b\"@c>"), 0, 0, "\"a@b\"@c", 5,
	    SMTP_PATH_QUOTED, 9 },
	{ "quoted specials", SMTP_CMD_MAIL, L("<\"(a),[b];<c>\"@d>"), 0, 0,
	    "\"(a),[b];<c>\"@d", 13, SMTP_PATH_QUOTED, 17 },
	{ "quoted, then atom", SMTP_CMD_MAIL, L("<\"a\"b@c>"), 0,
	    SMTP_ERR_LOCAL_SYNTAX },
	{ "quoted, then dot", SMTP_CMD_MAIL, L("<\"a\".b@c>"), 0,
	    SMTP_ERR_LOCAL_SYNTAX },
	{ "atom, then quoted", SMTP_CMD_MAIL, L("<a.\"b\"@c>"), 0,
	    SMTP_ERR_LOCAL_SYNTAX },
	{ "quote not closed", SMTP_CMD_MAIL, L("<\"a@c>"), 0,
	    SMTP_ERR_LOCAL_SYNTAX },
	{ "closing quote escaped", SMTP_CMD_MAIL, L("<\"a\\\"@c>"), 0,
	    SMTP_ERR_LOCAL_SYNTAX },
	{ "backslash at end", SMTP_CMD_MAIL, L("<\"a\\"), 0,
	    SMTP_ERR_LOCAL_SYNTAX },
	{ "quoted control", SMTP_CMD_MAIL, L("<\"a\x01\"@c>"), 0,
	    SMTP_ERR_LOCAL_SYNTAX },
	{ "quoted TAB", SMTP_CMD_MAIL, L("<\"a\tb\"@c>"), 0,
	    SMTP_ERR_LOCAL_SYNTAX },
	{ "quoted-pair control", SMTP_CMD_MAIL, L("<\"a\\\x01\"@c>"), 0,
	    SMTP_ERR_LOCAL_SYNTAX },
	{ "quoted NUL", SMTP_CMD_MAIL, L("<\"a\0\"@c>"), 0,
	    SMTP_ERR_LOCAL_SYNTAX },
	{ "quoted DEL", SMTP_CMD_MAIL, L("<\"a\x7f\"@c>"), 0,
	    SMTP_ERR_LOCAL_SYNTAX },

	/* Dot-string */
	{ "a..b", SMTP_CMD_MAIL, L("<a..b@c>"), 0, SMTP_ERR_LOCAL_SYNTAX },
	{ "leading dot", SMTP_CMD_MAIL, L("<.a@c>"), 0, SMTP_ERR_LOCAL_SYNTAX },
	{ "trailing dot", SMTP_CMD_MAIL, L("<a.@c>"), 0,
	    SMTP_ERR_LOCAL_SYNTAX },
	{ "dot alone", SMTP_CMD_MAIL, L("<.@c>"), 0, SMTP_ERR_LOCAL_SYNTAX },
	{ "SP in local", SMTP_CMD_MAIL, L("<a b@c>"), 0,
	    SMTP_ERR_LOCAL_SYNTAX },
	{ "parens", SMTP_CMD_MAIL, L("<a(b)@c>"), 0, SMTP_ERR_LOCAL_SYNTAX },
	{ "comma", SMTP_CMD_MAIL, L("<a,b@c>"), 0, SMTP_ERR_LOCAL_SYNTAX },
	{ "backslash", SMTP_CMD_MAIL, L("<a\\b@c>"), 0, SMTP_ERR_LOCAL_SYNTAX },
	{ "control", SMTP_CMD_MAIL, L("<a\x01@b>"), 0, SMTP_ERR_LOCAL_SYNTAX },
	{ "NUL in local", SMTP_CMD_MAIL, L("<a\0@b>"), 0,
	    SMTP_ERR_LOCAL_SYNTAX },
	{ "empty local", SMTP_CMD_RCPT, L("<\"\">"), 0, SMTP_ERR_NO_DOMAIN },

	/* domain */
	{ "trailing dot in domain", SMTP_CMD_MAIL, L("<a@b.>"), 0,
	    SMTP_ERR_DOMAIN_SYNTAX },
	{ "leading dot in domain", SMTP_CMD_MAIL, L("<a@.b>"), 0,
	    SMTP_ERR_DOMAIN_SYNTAX },
	{ "b..c", SMTP_CMD_MAIL, L("<a@b..c>"), 0, SMTP_ERR_DOMAIN_SYNTAX },
	{ "empty domain", SMTP_CMD_MAIL, L("<a@>"), 0, SMTP_ERR_DOMAIN_SYNTAX },
	{ "leading hyphen", SMTP_CMD_MAIL, L("<a@-b>"), 0,
	    SMTP_ERR_DOMAIN_SYNTAX },
	{ "trailing hyphen", SMTP_CMD_MAIL, L("<a@b->"), 0,
	    SMTP_ERR_DOMAIN_SYNTAX },
	{ "hyphen before dot", SMTP_CMD_MAIL, L("<a@b-.c>"), 0,
	    SMTP_ERR_DOMAIN_SYNTAX },
	{ "hyphen after dot", SMTP_CMD_MAIL, L("<a@b.-c>"), 0,
	    SMTP_ERR_DOMAIN_SYNTAX },
	{ "underscore", SMTP_CMD_MAIL, L("<a@b_c>"), 0,
	    SMTP_ERR_DOMAIN_SYNTAX },
	{ "SP in domain", SMTP_CMD_MAIL, L("<a@b c>"), 0,
	    SMTP_ERR_DOMAIN_SYNTAX },
	{ "two '@'", SMTP_CMD_MAIL, L("<a@b@c>"), 0, SMTP_ERR_DOMAIN_SYNTAX },
	{ "NUL in domain", SMTP_CMD_MAIL, L("<a@b\0>"), 0,
	    SMTP_ERR_DOMAIN_SYNTAX },
	{ "xn-- label", SMTP_CMD_MAIL, L("<a@xn--bcher-kva.example>"), 0, 0,
	    "a@xn--bcher-kva.example", 1, 0, 25 },

	/* address literals */
	{ "IPv4", SMTP_CMD_RCPT, L("<a@[192.0.2.1]>"), 0, 0, "a@[192.0.2.1]",
	    1, SMTP_PATH_LITERAL, 15 },
	{ "IPv4 0.0.0.0", SMTP_CMD_RCPT, L("<a@[0.0.0.0]>"), 0, 0,
	    "a@[0.0.0.0]", 1, SMTP_PATH_LITERAL, 13 },
	{ "IPv4 255s", SMTP_CMD_RCPT, L("<a@[255.255.255.255]>"), 0, 0,
	    "a@[255.255.255.255]", 1, SMTP_PATH_LITERAL, 21 },
	{ "[1.2.3]", SMTP_CMD_RCPT, L("<a@[1.2.3]>"), 0, SMTP_ERR_LITERAL },
	{ "[1.2.3.4.5]", SMTP_CMD_RCPT, L("<a@[1.2.3.4.5]>"), 0,
	    SMTP_ERR_LITERAL },
	{ "[256.1.1.1]", SMTP_CMD_RCPT, L("<a@[256.1.1.1]>"), 0,
	    SMTP_ERR_LITERAL },
	{ "[1.2.3.]", SMTP_CMD_RCPT, L("<a@[1.2.3.]>"), 0, SMTP_ERR_LITERAL },
	{ "[1..2.3]", SMTP_CMD_RCPT, L("<a@[1..2.3]>"), 0, SMTP_ERR_LITERAL },
	{ "[1.2.3.4 ]", SMTP_CMD_RCPT, L("<a@[1.2.3.4 ]>"), 0,
	    SMTP_ERR_LITERAL },
	{ "[]", SMTP_CMD_RCPT, L("<a@[]>"), 0, SMTP_ERR_LITERAL },
	{ "no ']'", SMTP_CMD_RCPT, L("<a@[1.2.3.4>"), 0, SMTP_ERR_LITERAL },
	{ "junk after ']'", SMTP_CMD_RCPT, L("<a@[1.2.3.4]x>"), 0,
	    SMTP_ERR_PATH_SYNTAX },
	{ "no '>' after ']'", SMTP_CMD_RCPT, L("<a@[1.2.3.4]"), 0,
	    SMTP_ERR_PATH_SYNTAX },
	{ "IPv4 NUL", SMTP_CMD_RCPT, L("<a@[1.2.3.4\0]>"), 0,
	    SMTP_ERR_LITERAL },
	{ "IPv6", SMTP_CMD_RCPT, L("<a@[IPv6:2001:db8::1]>"), 0, 0,
	    "a@[IPv6:2001:db8::1]", 1, SMTP_PATH_LITERAL, 22 },
	{ "ipv6 tag case", SMTP_CMD_RCPT, L("<a@[ipv6:::1]>"), 0, 0,
	    "a@[ipv6:::1]", 1, SMTP_PATH_LITERAL, 14 },
	{ "IPv6 full", SMTP_CMD_RCPT, L("<a@[IPv6:1:2:3:4:5:6:7:8]>"), 0, 0,
	    "a@[IPv6:1:2:3:4:5:6:7:8]", 1, SMTP_PATH_LITERAL, 26 },
	{ "IPv6 v4-mapped", SMTP_CMD_RCPT, L("<a@[IPv6:::ffff:192.0.2.1]>"), 0,
	    0, "a@[IPv6:::ffff:192.0.2.1]", 1, SMTP_PATH_LITERAL, 27 },
	{ "IPv6 bad hex", SMTP_CMD_RCPT, L("<a@[IPv6:2001:db8::g]>"), 0,
	    SMTP_ERR_LITERAL },
	{ "IPv6 nine groups", SMTP_CMD_RCPT,
	    L("<a@[IPv6:1:2:3:4:5:6:7:8:9]>"), 0, SMTP_ERR_LITERAL },
	{ "IPv6 two '::'", SMTP_CMD_RCPT, L("<a@[IPv6:1::2::3]>"), 0,
	    SMTP_ERR_LITERAL },
	{ "IPv6 empty", SMTP_CMD_RCPT, L("<a@[IPv6:]>"), 0, SMTP_ERR_LITERAL },
	{ "IPv6 zone", SMTP_CMD_RCPT, L("<a@[IPv6:fe80::1%eth0]>"), 0,
	    SMTP_ERR_LITERAL },
	{ "IPv6 NUL then junk", SMTP_CMD_RCPT, L("<a@[IPv6:::1\0junk]>"), 0,
	    SMTP_ERR_LITERAL },
	{ "IPv6 too long", SMTP_CMD_RCPT,
	    L("<a@[IPv6:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000]>"),
	    0, SMTP_ERR_LITERAL },
	{ "IPv6 without tag", SMTP_CMD_RCPT, L("<a@[2001:db8::1]>"), 0,
	    SMTP_ERR_LITERAL_GENERAL },
	{ "general literal", SMTP_CMD_RCPT, L("<a@[x-foo:bar]>"), 0,
	    SMTP_ERR_LITERAL_GENERAL },
	{ "general, empty tag", SMTP_CMD_RCPT, L("<a@[:bar]>"), 0,
	    SMTP_ERR_LITERAL },
	{ "general, no content", SMTP_CMD_RCPT, L("<a@[foo:]>"), 0,
	    SMTP_ERR_LITERAL },
	{ "general, bad tag", SMTP_CMD_RCPT, L("<a@[f_o:bar]>"), 0,
	    SMTP_ERR_LITERAL },
	{ "general, bad content", SMTP_CMD_RCPT, L("<a@[foo:b\\r]>"), 0,
	    SMTP_ERR_LITERAL },

	/* source routes */
	{ "route", SMTP_CMD_RCPT, L("<@a,@b:c@d>"), 0, 0, "c@d", 1,
	    SMTP_PATH_ROUTE, 11 },
	{ "route, one hop", SMTP_CMD_MAIL, L("<@a.example:c@d>"), 0, 0, "c@d",
	    1, SMTP_PATH_ROUTE, 16 },
	{ "route, quoted mailbox", SMTP_CMD_MAIL, L("<@a:\"x y\"@d>"), 0, 0,
	    "\"x y\"@d", 5, SMTP_PATH_ROUTE | SMTP_PATH_QUOTED, 12 },
	{ "route, no '@' in hop", SMTP_CMD_RCPT, L("<@a,b:c@d>"), 0,
	    SMTP_ERR_ROUTE },
	{ "route, empty hop", SMTP_CMD_RCPT, L("<@:c@d>"), 0, SMTP_ERR_ROUTE },
	{ "route, ';'", SMTP_CMD_RCPT, L("<@a;c@d>"), 0, SMTP_ERR_ROUTE },
	{ "route, literal hop", SMTP_CMD_RCPT, L("<@[1.2.3.4]:c@d>"), 0,
	    SMTP_ERR_ROUTE },
	{ "route, no ':'", SMTP_CMD_RCPT, L("<@a,@b>"), 0, SMTP_ERR_ROUTE },
	{ "route, bad hop", SMTP_CMD_RCPT, L("<@a-:c@d>"), 0, SMTP_ERR_ROUTE },
	{ "route, 8-bit hop", SMTP_CMD_RCPT, L("<@\xc3\xa9:c@d>"), 1,
	    SMTP_ERR_ROUTE },
	{ "route, no mailbox", SMTP_CMD_MAIL, L("<@a:>"), 0,
	    SMTP_ERR_LOCAL_SYNTAX },
	{ "route, then null", SMTP_CMD_MAIL, L("<@a:<>>"), 0,
	    SMTP_ERR_LOCAL_SYNTAX },
	{ "route at end", SMTP_CMD_MAIL, L("<@a"), 0, SMTP_ERR_ROUTE },

	/* not a path */
	{ "no brackets", SMTP_CMD_MAIL, L("a@b"), 0, SMTP_ERR_PATH_SYNTAX },
	{ "nothing", SMTP_CMD_MAIL, L(""), 0, SMTP_ERR_PATH_SYNTAX },
	{ "'<' alone", SMTP_CMD_MAIL, L("<"), 0, SMTP_ERR_PATH_SYNTAX },
	{ "no '>'", SMTP_CMD_MAIL, L("<a@b"), 0, SMTP_ERR_PATH_SYNTAX },
	{ "no '>', local only", SMTP_CMD_MAIL, L("<a"), 0,
	    SMTP_ERR_PATH_SYNTAX },
	{ "SP first", SMTP_CMD_MAIL, L(" <a@b>"), 0, SMTP_ERR_PATH_SYNTAX },
	{ "'<<'", SMTP_CMD_MAIL, L("<<a@b>>"), 0, SMTP_ERR_LOCAL_SYNTAX },
	{ "SP inside", SMTP_CMD_MAIL, L("< a@b>"), 0, SMTP_ERR_LOCAL_SYNTAX },

	/* UTF-8 */
	{ "UTF-8 local, no SMTPUTF8", SMTP_CMD_MAIL, L("<\xc3\xa9@b>"), 0,
	    SMTP_ERR_NEED_UTF8 },
	{ "UTF-8 local", SMTP_CMD_MAIL, L("<\xc3\xa9@b>"), 1, 0, "\xc3\xa9@b",
	    2, SMTP_PATH_UTF8, 6 },
	{ "UTF-8 domain, no SMTPUTF8", SMTP_CMD_RCPT,
	    L("<a@\xc3\xa9.com>"), 0, SMTP_ERR_NEED_UTF8 },
	{ "UTF-8 domain", SMTP_CMD_RCPT, L("<a@\xc3\xa9.com>"), 1, 0,
	    "a@\xc3\xa9.com", 1, SMTP_PATH_UTF8, 10 },
	{ "UTF-8 quoted", SMTP_CMD_RCPT, L("<\"\xc3\xa9 x\"@b>"), 1, 0,
	    "\"\xc3\xa9 x\"@b", 6, SMTP_PATH_UTF8 | SMTP_PATH_QUOTED, 10 },
	{ "UTF-8 quoted, no SMTPUTF8", SMTP_CMD_RCPT, L("<\"\xc3\xa9\"@b>"),
	    0, SMTP_ERR_NEED_UTF8 },
	{ "4-octet UTF-8", SMTP_CMD_MAIL, L("<\xf0\x9f\x98\x80@b>"), 1, 0,
	    "\xf0\x9f\x98\x80@b", 4, SMTP_PATH_UTF8, 8 },
	{ "U+10FFFF", SMTP_CMD_MAIL, L("<\xf4\x8f\xbf\xbf@b>"), 1, 0,
	    "\xf4\x8f\xbf\xbf@b", 4, SMTP_PATH_UTF8, 8 },
	{ "overlong '/'", SMTP_CMD_MAIL, L("<\xc0\xaf@b>"), 1, SMTP_ERR_UTF8 },
	{ "overlong '/', no SMTPUTF8", SMTP_CMD_MAIL, L("<\xc0\xaf@b>"), 0,
	    SMTP_ERR_UTF8 },
	{ "overlong 3-octet", SMTP_CMD_MAIL, L("<\xe0\x80\xaf@b>"), 1,
	    SMTP_ERR_UTF8 },
	{ "overlong 4-octet", SMTP_CMD_MAIL, L("<\xf0\x80\x80\xaf@b>"), 1,
	    SMTP_ERR_UTF8 },
	{ "surrogate", SMTP_CMD_MAIL, L("<\xed\xa0\x80@b>"), 1, SMTP_ERR_UTF8 },
	{ "surrogate, no SMTPUTF8", SMTP_CMD_MAIL, L("<\xed\xa0\x80@b>"), 0,
	    SMTP_ERR_UTF8 },
	{ "past U+10FFFF", SMTP_CMD_MAIL, L("<\xf4\x90\x80\x80@b>"), 1,
	    SMTP_ERR_UTF8 },
	{ "F5 lead", SMTP_CMD_MAIL, L("<\xf5\x80\x80\x80@b>"), 1,
	    SMTP_ERR_UTF8 },
	{ "truncated", SMTP_CMD_MAIL, L("<\xe2\x82@b>"), 1, SMTP_ERR_UTF8 },
	{ "truncated at end", SMTP_CMD_MAIL, L("<a@\xe2\x82"), 1,
	    SMTP_ERR_UTF8 },
	{ "lone continuation", SMTP_CMD_MAIL, L("<\x80@b>"), 1, SMTP_ERR_UTF8 },
	{ "0xff", SMTP_CMD_MAIL, L("<\xff@b>"), 1, SMTP_ERR_UTF8 },
	{ "good then bad, no SMTPUTF8", SMTP_CMD_MAIL,
	    L("<\xc3\xa9@b\xc0>"), 0, SMTP_ERR_UTF8 },
	{ "UTF-8 and a syntax error", SMTP_CMD_MAIL, L("<\xc3\xa9..x@b>"), 0,
	    SMTP_ERR_LOCAL_SYNTAX },
	{ "UTF-8 label, leading hyphen", SMTP_CMD_MAIL,
	    L("<a@-\xc3\xa9>"), 1, SMTP_ERR_DOMAIN_SYNTAX },
	{ "quoted bad UTF-8", SMTP_CMD_MAIL, L("<\"\xed\xbf\xbf\"@b>"), 1,
	    SMTP_ERR_UTF8 },
};

static const struct param_case param_cases[] = {
	{ "none", SMTP_CMD_MAIL, "", 0, 0 },
	{ "SP only", SMTP_CMD_MAIL, "   ", 0, 0 },

	/* SIZE, RFC 1870 */
	{ "SIZE=0", SMTP_CMD_MAIL, "SIZE=0", 0, SMTP_PARAM_SIZE, 0 },
	{ "SIZE=1000", SMTP_CMD_MAIL, " SIZE=1000", 0, SMTP_PARAM_SIZE, 1000 },
	{ "size=", SMTP_CMD_MAIL, "size=12", 0, SMTP_PARAM_SIZE, 12 },
	{ "SIZE 2^64-1", SMTP_CMD_MAIL, "SIZE=18446744073709551615", 0,
	    SMTP_PARAM_SIZE, UINT64_MAX },
	{ "SIZE 2^64", SMTP_CMD_MAIL, "SIZE=18446744073709551616",
	    SMTP_ERR_SIZE_OVERFLOW },
	{ "SIZE 20 nines", SMTP_CMD_MAIL, "SIZE=99999999999999999999",
	    SMTP_ERR_SIZE_OVERFLOW },
	{ "SIZE 20 digits, zeros", SMTP_CMD_MAIL, "SIZE=00000000000000000001",
	    0, SMTP_PARAM_SIZE, 1 },
	{ "SIZE 21 digits", SMTP_CMD_MAIL, "SIZE=000000000000000000001",
	    SMTP_ERR_PARAM_VALUE },
	{ "SIZE no value", SMTP_CMD_MAIL, "SIZE", SMTP_ERR_PARAM_VALUE },
	{ "SIZE= empty", SMTP_CMD_MAIL, "SIZE=", SMTP_ERR_PARAM_SYNTAX },
	{ "SIZE=-1", SMTP_CMD_MAIL, "SIZE=-1", SMTP_ERR_PARAM_VALUE },
	{ "SIZE=1k", SMTP_CMD_MAIL, "SIZE=1k", SMTP_ERR_PARAM_VALUE },
	{ "SIZE=+1", SMTP_CMD_MAIL, "SIZE=+1", SMTP_ERR_PARAM_VALUE },
	{ "SIZE twice", SMTP_CMD_MAIL, "SIZE=1 SIZE=2", SMTP_ERR_PARAM_REPEAT },
	{ "SIZE twice, case", SMTP_CMD_MAIL, "SIZE=1 size=1",
	    SMTP_ERR_PARAM_REPEAT },
	{ "SIZE on RCPT", SMTP_CMD_RCPT, "SIZE=1", SMTP_ERR_PARAM_VERB },

	/* BODY */
	{ "BODY=7BIT", SMTP_CMD_MAIL, "BODY=7BIT", 0, SMTP_PARAM_BODY, 0,
	    SMTP_BODY_7BIT },
	{ "BODY=8BITMIME", SMTP_CMD_MAIL, "BODY=8BITMIME", 0, SMTP_PARAM_BODY,
	    0, SMTP_BODY_8BITMIME },
	{ "body=8bitmime", SMTP_CMD_MAIL, "body=8bitmime", 0, SMTP_PARAM_BODY,
	    0, SMTP_BODY_8BITMIME },
	{ "BODY=BINARYMIME", SMTP_CMD_MAIL, "BODY=BINARYMIME", 0,
	    SMTP_PARAM_BODY, 0, SMTP_BODY_BINARYMIME },
	{ "BODY=8BIT", SMTP_CMD_MAIL, "BODY=8BIT", SMTP_ERR_PARAM_VALUE },
	{ "BODY=8BITMIMEX", SMTP_CMD_MAIL, "BODY=8BITMIMEX",
	    SMTP_ERR_PARAM_VALUE },
	{ "BODY no value", SMTP_CMD_MAIL, "BODY", SMTP_ERR_PARAM_VALUE },
	{ "BODY twice", SMTP_CMD_MAIL, "BODY=8BITMIME BODY=7BIT",
	    SMTP_ERR_PARAM_REPEAT },
	{ "BODY on RCPT", SMTP_CMD_RCPT, "BODY=7BIT", SMTP_ERR_PARAM_VERB },

	/* SMTPUTF8 */
	{ "SMTPUTF8", SMTP_CMD_MAIL, "SMTPUTF8", 0, SMTP_PARAM_SMTPUTF8 },
	{ "smtputf8", SMTP_CMD_MAIL, "smtputf8", 0, SMTP_PARAM_SMTPUTF8 },
	{ "SMTPUTF8=yes", SMTP_CMD_MAIL, "SMTPUTF8=yes", SMTP_ERR_PARAM_VALUE },
	{ "SMTPUTF8 twice", SMTP_CMD_MAIL, "SMTPUTF8 SMTPUTF8",
	    SMTP_ERR_PARAM_REPEAT },
	{ "SMTPUTF8 on RCPT", SMTP_CMD_RCPT, "SMTPUTF8", SMTP_ERR_PARAM_VERB },

	/* RET, ENVID: RFC 3461 4.3, 4.4 */
	{ "RET=FULL", SMTP_CMD_MAIL, "RET=FULL", 0, SMTP_PARAM_RET, 0, 0,
	    SMTP_RET_FULL },
	{ "RET=hdrs", SMTP_CMD_MAIL, "RET=hdrs", 0, SMTP_PARAM_RET, 0, 0,
	    SMTP_RET_HDRS },
	{ "RET=NONE", SMTP_CMD_MAIL, "RET=NONE", SMTP_ERR_PARAM_VALUE },
	{ "RET no value", SMTP_CMD_MAIL, "RET", SMTP_ERR_PARAM_VALUE },
	{ "RET on RCPT", SMTP_CMD_RCPT, "RET=FULL", SMTP_ERR_PARAM_VERB },
	{ "ENVID", SMTP_CMD_MAIL, "ENVID=QQ1234", 0, SMTP_PARAM_ENVID, 0, 0, 0,
	    0, "QQ1234" },
	{ "ENVID +2B", SMTP_CMD_MAIL, "ENVID=a+2Bb", 0, SMTP_PARAM_ENVID, 0, 0,
	    0, 0, "a+2Bb" },
	{ "ENVID +20", SMTP_CMD_MAIL, "ENVID=a+20b", 0, SMTP_PARAM_ENVID, 0, 0,
	    0, 0, "a+20b" },
	{ "ENVID +2b", SMTP_CMD_MAIL, "ENVID=a+2bb", SMTP_ERR_XTEXT },
	{ "ENVID + at end", SMTP_CMD_MAIL, "ENVID=a+", SMTP_ERR_XTEXT },
	{ "ENVID +2 at end", SMTP_CMD_MAIL, "ENVID=a+2", SMTP_ERR_XTEXT },
	{ "ENVID +G0", SMTP_CMD_MAIL, "ENVID=+G0", SMTP_ERR_XTEXT },
	{ "ENVID decodes NUL", SMTP_CMD_MAIL, "ENVID=+00",
	    SMTP_ERR_PARAM_VALUE },
	{ "ENVID decodes 8-bit", SMTP_CMD_MAIL, "ENVID=+C3+A9",
	    SMTP_ERR_PARAM_VALUE },
	{ "ENVID '='", SMTP_CMD_MAIL, "ENVID=a=b", SMTP_ERR_PARAM_SYNTAX },
	{ "ENVID 8-bit", SMTP_CMD_MAIL, "ENVID=\xc3\xa9",
	    SMTP_ERR_PARAM_SYNTAX },
	{ "ENVID no value", SMTP_CMD_MAIL, "ENVID", SMTP_ERR_PARAM_VALUE },
	{ "ENVID twice", SMTP_CMD_MAIL, "ENVID=a ENVID=a",
	    SMTP_ERR_PARAM_REPEAT },
	{ "ENVID on RCPT", SMTP_CMD_RCPT, "ENVID=a", SMTP_ERR_PARAM_VERB },

	/* AUTH=, RFC 4954 5 */
	{ "AUTH=<>", SMTP_CMD_MAIL, "AUTH=<>", 0, SMTP_PARAM_AUTH, 0, 0, 0, 0,
	    NULL, "<>" },
	{ "AUTH=addr", SMTP_CMD_MAIL, "AUTH=a+2Bb@c", 0, SMTP_PARAM_AUTH, 0, 0,
	    0, 0, NULL, "a+2Bb@c" },
	{ "AUTH=+", SMTP_CMD_MAIL, "AUTH=+", SMTP_ERR_XTEXT },
	{ "AUTH no value", SMTP_CMD_MAIL, "AUTH", SMTP_ERR_PARAM_VALUE },
	{ "AUTH on RCPT", SMTP_CMD_RCPT, "AUTH=<>", SMTP_ERR_PARAM_VERB },

	/* NOTIFY, RFC 3461 4.1 */
	{ "NOTIFY=NEVER", SMTP_CMD_RCPT, "NOTIFY=NEVER", 0, SMTP_PARAM_NOTIFY,
	    0, 0, 0, SMTP_NOTIFY_NEVER },
	{ "NOTIFY=SUCCESS", SMTP_CMD_RCPT, "NOTIFY=SUCCESS", 0,
	    SMTP_PARAM_NOTIFY, 0, 0, 0, SMTP_NOTIFY_SUCCESS },
	{ "NOTIFY all three", SMTP_CMD_RCPT, "NOTIFY=SUCCESS,FAILURE,DELAY", 0,
	    SMTP_PARAM_NOTIFY, 0, 0, 0, SMTP_NOTIFY_SUCCESS |
	    SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY },
	{ "notify lower case", SMTP_CMD_RCPT, "notify=delay,failure", 0,
	    SMTP_PARAM_NOTIFY, 0, 0, 0, SMTP_NOTIFY_DELAY |
	    SMTP_NOTIFY_FAILURE },
	{ "NOTIFY item twice", SMTP_CMD_RCPT, "NOTIFY=DELAY,DELAY", 0,
	    SMTP_PARAM_NOTIFY, 0, 0, 0, SMTP_NOTIFY_DELAY },
	{ "NOTIFY=NEVER,SUCCESS", SMTP_CMD_RCPT, "NOTIFY=NEVER,SUCCESS",
	    SMTP_ERR_PARAM_VALUE },
	{ "NOTIFY=SUCCESS,NEVER", SMTP_CMD_RCPT, "NOTIFY=SUCCESS,NEVER",
	    SMTP_ERR_PARAM_VALUE },
	{ "NOTIFY trailing comma", SMTP_CMD_RCPT, "NOTIFY=SUCCESS,",
	    SMTP_ERR_PARAM_VALUE },
	{ "NOTIFY leading comma", SMTP_CMD_RCPT, "NOTIFY=,SUCCESS",
	    SMTP_ERR_PARAM_VALUE },
	{ "NOTIFY two commas", SMTP_CMD_RCPT, "NOTIFY=SUCCESS,,DELAY",
	    SMTP_ERR_PARAM_VALUE },
	{ "NOTIFY=SOMETIMES", SMTP_CMD_RCPT, "NOTIFY=SOMETIMES",
	    SMTP_ERR_PARAM_VALUE },
	{ "NOTIFY=", SMTP_CMD_RCPT, "NOTIFY=", SMTP_ERR_PARAM_SYNTAX },
	{ "NOTIFY no value", SMTP_CMD_RCPT, "NOTIFY", SMTP_ERR_PARAM_VALUE },
	{ "NOTIFY twice", SMTP_CMD_RCPT, "NOTIFY=NEVER NOTIFY=NEVER",
	    SMTP_ERR_PARAM_REPEAT },
	{ "NOTIFY on MAIL", SMTP_CMD_MAIL, "NOTIFY=NEVER",
	    SMTP_ERR_PARAM_VERB },

	/* ORCPT, RFC 3461 4.2 */
	{ "ORCPT", SMTP_CMD_RCPT, "ORCPT=rfc822;a@b", 0, SMTP_PARAM_ORCPT, 0,
	    0, 0, 0, NULL, NULL, "rfc822", "a@b" },
	{ "ORCPT xtext", SMTP_CMD_RCPT, "ORCPT=rfc822;a+2Bb@c", 0,
	    SMTP_PARAM_ORCPT, 0, 0, 0, 0, NULL, NULL, "rfc822", "a+2Bb@c" },
	{ "ORCPT utf-8 type", SMTP_CMD_RCPT, "ORCPT=utf-8;a@b", 0,
	    SMTP_PARAM_ORCPT, 0, 0, 0, 0, NULL, NULL, "utf-8", "a@b" },
	{ "ORCPT without ';'", SMTP_CMD_RCPT, "ORCPT=rfc822",
	    SMTP_ERR_PARAM_VALUE },
	{ "ORCPT no type", SMTP_CMD_RCPT, "ORCPT=;a@b", SMTP_ERR_PARAM_VALUE },
	{ "ORCPT no address", SMTP_CMD_RCPT, "ORCPT=rfc822;",
	    SMTP_ERR_PARAM_VALUE },
	{ "ORCPT bad type", SMTP_CMD_RCPT, "ORCPT=rfc(822);a",
	    SMTP_ERR_PARAM_VALUE },
	{ "ORCPT +2b", SMTP_CMD_RCPT, "ORCPT=rfc822;a+2b",
	    SMTP_ERR_XTEXT },
	{ "ORCPT two ';'", SMTP_CMD_RCPT, "ORCPT=rfc822;a;b", 0,
	    SMTP_PARAM_ORCPT, 0, 0, 0, 0, NULL, NULL, "rfc822", "a;b" },
	{ "ORCPT decodes CR", SMTP_CMD_RCPT, "ORCPT=rfc822;a+0Db",
	    SMTP_ERR_PARAM_VALUE },
	{ "ORCPT no value", SMTP_CMD_RCPT, "ORCPT", SMTP_ERR_PARAM_VALUE },
	{ "ORCPT twice", SMTP_CMD_RCPT, "ORCPT=rfc822;a ORCPT=rfc822;a",
	    SMTP_ERR_PARAM_REPEAT },
	{ "ORCPT on MAIL", SMTP_CMD_MAIL, "ORCPT=rfc822;a@b",
	    SMTP_ERR_PARAM_VERB },

	/* keywords */
	{ "unknown", SMTP_CMD_MAIL, "FOO=bar", SMTP_ERR_PARAM_UNKNOWN },
	{ "unknown, no value", SMTP_CMD_RCPT, "X-FOO", SMTP_ERR_PARAM_UNKNOWN },
	{ "MT-PRIORITY", SMTP_CMD_MAIL, "MT-PRIORITY=3",
	    SMTP_ERR_PARAM_UNKNOWN },
	{ "prefix of a keyword", SMTP_CMD_MAIL, "SIZ=1",
	    SMTP_ERR_PARAM_UNKNOWN },
	{ "keyword and more", SMTP_CMD_MAIL, "SIZES=1",
	    SMTP_ERR_PARAM_UNKNOWN },
	{ "no keyword", SMTP_CMD_MAIL, "=x", SMTP_ERR_PARAM_SYNTAX },
	{ "hyphen first", SMTP_CMD_MAIL, "-FOO", SMTP_ERR_PARAM_SYNTAX },
	{ "underscore", SMTP_CMD_MAIL, "FO_O=1", SMTP_ERR_PARAM_SYNTAX },
	{ "value '='", SMTP_CMD_MAIL, "FOO==", SMTP_ERR_PARAM_SYNTAX },
	{ "control", SMTP_CMD_MAIL, "SIZE=1\x01", SMTP_ERR_PARAM_SYNTAX },
	{ "8-bit keyword", SMTP_CMD_MAIL, "S\xc3\xa9=1",
	    SMTP_ERR_PARAM_SYNTAX },
	{ "unknown verb", SMTP_CMD_EHLO, "SIZE=1", SMTP_ERR_PARAM_VERB },

	/* several */
	{ "all of MAIL", SMTP_CMD_MAIL,
	    "SIZE=10 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=x AUTH=<>", 0,
	    SMTP_PARAM_SIZE | SMTP_PARAM_BODY | SMTP_PARAM_SMTPUTF8 |
	    SMTP_PARAM_RET | SMTP_PARAM_ENVID | SMTP_PARAM_AUTH, 10,
	    SMTP_BODY_8BITMIME, SMTP_RET_HDRS, 0, "x", "<>" },
	{ "all of RCPT", SMTP_CMD_RCPT, "NOTIFY=FAILURE ORCPT=rfc822;x", 0,
	    SMTP_PARAM_NOTIFY | SMTP_PARAM_ORCPT, 0, 0, 0,
	    SMTP_NOTIFY_FAILURE, NULL, NULL, "rfc822", "x" },
	{ "many SP", SMTP_CMD_MAIL, "  SIZE=1    BODY=7BIT  ", 0,
	    SMTP_PARAM_SIZE | SMTP_PARAM_BODY, 1, SMTP_BODY_7BIT },
	{ "first error wins", SMTP_CMD_MAIL, "FOO=1 SIZE=x",
	    SMTP_ERR_PARAM_UNKNOWN },
	{ "first error wins, again", SMTP_CMD_MAIL, "SIZE=x FOO=1",
	    SMTP_ERR_PARAM_VALUE },
};

static const struct args_case args_cases[] = {
	{ "MAIL with SIZE", "MAIL FROM:<a@b> SIZE=1", 0, 0, "a@b",
	    SMTP_PARAM_SIZE },
	{ "MAIL, SP then SIZE", "MAIL FROM: <a@b>  SIZE=1 ", 0, 0, "a@b",
	    SMTP_PARAM_SIZE },
	{ "MAIL, no SP before SIZE", "MAIL FROM:<a@b>SIZE=1", 0,
	    SMTP_ERR_PARAM_SYNTAX },
	{ "MAIL, junk after path", "MAIL FROM:<a@b>>", 0,
	    SMTP_ERR_PARAM_SYNTAX },
	{ "MAIL null with BODY", "MAIL FROM:<> BODY=8BITMIME", 0, 0, "",
	    SMTP_PARAM_BODY },
	{ "MAIL UTF-8 with SMTPUTF8", "MAIL FROM:<\xc3\xa9@b> SMTPUTF8", 1, 0,
	    "\xc3\xa9@b", SMTP_PARAM_SMTPUTF8 },
	{ "MAIL UTF-8 without SMTPUTF8", "MAIL FROM:<\xc3\xa9@b>", 1,
	    SMTP_ERR_NEED_UTF8 },
	{ "MAIL UTF-8, not offered", "MAIL FROM:<\xc3\xa9@b> SMTPUTF8", 0,
	    SMTP_ERR_NEED_UTF8 },
	{ "MAIL ASCII with SMTPUTF8", "MAIL FROM:<a@b> SMTPUTF8", 0, 0, "a@b",
	    SMTP_PARAM_SMTPUTF8 },
	{ "MAIL bad path", "MAIL FROM:<a..b@c> SIZE=1", 0,
	    SMTP_ERR_LOCAL_SYNTAX },
	{ "MAIL bad param", "MAIL FROM:<a@b> SIZE=x", 0,
	    SMTP_ERR_PARAM_VALUE },
	{ "MAIL 8-bit param", "MAIL FROM:<a@b> ENVID=\xc3\xa9", 1,
	    SMTP_ERR_PARAM_SYNTAX },
	{ "RCPT with DSN", "RCPT TO:<a@b> NOTIFY=NEVER ORCPT=rfc822;a@b", 0, 0,
	    "a@b", SMTP_PARAM_NOTIFY | SMTP_PARAM_ORCPT },
	{ "RCPT UTF-8 in a UTF-8 transaction", "RCPT TO:<\xc3\xa9@b>", 1, 0,
	    "\xc3\xa9@b", 0 },
	{ "RCPT UTF-8 otherwise", "RCPT TO:<\xc3\xa9@b>", 0,
	    SMTP_ERR_NEED_UTF8 },
	{ "RCPT with a MAIL parameter", "RCPT TO:<a@b> SIZE=1", 0,
	    SMTP_ERR_PARAM_VERB },
	{ "RCPT null", "RCPT TO:<>", 0, SMTP_ERR_NULL_PATH },
	{ "RCPT postmaster", "RCPT TO:<Postmaster>", 0, 0, "Postmaster", 0 },
	{ "RCPT unbracketed", "RCPT TO:a@b", 0, SMTP_ERR_PATH_SYNTAX },
};

static const struct xtext_case xtext_cases[] = {
	{ "", 0, "", 0 },
	{ "abc", 0, "abc", 3 },
	{ "+2B", 0, "+", 1 },
	{ "a+3Db", 0, "a=b", 3 },
	{ "+41+42", 0, "AB", 2 },
	{ "!~<>", 0, "!~<>", 4 },
	{ "+FF", 0, "\xff", 1 },
	{ "+00", 0, "\0", 1 },
	{ "a+00b", 0, "a\0b", 3 },
	{ "+2b", SMTP_ERR_XTEXT },
	{ "+", SMTP_ERR_XTEXT },
	{ "a+", SMTP_ERR_XTEXT },
	{ "+2", SMTP_ERR_XTEXT },
	{ "+G0", SMTP_ERR_XTEXT },
	{ "+ 2B", SMTP_ERR_XTEXT },
	{ "a b", SMTP_ERR_XTEXT },
	{ "a=b", SMTP_ERR_XTEXT },
	{ "\x7f", SMTP_ERR_XTEXT },
	{ "\x01", SMTP_ERR_XTEXT },
	{ "\xc3\xa9", SMTP_ERR_XTEXT },
};

static const struct b64_case b64_cases[] = {
	{ "user", "dXNlcg==", 0, "user" },
	{ "one octet", "YQ==", 0, "a" },
	{ "two octets", "YWI=", 0, "ab" },
	{ "three octets", "YWJj", 0, "abc" },
	{ "UTF-8", "w6k=", 0, "\xc3\xa9" },
	{ "'=' is empty", "=", 0, "" },
	{ "empty line is empty", "", 0, "" },
	{ "'*' cancels", "*", SMTP_ERR_AUTH_CANCEL },
	{ "no padding", "dXNlcg", SMTP_ERR_BASE64 },
	{ "half padding", "dXNlcg=", SMTP_ERR_BASE64 },
	{ "extra padding", "dXNlcg===", SMTP_ERR_BASE64 },
	{ "padding then data", "dQ==dQ==", SMTP_ERR_BASE64 },
	{ "SP inside", "dXNl cg==", SMTP_ERR_BASE64 },
	{ "SP at end", "dXNlcg== ", SMTP_ERR_BASE64 },
	{ "spare bits set", "dXNlch==", SMTP_ERR_BASE64 },
	{ "spare bits set, one", "YR==", SMTP_ERR_BASE64 },
	{ "URL-safe '-'", "dX-lcg==", SMTP_ERR_BASE64 },
	{ "URL-safe '_'", "dX_lcg==", SMTP_ERR_BASE64 },
	{ "one char", "d", SMTP_ERR_BASE64 },
	/* libsodium 1.0.18 takes these for '/' */
	{ "0xff octets", "\xff\xff\xff\xff", SMTP_ERR_BASE64 },
	{ "0x80 inside", "dXNl\x80g==", SMTP_ERR_BASE64 },
	{ "8-bit after padding", "dXNlcg==\xc3", SMTP_ERR_BASE64 },
	{ "the real '/'", "////", 0, "\xff\xff\xff" },
	{ "'**'", "**", SMTP_ERR_BASE64 },
	{ "'=='", "==", SMTP_ERR_BASE64 },
	{ "decodes NUL", "AA==", SMTP_ERR_AUTH_SYNTAX },
	{ "decodes user NUL admin", "dXNlcgBhZG1pbg==", SMTP_ERR_AUTH_SYNTAX },
};

static const struct plain_case plain_cases[] = {
	{ "no authzid", L("\0user\0pass"), NULL, 0, "", "user", "pass" },
	{ "same authzid", L("user\0user\0pass"), NULL, 0, "user", "user",
	    "pass" },
	{ "other authzid", L("other\0user\0pass"), NULL, SMTP_ERR_AUTHZID },
	{ "authzid differs in case", L("User\0user\0pass"), NULL,
	    SMTP_ERR_AUTHZID },
	{ "authzid a prefix", L("use\0user\0pass"), NULL, SMTP_ERR_AUTHZID },
	{ "authzid longer", L("users\0user\0pass"), NULL, SMTP_ERR_AUTHZID },
	{ "one NUL", L("user\0pass"), NULL, SMTP_ERR_AUTH_SYNTAX },
	{ "no NUL", L("userpass"), NULL, SMTP_ERR_AUTH_SYNTAX },
	{ "empty authcid", L("\0\0pass"), NULL, SMTP_ERR_AUTH_SYNTAX },
	{ "empty passwd", L("\0user\0"), NULL, SMTP_ERR_AUTH_SYNTAX },
	{ "NUL in passwd", L("\0user\0pa\0ss"), NULL, SMTP_ERR_AUTH_SYNTAX },
	{ "NUL after passwd", L("\0user\0pass\0"), NULL,
	    SMTP_ERR_AUTH_SYNTAX },
	{ "three NULs", L("\0\0\0"), NULL, SMTP_ERR_AUTH_SYNTAX },
	{ "NUL alone", L("\0"), NULL, SMTP_ERR_AUTH_SYNTAX },
	{ "UTF-8", L("\0\xc3\xa9\0p\xc3\xa9"), NULL, 0, "", "\xc3\xa9",
	    "p\xc3\xa9" },
	{ "SP in passwd", L("\0user\0p w d"), NULL, 0, "", "user", "p w d" },
	{ "overlong login", L("\0\xc0\xaf\0pass"), NULL,
	    SMTP_ERR_AUTH_SYNTAX },
	{ "0xff passwd", L("\0user\0\xff"), NULL, SMTP_ERR_AUTH_SYNTAX },
	{ "surrogate authzid", L("\xed\xa0\x80\0user\0pass"), NULL,
	    SMTP_ERR_AUTH_SYNTAX },
	{ "'=' is empty", NULL, 0, "=", SMTP_ERR_AUTH_SYNTAX },
	{ "'*' cancels", NULL, 0, "*", SMTP_ERR_AUTH_CANCEL },
	{ "no padding", NULL, 0, "AHVzZXIAcGFzcw", SMTP_ERR_BASE64 },
	{ "not base64", NULL, 0, "!!!!", SMTP_ERR_BASE64 },
	{ "'/' is fine", NULL, 0, "AHVzZXIAcGF/cw==", 0, "", "user",
	    "pa\x7fs" },
	{ "0xff for '/'", NULL, 0, "AHVzZXIAcGF\xff" "cw==", SMTP_ERR_BASE64 },
	{ "SP inside", NULL, 0, "AHVzZXIA cGFzcw==", SMTP_ERR_BASE64 },
	{ "known good", NULL, 0, "AHVzZXIAcGFzcw==", 0, "", "user", "pass" },
};

static const struct sender_case sender_cases[] = {
	{ "alice@example.org", "alice@example.org", 1 },
	{ "alice@example.org", "Alice@Example.ORG", 1 },
	{ "ALICE@EXAMPLE.ORG", "alice@example.org", 1 },
	{ "alice@example.org", "bob@example.org", 0 },
	{ "alice@example.org", "alice@example.org.evil", 0 },
	{ "alice@example.org", "alice@sub.example.org", 0 },
	{ "alice@example.org", "alice@example.or", 0 },
	{ "alice@example.or", "alice@example.org", 0 },
	{ "alice@example.org", "xalice@example.org", 0 },
	{ "@example.org", "x@example.org", 1 },
	{ "@example.org", "x@EXAMPLE.org", 1 },
	{ "@example.org", "\"a@b\"@example.org", 1 },
	{ "@example.org", "x@sub.example.org", 0 },
	{ "@example.org", "x@example.org.evil", 0 },
	{ "@example.org", "x@evilexample.org", 0 },
	{ "@example.org", "x@example.or", 0 },
	{ "@example.org", "postmaster", 0 },
	{ "@example.org", "example.org", 0 },
	{ "*", "anyone@anywhere.example", 1 },
	{ "*", "postmaster", 1 },
	{ "**", "a@b", 0 },
	{ "", "", 1 },
	{ "", "a@b", 0 },
	{ NULL, "", 1 },
	{ NULL, "a@b", 0 },
	{ "alice@example.org", "", 1 },
	{ "alice@a.org\n@b.org\n", "alice@a.org", 1 },
	{ "alice@a.org\n@b.org\n", "bob@b.org", 1 },
	{ "alice@a.org\n@b.org\n", "bob@a.org", 0 },
	{ "\n\nalice@a.org\n\n", "alice@a.org", 1 },
	{ "\n\n", "alice@a.org", 0 },
	{ "bob@a.org\n*", "x@y", 1 },
	{ "*\nbob@a.org", "x@y", 1 },
	{ "alice@a.org ", "alice@a.org", 0 },
};

static const struct reply_case reply_cases[] = {
	{ SMTP_PARSE_OK, SMTP_CMD_MAIL, 250, "2.0.0" },
	{ SMTP_ERR_SYNTAX, SMTP_CMD_UNKNOWN, 500, "5.5.2" },
	{ SMTP_ERR_TOOLONG, SMTP_CMD_MAIL, 500, "5.5.2" },
	{ SMTP_ERR_NUL, SMTP_CMD_NOOP, 500, "5.5.2" },
	{ SMTP_ERR_CRLF, SMTP_CMD_NOOP, 500, "5.5.2" },
	{ SMTP_ERR_UNKNOWN, SMTP_CMD_UNKNOWN, 500, "5.5.1" },
	{ SMTP_ERR_CTRL, SMTP_CMD_EHLO, 501, "5.5.4" },
	{ SMTP_ERR_8BIT, SMTP_CMD_EHLO, 501, "5.5.4" },
	{ SMTP_ERR_ARG_MISSING, SMTP_CMD_EHLO, 501, "5.5.4" },
	{ SMTP_ERR_ARG_EXTRA, SMTP_CMD_DATA, 501, "5.5.4" },
	{ SMTP_ERR_ARG_SYNTAX, SMTP_CMD_MAIL, 501, "5.5.4" },
	{ SMTP_ERR_PATH_SYNTAX, SMTP_CMD_MAIL, 501, "5.1.7" },
	{ SMTP_ERR_PATH_SYNTAX, SMTP_CMD_RCPT, 501, "5.1.3" },
	{ SMTP_ERR_NULL_PATH, SMTP_CMD_RCPT, 501, "5.1.3" },
	{ SMTP_ERR_LOCAL_TOOLONG, SMTP_CMD_MAIL, 501, "5.1.7" },
	{ SMTP_ERR_DOMAIN_TOOLONG, SMTP_CMD_RCPT, 501, "5.1.3" },
	{ SMTP_ERR_LITERAL_GENERAL, SMTP_CMD_RCPT, 553, "5.1.3" },
	{ SMTP_ERR_UTF8, SMTP_CMD_MAIL, 501, "5.1.7" },
	{ SMTP_ERR_NEED_UTF8, SMTP_CMD_MAIL, 553, "5.6.7" },
	{ SMTP_ERR_NEED_UTF8, SMTP_CMD_RCPT, 553, "5.6.7" },
	{ SMTP_ERR_PARAM_SYNTAX, SMTP_CMD_MAIL, 501, "5.5.4" },
	{ SMTP_ERR_PARAM_UNKNOWN, SMTP_CMD_MAIL, 555, "5.5.4" },
	{ SMTP_ERR_PARAM_VERB, SMTP_CMD_RCPT, 555, "5.5.4" },
	{ SMTP_ERR_PARAM_REPEAT, SMTP_CMD_MAIL, 501, "5.5.4" },
	{ SMTP_ERR_PARAM_VALUE, SMTP_CMD_MAIL, 501, "5.5.4" },
	{ SMTP_ERR_XTEXT, SMTP_CMD_RCPT, 501, "5.5.4" },
	{ SMTP_ERR_SIZE_OVERFLOW, SMTP_CMD_MAIL, 552, "5.3.4" },
	{ SMTP_ERR_AUTH_CANCEL, SMTP_CMD_AUTH, 501, "5.7.0" },
	{ SMTP_ERR_AUTH_TOOLONG, SMTP_CMD_AUTH, 500, "5.5.6" },
	{ SMTP_ERR_BASE64, SMTP_CMD_AUTH, 501, "5.5.2" },
	{ SMTP_ERR_AUTH_SYNTAX, SMTP_CMD_AUTH, 535, "5.7.8" },
	{ SMTP_ERR_AUTHZID, SMTP_CMD_AUTH, 535, "5.7.8" },
	{ SMTP_ERR_SPACE, SMTP_CMD_AUTH, 535, "5.7.8" },
	{ SMTP_ERR_SPACE, SMTP_CMD_MAIL, 501, "5.5.4" },
	{ -1, SMTP_CMD_MAIL, 451, "4.3.0" },
	{ SMTP_ERR_MAX, SMTP_CMD_MAIL, 451, "4.3.0" },
	{ 1000, SMTP_CMD_MAIL, 451, "4.3.0" },
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

/*
 * cmd_of - smtp_parse_command() on an exact copy; the pointers it
 * leaves are rebased onto the caller's line before the copy goes
 */
static int
cmd_of(const char *line, size_t len, struct smtp_cmd *cmd)
{
	char	*q = exact_copy(line, len);
	int	 rc;

	rc = smtp_parse_command(q, len, cmd);
	if (cmd->arg != NULL) {
		if (cmd->arg < q || cmd->arg + cmd->arglen > q + len)
			fail_msg("arg outside the line");
		cmd->arg = line + (cmd->arg - q);
	}
	if (cmd->mech != NULL)
		cmd->mech = line + (cmd->mech - q);
	if (cmd->resp != NULL) {
		if (cmd->resp < q || cmd->resp + cmd->resplen > q + len)
			fail_msg("resp outside the line");
		cmd->resp = line + (cmd->resp - q);
	}
	free(q);
	return rc;
}

static int
path_of(enum smtp_verb verb, const char *s, size_t len, int utf8,
    struct smtp_path *p, size_t *used)
{
	char	*q = exact_copy(s, len);
	int	 rc;

	rc = smtp_parse_path(verb, q, len, utf8, p, used);
	free(q);
	if (*used > len)
		fail_msg("used %zu > len %zu", *used, len);
	return rc;
}

/* params_of - parameters, in an exact copy that lives until the next call */
static int
params_of(enum smtp_verb verb, const char *s, struct smtp_params *out)
{
	static char	*q;
	size_t		 n = strlen(s);

	free(q);
	q = exact_copy(s, n);
	return smtp_parse_params(q, n, verb, out);
}

/* check_raw - a raw value the parser pointed at is the one expected */
static void
check_raw(const char *what, const char *want, const char *got, size_t glen)
{
	if (want == NULL) {
		if (got != NULL)
			fail_msg("%s: value set", what);
		return;
	}
	if (got == NULL || glen != strlen(want) || memcmp(got, want, glen))
		fail_msg("%s: value \"%.*s\", want \"%s\"", what,
		    got != NULL ? (int)glen : 6, got != NULL ? got : "(null)",
		    want);
}

/*
 * make_domain - a hostname of exactly n octets (n > 0) in labels of at
 * most 63: dots at 64, 128, ..., and no label of zero length
 */
static size_t
make_domain(char *d, size_t n)
{
	size_t	 i = 0, lab;

	while (i < n) {
		lab = n - i;
		if (lab > 63)
			lab = n - i == 64 ? 62 : 63;
		memset(d + i, 'a' + (int)(i % 26), lab);
		i += lab;
		if (i < n)
			d[i++] = '.';
	}
	d[n] = '\0';
	return n;
}

/*
 * ref_utf8 - k octets are exactly one UTF-8 character: decoded
 * arithmetically, then judged on the code point (RFC 3629 3)
 */
static int
ref_utf8(const unsigned char *b, size_t k)
{
	static const uint32_t	 min[] = { 0, 0, 0x80, 0x800, 0x10000 };
	uint32_t		 cp;
	size_t			 need, i;

	if ((b[0] & 0xe0) == 0xc0) {
		need = 2;
		cp = b[0] & 0x1f;
	} else if ((b[0] & 0xf0) == 0xe0) {
		need = 3;
		cp = b[0] & 0x0f;
	} else if ((b[0] & 0xf8) == 0xf0) {
		need = 4;
		cp = b[0] & 0x07;
	} else
		return 0;
	if (need != k)
		return 0;
	for (i = 1; i < k; i++) {
		if ((b[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (b[i] & 0x3f);
	}
	return cp >= min[need] && cp <= 0x10ffff &&
	    !(cp >= 0xd800 && cp <= 0xdfff);
}

/* check_utf8_seq - "<seq@b>" parses iff seq is one valid character */
static void
check_utf8_seq(const unsigned char *seq, size_t k)
{
	struct smtp_path	 p;
	char			 in[16];
	size_t			 used;
	int			 rc, want;

	in[0] = '<';
	memcpy(in + 1, seq, k);
	memcpy(in + 1 + k, "@b>", 3);
	rc = smtp_parse_path(SMTP_CMD_MAIL, in, k + 4, 1, &p, &used);
	want = ref_utf8(seq, k) ? SMTP_PARSE_OK : SMTP_ERR_UTF8;
	if (rc != want)
		fail_msg("%02x %02x %02x %02x (%zu): %d, want %d", seq[0],
		    k > 1 ? seq[1] : 0, k > 2 ? seq[2] : 0, k > 3 ? seq[3] : 0,
		    k, rc, want);
}

static void
test_smtp_parse_command_table(void **state)
{
	const struct cmd_case	*c;
	struct smtp_cmd		 cmd;
	size_t			 i;
	int			 rc;

	for (i = 0; i < sizeof(cmd_cases) / sizeof(cmd_cases[0]); i++) {
		c = &cmd_cases[i];
		rc = cmd_of(c->line, c->len, &cmd);
		if (rc != c->err)
			fail_msg("%s: %d (%s), want %d (%s)", c->what, rc,
			    smtp_parse_strerror(rc), c->err,
			    smtp_parse_strerror(c->err));
		if (cmd.verb != c->verb)
			fail_msg("%s: verb %d, want %d", c->what, cmd.verb,
			    c->verb);
		if (rc != SMTP_PARSE_OK)
			continue;
		check_raw(c->what, c->arg, cmd.arg, cmd.arglen);
	}
}

/* the parts of AUTH and BDAT arguments */
static void
test_smtp_parse_command_parts(void **state)
{
	struct smtp_cmd	 cmd;

	assert_int_equal(cmd_of(L("AUTH PLAIN dGVzdA=="), &cmd), 0);
	check_raw("mech", "PLAIN", cmd.mech, cmd.mechlen);
	check_raw("resp", "dGVzdA==", cmd.resp, cmd.resplen);
	assert_int_equal(cmd_of(L("auth  login  "), &cmd), 0);
	check_raw("mech", "login", cmd.mech, cmd.mechlen);
	assert_null(cmd.resp);
	assert_int_equal(cmd_of(L("AUTH PLAIN ="), &cmd), 0);
	check_raw("resp", "=", cmd.resp, cmd.resplen);

	assert_int_equal(cmd_of(L("BDAT 100"), &cmd), 0);
	assert_true(cmd.chunk == 100 && !cmd.last);
	assert_int_equal(cmd_of(L("BDAT 0 LAST"), &cmd), 0);
	assert_true(cmd.chunk == 0 && cmd.last);
	assert_int_equal(cmd_of(L("BDAT 18446744073709551615 last"), &cmd), 0);
	assert_true(cmd.chunk == UINT64_MAX && cmd.last);
}

/*
 * RFC 5321 4.5.3.1.4: 512 octets with the CRLF, so 510 without; MAIL
 * and RCPT get what the extensions add.  Length is judged before
 * anything else.
 */
static void
test_smtp_parse_command_length(void **state)
{
	static const struct {
		const char	*head;
		enum smtp_verb	 verb;
		size_t		 max;
	} rows[] = {
		{ "NOOP ", SMTP_CMD_NOOP, SMTP_CMD_MAX - 2 },
		{ "EHLO ", SMTP_CMD_EHLO, SMTP_CMD_MAX - 2 },
		{ "AUTH PLAIN ", SMTP_CMD_AUTH, SMTP_CMD_MAX - 2 },
		{ "XYZZY ", SMTP_CMD_UNKNOWN, SMTP_CMD_MAX - 2 },
		{ "MAIL FROM:<a@b> ENVID=", SMTP_CMD_MAIL,
		    SMTP_CMD_MAX - 2 + SMTP_MAIL_EXTRA },
		{ "RCPT TO:<a@b> ORCPT=rfc822;", SMTP_CMD_RCPT,
		    SMTP_CMD_MAX - 2 + SMTP_RCPT_EXTRA },
	};
	struct smtp_cmd	 cmd;
	char		 line[2048];
	size_t		 i, hl;
	int		 rc;

	assert_int_equal(SMTP_CMD_MAX - 2, 510);
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		hl = strlen(rows[i].head);
		memcpy(line, rows[i].head, hl);
		memset(line + hl, 'x', sizeof(line) - hl);
		rc = cmd_of(line, rows[i].max, &cmd);
		if (rc == SMTP_ERR_TOOLONG)
			fail_msg("%s at %zu: too long", rows[i].head,
			    rows[i].max);
		assert_int_equal(cmd.verb, rows[i].verb);
		assert_int_equal(cmd_of(line, rows[i].max + 1, &cmd),
		    SMTP_ERR_TOOLONG);
		assert_int_equal(cmd.verb, rows[i].verb);
		assert_int_equal(cmd_of(line, sizeof(line), &cmd),
		    SMTP_ERR_TOOLONG);
		/* too long wins over NUL and CR inside */
		line[hl] = '\0';
		line[hl + 1] = '\r';
		assert_int_equal(cmd_of(line, rows[i].max + 1, &cmd),
		    SMTP_ERR_TOOLONG);
		assert_int_equal(cmd_of(line, rows[i].max, &cmd),
		    SMTP_ERR_NUL);
	}
	/* 512 with CRLF is fine, 513 is not */
	memcpy(line, "NOOP ", 5);
	memset(line + 5, 'x', 505);
	assert_int_equal(cmd_of(line, 510, &cmd), 0);
	assert_int_equal(cmd.arglen, 505);
	assert_int_equal(cmd_of(line, 511, &cmd), SMTP_ERR_TOOLONG);
}

static void
test_smtp_parse_path_table(void **state)
{
	const struct path_case	*c;
	struct smtp_path	 p;
	size_t			 i, used;
	int			 rc;

	for (i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]); i++) {
		c = &path_cases[i];
		rc = path_of(c->verb, c->in, c->len, c->utf8, &p, &used);
		if (rc != c->err)
			fail_msg("%s: %d (%s), want %d (%s)", c->what, rc,
			    smtp_parse_strerror(rc), c->err,
			    smtp_parse_strerror(c->err));
		if (rc != SMTP_PARSE_OK)
			continue;
		if (strcmp(p.addr, c->addr) != 0 || p.len != strlen(c->addr))
			fail_msg("%s: addr \"%s\" (%zu), want \"%s\"", c->what,
			    p.addr, p.len, c->addr);
		if (p.at != c->at)
			fail_msg("%s: at %zu, want %zu", c->what, p.at, c->at);
		if (p.at < p.len && p.addr[p.at] != '@')
			fail_msg("%s: no '@' at %zu", c->what, p.at);
		if (p.flags != c->flags)
			fail_msg("%s: flags %#x, want %#x", c->what, p.flags,
			    c->flags);
		if (used != c->used)
			fail_msg("%s: used %zu, want %zu", c->what, used,
			    c->used);
	}
}

/* local part 64 vs 65, quoted or not; label 63 vs 64; domain 255 vs 256 */
static void
test_smtp_parse_path_limits(void **state)
{
	struct smtp_path	 p;
	char			 in[1024], dom[300];
	size_t			 n, used, i;

	n = (size_t)snprintf(in, sizeof(in), "<%.64s@b>", "aaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	assert_int_equal(path_of(SMTP_CMD_MAIL, in, n, 0, &p, &used), 0);
	assert_int_equal(p.at, 64);
	n = (size_t)snprintf(in, sizeof(in), "<a%.64s@b>", "aaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	assert_int_equal(path_of(SMTP_CMD_MAIL, in, n, 0, &p, &used),
	    SMTP_ERR_LOCAL_TOOLONG);

	/* 64 dots and letters */
	in[0] = '<';
	for (i = 0; i < 64; i++)
		in[1 + i] = i % 2 ? '.' : 'a';
	in[64] = 'b';
	memcpy(in + 65, "@b>", 3);
	assert_int_equal(path_of(SMTP_CMD_MAIL, in, 68, 0, &p, &used), 0);

	/* quoted: 64 octets once unquoted, 130 as written */
	n = 0;
	in[n++] = '<';
	in[n++] = '"';
	for (i = 0; i < 64; i++) {
		in[n++] = '\\';
		in[n++] = '"';
	}
	memcpy(in + n, "\"@b>", 4);
	assert_int_equal(path_of(SMTP_CMD_MAIL, in, n + 4, 0, &p, &used), 0);
	assert_int_equal(p.at, 130);
	memmove(in + 3, in + 2, n + 2);
	in[2] = 'x';
	assert_int_equal(path_of(SMTP_CMD_MAIL, in, n + 5, 0, &p, &used),
	    SMTP_ERR_LOCAL_TOOLONG);
	/* UTF-8 counts octets: 32 two-octet characters are 64 */
	n = 0;
	in[n++] = '<';
	for (i = 0; i < 32; i++) {
		in[n++] = '\xc3';
		in[n++] = '\xa9';
	}
	memcpy(in + n, "@b>", 3);
	assert_int_equal(path_of(SMTP_CMD_MAIL, in, n + 3, 1, &p, &used), 0);
	memmove(in + 2, in + 1, n + 2);
	in[1] = 'x';
	assert_int_equal(path_of(SMTP_CMD_MAIL, in, n + 4, 1, &p, &used),
	    SMTP_ERR_LOCAL_TOOLONG);

	/* labels */
	memset(dom, 'x', 64);
	n = (size_t)snprintf(in, sizeof(in), "<a@%.63s.com>", dom);
	assert_int_equal(path_of(SMTP_CMD_RCPT, in, n, 0, &p, &used), 0);
	n = (size_t)snprintf(in, sizeof(in), "<a@%.64s.com>", dom);
	assert_int_equal(path_of(SMTP_CMD_RCPT, in, n, 0, &p, &used),
	    SMTP_ERR_LABEL_TOOLONG);
	n = (size_t)snprintf(in, sizeof(in), "<a@b.%.64s>", dom);
	assert_int_equal(path_of(SMTP_CMD_RCPT, in, n, 0, &p, &used),
	    SMTP_ERR_LABEL_TOOLONG);

	/* the whole domain, for every length near the limit */
	for (i = 250; i <= 260; i++) {
		make_domain(dom, i);
		n = (size_t)snprintf(in, sizeof(in), "<a@%s>", dom);
		assert_int_equal(path_of(SMTP_CMD_RCPT, in, n, 0, &p, &used),
		    i <= 255 ? SMTP_PARSE_OK : SMTP_ERR_DOMAIN_TOOLONG);
	}

	/* the longest address: 130 written octets of local part + 255 */
	n = 0;
	in[n++] = '<';
	in[n++] = '"';
	for (i = 0; i < 64; i++) {
		in[n++] = '\\';
		in[n++] = '\\';
	}
	in[n++] = '"';
	in[n++] = '@';
	make_domain(in + n, 255);
	n += 255;
	in[n++] = '>';
	assert_int_equal(path_of(SMTP_CMD_RCPT, in, n, 0, &p, &used), 0);
	assert_int_equal(p.len, 130 + 1 + 255);
	assert_int_equal(strlen(p.addr), p.len);
	assert_true(p.len < sizeof(p.addr));
	assert_int_equal(used, n);
}

/* every two- and three-octet sequence, and the corners of four */
static void
test_smtp_parse_path_utf8(void **state)
{
	static const unsigned char	 tails[] = {
		0x00, 0x3e, 0x40, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf,
		0xc0, 0xff,
	};
	unsigned char			 s[4];
	unsigned int			 a, b, c, d;

	for (a = 0x80; a <= 0xff; a++) {
		s[0] = (unsigned char)a;
		check_utf8_seq(s, 1);
		for (b = 0; b <= 0xff; b++) {
			s[1] = (unsigned char)b;
			check_utf8_seq(s, 2);
		}
	}
	for (a = 0xe0; a <= 0xef; a++)
		for (b = 0; b <= 0xff; b++)
			for (c = 0; c <= 0xff; c++) {
				s[0] = (unsigned char)a;
				s[1] = (unsigned char)b;
				s[2] = (unsigned char)c;
				check_utf8_seq(s, 3);
			}
	for (a = 0xf0; a <= 0xf7; a++)
		for (b = 0; b <= 0xff; b++)
			for (c = 0; c < sizeof(tails); c++)
				for (d = 0; d < sizeof(tails); d++) {
					s[0] = (unsigned char)a;
					s[1] = (unsigned char)b;
					s[2] = tails[c];
					s[3] = tails[d];
					check_utf8_seq(s, 4);
				}
}

/* every single octet as a local part, and as a hostname */
static void
test_smtp_parse_path_octets(void **state)
{
	static const char	 atext[] = "!#$%&'*+-/=?^_`{|}~";
	struct smtp_path	 p;
	char			 in[8];
	size_t			 used;
	int			 c, rc, ok;

	for (c = 0; c < 0x80; c++) {
		memcpy(in, "<x@b>", 5);
		in[1] = (char)c;
		rc = path_of(SMTP_CMD_RCPT, in, 5, 0, &p, &used);
		ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') ||
		    (c != 0 && strchr(atext, c) != NULL);
		if ((rc == 0) != ok)
			fail_msg("local part 0x%02x: %d", c, rc);

		memcpy(in, "<a@x>", 5);
		in[3] = (char)c;
		rc = path_of(SMTP_CMD_RCPT, in, 5, 0, &p, &used);
		ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9');
		if ((rc == 0) != ok)
			fail_msg("domain 0x%02x: %d", c, rc);
	}
}

/* every prefix of a good path fails without reading past it */
static void
test_smtp_parse_path_prefixes(void **state)
{
	static const char	*good[] = {
		"<@a,@b:\"x\\\"y\"@[IPv6:2001:db8::1]>",
		"<a.b@c.d>", "<postmaster>", "<>", "<a@[192.0.2.1]>",
		"<\xc3\xa9@\xc3\xa9.x>",
	};
	struct smtp_path	 p;
	size_t			 i, n, len, used;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		len = strlen(good[i]);
		assert_int_equal(path_of(SMTP_CMD_RCPT, good[i], len, 1, &p,
		    &used) == 0 || i == 3, 1);
		for (n = 0; n < len; n++)
			if (path_of(SMTP_CMD_RCPT, good[i], n, 1, &p,
			    &used) == 0)
				fail_msg("\"%s\" cut at %zu parsed", good[i],
				    n);
	}
}

static void
test_smtp_parse_params_table(void **state)
{
	const struct param_case	*c;
	struct smtp_params	 out;
	size_t			 i;
	int			 rc;

	for (i = 0; i < sizeof(param_cases) / sizeof(param_cases[0]); i++) {
		c = &param_cases[i];
		rc = params_of(c->verb, c->in, &out);
		if (rc != c->err)
			fail_msg("%s: %d (%s), want %d (%s)", c->what, rc,
			    smtp_parse_strerror(rc), c->err,
			    smtp_parse_strerror(c->err));
		if (rc != SMTP_PARSE_OK)
			continue;
		if (out.seen != c->seen)
			fail_msg("%s: seen %#x, want %#x", c->what, out.seen,
			    c->seen);
		if (out.size != c->size)
			fail_msg("%s: size %llu", c->what,
			    (unsigned long long)out.size);
		if ((int)out.body != c->body || (int)out.ret != c->ret ||
		    out.notify != c->notify)
			fail_msg("%s: body %d ret %d notify %#x", c->what,
			    out.body, out.ret, out.notify);
		check_raw(c->what, c->envid, out.envid, out.envidlen);
		check_raw(c->what, c->auth, out.auth, out.authlen);
		check_raw(c->what, c->orcpt_type, out.orcpt_type,
		    out.orcpt_typelen);
		check_raw(c->what, c->orcpt, out.orcpt, out.orcptlen);
	}
}

/* the NUL row of the table is cut by strlen(); give it its length */
static void
test_smtp_parse_params_nul(void **state)
{
	struct smtp_params	 out;
	char			*q;

	q = exact_copy(L("SIZE=1\0"));
	assert_int_equal(smtp_parse_params(q, 7, SMTP_CMD_MAIL, &out),
	    SMTP_ERR_PARAM_SYNTAX);
	free(q);
	q = exact_copy(L("SIZE=1 \0"));
	assert_int_equal(smtp_parse_params(q, 8, SMTP_CMD_MAIL, &out),
	    SMTP_ERR_PARAM_SYNTAX);
	free(q);
	/* a length that stops before the bad octet sees none of it */
	q = exact_copy(L("SIZE=1\x01"));
	assert_int_equal(smtp_parse_params(q, 6, SMTP_CMD_MAIL, &out), 0);
	assert_true(out.size == 1);
	free(q);
}

/* ENVID 100 vs 101 decoded, ORCPT 500 vs 501, AUTH= 500 vs 501 */
static void
test_smtp_parse_params_limits(void **state)
{
	static const struct {
		const char	*head;
		enum smtp_verb	 verb;
		size_t		 max;
	} rows[] = {
		{ "ENVID=", SMTP_CMD_MAIL, SMTP_ENVID_MAX },
		{ "ORCPT=rfc822;", SMTP_CMD_RCPT, SMTP_ORCPT_MAX },
		{ "AUTH=", SMTP_CMD_MAIL, SMTP_AUTHPARAM_MAX },
	};
	struct smtp_params	 out;
	char			 in[2048];
	size_t			 i, hl, k;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		hl = strlen(rows[i].head);
		memcpy(in, rows[i].head, hl);
		memset(in + hl, 'x', rows[i].max + 1);
		in[hl + rows[i].max] = '\0';
		assert_int_equal(params_of(rows[i].verb, in, &out), 0);
		in[hl + rows[i].max] = 'x';
		in[hl + rows[i].max + 1] = '\0';
		assert_int_equal(params_of(rows[i].verb, in, &out),
		    SMTP_ERR_PARAM_VALUE);
		/* decoded length counts: max "+2B" are max octets */
		for (k = 0; k < rows[i].max; k++)
			memcpy(in + hl + 3 * k, "+2B", 3);
		in[hl + 3 * rows[i].max] = '\0';
		assert_int_equal(params_of(rows[i].verb, in, &out), 0);
		memcpy(in + hl + 3 * rows[i].max, "x", 2);
		assert_int_equal(params_of(rows[i].verb, in, &out),
		    SMTP_ERR_PARAM_VALUE);
	}
}

static void
test_smtp_parse_args_table(void **state)
{
	const struct args_case	*c;
	struct smtp_cmd		 cmd;
	struct smtp_path	 p;
	struct smtp_params	 out;
	char			*q;
	size_t			 i, n;
	int			 rc;

	for (i = 0; i < sizeof(args_cases) / sizeof(args_cases[0]); i++) {
		c = &args_cases[i];
		n = strlen(c->line);
		q = exact_copy(c->line, n);
		if ((rc = smtp_parse_command(q, n, &cmd)) != SMTP_PARSE_OK)
			fail_msg("%s: command: %s", c->what,
			    smtp_parse_strerror(rc));
		rc = smtp_parse_args(&cmd, c->utf8, &p, &out);
		if (rc != c->err)
			fail_msg("%s: %d (%s), want %d (%s)", c->what, rc,
			    smtp_parse_strerror(rc), c->err,
			    smtp_parse_strerror(c->err));
		if (rc == SMTP_PARSE_OK && (strcmp(p.addr, c->addr) != 0 ||
		    out.seen != c->seen))
			fail_msg("%s: addr \"%s\" seen %#x", c->what, p.addr,
			    out.seen);
		free(q);
	}

	/* not a MAIL or RCPT */
	assert_int_equal(cmd_of(L("EHLO x"), &cmd), 0);
	assert_int_equal(smtp_parse_args(&cmd, 0, &p, &out),
	    SMTP_ERR_ARG_SYNTAX);
}

static void
test_smtp_xtext_table(void **state)
{
	const struct xtext_case	*c;
	char			*q, dst[64];
	size_t			 i, n, outlen;
	int			 rc;

	for (i = 0; i < sizeof(xtext_cases) / sizeof(xtext_cases[0]); i++) {
		c = &xtext_cases[i];
		n = strlen(c->in);
		q = exact_copy(c->in, n);
		rc = smtp_xtext_decode(q, n, dst, sizeof(dst), &outlen);
		if (rc != c->err)
			fail_msg("\"%s\": %d, want %d", c->in, rc, c->err);
		if (rc == SMTP_PARSE_OK && (outlen != c->outlen ||
		    memcmp(dst, c->out, outlen) != 0 || dst[outlen] != '\0'))
			fail_msg("\"%s\": wrong result", c->in);
		/* counting only gives the same answer */
		rc = smtp_xtext_decode(q, n, NULL, 0, &outlen);
		if (rc != c->err || (rc == 0 && outlen != c->outlen))
			fail_msg("\"%s\": counting: %d", c->in, rc);
		free(q);
	}
}

/* dst must hold the result and its NUL */
static void
test_smtp_xtext_space(void **state)
{
	char	 dst[4];
	size_t	 outlen;

	assert_int_equal(smtp_xtext_decode("abc", 3, dst, 4, &outlen), 0);
	assert_string_equal(dst, "abc");
	assert_int_equal(smtp_xtext_decode("abc", 3, dst, 3, &outlen),
	    SMTP_ERR_SPACE);
	assert_int_equal(smtp_xtext_decode("+41+42+43", 9, dst, 4, &outlen),
	    0);
	assert_string_equal(dst, "ABC");
	assert_int_equal(smtp_xtext_decode("", 0, dst, 1, &outlen), 0);
	assert_string_equal(dst, "");
	assert_int_equal(smtp_xtext_decode("", 0, dst, 0, &outlen),
	    SMTP_ERR_SPACE);
	assert_int_equal(smtp_xtext_decode("a", 1, NULL, 0, NULL), 0);
}

static void
test_smtp_base64_table(void **state)
{
	const struct b64_case	*c;
	char			*q, dst[64];
	size_t			 i, n, outlen;
	int			 rc;

	for (i = 0; i < sizeof(b64_cases) / sizeof(b64_cases[0]); i++) {
		c = &b64_cases[i];
		n = strlen(c->in);
		q = exact_copy(c->in, n);
		memset(dst, 'Z', sizeof(dst));
		rc = smtp_base64_decode(q, n, dst, sizeof(dst), &outlen);
		free(q);
		if (rc != c->err)
			fail_msg("%s: %d (%s), want %d", c->what, rc,
			    smtp_parse_strerror(rc), c->err);
		if (rc == SMTP_PARSE_OK) {
			if (strcmp(dst, c->out) != 0 ||
			    outlen != strlen(c->out))
				fail_msg("%s: \"%s\"", c->what, dst);
		} else {
			/* a failure leaves nothing behind */
			for (n = 0; n < sizeof(dst); n++)
				if (dst[n] != '\0')
					fail_msg("%s: dst not wiped", c->what);
		}
	}
}

/* the SASL line limit, and dst too small */
static void
test_smtp_base64_limits(void **state)
{
	char	*line, *dst;
	size_t	 max = SMTP_AUTH_LINE_MAX - 2, outlen;

	/* 12284 is the longest multiple of 4 under 12286 */
	line = malloc(max + 1);
	dst = malloc(max);
	assert_non_null(line);
	assert_non_null(dst);
	memset(line, 'Q', max + 1);
	assert_int_equal(smtp_base64_decode(line, 12284, dst, max, &outlen), 0);
	assert_int_equal(outlen, 12284 / 4 * 3);
	assert_int_equal(smtp_base64_decode(line, max, dst, max, &outlen),
	    SMTP_ERR_BASE64);
	assert_int_equal(smtp_base64_decode(line, max + 1, dst, max, &outlen),
	    SMTP_ERR_AUTH_TOOLONG);
	/* "*" and "=" are judged on the whole line, not its start */
	line[0] = '*';
	assert_int_equal(smtp_base64_decode(line, max + 1, dst, max, &outlen),
	    SMTP_ERR_AUTH_TOOLONG);
	free(line);
	free(dst);

	dst = malloc(5);
	/* a NUL in the line is no base64 octet, wherever it is */
	assert_int_equal(smtp_base64_decode("dX\0lcg==", 9, dst, 5, &outlen),
	    SMTP_ERR_BASE64);
	assert_int_equal(smtp_base64_decode("dXNlcg==\0", 9, dst, 5, &outlen),
	    SMTP_ERR_BASE64);
	assert_int_equal(smtp_base64_decode("\0", 1, dst, 5, &outlen),
	    SMTP_ERR_BASE64);
	assert_int_equal(smtp_base64_decode("dXNlcg==", 8, dst, 5, &outlen), 0);
	assert_int_equal(smtp_base64_decode("dXNlcg==", 8, dst, 4, &outlen),
	    SMTP_ERR_SPACE);
	assert_int_equal(smtp_base64_decode("dXNlcg==", 8, dst, 0, &outlen),
	    SMTP_ERR_SPACE);
	assert_int_equal(smtp_base64_decode("=", 1, dst, 1, &outlen), 0);
	assert_string_equal(dst, "");
	free(dst);
}

static void
test_smtp_auth_plain_table(void **state)
{
	const struct plain_case	*c;
	char			 b64[256], *q;
	char			 z[32], l[32], pw[32];
	size_t			 i, n;
	int			 rc;

	for (i = 0; i < sizeof(plain_cases) / sizeof(plain_cases[0]); i++) {
		c = &plain_cases[i];
		if (c->raw != NULL)
			sodium_bin2base64(b64, sizeof(b64),
			    (const unsigned char *)c->raw, c->rawlen,
			    sodium_base64_VARIANT_ORIGINAL);
		else
			snprintf(b64, sizeof(b64), "%s", c->b64);
		n = strlen(b64);
		q = exact_copy(b64, n);
		memset(z, 'Z', sizeof(z));
		memset(l, 'Z', sizeof(l));
		memset(pw, 'Z', sizeof(pw));
		rc = smtp_auth_plain(q, n, z, sizeof(z), l, sizeof(l), pw,
		    sizeof(pw));
		free(q);
		if (rc != c->err)
			fail_msg("%s: %d (%s), want %d (%s)", c->what, rc,
			    smtp_parse_strerror(rc), c->err,
			    smtp_parse_strerror(c->err));
		if (rc == SMTP_PARSE_OK) {
			if (strcmp(z, c->authzid) || strcmp(l, c->login) ||
			    strcmp(pw, c->password))
				fail_msg("%s: \"%s\" \"%s\" \"%s\"", c->what,
				    z, l, pw);
			continue;
		}
		for (n = 0; n < sizeof(pw); n++)
			if (z[n] != '\0' || l[n] != '\0' || pw[n] != '\0')
				fail_msg("%s: outputs not wiped", c->what);
	}
}

/* each output must hold its part and a NUL */
static void
test_smtp_auth_plain_space(void **state)
{
	char	 b64[64], z[8], l[8], pw[8];

	sodium_bin2base64(b64, sizeof(b64), (const unsigned char *)
	    "abcdefg\0abcdefg\0abcdefg", 23, sodium_base64_VARIANT_ORIGINAL);
	assert_int_equal(smtp_auth_plain(b64, strlen(b64), z, 8, l, 8, pw, 8),
	    0);
	assert_string_equal(pw, "abcdefg");
	assert_int_equal(smtp_auth_plain(b64, strlen(b64), z, 7, l, 8, pw, 8),
	    SMTP_ERR_SPACE);
	assert_int_equal(smtp_auth_plain(b64, strlen(b64), z, 8, l, 7, pw, 8),
	    SMTP_ERR_SPACE);
	assert_int_equal(smtp_auth_plain(b64, strlen(b64), z, 8, l, 8, pw, 7),
	    SMTP_ERR_SPACE);
	assert_int_equal(l[0], '\0');
	/* an empty authzid needs one octet; none is too few */
	sodium_bin2base64(b64, sizeof(b64), (const unsigned char *)
	    "\0u\0p", 4, sodium_base64_VARIANT_ORIGINAL);
	assert_int_equal(smtp_auth_plain(b64, strlen(b64), z, 1, l, 2, pw, 2),
	    0);
	assert_int_equal(smtp_auth_plain(b64, strlen(b64), z, 0, l, 2, pw, 2),
	    SMTP_ERR_SPACE);
}

static void
test_smtp_sender_table(void **state)
{
	const struct sender_case	*c;
	size_t				 i;
	int				 r;

	for (i = 0; i < sizeof(sender_cases) / sizeof(sender_cases[0]); i++) {
		c = &sender_cases[i];
		r = smtp_sender_allowed(c->patterns, c->address);
		if (r != c->allowed)
			fail_msg("patterns \"%s\", <%s>: %d",
			    c->patterns != NULL ? c->patterns : "(null)",
			    c->address, r);
	}
	assert_int_equal(smtp_sender_allowed("*", NULL), 0);
}

static void
test_smtp_parse_reply_table(void **state)
{
	const struct reply_case	*c;
	const char		*enh, *text;
	size_t			 i;
	int			 code;

	for (i = 0; i < sizeof(reply_cases) / sizeof(reply_cases[0]); i++) {
		c = &reply_cases[i];
		smtp_parse_reply(c->err, c->verb, &code, &enh, &text);
		if (code != c->code || strcmp(enh, c->enhanced) != 0)
			fail_msg("error %d: %d %s, want %d %s", c->err, code,
			    enh, c->code, c->enhanced);
	}
	smtp_parse_reply(SMTP_ERR_ARG_SYNTAX, SMTP_CMD_MAIL, &code, &enh,
	    &text);
	assert_string_equal(text, "Syntax: MAIL FROM:<address>");
	smtp_parse_reply(SMTP_ERR_ARG_SYNTAX, SMTP_CMD_RCPT, &code, &enh,
	    &text);
	assert_string_equal(text, "Syntax: RCPT TO:<address>");
	assert_string_equal(smtp_parse_strerror(-1), "unknown error");
	assert_string_equal(smtp_parse_strerror(SMTP_ERR_MAX),
	    "unknown error");
}

/* every error has a text, and its enhanced class agrees with its code */
static void
test_smtp_parse_reply_all(void **state)
{
	static const enum smtp_verb	 vs[] = {
		SMTP_CMD_MAIL, SMTP_CMD_RCPT, SMTP_CMD_AUTH, SMTP_CMD_UNKNOWN,
	};
	const char			*enh, *text, *why;
	size_t				 v;
	int				 err, code;

	for (err = 0; err < SMTP_ERR_MAX; err++) {
		why = smtp_parse_strerror(err);
		if (why == NULL || strcmp(why, "unknown error") == 0)
			fail_msg("error %d has no strerror", err);
		for (v = 0; v < sizeof(vs) / sizeof(vs[0]); v++) {
			smtp_parse_reply(err, vs[v], &code, &enh, &text);
			if (text == NULL || text[0] == '\0' || enh == NULL ||
			    strlen(enh) < 5 || enh[0] - '0' != code / 100 ||
			    (err != 0 && code / 100 != 5))
				fail_msg("error %d: %d %s %s", err, code,
				    enh != NULL ? enh : "-",
				    text != NULL ? text : "-");
		}
	}
	assert_string_equal(smtp_verb_name(SMTP_CMD_STARTTLS), "STARTTLS");
	assert_string_equal(smtp_verb_name(SMTP_CMD_UNKNOWN), "UNKNOWN");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_smtp_parse_command_table),
		cmocka_unit_test(test_smtp_parse_command_parts),
		cmocka_unit_test(test_smtp_parse_command_length),
		cmocka_unit_test(test_smtp_parse_path_table),
		cmocka_unit_test(test_smtp_parse_path_limits),
		cmocka_unit_test(test_smtp_parse_path_utf8),
		cmocka_unit_test(test_smtp_parse_path_octets),
		cmocka_unit_test(test_smtp_parse_path_prefixes),
		cmocka_unit_test(test_smtp_parse_params_table),
		cmocka_unit_test(test_smtp_parse_params_nul),
		cmocka_unit_test(test_smtp_parse_params_limits),
		cmocka_unit_test(test_smtp_parse_args_table),
		cmocka_unit_test(test_smtp_xtext_table),
		cmocka_unit_test(test_smtp_xtext_space),
		cmocka_unit_test(test_smtp_base64_table),
		cmocka_unit_test(test_smtp_base64_limits),
		cmocka_unit_test(test_smtp_auth_plain_table),
		cmocka_unit_test(test_smtp_auth_plain_space),
		cmocka_unit_test(test_smtp_sender_table),
		cmocka_unit_test(test_smtp_parse_reply_table),
		cmocka_unit_test(test_smtp_parse_reply_all),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
