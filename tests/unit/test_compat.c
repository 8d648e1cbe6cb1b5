/*
 * test_compat.c - strlcpy, strlcat and strtonum, as lib/compat or libc
 * provides them (on Debian 12 glibc has none of the three, so these
 * exercise lib/compat).
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
test_compat_strlcpy_fits(void **state)
{
	char	 b[8];

	memset(b, 'z', sizeof(b));
	assert_int_equal(strlcpy(b, "abc", sizeof(b)), 3);
	assert_string_equal(b, "abc");
	assert_int_equal(b[4], 'z');		/* nothing past the NUL */
	assert_int_equal(strlcpy(b, "", sizeof(b)), 0);
	assert_string_equal(b, "");
}

static void
test_compat_strlcpy_exact(void **state)
{
	char	 b[8];

	/* size - 1 characters: fits, and ret < size says so */
	assert_int_equal(strlcpy(b, "1234567", sizeof(b)), 7);
	assert_string_equal(b, "1234567");
}

static void
test_compat_strlcpy_truncated(void **state)
{
	char	 b[8];

	/* ret >= size is the truncation test callers use */
	assert_int_equal(strlcpy(b, "12345678", sizeof(b)), 8);
	assert_string_equal(b, "1234567");
	assert_int_equal(strlcpy(b, "a much longer string", sizeof(b)), 20);
	assert_string_equal(b, "a much ");
	assert_int_equal(strlcpy(b, "abc", 1), 3);
	assert_string_equal(b, "");
}

static void
test_compat_strlcpy_size_zero(void **state)
{
	char	 b[4] = "xyz";

	/* no byte written, not even a NUL; still the source length */
	assert_int_equal(strlcpy(b, "abc", 0), 3);
	assert_string_equal(b, "xyz");
	assert_int_equal(strlcpy(NULL, "abcdef", 0), 6);
}

static void
test_compat_strlcat_fits(void **state)
{
	char	 b[8] = "ab";

	assert_int_equal(strlcat(b, "cd", sizeof(b)), 4);
	assert_string_equal(b, "abcd");
	assert_int_equal(strlcat(b, "", sizeof(b)), 4);
	assert_string_equal(b, "abcd");
	/* exactly full: 7 characters and the NUL */
	assert_int_equal(strlcat(b, "efg", sizeof(b)), 7);
	assert_string_equal(b, "abcdefg");
}

static void
test_compat_strlcat_truncated(void **state)
{
	char	 b[8] = "abcd";

	/* ret is the length it tried to make: dst + src */
	assert_int_equal(strlcat(b, "efgh", sizeof(b)), 8);
	assert_string_equal(b, "abcdefg");
	assert_int_equal(strlcat(b, "x", sizeof(b)), 8);
	assert_string_equal(b, "abcdefg");
	assert_int_equal(strlcat(b, "xyz", sizeof(b)), 10);
}

static void
test_compat_strlcat_size_zero(void **state)
{
	char	 b[8] = "ab";

	/* no NUL within size 0: dst counts as size long, untouched */
	assert_int_equal(strlcat(b, "cd", 0), 2);
	assert_string_equal(b, "ab");
	/* a size shorter than what dst holds is treated the same way */
	assert_int_equal(strlcat(b, "cd", 2), 4);
	assert_string_equal(b, "ab");
}

static void
test_compat_strlcat_unterminated(void **state)
{
	char	 b[8];

	/* an unterminated destination is left alone, not overrun */
	memset(b, 'z', sizeof(b));
	assert_int_equal(strlcat(b, "abc", sizeof(b)), sizeof(b) + 3);
	assert_memory_equal(b, "zzzzzzzz", sizeof(b));
}

static void
test_compat_strtonum_in_range(void **state)
{
	const char	*e = "unset";

	errno = EINTR;
	assert_int_equal(strtonum("42", 0, 100, &e), 42);
	assert_null(e);
	assert_int_equal(errno, EINTR);		/* left alone on success */
	assert_int_equal(strtonum("-7", -10, 10, &e), -7);
	assert_null(e);
	/* min and max themselves are in range */
	assert_int_equal(strtonum("0", 0, 100, &e), 0);
	assert_null(e);
	assert_int_equal(strtonum("100", 0, 100, &e), 100);
	assert_null(e);
	assert_int_equal(strtonum("-10", -10, 10, &e), -10);
	assert_null(e);
	assert_true(strtonum("9223372036854775807", 0, LLONG_MAX, &e) ==
	    LLONG_MAX);
	assert_null(e);
	assert_true(strtonum("-9223372036854775808", LLONG_MIN, 0, &e) ==
	    LLONG_MIN);
	assert_null(e);
	assert_int_equal(errno, EINTR);
}

static void
test_compat_strtonum_too_small(void **state)
{
	const char	*e;

	errno = 0;
	assert_int_equal(strtonum("-1", 0, 100, &e), 0);
	assert_string_equal(e, "too small");
	assert_int_equal(errno, ERANGE);
	assert_int_equal(strtonum("9", 10, 100, &e), 0);	/* min - 1 */
	assert_string_equal(e, "too small");
	/* below what a long long holds */
	assert_int_equal(strtonum("-99999999999999999999", LLONG_MIN, 0, &e),
	    0);
	assert_string_equal(e, "too small");
	assert_int_equal(strtonum("-9223372036854775809", LLONG_MIN, 0, &e),
	    0);
	assert_string_equal(e, "too small");
}

static void
test_compat_strtonum_too_large(void **state)
{
	const char	*e;

	errno = 0;
	assert_int_equal(strtonum("101", 0, 100, &e), 0);	/* max + 1 */
	assert_string_equal(e, "too large");
	assert_int_equal(errno, ERANGE);
	/* past what a long long holds */
	assert_int_equal(strtonum("99999999999999999999", 0, LLONG_MAX, &e),
	    0);
	assert_string_equal(e, "too large");
	assert_int_equal(strtonum("9223372036854775808", 0, LLONG_MAX, &e),
	    0);
	assert_string_equal(e, "too large");
}

static void
test_compat_strtonum_invalid(void **state)
{
	static const char	*bad[] = { "", "abc", "-", "+", "0x10", "1.5",
				    "12x", "12 ", "1e3", "10\n" };
	const char		*e;
	size_t			 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		e = NULL;
		if (strtonum(bad[i], 0, 100000, &e) != 0 || e == NULL ||
		    strcmp(e, "invalid") != 0 || errno != EINVAL)
			fail_msg("\"%s\" was not refused as invalid", bad[i]);
	}
	/* min > max is a caller's mistake, refused the same way */
	assert_int_equal(strtonum("5", 10, 1, &e), 0);
	assert_string_equal(e, "invalid");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_compat_strlcpy_fits),
		cmocka_unit_test(test_compat_strlcpy_exact),
		cmocka_unit_test(test_compat_strlcpy_truncated),
		cmocka_unit_test(test_compat_strlcpy_size_zero),
		cmocka_unit_test(test_compat_strlcat_fits),
		cmocka_unit_test(test_compat_strlcat_truncated),
		cmocka_unit_test(test_compat_strlcat_size_zero),
		cmocka_unit_test(test_compat_strlcat_unterminated),
		cmocka_unit_test(test_compat_strtonum_in_range),
		cmocka_unit_test(test_compat_strtonum_too_small),
		cmocka_unit_test(test_compat_strtonum_too_large),
		cmocka_unit_test(test_compat_strtonum_invalid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
