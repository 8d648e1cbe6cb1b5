/*
 * test_compat.c - strlcpy, strlcat and strtonum, as lib/compat or libc
 * provides them
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "compat/compat.h"

static void
test_compat_strlcpy(void **state)
{
	char	 b[8];

	assert_int_equal(strlcpy(b, "abc", sizeof(b)), 3);
	assert_string_equal(b, "abc");
	assert_int_equal(strlcpy(b, "1234567", sizeof(b)), 7);	/* exact */
	assert_string_equal(b, "1234567");
	assert_int_equal(strlcpy(b, "12345678", sizeof(b)), 8);	/* truncated */
	assert_string_equal(b, "1234567");
	b[0] = 'x';
	assert_int_equal(strlcpy(b, "abc", 0), 3);		/* size 0 */
	assert_int_equal(b[0], 'x');
	assert_int_equal(strlcpy(b, "abc", 1), 3);
	assert_string_equal(b, "");
}

static void
test_compat_strlcat(void **state)
{
	char	 b[8] = "ab";

	assert_int_equal(strlcat(b, "cd", sizeof(b)), 4);
	assert_string_equal(b, "abcd");
	assert_int_equal(strlcat(b, "efgh", sizeof(b)), 8);	/* truncated */
	assert_string_equal(b, "abcdefg");
	assert_int_equal(strlcat(b, "x", sizeof(b)), 8);
	/* an unterminated destination is left alone */
	memset(b, 'z', sizeof(b));
	assert_int_equal(strlcat(b, "abc", sizeof(b)), sizeof(b) + 3);
	assert_int_equal(b[sizeof(b) - 1], 'z');
}

static void
test_compat_strtonum(void **state)
{
	const char	*e;

	assert_int_equal(strtonum("42", 0, 100, &e), 42);
	assert_null(e);
	assert_int_equal(strtonum("0", 0, 100, &e), 0);
	assert_null(e);
	assert_int_equal(strtonum("100", 0, 100, &e), 100);	/* max */
	assert_null(e);
	assert_int_equal(strtonum("101", 0, 100, &e), 0);
	assert_string_equal(e, "too large");
	assert_int_equal(strtonum("-1", 0, 100, &e), 0);
	assert_string_equal(e, "too small");
	assert_int_equal(strtonum("12x", 0, 100, &e), 0);
	assert_string_equal(e, "invalid");
	assert_int_equal(strtonum("", 0, 100, &e), 0);
	assert_string_equal(e, "invalid");
	assert_int_equal(strtonum("99999999999999999999", 0, LLONG_MAX, &e), 0);
	assert_string_equal(e, "too large");
	assert_int_equal(strtonum("5", 10, 1, &e), 0);
	assert_string_equal(e, "invalid");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_compat_strlcpy),
		cmocka_unit_test(test_compat_strlcat),
		cmocka_unit_test(test_compat_strtonum),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
