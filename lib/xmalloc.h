/*
 * NAME
 *	xmalloc - allocators that never return NULL
 * SYNOPSIS
 *	#include "xmalloc.h"
 *
 *	void *xmalloc(size_t);
 *	void *xcalloc(size_t nmemb, size_t size);
 *	void *xreallocarray(void *p, size_t nmemb, size_t size);
 *	char *xstrdup(const char *);
 *	int xasprintf(char **ret, const char *fmt, ...);
 * DESCRIPTION
 *	For small internal structures whose size no peer controls.  Sizes
 *	a peer chooses are checked against their cap before they get here.
 * DIAGNOSTICS
 *	Out of memory or a multiplication overflow is fatal().
 */
#ifndef SLUICE_XMALLOC_H
#define SLUICE_XMALLOC_H

#include <stddef.h>

void	*xmalloc(size_t);
void	*xcalloc(size_t, size_t);
void	*xreallocarray(void *, size_t, size_t);
char	*xstrdup(const char *);
int	 xasprintf(char **, const char *, ...)
	    __attribute__((format(printf, 2, 3)));

#endif
