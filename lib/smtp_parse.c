/*
 * smtp_parse.c - parse what an SMTP client sends, octet by octet
 *
 * Everything here runs on bytes straight from the network, before any
 * authentication: each scan is bounded by the length it was given,
 * never by a NUL, and nothing is copied anywhere that was not first
 * measured against its room.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <sodium.h>

#include "smtp_parse.h"

/* how a verb takes its argument */
enum arg_rule {
	ARG_NONE,		/* DATA, RSET, QUIT, STARTTLS */
	ARG_OPT,		/* NOOP, HELP */
	ARG_NEED		/* everything else */
};

struct verb_def {
	const char	*name;
	enum smtp_verb	 verb;
	enum arg_rule	 rule;
};

struct param_def {
	const char	*name;
	unsigned int	 bit;
	enum smtp_verb	 verb;
	int		(*value)(const char *, size_t, int,
			    struct smtp_params *);
};

struct reply_def {
	int		 code;
	const char	*enhanced;	/* NULL: 5.1.7 / 5.1.3 by verb */
	const char	*text;
	const char	*why;		/* for logs */
};

/* the largest SASL line decodes to at most this much */
#define B64_WORK	(((SMTP_AUTH_LINE_MAX - 2) / 4) * 3)

static int	 is_alpha(unsigned char);
static int	 is_digit(unsigned char);
static int	 is_atext(unsigned char);
static int	 is_hexup(unsigned char);
static int	 ascii_eq(const char *, size_t, const char *);
static size_t	 utf8_seq(const unsigned char *, size_t);
static int	 utf8_valid(const char *, size_t);
static enum smtp_verb verb_lookup(const char *, size_t,
		    const struct verb_def **);
static int	 cmd_mail_rcpt(const char *, size_t, const char *,
		    struct smtp_cmd *);
static int	 cmd_bdat(const char *, size_t, struct smtp_cmd *);
static int	 cmd_auth(const char *, size_t, struct smtp_cmd *);
static int	 path_local(const char *, size_t, size_t *, unsigned int *);
static int	 path_hostname(const char *, size_t, size_t *,
		    unsigned int *);
static int	 path_literal(const char *, size_t, size_t *);
static int	 path_route(const char *, size_t, size_t *);
static int	 xtext_next(const char *, size_t, size_t *, unsigned char *);
static int	 xtext_value(const char *, size_t, size_t);
static int	 param_one(const char *, size_t, enum smtp_verb,
		    struct smtp_params *);
static int	 value_size(const char *, size_t, int, struct smtp_params *);
static int	 value_body(const char *, size_t, int, struct smtp_params *);
static int	 value_smtputf8(const char *, size_t, int,
		    struct smtp_params *);
static int	 value_ret(const char *, size_t, int, struct smtp_params *);
static int	 value_envid(const char *, size_t, int, struct smtp_params *);
static int	 value_auth(const char *, size_t, int, struct smtp_params *);
static int	 value_notify(const char *, size_t, int, struct smtp_params *);
static int	 value_orcpt(const char *, size_t, int, struct smtp_params *);
static int	 b64_work(const char *, size_t, unsigned char *, size_t *);

static const struct verb_def verbs[] = {
	{ "EHLO", SMTP_CMD_EHLO, ARG_NEED },
	{ "HELO", SMTP_CMD_HELO, ARG_NEED },
	{ "MAIL", SMTP_CMD_MAIL, ARG_NEED },
	{ "RCPT", SMTP_CMD_RCPT, ARG_NEED },
	{ "DATA", SMTP_CMD_DATA, ARG_NONE },
	{ "BDAT", SMTP_CMD_BDAT, ARG_NEED },
	{ "RSET", SMTP_CMD_RSET, ARG_NONE },
	{ "NOOP", SMTP_CMD_NOOP, ARG_OPT },
	{ "QUIT", SMTP_CMD_QUIT, ARG_NONE },
	{ "VRFY", SMTP_CMD_VRFY, ARG_NEED },
	{ "EXPN", SMTP_CMD_EXPN, ARG_NEED },
	{ "HELP", SMTP_CMD_HELP, ARG_OPT },
	{ "STARTTLS", SMTP_CMD_STARTTLS, ARG_NONE },
	{ "AUTH", SMTP_CMD_AUTH, ARG_NEED },
};

static const struct param_def params[] = {
	{ "SIZE", SMTP_PARAM_SIZE, SMTP_CMD_MAIL, value_size },
	{ "BODY", SMTP_PARAM_BODY, SMTP_CMD_MAIL, value_body },
	{ "SMTPUTF8", SMTP_PARAM_SMTPUTF8, SMTP_CMD_MAIL, value_smtputf8 },
	{ "RET", SMTP_PARAM_RET, SMTP_CMD_MAIL, value_ret },
	{ "ENVID", SMTP_PARAM_ENVID, SMTP_CMD_MAIL, value_envid },
	{ "AUTH", SMTP_PARAM_AUTH, SMTP_CMD_MAIL, value_auth },
	{ "NOTIFY", SMTP_PARAM_NOTIFY, SMTP_CMD_RCPT, value_notify },
	{ "ORCPT", SMTP_PARAM_ORCPT, SMTP_CMD_RCPT, value_orcpt },
};

