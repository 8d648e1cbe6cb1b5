/*
 * dns.c - c-ares on deliverd's event loop
 *
 * One channel per process, made in the privileged setup: ares_init
 * reads /etc/resolv.conf then, which the sandbox would hide later.
 * dns.servers, when given, replaces the servers it found; the system
 * list is kept so that a reload that drops dns.servers can go back to
 * it without reading the file again.
 *
 * c-ares tells us through its socket-state callback which descriptors
 * it wants read or written; each gets a persistent libevent event that
 * calls ares_process_fd().  One timer, re-armed from ares_timeout()
 * after every step, drives its retransmissions and time-outs.  Only
 * ares_query() is used: ares_getaddrinfo() reads /etc/hosts and
 * friends per lookup, which the sandbox forbids.
 *
 * A query's callback may run inside dns_query() itself (c-ares fails
 * some queries at once), so callers must not act on an answer from
 * within the callback; mx.c only records it and steps later.
 */
#include "config.h"

#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>

#include <stdlib.h>
#include <string.h>

#include <ares.h>
#include <event2/event.h>

#include "child.h"
#include "compat/compat.h"
#include "conf.h"
#include "deliverd.h"
#include "log.h"
#include "netaddr.h"
#include "xmalloc.h"

/*
 * Fixed, short: a resolver that does not answer in 2 s mostly never
 * will, and the message is retried later anyway.  With one server a
 * query gives up after 2 + 4 s; c-ares doubles the wait per round.
 */
#define DNS_TIMEOUT_MS		2000
#define DNS_TRIES		2

struct dns_sock {
	TAILQ_ENTRY(dns_sock)	 entry;
	ares_socket_t		 fd;
	struct event		*ev;
};

struct dns_req {
	struct dns_req		**slot;		/* the owner's pointer to us */
	dns_cb			*cb;		/* NULL: cancelled */
	void			*arg;
};

static ares_channel			 chan;
static int				 chan_ok;
static struct event			*dns_timer;
static TAILQ_HEAD(, dns_sock)		 dns_socks =
					    TAILQ_HEAD_INITIALIZER(dns_socks);
static struct ares_addr_port_node	*sys_servers;	/* from resolv.conf */
static int				 servers_dirty;
static struct ares_addr_port_node	*want_servers;	/* NULL: sys_servers */

static void	dns_sock_state(void *, ares_socket_t, int, int);
static void	dns_on_sock(evutil_socket_t, short, void *);
static void	dns_on_timer(evutil_socket_t, short, void *);
static void	dns_arm(void);
static void	dns_done(void *, int, int, unsigned char *, int);
static struct ares_addr_port_node *dns_servers_from(const struct conf *);
static void	dns_servers_free(struct ares_addr_port_node *);
static void	dns_servers_apply(void);

/*
 * dns_init - the channel, before the sandbox; -1 when c-ares cannot be
 * had at all (every job that needs DNS then defers)
 */
