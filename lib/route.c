/*
 * route.c - match a recipient domain against delivery.routes
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "compat/compat.h"
#include "conf.h"
#include "route.h"

static int	route_pattern(const char *, const char *, size_t);

/* route_pattern - does pattern match the len bytes of name? */
static int
route_pattern(const char *pattern, const char *name, size_t len)
{
	size_t	 plen = strlen(pattern);

	if (plen > 0 && pattern[plen - 1] == '.')
		plen--;
	if (strcmp(pattern, "*") == 0)
		return 1;
	if (name[0] == '[')
		return 0;	/* an address literal has no domain to match */
	if (plen > 2 && pattern[0] == '*' && pattern[1] == '.') {
		/* "*.example.org": below example.org, not example.org */
		plen -= 1;
		return len > plen && strncasecmp(name + len - plen,
		    pattern + 1, plen) == 0;
	}
	return len == plen && strncasecmp(name, pattern, len) == 0;
}

int
route_match(const struct conf *conf, const char *domain)
{
	const struct conf_route	*r;
	size_t			 i, j, len = strlen(domain);

	if (len > 0 && domain[len - 1] == '.')
		len--;
	if (len == 0)
		return -1;
	for (i = 0; i < conf->delivery.nroutes; i++) {
		r = &conf->delivery.routes[i];
		for (j = 0; j < r->ndomains; j++)
			if (route_pattern(r->domains[j], domain, len))
				return (int)i;
	}
	return -1;
}

const char *
route_domain(const char *address)
{
	const char	*at = strrchr(address, '@');

	return at != NULL ? at + 1 : "";
}

int
route_destination(const struct conf *conf, int route, const char *domain,
    char *dst, size_t dstlen)
{
	const struct conf_route	*r = &conf->delivery.routes[route];
	size_t			 i, len;

	if (!r->mx) {
		if (strlcpy(dst, r->smarthost, dstlen) >= dstlen)
			return -1;
		return 0;
	}
	len = strlen(domain);
	if (len > 0 && domain[len - 1] == '.')
		len--;
	if (len >= dstlen)
		return -1;
	for (i = 0; i < len; i++)
		dst[i] = (char)tolower((unsigned char)domain[i]);
	dst[len] = '\0';
	return 0;
}

void
route_label(const struct conf *conf, int route, char *dst, size_t dstlen)
{
	const struct conf_route	*r = &conf->delivery.routes[route];

	snprintf(dst, dstlen, "%s", r->mx ? "mx" : r->smarthost);
}
