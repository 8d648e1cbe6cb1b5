/*
 * test_log.c - one line per event, errno kept, peer bytes made printable
 *
 * What the logger writes to stderr is caught by putting a pipe on fd 2.
 * Assertions wait until fd 2 is restored, so that a failure is reported
 * where it can be read.
 */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <cmocka.h>
#include <paths.h>

#include "log.h"

#define QUIET	(LOG_F_STDERR | LOG_F_NOSYSLOG)

static int	saved_stderr = -1;
static int	capture[2];

static void		 capture_start(void);
static size_t		 capture_end(char *, size_t);
static int		 count_lines(const char *);
static const char	*message_of(const char *);
static size_t		 message_len(const char *);
static void		 vwrite(int, int, const char *, ...)
			    __attribute__((format(printf, 3, 4)));

/* capture_start - send fd 2 into a pipe */
static void
capture_start(void)
{
	assert_int_equal(pipe(capture), 0);
	fflush(stderr);
	saved_stderr = dup(STDERR_FILENO);
	assert_true(saved_stderr != -1);
	assert_true(dup2(capture[1], STDERR_FILENO) != -1);
	close(capture[1]);
}

/* capture_end - restore fd 2 and return what was written to it */
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

/* message_of - the text after "HH:MM:SS.mmm name[pid]: " */
static const char *
message_of(const char *line)
{
	const char	*p;

	if ((p = strstr(line, "]: ")) == NULL)
		fail_msg("no prefix in \"%s\"", line);
	return p + 3;
}

/* message_len - bytes of the message up to its newline */
static size_t
message_len(const char *line)
{
	return strcspn(message_of(line), "\n");
}

/* vwrite - reach log_vwrite() with a real va_list */
static void
vwrite(int pri, int with_errno, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vwrite(pri, with_errno, fmt, ap);
	va_end(ap);
}

/*
 * Under systemd (JOURNAL_STREAM naming fd 2) stderr is left out when
 * syslog takes the lines, and only then: a line is never lost.
 */
