/*
 * test_msgid.c - message ids: format, ordering, decoding
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <sodium.h>

#include "msgid.h"

static void
test_msgid_known_values(void **state)
{
	static const uint8_t	 zero[10], ones[10] = {
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	char			 id[MSGID_SIZE];

	msgid_from(0, zero, id);
	assert_string_equal(id, "00000000000000000000000000");
	/* 48 bits of time set, 80 random bits set: 2 padding bits stay 0 */
	msgid_from(0xffffffffffffULL, ones, id);
	assert_string_equal(id, "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
	/* ms = 1: the 48th bit of time is the last bit of character 10 */
	msgid_from(1, zero, id);
	assert_string_equal(id, "00000000010000000000000000");
	/* the lowest random bit is the last bit of the last character */
	{
		uint8_t	 r[10] = { 0 };

		r[9] = 1;
		msgid_from(0, r, id);
		assert_string_equal(id, "00000000000000000000000001");
	}
}

static void
test_msgid_valid(void **state)
{
	char	 id[MSGID_SIZE];

	msgid_new(id);
	assert_int_equal(strlen(id), MSGID_LEN);
	assert_int_equal(msgid_valid(id), 1);
	assert_int_equal(msgid_valid("00000000000000000000000000"), 1);
	assert_int_equal(msgid_valid("0000000000000000000000000"), 0);
	assert_int_equal(msgid_valid("000000000000000000000000000"), 0);
	assert_int_equal(msgid_valid("0000000000000000000000000a"), 0);
	assert_int_equal(msgid_valid("0000000000000000000000000I"), 0);
	assert_int_equal(msgid_valid("0000000000000000000000000L"), 0);
	assert_int_equal(msgid_valid("0000000000000000000000000O"), 0);
	assert_int_equal(msgid_valid("0000000000000000000000000U"), 0);
	assert_int_equal(msgid_valid("80000000000000000000000000"), 0);
	assert_int_equal(msgid_valid(""), 0);
}

static void
test_msgid_increasing(void **state)
{
	char	 prev[MSGID_SIZE], id[MSGID_SIZE];
	int	 i;

	msgid_new(prev);
	for (i = 0; i < 10000; i++) {
		msgid_new(id);
		if (strcmp(prev, id) >= 0)
			fail_msg("%s does not sort after %s", id, prev);
		memcpy(prev, id, sizeof(id));
	}
}

static void
test_msgid_time_round_trip(void **state)
{
	static const uint8_t	 rnd[10] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
	char			 id[MSGID_SIZE];
	uint64_t		 ms, now;
	struct timespec		 ts;

	msgid_from(1795000000123ULL, rnd, id);
	assert_int_equal(msgid_time(id, &ms), 0);
	assert_true(ms == 1795000000123ULL);
	clock_gettime(CLOCK_REALTIME, &ts);
	now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	msgid_new(id);
	assert_int_equal(msgid_time(id, &ms), 0);
	assert_true(ms >= now && ms < now + 1000);
	assert_int_equal(msgid_time("bogus", &ms), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_msgid_known_values),
		cmocka_unit_test(test_msgid_valid),
		cmocka_unit_test(test_msgid_increasing),
		cmocka_unit_test(test_msgid_time_round_trip),
	};

	if (sodium_init() == -1)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
