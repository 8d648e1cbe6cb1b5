/*
 * test_msgid.c - message ids: format, ordering, decoding, and the carry
 * from the random part into the time.
 *
 * The module's source is included so that the tests can set its saved
 * state: the carry after 2^80 ids in one millisecond cannot be reached
 * any other way.  Its symbols then come from here, and the linker takes
 * nothing from msgid.o in the archive.
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

#include "msgid.c"

static const char	 alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static void	state_reset(void);

/* state_reset - as a fresh process: the next msgid_next() draws anew */
static void
state_reset(void)
{
	msgid_pid = 0;
	msgid_last_ms = 0;
	memset(msgid_last_rnd, 0, sizeof(msgid_last_rnd));
}

static void
test_msgid_length_and_alphabet(void **state)
{
	char	 id[MSGID_SIZE];
	int	 i;

	for (i = 0; i < 1000; i++) {
		memset(id, 'x', sizeof(id));
		msgid_new(id);
		assert_int_equal(strlen(id), MSGID_LEN);
		assert_int_equal(strspn(id, alphabet), MSGID_LEN);
		assert_true(id[0] <= '7');	/* 2 padding bits */
	}
}

static void
test_msgid_from_known(void **state)
{
	static const uint8_t	 zero[10], ones[10] = {
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	static const uint8_t	 mixed[10] = {
		0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23 };
	uint8_t			 low[10] = { 0 };
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
	low[9] = 1;
	msgid_from(0, low, id);
	assert_string_equal(id, "00000000000000000000000001");

	/*
	 * By hand.  Time 1469918176385 = 0x01563df36481; with the 2 padding
	 * bits in front, in fives:
	 *   00000 00001 01010 11000 11110 11111 00110 11001 00100 00001
	 *   0     1     10=A  24=R  30=Y  31=Z  6     25=S  4     1
	 * Random 01 23 45 67 89 is 40 bits, 8 characters:
	 *   00000 00100 10001 10100 01010 11001 11100 01001
	 *   0     4     17=H  20=M  10=A  25=S  28=W  9
	 * and ab cd ef 01 23:
	 *   10101 01111 00110 11110 11110 00000 01001 00011
	 *   21=N  15=F  6     30=Y  30=Y  0     9     3
	 */
	msgid_from(1469918176385ULL, mixed, id);
	assert_string_equal(id, "01ARYZ6S41" "04HMASW9" "NF6YY093");
}

static void
test_msgid_valid_accepts(void **state)
{
	char	 id[MSGID_SIZE];

	msgid_new(id);
	assert_int_equal(msgid_valid(id), 1);
	assert_int_equal(msgid_valid("00000000000000000000000000"), 1);
	assert_int_equal(msgid_valid("7ZZZZZZZZZZZZZZZZZZZZZZZZZ"), 1);
	assert_int_equal(msgid_valid("01ARYZ6S4104HMASW9NF6YY093"), 1);
}

static void
test_msgid_valid_rejects_length(void **state)
{
	assert_int_equal(msgid_valid(""), 0);
	assert_int_equal(msgid_valid("0"), 0);
	assert_int_equal(msgid_valid("0000000000000000000000000"), 0);	/* 25 */
	assert_int_equal(msgid_valid("000000000000000000000000000"), 0);	/* 27 */
	assert_int_equal(msgid_valid("00000000000000000000000000\n"), 0);
}

static void
test_msgid_valid_rejects_alphabet(void **state)
{
	static const char	 bad[] = "ILOUilouabz-_ \x01\x80\xff";
	char			 id[MSGID_SIZE];
	size_t			 i, pos;

	for (i = 0; i < sizeof(bad) - 1; i++) {
		for (pos = 0; pos < MSGID_LEN; pos += 5) {
			memcpy(id, "01ARYZ6S4104HMASW9NF6YY093", sizeof(id));
			id[pos] = bad[i];
			if (msgid_valid(id))
				fail_msg("accepted 0x%02x at %zu",
				    (unsigned char)bad[i], pos);
		}
	}
	/* a lowercase copy of a good id is not one */
	assert_int_equal(msgid_valid("01aryz6s4104hmasw9nf6yy093"), 0);
	/* a first character of 8 or more would need 131 bits */
	assert_int_equal(msgid_valid("80000000000000000000000000"), 0);
	assert_int_equal(msgid_valid("Z0000000000000000000000000"), 0);
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
test_msgid_same_ms_counts_up(void **state)
{
	uint8_t	 rnd[10];

	state_reset();
	msgid_next(5000);
	memcpy(rnd, msgid_last_rnd, sizeof(rnd));
	rnd[9] = 0xfe;
	rnd[8] = 0x00;
	memcpy(msgid_last_rnd, rnd, sizeof(rnd));
	msgid_next(5000);
	assert_true(msgid_last_ms == 5000);
	assert_int_equal(msgid_last_rnd[9], 0xff);
	msgid_next(5000);		/* carry within the random part */
	assert_int_equal(msgid_last_rnd[9], 0x00);
	assert_int_equal(msgid_last_rnd[8], 0x01);
	assert_memory_equal(msgid_last_rnd, rnd, 8);
	/* a clock stepping back counts up too */
	msgid_next(4000);
	assert_true(msgid_last_ms == 5000);
	assert_int_equal(msgid_last_rnd[9], 0x01);
	/* a later millisecond draws fresh bits */
	msgid_next(5001);
	assert_true(msgid_last_ms == 5001);
}

static void
test_msgid_carry_into_time(void **state)
{
	static const uint8_t	 zero[10];
	char			 a[MSGID_SIZE], b[MSGID_SIZE];
	uint64_t		 ms, future;

	state_reset();
	/*
	 * All 80 bits set in the current millisecond: the next id takes
	 * ms + 1 and a random part of zero, and still sorts after.
	 */
	msgid_next(7000);
	memset(msgid_last_rnd, 0xff, sizeof(msgid_last_rnd));
	msgid_from(msgid_last_ms, msgid_last_rnd, a);
	msgid_next(7000);
	assert_true(msgid_last_ms == 7001);
	assert_memory_equal(msgid_last_rnd, zero, sizeof(zero));
	msgid_from(msgid_last_ms, msgid_last_rnd, b);
	assert_true(strcmp(a, b) < 0);

	/* the same through msgid_new(), with the state an hour ahead */
	future = msgid_now() + 3600 * 1000;
	msgid_next(future);
	memset(msgid_last_rnd, 0xff, sizeof(msgid_last_rnd));
	msgid_from(msgid_last_ms, msgid_last_rnd, a);
	msgid_new(b);
	assert_true(strcmp(a, b) < 0);
	assert_int_equal(msgid_time(b, &ms), 0);
	assert_true(ms == future + 1);
	assert_string_equal(b + 10, "0000000000000000");
}

static void
test_msgid_new_after_fork_redraws(void **state)
{
	uint8_t	 rnd[10];

	state_reset();
	/* a state inherited from another process is not continued */
	msgid_next(9000);
	memcpy(rnd, msgid_last_rnd, sizeof(rnd));
	msgid_pid = getpid() + 1;
	msgid_next(9000);
	assert_true(msgid_last_ms == 9000);
	assert_true(msgid_pid == getpid());
	/* 2^-80 of the time these match; the test can live with that */
	assert_memory_not_equal(msgid_last_rnd, rnd, sizeof(rnd));
}

static void
test_msgid_time_round_trip(void **state)
{
	static const uint8_t	 rnd[10] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
	static const uint64_t	 ms_in[] = { 0, 1, 1469918176385ULL,
				    1795000000123ULL, 0xffffffffffffULL };
	char			 id[MSGID_SIZE];
	uint64_t		 ms, before, after;
	size_t			 i;

	for (i = 0; i < sizeof(ms_in) / sizeof(ms_in[0]); i++) {
		msgid_from(ms_in[i], rnd, id);
		ms = 42;
		assert_int_equal(msgid_time(id, &ms), 0);
		assert_true(ms == ms_in[i]);
	}
	/* a fresh id carries the time it was made at */
	state_reset();
	before = msgid_now();
	msgid_new(id);
	after = msgid_now();
	assert_int_equal(msgid_time(id, &ms), 0);
	assert_true(ms >= before && ms <= after);
}

static void
test_msgid_time_rejects_malformed(void **state)
{
	uint64_t	 ms = 42;

	assert_int_equal(msgid_time("bogus", &ms), -1);
	assert_int_equal(msgid_time("", &ms), -1);
	assert_int_equal(msgid_time("80000000000000000000000000", &ms), -1);
	assert_int_equal(msgid_time("01ARYZ6S4104HMASW9NF6YY09I", &ms), -1);
	assert_true(ms == 42);			/* untouched */
}

static void
test_msgid_sorts_by_time(void **state)
{
	static const uint8_t	 lo[10], hi[10] = {
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	char			 a[MSGID_SIZE], b[MSGID_SIZE];
	uint64_t		 t;

	/* a later millisecond sorts after, whatever the random bits */
	for (t = 1; t < ((uint64_t)1 << 48); t = t * 3 + 1) {
		msgid_from(t - 1, hi, a);
		msgid_from(t, lo, b);
		if (strcmp(a, b) >= 0)
			fail_msg("%s does not sort before %s", a, b);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_msgid_length_and_alphabet),
		cmocka_unit_test(test_msgid_from_known),
		cmocka_unit_test(test_msgid_valid_accepts),
		cmocka_unit_test(test_msgid_valid_rejects_length),
		cmocka_unit_test(test_msgid_valid_rejects_alphabet),
		cmocka_unit_test(test_msgid_increasing),
		cmocka_unit_test(test_msgid_same_ms_counts_up),
		cmocka_unit_test(test_msgid_carry_into_time),
		cmocka_unit_test(test_msgid_new_after_fork_redraws),
		cmocka_unit_test(test_msgid_time_round_trip),
		cmocka_unit_test(test_msgid_time_rejects_malformed),
		cmocka_unit_test(test_msgid_sorts_by_time),
	};

	if (sodium_init() == -1)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
