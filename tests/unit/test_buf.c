/*
 * test_buf.c - bounded buffers: caps checked before growth, reuse of
 * consumed space, and the line reader's two length checks.
 */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"

static void	fill_pattern(uint8_t *, size_t, unsigned);

/* fill_pattern - bytes that differ from offset to offset */
static void
fill_pattern(uint8_t *p, size_t n, unsigned seed)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 31 + seed);
}

static void
test_buf_new_empty(void **state)
{
	struct buf	*b = buf_new(10);
	struct buf_line	 l;

	assert_non_null(b);
	assert_int_equal(buf_len(b), 0);
	assert_int_equal(buf_room(b), 10);
	assert_int_equal(buf_max(b), 10);
	assert_non_null(buf_data(b));		/* usable before any add */
	assert_int_equal(buf_getline(b, 5, &l), BUF_LINE_MORE);
	assert_int_equal(buf_skipline(b), 0);
	buf_consume(b, 3);
	assert_int_equal(buf_len(b), 0);
	buf_free(b);
	buf_free(NULL);
}

static void
test_buf_add_exact_max(void **state)
{
	struct buf	*b = buf_new(10);

	assert_int_equal(buf_add(b, "01234", 5), 0);
	assert_int_equal(buf_add(b, "56789", 5), 0);
	assert_int_equal(buf_len(b), 10);
	assert_int_equal(buf_room(b), 0);
	assert_memory_equal(buf_data(b), "0123456789", 10);
	buf_free(b);
}

static void
test_buf_add_max_plus_one(void **state)
{
	struct buf	*b = buf_new(10);

	/* in one piece */
	errno = 0;
	assert_int_equal(buf_add(b, "0123456789X", 11), -1);
	assert_int_equal(errno, ENOBUFS);
	assert_int_equal(buf_len(b), 0);
	/* and one byte past a full buffer: nothing changes */
	assert_int_equal(buf_add(b, "0123456789", 10), 0);
	errno = 0;
	assert_int_equal(buf_add(b, "x", 1), -1);
	assert_int_equal(errno, ENOBUFS);
	assert_int_equal(buf_len(b), 10);
	assert_memory_equal(buf_data(b), "0123456789", 10);
	errno = 0;
	assert_int_equal(buf_reserve(b, 1), -1);
	assert_int_equal(errno, ENOBUFS);
	buf_free(b);
}

static void
test_buf_add_zero(void **state)
{
	struct buf	*b = buf_new(4), *z = buf_new(0);

	assert_int_equal(buf_add(b, "", 0), 0);
	assert_int_equal(buf_add(b, NULL, 0), 0);
	assert_int_equal(buf_add_str(b, ""), 0);
	assert_int_equal(buf_len(b), 0);
	assert_int_equal(buf_add(b, "abcd", 4), 0);
	assert_int_equal(buf_add(b, "", 0), 0);		/* even when full */
	assert_int_equal(buf_reserve(b, 0), 0);
	assert_int_equal(buf_len(b), 4);

	/* a buffer of max 0 takes nothing but nothing */
	assert_int_equal(buf_add(z, "", 0), 0);
	assert_int_equal(buf_reserve(z, 0), 0);
	assert_int_equal(buf_add(z, "a", 1), -1);
	assert_int_equal(buf_printf(z, "%s", ""), 0);
	assert_int_equal(buf_printf(z, "%d", 1), -1);
	assert_int_equal(buf_room(z), 0);
	buf_free(b);
	buf_free(z);
}

