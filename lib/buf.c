/*
 * buf.c - bounded byte buffers and line reading
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
	size_t	 cap;
	size_t	 max;
};

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

/* buf_reserve - room for n more bytes, or fail at max before allocating */
int
buf_reserve(struct buf *b, size_t n)
{
	size_t	 need, ncap;
	uint8_t	*p;

	if (n > b->max - b->len) {
		errno = ENOBUFS;
		return -1;
	}
	need = b->len + n;
	if (b->off + need <= b->cap)
		return 0;
	/* consumed space at the front is reused before growing */
	if (need <= b->cap) {
		memmove(b->data, b->data + b->off, b->len);
		b->off = 0;
		return 0;
	}
	ncap = b->cap ? b->cap : BUF_INITIAL;
	while (ncap < need)
		ncap = ncap > b->max / 2 ? b->max : ncap * 2;
	if (ncap > b->max)
		ncap = b->max;
	if (b->off > 0) {
		memmove(b->data, b->data + b->off, b->len);
		b->off = 0;
	}
	if ((p = realloc(b->data, ncap)) == NULL) {
		errno = ENOMEM;
		return -1;
	}
	b->data = p;
	b->cap = ncap;
	return 0;
}

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

/* buf_printf - format onto the end; all or nothing, bounded by max */
int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list	 ap;
	char	*s;
	int	 n, rc;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0) {
		errno = ENOMEM;
		return -1;
	}
	rc = buf_add(b, s, (size_t)n);
	free(s);
	return rc;
}

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

const uint8_t *
buf_data(const struct buf *b)
{
	return b->data != NULL ? b->data + b->off : (const uint8_t *)"";
}

uint8_t *
buf_tail(struct buf *b)
{
	return b->data + b->off + b->len;
}

void
buf_commit(struct buf *b, size_t n)
{
	if (n > b->cap - b->off - b->len)
		n = b->cap - b->off - b->len;
	b->len += n;
}

/*
 * buf_getline - the next LF-terminated line.  Two checks, as in
 * OpenSMTPD's session reader: a complete line longer than maxline, and
 * maxline bytes buffered without any LF at all.  Without the second a
 * peer that never sends LF would make us buffer up to max.
 */
int
buf_getline(struct buf *b, size_t maxline, struct buf_line *line)
{
	const uint8_t	*p = buf_data(b), *lf;
	size_t		 scan, n;

	scan = b->len < maxline ? b->len : maxline;
	if ((lf = memchr(p, '\n', scan)) == NULL) {
		if (b->len >= maxline)
			return BUF_LINE_TOOLONG;
		return BUF_LINE_MORE;
	}
	n = (size_t)(lf - p);
	line->data = (const char *)p;
	line->consume = n + 1;
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
