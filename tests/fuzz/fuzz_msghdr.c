/*
 * fuzz_msghdr - any bytes as a message: msghdr_end() must stop at a
 * line start within the input, with only fields and their folds before
 * it, and msghdr_has() must agree with a plain model for a fixed set of
 * names and for every name the header itself holds.
 *
 * Input and header are each copied into a block of exactly their
 * length, so a read one byte past either shows under ASan.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "msghdr.h"

#define NAME_MAX_TRY	64	/* field names of the input checked */

int		LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static char	*exact_copy(const uint8_t *, size_t);
static size_t	 line_len(const char *, size_t, size_t);
static size_t	 field_name(const char *, size_t);
static int	 model_has(const char *, size_t, const char *, size_t);
static void	 check_end(const char *, size_t, size_t);
static void	 check_has(const char *, size_t);

static const char	*names[] = {
	"From", "To", "Cc", "Date", "Date-Received", "Message-ID",
	"Subject", "Received", "X", "x", "", ":", "From:", " From", "A:B",
};

/* exact_copy - n bytes in a block of exactly n (one when n is 0) */
static char *
exact_copy(const uint8_t *p, size_t n)
{
	char	*q;

	if ((q = malloc(n > 0 ? n : 1)) == NULL)
		abort();
	memcpy(q, p, n);
	return q;
}

/* line_len - bytes of the line at off, its LF included if there is one */
static size_t
line_len(const char *p, size_t n, size_t off)
{
	const char	*nl = memchr(p + off, '\n', n - off);

	return nl != NULL ? (size_t)(nl - (p + off)) + 1 : n - off;
}

/* field_name - length of "name" in a line "name:", else 0 */
static size_t
field_name(const char *p, size_t len)
{
	size_t	 i;

	for (i = 0; i < len && p[i] != ':'; i++)
		if ((unsigned char)p[i] <= ' ' || (unsigned char)p[i] >= 0x7f)
			return 0;
	return i < len ? i : 0;
}

/* model_has - a line of the first hlen bytes starts "name:" */
static int
model_has(const char *p, size_t hlen, const char *name, size_t nlen)
{
	size_t	 off, len;

	if (nlen == 0)
		return 0;
	for (off = 0; off < hlen; off += len) {
		len = line_len(p, hlen, off);
		if (field_name(p + off, len) == nlen &&
		    strncasecmp(p + off, name, nlen) == 0)
			return 1;
	}
	return 0;
}

/* check_end - the promises of msghdr_end() about end */
static void
check_end(const char *p, size_t n, size_t end)
{
	size_t	 off, len;

	if (end > n)
		abort();
	/* at a line start, or the whole input */
	if (end != 0 && end != n && p[end - 1] != '\n')
		abort();
	/* before it: a field first, then fields and folds */
	for (off = 0; off < end; off += len) {
		len = line_len(p, end, off);
		if (off > 0 && (p[off] == ' ' || p[off] == '\t'))
			continue;
		if (field_name(p + off, len) == 0)
			abort();
	}
	/* at it: the empty line, or a line that is neither */
	if (end < n && p[end] != '\r' && p[end] != '\n') {
		len = line_len(p, n, end);
		if (end > 0 && (p[end] == ' ' || p[end] == '\t'))
			abort();
		if (field_name(p + end, len) != 0)
			abort();
	}
}

/* check_has - hlen bytes alone, in a block of exactly that size */
static void
check_has(const char *p, size_t hlen)
{
	char	 name[NAME_MAX_TRY + 1];
	size_t	 i, off, len, nlen, tried = 0;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (msghdr_has(p, hlen, names[i]) !=
		    model_has(p, hlen, names[i], strlen(names[i])))
			abort();
	/* every field the header holds is found by its own name */
	for (off = 0; off < hlen && tried < 16; off += len) {
		len = line_len(p, hlen, off);
		nlen = field_name(p + off, len);
		if (nlen == 0 || nlen > NAME_MAX_TRY)
			continue;
		memcpy(name, p + off, nlen);
		name[nlen] = '\0';
		if (!msghdr_has(p, hlen, name))
			abort();
		tried++;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	*p, *h;
	size_t	 end;

	p = exact_copy(data, size);
	end = msghdr_end(p, size);
	check_end(p, size, end);
	/* the header section alone is all header */
	if (msghdr_end(p, end) != end)
		abort();

	h = exact_copy(data, end);
	check_has(h, end);
	free(h);
	/* msghdr_has() takes any length, not only one msghdr_end() gave */
	check_has(p, size);
	free(p);
	return 0;
}
