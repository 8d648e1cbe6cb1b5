/*
 * buf.c - bounded byte buffers and line reading
 *
 * The unread bytes are data[off .. off + len).  Space before off has been
 * consumed and is reclaimed by moving the unread bytes down, which is
 * cheaper than growing and keeps a session's memory at what it holds,
 * not at what it has ever received.  cap never exceeds max.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

#define BUF_INITIAL	256

struct buf {
	uint8_t	*data;
	size_t	 off;		/* start of unread bytes */
	size_t	 len;		/* unread bytes */
	size_t	 cap;		/* allocated, <= max */
	size_t	 max;		/* hard cap on len */
};

static void	buf_compact(struct buf *);

/* buf_new - an empty buffer that will never hold more than max bytes */
struct buf *
buf_new(size_t max)
{
	struct buf	*b;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		return NULL;
	b->max = max;
	return b;
}

void
buf_free(struct buf *b)
{
	if (b == NULL)
		return;
	free(b->data);
	free(b);
}

/* buf_compact - move the unread bytes to the front of the allocation */
static void
buf_compact(struct buf *b)
{
	if (b->off == 0)
		return;
	if (b->len > 0)
		memmove(b->data, b->data + b->off, b->len);
	b->off = 0;
}

/* buf_reserve - room for n more bytes, or fail at max before allocating */
int
buf_reserve(struct buf *b, size_t n)
{
	size_t	 need, ncap;
	uint8_t	*p;

	/*
	 * The cap is checked first and by subtraction: len <= max always
	 * holds, so max - len cannot wrap, whereas len + n could for an n
	 * a peer chose.  Nothing is allocated for a request that must fail.
	 */
	if (n > b->max - b->len) {
		errno = ENOBUFS;
		return -1;
	}
	need = b->len + n;
	if (b->off + need <= b->cap)
		return 0;
	if (need <= b->cap) {
		buf_compact(b);
		return 0;
	}

	/* doubling never passes max, so it cannot overflow either */
	ncap = b->cap > 0 ? b->cap : BUF_INITIAL;
	while (ncap < need)
		ncap = ncap > b->max / 2 ? b->max : ncap * 2;
	if (ncap > b->max)
		ncap = b->max;
	if ((p = realloc(b->data, ncap)) == NULL) {
		errno = ENOMEM;
		return -1;
	}
	b->data = p;
	b->cap = ncap;
	buf_compact(b);
	return 0;
}

/* buf_add - append n bytes, all or nothing */
int
buf_add(struct buf *b, const void *data, size_t n)
{
	if (n == 0)
		return 0;
	if (buf_reserve(b, n) == -1)
		return -1;
	memcpy(b->data + b->off + b->len, data, n);
	b->len += n;
	return 0;
}

int
buf_add_str(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

/*
 * buf_printf - format onto the end, all or nothing, never past max.
 * The text goes straight into the free tail when it fits; otherwise the
 * first vsnprintf() has told us its length, which is checked against max
 * before anything is allocated.
 */
int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list	 ap;
	size_t	 avail, n;
	char	*tmp;
	int	 r, rc;

	avail = b->cap - b->off - b->len;
	va_start(ap, fmt);
	r = vsnprintf(avail > 0 ? (char *)buf_tail(b) : NULL, avail, fmt, ap);
	va_end(ap);
	if (r < 0)
		return -1;	/* errno from vsnprintf, e.g. EOVERFLOW */
	n = (size_t)r;
	if (n == 0)
		return 0;
	if (n < avail) {
		/* the bytes past len were free; only now do they count */
		b->len += n;
		return 0;
	}
	if (n > b->max - b->len) {
		errno = ENOBUFS;
		return -1;
	}

	/*
	 * vsnprintf() writes a NUL after the text.  Reserve a byte for it
	 * when max allows; when the text fills the buffer to exactly max
	 * there is no such byte, so format into a temporary instead, its
	 * size bounded by max all the same.
	 */
	if (n < b->max - b->len) {
		if (buf_reserve(b, n + 1) == -1)
			return -1;
		va_start(ap, fmt);
		(void)vsnprintf((char *)buf_tail(b), n + 1, fmt, ap);
		va_end(ap);
		b->len += n;
		return 0;
	}
	if ((tmp = malloc(n + 1)) == NULL) {
		errno = ENOMEM;
		return -1;
	}
	va_start(ap, fmt);
	(void)vsnprintf(tmp, n + 1, fmt, ap);
	va_end(ap);
	rc = buf_add(b, tmp, n);
	free(tmp);
	return rc;
}

