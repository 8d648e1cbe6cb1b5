/*
 * test_sizes.c - sizes, durations and rates: every suffix, the exact
 * boundaries of each output type, one past them, overflow before the
 * multiplication, and the forms that are refused (sign, space, empty).
 */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sizes.h"

struct size_case {
	const char	*in;
	int		 rc;
	uint64_t	 out;
	int		 err;		/* errno on failure */
};

struct duration_case {
	const char	*in;
	int		 rc;
	uint32_t	 out;
	int		 err;
};

struct rate_case {
	const char	*in;
	int		 rc;
	uint32_t	 count;
	uint32_t	 period;
};

static const struct size_case size_cases[] = {
	{ "0",				 0, 0, 0 },
	{ "1",				 0, 1, 0 },
	{ "1024",			 0, 1024, 0 },
	{ "1K",				 0, 1024, 0 },
	{ "1k",				 0, 1024, 0 },
	{ "35M",			 0, 36700160, 0 },
	{ "35m",			 0, 36700160, 0 },
	{ "2G",				 0, 2147483648ULL, 0 },
	{ "2g",				 0, 2147483648ULL, 0 },
	{ "0K",				 0, 0, 0 },
	{ "007",			 0, 7, 0 },
	/* the largest uint64_t, and one more */
	{ "18446744073709551615",	 0, UINT64_MAX, 0 },
	{ "18446744073709551616",	-1, 0, ERANGE },
	/* the largest count of each unit, and one more */
	{ "18014398509481983K",		 0, 18014398509481983ULL * 1024, 0 },
	{ "18014398509481984K",		-1, 0, ERANGE },
	{ "17592186044415M",		 0, 17592186044415ULL << 20, 0 },
	{ "17592186044416M",		-1, 0, ERANGE },
	{ "17179869183G",		 0, 17179869183ULL << 30, 0 },
	{ "17179869184G",		-1, 0, ERANGE },
	{ "99999999999G",		-1, 0, ERANGE },
	/* the digits overflow before any unit is applied */
	{ "99999999999999999999K",	-1, 0, ERANGE },
	{ "184467440737095516150",	-1, 0, ERANGE },
	{ "",				-1, 0, EINVAL },
	{ "K",				-1, 0, EINVAL },
	{ "35Q",			-1, 0, EINVAL },
	{ "35MB",			-1, 0, EINVAL },
	{ "35T",			-1, 0, EINVAL },
	{ "-1",				-1, 0, EINVAL },
	{ "+1",				-1, 0, EINVAL },
	{ " 1",				-1, 0, EINVAL },
	{ "1 ",				-1, 0, EINVAL },
	{ "35 M",			-1, 0, EINVAL },
	{ "1.5M",			-1, 0, EINVAL },
	{ "0x10",			-1, 0, EINVAL },
};

static const struct duration_case duration_cases[] = {
	{ "0",			 0, 0, 0 },
	{ "30",			 0, 30, 0 },
	{ "30s",		 0, 30, 0 },
	{ "5m",			 0, 300, 0 },
	{ "1h",			 0, 3600, 0 },
	{ "5d",			 0, 432000, 0 },
	{ "0d",			 0, 0, 0 },
	/* the largest uint32_t, and one more */
	{ "4294967295",		 0, UINT32_MAX, 0 },
	{ "4294967295s",	 0, UINT32_MAX, 0 },
	{ "4294967296",		-1, 0, ERANGE },
	{ "71582788m",		 0, 71582788U * 60, 0 },
	{ "71582789m",		-1, 0, ERANGE },
	{ "1193046h",		 0, 1193046U * 3600, 0 },
	{ "1193047h",		-1, 0, ERANGE },
	{ "49710d",		 0, 49710U * 86400, 0 },
	{ "49711d",		-1, 0, ERANGE },
	{ "99999999999999999999d", -1, 0, ERANGE },
	{ "",			-1, 0, EINVAL },
	{ "d",			-1, 0, EINVAL },
	{ "5 days",		-1, 0, EINVAL },
	{ "5days",		-1, 0, EINVAL },
	{ "5D",			-1, 0, EINVAL },
	{ "5w",			-1, 0, EINVAL },
	{ "-5m",		-1, 0, EINVAL },
	{ "+5m",		-1, 0, EINVAL },
	{ " 5m",		-1, 0, EINVAL },
	{ "5m ",		-1, 0, EINVAL },
	{ "1.5h",		-1, 0, EINVAL },
	{ "1h30m",		-1, 0, EINVAL },
};

