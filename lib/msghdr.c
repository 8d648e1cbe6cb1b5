/*
 * msghdr.c - find the header section of a message and fields in it
 */
#include "config.h"

#include <string.h>
#include <strings.h>

#include "msghdr.h"

static size_t	msghdr_name_len(const char *, size_t);

/* msghdr_name_len - length of "name" when the line starts "name:", else 0 */
static size_t
msghdr_name_len(const char *p, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		if (p[i] == ':')
			return i;
		/* RFC 5322 3.6.8: ftext is %d33-57 / %d59-126 */
		if ((unsigned char)p[i] < 33 || (unsigned char)p[i] > 126)
			return 0;
	}
	return 0;
}

size_t
msghdr_end(const char *p, size_t n)
{
	const char	*nl;
	size_t		 off = 0, len;

	while (off < n) {
		nl = memchr(p + off, '\n', n - off);
		len = nl != NULL ? (size_t)(nl - (p + off)) + 1 : n - off;
		if (p[off] == '\r' || p[off] == '\n')
			return off;		/* the empty line */
		if (off > 0 && (p[off] == ' ' || p[off] == '\t')) {
			off += len;		/* folded continuation */
			continue;
		}
		if (msghdr_name_len(p + off, len) == 0)
			return off;		/* body without a separator */
		off += len;
	}
	return n;
}

int
msghdr_has(const char *p, size_t hlen, const char *name)
{
	const char	*nl;
	size_t		 off = 0, len, nlen = strlen(name);

	/* msghdr_name_len() says 0 for every line that is not a field */
	if (nlen == 0)
		return 0;
	while (off < hlen) {
		nl = memchr(p + off, '\n', hlen - off);
		len = nl != NULL ? (size_t)(nl - (p + off)) + 1 : hlen - off;
		if (msghdr_name_len(p + off, len) == nlen &&
		    strncasecmp(p + off, name, nlen) == 0)
			return 1;
		off += len;
	}
	return 0;
}