int
dns_init(const struct conf *conf)
{
	struct ares_options	 o;
	int			 r;

	if ((r = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
		log_warnx("deliverd: c-ares: %s", ares_strerror(r));
		return -1;
	}
	memset(&o, 0, sizeof(o));
	o.sock_state_cb = dns_sock_state;
	o.sock_state_cb_data = NULL;
	o.timeout = DNS_TIMEOUT_MS;
	o.tries = DNS_TRIES;
	/* a name is asked as it is: no search list, no ndots games */
	o.flags = ARES_FLAG_NOSEARCH;
	r = ares_init_options(&chan, &o, ARES_OPT_SOCK_STATE_CB |
	    ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS);
	if (r != ARES_SUCCESS) {
		log_warnx("deliverd: c-ares: %s", ares_strerror(r));
		return -1;
	}
	chan_ok = 1;
	if ((r = ares_get_servers_ports(chan, &sys_servers)) != ARES_SUCCESS)
		log_warnx("deliverd: c-ares: cannot read the system "
		    "resolvers: %s", ares_strerror(r));
	if ((dns_timer = evtimer_new(dlv_env->base, dns_on_timer,
	    NULL)) == NULL)
		fatalx("%s: evtimer_new", __func__);
	dns_reconfigure(conf);
	return 0;
}

/*
 * dns_reconfigure - dns.servers of a new configuration.  c-ares will
 * not change servers under running queries, so a change waits until
 * the channel is idle.
 */
void
dns_reconfigure(const struct conf *conf)
{
	if (!chan_ok)
		return;
	dns_servers_free(want_servers);
	want_servers = dns_servers_from(conf);
	servers_dirty = 1;
	dns_servers_apply();
}

static void
dns_servers_apply(void)
{
	struct ares_addr_port_node	*l;
	struct timeval			 tv;
	int				 r;

	/* ares_timeout() is NULL only when no query runs */
	if (!servers_dirty || ares_timeout(chan, NULL, &tv) != NULL)
		return;		/* queries running: later */
	l = want_servers != NULL ? want_servers : sys_servers;
	if ((r = ares_set_servers_ports(chan, l)) != ARES_SUCCESS)
		log_warnx("deliverd: c-ares: cannot set the DNS servers: %s",
		    ares_strerror(r));
	servers_dirty = 0;
}

/* dns_servers_from - dns.servers as a c-ares list; NULL when none */
static struct ares_addr_port_node *
dns_servers_from(const struct conf *conf)
{
	struct ares_addr_port_node	*head = NULL, **tail = &head, *n;
	struct sockaddr_storage		 ss;
	socklen_t			 sslen;
	size_t				 i;

	for (i = 0; i < conf->dns.nservers; i++) {
		const struct netaddr_hostport *hp = &conf->dns.servers[i];

		if (netaddr_parse_ip(hp->host, &ss, &sslen) == -1)
			continue;	/* conf.c allows only literals */
		n = xcalloc(1, sizeof(*n));
		n->family = ss.ss_family;
		if (ss.ss_family == AF_INET)
			memcpy(&n->addr.addr4,
			    &((struct sockaddr_in *)&ss)->sin_addr,
			    sizeof(n->addr.addr4));
		else
			memcpy(&n->addr.addr6,
			    &((struct sockaddr_in6 *)&ss)->sin6_addr,
			    sizeof(n->addr.addr6));
		n->udp_port = hp->port;
		n->tcp_port = hp->port;
		*tail = n;
		tail = &n->next;
	}
	return head;
}

static void
dns_servers_free(struct ares_addr_port_node *l)
{
	struct ares_addr_port_node	*next;

	for (; l != NULL; l = next) {
		next = l->next;
		free(l);
	}
}

/*
 * dns_query - ask for name/type (ns_t_mx, ns_t_a, ns_t_aaaa); *slot
 * holds the request until cb runs (then NULL) or dns_cancel(slot).
 * Without a channel cb runs at once with ARES_ENOTINITIALIZED.
 */
void
dns_query(struct dns_req **slot, const char *name, int type, dns_cb *cb,
    void *arg)
{
	struct dns_req	*q;

	if (!chan_ok) {
		*slot = NULL;
		cb(arg, ARES_ENOTINITIALIZED, NULL, 0);
		return;
	}
	dns_servers_apply();
	q = xcalloc(1, sizeof(*q));
	q->slot = slot;
	q->cb = cb;
	q->arg = arg;
	*slot = q;
	log_debug("deliverd: DNS query %s %s", name, type == ns_t_mx ? "MX" :
	    type == ns_t_a ? "A" : type == ns_t_aaaa ? "AAAA" : "?");
	ares_query(chan, name, ns_c_in, type, dns_done, q);
	dns_arm();
}

/* dns_cancel - its callback will not run; the query runs out alone */
void
dns_cancel(struct dns_req **slot)
{
	if (*slot == NULL)
		return;
	(*slot)->slot = NULL;
	(*slot)->cb = NULL;
	*slot = NULL;
}

static void
dns_done(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_req	*q = arg;

	if (q->slot != NULL)
		*q->slot = NULL;
	if (q->cb != NULL)
		q->cb(q->arg, status, abuf, alen);
	free(q);
}

/*
 * dns_sock_state - c-ares wants fd read and/or written, or no longer
 * watched at all (it is about to close it)
 */
static void
dns_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns_sock	*s;
	short		 what = EV_PERSIST;

	TAILQ_FOREACH(s, &dns_socks, entry)
		if (s->fd == fd)
			break;
	if (!readable && !writable) {
		if (s != NULL) {
			TAILQ_REMOVE(&dns_socks, s, entry);
			event_free(s->ev);
			free(s);
		}
		return;
	}
	if (s == NULL) {
		s = xcalloc(1, sizeof(*s));
		s->fd = fd;
		TAILQ_INSERT_TAIL(&dns_socks, s, entry);
	} else {
		event_free(s->ev);
	}
	if (readable)
		what |= EV_READ;
	if (writable)
		what |= EV_WRITE;
	if ((s->ev = event_new(dlv_env->base, fd, what, dns_on_sock,
	    s)) == NULL)
		fatalx("%s: event_new", __func__);
	event_add(s->ev, NULL);
}

static void
dns_on_sock(evutil_socket_t fd, short ev, void *arg)
{
	/* arg may be freed by c-ares' callback inside: only fd is used */
	ares_process_fd(chan, (ev & EV_READ) ? fd : ARES_SOCKET_BAD,
	    (ev & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	dns_arm();
}

static void
dns_on_timer(evutil_socket_t fd, short ev, void *arg)
{
	ares_process_fd(chan, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_arm();
}

/* dns_arm - the timer for c-ares' next time-out, or none when idle */
static void
dns_arm(void)
{
	struct timeval	 tv, *tvp;

	if ((tvp = ares_timeout(chan, NULL, &tv)) == NULL) {
		evtimer_del(dns_timer);
		return;
	}
	evtimer_add(dns_timer, tvp);
}

/* dns_strerror - a c-ares status for people */
const char *
dns_strerror(int status)
{
	switch (status) {
	case ARES_ETIMEOUT:
		return "no answer from the DNS servers (timed out)";
	case ARES_ECONNREFUSED:
		return "the DNS servers refused the connection";
	case ARES_ESERVFAIL:
		return "DNS server failure (SERVFAIL)";
	case ARES_EREFUSED:
		return "the DNS server refused the query";
	default:
		return ares_strerror(status);
	}
}