static const struct reply_def replies[SMTP_ERR_MAX] = {
	[SMTP_PARSE_OK] = { 250, "2.0.0", "OK", "no error" },
	[SMTP_ERR_SYNTAX] = { 500, "5.5.2", "Syntax error",
	    "empty line or space before the command" },
	[SMTP_ERR_TOOLONG] = { 500, "5.5.2", "Line too long",
	    "command line too long" },
	[SMTP_ERR_NUL] = { 500, "5.5.2", "NUL character not allowed",
	    "NUL octet in command line" },
	[SMTP_ERR_CRLF] = { 500, "5.5.2", "Bare CR or LF not allowed",
	    "bare CR or LF in command line" },
	[SMTP_ERR_UNKNOWN] = { 500, "5.5.1", "Command unrecognized",
	    "unknown command" },
	[SMTP_ERR_CTRL] = { 501, "5.5.4", "Control character not allowed",
	    "control octet in argument" },
	[SMTP_ERR_8BIT] = { 501, "5.5.4", "8-bit character not allowed",
	    "8-bit octet in argument" },
	[SMTP_ERR_ARG_MISSING] = { 501, "5.5.4", "Argument required",
	    "command needs an argument" },
	[SMTP_ERR_ARG_EXTRA] = { 501, "5.5.4", "No arguments allowed",
	    "command takes no argument" },
	[SMTP_ERR_ARG_SYNTAX] = { 501, "5.5.4", "Syntax error in arguments",
	    "bad argument syntax" },
	[SMTP_ERR_PATH_SYNTAX] = { 501, NULL, "Bad address syntax",
	    "path is not <address>" },
	[SMTP_ERR_NULL_PATH] = { 501, NULL, "Null recipient not allowed",
	    "null path as recipient" },
	[SMTP_ERR_NO_DOMAIN] = { 501, NULL, "Address needs a domain",
	    "address has no domain" },
	[SMTP_ERR_ROUTE] = { 501, NULL, "Bad source route",
	    "bad source route" },
	[SMTP_ERR_LOCAL_SYNTAX] = { 501, NULL, "Bad local part syntax",
	    "bad local part" },
	[SMTP_ERR_LOCAL_TOOLONG] = { 501, NULL, "Local part too long",
	    "local part longer than 64 octets" },
	[SMTP_ERR_DOMAIN_SYNTAX] = { 501, NULL, "Bad domain syntax",
	    "bad domain" },
	[SMTP_ERR_DOMAIN_TOOLONG] = { 501, NULL, "Domain too long",
	    "domain longer than 255 octets" },
	[SMTP_ERR_LABEL_TOOLONG] = { 501, NULL, "Domain label too long",
	    "domain label longer than 63 octets" },
	[SMTP_ERR_LITERAL] = { 501, NULL, "Bad address literal",
	    "bad address literal" },
	[SMTP_ERR_LITERAL_GENERAL] = { 553, NULL,
	    "General address literals not supported",
	    "general address literal" },
	[SMTP_ERR_UTF8] = { 501, NULL, "Malformed UTF-8 in address",
	    "malformed UTF-8 in address" },
	[SMTP_ERR_NEED_UTF8] = { 553, "5.6.7",
	    "Non-ASCII address needs SMTPUTF8",
	    "non-ASCII address without SMTPUTF8" },
	[SMTP_ERR_PARAM_SYNTAX] = { 501, "5.5.4", "Bad parameter syntax",
	    "parameter is not keyword[=value]" },
	[SMTP_ERR_PARAM_UNKNOWN] = { 555, "5.5.4", "Unsupported parameter",
	    "unknown parameter" },
	[SMTP_ERR_PARAM_VERB] = { 555, "5.5.4",
	    "Parameter not valid with this command",
	    "parameter of the other command" },
	[SMTP_ERR_PARAM_REPEAT] = { 501, "5.5.4", "Duplicate parameter",
	    "parameter given twice" },
	[SMTP_ERR_PARAM_VALUE] = { 501, "5.5.4", "Bad parameter value",
	    "bad parameter value" },
	[SMTP_ERR_XTEXT] = { 501, "5.5.4", "Bad xtext in parameter",
	    "parameter value is not xtext" },
	[SMTP_ERR_SIZE_OVERFLOW] = { 552, "5.3.4",
	    "Message size exceeds fixed maximum message size",
	    "SIZE does not fit 64 bits" },
	[SMTP_ERR_AUTH_CANCEL] = { 501, "5.7.0", "Authentication canceled",
	    "client canceled authentication" },
	[SMTP_ERR_AUTH_TOOLONG] = { 500, "5.5.6",
	    "Authentication Exchange line is too long",
	    "SASL response line too long" },
	[SMTP_ERR_BASE64] = { 501, "5.5.2",
	    "Cannot Base64-decode Client responses",
	    "SASL response is not base64" },
	[SMTP_ERR_AUTH_SYNTAX] = { 535, "5.7.8",
	    "Authentication credentials invalid",
	    "malformed PLAIN response" },
	[SMTP_ERR_AUTHZID] = { 535, "5.7.8",
	    "Authentication credentials invalid",
	    "authorization identity differs from login" },
	[SMTP_ERR_SPACE] = { 501, "5.5.4", "Value too long",
	    "decoded value does not fit its buffer" },
};

