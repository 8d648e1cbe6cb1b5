/*
 * fuzz_smtp_auth - the SASL response decoders: smtp_base64_decode()
 * (AUTH LOGIN) and smtp_auth_plain() (AUTH PLAIN).
 *
 * The first input octet picks the mode.  Even: the rest is a response
 * line as a client sends it.  Odd: the rest is a decoded message,
 * which the target encodes first, so that the decoders also see valid
 * base64 and the PLAIN splitter gets real work.
 *
 * Strict base64 has one encoding for each octet string, so whatever
 * decodes must encode back to the very input; PLAIN parts must join
 * back into the message with two NULs; a failure leaves the outputs
 * zeroed.  Every line is a block of exactly its length.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "smtp_parse.h"

#define RAW_MAX	4096	/* encoded, well under SMTP_AUTH_LINE_MAX */
#define PART	256	/* each PLAIN output buffer */

int		LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static char	*exact_copy(const void *, size_t);
static int	 all_zero(const char *, size_t);
static void	 check_same_b64(const char *, size_t, const void *, size_t);
static void	 check_login(const char *, size_t);
static void	 check_plain(const char *, size_t, const uint8_t *, size_t);

/* exact_copy - n bytes in a block of exactly n (one when n is 0) */
static char *
exact_copy(const void *p, size_t n)
{
	char	*q;

	if ((q = malloc(n > 0 ? n : 1)) == NULL)
		abort();
	memcpy(q, p, n);
	return q;
}

static int
all_zero(const char *p, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (p[i] != '\0')
			return 0;
	return 1;
}

/* check_same_b64 - bin encodes to exactly the line it came from */
static void
check_same_b64(const char *line, size_t len, const void *bin, size_t n)
{
	char	*enc;
	size_t	 elen = sodium_base64_encoded_len(n,
		    sodium_base64_VARIANT_ORIGINAL);

	/* "=" is the one spelling of nothing that is not "" */
	if (n == 0 && len == 1 && line[0] == '=')
		return;
	if ((enc = malloc(elen)) == NULL)
		abort();
	sodium_bin2base64(enc, elen, bin, n, sodium_base64_VARIANT_ORIGINAL);
	if (strlen(enc) != len || memcmp(enc, line, len) != 0)
		abort();
	free(enc);
}

/* check_login - one AUTH LOGIN line, with room and with too little */
static void
check_login(const char *line, size_t len)
{
	char	*dst;
	size_t	 room = len + 1, outlen, need;
	int	 rc;

	if ((dst = malloc(room)) == NULL)
		abort();
	rc = smtp_base64_decode(line, len, dst, room, &outlen);
	if (rc < 0 || rc >= SMTP_ERR_MAX)
		abort();
	if (rc == SMTP_PARSE_OK) {
		if (outlen >= room || dst[outlen] != '\0' ||
		    strlen(dst) != outlen)
			abort();
		check_same_b64(line, len, dst, outlen);
		/* exactly the room it needs, then one octet less */
		need = outlen + 1;
		if (smtp_base64_decode(line, len, dst, need, &outlen) !=
		    SMTP_PARSE_OK || outlen + 1 != need)
			abort();
		if (smtp_base64_decode(line, len, dst, need - 1, &outlen) !=
		    SMTP_ERR_SPACE || outlen != 0 || !all_zero(dst, need - 1))
			abort();
	} else if (!all_zero(dst, room))
		abort();
	if (len == 1 && line[0] == '*' && rc != SMTP_ERR_AUTH_CANCEL)
		abort();
	free(dst);
}

/*
 * check_plain - one AUTH PLAIN line; raw is the message it encodes
 * when the target made it, else NULL
 */
static void
check_plain(const char *line, size_t len, const uint8_t *raw, size_t rawlen)
{
	char	 z[PART], l[PART], pw[PART], *joined;
	size_t	 zl, ll, pl, i, nuls = 0;
	int	 rc;

	rc = smtp_auth_plain(line, len, z, sizeof(z), l, sizeof(l), pw,
	    sizeof(pw));
	if (rc < 0 || rc >= SMTP_ERR_MAX)
		abort();
	if (raw != NULL)
		for (i = 0; i < rawlen; i++)
			nuls += raw[i] == 0;
	if (rc != SMTP_PARSE_OK) {
		if (!all_zero(z, sizeof(z)) || !all_zero(l, sizeof(l)) ||
		    !all_zero(pw, sizeof(pw)))
			abort();
		/* a valid encoding never fails as base64 */
		if (raw != NULL && rc == SMTP_ERR_BASE64)
			abort();
		return;
	}
	zl = strlen(z);
	ll = strlen(l);
	pl = strlen(pw);
	if (ll == 0 || pl == 0 || (zl != 0 && strcmp(z, l) != 0))
		abort();
	if (raw != NULL && nuls != 2)
		abort();
	if ((joined = malloc(zl + ll + pl + 2)) == NULL)
		abort();
	memcpy(joined, z, zl);
	joined[zl] = '\0';
	memcpy(joined + zl + 1, l, ll);
	joined[zl + 1 + ll] = '\0';
	memcpy(joined + zl + ll + 2, pw, pl);
	check_same_b64(line, len, joined, zl + ll + pl + 2);
	if (raw != NULL && (rawlen != zl + ll + pl + 2 ||
	    memcmp(raw, joined, rawlen) != 0))
		abort();
	free(joined);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t	*raw = NULL;
	size_t		 rawlen = 0, len;
	char		*line, *enc;

	if (size == 0)
		return 0;
	if (data[0] & 1) {
		raw = data + 1;
		rawlen = size - 1;
		if (rawlen > RAW_MAX / 4 * 3 - 3)
			return 0;
		len = sodium_base64_encoded_len(rawlen,
		    sodium_base64_VARIANT_ORIGINAL);
		if ((enc = malloc(len)) == NULL)
			abort();
		sodium_bin2base64(enc, len, raw, rawlen,
		    sodium_base64_VARIANT_ORIGINAL);
		len = strlen(enc);
		line = exact_copy(enc, len);
		free(enc);
	} else {
		len = size - 1;
		line = exact_copy(data + 1, len);
	}
	check_login(line, len);
	check_plain(line, len, raw, rawlen);
	free(line);
	return 0;
}
