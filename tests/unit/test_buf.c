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

static void
test_buf_cap_exact_and_over(void **state)
{
	struct buf	*b = buf_new(10);

	assert_non_null(b);
	assert_int_equal(buf_len(b), 0);
	assert_int_equal(buf_add(b, "", 0), 0);
	assert_int_equal(buf_add(b, "0123456789", 10), 0);	/* exact max */
	assert_int_equal(buf_room(b), 0);
	errno = 0;
	assert_int_equal(buf_add(b, "x", 1), -1);		/* max + 1 */
	assert_int_equal(errno, ENOBUFS);
	assert_int_equal(buf_len(b), 10);			/* unchanged */
	assert_memory_equal(buf_data(b), "0123456789", 10);
	assert_int_equal(buf_reserve(b, SIZE_MAX), -1);		/* no overflow */
	buf_free(b);
	buf_free(NULL);
}

static void
test_buf_growth_past_initial(void **state)
{
	struct buf	*b = buf_new(100000);
	uint8_t		 chunk[777];
	size_t		 i;

	for (i = 0; i < sizeof(chunk); i++)
		chunk[i] = (uint8_t)i;
	for (i = 0; i < 100; i++)
		assert_int_equal(buf_add(b, chunk, sizeof(chunk)), 0);
	assert_int_equal(buf_len(b), 77700);
	for (i = 0; i < 100; i++)
		assert_memory_equal(buf_data(b) + i * sizeof(chunk), chunk,
		    sizeof(chunk));
	assert_int_equal(buf_add(b, chunk, sizeof(chunk) * 30), -1);
	buf_free(b);
}

static void
test_buf_consume_then_reuse(void **state)
{
	struct buf	*b = buf_new(8);

	assert_int_equal(buf_add(b, "abcdefgh", 8), 0);
	buf_consume(b, 5);
	assert_int_equal(buf_len(b), 3);
	assert_memory_equal(buf_data(b), "fgh", 3);
	/* the five consumed bytes are room again, without passing max */
	assert_int_equal(buf_add(b, "12345", 5), 0);
	assert_memory_equal(buf_data(b), "fgh12345", 8);
	buf_consume(b, 100);
	assert_int_equal(buf_len(b), 0);
	buf_reset(b);
	assert_int_equal(buf_max(b), 8);
	buf_free(b);
}

static void
test_buf_tail_commit(void **state)
{
	struct buf	*b = buf_new(64);

	assert_int_equal(buf_reserve(b, 5), 0);
	memcpy(buf_tail(b), "hello", 5);
	buf_commit(b, 5);
	assert_int_equal(buf_len(b), 5);
	assert_int_equal(buf_printf(b, " %s %d", "world", 42), 0);
	assert_int_equal(buf_len(b), 14);
	assert_memory_equal(buf_data(b), "hello world 42", 14);
	buf_free(b);

	b = buf_new(4);
	assert_int_equal(buf_printf(b, "%s", "four"), 0);	/* exact */
	assert_int_equal(buf_printf(b, "%d", 5), -1);		/* all or nothing */
	assert_int_equal(buf_len(b), 4);
	buf_free(b);
}

static void
test_buf_getline_crlf_lf(void **state)
{
	struct buf	*b = buf_new(100);
	struct buf_line	 l;

	assert_int_equal(buf_add_str(b, "EHLO x\r\nbare\nrest"), 0);
	assert_int_equal(buf_getline(b, 50, &l), BUF_LINE_OK);
	assert_int_equal(l.len, 6);
	assert_memory_equal(l.data, "EHLO x", 6);
	assert_int_equal(l.consume, 8);
	assert_int_equal(l.bare_lf, 0);
	buf_consume(b, l.consume);
	assert_int_equal(buf_getline(b, 50, &l), BUF_LINE_OK);
	assert_int_equal(l.len, 4);
	assert_int_equal(l.bare_lf, 1);
	assert_int_equal(l.consume, 5);
	buf_consume(b, l.consume);
	assert_int_equal(buf_getline(b, 50, &l), BUF_LINE_MORE);
	/* the line completes in a later add */
	assert_int_equal(buf_add_str(b, "\r"), 0);
	assert_int_equal(buf_getline(b, 50, &l), BUF_LINE_MORE);
	assert_int_equal(buf_add_str(b, "\n"), 0);
	assert_int_equal(buf_getline(b, 50, &l), BUF_LINE_OK);
	assert_int_equal(l.len, 4);
	assert_memory_equal(l.data, "rest", 4);
	buf_free(b);
}

static void
test_buf_getline_limits(void **state)
{
	struct buf	*b = buf_new(100);
	struct buf_line	 l;

	/* exactly maxline with its CRLF is a line */
	assert_int_equal(buf_add_str(b, "12345678\r\n"), 0);
	assert_int_equal(buf_getline(b, 10, &l), BUF_LINE_OK);
	assert_int_equal(l.len, 8);
	buf_reset(b);
	/* one more byte is too long, with its LF present */
	assert_int_equal(buf_add_str(b, "123456789\r\n"), 0);
	assert_int_equal(buf_getline(b, 10, &l), BUF_LINE_TOOLONG);
	/* and without: maxline bytes and no LF yet is too long already */
	buf_reset(b);
	assert_int_equal(buf_add_str(b, "1234567890"), 0);
	assert_int_equal(buf_getline(b, 10, &l), BUF_LINE_TOOLONG);
	buf_reset(b);
	assert_int_equal(buf_add_str(b, "123456789"), 0);
	assert_int_equal(buf_getline(b, 10, &l), BUF_LINE_MORE);
	/* skipline drops the long line as it arrives */
	assert_int_equal(buf_add_str(b, "0abc"), 0);
	assert_int_equal(buf_getline(b, 10, &l), BUF_LINE_TOOLONG);
	assert_int_equal(buf_skipline(b), 0);
	assert_int_equal(buf_len(b), 0);
	assert_int_equal(buf_add_str(b, "def\r\nNOOP\r\n"), 0);
	assert_int_equal(buf_skipline(b), 1);
	assert_int_equal(buf_getline(b, 10, &l), BUF_LINE_OK);
	assert_memory_equal(l.data, "NOOP", 4);
	buf_free(b);
}

static void
test_buf_getline_empty(void **state)
{
	struct buf	*b = buf_new(16);
	struct buf_line	 l;

	assert_int_equal(buf_getline(b, 10, &l), BUF_LINE_MORE);
	assert_int_equal(buf_add_str(b, "\r\n\n"), 0);
	assert_int_equal(buf_getline(b, 10, &l), BUF_LINE_OK);
	assert_int_equal(l.len, 0);
	assert_int_equal(l.consume, 2);
	buf_consume(b, l.consume);
	assert_int_equal(buf_getline(b, 10, &l), BUF_LINE_OK);
	assert_int_equal(l.len, 0);
	assert_int_equal(l.bare_lf, 1);
	buf_free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_cap_exact_and_over),
		cmocka_unit_test(test_buf_growth_past_initial),
		cmocka_unit_test(test_buf_consume_then_reuse),
		cmocka_unit_test(test_buf_tail_commit),
		cmocka_unit_test(test_buf_getline_crlf_lf),
		cmocka_unit_test(test_buf_getline_limits),
		cmocka_unit_test(test_buf_getline_empty),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