static void
test_buf_reserve_overflow(void **state)
{
	struct buf	*b = buf_new(SIZE_MAX);

	/*
	 * With max at SIZE_MAX only the order of the checks stops len + n
	 * from wrapping to a small number that would then "fit".
	 */
	assert_int_equal(buf_add(b, "0123456789", 10), 0);
	errno = 0;
	assert_int_equal(buf_reserve(b, SIZE_MAX), -1);
	assert_int_equal(errno, ENOBUFS);
	assert_int_equal(buf_reserve(b, SIZE_MAX - 9), -1);
	assert_int_equal(buf_add(b, "x", SIZE_MAX - 5), -1);
	assert_int_equal(buf_len(b), 10);
	assert_memory_equal(buf_data(b), "0123456789", 10);
	buf_free(b);
}

static void
test_buf_growth_past_initial(void **state)
{
	struct buf	*b = buf_new(100000);
	uint8_t		 chunk[777];
	size_t		 i;

	fill_pattern(chunk, sizeof(chunk), 1);
	/* 256 initially, then doubled several times */
	for (i = 0; i < 100; i++)
		assert_int_equal(buf_add(b, chunk, sizeof(chunk)), 0);
	assert_int_equal(buf_len(b), 77700);
	for (i = 0; i < 100; i++)
		assert_memory_equal(buf_data(b) + i * sizeof(chunk), chunk,
		    sizeof(chunk));
	assert_int_equal(buf_add(b, chunk, sizeof(chunk) * 30), -1);
	assert_int_equal(buf_len(b), 77700);
	buf_free(b);
}

static void
test_buf_growth_capped_at_max(void **state)
{
	struct buf	*b = buf_new(300);	/* not a doubling of 256 */
	uint8_t		 big[300];

	fill_pattern(big, sizeof(big), 7);
	assert_int_equal(buf_add(b, big, 200), 0);
	assert_int_equal(buf_add(b, big + 200, 100), 0);	/* 256 -> 300 */
	assert_int_equal(buf_len(b), 300);
	assert_memory_equal(buf_data(b), big, 300);
	assert_int_equal(buf_add(b, "x", 1), -1);
	buf_free(b);

	/* a max below the initial size is the allocation's limit too */
	b = buf_new(5);
	assert_int_equal(buf_add(b, "abcde", 5), 0);
	assert_int_equal(buf_add(b, "f", 1), -1);
	buf_free(b);
}

static void
test_buf_consume_then_add_reuse(void **state)
{
	struct buf	*b = buf_new(8);

	assert_int_equal(buf_add(b, "abcdefgh", 8), 0);
	buf_consume(b, 5);
	assert_int_equal(buf_len(b), 3);
	assert_int_equal(buf_room(b), 5);
	assert_memory_equal(buf_data(b), "fgh", 3);
	/* the five consumed bytes are room again, without passing max */
	assert_int_equal(buf_add(b, "12345", 5), 0);
	assert_memory_equal(buf_data(b), "fgh12345", 8);
	assert_int_equal(buf_add(b, "!", 1), -1);
	buf_consume(b, 100);		/* more than held: all of it */
	assert_int_equal(buf_len(b), 0);
	assert_int_equal(buf_room(b), 8);
	buf_free(b);
}

static void
test_buf_consume_then_add_many_rounds(void **state)
{
	struct buf	*b = buf_new(16);
	uint8_t		 in[7], expect[16];
	size_t		 held = 0, round;

	/*
	 * Add 7, consume 5, over and over: the front keeps moving, so
	 * every add past the end has to compact rather than grow.
	 */
	for (round = 0; round < 1000; round++) {
		fill_pattern(in, sizeof(in), (unsigned)round);
		while (held + sizeof(in) > 16) {
			buf_consume(b, 5);
			memmove(expect, expect + 5, held - 5);
			held -= 5;
		}
		assert_int_equal(buf_add(b, in, sizeof(in)), 0);
		memcpy(expect + held, in, sizeof(in));
		held += sizeof(in);
		assert_int_equal(buf_len(b), held);
		assert_memory_equal(buf_data(b), expect, held);
	}
	buf_free(b);
}