static int
is_alpha(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* is_atext - RFC 5321 4.1.2 atext, the same set as RFC 5322 3.2.3 */
static int
is_atext(unsigned char c)
{
	return is_alpha(c) || is_digit(c) ||
	    (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* is_hexup - RFC 3461 4 hexchar: digits and upper-case A-F only */
static int
is_hexup(unsigned char c)
{
	return is_digit(c) || (c >= 'A' && c <= 'F');
}

/* ascii_eq - n octets at s spell word, ASCII case folded (not locale) */
static int
ascii_eq(const char *s, size_t n, const char *word)
{
	size_t		 i;
	unsigned char	 a, b;

	for (i = 0; i < n; i++) {
		if (word[i] == '\0')
			return 0;
		a = (unsigned char)s[i];
		b = (unsigned char)word[i];
		if (a >= 'a' && a <= 'z')
			a -= 'a' - 'A';
		if (b >= 'a' && b <= 'z')
			b -= 'a' - 'A';
		if (a != b)
			return 0;
	}
	return word[n] == '\0';
}

/*
 * utf8_seq - length (2..4) of the well-formed non-ASCII UTF-8 sequence
 * at s, or 0: RFC 3629 4, so no overlong forms (C0, C1, E0 80..9F,
 * F0 80..8F), no surrogates (ED A0..BF) and nothing past U+10FFFF
 * (F4 90.., F5..FF)
 */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char	 lo = 0x80, hi = 0xbf;
	size_t		 need, i;

	if (n == 0)
		return 0;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		need = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		need = 3;
		if (s[0] == 0xe0)
			lo = 0xa0;
		else if (s[0] == 0xed)
			hi = 0x9f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		need = 4;
		if (s[0] == 0xf0)
			lo = 0x90;
		else if (s[0] == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (n < need)
		return 0;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < need; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return need;
}

/* utf8_valid - all n octets are well-formed UTF-8 (ASCII included) */
static int
utf8_valid(const char *s, size_t n)
{
	const unsigned char	*u = (const unsigned char *)s;
	size_t			 i = 0, k;

	while (i < n) {
		if (u[i] < 0x80) {
			i++;
			continue;
		}
		if ((k = utf8_seq(u + i, n - i)) == 0)
			return 0;
		i += k;
	}
	return 1;
}

/* verb_lookup - the verb spelled by the n octets at s, any case */
static enum smtp_verb
verb_lookup(const char *s, size_t n, const struct verb_def **def)
{
	size_t	 i;

	*def = NULL;
	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (ascii_eq(s, n, verbs[i].name)) {
			*def = &verbs[i];
			return verbs[i].verb;
		}
	return SMTP_CMD_UNKNOWN;
}

int
smtp_parse_command(const char *line, size_t len, struct smtp_cmd *cmd)
{
	const struct verb_def	*def;
	size_t			 w, a, e, i, max;
	unsigned char		 c;

	memset(cmd, 0, sizeof(*cmd));
	cmd->verb = SMTP_CMD_UNKNOWN;
	if (len == 0)
		return SMTP_ERR_SYNTAX;

	for (w = 0; w < len && line[w] != ' '; w++)
		;
	cmd->verb = verb_lookup(line, w, &def);

	/*
	 * The length first, so that an over-long line is reported as such
	 * whatever else is wrong with it; the server then knows to discard
	 * rather than to parse.  RFC 5321 4.5.3.1.4 counts the CRLF.
	 */
	max = SMTP_CMD_MAX - 2;
	if (cmd->verb == SMTP_CMD_MAIL)
		max += SMTP_MAIL_EXTRA;
	else if (cmd->verb == SMTP_CMD_RCPT)
		max += SMTP_RCPT_EXTRA;
	if (len > max)
		return SMTP_ERR_TOOLONG;

	/*
	 * NUL would cut the line for any C-string consumer downstream; a
	 * CR or LF inside means the client and we disagree on where lines
	 * end, which is how SMTP smuggling starts.
	 */
	if (memchr(line, '\0', len) != NULL)
		return SMTP_ERR_NUL;
	if (memchr(line, '\r', len) != NULL || memchr(line, '\n', len) != NULL)
		return SMTP_ERR_CRLF;
	if (w == 0)
		return SMTP_ERR_SYNTAX;
	if (def == NULL)
		return SMTP_ERR_UNKNOWN;

	/* RFC 5321 asks for one SP; clients send more, Postfix takes them */
	for (a = w; a < len && line[a] == ' '; a++)
		;
	for (e = len; e > a && line[e - 1] == ' '; e--)
		;
	for (i = a; i < e; i++) {
		c = (unsigned char)line[i];
		if (c < 0x20 || c == 0x7f)
			return SMTP_ERR_CTRL;
		/* a path may be UTF-8 under SMTPUTF8: smtp_parse_path knows */
		if (c >= 0x80 && cmd->verb != SMTP_CMD_MAIL &&
		    cmd->verb != SMTP_CMD_RCPT)
			return SMTP_ERR_8BIT;
	}
	if (a == e) {
		if (def->rule == ARG_NEED)
			return SMTP_ERR_ARG_MISSING;
		return SMTP_PARSE_OK;
	}
	if (def->rule == ARG_NONE)
		return SMTP_ERR_ARG_EXTRA;

	switch (cmd->verb) {
	case SMTP_CMD_MAIL:
		return cmd_mail_rcpt(line + a, e - a, "FROM:", cmd);
	case SMTP_CMD_RCPT:
		return cmd_mail_rcpt(line + a, e - a, "TO:", cmd);
	case SMTP_CMD_BDAT:
		cmd->arg = line + a;
		cmd->arglen = e - a;
		return cmd_bdat(line + a, e - a, cmd);
	case SMTP_CMD_AUTH:
		cmd->arg = line + a;
		cmd->arglen = e - a;
		return cmd_auth(line + a, e - a, cmd);
	default:
		cmd->arg = line + a;
		cmd->arglen = e - a;
		return SMTP_PARSE_OK;
	}
}

/* cmd_mail_rcpt - "FROM:" / "TO:", then SP that Postfix also accepts */
static int
cmd_mail_rcpt(const char *s, size_t n, const char *word, struct smtp_cmd *cmd)
{
	size_t	 wl = strlen(word), i;

	if (n < wl || !ascii_eq(s, wl, word))
		return SMTP_ERR_ARG_SYNTAX;
	for (i = wl; i < n && s[i] == ' '; i++)
		;
	if (i == n)
		return SMTP_ERR_ARG_SYNTAX;
	cmd->arg = s + i;
	cmd->arglen = n - i;
	return SMTP_PARSE_OK;
}

/* cmd_bdat - RFC 3030 2: chunk-size [SP end-marker] */
static int
cmd_bdat(const char *s, size_t n, struct smtp_cmd *cmd)
{
	uint64_t	 v = 0;
	size_t		 i, d;

	for (i = 0; i < n && is_digit((unsigned char)s[i]); i++) {
		d = (size_t)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return SMTP_ERR_ARG_SYNTAX;
		v = v * 10 + d;
	}
	if (i == 0)
		return SMTP_ERR_ARG_SYNTAX;
	cmd->chunk = v;
	if (i == n)
		return SMTP_PARSE_OK;
	if (s[i] != ' ')
		return SMTP_ERR_ARG_SYNTAX;
	while (i < n && s[i] == ' ')
		i++;
	if (!ascii_eq(s + i, n - i, "LAST"))
		return SMTP_ERR_ARG_SYNTAX;
	cmd->last = 1;
	return SMTP_PARSE_OK;
}

/*
 * cmd_auth - RFC 4954 4: mechanism [SP initial-response]; a SASL name
 * is 1..20 of upper-case letters, digits, '-' and '_' (RFC 4422 3.1),
 * which we take in any case since clients do send "auth plain"
 */
static int
cmd_auth(const char *s, size_t n, struct smtp_cmd *cmd)
{
	size_t		 i, r;
	unsigned char	 c;

	for (i = 0; i < n && s[i] != ' '; i++) {
		c = (unsigned char)s[i];
		if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '_')
			return SMTP_ERR_ARG_SYNTAX;
	}
	if (i == 0 || i > 20)
		return SMTP_ERR_ARG_SYNTAX;
	cmd->mech = s;
	cmd->mechlen = i;
	while (i < n && s[i] == ' ')
		i++;
	if (i == n)
		return SMTP_PARSE_OK;
	for (r = i; r < n; r++)
		if (s[r] == ' ')
			return SMTP_ERR_ARG_SYNTAX;
	cmd->resp = s + i;
	cmd->resplen = n - i;
	return SMTP_PARSE_OK;
}

/*
 * path_local - a Dot-string or Quoted-string at *ip (RFC 5321 4.1.2,
 * with RFC 6531 3.3 UTF8-non-ascii in atext and qtextSMTP); the
 * 64-octet limit is on the local part proper, so quotes and the
 * backslashes of quoted-pairs do not count
 */
static int
path_local(const char *s, size_t len, size_t *ip, unsigned int *flags)
{
	const unsigned char	*u = (const unsigned char *)s;
	size_t			 i = *ip, start = *ip, n = 0, k;
	int			 dot = 1;

	if (i < len && u[i] == '"') {
		*flags |= SMTP_PATH_QUOTED;
		for (i++;; ) {
			if (i >= len)
				return SMTP_ERR_LOCAL_SYNTAX;
			if (u[i] == '"')
				break;
			if (u[i] == '\\') {
				if (i + 1 >= len || u[i + 1] < 32 ||
				    u[i + 1] > 126)
					return SMTP_ERR_LOCAL_SYNTAX;
				i += 2;
				n++;
			} else if (u[i] >= 32 && u[i] <= 126) {
				i++;
				n++;
			} else if (u[i] >= 0x80) {
				if ((k = utf8_seq(u + i, len - i)) == 0)
					return SMTP_ERR_UTF8;
				*flags |= SMTP_PATH_UTF8;
				i += k;
				n += k;
			} else
				return SMTP_ERR_LOCAL_SYNTAX;
		}
		*ip = i + 1;
		return n > SMTP_LOCAL_MAX ? SMTP_ERR_LOCAL_TOOLONG :
		    SMTP_PARSE_OK;
	}

	while (i < len) {
		if (u[i] == '.') {
			/* "a..b", ".a" and "a." are all outside Dot-string */
			if (dot)
				return SMTP_ERR_LOCAL_SYNTAX;
			dot = 1;
			i++;
		} else if (is_atext(u[i])) {
			dot = 0;
			i++;
		} else if (u[i] >= 0x80) {
			if ((k = utf8_seq(u + i, len - i)) == 0)
				return SMTP_ERR_UTF8;
			*flags |= SMTP_PATH_UTF8;
			dot = 0;
			i += k;
		} else
			break;
	}
	if (i == start || dot)
		return SMTP_ERR_LOCAL_SYNTAX;
	if (i - start > SMTP_LOCAL_MAX)
		return SMTP_ERR_LOCAL_TOOLONG;
	*ip = i;
	return SMTP_PARSE_OK;
}

/*
 * path_hostname - sub-domain *("." sub-domain) at *ip, stopping at the
 * first octet that cannot continue it; the caller judges that octet.
 * UTF-8 counts as a letter (a U-label, RFC 6531 3.3), and the label
 * limit is on its octets as written.
 */
static int
path_hostname(const char *s, size_t len, size_t *ip, unsigned int *flags)
{
	const unsigned char	*u = (const unsigned char *)s;
	size_t			 i = *ip, start = *ip, ls, k;

	for (;;) {
		ls = i;
		while (i < len) {
			if (is_alpha(u[i]) || is_digit(u[i]) || u[i] == '-')
				i++;
			else if (u[i] >= 0x80) {
				if ((k = utf8_seq(u + i, len - i)) == 0)
					return SMTP_ERR_UTF8;
				*flags |= SMTP_PATH_UTF8;
				i += k;
			} else
				break;
		}
		/* an empty label: "a..b", ".a", or the trailing dot of "a." */
		if (i == ls)
			return SMTP_ERR_DOMAIN_SYNTAX;
		if (u[ls] == '-' || u[i - 1] == '-')
			return SMTP_ERR_DOMAIN_SYNTAX;
		if (i - ls > SMTP_LABEL_MAX)
			return SMTP_ERR_LABEL_TOOLONG;
		if (i < len && u[i] == '.') {
			i++;
			continue;
		}
		break;
	}
	if (i - start > SMTP_DOMAIN_MAX)
		return SMTP_ERR_DOMAIN_TOOLONG;
	*ip = i;
	return SMTP_PARSE_OK;
}

/*
 * path_literal - "[IPv4]" or "[IPv6:addr]" at *ip (RFC 5321 4.1.3).
 * inet_pton() wants a C string, so the octets are screened first: a
 * NUL inside would otherwise let "[IPv6:::1\0junk]" through.
 */
static int
path_literal(const char *s, size_t len, size_t *ip)
{
	char		 buf[INET6_ADDRSTRLEN];
	struct in6_addr	 a6;
	struct in_addr	 a4;
	const char	*rb;
	size_t		 i = *ip + 1, n, k, colon = 0;
	unsigned char	 c;

	if ((rb = memchr(s + i, ']', len - i)) == NULL)
		return SMTP_ERR_LITERAL;
	n = (size_t)(rb - (s + i));
	if (n >= 5 && ascii_eq(s + i, 5, "IPv6:")) {
		for (k = 5; k < n; k++) {
			c = (unsigned char)s[i + k];
			if (!is_digit(c) && !(c >= 'a' && c <= 'f') &&
			    !(c >= 'A' && c <= 'F') && c != ':' && c != '.')
				return SMTP_ERR_LITERAL;
		}
		if (n - 5 == 0 || n - 5 >= sizeof(buf))
			return SMTP_ERR_LITERAL;
		memcpy(buf, s + i + 5, n - 5);
		buf[n - 5] = '\0';
		if (inet_pton(AF_INET6, buf, &a6) != 1)
			return SMTP_ERR_LITERAL;
		*ip = i + n + 1;
		return SMTP_PARSE_OK;
	}

	/* General-address-literal: Standardized-tag ":" 1*dcontent */
	for (k = 0; k < n && s[i + k] != ':'; k++)
		;
	if (k < n) {
		colon = k;
		if (colon == 0 || colon + 1 == n)
			return SMTP_ERR_LITERAL;
		for (k = 0; k < colon; k++) {
			c = (unsigned char)s[i + k];
			if (!is_alpha(c) && !is_digit(c) && c != '-')
				return SMTP_ERR_LITERAL;
		}
		for (k = colon + 1; k < n; k++) {
			c = (unsigned char)s[i + k];
			if (c < 33 || c > 126 || c == '[' || c == '\\')
				return SMTP_ERR_LITERAL;
		}
		return SMTP_ERR_LITERAL_GENERAL;
	}

	for (k = 0; k < n; k++)
		if (!is_digit((unsigned char)s[i + k]) && s[i + k] != '.')
			return SMTP_ERR_LITERAL;
	if (n == 0 || n >= sizeof(buf))
		return SMTP_ERR_LITERAL;
	memcpy(buf, s + i, n);
	buf[n] = '\0';
	if (inet_pton(AF_INET, buf, &a4) != 1)
		return SMTP_ERR_LITERAL;
	*ip = i + n + 1;
	return SMTP_PARSE_OK;
}

/*
 * path_route - A-d-l ":" at *ip (RFC 5321 4.1.2): "@a,@b:".  Servers
 * MUST accept and SHOULD ignore it (4.1.1.3, C); we check it, so that
 * junk is not waved through, and drop it.  Route hosts are ASCII
 * hostnames: At-domain takes no literal.
 */
static int
path_route(const char *s, size_t len, size_t *ip)
{
	unsigned int	 fl = 0;
	size_t		 i = *ip;

	for (;;) {
		if (i >= len || s[i] != '@')
			return SMTP_ERR_ROUTE;
		i++;
		if (path_hostname(s, len, &i, &fl) != SMTP_PARSE_OK ||
		    (fl & SMTP_PATH_UTF8))
			return SMTP_ERR_ROUTE;
		if (i < len && s[i] == ',') {
			i++;
			continue;
		}
		if (i < len && s[i] == ':')
			break;
		return SMTP_ERR_ROUTE;
	}
	*ip = i + 1;
	return SMTP_PARSE_OK;
}

int
smtp_parse_path(enum smtp_verb verb, const char *s, size_t len, int smtputf8,
    struct smtp_path *p, size_t *used)
{
	unsigned int	 flags = 0;
	size_t		 i = 1, mbox, at, n;
	int		 rc;

	p->addr[0] = '\0';
	p->len = p->at = 0;
	p->flags = 0;
	*used = 0;

	if (len < 2 || s[0] != '<')
		return SMTP_ERR_PATH_SYNTAX;
	if (s[1] == '>') {
		if (verb != SMTP_CMD_MAIL)
			return SMTP_ERR_NULL_PATH;
		p->flags = SMTP_PATH_NULL;
		*used = 2;
		return SMTP_PARSE_OK;
	}
	if (s[1] == '@') {
		if ((rc = path_route(s, len, &i)) != SMTP_PARSE_OK)
			return rc;
		flags |= SMTP_PATH_ROUTE;
	}

	mbox = i;
	if ((rc = path_local(s, len, &i, &flags)) != SMTP_PARSE_OK)
		return rc;
	if (i >= len)
		return SMTP_ERR_PATH_SYNTAX;
	if (s[i] == '>') {
		/* RFC 5321 4.5.1: RCPT TO:<Postmaster>, in any case */
		if (verb != SMTP_CMD_RCPT || (flags & (SMTP_PATH_ROUTE |
		    SMTP_PATH_QUOTED)) || !ascii_eq(s + mbox, i - mbox,
		    "postmaster"))
			return SMTP_ERR_NO_DOMAIN;
		flags |= SMTP_PATH_POSTMASTER;
		at = i - mbox;
	} else if (s[i] == '@') {
		at = i - mbox;
		i++;
		if (i < len && s[i] == '[') {
			if ((rc = path_literal(s, len, &i)) != SMTP_PARSE_OK)
				return rc;
			flags |= SMTP_PATH_LITERAL;
			if (i >= len || s[i] != '>')
				return SMTP_ERR_PATH_SYNTAX;
		} else {
			if ((rc = path_hostname(s, len, &i, &flags)) !=
			    SMTP_PARSE_OK)
				return rc;
			if (i >= len)
				return SMTP_ERR_PATH_SYNTAX;
			if (s[i] != '>')
				return SMTP_ERR_DOMAIN_SYNTAX;
		}
	} else
		return SMTP_ERR_LOCAL_SYNTAX;

	/*
	 * Only now, so that a client told "needs SMTPUTF8" has an address
	 * that is otherwise right.
	 */
	if ((flags & SMTP_PATH_UTF8) && !smtputf8)
		return SMTP_ERR_NEED_UTF8;

	/* 130 quoted + 1 + 255 at most: always fits, checked all the same */
	n = i - mbox;
	if (n >= sizeof(p->addr))
		return SMTP_ERR_PATH_SYNTAX;
	memcpy(p->addr, s + mbox, n);
	p->addr[n] = '\0';
	p->len = n;
	p->at = at;
	p->flags = flags;
	*used = i + 1;
	return SMTP_PARSE_OK;
}

/*
 * xtext_next - decode one xtext character at *ip (RFC 3461 4): any of
 * 33..126 but '+' and '=' stands for itself, "+XX" with upper-case hex
 * for the octet XX
 */
static int
xtext_next(const char *s, size_t len, size_t *ip, unsigned char *out)
{
	static const char	 hex[] = "0123456789ABCDEF";
	unsigned char		 c = (unsigned char)s[*ip];

	if (c == '+') {
		if (len - *ip < 3 || !is_hexup((unsigned char)s[*ip + 1]) ||
		    !is_hexup((unsigned char)s[*ip + 2]))
			return -1;
		*out = (unsigned char)((strchr(hex, s[*ip + 1]) - hex) << 4 |
		    (strchr(hex, s[*ip + 2]) - hex));
		*ip += 3;
		return 0;
	}
	if (c < 33 || c > 126 || c == '=')
		return -1;
	*out = c;
	(*ip)++;
	return 0;
}

int
smtp_xtext_decode(const char *s, size_t len, char *dst, size_t dstlen,
    size_t *outlen)
{
	size_t		 i = 0, n = 0;
	unsigned char	 c;

	if (outlen != NULL)
		*outlen = 0;
	if (dst != NULL && dstlen == 0)
		return SMTP_ERR_SPACE;
	while (i < len) {
		if (xtext_next(s, len, &i, &c) == -1)
			return SMTP_ERR_XTEXT;
		if (dst != NULL) {
			if (n + 1 >= dstlen)
				return SMTP_ERR_SPACE;
			dst[n] = (char)c;
		}
		n++;
	}
	if (dst != NULL)
		dst[n] = '\0';
	if (outlen != NULL)
		*outlen = n;
	return SMTP_PARSE_OK;
}

/*
 * xtext_value - an xtext parameter value that decodes to 1..max
 * printable US-ASCII octets: RFC 3461 4.4 says so of ENVID, and an
 * ORCPT or AUTH= address with a control or NUL in it is no address
 */
static int
xtext_value(const char *s, size_t len, size_t max)
{
	size_t		 i = 0, n = 0;
	unsigned char	 c;
	int		 bad = 0;

	if (len == 0)
		return SMTP_ERR_PARAM_VALUE;
	while (i < len) {
		if (xtext_next(s, len, &i, &c) == -1)
			return SMTP_ERR_XTEXT;
		if (c < 0x20 || c > 0x7e)
			bad = 1;
		n++;
	}
	if (bad || n > max)
		return SMTP_ERR_PARAM_VALUE;
	return SMTP_PARSE_OK;
}

int
smtp_parse_params(const char *s, size_t len, enum smtp_verb verb,
    struct smtp_params *out)
{
	size_t	 i = 0, ps;
	int	 rc;

	memset(out, 0, sizeof(*out));
	for (;;) {
		while (i < len && s[i] == ' ')
			i++;
		if (i == len)
			return SMTP_PARSE_OK;
		for (ps = i; i < len && s[i] != ' '; i++)
			;
		if ((rc = param_one(s + ps, i - ps, verb, out)) !=
		    SMTP_PARSE_OK)
			return rc;
	}
}

/*
 * param_one - one esmtp-param (RFC 5321 4.1.2): the syntax first, for
 * 501, then whether we know the keyword, for 555 (4.1.1.11), then the
 * value
 */
static int
param_one(const char *p, size_t n, enum smtp_verb verb,
    struct smtp_params *out)
{
	const struct param_def	*d = NULL;
	const char		*eq, *v = NULL;
	size_t			 klen, vlen = 0, i;
	unsigned char		 c;

	eq = memchr(p, '=', n);
	klen = eq != NULL ? (size_t)(eq - p) : n;
	/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
	if (klen == 0 || (!is_alpha((unsigned char)p[0]) &&
	    !is_digit((unsigned char)p[0])))
		return SMTP_ERR_PARAM_SYNTAX;
	for (i = 1; i < klen; i++) {
		c = (unsigned char)p[i];
		if (!is_alpha(c) && !is_digit(c) && c != '-')
			return SMTP_ERR_PARAM_SYNTAX;
	}
	if (eq != NULL) {
		/* esmtp-value = 1*(%d33-60 / %d62-126) */
		v = eq + 1;
		vlen = n - klen - 1;
		if (vlen == 0)
			return SMTP_ERR_PARAM_SYNTAX;
		for (i = 0; i < vlen; i++) {
			c = (unsigned char)v[i];
			if (c < 33 || c > 126 || c == '=')
				return SMTP_ERR_PARAM_SYNTAX;
		}
	}

	for (i = 0; i < sizeof(params) / sizeof(params[0]); i++)
		if (ascii_eq(p, klen, params[i].name)) {
			d = &params[i];
			break;
		}
	if (d == NULL)
		return SMTP_ERR_PARAM_UNKNOWN;
	if (d->verb != verb)
		return SMTP_ERR_PARAM_VERB;
	if (out->seen & d->bit)
		return SMTP_ERR_PARAM_REPEAT;
	out->seen |= d->bit;
	return d->value(v, vlen, eq != NULL, out);
}

/* value_size - RFC 1870 6: size-value ::= 1*20DIGIT */
static int
value_size(const char *v, size_t n, int has, struct smtp_params *out)
{
	uint64_t	 x = 0;
	size_t		 i, d;

	if (!has || n > 20)
		return SMTP_ERR_PARAM_VALUE;
	for (i = 0; i < n; i++)
		if (!is_digit((unsigned char)v[i]))
			return SMTP_ERR_PARAM_VALUE;
	/* twenty digits reach 10^20 - 1, past 2^64 - 1 */
	for (i = 0; i < n; i++) {
		d = (size_t)(v[i] - '0');
		if (x > (UINT64_MAX - d) / 10)
			return SMTP_ERR_SIZE_OVERFLOW;
		x = x * 10 + d;
	}
	out->size = x;
	return SMTP_PARSE_OK;
}

static int
value_body(const char *v, size_t n, int has, struct smtp_params *out)
{
	if (!has)
		return SMTP_ERR_PARAM_VALUE;
	if (ascii_eq(v, n, "7BIT"))
		out->body = SMTP_BODY_7BIT;
	else if (ascii_eq(v, n, "8BITMIME"))
		out->body = SMTP_BODY_8BITMIME;
	else if (ascii_eq(v, n, "BINARYMIME"))
		out->body = SMTP_BODY_BINARYMIME;
	else
		return SMTP_ERR_PARAM_VALUE;
	return SMTP_PARSE_OK;
}

/* value_smtputf8 - RFC 6531 3.4: the keyword takes no value */
static int
value_smtputf8(const char *v, size_t n, int has, struct smtp_params *out)
{
	return has ? SMTP_ERR_PARAM_VALUE : SMTP_PARSE_OK;
}

static int
value_ret(const char *v, size_t n, int has, struct smtp_params *out)
{
	if (!has)
		return SMTP_ERR_PARAM_VALUE;
	if (ascii_eq(v, n, "FULL"))
		out->ret = SMTP_RET_FULL;
	else if (ascii_eq(v, n, "HDRS"))
		out->ret = SMTP_RET_HDRS;
	else
		return SMTP_ERR_PARAM_VALUE;
	return SMTP_PARSE_OK;
}

static int
value_envid(const char *v, size_t n, int has, struct smtp_params *out)
{
	int	 rc;

	if (!has)
		return SMTP_ERR_PARAM_VALUE;
	if ((rc = xtext_value(v, n, SMTP_ENVID_MAX)) != SMTP_PARSE_OK)
		return rc;
	out->envid = v;
	out->envidlen = n;
	return SMTP_PARSE_OK;
}

/* value_auth - RFC 4954 5: AUTH=<> or AUTH=xtext(addr-spec); kept raw */
static int
value_auth(const char *v, size_t n, int has, struct smtp_params *out)
{
	int	 rc;

	if (!has)
		return SMTP_ERR_PARAM_VALUE;
	if ((rc = xtext_value(v, n, SMTP_AUTHPARAM_MAX)) != SMTP_PARSE_OK)
		return rc;
	out->auth = v;
	out->authlen = n;
	return SMTP_PARSE_OK;
}

/* value_notify - RFC 3461 4.1: "NEVER" alone, or a list of the others */
static int
value_notify(const char *v, size_t n, int has, struct smtp_params *out)
{
	size_t		 i = 0, e;
	unsigned int	 bits = 0;

	if (!has)
		return SMTP_ERR_PARAM_VALUE;
	for (;;) {
		for (e = i; e < n && v[e] != ','; e++)
			;
		if (ascii_eq(v + i, e - i, "NEVER"))
			bits |= SMTP_NOTIFY_NEVER;
		else if (ascii_eq(v + i, e - i, "SUCCESS"))
			bits |= SMTP_NOTIFY_SUCCESS;
		else if (ascii_eq(v + i, e - i, "FAILURE"))
			bits |= SMTP_NOTIFY_FAILURE;
		else if (ascii_eq(v + i, e - i, "DELAY"))
			bits |= SMTP_NOTIFY_DELAY;
		else
			return SMTP_ERR_PARAM_VALUE;	/* "" too: "A,,B" */
		if (e == n)
			break;
		i = e + 1;
	}
	if ((bits & SMTP_NOTIFY_NEVER) && bits != SMTP_NOTIFY_NEVER)
		return SMTP_ERR_PARAM_VALUE;
	out->notify = bits;
	return SMTP_PARSE_OK;
}

/* value_orcpt - RFC 3461 4.2: addr-type ";" xtext, addr-type an atom */
static int
value_orcpt(const char *v, size_t n, int has, struct smtp_params *out)
{
	const char	*semi;
	size_t		 tl, i;
	int		 rc;

	if (!has || (semi = memchr(v, ';', n)) == NULL)
		return SMTP_ERR_PARAM_VALUE;
	tl = (size_t)(semi - v);
	if (tl == 0)
		return SMTP_ERR_PARAM_VALUE;
	for (i = 0; i < tl; i++)
		if (!is_atext((unsigned char)v[i]))
			return SMTP_ERR_PARAM_VALUE;
	if ((rc = xtext_value(semi + 1, n - tl - 1, SMTP_ORCPT_MAX)) !=
	    SMTP_PARSE_OK)
		return rc;
	out->orcpt_type = v;
	out->orcpt_typelen = tl;
	out->orcpt = semi + 1;
	out->orcptlen = n - tl - 1;
	return SMTP_PARSE_OK;
}

int
smtp_parse_args(const struct smtp_cmd *cmd, int smtputf8,
    struct smtp_path *p, struct smtp_params *out)
{
	size_t	 used;
	int	 rc;

	memset(out, 0, sizeof(*out));
	if ((cmd->verb != SMTP_CMD_MAIL && cmd->verb != SMTP_CMD_RCPT) ||
	    cmd->arg == NULL)
		return SMTP_ERR_ARG_SYNTAX;
	if ((rc = smtp_parse_path(cmd->verb, cmd->arg, cmd->arglen, smtputf8,
	    p, &used)) != SMTP_PARSE_OK)
		return rc;
	if (used < cmd->arglen && cmd->arg[used] != ' ')
		return SMTP_ERR_PARAM_SYNTAX;
	if ((rc = smtp_parse_params(cmd->arg + used, cmd->arglen - used,
	    cmd->verb, out)) != SMTP_PARSE_OK)
		return rc;
	/* RFC 6531 3.4: a UTF-8 envelope is announced on MAIL */
	if (cmd->verb == SMTP_CMD_MAIL && (p->flags & SMTP_PATH_UTF8) &&
	    !(out->seen & SMTP_PARAM_SMTPUTF8))
		return SMTP_ERR_NEED_UTF8;
	return SMTP_PARSE_OK;
}

/*
 * b64_work - strict base64 of one SASL line into work (B64_WORK
 * octets, room for any line that passed the length check).  Passing
 * no b64_end makes libsodium fail unless every octet was consumed, and
 * the ORIGINAL variant insists on the padding and on zero spare bits.
 */
static int
b64_work(const char *b64, size_t len, unsigned char *work, size_t *n)
{
	size_t		 i;
	unsigned char	 c;

	*n = 0;
	if (len == 1 && b64[0] == '*')
		return SMTP_ERR_AUTH_CANCEL;	/* RFC 4954 4 */
	if (len > SMTP_AUTH_LINE_MAX - 2)
		return SMTP_ERR_AUTH_TOOLONG;
	if (len == 1 && b64[0] == '=')
		return SMTP_PARSE_OK;		/* an empty response */
	/*
	 * libsodium 1.0.18 (Debian 12) decodes every octet 0x80..0xff as
	 * '/', so "\xff\xff\xff\xff" would pass: screen the alphabet here.
	 */
	for (i = 0; i < len; i++) {
		c = (unsigned char)b64[i];
		if (!is_alpha(c) && !is_digit(c) && c != '+' && c != '/' &&
		    c != '=')
			return SMTP_ERR_BASE64;
	}
	if (sodium_base642bin(work, B64_WORK, b64, len, NULL, n, NULL,
	    sodium_base64_VARIANT_ORIGINAL) != 0) {
		*n = 0;
		return SMTP_ERR_BASE64;
	}
	return SMTP_PARSE_OK;
}

int
smtp_base64_decode(const char *b64, size_t len, char *dst, size_t dstlen,
    size_t *outlen)
{
	unsigned char	 work[B64_WORK];
	size_t		 n;
	int		 rc;

	if (outlen != NULL)
		*outlen = 0;
	if ((rc = b64_work(b64, len, work, &n)) != SMTP_PARSE_OK)
		goto out;
	/* "user\0admin" must not reach a strcmp() as "user" */
	if (memchr(work, '\0', n) != NULL) {
		rc = SMTP_ERR_AUTH_SYNTAX;
		goto out;
	}
	if (dstlen == 0 || n >= dstlen) {
		rc = SMTP_ERR_SPACE;
		goto out;
	}
	memcpy(dst, work, n);
	dst[n] = '\0';
	if (outlen != NULL)
		*outlen = n;
out:
	sodium_memzero(work, sizeof(work));
	if (rc != SMTP_PARSE_OK && dstlen > 0)
		sodium_memzero(dst, dstlen);
	return rc;
}

int
smtp_auth_plain(const char *b64, size_t len, char *authzid, size_t zlen,
    char *login, size_t llen, char *password, size_t plen)
{
	unsigned char	 work[B64_WORK];
	unsigned char	*n1, *n2;
	size_t		 n, az, ac, pw;
	int		 rc;

	if ((rc = b64_work(b64, len, work, &n)) != SMTP_PARSE_OK)
		goto out;
	/* RFC 4616 2: [authzid] UTF8NUL authcid UTF8NUL passwd */
	rc = SMTP_ERR_AUTH_SYNTAX;
	if ((n1 = memchr(work, '\0', n)) == NULL)
		goto out;
	az = (size_t)(n1 - work);
	if ((n2 = memchr(n1 + 1, '\0', n - az - 1)) == NULL)
		goto out;
	ac = (size_t)(n2 - (n1 + 1));
	pw = n - az - 1 - ac - 1;
	if (ac == 0 || pw == 0 || memchr(n2 + 1, '\0', pw) != NULL)
		goto out;
	if (!utf8_valid((char *)work, az) ||
	    !utf8_valid((char *)n1 + 1, ac) ||
	    !utf8_valid((char *)n2 + 1, pw))
		goto out;
	/* acting as another user is an authorization we never grant */
	rc = SMTP_ERR_AUTHZID;
	if (az != 0 && (az != ac || memcmp(work, n1 + 1, ac) != 0))
		goto out;
	rc = SMTP_ERR_SPACE;
	if (az >= zlen || ac >= llen || pw >= plen)
		goto out;
	memcpy(authzid, work, az);
	authzid[az] = '\0';
	memcpy(login, n1 + 1, ac);
	login[ac] = '\0';
	memcpy(password, n2 + 1, pw);
	password[pw] = '\0';
	rc = SMTP_PARSE_OK;
out:
	sodium_memzero(work, sizeof(work));
	if (rc != SMTP_PARSE_OK) {
		if (zlen > 0)
			sodium_memzero(authzid, zlen);
		if (llen > 0)
			sodium_memzero(login, llen);
		if (plen > 0)
			sodium_memzero(password, plen);
	}
	return rc;
}

int
smtp_sender_allowed(const char *patterns, const char *address)
{
	const char	*p, *nl, *dom;
	size_t		 n, alen;

	if (address == NULL)
		return 0;
	/* bounces and receipts from applications use <> */
	if (address[0] == '\0')
		return 1;
	if (patterns == NULL)
		return 0;
	alen = strlen(address);
	/* the last '@': a quoted local part may hold one */
	dom = strrchr(address, '@');
	for (p = patterns; *p != '\0'; p = nl != NULL ? nl + 1 : p + n) {
		nl = strchr(p, '\n');
		n = nl != NULL ? (size_t)(nl - p) : strlen(p);
		if (n == 0)
			continue;
		if (n == 1 && p[0] == '*')
			return 1;
		if (p[0] == '@') {
			if (dom != NULL && ascii_eq(p + 1, n - 1, dom + 1))
				return 1;
			continue;
		}
		if (n == alen && ascii_eq(p, n, address))
			return 1;
	}
	return 0;
}

const char *
smtp_verb_name(enum smtp_verb verb)
{
	size_t	 i;

	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (verbs[i].verb == verb)
			return verbs[i].name;
	return "UNKNOWN";
}

const char *
smtp_parse_strerror(int err)
{
	if (err < 0 || err >= SMTP_ERR_MAX)
		return "unknown error";
	return replies[err].why;
}

void
smtp_parse_reply(int err, enum smtp_verb verb, int *code,
    const char **enhanced, const char **text)
{
	const struct reply_def	*r;

	if (err < 0 || err >= SMTP_ERR_MAX) {
		*code = 451;
		*enhanced = "4.3.0";
		*text = "Internal error";
		return;
	}
	r = &replies[err];
	*code = r->code;
	*text = r->text;
	/* RFC 3463 3.2: X.1.7 is the sender's address, X.1.3 a recipient's */
	if (r->enhanced == NULL)
		*enhanced = verb == SMTP_CMD_MAIL ? "5.1.7" : "5.1.3";
	else
		*enhanced = r->enhanced;

	if (err == SMTP_ERR_SPACE && verb == SMTP_CMD_AUTH) {
		*code = 535;
		*enhanced = "5.7.8";
		*text = "Authentication credentials invalid";
	} else if (err == SMTP_ERR_ARG_SYNTAX) {
		switch (verb) {
		case SMTP_CMD_MAIL:
			*text = "Syntax: MAIL FROM:<address>";
			break;
		case SMTP_CMD_RCPT:
			*text = "Syntax: RCPT TO:<address>";
			break;
		case SMTP_CMD_BDAT:
			*text = "Syntax: BDAT size [LAST]";
			break;
		case SMTP_CMD_AUTH:
			*text = "Syntax: AUTH mechanism [initial-response]";
			break;
		default:
			break;
		}
	}
}
