/*
 * NAME
 *	smtp_fsm - which command an ESMTP session may give, and when
 * SYNOPSIS
 *	#include "smtp_fsm.h"
 *
 *	void smtp_fsm_init(struct smtp_fsm *f, int listen_tls,
 *	    int auth_required, int trusted, int tls_available,
 *	    size_t max_rcpt);
 *	int smtp_fsm_check(const struct smtp_fsm *f, enum smtp_verb verb,
 *	    struct smtp_verdict *v);
 *	void smtp_fsm_done(struct smtp_fsm *f, enum smtp_fsm_event ev);
 * DESCRIPTION
 *	The policy half of the session state machine, without I/O: the
 *	server asks smtp_fsm_check() before it acts on a command, and
 *	tells smtp_fsm_done() what then happened.  The rules (RFC 5321
 *	4.1.4 and 3.3, RFC 3207, RFC 4954, RFC 6409 and sluice's own):
 *
 *	  MAIL   after EHLO/HELO, not inside a transaction; on a listener
 *	         with auth required, only after AUTH (or from a trusted
 *	         network), and after STARTTLS where the listener offers it
 *	  RCPT   after MAIL; only with AUTH or from a trusted network,
 *	         whatever the listener (never an open relay); at most
 *	         max_rcpt of them
 *	  DATA   after at least one accepted RCPT, not after BDAT
 *	  BDAT   likewise (the server still reads a refused chunk)
 *	  AUTH   under TLS only, after EHLO/HELO, once, not inside a
 *	         transaction
 *	  STARTTLS once, where the listener offers it
 *	  EXPN   never
 *
 *	listen_tls is SMTP_FSM_TLS_NONE, _STARTTLS or _IMPLICIT; on an
 *	implicit listener the session starts under TLS.
 * DIAGNOSTICS
 *	smtp_fsm_check() returns 0 when the command may go ahead, else -1
 *	with the reply (code, RFC 3463 status, text) in v.
 */
#ifndef SLUICE_SMTP_FSM_H
#define SLUICE_SMTP_FSM_H

#include <stddef.h>

#include "smtp_parse.h"

#define SMTP_FSM_TLS_NONE	0
#define SMTP_FSM_TLS_STARTTLS	1
#define SMTP_FSM_TLS_IMPLICIT	2

/* smtp_fsm.flags */
#define SMTP_FSM_GREETED	0x01	/* EHLO or HELO */
#define SMTP_FSM_TLS		0x02
#define SMTP_FSM_AUTH		0x04
#define SMTP_FSM_MAIL		0x08
#define SMTP_FSM_BDAT		0x10	/* the body is coming in chunks */

enum smtp_fsm_event {
	SMTP_FSM_EV_HELLO,	/* EHLO/HELO accepted: a new start */
	SMTP_FSM_EV_MAIL,	/* MAIL accepted */
	SMTP_FSM_EV_RCPT,	/* a RCPT accepted */
	SMTP_FSM_EV_BDAT,	/* a BDAT chunk taken, not LAST */
	SMTP_FSM_EV_END,	/* the transaction ended (queued or failed) */
	SMTP_FSM_EV_RSET,
	SMTP_FSM_EV_TLS,	/* the TLS handshake finished */
	SMTP_FSM_EV_AUTH	/* AUTH succeeded */
};

struct smtp_fsm {
	int		 flags;
	size_t		 nrcpt;
	int		 listen_tls;
	int		 auth_required;
	int		 trusted;
	int		 tls_available;
	size_t		 max_rcpt;
};

struct smtp_verdict {
	int		 code;
	const char	*status;
	const char	*text;
};

void	smtp_fsm_init(struct smtp_fsm *, int, int, int, int, size_t);
int	smtp_fsm_check(const struct smtp_fsm *, enum smtp_verb,
	    struct smtp_verdict *);
void	smtp_fsm_done(struct smtp_fsm *, enum smtp_fsm_event);

#endif