static void
test_buf_reset(void **state)
{
	struct buf	*b = buf_new(4);

	assert_int_equal(buf_add(b, "abcd", 4), 0);
	buf_consume(b, 1);
	buf_reset(b);
	assert_int_equal(buf_len(b), 0);
	assert_int_equal(buf_room(b), 4);
	assert_int_equal(buf_add(b, "wxyz", 4), 0);
	assert_memory_equal(buf_data(b), "wxyz", 4);
	buf_free(b);
}

static void
test_buf_tail_commit(void **state)
{
	struct buf	*b = buf_new(64);

	assert_null(buf_tail(b));		/* nothing reserved yet */
	assert_int_equal(buf_reserve(b, 5), 0);
	assert_non_null(buf_tail(b));
	memcpy(buf_tail(b), "hello", 5);
	buf_commit(b, 3);		/* a short read */
	assert_int_equal(buf_len(b), 3);
	assert_int_equal(buf_reserve(b, 2), 0);
	memcpy(buf_tail(b), "lo", 2);
	buf_commit(b, 2);
	assert_memory_equal(buf_data(b), "hello", 5);
	/* the tail after consuming points past the unread bytes */
	buf_consume(b, 2);
	assert_int_equal(buf_reserve(b, 1), 0);
	*buf_tail(b) = '!';
	buf_commit(b, 1);
	assert_memory_equal(buf_data(b), "llo!", 4);
	buf_commit(b, 0);
	assert_int_equal(buf_len(b), 4);
	/* a count past the allocation is cut to it, never past max */
	buf_commit(b, 1000);
	assert_true(buf_len(b) <= buf_max(b));
	assert_int_equal(buf_room(b), buf_max(b) - buf_len(b));
	buf_free(b);
}

static void
test_buf_printf_append(void **state)
{
	struct buf	*b = buf_new(64);

	assert_int_equal(buf_add_str(b, "hello"), 0);
	assert_int_equal(buf_printf(b, " %s %d", "world", 42), 0);
	assert_int_equal(buf_len(b), 14);
	assert_memory_equal(buf_data(b), "hello world 42", 14);
	assert_int_equal(buf_printf(b, "%s", ""), 0);
	assert_int_equal(buf_len(b), 14);
	buf_free(b);
}

static void
test_buf_printf_exact_max_and_over(void **state)
{
	struct buf	*b = buf_new(4);

	assert_int_equal(buf_printf(b, "%s", "four"), 0);	/* exact */
	assert_memory_equal(buf_data(b), "four", 4);
	errno = 0;
	assert_int_equal(buf_printf(b, "%d", 5), -1);		/* max + 1 */
	assert_int_equal(errno, ENOBUFS);
	assert_int_equal(buf_len(b), 4);
	assert_memory_equal(buf_data(b), "four", 4);
	buf_free(b);

	/* exact fit after a partial first attempt into a smaller tail */
	b = buf_new(300);
	assert_int_equal(buf_add(b, "x", 1), 0);		/* cap 256 */
	assert_int_equal(buf_printf(b, "%0299d", 7), 0);
	assert_int_equal(buf_len(b), 300);
	assert_int_equal(buf_data(b)[299], '7');
	assert_int_equal(buf_data(b)[1], '0');
	buf_free(b);

	/* max + 1 with room left: all or nothing */
	b = buf_new(10);
	assert_int_equal(buf_add_str(b, "abc"), 0);
	assert_int_equal(buf_printf(b, "%s", "12345678"), -1);
	assert_int_equal(buf_len(b), 3);
	assert_memory_equal(buf_data(b), "abc", 3);
	assert_int_equal(buf_printf(b, "%s", "1234567"), 0);
	assert_memory_equal(buf_data(b), "abc1234567", 10);
	buf_free(b);
}

