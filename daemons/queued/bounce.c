/*
 * bounce.c - RFC 3464 delivery status notifications
 *
 * A report is an ordinary message from the null sender to the envelope
 * sender: multipart/report with a human part, a message/delivery-status
 * part (RFC 3464 section 2) and the original headers, or the whole
 * original for a failure when the sender asked RET=FULL (RFC 3461 4.3).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "child.h"
#include "conf.h"
#include "log.h"
#include "msghdr.h"
#include "queue_proto.h"
#include "queued.h"
#include "xmalloc.h"

/* enough for the parts around the original headers or message */
#define BOUNCE_MAX_TEXT	(64 * 1024)
#define BOUNCE_PER_RCPT	8192

static void	bounce_date(time_t, char *, size_t);
static void	bounce_clean(char *, size_t, const char *, size_t);
static void	bounce_rcpt(struct buf *, const struct qmsg *,
		    const struct qrcpt *, enum bounce_kind);

/* bounce_wants - does this recipient go into a report of this kind? */
int
bounce_wants(const struct qmsg *m, const struct qrcpt *r,
    enum bounce_kind kind)
{
	/* never to the null sender (RFC 5321 6.1), never about a report */
	if (m->from[0] == '\0' || m->bounce || (r->notify & QP_NOTIFY_NEVER))
		return 0;
	switch (kind) {
	case BOUNCE_FAILED:
		/* without NOTIFY, failures are reported (RFC 3461 4.1) */
		return r->state == QR_FAILED && r->newly && (r->notify == 0 ||
		    (r->notify & QP_NOTIFY_FAILURE));
	case BOUNCE_DELAYED:
		return r->state == QR_PENDING && (r->notify == 0 ||
		    (r->notify & QP_NOTIFY_DELAY));
	case BOUNCE_SUCCESS:
		/* a server that took NOTIFY reports success itself */
		return r->state == QR_SENT && r->newly &&
		    (r->notify & QP_NOTIFY_SUCCESS) && !r->dsn_passed;
	}
	return 0;
}

static void
bounce_date(time_t t, char *dst, size_t len)
{
	struct tm	 tm;

	localtime_r(&t, &tm);
	strftime(dst, len, "%a, %d %b %Y %H:%M:%S %z", &tm);
}

/* bounce_clean - peer text made safe for one header line */
static void
bounce_clean(char *dst, size_t dstlen, const char *src, size_t max)
{
	size_t	 i, n = strlen(src);

	if (n > max)
		n = max;
	if (n >= dstlen)
		n = dstlen - 1;
	for (i = 0; i < n; i++) {
		unsigned char	 ch = (unsigned char)src[i];

		dst[i] = ch < 32 || ch == 127 ? ' ' : (char)ch;
	}
	dst[n] = '\0';
}

static void
bounce_rcpt(struct buf *b, const struct qmsg *m, const struct qrcpt *r,
    enum bounce_kind kind)
{
	char		 to[QP_MAX_ADDR + 1], text[1024], relay[300], orcpt[1100];
	char		 until[64];
	const char	*p;

	bounce_clean(to, sizeof(to), r->to, QP_MAX_ADDR);
	buf_printf(b, "\r\nFinal-Recipient: rfc822; %s\r\n", to);
	if (r->orcpt != NULL && r->orcpt[0] != '\0') {
		bounce_clean(orcpt, sizeof(orcpt), r->orcpt, 1000);
		/* ORCPT arrives as "addr-type;xtext" (RFC 3461 4.2) */
		if ((p = strchr(orcpt, ';')) != NULL)
			buf_printf(b, "Original-Recipient: %.*s; %s\r\n",
			    (int)(p - orcpt), orcpt, p + 1);
	}
	buf_printf(b, "Action: %s\r\n", kind == BOUNCE_FAILED ? "failed" :
	    kind == BOUNCE_DELAYED ? "delayed" : "relayed");
	buf_printf(b, "Status: %s\r\n", r->dsn[0] != '\0' ? r->dsn :
	    kind == BOUNCE_FAILED ? "5.0.0" : kind == BOUNCE_DELAYED ?
	    "4.0.0" : "2.0.0");
	if (r->relay != NULL && r->relay[0] != '\0' &&
	    strcmp(r->relay, "none") != 0) {
		bounce_clean(relay, sizeof(relay), r->relay, 255);
		relay[strcspn(relay, "[:")] = '\0';
		if (relay[0] != '\0')
			buf_printf(b, "Remote-MTA: dns; %s\r\n", relay);
	}
	if (r->reply != NULL && r->reply[0] != '\0') {
		bounce_clean(text, sizeof(text), r->reply, 900);
		if (r->code >= 200 && strncmp(text, "2", 1) != 0 &&
		    strncmp(text, "4", 1) != 0 && strncmp(text, "5", 1) != 0)
			buf_printf(b, "Diagnostic-Code: smtp; %d %s\r\n",
			    r->code, text);
		else if (r->code >= 200)
			buf_printf(b, "Diagnostic-Code: smtp; %s\r\n", text);
		else
			buf_printf(b, "Diagnostic-Code: x-sluice; %s\r\n",
			    text);
	}
	if (kind == BOUNCE_DELAYED) {
		bounce_date((time_t)(m->created +
		    q.env->conf->queue.lifetime), until, sizeof(until));
		buf_printf(b, "Will-Retry-Until: %s\r\n", until);
	}
}

