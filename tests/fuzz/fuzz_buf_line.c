/*
 * fuzz_buf_line - feed bytes in chunks of input-chosen sizes into a
 * bounded buffer and read lines the way an SMTP session will; check the
 * promises of buf_getline() on every line.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

#define MAXBUF	4096
#define MAXLINE	1000

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf	*b;
	struct buf_line	 line;
	size_t		 pos, chunk, step;
	int		 rc, skipping = 0;

	if (size < 1 || (b = buf_new(MAXBUF)) == NULL)
		return 0;
	step = (size_t)data[0] * 7 + 1;
	for (pos = 1; pos < size; pos += chunk) {
		chunk = size - pos < step ? size - pos : step;
		if (chunk > buf_room(b))
			chunk = buf_room(b);
		if (chunk == 0)
			abort();	/* lines are consumed, so room comes back */
		if (buf_add(b, data + pos, chunk) == -1)
			abort();
		for (;;) {
			if (skipping) {
				if (!buf_skipline(b))
					break;
				skipping = 0;
			}
			rc = buf_getline(b, MAXLINE, &line);
			if (rc == BUF_LINE_MORE)
				break;
			if (rc == BUF_LINE_TOOLONG) {
				skipping = 1;
				continue;
			}
			if (line.len > MAXLINE || line.consume > MAXLINE ||
			    memchr(line.data, '\n', line.len) != NULL ||
			    line.consume != line.len + (line.bare_lf ? 1 : 2) ||
			    line.data[line.consume - 1] != '\n')
				abort();
			buf_consume(b, line.consume);
		}
		if (buf_len(b) >= MAXLINE)
			abort();	/* a line that long is TOOLONG, not held */
	}
	buf_free(b);
	return 0;
}