static void
test_buf_printf_growth(void **state)
{
	struct buf	*b = buf_new(4096);
	char		 expect[1001];

	memset(expect, 'z', 1000);
	expect[1000] = '\0';
	/* past the initial allocation, and after consumed space */
	assert_int_equal(buf_add_str(b, "0123456789"), 0);
	buf_consume(b, 10);
	assert_int_equal(buf_printf(b, "%s", expect), 0);
	assert_int_equal(buf_len(b), 1000);
	assert_memory_equal(buf_data(b), expect, 1000);
	assert_int_equal(buf_printf(b, "%s%s%s", expect, expect, expect), 0);
	assert_int_equal(buf_len(b), 4000);
	assert_int_equal(buf_printf(b, "%s", expect), -1);
	assert_int_equal(buf_len(b), 4000);
	buf_free(b);
}

static void
test_buf_getline_crlf(void **state)
{
	struct buf	*b = buf_new(100);
	struct buf_line	 l;

	assert_int_equal(buf_add_str(b, "EHLO x\r\n"), 0);
	assert_int_equal(buf_getline(b, 50, &l), BUF_LINE_OK);
	assert_int_equal(l.len, 6);
	assert_memory_equal(l.data, "EHLO x", 6);
	assert_int_equal(l.consume, 8);
	assert_int_equal(l.bare_lf, 0);
	/* the line stays until consumed */
	assert_int_equal(buf_getline(b, 50, &l), BUF_LINE_OK);
	buf_consume(b, l.consume);
	assert_int_equal(buf_len(b), 0);
	assert_int_equal(buf_getline(b, 50, &l), BUF_LINE_MORE);
	buf_free(b);
}

static void
test_buf_getline_bare_lf(void **state)
{
	struct buf	*b = buf_new(100);
	struct buf_line	 l;

	assert_int_equal(buf_add_str(b, "bare\n"), 0);
	assert_int_equal(buf_getline(b, 50, &l), BUF_LINE_OK);
	assert_int_equal(l.len, 4);
	assert_memory_equal(l.data, "bare", 4);
	assert_int_equal(l.consume, 5);
	assert_int_equal(l.bare_lf, 1);
	buf_consume(b, l.consume);

	/* a CR inside the line is data; only CR right before LF ends it */
	assert_int_equal(buf_add_str(b, "a\rb\n\r\r\n"), 0);
	assert_int_equal(buf_getline(b, 50, &l), BUF_LINE_OK);
	assert_int_equal(l.len, 3);
	assert_memory_equal(l.data, "a\rb", 3);
	assert_int_equal(l.bare_lf, 1);
	buf_consume(b, l.consume);
	assert_int_equal(buf_getline(b, 50, &l), BUF_LINE_OK);
	assert_int_equal(l.len, 1);
	assert_int_equal(l.data[0], '\r');
	assert_int_equal(l.consume, 3);
	assert_int_equal(l.bare_lf, 0);
	buf_free(b);
}

static void
test_buf_getline_empty_lines(void **state)
{
	struct buf	*b = buf_new(16);
	struct buf_line	 l;

	assert_int_equal(buf_add_str(b, "\r\n\n"), 0);
	assert_int_equal(buf_getline(b, 10, &l), BUF_LINE_OK);
	assert_int_equal(l.len, 0);
	assert_int_equal(l.consume, 2);
	assert_int_equal(l.bare_lf, 0);
	buf_consume(b, l.consume);
	assert_int_equal(buf_getline(b, 10, &l), BUF_LINE_OK);
	assert_int_equal(l.len, 0);
	assert_int_equal(l.consume, 1);
	assert_int_equal(l.bare_lf, 1);
	buf_free(b);
}

