/*
 * fuzz_smtp_cmd - any bytes as an SMTP command line, the way smtpd
 * will call the parsers: smtp_parse_command(), then for MAIL and RCPT
 * smtp_parse_args() on the argument, with and without SMTPUTF8.  The
 * path and parameter parsers and the xtext decoder also get the raw
 * input, NULs, CRs and all.
 *
 * Invariants: results stay inside the input; a parsed address is
 * NUL-terminated, shorter than its buffer, holds no NUL, '@' where
 * p.at says, 8-bit octets only under SMTPUTF8, and parses again to
 * itself from "<addr>"; a parsed line has no NUL, CR or LF and is
 * within its limit; xtext values decode; every error has a reply.
 *
 * Every buffer handed to a parser is a block of exactly its length,
 * so a read one byte past shows under ASan.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_parse.h"

int		LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static char	*exact_copy(const void *, size_t);
static void	 check_err(int, enum smtp_verb);
static void	 check_inside(const char *, size_t, const char *, size_t);
static void	 check_path(enum smtp_verb, int, const char *, size_t);
static void	 check_addr(enum smtp_verb, int, const struct smtp_path *);
static void	 check_params(enum smtp_verb, const char *, size_t,
		    const struct smtp_params *);
static void	 check_xtext(const char *, size_t);
static void	 check_cmd(const char *, size_t);

/* exact_copy - n bytes in a block of exactly n (one when n is 0) */
static char *
exact_copy(const void *p, size_t n)
{
	char	*q;

	if ((q = malloc(n > 0 ? n : 1)) == NULL)
		abort();
	memcpy(q, p, n);
	return q;
}

/* check_err - a known error with a whole reply */
static void
check_err(int rc, enum smtp_verb verb)
{
	const char	*enh, *text;
	int		 code;

	if (rc < 0 || rc >= SMTP_ERR_MAX)
		abort();
	smtp_parse_reply(rc, verb, &code, &enh, &text);
	if (enh == NULL || text == NULL || smtp_parse_strerror(rc) == NULL)
		abort();
	if (rc != SMTP_PARSE_OK && (code < 500 || code > 599 || enh[0] != '5'))
		abort();
}

/* check_inside - [p, p+n) lies within [s, s+len) */
static void
check_inside(const char *s, size_t len, const char *p, size_t n)
{
	if (p == NULL)
		return;
	if (p < s || n > len || (size_t)(p - s) > len - n)
		abort();
}

/* check_addr - what a parsed path must look like, and that it reparses */
static void
check_addr(enum smtp_verb verb, int utf8, const struct smtp_path *p)
{
	struct smtp_path	 again;
	size_t			 i, used;
	char			*q;
	int			 high = 0;

	if (p->len >= sizeof(p->addr) || p->addr[p->len] != '\0' ||
	    strlen(p->addr) != p->len)
		abort();
	if (p->at > p->len || (p->at < p->len && p->addr[p->at] != '@'))
		abort();
	if (((p->flags & SMTP_PATH_NULL) != 0) != (p->len == 0))
		abort();
	if ((p->flags & SMTP_PATH_NULL) && verb != SMTP_CMD_MAIL)
		abort();
	if ((p->flags & SMTP_PATH_POSTMASTER) &&
	    (verb != SMTP_CMD_RCPT || p->at != p->len))
		abort();
	if (!(p->flags & (SMTP_PATH_NULL | SMTP_PATH_POSTMASTER)) &&
	    (p->at == p->len || p->at == 0 || p->len - p->at - 1 >
	    SMTP_DOMAIN_MAX))
		abort();
	for (i = 0; i < p->len; i++)
		if ((unsigned char)p->addr[i] >= 0x80)
			high = 1;
	if (high != ((p->flags & SMTP_PATH_UTF8) != 0) || (high && !utf8))
		abort();

	/* the address alone, bracketed, is the same address */
	q = malloc(p->len + 2);
	if (q == NULL)
		abort();
	q[0] = '<';
	memcpy(q + 1, p->addr, p->len);
	q[p->len + 1] = '>';
	if (smtp_parse_path(verb, q, p->len + 2, utf8, &again, &used) !=
	    SMTP_PARSE_OK || used != p->len + 2 || again.len != p->len ||
	    strcmp(again.addr, p->addr) != 0 || again.at != p->at ||
	    again.flags != (p->flags & ~SMTP_PATH_ROUTE))
		abort();
	free(q);

	/* a sender may always use what its own pattern names */
	if (!(p->flags & SMTP_PATH_NULL) &&
	    !smtp_sender_allowed(p->addr, p->addr))
		abort();
	if (!smtp_sender_allowed("*", p->addr))
		abort();
}

/* check_path - smtp_parse_path() on n bytes of its own */
static void
check_path(enum smtp_verb verb, int utf8, const char *s, size_t n)
{
	struct smtp_path	 p;
	size_t			 used;
	char			*q = exact_copy(s, n);
	int			 rc;

	rc = smtp_parse_path(verb, q, n, utf8, &p, &used);
	check_err(rc, verb);
	if (used > n)
		abort();
	if (rc == SMTP_PARSE_OK) {
		if (used < 2 || q[0] != '<' || q[used - 1] != '>')
			abort();
		check_addr(verb, utf8, &p);
	}
	free(q);
}

