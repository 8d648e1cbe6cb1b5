/*
 * test_smtp_fsm.c - the order and preconditions of ESMTP commands: a
 * table of sessions (listener policy, what happened so far, the next
 * command) and the reply each must get; then long random sessions
 * checked against the rules that keep sluice from being an open relay.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp_fsm.h"

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))
#define EV_END		-1

/* a session: the listener, the events so far, the command, the reply */
struct fsm_case {
	const char	*name;
	int		 listen_tls;
	int		 auth_required;
	int		 trusted;
	int		 events[8];	/* up to EV_END */
	enum smtp_verb	 verb;
	int		 code;		/* 0: may go ahead */
	const char	*status;
};

#define ST	SMTP_FSM_TLS_STARTTLS
#define IM	SMTP_FSM_TLS_IMPLICIT
#define NO	SMTP_FSM_TLS_NONE
#define HELLO	SMTP_FSM_EV_HELLO
#define MAIL	SMTP_FSM_EV_MAIL
#define RCPT	SMTP_FSM_EV_RCPT
#define TLS	SMTP_FSM_EV_TLS
#define AUTH	SMTP_FSM_EV_AUTH
#define BDAT	SMTP_FSM_EV_BDAT
#define RSET	SMTP_FSM_EV_RSET
#define END	SMTP_FSM_EV_END

