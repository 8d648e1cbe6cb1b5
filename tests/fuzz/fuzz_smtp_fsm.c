/*
 * fuzz_smtp_fsm - any bytes as a session: the first byte picks the
 * listener (TLS mode, auth required, trusted, recipient limit), each
 * later byte a command and whether the server's part of it (AUTH, the
 * TLS handshake) succeeds.  Whatever smtp_fsm_check() lets through must
 * keep the rules: no RCPT without MAIL and AUTH or trust, no MAIL on a
 * required listener without either, no AUTH in the clear, no DATA
 * without a recipient, no more recipients than the limit.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "smtp_fsm.h"

int		LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void	check(int);

static const enum smtp_verb verbs[16] = {
	SMTP_CMD_UNKNOWN, SMTP_CMD_EHLO, SMTP_CMD_HELO, SMTP_CMD_MAIL,
	SMTP_CMD_RCPT, SMTP_CMD_DATA, SMTP_CMD_BDAT, SMTP_CMD_RSET,
	SMTP_CMD_NOOP, SMTP_CMD_QUIT, SMTP_CMD_VRFY, SMTP_CMD_EXPN,
	SMTP_CMD_HELP, SMTP_CMD_STARTTLS, SMTP_CMD_AUTH, SMTP_CMD_MAIL
};

static void
check(int ok)
{
	if (!ok)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *p, size_t n)
{
	struct smtp_fsm		 f;
	struct smtp_verdict	 v;
	enum smtp_verb		 verb;
	size_t			 i;
	int			 may, ok;

	if (n == 0)
		return 0;
	smtp_fsm_init(&f, p[0] % 3, (p[0] >> 2) & 1, (p[0] >> 3) & 1,
	    (p[0] >> 4) & 1, (size_t)(p[0] >> 5));
	for (i = 1; i < n; i++) {
		verb = verbs[p[i] & 15];
		ok = (p[i] >> 4) & 1;
		may = (f.flags & SMTP_FSM_AUTH) || f.trusted;
		if (smtp_fsm_check(&f, verb, &v) != 0) {
			check(v.code >= 400 && v.code <= 599);
			check(v.status != NULL && v.text != NULL);
			continue;
		}
		switch (verb) {
		case SMTP_CMD_EHLO:
		case SMTP_CMD_HELO:
			smtp_fsm_done(&f, SMTP_FSM_EV_HELLO);
			break;
		case SMTP_CMD_MAIL:
			check(!f.auth_required || may);
			check(f.flags & SMTP_FSM_GREETED);
			check(!(f.flags & SMTP_FSM_MAIL));
			smtp_fsm_done(&f, SMTP_FSM_EV_MAIL);
			break;
		case SMTP_CMD_RCPT:
			check(may && (f.flags & SMTP_FSM_MAIL));
			check(f.nrcpt < f.max_rcpt);
			smtp_fsm_done(&f, SMTP_FSM_EV_RCPT);
			break;
		case SMTP_CMD_DATA:
			check(f.nrcpt > 0 && !(f.flags & SMTP_FSM_BDAT));
			smtp_fsm_done(&f, SMTP_FSM_EV_END);
			break;
		case SMTP_CMD_BDAT:
			check(f.nrcpt > 0);
			smtp_fsm_done(&f, ok ? SMTP_FSM_EV_END :
			    SMTP_FSM_EV_BDAT);
			break;
		case SMTP_CMD_RSET:
			smtp_fsm_done(&f, SMTP_FSM_EV_RSET);
			break;
		case SMTP_CMD_STARTTLS:
			check(f.listen_tls == SMTP_FSM_TLS_STARTTLS &&
			    f.tls_available && !(f.flags & SMTP_FSM_TLS));
			if (ok)
				smtp_fsm_done(&f, SMTP_FSM_EV_TLS);
			break;
		case SMTP_CMD_AUTH:
			check((f.flags & SMTP_FSM_TLS) &&
			    !(f.flags & SMTP_FSM_AUTH));
			if (ok)
				smtp_fsm_done(&f, SMTP_FSM_EV_AUTH);
			break;
		case SMTP_CMD_EXPN:
		case SMTP_CMD_UNKNOWN:
			check(0);
			break;
		default:
			break;
		}
	}
	return 0;
}
