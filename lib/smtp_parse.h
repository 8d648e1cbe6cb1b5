/*
 * NAME
 *	smtp_parse - SMTP command lines, paths, ESMTP parameters, AUTH data
 * SYNOPSIS
 *	#include "smtp_parse.h"
 *
 *	int smtp_parse_command(const char *line, size_t len,
 *	    struct smtp_cmd *cmd);
 *	int smtp_parse_path(enum smtp_verb verb, const char *s, size_t len,
 *	    int smtputf8, struct smtp_path *p, size_t *used);
 *	int smtp_parse_params(const char *s, size_t len, enum smtp_verb verb,
 *	    struct smtp_params *out);
 *	int smtp_parse_args(const struct smtp_cmd *cmd, int smtputf8,
 *	    struct smtp_path *p, struct smtp_params *out);
 *	int smtp_xtext_decode(const char *s, size_t len, char *dst,
 *	    size_t dstlen, size_t *outlen);
 *	int smtp_base64_decode(const char *b64, size_t len, char *dst,
 *	    size_t dstlen, size_t *outlen);
 *	int smtp_auth_plain(const char *b64, size_t len, char *authzid,
 *	    size_t authzidlen, char *login, size_t loginlen, char *password,
 *	    size_t passwordlen);
 *	int smtp_sender_allowed(const char *patterns, const char *address);
 *	const char *smtp_verb_name(enum smtp_verb verb);
 *	const char *smtp_parse_strerror(int err);
 *	void smtp_parse_reply(int err, enum smtp_verb verb, int *code,
 *	    const char **enhanced, const char **text);
 * DESCRIPTION
 *	Pure parsers for what an SMTP client sends: no I/O, no allocation,
 *	no global state.  Every input is (pointer, length) and may hold any
 *	bytes, NUL included; nothing is read past the length and nothing
 *	assumes a terminator.  Pointers in the results point into the
 *	caller's input and live as long as it does.
 *
 *	smtp_parse_command() takes one command line without its CRLF.  It
 *	sets cmd->verb (case does not matter; SMTP_CMD_UNKNOWN when the
 *	word is no verb we know) and cmd->arg/arglen to the argument: what
 *	follows the verb and its SP, with trailing SP dropped.  For MAIL
 *	and RCPT the argument starts after "FROM:" / "TO:" (any case) and
 *	any SP after the colon, so "MAIL FROM: <a@b>" is accepted as
 *	Postfix does; for AUTH cmd->mech/mechlen is the mechanism name and
 *	cmd->resp/resplen the initial response (resp NULL when none was
 *	given); for BDAT cmd->chunk is the chunk size and cmd->last says
 *	whether LAST followed.  Runs of SP between words are tolerated.
 *
 *	A line may hold SMTP_CMD_MAX octets with its CRLF (RFC 5321
 *	4.5.3.1.4), so len may be at most SMTP_CMD_MAX - 2.  MAIL may be
 *	SMTP_MAIL_EXTRA longer and RCPT SMTP_RCPT_EXTRA longer, the sum of
 *	what the extensions we offer add to those lines (SIZE 26, RFC 1870;
 *	RET and ENVID 100, RFC 3461 5; AUTH= 500, RFC 4954 5; SMTPUTF8 10,
 *	RFC 6531; BODY=BINARYMIME 16; NOTIFY and ORCPT 500, RFC 3461 5).
 *	NUL, CR and LF are refused anywhere in the line; other controls
 *	(TAB included) and 8-bit octets are refused in arguments, except
 *	that 8-bit octets in MAIL and RCPT arguments are left to
 *	smtp_parse_path(), which knows about SMTPUTF8.
 *
 *	smtp_parse_path() parses the Reverse-path (verb SMTP_CMD_MAIL) or
 *	Forward-path (SMTP_CMD_RCPT) at the start of s (RFC 5321 4.1.2):
 *	"<>" (MAIL only), "<local@domain>", "<postmaster>" in any case
 *	(RCPT only, RFC 5321 4.5.1), each optionally after a source route
 *	"@a,@b:" that is checked and then ignored (RFC 5321 4.1.1.3, C).
 *	The local part is a Dot-string or a Quoted-string with
 *	quoted-pairs, at most SMTP_LOCAL_MAX octets once unquoted.  The
 *	domain is a hostname (labels of 1..SMTP_LABEL_MAX letters, digits
 *	and inner hyphens, no trailing dot, SMTP_DOMAIN_MAX octets in all)
 *	or an address literal "[192.0.2.1]" or "[IPv6:2001:db8::1]" as
 *	inet_pton() reads them (so no leading zeros in IPv4).  General
 *	address literals ("[tag:text]") are refused.  When smtputf8 is set
 *	the local part and the labels may also hold well-formed UTF-8 (no
 *	overlong forms, surrogates or code points past U+10FFFF); without
 *	it any 8-bit octet is an error.  p->addr gets the address as
 *	written between the brackets, route dropped, NUL-terminated ("" for
 *	"<>"); p->len its length, p->at the offset of its '@' (p->len when
 *	there is none) and p->flags the SMTP_PATH_* bits.  *used is the
 *	number of octets up to and including the '>', so that parameters
 *	may follow after a SP.  Any verb but MAIL and RCPT allows neither
 *	"<>" nor "<postmaster>".  SMTP_ERR_NEED_UTF8 comes only for an
 *	address that is right in every other respect; malformed UTF-8 is
 *	SMTP_ERR_UTF8 whether or not smtputf8 is set.
 *
 *	smtp_parse_params() parses the ESMTP parameters that follow a path
 *	(RFC 5321 4.1.2, esmtp-param *(SP esmtp-param)); leading, trailing
 *	and repeated SP are tolerated.  Keywords compare without regard to
 *	case.  MAIL takes SIZE=1*20DIGIT (RFC 1870), BODY=7BIT / 8BITMIME /
 *	BINARYMIME (RFC 6152, 3030), SMTPUTF8 (RFC 6531, no value),
 *	RET=FULL / HDRS and ENVID=xtext (RFC 3461 4.3, 4.4: at most 100
 *	printable octets decoded) and AUTH=xtext (RFC 4954 5, at most 500
 *	decoded).  RCPT takes NOTIFY=NEVER or a comma list of SUCCESS,
 *	FAILURE and DELAY (RFC 3461 4.1) and ORCPT=addr-type;xtext (RFC
 *	3461 4.2: addr-type an atom, at most 500 printable octets decoded).
 *	out->seen has an SMTP_PARAM_* bit for each parameter given; the
 *	xtext values stay raw (pointers into s), as the queue stores them
 *	as received, and have been checked to decode.  The parser does not
 *	know which extensions the server offers: the server compares
 *	out->seen with what it announced and replies 555 5.5.4 itself.
 *
 *	smtp_parse_args() is what the server calls for MAIL and RCPT: the
 *	path of cmd->arg, a SP, then the parameters.  For MAIL, smtputf8
 *	says the server offers SMTPUTF8; a UTF-8 path without the
 *	SMTPUTF8 parameter then fails with SMTP_ERR_NEED_UTF8.  For RCPT,
 *	smtputf8 says the transaction's MAIL carried SMTPUTF8.
 *
 *	smtp_xtext_decode() decodes xtext (RFC 3461 4: octets 33..126 but
 *	'+' and '=', or '+' and two upper-case hex digits) into dst, which
 *	it NUL-terminates; *outlen is the decoded length, which may hold
 *	NULs.  With dst NULL (and dstlen 0) it only checks and counts.
 *
 *	smtp_base64_decode() decodes one SASL response line (AUTH LOGIN's
 *	user name and password): strict base64 with padding and zero spare
 *	bits, octets of the RFC 4648 alphabet only, "=" for an empty
 *	response (RFC 4954 4), "*" for the client giving up.  The result
 *	must not hold NUL, since its users take it as a C string; dst is
 *	NUL-terminated.
 *	smtp_auth_plain() decodes an AUTH PLAIN response (RFC 4616):
 *	authzid NUL authcid NUL passwd, each well-formed UTF-8, authcid
 *	and passwd not empty, no further NUL.  An authzid that is not
 *	empty must equal the authcid octet for octet: we do not let one
 *	user act for another.  Each part goes NUL-terminated into its
 *	buffer.  Both wipe their work space with sodium_memzero(), and
 *	their output buffers too when they fail; the caller wipes the
 *	password when done with it.
 *
 *	smtp_sender_allowed() says whether a user whose --sender patterns
 *	are patterns (one a line, separated by '\n'; empty lines ignored)
 *	may use the reverse-path address (as smtp_parse_path() gave it):
 *	"user@dom" matches that address, "@dom" any local part at exactly
 *	dom (not below it), "*" any address; case does not matter in
 *	either part.  The null reverse-path "" is allowed for every
 *	authenticated user whatever the patterns, so that applications can
 *	send bounces and receipts; NULL patterns allow only it.
 *
 *	smtp_parse_reply() gives the reply for an error: the code, the
 *	RFC 3463 enhanced status and a short text (static strings, no
 *	CRLF).  The verb selects between 5.1.7 (MAIL) and 5.1.3 (RCPT) for
 *	address errors, and makes SMTP_ERR_SPACE a credentials failure for
 *	AUTH.  smtp_parse_strerror() is a longer text for logs.
 * DIAGNOSTICS
 *	Every int function but smtp_sender_allowed() returns SMTP_PARSE_OK
 *	(0) or one of the SMTP_ERR_* values below; the outputs are then
 *	unspecified, except that cmd->verb is set whenever the verb was
 *	read.  smtp_sender_allowed() returns 1 when allowed, else 0.
 *	From smtp_auth_plain(), SMTP_ERR_AUTH_SYNTAX, SMTP_ERR_AUTHZID and
 *	SMTP_ERR_SPACE (a part longer than its buffer) are failed
 *	authentications and should count against the client as such.
 *	smtp_parse_reply() gives 250 2.0.0 for SMTP_PARSE_OK, and "451
 *	4.3.0 Internal error" for numbers that are no error of ours.
 */