static const struct fsm_case cases[] = {
	{ "MAIL before EHLO", ST, 1, 0, { EV_END }, SMTP_CMD_MAIL, 503,
	    "5.5.1" },
	{ "MAIL before STARTTLS", ST, 1, 0, { HELLO, EV_END }, SMTP_CMD_MAIL,
	    530, "5.7.0" },
	{ "MAIL under TLS before AUTH", ST, 1, 0, { HELLO, TLS, HELLO,
	    EV_END }, SMTP_CMD_MAIL, 530, "5.7.0" },
	{ "MAIL after AUTH", ST, 1, 0, { TLS, HELLO, AUTH, EV_END },
	    SMTP_CMD_MAIL, 0, NULL },
	{ "MAIL implicit before AUTH", IM, 1, 0, { HELLO, EV_END },
	    SMTP_CMD_MAIL, 530, "5.7.0" },
	{ "MAIL trusted, no TLS", ST, 1, 1, { HELLO, EV_END }, SMTP_CMD_MAIL,
	    0, NULL },
	{ "nested MAIL", ST, 0, 1, { HELLO, MAIL, EV_END }, SMTP_CMD_MAIL,
	    503, "5.5.1" },
	{ "MAIL optional listener", NO, 0, 0, { HELLO, EV_END },
	    SMTP_CMD_MAIL, 0, NULL },
	{ "RCPT untrusted, no AUTH", NO, 0, 0, { HELLO, MAIL, EV_END },
	    SMTP_CMD_RCPT, 530, "5.7.0" },
	{ "RCPT trusted", NO, 0, 1, { HELLO, MAIL, EV_END }, SMTP_CMD_RCPT,
	    0, NULL },
	{ "RCPT after AUTH", ST, 0, 0, { TLS, HELLO, AUTH, MAIL, EV_END },
	    SMTP_CMD_RCPT, 0, NULL },
	{ "RCPT without MAIL", ST, 0, 1, { HELLO, EV_END }, SMTP_CMD_RCPT,
	    503, "5.5.1" },
	{ "RCPT at the limit", NO, 0, 1, { HELLO, MAIL, RCPT, RCPT, RCPT,
	    EV_END }, SMTP_CMD_RCPT, 452, "4.5.3" },
	{ "RCPT one below the limit", NO, 0, 1, { HELLO, MAIL, RCPT, RCPT,
	    EV_END }, SMTP_CMD_RCPT, 0, NULL },
	{ "DATA without RCPT", NO, 0, 1, { HELLO, MAIL, EV_END },
	    SMTP_CMD_DATA, 554, "5.5.1" },
	{ "DATA without MAIL", NO, 0, 1, { HELLO, EV_END }, SMTP_CMD_DATA,
	    503, "5.5.1" },
	{ "DATA", NO, 0, 1, { HELLO, MAIL, RCPT, EV_END }, SMTP_CMD_DATA, 0,
	    NULL },
	{ "DATA after BDAT", NO, 0, 1, { HELLO, MAIL, RCPT, BDAT, EV_END },
	    SMTP_CMD_DATA, 503, "5.5.1" },
	{ "BDAT after BDAT", NO, 0, 1, { HELLO, MAIL, RCPT, BDAT, EV_END },
	    SMTP_CMD_BDAT, 0, NULL },
	{ "BDAT without RCPT", NO, 0, 1, { HELLO, MAIL, EV_END },
	    SMTP_CMD_BDAT, 554, "5.5.1" },
	{ "DATA after RSET", NO, 0, 1, { HELLO, MAIL, RCPT, RSET, EV_END },
	    SMTP_CMD_DATA, 503, "5.5.1" },
	{ "DATA after the end", NO, 0, 1, { HELLO, MAIL, RCPT, END, EV_END },
	    SMTP_CMD_DATA, 503, "5.5.1" },
	{ "AUTH in the clear", ST, 1, 0, { HELLO, EV_END }, SMTP_CMD_AUTH,
	    538, "5.7.11" },
	{ "AUTH before EHLO", IM, 1, 0, { EV_END }, SMTP_CMD_AUTH, 503,
	    "5.5.1" },
	{ "AUTH after STARTTLS without EHLO", ST, 1, 0, { HELLO, TLS,
	    EV_END }, SMTP_CMD_AUTH, 503, "5.5.1" },
	{ "AUTH under TLS", ST, 1, 0, { HELLO, TLS, HELLO, EV_END },
	    SMTP_CMD_AUTH, 0, NULL },
	{ "AUTH twice", IM, 1, 0, { HELLO, AUTH, EV_END }, SMTP_CMD_AUTH, 503,
	    "5.5.1" },
	{ "AUTH in a transaction", IM, 0, 1, { HELLO, MAIL, EV_END },
	    SMTP_CMD_AUTH, 503, "5.5.1" },
	{ "STARTTLS", ST, 1, 0, { HELLO, EV_END }, SMTP_CMD_STARTTLS, 0,
	    NULL },
	{ "STARTTLS twice", ST, 1, 0, { HELLO, TLS, EV_END },
	    SMTP_CMD_STARTTLS, 503, "5.5.1" },
	{ "STARTTLS on implicit", IM, 1, 0, { HELLO, EV_END },
	    SMTP_CMD_STARTTLS, 503, "5.5.1" },
	{ "STARTTLS on plaintext", NO, 0, 1, { HELLO, EV_END },
	    SMTP_CMD_STARTTLS, 502, "5.5.1" },
	{ "TLS forgets the transaction", ST, 0, 1, { HELLO, MAIL, RCPT, TLS,
	    HELLO, EV_END }, SMTP_CMD_DATA, 503, "5.5.1" },
	{ "TLS forgets AUTH", ST, 1, 0, { HELLO, TLS, HELLO, AUTH, TLS,
	    HELLO, EV_END }, SMTP_CMD_MAIL, 530, "5.7.0" },
	{ "EXPN", NO, 0, 1, { HELLO, EV_END }, SMTP_CMD_EXPN, 502, "5.5.1" },
	{ "unknown", NO, 0, 1, { HELLO, EV_END }, SMTP_CMD_UNKNOWN, 500,
	    "5.5.1" },
	{ "NOOP anytime", ST, 1, 0, { EV_END }, SMTP_CMD_NOOP, 0, NULL },
	{ "RSET anytime", ST, 1, 0, { EV_END }, SMTP_CMD_RSET, 0, NULL },
	{ "QUIT anytime", ST, 1, 0, { HELLO, MAIL, EV_END }, SMTP_CMD_QUIT, 0,
	    NULL },
};

static void	test_smtp_fsm_table(void **);
static void	test_smtp_fsm_random_sessions(void **);
static void	test_smtp_fsm_implicit_starts_under_tls(void **);

/* every row: replay the events, then ask about the command */
static void
test_smtp_fsm_table(void **state)
{
	const struct fsm_case	*c;
	struct smtp_fsm		 f;
	struct smtp_verdict	 v;
	size_t			 i, k;
	int			 rc;

	for (i = 0; i < nitems(cases); i++) {
		c = &cases[i];
		smtp_fsm_init(&f, c->listen_tls, c->auth_required, c->trusted,
		    1, 3);
		for (k = 0; k < nitems(c->events) && c->events[k] != EV_END;
		    k++)
			smtp_fsm_done(&f, (enum smtp_fsm_event)c->events[k]);
		memset(&v, 0, sizeof(v));
		rc = smtp_fsm_check(&f, c->verb, &v);
		if (c->code == 0) {
			if (rc != 0)
				fail_msg("%s: refused with %d %s %s", c->name,
				    v.code, v.status, v.text);
			continue;
		}
		if (rc != -1 || v.code != c->code ||
		    strcmp(v.status, c->status) != 0)
			fail_msg("%s: got rc %d, %d %s; want %d %s", c->name,
			    rc, v.code, v.status ? v.status : "-", c->code,
			    c->status);
		assert_non_null(v.text);
	}
}

