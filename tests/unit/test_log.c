/*
 * test_log.c - one line per event, errno kept, peer bytes made printable
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

static int	saved_stderr = -1;
static int	capture[2];

/* capture_start / capture_end - what the logger writes to fd 2 */
static void
capture_start(void)
{
	assert_int_equal(pipe(capture), 0);
	fflush(stderr);
	saved_stderr = dup(STDERR_FILENO);
	dup2(capture[1], STDERR_FILENO);
	close(capture[1]);
}

static size_t
capture_end(char *out, size_t outlen)
{
	ssize_t	 n;
	size_t	 got = 0;

	fflush(stderr);
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	while (got + 1 < outlen &&
	    (n = read(capture[0], out + got, outlen - 1 - got)) > 0)
		got += (size_t)n;
	out[got] = '\0';
	close(capture[0]);
	return got;
}

static int
count_lines(const char *s)
{
	int	 n = 0;

	for (; *s != '\0'; s++)
		if (*s == '\n')
			n++;
	return n;
}

static void
test_log_one_line_per_event(void **state)
{
	char	 out[8192];

	log_init("tlog", LOG_F_STDERR | LOG_F_NOSYSLOG);
	capture_start();
	log_info("first %d", 1);
	log_warnx("second\nwith a newline\rand a CR");
	log_debug("not shown without LOG_F_DEBUG");
	capture_end(out, sizeof(out));
	assert_int_equal(count_lines(out), 2);
	assert_non_null(strstr(out, "tlog["));
	assert_non_null(strstr(out, "first 1"));
	assert_non_null(strstr(out, "second with a newline and a CR"));
	assert_null(strstr(out, "not shown"));

	log_init("tlog", LOG_F_STDERR | LOG_F_NOSYSLOG | LOG_F_DEBUG);
	capture_start();
	log_debug("shown %s", "now");
	capture_end(out, sizeof(out));
	assert_non_null(strstr(out, "shown now"));
	assert_int_equal(log_getflags() & LOG_F_DEBUG, LOG_F_DEBUG);
}

static void
test_log_warn_errno(void **state)
{
	char	 out[4096];

	log_init("tlog", LOG_F_STDERR | LOG_F_NOSYSLOG);
	capture_start();
	errno = ENOENT;
	log_warn("open %s", "/nonexistent");
	assert_int_equal(errno, ENOENT);	/* preserved */
	errno = EACCES;
	log_warnx("no errno here");
	assert_int_equal(errno, EACCES);
	capture_end(out, sizeof(out));
	assert_non_null(strstr(out, "open /nonexistent: No such file or directory\n"));
	assert_non_null(strstr(out, "no errno here\n"));
	assert_null(strstr(out, "no errno here: "));
}

static void
test_log_long_line_cut(void **state)
{
	char	 out[8192], big[3000];

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_init("tlog", LOG_F_STDERR | LOG_F_NOSYSLOG);
	capture_start();
	log_info("%s", big);
	capture_end(out, sizeof(out));
	assert_int_equal(count_lines(out), 1);
	/* the message part is cut at LOG_LINE_MAX - 1 bytes */
	assert_true(strlen(out) < LOG_LINE_MAX + 64);
	assert_true(strlen(out) > LOG_LINE_MAX - 1);
}

static void
test_log_printable(void **state)
{
	char	 dst[64];

	assert_int_equal(log_printable(dst, sizeof(dst), "plain", 5), 5);
	assert_string_equal(dst, "plain");
	assert_int_equal(log_printable(dst, sizeof(dst), "a\r\nb\\\x7f\xff", 7),
	    strlen("a\\x0d\\x0ab\\x5c\\x7f\\xff"));
	assert_string_equal(dst, "a\\x0d\\x0ab\\x5c\\x7f\\xff");
	/* NUL bytes inside the source are shown, not taken as its end */
	assert_int_equal(log_printable(dst, sizeof(dst), "a\0b", 3), 6);
	assert_string_equal(dst, "a\\x00b");
	/* exact fit, one short, and the degenerate sizes */
	assert_int_equal(log_printable(dst, 4, "abc", 3), 3);
	assert_string_equal(dst, "abc");
	assert_int_equal(log_printable(dst, 3, "abc", 3), 2);
	assert_string_equal(dst, "ab");
	assert_int_equal(log_printable(dst, 4, "\x01", 1), 0);	/* escape needs 5 */
	assert_string_equal(dst, "");
	assert_int_equal(log_printable(dst, 5, "\x01", 1), 4);
	assert_int_equal(log_printable(dst, 1, "abc", 3), 0);
	assert_string_equal(dst, "");
	dst[0] = 'x';
	assert_int_equal(log_printable(dst, 0, "abc", 3), 0);
	assert_int_equal(dst[0], 'x');
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_log_one_line_per_event),
		cmocka_unit_test(test_log_warn_errno),
		cmocka_unit_test(test_log_long_line_cut),
		cmocka_unit_test(test_log_printable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
