/*
 * smtp_reply.c - read what an SMTP server answers, octet by octet, and
 * dot-stuff what the client sends it
 *
 * The server is untrusted: a smarthost may be anybody's, and an MX
 * host is whoever the DNS says.  Every scan is bounded by the length it
 * was given, never by a NUL, and what is kept of a reply is measured
 * against its room before it is copied.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "smtp_reply.h"

#define EHLO_KEYWORD_MAX	32	/* a keyword we compare, exclusive */

struct ext_def {
	const char	*name;
	unsigned int	 bit;
};

static int	 is_sp(unsigned char);
static int	 is_digit(unsigned char);
static int	 ascii_eq(const char *, size_t, const char *);
static int	 reply_fail(struct smtp_reply *, int);
static size_t	 reply_status(struct smtp_reply *, const char *, size_t,
		    char);
static void	 reply_append(struct smtp_reply *, const char *, size_t);
static void	 ehlo_size(const char *, size_t, uint64_t *);
static unsigned int ehlo_auth(const char *, size_t);

/* what EHLO may announce that the client uses; AUTH says which below */
static const struct ext_def exts[] = {
	{ "STARTTLS",	SMTP_EXT_STARTTLS },	/* RFC 3207 */
	{ "8BITMIME",	SMTP_EXT_8BITMIME },	/* RFC 6152 */
	{ "SMTPUTF8",	SMTP_EXT_SMTPUTF8 },	/* RFC 6531 */
	{ "DSN",	SMTP_EXT_DSN },		/* RFC 3461 */
	{ "PIPELINING",	SMTP_EXT_PIPELINING },	/* RFC 2920 */
	{ "SIZE",	SMTP_EXT_SIZE },	/* RFC 1870 */
	{ "AUTH",	0 },			/* RFC 4954 */
};

static const char *const rc_names[SMTP_REPLY_RC_MAX] = {
	"more lines to come",
	"reply complete",
	"malformed reply line",
	"reply code changed within a reply",
	"too many lines in a reply",
};

/*
 * is_sp - SP, or a control octet, which counts as one: a server's text
 * goes into logs and into bounces, where a CR, LF or ESC could forge
 * lines or move a terminal's cursor
 */
static int
is_sp(unsigned char c)
{
	return c == ' ' || c < 0x20 || c == 0x7f;
}

static int
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* ascii_eq - s[0..n) is the C string name, in any ASCII case */
static int
ascii_eq(const char *s, size_t n, const char *name)
{
	size_t		 i;
	unsigned char	 a, b;

	for (i = 0; i < n; i++) {
		a = (unsigned char)s[i];
		b = (unsigned char)name[i];
		if (b == '\0')
			return 0;
		if (a >= 'a' && a <= 'z')
			a = (unsigned char)(a - 'a' + 'A');
		if (b >= 'a' && b <= 'z')
			b = (unsigned char)(b - 'a' + 'A');
		if (a != b)
			return 0;
	}
	return name[n] == '\0';
}

void
smtp_reply_init(struct smtp_reply *r)
{
	memset(r, 0, sizeof(*r));
}

/* reply_fail - the reply is lost; the next line starts a new one */
static int
reply_fail(struct smtp_reply *r, int rc)
{
	r->nlines = 0;
	r->done = 0;
	return rc;
}

int
smtp_reply_line(struct smtp_reply *r, const char *line, size_t len,
    int maxlines)
{
	const unsigned char	*u = (const unsigned char *)line;
	const char		*text;
	size_t			 tl, skip;
	int			 code, last;

	if (r->done) {
		r->nlines = 0;
		r->done = 0;
	}
	/* RFC 5321 4.2: Reply-code is %x32-35 %x30-35 %x30-39; 4.2.1 */
	if (len < 3 || u[0] < '2' || u[0] > '5' || !is_digit(u[1]) ||
	    !is_digit(u[2]) || (len > 3 && u[3] != ' ' && u[3] != '-'))
		return reply_fail(r, SMTP_REPLY_ERR_SYNTAX);
	code = (u[0] - '0') * 100 + (u[1] - '0') * 10 + (u[2] - '0');
	/* a bare "250" ends a reply, as Postfix and most clients take it */
	last = len == 3 || u[3] == ' ';
	if (r->nlines == 0) {
		r->code = code;
		r->status[0] = '\0';
		memcpy(r->text, line, 3);
		r->text[3] = '\0';
		r->len = 3;
	} else if (code != r->code)
		return reply_fail(r, SMTP_REPLY_ERR_CODE);
	/* the count is checked before any text is kept: each line costs */
	if (maxlines < 1 || r->nlines >= maxlines)
		return reply_fail(r, SMTP_REPLY_ERR_LINES);
	r->nlines++;

	text = len > 4 ? line + 4 : line + len;
	tl = len > 4 ? len - 4 : 0;
	skip = reply_status(r, text, tl, line[0]);
	reply_append(r, text + skip, tl - skip);
	if (!last)
		return SMTP_REPLY_MORE;
	r->done = 1;
	return SMTP_REPLY_DONE;
}

/*
 * reply_status - RFC 3463 2: class "." subject "." detail, taken from
 * the first line when its class is the reply's (a "250 5.0.0" says
 * nothing we could trust); the octets of text to leave out, the code
 * and the SP after it when it is the reply's
 */