#ifndef SLUICE_SMTP_PARSE_H
#define SLUICE_SMTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define SMTP_CMD_MAX		512	/* octets, CRLF included */
#define SMTP_MAIL_EXTRA		652	/* 26 + 100 + 500 + 10 + 16 */
#define SMTP_RCPT_EXTRA		500
#define SMTP_AUTH_LINE_MAX	12288	/* RFC 4954 4, a SASL response line */
#define SMTP_PATH_MAX		512	/* p->addr, NUL included */
#define SMTP_LOCAL_MAX		64	/* RFC 5321 4.5.3.1.1 */
#define SMTP_DOMAIN_MAX		255	/* RFC 5321 4.5.3.1.2 */
#define SMTP_LABEL_MAX		63	/* RFC 1035 2.3.4 */
#define SMTP_ENVID_MAX		100	/* RFC 3461 4.4, decoded */
#define SMTP_ORCPT_MAX		500	/* RFC 3461 4.2, decoded */
#define SMTP_AUTHPARAM_MAX	500	/* RFC 4954 5, decoded */

enum smtp_verb {
	SMTP_CMD_UNKNOWN = 0,
	SMTP_CMD_EHLO,
	SMTP_CMD_HELO,
	SMTP_CMD_MAIL,
	SMTP_CMD_RCPT,
	SMTP_CMD_DATA,
	SMTP_CMD_BDAT,
	SMTP_CMD_RSET,
	SMTP_CMD_NOOP,
	SMTP_CMD_QUIT,
	SMTP_CMD_VRFY,
	SMTP_CMD_EXPN,
	SMTP_CMD_HELP,
	SMTP_CMD_STARTTLS,
	SMTP_CMD_AUTH
};

