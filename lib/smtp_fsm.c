/*
 * smtp_fsm.c - the order and the preconditions of ESMTP commands
 */
#include "config.h"

#include <string.h>

#include "smtp_fsm.h"

static int	smtp_fsm_refuse(struct smtp_verdict *, int, const char *,
		    const char *);

void
smtp_fsm_init(struct smtp_fsm *f, int listen_tls, int auth_required,
    int trusted, int tls_available, size_t max_rcpt)
{
	memset(f, 0, sizeof(*f));
	f->listen_tls = listen_tls;
	f->auth_required = auth_required;
	f->trusted = trusted;
	f->tls_available = tls_available;
	f->max_rcpt = max_rcpt;
	if (listen_tls == SMTP_FSM_TLS_IMPLICIT)
		f->flags |= SMTP_FSM_TLS;
}

static int
smtp_fsm_refuse(struct smtp_verdict *v, int code, const char *status,
    const char *text)
{
	v->code = code;
	v->status = status;
	v->text = text;
	return -1;
}

int
smtp_fsm_check(const struct smtp_fsm *f, enum smtp_verb verb,
    struct smtp_verdict *v)
{
	int	 may_relay = (f->flags & SMTP_FSM_AUTH) || f->trusted;

	switch (verb) {
	case SMTP_CMD_MAIL:
		if (!(f->flags & SMTP_FSM_GREETED))
			return smtp_fsm_refuse(v, 503, "5.5.1",
			    "Error: send HELO/EHLO first");
		if (f->flags & SMTP_FSM_MAIL)
			return smtp_fsm_refuse(v, 503, "5.5.1",
			    "Error: nested MAIL command");
		/* RFC 8314 3.3: credentials, and so mail, only under TLS */
		if (f->auth_required && !(f->flags & SMTP_FSM_TLS) &&
		    f->listen_tls == SMTP_FSM_TLS_STARTTLS && !f->trusted)
			return smtp_fsm_refuse(v, 530, "5.7.0",
			    "Must issue a STARTTLS command first");
		if (f->auth_required && !may_relay)
			return smtp_fsm_refuse(v, 530, "5.7.0",
			    "Authentication required");
		return 0;
	case SMTP_CMD_RCPT:
		if (!(f->flags & SMTP_FSM_MAIL))
			return smtp_fsm_refuse(v, 503, "5.5.1",
			    "Error: need MAIL command");
		/* never an open relay, whatever the listener says */
		if (!may_relay)
			return smtp_fsm_refuse(v, 530, "5.7.0",
			    "Authentication required");
		if (f->nrcpt >= f->max_rcpt)
			return smtp_fsm_refuse(v, 452, "4.5.3",
			    "Error: too many recipients");
		return 0;
	case SMTP_CMD_DATA:
	case SMTP_CMD_BDAT:
		if (!(f->flags & SMTP_FSM_MAIL))
			return smtp_fsm_refuse(v, 503, "5.5.1",
			    "Error: need MAIL command");
		if (f->nrcpt == 0)
			return smtp_fsm_refuse(v, 554, "5.5.1",
			    "Error: no valid recipients");
		/* RFC 3030 3: no DATA once the body comes in chunks */
		if (verb == SMTP_CMD_DATA && (f->flags & SMTP_FSM_BDAT))
			return smtp_fsm_refuse(v, 503, "5.5.1",
			    "Error: DATA after BDAT");
		return 0;
	case SMTP_CMD_AUTH:
		/* RFC 4954 4: a mechanism without TLS gives secrets away */
		if (!(f->flags & SMTP_FSM_TLS))
			return smtp_fsm_refuse(v, 538, "5.7.11",
			    "Encryption required for requested authentication "
			    "mechanism");
		if (!(f->flags & SMTP_FSM_GREETED))
			return smtp_fsm_refuse(v, 503, "5.5.1",
			    "Error: send HELO/EHLO first");
		if (f->flags & SMTP_FSM_AUTH)
			return smtp_fsm_refuse(v, 503, "5.5.1",
			    "Error: already authenticated");
		if (f->flags & SMTP_FSM_MAIL)
			return smtp_fsm_refuse(v, 503, "5.5.1",
			    "Error: MAIL transaction in progress");
		return 0;
	case SMTP_CMD_STARTTLS:
		if (f->flags & SMTP_FSM_TLS)
			return smtp_fsm_refuse(v, 503, "5.5.1",
			    "Error: TLS already active");
		if (f->listen_tls != SMTP_FSM_TLS_STARTTLS || !f->tls_available)
			return smtp_fsm_refuse(v, 502, "5.5.1",
			    "Error: STARTTLS not available");
		return 0;
	case SMTP_CMD_EXPN:
		return smtp_fsm_refuse(v, 502, "5.5.1",
		    "Error: EXPN not supported");
	case SMTP_CMD_UNKNOWN:
		return smtp_fsm_refuse(v, 500, "5.5.1",
		    "Error: command not recognized");
	default:
		return 0;
	}
}

void
smtp_fsm_done(struct smtp_fsm *f, enum smtp_fsm_event ev)
{
	switch (ev) {
	case SMTP_FSM_EV_HELLO:
		f->flags |= SMTP_FSM_GREETED;
		/* FALLTHROUGH */
	case SMTP_FSM_EV_END:
	case SMTP_FSM_EV_RSET:
		f->flags &= ~(SMTP_FSM_MAIL | SMTP_FSM_BDAT);
		f->nrcpt = 0;
		break;
	case SMTP_FSM_EV_MAIL:
		f->flags |= SMTP_FSM_MAIL;
		f->nrcpt = 0;
		break;
	case SMTP_FSM_EV_RCPT:
		f->nrcpt++;
		break;
	case SMTP_FSM_EV_BDAT:
		f->flags |= SMTP_FSM_BDAT;
		break;
	case SMTP_FSM_EV_TLS:
		/* RFC 3207 4.2: forget all that came before, start over */
		f->flags = SMTP_FSM_TLS;
		f->nrcpt = 0;
		break;
	case SMTP_FSM_EV_AUTH:
		f->flags |= SMTP_FSM_AUTH;
		break;
	}
}