static void
test_log_journal_stream(void **state)
{
	char		 out[4096], js[64];
	struct stat	 st;
	int		 has_syslog = access(_PATH_LOG, F_OK) == 0;

	capture_start();
	assert_int_equal(fstat(STDERR_FILENO, &st), 0);
	snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
	    (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", js, 1);
	log_init("tlog", LOG_F_STDERR | LOG_F_NOSYSLOG);
	vwrite(LOG_INFO, 0, "syslog off: stderr keeps it");
	log_init("tlog", LOG_F_STDERR);
	vwrite(LOG_INFO, 0, "syslog on: the journal has it once");
	setenv("JOURNAL_STREAM", "1:2", 1);
	log_init("tlog", LOG_F_STDERR);
	vwrite(LOG_INFO, 0, "another stream: stderr too");
	capture_end(out, sizeof(out));
	unsetenv("JOURNAL_STREAM");
	log_init("tlog", QUIET);
	assert_non_null(strstr(out, "stderr keeps it"));
	assert_non_null(strstr(out, "stderr too"));
	if (has_syslog)
		assert_null(strstr(out, "the journal has it once"));
	else
		assert_non_null(strstr(out, "the journal has it once"));
}

static void
test_log_vwrite_one_line(void **state)
{
	char	 out[4096], prefix[64];

	log_init("tlog", QUIET);
	capture_start();
	vwrite(LOG_INFO, 0, "hello %s %d", "world", 7);
	capture_end(out, sizeof(out));
	assert_int_equal(count_lines(out), 1);
	assert_int_equal(out[strlen(out) - 1], '\n');
	snprintf(prefix, sizeof(prefix), " tlog[%ld]: ", (long)getpid());
	assert_non_null(strstr(out, prefix));
	assert_string_equal(message_of(out), "hello world 7\n");
	/* HH:MM:SS.mmm in front */
	assert_int_equal(out[2], ':');
	assert_int_equal(out[5], ':');
	assert_int_equal(out[8], '.');
}

static void
test_log_newlines_become_spaces(void **state)
{
	char	 out[4096];

	log_init("tlog", QUIET);
	capture_start();
	log_warnx("second\nwith a newline\rand a CR");
	log_info("%s", "from an argument\r\n");
	capture_end(out, sizeof(out));
	assert_int_equal(count_lines(out), 2);
	assert_non_null(strstr(out, "second with a newline and a CR\n"));
	assert_non_null(strstr(out, "from an argument  \n"));
}

static void
test_log_debug_needs_flag(void **state)
{
	char	 out[4096];

	log_init("tlog", QUIET);
	assert_int_equal(log_getflags() & LOG_F_DEBUG, 0);
	capture_start();
	log_debug("not shown without LOG_F_DEBUG");
	capture_end(out, sizeof(out));
	assert_string_equal(out, "");

	log_init("tlog", QUIET | LOG_F_DEBUG);
	assert_int_equal(log_getflags() & LOG_F_DEBUG, LOG_F_DEBUG);
	capture_start();
	log_debug("shown %s", "now");
	capture_end(out, sizeof(out));
	assert_int_equal(count_lines(out), 1);
	assert_string_equal(message_of(out), "shown now\n");
}

static void
test_log_no_stderr_flag_is_silent(void **state)
{
	char	 out[4096];

	log_init("tlog", LOG_F_NOSYSLOG | LOG_F_DEBUG);
	capture_start();
	log_info("nowhere");
	log_warnx("nowhere");
	log_debug("nowhere");
	capture_end(out, sizeof(out));
	assert_string_equal(out, "");
}

static void
test_log_errno_preserved(void **state)
{
	char	 out[4096];
	int	 e[5];

	log_init("tlog", QUIET);
	capture_start();
	errno = ENOENT;
	log_warn("open %s", "/nonexistent");
	e[0] = errno;
	errno = EACCES;
	log_warnx("x");
	e[1] = errno;
	errno = EPIPE;
	log_info("x");
	e[2] = errno;
	errno = EINTR;
	log_debug("x");				/* the early return too */
	e[3] = errno;
	capture_end(out, sizeof(out));
	assert_int_equal(e[0], ENOENT);
	assert_int_equal(e[1], EACCES);
	assert_int_equal(e[2], EPIPE);
	assert_int_equal(e[3], EINTR);

	/* even when the write itself fails */
	fflush(stderr);
	saved_stderr = dup(STDERR_FILENO);
	close(STDERR_FILENO);
	errno = EAGAIN;
	log_info("into a closed descriptor");
	e[4] = errno;
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	clearerr(stderr);
	assert_int_equal(e[4], EAGAIN);
}

static void
test_log_warn_appends_strerror(void **state)
{
	char	 out[4096];

	log_init("tlog", QUIET);
	capture_start();
	errno = ENOENT;
	log_warn("open %s", "/nonexistent");
	errno = EACCES;
	log_warnx("no errno here");
	errno = 0;
	vwrite(LOG_WARNING, 1, "direct");
	capture_end(out, sizeof(out));
	assert_int_equal(count_lines(out), 3);
	assert_non_null(strstr(out,
	    "]: open /nonexistent: No such file or directory\n"));
	assert_non_null(strstr(out, "]: no errno here\n"));
	assert_non_null(strstr(out, "]: direct: Success\n"));
}

static void
test_log_long_line_cut(void **state)
{
	char	 out[8192], big[3000];

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_init("tlog", QUIET);
	capture_start();
	log_info("%s", big);
	capture_end(out, sizeof(out));
	assert_int_equal(count_lines(out), 1);
	/* LOG_LINE_MAX with the terminating NUL */
	assert_int_equal(message_len(out), LOG_LINE_MAX - 1);
	assert_int_equal(strspn(message_of(out), "a"), LOG_LINE_MAX - 1);

	/* exactly LOG_LINE_MAX - 1 fits; the strerror of a full line goes */
	big[LOG_LINE_MAX - 1] = '\0';
	capture_start();
	log_info("%s", big);
	errno = ENOENT;
	log_warn("%s", big);
	capture_end(out, sizeof(out));
	assert_int_equal(count_lines(out), 2);
	assert_int_equal(message_len(out), LOG_LINE_MAX - 1);
	assert_int_equal(message_len(strchr(out, '\n') + 1), LOG_LINE_MAX - 1);
	assert_null(strstr(out, "No such file"));

	/* a strerror that does not fit is cut, still on one line */
	big[LOG_LINE_MAX - 10] = '\0';
	capture_start();
	errno = ENOENT;
	log_warn("%s", big);
	capture_end(out, sizeof(out));
	assert_int_equal(count_lines(out), 1);
	assert_int_equal(message_len(out), LOG_LINE_MAX - 1);
	assert_non_null(strstr(out, "a: No such\n"));
}

static void
test_log_setname_bounded(void **state)
{
	char	 out[4096], name[100];

	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	log_init(name, QUIET);
	capture_start();
	log_info("x");
	capture_end(out, sizeof(out));
	/* the name is cut to its buffer, 31 bytes */
	assert_non_null(strstr(out, " nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn["));
	assert_null(strstr(out, "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"));
	log_setname("tlog");
}

static void
test_log_printable_plain(void **state)
{
	char	 dst[64];

	assert_int_equal(log_printable(dst, sizeof(dst), "plain text ~", 12),
	    12);
	assert_string_equal(dst, "plain text ~");
	/* srclen, not a NUL, ends the source */
	assert_int_equal(log_printable(dst, sizeof(dst), "abcdef", 3), 3);
	assert_string_equal(dst, "abc");
	assert_int_equal(log_printable(dst, sizeof(dst), NULL, 0), 0);
	assert_string_equal(dst, "");
}

static void
test_log_printable_escapes(void **state)
{
	char	 dst[64];

	/* control, DEL, high bytes and the backslash itself */
	assert_int_equal(log_printable(dst, sizeof(dst),
	    "a\r\nb\\\x7f\xff\x80\x1f", 9),
	    strlen("a\\x0d\\x0ab\\x5c\\x7f\\xff\\x80\\x1f"));
	assert_string_equal(dst, "a\\x0d\\x0ab\\x5c\\x7f\\xff\\x80\\x1f");
	/* NUL bytes inside the source are shown, not taken as its end */
	assert_int_equal(log_printable(dst, sizeof(dst), "a\0b", 3), 6);
	assert_string_equal(dst, "a\\x00b");
	/* the edges of the printable range pass as they are */
	assert_int_equal(log_printable(dst, sizeof(dst), " ~", 2), 2);
	assert_string_equal(dst, " ~");
}

static void
test_log_printable_exact_fit(void **state)
{
	char	 dst[8];

	memset(dst, 'x', sizeof(dst));
	assert_int_equal(log_printable(dst, 4, "abc", 3), 3);
	assert_string_equal(dst, "abc");
	assert_int_equal(dst[4], 'x');		/* nothing past dstlen */
	/* an escape needs 4 bytes and the NUL one */
	assert_int_equal(log_printable(dst, 5, "\x01", 1), 4);
	assert_string_equal(dst, "\\x01");
	assert_int_equal(log_printable(dst, 8, "ab\x01", 3), 6);
	assert_string_equal(dst, "ab\\x01");
}

static void
test_log_printable_one_short(void **state)
{
	char	 dst[8];

	memset(dst, 'x', sizeof(dst));
	assert_int_equal(log_printable(dst, 3, "abc", 3), 2);
	assert_string_equal(dst, "ab");
	assert_int_equal(dst[3], 'x');
	/* an escape is never split: all four bytes or none */
	assert_int_equal(log_printable(dst, 4, "\x01", 1), 0);
	assert_string_equal(dst, "");
	assert_int_equal(log_printable(dst, 6, "ab\x01", 3), 2);
	assert_string_equal(dst, "ab");
	/* and nothing after a dropped escape sneaks in */
	assert_int_equal(log_printable(dst, 6, "ab\x01" "c", 4), 2);
	assert_string_equal(dst, "ab");
}

static void
test_log_printable_tiny_dst(void **state)
{
	char	 dst[4];

	memset(dst, 'x', sizeof(dst));
	assert_int_equal(log_printable(dst, 0, "abc", 3), 0);
	assert_int_equal(dst[0], 'x');		/* not even a NUL */
	assert_int_equal(log_printable(dst, 1, "abc", 3), 0);
	assert_int_equal(dst[0], '\0');
	assert_int_equal(dst[1], 'x');
	assert_int_equal(log_printable(dst, 1, "\x01", 1), 0);
	assert_int_equal(dst[0], '\0');
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_log_vwrite_one_line),
		cmocka_unit_test(test_log_newlines_become_spaces),
		cmocka_unit_test(test_log_debug_needs_flag),
		cmocka_unit_test(test_log_no_stderr_flag_is_silent),
		cmocka_unit_test(test_log_errno_preserved),
		cmocka_unit_test(test_log_warn_appends_strerror),
		cmocka_unit_test(test_log_long_line_cut),
		cmocka_unit_test(test_log_setname_bounded),
		cmocka_unit_test(test_log_printable_plain),
		cmocka_unit_test(test_log_printable_escapes),
		cmocka_unit_test(test_log_printable_exact_fit),
		cmocka_unit_test(test_log_printable_one_short),
		cmocka_unit_test(test_log_printable_tiny_dst),
		cmocka_unit_test(test_log_journal_stream),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
