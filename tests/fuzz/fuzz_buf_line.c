/*
 * fuzz_buf_line - feed bytes in chunks of input-chosen sizes into a
 * bounded buffer and read lines the way an SMTP session will; check the
 * promises of buf_getline() on every line against the stream itself.
 *
 * Input: byte 0 sets the largest chunk (and bit 7 makes every chunk that
 * size), byte 1 seeds the sizes in between and whether a chunk arrives
 * by buf_add() or by buf_reserve()/buf_tail()/buf_commit() as a read(2)
 * would.  The rest is what the peer sends.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

#define MAXBUF	4096
#define MAXLINE	1000

struct stream {
	const uint8_t	*data;
	size_t		 len;
	size_t		 fed;		/* bytes put into the buffer */
	size_t		 taken;		/* bytes consumed from it */
};

int		LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static uint32_t	next_rand(uint32_t *);
static void	check_held(struct buf *, const struct stream *);
static void	check_line(struct buf *, const struct stream *,
		    const struct buf_line *);
static void	feed(struct buf *, struct stream *, size_t, int);
static int	drain(struct buf *, struct stream *, int);

/* next_rand - a small LCG: deterministic, so a crash reproduces */
static uint32_t
next_rand(uint32_t *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 16;
}

/* check_held - the buffer holds exactly the fed, unconsumed bytes */
static void
check_held(struct buf *b, const struct stream *st)
{
	if (buf_len(b) != st->fed - st->taken ||
	    buf_len(b) + buf_room(b) != MAXBUF ||
	    memcmp(buf_data(b), st->data + st->taken, buf_len(b)) != 0)
		abort();
}

/* check_line - a BUF_LINE_OK line is the next line of the stream */
static void
check_line(struct buf *b, const struct stream *st, const struct buf_line *l)
{
	const uint8_t	*s = st->data + st->taken;

	if ((const uint8_t *)l->data != buf_data(b))
		abort();
	if (l->len > MAXLINE || l->consume > MAXLINE ||
	    l->consume > buf_len(b))
		abort();
	if (l->consume != l->len + (l->bare_lf ? 1 : 2))
		abort();
	/* the first LF of what is held ends it, and none is inside */
	if (memchr(l->data, '\n', l->len) != NULL ||
	    memchr(s, '\n', l->consume) != s + l->consume - 1)
		abort();
	if (l->bare_lf != !(l->consume >= 2 && s[l->consume - 2] == '\r'))
		abort();
}

/* feed - one chunk, by copy or by writing into the tail */
static void
feed(struct buf *b, struct stream *st, size_t n, int by_tail)
{
	/* lines are consumed as they come, so there is always room */
	if (n > buf_room(b))
		abort();
	if (by_tail) {
		if (buf_reserve(b, n) == -1)
			abort();
		memcpy(buf_tail(b), st->data + st->fed, n);
		buf_commit(b, n);
	} else if (buf_add(b, st->data + st->fed, n) == -1)
		abort();
	st->fed += n;
	check_held(b, st);
}

/* drain - read every complete line; returns the new skipping state */
static int
drain(struct buf *b, struct stream *st, int skipping)
{
	struct buf_line	 line;
	const uint8_t	*lf;
	size_t		 held, skip;
	int		 rc;

	for (;;) {
		held = buf_len(b);
		if (skipping) {
			/* the rest of the long line: up to its LF, or all */
			lf = memchr(buf_data(b), '\n', held);
			skip = lf != NULL ? (size_t)(lf - buf_data(b)) + 1 :
			    held;
			if (buf_skipline(b) != (lf != NULL))
				abort();
			st->taken += skip;
			check_held(b, st);
			if (lf == NULL)
				return 1;
			skipping = 0;
			continue;
		}
		memset(&line, 0xa5, sizeof(line));
		rc = buf_getline(b, MAXLINE, &line);
		lf = memchr(buf_data(b), '\n',
		    held < MAXLINE ? held : MAXLINE);
		switch (rc) {
		case BUF_LINE_OK:
			check_line(b, st, &line);
			buf_consume(b, line.consume);
			st->taken += line.consume;
			check_held(b, st);
			break;
		case BUF_LINE_MORE:
			if (lf != NULL || held >= MAXLINE)
				abort();
			return 0;
		case BUF_LINE_TOOLONG:
			if (lf != NULL || held < MAXLINE)
				abort();
			skipping = 1;
			break;
		default:
			abort();
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf	*b;
	struct stream	 st;
	size_t		 maxchunk, n;
	uint32_t	 seed;
	int		 fixed, skipping = 0;

	if (size < 2)
		return 0;
	maxchunk = (size_t)(data[0] & 0x7f) * 8 + 1;	/* 1 .. 1017 */
	fixed = data[0] & 0x80;
	seed = data[1];
	st.data = data + 2;
	st.len = size - 2;
	st.fed = st.taken = 0;

	if ((b = buf_new(MAXBUF)) == NULL)
		abort();
	while (st.fed < st.len) {
		n = fixed ? maxchunk : 1 + next_rand(&seed) % maxchunk;
		if (n > st.len - st.fed)
			n = st.len - st.fed;
		feed(b, &st, n, next_rand(&seed) & 1);
		skipping = drain(b, &st, skipping);
		/* a line that long is TOOLONG and dropped, never held */
		if (buf_len(b) >= MAXLINE)
			abort();
	}
	buf_free(b);
	return 0;
}