static void
test_buf_getline_pipelined(void **state)
{
	static const char	*want[] = { "MAIL FROM:<a@b>", "RCPT TO:<c@d>",
				    "DATA" };
	struct buf		*b = buf_new(512);
	struct buf_line		 l;
	size_t			 i;

	assert_int_equal(buf_add_str(b,
	    "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nSubj"), 0);
	for (i = 0; i < 3; i++) {
		assert_int_equal(buf_getline(b, 512, &l), BUF_LINE_OK);
		assert_int_equal(l.len, strlen(want[i]));
		assert_memory_equal(l.data, want[i], l.len);
		buf_consume(b, l.consume);
	}
	assert_int_equal(buf_getline(b, 512, &l), BUF_LINE_MORE);
	assert_int_equal(buf_len(b), 4);
	buf_free(b);
}

static void
test_buf_getline_split_across_adds(void **state)
{
	static const char	 in[] = "QUIT\r\n";
	struct buf		*b = buf_new(100);
	struct buf_line		 l;
	size_t			 i;

	/* CR in one add, LF in the next */
	assert_int_equal(buf_add_str(b, "rest\r"), 0);
	assert_int_equal(buf_getline(b, 50, &l), BUF_LINE_MORE);
	assert_int_equal(buf_add_str(b, "\n"), 0);
	assert_int_equal(buf_getline(b, 50, &l), BUF_LINE_OK);
	assert_int_equal(l.len, 4);
	assert_memory_equal(l.data, "rest", 4);
	assert_int_equal(l.bare_lf, 0);
	buf_consume(b, l.consume);

	/* one byte at a time */
	for (i = 0; i < sizeof(in) - 2; i++) {
		assert_int_equal(buf_add(b, in + i, 1), 0);
		assert_int_equal(buf_getline(b, 50, &l), BUF_LINE_MORE);
	}
	assert_int_equal(buf_add(b, in + i, 1), 0);
	assert_int_equal(buf_getline(b, 50, &l), BUF_LINE_OK);
	assert_int_equal(l.len, 4);
	assert_memory_equal(l.data, "QUIT", 4);
	assert_int_equal(l.consume, 6);
	buf_free(b);
}

static void
test_buf_getline_exact_maxline(void **state)
{
	struct buf	*b = buf_new(100);
	struct buf_line	 l;

	/* maxline counts the terminator: 8 + CRLF = 10 */
	assert_int_equal(buf_add_str(b, "12345678\r\n"), 0);
	assert_int_equal(buf_getline(b, 10, &l), BUF_LINE_OK);
	assert_int_equal(l.len, 8);
	assert_int_equal(l.consume, 10);
	buf_reset(b);
	/* 9 + LF = 10 */
	assert_int_equal(buf_add_str(b, "123456789\n"), 0);
	assert_int_equal(buf_getline(b, 10, &l), BUF_LINE_OK);
	assert_int_equal(l.len, 9);
	assert_int_equal(l.bare_lf, 1);
	buf_reset(b);
	/* maxline - 1 without LF may still end in time */
	assert_int_equal(buf_add_str(b, "123456789"), 0);
	assert_int_equal(buf_getline(b, 10, &l), BUF_LINE_MORE);
	assert_int_equal(buf_add_str(b, "\n"), 0);
	assert_int_equal(buf_getline(b, 10, &l), BUF_LINE_OK);
	buf_free(b);
}

static void
test_buf_getline_maxline_plus_one_with_lf(void **state)
{
	struct buf	*b = buf_new(100);
	struct buf_line	 l;

	/* 9 + CRLF = 11, all in one add, far below max */
	assert_int_equal(buf_add_str(b, "123456789\r\n"), 0);
	assert_int_equal(buf_getline(b, 10, &l), BUF_LINE_TOOLONG);
	buf_reset(b);
	assert_int_equal(buf_add_str(b, "1234567890\n"), 0);
	assert_int_equal(buf_getline(b, 10, &l), BUF_LINE_TOOLONG);
	/* nothing was consumed: the caller decides */
	assert_int_equal(buf_len(b), 11);
	buf_free(b);
}