static size_t
reply_status(struct smtp_reply *r, const char *text, size_t tl, char cls)
{
	size_t	 n = 0, sl;

	while (n < tl && (is_digit((unsigned char)text[n]) || text[n] == '.'))
		n++;
	if (n < 5 || n >= sizeof(r->status) || text[0] != cls ||
	    text[1] != '.' || (n < tl && !is_sp((unsigned char)text[n])))
		return 0;
	if (r->nlines == 1) {
		memcpy(r->status, text, n);
		r->status[n] = '\0';
		/* the status follows the code in r->text, SP between */
		r->text[r->len++] = ' ';
		memcpy(r->text + r->len, text, n);
		r->len += n;
		r->text[r->len] = '\0';
	}
	sl = strlen(r->status);
	if (sl != n || memcmp(text, r->status, n) != 0)
		return 0;
	while (n < tl && is_sp((unsigned char)text[n]))
		n++;
	return n;
}

/*
 * reply_append - SP and the text of a line, control octets as SP; a
 * line without room is left out whole rather than cut in the middle
 */
static void
reply_append(struct smtp_reply *r, const char *text, size_t tl)
{
	size_t	 i;

	if (tl == 0 || r->len >= SMTP_REPLY_TEXT_MAX ||
	    tl > SMTP_REPLY_TEXT_MAX - r->len - 1)
		return;
	r->text[r->len++] = ' ';
	for (i = 0; i < tl; i++)
		r->text[r->len++] = is_sp((unsigned char)text[i]) ? ' ' :
		    text[i];
	r->text[r->len] = '\0';
}

unsigned int
smtp_reply_ehlo(const char *ext, size_t len, unsigned int *caps,
    uint64_t *size)
{
	const struct ext_def	*d = NULL;
	size_t			 n, i;
	unsigned int		 bit;

	/* ehlo-keyword, then ehlo-param after SP (or '=' in old AUTH=) */
	for (n = 0; n < len && !is_sp((unsigned char)ext[n]) && ext[n] != '=';
	    n++)
		;
	if (n == 0 || n >= EHLO_KEYWORD_MAX)
		return 0;
	for (i = 0; i < sizeof(exts) / sizeof(exts[0]); i++)
		if (ascii_eq(ext, n, exts[i].name)) {
			d = &exts[i];
			break;
		}
	if (d == NULL)
		return 0;
	bit = d->bit;
	if (bit == SMTP_EXT_SIZE)
		ehlo_size(ext + n, len - n, size);
	else if (bit == 0)
		bit = ehlo_auth(ext + n, len - n);
	*caps |= bit;
	return bit;
}

/*
 * ehlo_size - RFC 1870 4: "SIZE" [SP 1*DIGIT], the largest message the
 * server takes, 0 for none stated.  A value we cannot read is no limit
 * rather than a refusal: the server still says no at MAIL or at the dot.
 */
static void
ehlo_size(const char *p, size_t len, uint64_t *size)
{
	uint64_t	 v = 0;
	size_t		 i = 0, e, d;
	int		 neg = 0;

	while (i < len && is_sp((unsigned char)p[i]))
		i++;
	for (e = i; e < len && !is_sp((unsigned char)p[e]); e++)
		;
	if (e == i || e - i >= SMTP_REPLY_SIZE_ARG)
		return;
	/* a sign, as strtoll() took one; "-0" is 0 as well */
	if (p[i] == '+' || p[i] == '-')
		neg = p[i++] == '-';
	if (i == e) {
		*size = 0;
		return;
	}
	for (; i < e; i++) {
		if (!is_digit((unsigned char)p[i])) {
			*size = 0;
			return;
		}
		d = (size_t)(p[i] - '0');
		if (v > ((uint64_t)INT64_MAX - d) / 10) {
			*size = 0;
			return;
		}
		v = v * 10 + d;
	}
	*size = neg ? 0 : v;
}

/*
 * ehlo_auth - the SASL mechanisms after AUTH (RFC 4954 3), separated by
 * SP; "AUTH=PLAIN LOGIN" is what some servers still send for clients
 * of drafts before the RFC, so '=' separates too before a name
 */
static unsigned int
ehlo_auth(const char *p, size_t len)
{
	unsigned int	 bits = 0;
	size_t		 i = 0, s;

	while (i < len) {
		while (i < len && (is_sp((unsigned char)p[i]) || p[i] == '='))
			i++;
		for (s = i; i < len && !is_sp((unsigned char)p[i]); i++)
			;
		if (ascii_eq(p + s, i - s, "PLAIN"))
			bits |= SMTP_EXT_AUTH_PLAIN;
		else if (ascii_eq(p + s, i - s, "LOGIN"))
			bits |= SMTP_EXT_AUTH_LOGIN;
	}
	return bits;
}

const char *
smtp_reply_strerror(int rc)
{
	if (rc < 0 || rc >= SMTP_REPLY_RC_MAX)
		return "unknown error";
	return rc_names[rc];
}

size_t
smtp_reply_dot_span(const void *body, size_t len, size_t off, size_t max,
    int *stuff)
{
	const unsigned char	*b = body, *p;
	size_t			 end;

	*stuff = 0;
	if (off >= len || max == 0)
		return 0;
	/* RFC 5321 4.5.2: a line that starts with "." gets one more */
	*stuff = (off == 0 || b[off - 1] == '\n') && b[off] == '.';
	end = len - off > max ? off + max : len;
	/*
	 * Up to and including the LF before the next leading dot.  A LF
	 * that ends the piece is seen again on the next call through
	 * b[off - 1], so a "\n." across two pieces is stuffed all the same.
	 */
	p = memmem(b + off, end - off, "\n.", 2);
	return p != NULL ? (size_t)(p - (b + off)) + 1 : end - off;
}

const char *
smtp_reply_dot_end(const void *body, size_t len, size_t *n)
{
	const unsigned char	*b = body;

	/* the dot must be alone on its line (RFC 5321 4.1.1.4) */
	if (len > 0 && b[len - 1] != '\n') {
		*n = 5;
		return "\r\n.\r\n";
	}
	*n = 3;
	return ".\r\n";
}