/* check_params - values inside the input, of the verb, decoding */
static void
check_params(enum smtp_verb verb, const char *s, size_t n,
    const struct smtp_params *out)
{
	char	 dst[SMTP_ORCPT_MAX + 1];
	size_t	 dl;

	if (verb == SMTP_CMD_MAIL && (out->seen & (SMTP_PARAM_NOTIFY |
	    SMTP_PARAM_ORCPT)))
		abort();
	if (verb == SMTP_CMD_RCPT && (out->seen & ~(unsigned int)
	    (SMTP_PARAM_NOTIFY | SMTP_PARAM_ORCPT)))
		abort();
	check_inside(s, n, out->envid, out->envidlen);
	check_inside(s, n, out->auth, out->authlen);
	check_inside(s, n, out->orcpt_type, out->orcpt_typelen);
	check_inside(s, n, out->orcpt, out->orcptlen);
	if (out->envid != NULL && (smtp_xtext_decode(out->envid,
	    out->envidlen, dst, sizeof(dst), &dl) != 0 || dl == 0 ||
	    dl > SMTP_ENVID_MAX || strlen(dst) != dl))
		abort();
	if (out->orcpt != NULL && (smtp_xtext_decode(out->orcpt,
	    out->orcptlen, dst, sizeof(dst), &dl) != 0 || dl == 0 ||
	    dl > SMTP_ORCPT_MAX || strlen(dst) != dl))
		abort();
	if ((out->seen & SMTP_PARAM_NOTIFY) && (out->notify == 0 ||
	    ((out->notify & SMTP_NOTIFY_NEVER) &&
	    out->notify != SMTP_NOTIFY_NEVER)))
		abort();
}

/* check_xtext - decoding and counting agree; a short dst is refused */
static void
check_xtext(const char *s, size_t n)
{
	char	*q = exact_copy(s, n), *dst;
	size_t	 counted, decoded;
	int	 rc, rc2;

	rc = smtp_xtext_decode(q, n, NULL, 0, &counted);
	check_err(rc, SMTP_CMD_MAIL);
	if (rc == SMTP_PARSE_OK) {
		if (counted > n)
			abort();
		dst = malloc(counted + 1);
		if (dst == NULL)
			abort();
		if (smtp_xtext_decode(q, n, dst, counted + 1, &decoded) != 0 ||
		    decoded != counted || dst[counted] != '\0')
			abort();
		rc2 = smtp_xtext_decode(q, n, dst, counted, &decoded);
		if (rc2 != SMTP_ERR_SPACE)
			abort();
		free(dst);
	}
	free(q);
}

/* check_cmd - the line as smtpd sees it */
static void
check_cmd(const char *line, size_t len)
{
	struct smtp_cmd		 cmd;
	struct smtp_path	 p;
	struct smtp_params	 out;
	size_t			 max;
	char			*arg;
	int			 rc, utf8;

	rc = smtp_parse_command(line, len, &cmd);
	check_err(rc, cmd.verb);
	if (smtp_verb_name(cmd.verb) == NULL)
		abort();
	if (rc != SMTP_PARSE_OK)
		return;
	max = SMTP_CMD_MAX - 2 + (cmd.verb == SMTP_CMD_MAIL ? SMTP_MAIL_EXTRA :
	    cmd.verb == SMTP_CMD_RCPT ? SMTP_RCPT_EXTRA : 0);
	if (len > max || memchr(line, '\0', len) != NULL ||
	    memchr(line, '\r', len) != NULL || memchr(line, '\n', len) != NULL)
		abort();
	if (cmd.verb == SMTP_CMD_UNKNOWN)
		abort();
	check_inside(line, len, cmd.arg, cmd.arglen);
	check_inside(line, len, cmd.mech, cmd.mechlen);
	check_inside(line, len, cmd.resp, cmd.resplen);
	if (cmd.arg != NULL && (cmd.arglen == 0 || cmd.arg[0] == ' ' ||
	    cmd.arg[cmd.arglen - 1] == ' '))
		abort();
	if (cmd.verb == SMTP_CMD_AUTH && (cmd.mech == NULL ||
	    cmd.mechlen == 0 || cmd.mechlen > 20))
		abort();
	if (cmd.verb != SMTP_CMD_MAIL && cmd.verb != SMTP_CMD_RCPT)
		return;

	/* the argument alone, so that reading past it shows */
	arg = exact_copy(cmd.arg, cmd.arglen);
	cmd.arg = arg;
	for (utf8 = 0; utf8 <= 1; utf8++) {
		rc = smtp_parse_args(&cmd, utf8, &p, &out);
		check_err(rc, cmd.verb);
		if (rc != SMTP_PARSE_OK)
			continue;
		check_addr(cmd.verb, utf8, &p);
		check_params(cmd.verb, arg, cmd.arglen, &out);
		if (cmd.verb == SMTP_CMD_MAIL && (p.flags & SMTP_PATH_UTF8) &&
		    !(out.seen & SMTP_PARAM_SMTPUTF8))
			abort();
	}
	check_path(cmd.verb, 1, arg, cmd.arglen);
	free(arg);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_params	 out;
	char			*p;
	int			 rc;

	p = exact_copy(data, size);
	check_cmd(p, size);

	/* the lower parsers on raw bytes, which smtpd never gives them */
	check_path(SMTP_CMD_MAIL, 0, p, size);
	check_path(SMTP_CMD_RCPT, 1, p, size);
	rc = smtp_parse_params(p, size, SMTP_CMD_MAIL, &out);
	check_err(rc, SMTP_CMD_MAIL);
	if (rc == SMTP_PARSE_OK)
		check_params(SMTP_CMD_MAIL, p, size, &out);
	rc = smtp_parse_params(p, size, SMTP_CMD_RCPT, &out);
	check_err(rc, SMTP_CMD_RCPT);
	if (rc == SMTP_PARSE_OK)
		check_params(SMTP_CMD_RCPT, p, size, &out);
	check_xtext(p, size);
	free(p);
	return 0;
}