enum smtp_parse_err {
	SMTP_PARSE_OK = 0,

	/* the command line: 500 unless noted */
	SMTP_ERR_SYNTAX,	/* 5.5.2 empty line, SP before the verb */
	SMTP_ERR_TOOLONG,	/* 5.5.2 line too long */
	SMTP_ERR_NUL,		/* 5.5.2 NUL in the line */
	SMTP_ERR_CRLF,		/* 5.5.2 bare CR or LF in the line */
	SMTP_ERR_UNKNOWN,	/* 5.5.1 unknown verb */
	SMTP_ERR_CTRL,		/* 501 5.5.4 control octet in an argument */
	SMTP_ERR_8BIT,		/* 501 5.5.4 8-bit octet in an argument */
	SMTP_ERR_ARG_MISSING,	/* 501 5.5.4 verb needs an argument */
	SMTP_ERR_ARG_EXTRA,	/* 501 5.5.4 verb takes no argument */
	SMTP_ERR_ARG_SYNTAX,	/* 501 5.5.4 no FROM:/TO:, bad BDAT/AUTH */

	/* the path: 501 5.1.7 for MAIL, 501 5.1.3 for RCPT, unless noted */
	SMTP_ERR_PATH_SYNTAX,	/* no <...>, junk inside */
	SMTP_ERR_NULL_PATH,	/* <> for RCPT */
	SMTP_ERR_NO_DOMAIN,	/* no '@domain' (postmaster for MAIL) */
	SMTP_ERR_ROUTE,		/* bad source route */
	SMTP_ERR_LOCAL_SYNTAX,	/* bad Dot-string or Quoted-string */
	SMTP_ERR_LOCAL_TOOLONG,	/* local part > 64 unquoted */
	SMTP_ERR_DOMAIN_SYNTAX,	/* bad hostname */
	SMTP_ERR_DOMAIN_TOOLONG, /* domain > 255 */
	SMTP_ERR_LABEL_TOOLONG,	/* label > 63 */
	SMTP_ERR_LITERAL,	/* bad IPv4 / IPv6 address literal */
	SMTP_ERR_LITERAL_GENERAL, /* 553: general address literal */
	SMTP_ERR_UTF8,		/* malformed UTF-8 */
	SMTP_ERR_NEED_UTF8,	/* 553 5.6.7 UTF-8 without SMTPUTF8 */

