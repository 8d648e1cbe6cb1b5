/*
 * strlcat - append to a string in a sized buffer, always terminating it;
 * returns the length it tried to create.
 */
#include "compat/compat.h"

#ifndef HAVE_STRLCAT
#include <string.h>

size_t
strlcat(char *dst, const char *src, size_t size)
{
	size_t	 dlen = strnlen(dst, size);

	if (dlen == size)
		return size + strlen(src);
	return dlen + strlcpy(dst + dlen, src, size - dlen);
}
#else
typedef int strlcat_unused;
#endif
