/*
 * NAME
 *	log - one line per event, to syslog and (optionally) stderr
 * SYNOPSIS
 *	#include "log.h"
 *
 *	void log_init(const char *name, int flags);
 *	void log_setname(const char *name);
 *	void log_info(const char *fmt, ...);
 *	void log_warn(const char *fmt, ...);	appends ": strerror(errno)"
 *	void log_warnx(const char *fmt, ...);
 *	void log_debug(const char *fmt, ...);	only with LOG_F_DEBUG
 *	void fatal(const char *fmt, ...);	log_warn, then exit(1)
 *	void fatalx(const char *fmt, ...);	log_warnx, then exit(1)
 *	log_assert(expr);			log and abort() if false
 *	size_t log_printable(char *dst, size_t dstlen, const char *src,
 *	    size_t srclen);
 * DESCRIPTION
 *	log_init() opens syslog (facility mail, pid in every line) under
 *	NAME.  LOG_F_STDERR copies every line to stderr, prefixed with the
 *	name and pid; LOG_F_DEBUG enables log_debug() lines.  Lines are cut
 *	at LOG_LINE_MAX bytes and never contain a newline.
 *
 *	log_printable() copies at most srclen bytes of src into dst with
 *	every byte outside printable ASCII written as \xNN, so that text a
 *	peer chose can be logged safely.  It always terminates dst and
 *	returns the length written.
 * DIAGNOSTICS
 *	Logging never fails visibly; errno is preserved by every call.
 */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include <stdarg.h>
#include <stddef.h>

#define LOG_F_STDERR	0x01
#define LOG_F_DEBUG	0x02
#define LOG_F_NOSYSLOG	0x04

#define LOG_LINE_MAX	1024

void	log_init(const char *, int);
void	log_setname(const char *);
int	log_getflags(void);
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	fatal(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	fatalx(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	log_vwrite(int, int, const char *, va_list)
	    __attribute__((format(printf, 3, 0)));
size_t	log_printable(char *, size_t, const char *, size_t);

#define log_assert(e)	do {						\
	if (!(e)) {							\
		log_warnx("%s:%d: assertion failed: %s",		\
		    __FILE__, __LINE__, #e);				\
		abort();						\
	}								\
} while (0)

#endif