	/* the parameters */
	SMTP_ERR_PARAM_SYNTAX,	/* 501 5.5.4 not keyword[=value] */
	SMTP_ERR_PARAM_UNKNOWN,	/* 555 5.5.4 keyword we do not know */
	SMTP_ERR_PARAM_VERB,	/* 555 5.5.4 keyword of the other verb */
	SMTP_ERR_PARAM_REPEAT,	/* 501 5.5.4 keyword given twice */
	SMTP_ERR_PARAM_VALUE,	/* 501 5.5.4 bad value */
	SMTP_ERR_XTEXT,		/* 501 5.5.4 value is not xtext */
	SMTP_ERR_SIZE_OVERFLOW,	/* 552 5.3.4 SIZE >= 2^64 */

	/* AUTH and decoding */
	SMTP_ERR_AUTH_CANCEL,	/* 501 5.7.0 "*": client cancels */
	SMTP_ERR_AUTH_TOOLONG,	/* 500 5.5.6 response line too long */
	SMTP_ERR_BASE64,	/* 501 5.5.2 not strict base64 */
	SMTP_ERR_AUTH_SYNTAX,	/* 535 5.7.8 not authzid\0authcid\0passwd */
	SMTP_ERR_AUTHZID,	/* 535 5.7.8 authzid is another user */
	SMTP_ERR_SPACE,		/* 501 5.5.4 (AUTH: 535 5.7.8) dst too small */

	SMTP_ERR_MAX
};