static void
test_smtp_fsm_implicit_starts_under_tls(void **state)
{
	struct smtp_fsm		 f;
	struct smtp_verdict	 v;

	smtp_fsm_init(&f, SMTP_FSM_TLS_IMPLICIT, 1, 0, 1, 10);
	assert_true(f.flags & SMTP_FSM_TLS);
	smtp_fsm_done(&f, SMTP_FSM_EV_HELLO);
	assert_int_equal(smtp_fsm_check(&f, SMTP_CMD_AUTH, &v), 0);
}

/*
 * Random sessions, following the server's own rule (act only on what
 * check allowed), against the invariants: no RCPT without MAIL and
 * AUTH or trust, no MAIL on a required listener without either, no
 * AUTH in the clear, no DATA without a recipient, never more than
 * max_rcpt recipients.
 */
static void
test_smtp_fsm_random_sessions(void **state)
{
	static const enum smtp_verb verbs[] = {
		SMTP_CMD_EHLO, SMTP_CMD_MAIL, SMTP_CMD_RCPT, SMTP_CMD_DATA,
		SMTP_CMD_BDAT, SMTP_CMD_RSET, SMTP_CMD_STARTTLS, SMTP_CMD_AUTH,
		SMTP_CMD_NOOP, SMTP_CMD_EXPN
	};
	struct smtp_fsm		 f;
	struct smtp_verdict	 v;
	unsigned int		 seed = 12345, r;
	int			 s, n, authed, may;
	enum smtp_verb		 verb;

	for (s = 0; s < 2000; s++) {
		r = (unsigned)rand_r(&seed);
		smtp_fsm_init(&f, (int)(r % 3), (int)((r >> 2) & 1),
		    (int)((r >> 3) & 1), 1, 1 + (r >> 4) % 5);
		authed = 0;
		for (n = 0; n < 60; n++) {
			verb = verbs[(unsigned)rand_r(&seed) % nitems(verbs)];
			may = (f.flags & SMTP_FSM_AUTH) || f.trusted;
			if (smtp_fsm_check(&f, verb, &v) != 0) {
				assert_true(v.code >= 400 && v.code <= 599);
				continue;
			}
			switch (verb) {
			case SMTP_CMD_EHLO:
				smtp_fsm_done(&f, SMTP_FSM_EV_HELLO);
				break;
			case SMTP_CMD_MAIL:
				assert_true(!f.auth_required || may);
				assert_true(f.flags & SMTP_FSM_GREETED);
				smtp_fsm_done(&f, SMTP_FSM_EV_MAIL);
				break;
			case SMTP_CMD_RCPT:
				assert_true(may);
				assert_true(f.flags & SMTP_FSM_MAIL);
				assert_true(f.nrcpt < f.max_rcpt);
				smtp_fsm_done(&f, SMTP_FSM_EV_RCPT);
				break;
			case SMTP_CMD_DATA:
				assert_true(f.nrcpt > 0);
				smtp_fsm_done(&f, SMTP_FSM_EV_END);
				break;
			case SMTP_CMD_BDAT:
				assert_true(f.nrcpt > 0);
				smtp_fsm_done(&f, (rand_r(&seed) & 1) ?
				    SMTP_FSM_EV_BDAT : SMTP_FSM_EV_END);
				break;
			case SMTP_CMD_RSET:
				smtp_fsm_done(&f, SMTP_FSM_EV_RSET);
				break;
			case SMTP_CMD_STARTTLS:
				assert_int_equal(f.listen_tls,
				    SMTP_FSM_TLS_STARTTLS);
				smtp_fsm_done(&f, SMTP_FSM_EV_TLS);
				authed = 0;
				break;
			case SMTP_CMD_AUTH:
				assert_true(f.flags & SMTP_FSM_TLS);
				assert_false(authed);
				/* half of the attempts succeed */
				if (rand_r(&seed) & 1) {
					smtp_fsm_done(&f, SMTP_FSM_EV_AUTH);
					authed = 1;
				}
				break;
			case SMTP_CMD_EXPN:
				fail_msg("EXPN allowed");
				break;
			default:
				break;
			}
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_smtp_fsm_table),
		cmocka_unit_test(test_smtp_fsm_implicit_starts_under_tls),
		cmocka_unit_test(test_smtp_fsm_random_sessions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