static const struct rate_case rate_cases[] = {
	{ "20/s",		 0, 20, 1 },
	{ "1/m",		 0, 1, 60 },
	{ "100/h",		 0, 100, 3600 },
	{ "5000/d",		 0, 5000, 86400 },
	{ "4294967295/s",	 0, UINT32_MAX, 1 },
	{ "4294967296/s",	-1, 0, 0 },
	{ "0/s",		-1, 0, 0 },
	{ "20",			-1, 0, 0 },
	{ "20/",		-1, 0, 0 },
	{ "20/w",		-1, 0, 0 },
	{ "20/ss",		-1, 0, 0 },
	{ "20/S",		-1, 0, 0 },
	{ "/s",			-1, 0, 0 },
	{ "-1/s",		-1, 0, 0 },
	{ "20 /s",		-1, 0, 0 },
	{ "20/ s",		-1, 0, 0 },
	{ "",			-1, 0, 0 },
};

static void
test_sizes_size_table(void **state)
{
	const struct size_case	*c;
	uint64_t		 out;
	size_t			 i;
	int			 rc;

	(void)state;
	for (i = 0; i < sizeof(size_cases) / sizeof(size_cases[0]); i++) {
		c = &size_cases[i];
		out = 12345;
		errno = 0;
		rc = size_parse(c->in, &out);
		if (rc != c->rc)
			fail_msg("size_parse(\"%s\") = %d, want %d", c->in, rc,
			    c->rc);
		if (rc == 0 && out != c->out)
			fail_msg("size_parse(\"%s\") gave %llu, want %llu",
			    c->in, (unsigned long long)out,
			    (unsigned long long)c->out);
		if (rc == -1) {
			if (errno != c->err)
				fail_msg("size_parse(\"%s\"): errno %d, want %d",
				    c->in, errno, c->err);
			/* a failed parse leaves the output alone */
			assert_int_equal(out, 12345);
		}
	}
}

static void
test_sizes_duration_table(void **state)
{
	const struct duration_case	*c;
	uint32_t			 out;
	size_t				 i;
	int				 rc;

	(void)state;
	for (i = 0; i < sizeof(duration_cases) / sizeof(duration_cases[0]);
	    i++) {
		c = &duration_cases[i];
		out = 12345;
		errno = 0;
		rc = duration_parse(c->in, &out);
		if (rc != c->rc)
			fail_msg("duration_parse(\"%s\") = %d, want %d", c->in,
			    rc, c->rc);
		if (rc == 0 && out != c->out)
			fail_msg("duration_parse(\"%s\") gave %u, want %u",
			    c->in, out, c->out);
		if (rc == -1) {
			if (errno != c->err)
				fail_msg("duration_parse(\"%s\"): errno %d, "
				    "want %d", c->in, errno, c->err);
			assert_int_equal(out, 12345);
		}
	}
}

static void
test_sizes_rate_table(void **state)
{
	const struct rate_case	*c;
	uint32_t		 count, period;
	size_t			 i;
	int			 rc;

	(void)state;
	for (i = 0; i < sizeof(rate_cases) / sizeof(rate_cases[0]); i++) {
		c = &rate_cases[i];
		count = period = 77;
		rc = rate_parse(c->in, &count, &period);
		if (rc != c->rc)
			fail_msg("rate_parse(\"%s\") = %d, want %d", c->in, rc,
			    c->rc);
		if (rc == 0 && (count != c->count || period != c->period))
			fail_msg("rate_parse(\"%s\") gave %u/%u, want %u/%u",
			    c->in, count, period, c->count, c->period);
		if (rc == -1) {
			assert_int_equal(count, 77);
			assert_int_equal(period, 77);
		}
	}
}

static void
test_sizes_null_refused(void **state)
{
	uint64_t	 u;
	uint32_t	 d, c, p;

	(void)state;
	assert_int_equal(size_parse(NULL, &u), -1);
	assert_int_equal(duration_parse(NULL, &d), -1);
	assert_int_equal(rate_parse(NULL, &c, &p), -1);
}

/* a NUL inside the text ends it: "1\0K" is 1 byte, never 1K */
static void
test_sizes_embedded_nul(void **state)
{
	const char	 s[] = "1\0K";
	uint64_t	 u;

	(void)state;
	assert_int_equal(size_parse(s, &u), 0);
	assert_int_equal(u, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sizes_size_table),
		cmocka_unit_test(test_sizes_duration_table),
		cmocka_unit_test(test_sizes_rate_table),
		cmocka_unit_test(test_sizes_null_refused),
		cmocka_unit_test(test_sizes_embedded_nul),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
