/*
 * fuzz_smtp_reply - any bytes as what an upstream server says, the way
 * deliverd calls the parsers: the first octet picks the bound on lines
 * (1..64), the second the size of the pieces a body goes out in; the
 * rest is split at LF (a CR before it dropped, as the reader does) and
 * each line goes into one reply accumulator, and into the EHLO parser
 * both as an ehlo-line and whole.  The whole input is also sent as a
 * message body through the dot-stuffer.
 *
 * Invariants: the result of each line is what a model of the rules
 * says (syntax, same code, line count, last line); a kept text is
 * NUL-terminated, within SMTP_REPLY_TEXT_MAX, free of control octets,
 * starts with the code and the status, and only grows within a reply;
 * a status is 5..15 digits and dots of the reply's class; EHLO gives
 * only known bits and a SIZE of at most INT64_MAX; the stuffed body
 * has a second dot wherever a line starts with one, un-stuffs to the
 * input, and the end of data appears only at its end.
 *
 * Every buffer handed to a parser is a block of exactly its length,
 * so a read one byte past shows under ASan.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_reply.h"

#define EXT_ALL	(SMTP_EXT_STARTTLS | SMTP_EXT_SIZE | SMTP_EXT_8BITMIME | \
	    SMTP_EXT_SMTPUTF8 | SMTP_EXT_DSN | SMTP_EXT_PIPELINING | \
	    SMTP_EXT_AUTH_PLAIN | SMTP_EXT_AUTH_LOGIN)

/* what the model knows of the reply being read */
struct model {
	int		 open;		/* a line with '-' came last */
	int		 code;
	int		 nlines;
	size_t		 len;		/* of the text so far */
	char		 text[SMTP_REPLY_TEXT_MAX + 1];
};

int		LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static char	*exact_copy(const void *, size_t);
static int	 model_rc(struct model *, const char *, size_t, int);
static void	 check_reply(const struct smtp_reply *, struct model *,
		    const char *, int);
static void	 check_line(struct smtp_reply *, struct model *, const char *,
		    size_t, int);
static void	 check_ehlo(const char *, size_t, unsigned int *, uint64_t *);
static void	 check_body(const uint8_t *, size_t, size_t);

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

/* model_rc - the result the rules give for this line, and the model on */
static int
model_rc(struct model *m, const char *line, size_t len, int maxlines)
{
	const unsigned char	*u = (const unsigned char *)line;
	int			 code;

	if (len < 3 || u[0] < '2' || u[0] > '5' || u[1] < '0' || u[1] > '9' ||
	    u[2] < '0' || u[2] > '9' || (len > 3 && u[3] != ' ' &&
	    u[3] != '-')) {
		m->open = 0;
		return SMTP_REPLY_ERR_SYNTAX;
	}
	code = (u[0] - '0') * 100 + (u[1] - '0') * 10 + (u[2] - '0');
	if (!m->open) {
		m->code = code;
		m->nlines = 0;
		m->len = 0;
	} else if (code != m->code) {
		m->open = 0;
		return SMTP_REPLY_ERR_CODE;
	}
	if (m->nlines >= maxlines) {
		m->open = 0;
		return SMTP_REPLY_ERR_LINES;
	}
	m->nlines++;
	m->open = len > 3 && u[3] == '-';
	return m->open ? SMTP_REPLY_MORE : SMTP_REPLY_DONE;
}

/* check_reply - what a reply with a line just taken must look like */
static void
check_reply(const struct smtp_reply *r, struct model *m, const char *line,
    int maxlines)
{
	size_t	 i, sl;

	if (r->code != m->code || r->nlines != m->nlines || r->nlines < 1 ||
	    r->nlines > maxlines)
		abort();
	if (r->len > SMTP_REPLY_TEXT_MAX || r->text[r->len] != '\0' ||
	    strlen(r->text) != r->len)
		abort();
	for (i = 0; i < r->len; i++)
		if ((unsigned char)r->text[i] < 0x20 || r->text[i] == 0x7f)
			abort();
	if (memcmp(r->text, line, 3) != 0)
		abort();
	sl = strlen(r->status);
	if (sl >= sizeof(r->status))
		abort();
	if (sl > 0) {
		if (sl < 5 || r->status[0] != line[0] || r->status[1] != '.')
			abort();
		for (i = 0; i < sl; i++)
			if ((r->status[i] < '0' || r->status[i] > '9') &&
			    r->status[i] != '.')
				abort();
		if (r->len < 4 + sl || r->text[3] != ' ' ||
		    memcmp(r->text + 4, r->status, sl) != 0)
			abort();
	} else if (r->len > 3 && r->text[3] != ' ')
		abort();
	/* within a reply the text only grows: lines are added, never cut */
	if (m->nlines > 1 && (r->len < m->len ||
	    memcmp(r->text, m->text, m->len) != 0))
		abort();
	memcpy(m->text, r->text, r->len + 1);
	m->len = r->len;
}

