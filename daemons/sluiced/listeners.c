/*
 * listeners.c - bind every configured listener, as root, before the
 * children exist; smtpd receives the sockets over its channel.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "netaddr.h"
#include "sluiced.h"
#include "xmalloc.h"

#define LISTEN_BACKLOG	511

/*
 * listeners_open - one socket per listener.  An IPv6 socket is v6-only,
 * so "::" and "0.0.0.0" on the same port are two listeners, as written.
 */
int
listeners_open(const struct conf *c, int **fdsp, char *err, size_t errlen)
{
	const struct conf_listen	*l;
	char				 addr[64];
	int				*fds, fd, on = 1;
	size_t				 i;

	fds = xcalloc(c->nlisten, sizeof(*fds));
	for (i = 0; i < c->nlisten; i++)
		fds[i] = -1;
	for (i = 0; i < c->nlisten; i++) {
		l = &c->listen[i];
		netaddr_ntop((const struct sockaddr *)&l->ss, addr,
		    sizeof(addr));
		fd = socket(l->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC |
		    SOCK_NONBLOCK, 0);
		if (fd == -1) {
			snprintf(err, errlen, "cannot listen on %s port %d: "
			    "socket: %s", addr, l->port, strerror(errno));
			goto fail;
		}
		fds[i] = fd;
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on,
		    sizeof(on)) == -1 ||
		    (l->ss.ss_family == AF_INET6 && setsockopt(fd,
		    IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) == -1) ||
		    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on,
		    sizeof(on)) == -1) {
			snprintf(err, errlen, "cannot listen on %s port %d: "
			    "setsockopt: %s", addr, l->port, strerror(errno));
			goto fail;
		}
		if (bind(fd, (const struct sockaddr *)&l->ss, l->sslen) == -1 ||
		    listen(fd, LISTEN_BACKLOG) == -1) {
			snprintf(err, errlen, "cannot listen on %s port %d: %s",
			    addr, l->port, strerror(errno));
			goto fail;
		}
		log_debug("listening on %s port %d (tls %s)", addr, l->port,
		    conf_tls_mode_str(l->tls));
	}
	*fdsp = fds;
	return 0;
 fail:
	listeners_close(fds, c->nlisten);
	return -1;
}

void
listeners_close(int *fds, size_t n)
{
	size_t	 i;

	if (fds == NULL)
		return;
	for (i = 0; i < n; i++)
		if (fds[i] != -1)
			close(fds[i]);
	free(fds);
}
