/*
 * log.c - syslog and stderr logging, one line per event
 */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <paths.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static char	 log_name[32] = "sluice";
static int	 log_flags = LOG_F_STDERR;
static int	 log_opened;

static int	log_stderr_is_journal(void);

/*
 * log_stderr_is_journal - systemd names the stream it connects to
 * stderr in JOURNAL_STREAM as "device:inode"
 */
static int
log_stderr_is_journal(void)
{
	const char		*js = getenv("JOURNAL_STREAM");
	struct stat		 st;
	unsigned long long	 dev, ino;

	if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2 ||
	    fstat(STDERR_FILENO, &st) == -1)
		return 0;
	return (unsigned long long)st.st_dev == dev &&
	    (unsigned long long)st.st_ino == ino;
}

/* log_init - choose the program name and destinations */
void
log_init(const char *name, int flags)
{
	log_setname(name);
	/*
	 * With no syslog socket at all (a container, a test machine) the
	 * C library would try to connect again for every line; when the
	 * lines go to stderr anyway, leave syslog out.
	 */
	if ((flags & LOG_F_STDERR) && access(_PATH_LOG, F_OK) == -1)
		flags |= LOG_F_NOSYSLOG;
	/*
	 * Under systemd stderr may be the journal itself, which also gets
	 * every syslog line: each would be there twice.  syslog keeps the
	 * priority and the process name, so it stays.
	 */
	if ((flags & LOG_F_STDERR) && !(flags & LOG_F_NOSYSLOG) &&
	    log_stderr_is_journal())
		flags &= ~LOG_F_STDERR;
	log_flags = flags;
	if (!(flags & LOG_F_NOSYSLOG)) {
		/*
		 * LOG_NDELAY connects to /dev/log now, before a chroot
		 * takes the socket out of reach.
		 */
		if (log_opened)
			closelog();
		openlog(log_name, LOG_PID | LOG_NDELAY, LOG_MAIL);
		log_opened = 1;
	}
}

void
log_setname(const char *name)
{
	snprintf(log_name, sizeof(log_name), "%s", name);
}

int
log_getflags(void)
{
	return log_flags;
}

/* log_vwrite - format one event; strip newlines a format may have let in */
void
log_vwrite(int pri, int with_errno, const char *fmt, va_list ap)
{
	char	 line[LOG_LINE_MAX];
	int	 saved_errno = errno;
	size_t	 n;
	char	*p;

	vsnprintf(line, sizeof(line), fmt, ap);
	if (with_errno) {
		n = strlen(line);
		snprintf(line + n, sizeof(line) - n, ": %s",
		    strerror(saved_errno));
	}
	for (p = line; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';

	if (!(log_flags & LOG_F_NOSYSLOG))
		syslog(pri, "%s", line);
	if (log_flags & LOG_F_STDERR) {
		struct timespec	 ts;
		struct tm	 tm;
		char		 stamp[32];

		clock_gettime(CLOCK_REALTIME, &ts);
		localtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ld %s[%ld]: %s\n", stamp,
		    ts.tv_nsec / 1000000, log_name, (long)getpid(), line);
	}
	errno = saved_errno;
}

void
log_info(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vwrite(LOG_INFO, 0, fmt, ap);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vwrite(LOG_WARNING, 1, fmt, ap);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vwrite(LOG_WARNING, 0, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list	 ap;

	if (!(log_flags & LOG_F_DEBUG))
		return;
	va_start(ap, fmt);
	log_vwrite(LOG_DEBUG, 0, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vwrite(LOG_CRIT, 1, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vwrite(LOG_CRIT, 0, fmt, ap);
	va_end(ap);
	exit(1);
}

/* log_printable - make peer-chosen bytes safe for a log line */
size_t
log_printable(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	static const char	 hex[] = "0123456789abcdef";
	size_t			 i, o = 0;
	unsigned char		 c;

	if (dstlen == 0)
		return 0;
	for (i = 0; i < srclen; i++) {
		c = (unsigned char)src[i];
		if (c >= 0x20 && c < 0x7f && c != '\\') {
			if (o + 1 >= dstlen)
				break;
			dst[o++] = (char)c;
		} else {
			if (o + 4 >= dstlen)
				break;
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 0xf];
		}
	}
	dst[o] = '\0';
	return o;
}