/* smtp_path.flags */
#define SMTP_PATH_NULL		0x01	/* <> */
#define SMTP_PATH_POSTMASTER	0x02	/* <postmaster>, no domain */
#define SMTP_PATH_UTF8		0x04	/* an 8-bit octet in the address */
#define SMTP_PATH_LITERAL	0x08	/* domain is an address literal */
#define SMTP_PATH_ROUTE		0x10	/* a source route was dropped */
#define SMTP_PATH_QUOTED	0x20	/* local part is a Quoted-string */

/* smtp_params.seen */
#define SMTP_PARAM_SIZE		0x01
#define SMTP_PARAM_BODY		0x02
#define SMTP_PARAM_SMTPUTF8	0x04
#define SMTP_PARAM_RET		0x08
#define SMTP_PARAM_ENVID	0x10
#define SMTP_PARAM_AUTH		0x20
#define SMTP_PARAM_NOTIFY	0x40
#define SMTP_PARAM_ORCPT	0x80

enum smtp_body {
	SMTP_BODY_NONE = 0,
	SMTP_BODY_7BIT,
	SMTP_BODY_8BITMIME,
	SMTP_BODY_BINARYMIME
};

enum smtp_ret {
	SMTP_RET_NONE = 0,
	SMTP_RET_FULL,
	SMTP_RET_HDRS
};

/* smtp_params.notify */
#define SMTP_NOTIFY_NEVER	0x01
#define SMTP_NOTIFY_SUCCESS	0x02
#define SMTP_NOTIFY_FAILURE	0x04
#define SMTP_NOTIFY_DELAY	0x08

struct smtp_cmd {
	enum smtp_verb	 verb;
	const char	*arg;		/* into line; NULL when none */
	size_t		 arglen;
	const char	*mech;		/* AUTH mechanism */
	size_t		 mechlen;
	const char	*resp;		/* AUTH initial response, or NULL */
	size_t		 resplen;
	uint64_t	 chunk;		/* BDAT chunk size */
	int		 last;		/* BDAT ... LAST */
};

struct smtp_path {
	char		 addr[SMTP_PATH_MAX];	/* as written, NUL-terminated */
	size_t		 len;
	size_t		 at;		/* offset of '@', len when none */
	unsigned int	 flags;		/* SMTP_PATH_* */
};

struct smtp_params {
	unsigned int	 seen;		/* SMTP_PARAM_* given */
	uint64_t	 size;
	enum smtp_body	 body;
	enum smtp_ret	 ret;
	unsigned int	 notify;	/* SMTP_NOTIFY_* */
	const char	*envid;		/* raw xtext, into the input */
	size_t		 envidlen;
	const char	*auth;		/* raw xtext */
	size_t		 authlen;
	const char	*orcpt_type;	/* addr-type atom, e.g. "rfc822" */
	size_t		 orcpt_typelen;
	const char	*orcpt;		/* raw xtext after the ';' */
	size_t		 orcptlen;
};

int		 smtp_parse_command(const char *, size_t, struct smtp_cmd *);
int		 smtp_parse_path(enum smtp_verb, const char *, size_t, int,
		    struct smtp_path *, size_t *);
int		 smtp_parse_params(const char *, size_t, enum smtp_verb,
		    struct smtp_params *);
int		 smtp_parse_args(const struct smtp_cmd *, int,
		    struct smtp_path *, struct smtp_params *);
int		 smtp_xtext_decode(const char *, size_t, char *, size_t,
		    size_t *);
int		 smtp_base64_decode(const char *, size_t, char *, size_t,
		    size_t *);
int		 smtp_auth_plain(const char *, size_t, char *, size_t, char *,
		    size_t, char *, size_t);
int		 smtp_sender_allowed(const char *, const char *);
const char	*smtp_verb_name(enum smtp_verb);
const char	*smtp_parse_strerror(int);
void		 smtp_parse_reply(int, enum smtp_verb, int *, const char **,
		    const char **);

#endif
