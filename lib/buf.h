/*
 * NAME
 *	buf - bounded byte buffers and line reading
 * SYNOPSIS
 *	#include "buf.h"
 *
 *	struct buf *buf_new(size_t max);
 *	void buf_free(struct buf *b);
 *	int buf_reserve(struct buf *b, size_t n);
 *	int buf_add(struct buf *b, const void *data, size_t n);
 *	int buf_add_str(struct buf *b, const char *s);
 *	int buf_printf(struct buf *b, const char *fmt, ...);
 *	void buf_consume(struct buf *b, size_t n);
 *	void buf_reset(struct buf *b);
 *	size_t buf_len(const struct buf *b);
 *	size_t buf_room(const struct buf *b);
 *	const uint8_t *buf_data(const struct buf *b);
 *	uint8_t *buf_tail(struct buf *b);
 *	void buf_commit(struct buf *b, size_t n);
 *	int buf_getline(struct buf *b, size_t maxline, struct buf_line *line);
 * DESCRIPTION
 *	A struct buf holds at most max bytes; it grows on demand (doubling,
 *	from a small start) but never past max, and the check comes before
 *	any allocation.  buf_reserve() makes room for n more bytes so that
 *	a reader can write straight into buf_tail() and then buf_commit()
 *	what it read.  buf_consume() drops n bytes from the front.
 *
 *	buf_getline() finds the next line ending in LF.  It returns
 *	BUF_LINE_OK with line->data/len covering the line without its CRLF
 *	or LF, line->bare_lf set when the LF had no CR before it, and
 *	line->consume the bytes to pass to buf_consume() after use.  It
 *	returns BUF_LINE_MORE when no LF is buffered yet and fewer than
 *	maxline bytes are buffered, and BUF_LINE_TOOLONG when a line
 *	(its terminator included) is longer than maxline, whether or not
 *	its end has arrived: the caller replies and calls buf_skipline()
 *	to drop the rest of it as it arrives.
 *
 *	buf_skipline() drops bytes up to and including the next LF and
 *	returns 1, or drops everything buffered and returns 0 when the
 *	line has not ended yet.
 * DIAGNOSTICS
 *	buf_reserve(), buf_add() and buf_printf() return -1 with errno
 *	ENOBUFS when the result would exceed max, ENOMEM when malloc
 *	fails; the buffer is unchanged.  buf_new() returns NULL on ENOMEM.
 */
#ifndef SLUICE_BUF_H
#define SLUICE_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf;

struct buf_line {
	const char	*data;
	size_t		 len;		/* without CRLF / LF */
	size_t		 consume;	/* with it */
	int		 bare_lf;
};

enum {
	BUF_LINE_OK = 0,
	BUF_LINE_MORE = 1,
	BUF_LINE_TOOLONG = 2
};

struct buf	*buf_new(size_t);
void		 buf_free(struct buf *);
int		 buf_reserve(struct buf *, size_t);
int		 buf_add(struct buf *, const void *, size_t);
int		 buf_add_str(struct buf *, const char *);
int		 buf_printf(struct buf *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
void		 buf_consume(struct buf *, size_t);
void		 buf_reset(struct buf *);
size_t		 buf_len(const struct buf *);
size_t		 buf_room(const struct buf *);
size_t		 buf_max(const struct buf *);
const uint8_t	*buf_data(const struct buf *);
uint8_t		*buf_tail(struct buf *);
void		 buf_commit(struct buf *, size_t);
int		 buf_getline(struct buf *, size_t, struct buf_line *);
int		 buf_skipline(struct buf *);

#endif