/* check_line - one line into the accumulator, then EHLO as deliverd */
static void
check_line(struct smtp_reply *r, struct model *m, const char *s, size_t n,
    int maxlines)
{
	char	*q = exact_copy(s, n);
	int	 rc, want;

	want = model_rc(m, q, n, maxlines);
	rc = smtp_reply_line(r, q, n, maxlines);
	if (rc != want || rc < 0 || rc >= SMTP_REPLY_RC_MAX ||
	    smtp_reply_strerror(rc) == NULL)
		abort();
	if (rc == SMTP_REPLY_MORE || rc == SMTP_REPLY_DONE) {
		check_reply(r, m, q, maxlines);
		if ((rc == SMTP_REPLY_DONE) != (r->done != 0))
			abort();
	}
	free(q);
}

/* check_ehlo - only bits we know, added to *caps; SIZE in range */
static void
check_ehlo(const char *s, size_t n, unsigned int *caps, uint64_t *size)
{
	char		*q = exact_copy(s, n);
	unsigned int	 before = *caps, bits;

	bits = smtp_reply_ehlo(q, n, caps, size);
	if ((bits & ~(unsigned int)EXT_ALL) != 0 || *caps != (before | bits))
		abort();
	if (*size > (uint64_t)INT64_MAX)
		abort();
	/* nothing shorter than the shortest keyword, "DSN", is one */
	if (bits != 0 && n < 3)
		abort();
	free(q);
}

/*
 * check_body - the input as a message body, sent in pieces of at most
 * max; the wire form un-stuffs to the body, and holds the end of data
 * only at its end
 */
static void
check_body(const uint8_t *data, size_t len, size_t max)
{
	const char	*end;
	char		*b = exact_copy(data, len), *w, *u;
	size_t		 off = 0, n, o = 0, en, i, k, ul;
	int		 stuff, bol;

	if ((w = malloc(2 * len + 5)) == NULL)
		abort();
	while (off < len) {
		n = smtp_reply_dot_span(b, len, off, max, &stuff);
		if (n == 0 || n > max || n > len - off)
			abort();
		if (stuff) {
			if (b[off] != '.' || (off > 0 && b[off - 1] != '\n'))
				abort();
			w[o++] = '.';
		}
		memcpy(w + o, b + off, n);
		o += n;
		off += n;
	}
	if (smtp_reply_dot_span(b, len, len, max, &stuff) != 0 || stuff)
		abort();

	/* a line that starts with a dot starts with two on the wire */
	for (i = 0; i < o; i++)
		if ((i == 0 || w[i - 1] == '\n') && w[i] == '.' &&
		    (i + 1 >= o || w[i + 1] != '.'))
			abort();
	/* un-stuffing gives the body back */
	if ((u = malloc(o > 0 ? o : 1)) == NULL)
		abort();
	for (i = 0, ul = 0, bol = 1; i < o; i++) {
		if (!(bol && w[i] == '.'))
			u[ul++] = w[i];
		bol = w[i] == '\n';
	}
	if (ul != len || memcmp(u, b, len) != 0)
		abort();
	free(u);

	end = smtp_reply_dot_end(b, len, &en);
	if (en != strlen(end) || (en != 3 && en != 5))
		abort();
	memcpy(w + o, end, en);
	o += en;
	if (memcmp(w + o - 3, ".\r\n", 3) != 0)
		abort();
	/* RFC 5321 4.1.1.4: CRLF "." CRLF, nowhere but at the end */
	if (len > 0 && o >= 3 && memcmp(w, ".\r\n", 3) == 0)
		abort();
	for (k = 0; k + 5 < o; k++)
		if (memcmp(w + k, "\r\n.\r\n", 5) == 0)
			abort();
	free(w);
	free(b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct smtp_reply r;	/* 4 KiB: off the stack */
	static struct model	 m;
	unsigned int		 caps = 0;
	uint64_t		 sz = 0;
	size_t			 i, e, n, max;
	int			 maxlines;

	if (size < 2)
		return 0;
	maxlines = (data[0] & 0x3f) + 1;
	/* pieces of 1..16 octets, or deliverd's 64 KiB */
	max = (data[1] & 0x10) ? 64 * 1024 : (size_t)(data[1] & 0x0f) + 1;
	smtp_reply_init(&r);
	memset(&m, 0, sizeof(m));

	for (i = 2; i < size; i = e + 1) {
		for (e = i; e < size && data[e] != '\n'; e++)
			;
		n = e - i;
		if (n > 0 && e < size && data[e - 1] == '\r')
			n--;
		check_line(&r, &m, (const char *)data + i, n, maxlines);
		if (n > 4)
			check_ehlo((const char *)data + i + 4, n - 4, &caps,
			    &sz);
		check_ehlo((const char *)data + i, n, &caps, &sz);
	}
	check_body(data + 2, size - 2, max);
	return 0;
}