/*
 * bounce_build - the report about m's recipients that bounce_wants()
 * picks for kind, as a complete message with CRLF line ends
 */
char *
bounce_build(const struct qmsg *m, enum bounce_kind kind, const char *id,
    size_t *lenp)
{
	const struct conf	*conf = q.env->conf;
	struct buf		*b;
	char			 date[64], from[QP_MAX_ADDR + 1], envid[1100];
	char			 to[QP_MAX_ADDR + 1], text[1024];
	size_t			 i, hlen, blen;
	char			*out;
	int			 full;

	/*
	 * Room for every part: a recipient takes at most its address,
	 * ORCPT, reply and relay twice over (the text and the report),
	 * so buf_printf() cannot run out below.
	 */
	b = buf_new(BOUNCE_MAX_TEXT + m->nrcpt * BOUNCE_PER_RCPT + m->size);
	if (b == NULL)
		return NULL;
	bounce_clean(from, sizeof(from), m->from, QP_MAX_ADDR);
	bounce_date(time(NULL), date, sizeof(date));
	buf_printf(b, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n",
	    conf->hostname);
	buf_printf(b, "To: <%s>\r\n", from);
	buf_printf(b, "Subject: %s\r\n", kind == BOUNCE_FAILED ?
	    "Undelivered Mail Returned to Sender" : kind == BOUNCE_DELAYED ?
	    "Delayed Mail (still being retried)" :
	    "Successful Mail Delivery Report");
	buf_printf(b, "Date: %s\r\n", date);
	buf_printf(b, "Message-ID: <%s@%s>\r\n", id, conf->hostname);
	buf_printf(b, "Auto-Submitted: auto-replied\r\n");
	buf_printf(b, "MIME-Version: 1.0\r\n");
	buf_printf(b, "Content-Type: multipart/report; "
	    "report-type=delivery-status;\r\n\tboundary=\"%s/%s\"\r\n", id,
	    conf->hostname);
	buf_printf(b, "Content-Transfer-Encoding: %s\r\n",
	    (m->flags & (QP_BODY_8BITMIME | QP_SMTPUTF8)) ? "8bit" : "7bit");
	buf_printf(b, "\r\nThis is a MIME-encapsulated message.\r\n\r\n");

	buf_printf(b, "--%s/%s\r\nContent-Description: Notification\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n\r\n", id,
	    conf->hostname);
	buf_printf(b, "This is the mail system at host %s.\r\n\r\n",
	    conf->hostname);
	if (kind == BOUNCE_FAILED)
		buf_printf(b, "Your message could not be delivered to one "
		    "or more recipients.\r\nIt is attached below.\r\n\r\n");
	else if (kind == BOUNCE_DELAYED) {
		bounce_date((time_t)(m->created + conf->queue.lifetime), date,
		    sizeof(date));
		buf_printf(b, "Your message could not be delivered yet.  "
		    "It will be retried until\r\n%s.\r\n\r\n", date);
	}
	else
		buf_printf(b, "Your message was handed on to the "
		    "recipients' mail systems.\r\n\r\n");
	for (i = 0; i < m->nrcpt; i++) {
		if (!bounce_wants(m, &m->rcpts[i], kind))
			continue;
		bounce_clean(to, sizeof(to), m->rcpts[i].to, QP_MAX_ADDR);
		bounce_clean(text, sizeof(text), m->rcpts[i].reply != NULL ?
		    m->rcpts[i].reply : "", 900);
		buf_printf(b, "<%s>: %s\r\n", to, text);
	}

	buf_printf(b, "\r\n--%s/%s\r\nContent-Description: Delivery report"
	    "\r\nContent-Type: message/delivery-status\r\n\r\n", id,
	    conf->hostname);
	buf_printf(b, "Reporting-MTA: dns; %s\r\n", conf->hostname);
	buf_printf(b, "X-Sluice-Queue-ID: %s\r\n", m->id);
	if (m->envid != NULL && m->envid[0] != '\0') {
		bounce_clean(envid, sizeof(envid), m->envid, 1000);
		buf_printf(b, "Original-Envelope-Id: %s\r\n", envid);
	}
	bounce_date((time_t)m->created, date, sizeof(date));
	buf_printf(b, "Arrival-Date: %s\r\n", date);
	for (i = 0; i < m->nrcpt; i++)
		if (bounce_wants(m, &m->rcpts[i], kind))
			bounce_rcpt(b, m, &m->rcpts[i], kind);

	full = kind == BOUNCE_FAILED && (m->flags & QP_RET_FULL);
	hlen = msghdr_end(m->body != NULL ? m->body : "", m->size);
	buf_printf(b, "\r\n--%s/%s\r\nContent-Description: %s\r\n"
	    "Content-Type: %s\r\n\r\n", id, conf->hostname,
	    full ? "Undelivered Message" : "Message Headers",
	    full ? "message/rfc822" : "text/rfc822-headers");
	blen = full ? m->size : hlen;
	if (blen > 0 && buf_add(b, m->body, blen) == -1) {
		buf_free(b);
		return NULL;
	}
	if (blen > 0 && m->body[blen - 1] != '\n')
		buf_printf(b, "\r\n");
	buf_printf(b, "\r\n--%s/%s--\r\n", id, conf->hostname);

	*lenp = buf_len(b);
	out = xmalloc(*lenp + 1);
	memcpy(out, buf_data(b), *lenp);
	buf_free(b);
	return out;
}