static void
test_buf_getline_maxline_plus_one_without_lf(void **state)
{
	struct buf	*b = buf_new(100);
	struct buf_line	 l;

	/* maxline bytes and no LF: it can no longer end in time */
	assert_int_equal(buf_add_str(b, "123456789"), 0);
	assert_int_equal(buf_getline(b, 10, &l), BUF_LINE_MORE);
	assert_int_equal(buf_add_str(b, "0"), 0);
	assert_int_equal(buf_getline(b, 10, &l), BUF_LINE_TOOLONG);
	/* a CR as the last of maxline bytes does not change that */
	buf_reset(b);
	assert_int_equal(buf_add_str(b, "123456789\r"), 0);
	assert_int_equal(buf_getline(b, 10, &l), BUF_LINE_TOOLONG);
	/* and a short line after a long one is not found through it */
	buf_reset(b);
	assert_int_equal(buf_add_str(b, "12345678901\nok\n"), 0);
	assert_int_equal(buf_getline(b, 10, &l), BUF_LINE_TOOLONG);
	buf_free(b);
}

static void
test_buf_skipline(void **state)
{
	struct buf	*b = buf_new(100);
	struct buf_line	 l;

	assert_int_equal(buf_add_str(b, "1234567890abc"), 0);
	assert_int_equal(buf_getline(b, 10, &l), BUF_LINE_TOOLONG);
	/* the line has not ended: everything goes, and we keep skipping */
	assert_int_equal(buf_skipline(b), 0);
	assert_int_equal(buf_len(b), 0);
	assert_int_equal(buf_add_str(b, "more"), 0);
	assert_int_equal(buf_skipline(b), 0);
	assert_int_equal(buf_add_str(b, "def\r\nNOOP\r\n"), 0);
	assert_int_equal(buf_skipline(b), 1);
	/* what followed the long line is intact */
	assert_int_equal(buf_len(b), 6);
	assert_int_equal(buf_getline(b, 10, &l), BUF_LINE_OK);
	assert_int_equal(l.len, 4);
	assert_memory_equal(l.data, "NOOP", 4);
	buf_consume(b, l.consume);

	/* an over-long line that ended within one add */
	assert_int_equal(buf_add_str(b, "123456789012345\nQUIT\r\n"), 0);
	assert_int_equal(buf_getline(b, 10, &l), BUF_LINE_TOOLONG);
	assert_int_equal(buf_skipline(b), 1);
	assert_int_equal(buf_getline(b, 10, &l), BUF_LINE_OK);
	assert_memory_equal(l.data, "QUIT", 4);
	buf_free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_new_empty),
		cmocka_unit_test(test_buf_add_exact_max),
		cmocka_unit_test(test_buf_add_max_plus_one),
		cmocka_unit_test(test_buf_add_zero),
		cmocka_unit_test(test_buf_reserve_overflow),
		cmocka_unit_test(test_buf_growth_past_initial),
		cmocka_unit_test(test_buf_growth_capped_at_max),
		cmocka_unit_test(test_buf_consume_then_add_reuse),
		cmocka_unit_test(test_buf_consume_then_add_many_rounds),
		cmocka_unit_test(test_buf_reset),
		cmocka_unit_test(test_buf_tail_commit),
		cmocka_unit_test(test_buf_printf_append),
		cmocka_unit_test(test_buf_printf_exact_max_and_over),
		cmocka_unit_test(test_buf_printf_growth),
		cmocka_unit_test(test_buf_getline_crlf),
		cmocka_unit_test(test_buf_getline_bare_lf),
		cmocka_unit_test(test_buf_getline_empty_lines),
		cmocka_unit_test(test_buf_getline_pipelined),
		cmocka_unit_test(test_buf_getline_split_across_adds),
		cmocka_unit_test(test_buf_getline_exact_maxline),
		cmocka_unit_test(test_buf_getline_maxline_plus_one_with_lf),
		cmocka_unit_test(test_buf_getline_maxline_plus_one_without_lf),
		cmocka_unit_test(test_buf_skipline),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