/* buf_consume - drop n bytes from the front; more than len drops all */
void
buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->off = 0;
		b->len = 0;
		return;
	}
	b->off += n;
	b->len -= n;
}

void
buf_reset(struct buf *b)
{
	b->off = 0;
	b->len = 0;
}

size_t
buf_len(const struct buf *b)
{
	return b->len;
}

size_t
buf_room(const struct buf *b)
{
	return b->max - b->len;
}

size_t
buf_max(const struct buf *b)
{
	return b->max;
}

/* buf_data - the unread bytes; never NULL, even before any allocation */
const uint8_t *
buf_data(const struct buf *b)
{
	return b->data != NULL ? b->data + b->off : (const uint8_t *)"";
}

/* buf_tail - where the next byte goes; valid after buf_reserve(b, n > 0) */
uint8_t *
buf_tail(struct buf *b)
{
	if (b->data == NULL)
		return NULL;
	return b->data + b->off + b->len;
}

/* buf_commit - count n bytes a reader wrote at buf_tail() */
void
buf_commit(struct buf *b, size_t n)
{
	/* never count bytes outside the allocation, whatever the caller says */
	if (n > b->cap - b->off - b->len)
		n = b->cap - b->off - b->len;
	b->len += n;
}

/*
 * buf_getline - the next LF-terminated line, if it is at most maxline
 * bytes long with its terminator.
 *
 * There are two ways a line can be too long, and each needs its own
 * check (as in OpenSMTPD's session reader):
 *
 *  - Its LF has arrived, but more than maxline bytes before it.  A peer
 *    can send a long line and its LF in one packet, well under max, so
 *    nothing else stops it; without this check the caller would be
 *    handed a line past the RFC 5321 limit it promised to enforce.
 *
 *  - Its LF has not arrived, and maxline bytes are already buffered.
 *    The line cannot end within the limit any more.  Without this check
 *    a peer that never sends LF makes us hold (and rescan on every read)
 *    up to max bytes per session, and it gets its error only at max.
 *
 * Both come down to "no LF among the first maxline bytes, and at least
 * maxline bytes buffered", so the scan never looks past maxline: a
 * buffer filling a few bytes at a time costs O(maxline) per call, not
 * O(max).  A line of exactly maxline bytes with its LF is accepted.
 */
int
buf_getline(struct buf *b, size_t maxline, struct buf_line *line)
{
	const uint8_t	*p = buf_data(b), *lf;
	size_t		 scan, n;

	scan = b->len < maxline ? b->len : maxline;
	if ((lf = memchr(p, '\n', scan)) == NULL) {
		if (b->len < maxline)
			return BUF_LINE_MORE;
		/* the LF is past maxline, or nowhere yet: either way too long */
		return BUF_LINE_TOOLONG;
	}
	n = (size_t)(lf - p);
	line->data = (const char *)p;
	line->consume = n + 1;
	/*
	 * A bare LF is reported, not repaired: SMTP requires CRLF, and a
	 * receiver that treats LF alone as an end of line can be made to
	 * see a different message than the next hop does (SMTP smuggling).
	 */
	if (n > 0 && p[n - 1] == '\r') {
		line->len = n - 1;
		line->bare_lf = 0;
	} else {
		line->len = n;
		line->bare_lf = 1;
	}
	return BUF_LINE_OK;
}

/* buf_skipline - drop the rest of an over-long line as it arrives */
int
buf_skipline(struct buf *b)
{
	const uint8_t	*p = buf_data(b), *lf;

	if ((lf = memchr(p, '\n', b->len)) == NULL) {
		buf_reset(b);
		return 0;
	}
	buf_consume(b, (size_t)(lf - p) + 1);
	return 1;
}
