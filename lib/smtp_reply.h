/*
 * NAME
 *	smtp_reply - what an SMTP server answers a client: reply lines,
 *	EHLO extensions; and the dot-stuffing of what the client sends
 * SYNOPSIS
 *	#include "smtp_reply.h"
 *
 *	void smtp_reply_init(struct smtp_reply *r);
 *	int smtp_reply_line(struct smtp_reply *r, const char *line,
 *	    size_t len, int maxlines);
 *	unsigned int smtp_reply_ehlo(const char *ext, size_t len,
 *	    unsigned int *caps, uint64_t *size);
 *	const char *smtp_reply_strerror(int rc);
 *	size_t smtp_reply_dot_span(const void *body, size_t len,
 *	    size_t off, size_t max, int *stuff);
 *	const char *smtp_reply_dot_end(const void *body, size_t len,
 *	    size_t *n);
 * DESCRIPTION
 *	Pure functions for the client side of SMTP: no I/O, no logging,
 *	no global state.  Every input is (pointer, length) and may hold
 *	any bytes, NUL included; nothing is read past the length.
 *
 *	smtp_reply_line() feeds one reply line, without its CRLF, into
 *	the accumulator r (RFC 5321 4.2: Reply-code [ SP / "-" text ]).
 *	A line is three digits, the first 2..5, then SP (the last line),
 *	'-' (more follow) or nothing (the last line, with no text).  Every
 *	line of a reply must carry the code of its first, and a reply may
 *	have at most maxlines lines.  The length of a line is the
 *	reader's to bound; here it only costs time.  A zeroed struct, or
 *	one smtp_reply_init() cleared, starts a new reply, and so does
 *	the first line after a complete reply or after an error.
 *
 *	When the first line's text starts with an RFC 3463 enhanced
 *	status code of the reply's class ("2.1.0" in a 250; 5 to 15 of
 *	digits and dots, the second a dot, then SP or the end),
 *	r->status gets it; a later line that starts with the same code
 *	has it dropped.  r->text is the code, the status (if any) and the
 *	text of each line, joined by single SP ("250 2.0.0 queued as
 *	X"); a line that does not fit in SMTP_REPLY_TEXT_MAX octets is
 *	left out whole, and a later shorter one may still fit.  Control
 *	octets (NUL, CR, LF, TAB and the others, DEL) count as SP, so
 *	r->text is a C string that is safe to pass on; 8-bit octets are
 *	kept.  r->len is strlen(r->text), r->nlines the lines read of the
 *	reply, and r->code its code.  Once the reply is complete these
 *	stay as they are until the next line is fed; the struct may be
 *	copied.
 *
 *	smtp_reply_ehlo() reads one ehlo-line (RFC 5321 4.1.1.1) of an
 *	EHLO reply, i.e. the text after "250-" or "250 " of the second
 *	and later lines.  The keyword ends at SP, '=' or the end and
 *	compares without regard to case; control octets count as SP.
 *	The extensions the client uses add their SMTP_EXT_* bit to *caps:
 *	STARTTLS, 8BITMIME, SMTPUTF8, DSN, PIPELINING, SIZE, and AUTH
 *	(RFC 4954) with PLAIN and LOGIN, written "AUTH PLAIN LOGIN" or in
 *	the old "AUTH=PLAIN LOGIN" form.  "SIZE n" (RFC 1870) also sets
 *	*size to n: n is decimal up to INT64_MAX, a sign allowed; a
 *	negative, overflowing or otherwise bad n sets *size to 0 (no
 *	limit known).  *size is left alone when SIZE has no parameter or
 *	one of SMTP_REPLY_SIZE_ARG or more octets.  Unknown keywords, and
 *	keywords of 32 octets or more, are ignored.
 *
 *	smtp_reply_dot_span() is the streaming half of dot-stuffing
 *	(RFC 5321 4.5.2): of the body[0..len) being sent, it says how
 *	much from off may go next as it is (at most max octets, and
 *	never past the LF that ends a line before one starting with a
 *	dot), and sets *stuff when a "." must go before those octets
 *	because off is at the start of a line that begins with a dot.  A
 *	line starts at offset 0 and after every LF.  The caller sends the
 *	dot if asked, then the octets, adds the return value to off, and
 *	asks again while off < len; it may stop and resume at any
 *	offset, since the decision depends only on body[off - 1] and
 *	body[off].  One memmem() per call: pieces are large when dots are
 *	rare.  smtp_reply_dot_end() is what goes after the whole body:
 *	".\r\n", with a CRLF first when the body is not empty and does
 *	not end with a LF; *n is its length.
 * DIAGNOSTICS
 *	smtp_reply_line() returns SMTP_REPLY_MORE (0) when another line
 *	of the reply is to come, SMTP_REPLY_DONE when the reply is
 *	complete, or an SMTP_REPLY_ERR_* value: the reply is malformed,
 *	r holds nothing of use, and the connection cannot go on.
 *	smtp_reply_strerror() names each of them for logs and tests.
 *	smtp_reply_ehlo() returns the SMTP_EXT_* bits of this line (0 for
 *	a keyword we do not use).  smtp_reply_dot_span() returns 0 only
 *	when off >= len or max is 0.
 */
#ifndef SLUICE_SMTP_REPLY_H
#define SLUICE_SMTP_REPLY_H

#include <stddef.h>
#include <stdint.h>

#define SMTP_REPLY_TEXT_MAX	4096	/* r->text, without its NUL */
#define SMTP_REPLY_STATUS_MAX	16	/* r->status, NUL included */
#define SMTP_REPLY_SIZE_ARG	64	/* a SIZE parameter we read */

enum smtp_reply_rc {
	SMTP_REPLY_MORE = 0,
	SMTP_REPLY_DONE,
	SMTP_REPLY_ERR_SYNTAX,	/* not 3 digits, 2..5, then SP, '-' or end */
	SMTP_REPLY_ERR_CODE,	/* a code other than the first line's */
	SMTP_REPLY_ERR_LINES,	/* more than maxlines lines */
	SMTP_REPLY_RC_MAX
};

/* extensions from EHLO: smtp_reply_ehlo() */
#define SMTP_EXT_STARTTLS	0x0001
#define SMTP_EXT_SIZE		0x0002
#define SMTP_EXT_8BITMIME	0x0004
#define SMTP_EXT_SMTPUTF8	0x0008
#define SMTP_EXT_DSN		0x0010
#define SMTP_EXT_PIPELINING	0x0020
#define SMTP_EXT_AUTH_PLAIN	0x0040
#define SMTP_EXT_AUTH_LOGIN	0x0080

struct smtp_reply {
	int		 code;		/* 200..599 */
	char		 status[SMTP_REPLY_STATUS_MAX];	/* or "" */
	char		 text[SMTP_REPLY_TEXT_MAX + 1];
	size_t		 len;		/* strlen(text) */
	int		 nlines;	/* of this reply, so far */
	int		 done;		/* its last line is in */
};

void		 smtp_reply_init(struct smtp_reply *);
int		 smtp_reply_line(struct smtp_reply *, const char *, size_t,
		    int);
unsigned int	 smtp_reply_ehlo(const char *, size_t, unsigned int *,
		    uint64_t *);
const char	*smtp_reply_strerror(int);
size_t		 smtp_reply_dot_span(const void *, size_t, size_t, size_t,
		    int *);
const char	*smtp_reply_dot_end(const void *, size_t, size_t *);

#endif
