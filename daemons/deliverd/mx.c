/*
 * mx.c - where a job goes, and one address after another until a
 * server takes the session
 *
 * An MX route looks up the MX records of the recipient domain (RFC
 * 5321 5.1): best preference first, equal preferences shuffled; no MX
 * records but the name exists: the domain itself, preference 0 (the
 * implicit MX); a lone MX "." is a null MX (RFC 7505) and bounces with
 * 556 5.1.10; a name that does not exist bounces with 550 5.1.2; any
 * other DNS failure defers with 451 4.4.3.  A smarthost route written
 * as a name resolves through the same resolver; as a literal (or
 * "localhost") it needs none.
 *
 * Each host's addresses come from A and AAAA lookups asked together
 * when its turn comes, IPv4 first.  smtp_client.c connects to one
 * address at a time; a failed connection or a greeting that is not
 * 2xx brings it back here (dlv_path_next) for the next address, then
 * the next host.  When all are used up the last failure is every
 * recipient's outcome; an MX route whose hosts all have no address at
 * all (NXDOMAIN or no data, nothing temporary) bounces with 5.4.4.
 *
 * Nothing is done inside a DNS callback or a failing session: they
 * record what happened and wake the job's step event, which moves on.
 * This keeps c-ares and libevent callbacks from re-entering each other.
 */
#include "config.h"

#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ares.h>
#include <event2/event.h>
#include <sodium.h>

#include "child.h"
#include "compat/compat.h"
#include "conf.h"
#include "deliverd.h"
#include "log.h"
#include "netaddr.h"
#include "queue_proto.h"
#include "xmalloc.h"

/* MX records looked at before the best DLV_MX_HOSTS are kept */
#define PATH_MX_SEEN		64

struct dlv_host {
	char		 name[NETADDR_HOST_MAX + 1];
	int		 pref;
	uint32_t	 key;		/* shuffles equal preferences */
};

struct dlv_path {
	struct dlv_job		*job;
	struct dlv_params	 params;
	int			 mx;		/* an MX route */
	int			 port;
	char			 dest[NETADDR_HOST_MAX + 1];
	struct event		*ev_step;
	struct dns_req		*q_mx, *q_a, *q_aaaa;
	int			 pending;	/* A/AAAA answers to come */

	struct dlv_host		 hosts[DLV_MX_HOSTS];
	size_t			 nhosts;
	size_t			 host;		/* being resolved or tried */
	int			 resolved;	/* its addresses are known */
	struct sockaddr_storage	 a4[DLV_HOST_ADDRS], a6[DLV_HOST_ADDRS];
	size_t			 n4, n6;
	struct sockaddr_storage	 addrs[DLV_HOST_ADDRS * 2];
	size_t			 naddrs, addr;
	int			 tries;		/* connections made */
	int			 soft;		/* a lookup failed for now */

	int			 final;		/* outcome below for all */
	int			 code;		/* 0: no failure yet */
	char			 status[DLV_STATUS_MAX];
	char			 text[QP_MAX_TEXT + 1];
};

static void	path_step(evutil_socket_t, short, void *);
static void	path_wake(struct dlv_path *);
static void	path_set(struct dlv_path *, int, int, const char *,
		    const char *, ...) __attribute__((format(printf, 5, 6)));
static void	path_mx_cb(void *, int, const unsigned char *, int);
static void	path_a_cb(void *, int, const unsigned char *, int);
static void	path_aaaa_cb(void *, int, const unsigned char *, int);
static void	path_addr_cb(struct dlv_path *, int, int,
		    const unsigned char *, int);
static void	path_resolve(struct dlv_path *);
static void	path_exhausted(struct dlv_path *);
static int	path_literal(const char *, struct sockaddr_storage *);
static int	host_cmp(const void *, const void *);
static int	path_8bit(const char *);

/*
 * dlv_path_start - find where the job goes and start the first try;
 * 0 when it runs (the job ends on its own), -1 when every recipient
 * has its outcome already
 */
int
dlv_path_start(struct dlv_job *j, const struct conf *conf,
    const struct conf_route *route)
{
	struct dlv_path		*p;
	struct dlv_params	*pr;
	const struct dlv_secret	*sec;
	const char		*host;

	if (route->auth_user != NULL) {
		sec = dlv_secret_get(route->auth_password_file);
		if (sec == NULL || sec->value == NULL) {
			dlv_job_fail_all(j, 451, "4.7.0", "cannot authenticate "
			    "to %s: auth_password_file %s",
			    route->smarthost != NULL ? route->smarthost :
			    j->dest, sec != NULL ? sec->error :
			    "was not read at start");
			return -1;
		}
	}
	host = route->mx ? j->dest : route->relay.host;
	if (strlen(host) > NETADDR_HOST_MAX) {
		dlv_job_fail_all(j, 550, "5.1.2", "destination %.64s... is "
		    "too long for a domain name", host);
		return -1;
	}

	p = xcalloc(1, sizeof(*p));
	p->job = j;
	pr = &p->params;
	pr->tls = route->tls;
	strlcpy(pr->helo, route->helo != NULL ? route->helo : conf->hostname,
	    sizeof(pr->helo));
	if (route->smarthost != NULL)
		pr->smarthost = xstrdup(route->smarthost);
	if (route->auth_user != NULL) {
		pr->auth_user = xstrdup(route->auth_user);
		pr->auth_password_file = xstrdup(route->auth_password_file);
	}
	pr->t_connect = conf->timeouts.connect;
	pr->t_cmd = conf->timeouts.upstream_command;
	pr->t_data = conf->timeouts.data_end != 0 ? conf->timeouts.data_end :
	    600;
	pr->max_msgs = route->messages_per_connection;
	pr->idle_timeout = route->idle_timeout;
	p->mx = route->mx;
	p->port = route->mx ? DLV_MX_PORT : route->relay.port;
	strlcpy(p->dest, host, sizeof(p->dest));
	if ((p->ev_step = event_new(dlv_env->base, -1, 0, path_step,
	    p)) == NULL)
		fatalx("%s: event_new", __func__);
	j->path = p;

	/* one host: a literal, [literal] (RFC 5321 4.1.3), or localhost */
	strlcpy(p->hosts[0].name, host, sizeof(p->hosts[0].name));
	if (path_literal(host, &p->addrs[0]) == 0) {
		p->nhosts = 1;
		p->naddrs = 1;
		p->resolved = 1;
		path_wake(p);
		return 0;
	}
	if (!netaddr_domain_valid(host)) {
		/*
		 * A UTF-8 domain needs IDNA before DNS, which is not here
		 * yet: defer it rather than bounce mail that may be fine.
		 */
		if (p->mx && path_8bit(host))
			path_set(p, 1, 451, "4.4.3", "%.200s: internationalized "
			    "domain names are not supported yet", host);
		else if (p->mx)
			path_set(p, 1, 550, "5.1.2", "%.200s: not a valid "
			    "domain name", host);
		else
			path_set(p, 1, 451, "4.4.3", "smarthost %.200s: not a "
			    "valid host name", host);
		path_wake(p);
		return 0;
	}
	if (!p->mx) {
		p->nhosts = 1;
		path_wake(p);
		return 0;
	}
	dns_query(&p->q_mx, host, ns_t_mx, path_mx_cb, p);
	return 0;
}

/* path_literal - an address that needs no DNS, with port 0 */
static int
path_literal(const char *host, struct sockaddr_storage *ss)
{
	char		 buf[NETADDR_HOST_MAX + 1];
	socklen_t	 sslen;
	size_t		 n = strlen(host);

	if (strcasecmp(host, "localhost") == 0)
		return netaddr_parse_ip("127.0.0.1", ss, &sslen);
	if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
		host++;
		n -= 2;
		if (n > 5 && strncasecmp(host, "IPv6:", 5) == 0) {
			host += 5;
			n -= 5;
		}
		if (n >= sizeof(buf))
			return -1;
		memcpy(buf, host, n);
		buf[n] = '\0';
		host = buf;
	}
	return netaddr_parse_ip(host, ss, &sslen);
}

void
dlv_path_free(struct dlv_path *p)
{
	if (p == NULL)
		return;
	dns_cancel(&p->q_mx);
	dns_cancel(&p->q_a);
	dns_cancel(&p->q_aaaa);
	event_free(p->ev_step);
	free(p->params.smarthost);
	free(p->params.auth_user);
	free(p->params.auth_password_file);
	if (p->job != NULL)
		p->job->path = NULL;
	free(p);
}

/*
 * dlv_path_next - the session (already started) could not be had on
 * this address: remember why and try the next one
 */
void
dlv_path_next(struct dlv_job *j, int code, const char *status,
    const char *text)
{
	struct dlv_path	*p = j->path;

	smtpc_free(j->sess);
	path_set(p, 0, code, status, "%s", text);
	path_wake(p);
}

static void
path_wake(struct dlv_path *p)
{
	event_active(p->ev_step, EV_TIMEOUT, 1);
}

/* path_set - the failure so far; final: the outcome, no more tries */
static void
path_set(struct dlv_path *p, int final, int code, const char *status,
    const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(p->text, sizeof(p->text), fmt, ap);
	va_end(ap);
	p->final = final;
	p->code = code;
	strlcpy(p->status, status, sizeof(p->status));
}

/* path_step - act on what came in: the next lookup or connection */
static void
path_step(evutil_socket_t fd, short ev, void *arg)
{
	struct dlv_path	*p = arg;
	struct dlv_job	*j = p->job;
	size_t		 i;

	if (p->final) {
		log_debug("%s: %s", j->id, p->text);
		dlv_job_fail_all(j, p->code, p->status, "%s", p->text);
		dlv_job_end(j);
		return;
	}
	if (p->q_mx != NULL || p->pending > 0 || j->sess != NULL)
		return;		/* still waiting */
	for (;;) {
		if (p->host >= p->nhosts || p->tries >= DLV_TRY_MAX) {
			path_exhausted(p);
			return;
		}
		if (!p->resolved) {
			path_resolve(p);
			return;
		}
		if (p->addr < p->naddrs) {
			i = p->addr++;
			p->tries++;
			smtpc_start(j, &p->params, p->hosts[p->host].name,
			    (struct sockaddr *)&p->addrs[i],
			    p->addrs[i].ss_family == AF_INET ?
			    sizeof(struct sockaddr_in) :
			    sizeof(struct sockaddr_in6), p->port);
			return;
		}
		p->host++;
		p->resolved = 0;
		p->naddrs = p->addr = 0;
	}
}

/* path_exhausted - nothing more to try: the last failure stands */
static void
path_exhausted(struct dlv_path *p)
{
	struct dlv_job	*j = p->job;

	if (p->code == 0) {
		/* no connection was made and every lookup said "none" */
		if (p->mx && p->nhosts == 1 &&
		    strcasecmp(p->hosts[0].name, p->dest) == 0)
			path_set(p, 1, 550, "5.4.4", "%.200s: domain has no "
			    "MX, A or AAAA record", p->dest);
		else if (p->mx)
			path_set(p, 1, 550, "5.4.4", "%.200s: no MX host has "
			    "an address", p->dest);
		else
			path_set(p, 1, 451, "4.4.3", "smarthost %.200s: host "
			    "not found", p->dest);
	}
	dlv_job_fail_all(j, p->code, p->status, "%s", p->text);
	dlv_job_end(j);
}

/* path_resolve - A and AAAA of the host whose turn it is */
static void
path_resolve(struct dlv_path *p)
{
	const char	*name = p->hosts[p->host].name;

	p->n4 = p->n6 = 0;
	p->pending = 2;
	/* either callback may run at once: both count first */
	dns_query(&p->q_a, name, ns_t_a, path_a_cb, p);
	dns_query(&p->q_aaaa, name, ns_t_aaaa, path_aaaa_cb, p);
}

static void
path_mx_cb(void *arg, int status, const unsigned char *abuf, int alen)
{
	struct dlv_path		*p = arg;
	struct ares_mx_reply	*mx = NULL, *m;
	struct dlv_host		 seen[PATH_MX_SEEN];
	size_t			 n = 0, nnull = 0, i;
	int			 r;

	if (status == ARES_SUCCESS) {
		r = ares_parse_mx_reply(abuf, alen, &mx);
		if (r == ARES_ENODATA)
			status = ARES_ENODATA;
		else if (r != ARES_SUCCESS) {
			path_set(p, 1, 451, "4.4.3", "MX lookup for %.200s: "
			    "malformed answer: %s", p->dest, dns_strerror(r));
			goto out;
		}
	}
	switch (status) {
	case ARES_SUCCESS:
		break;
	case ARES_ENODATA:
		/* RFC 5321 5.1: the name itself, as if MX 0 */
		log_debug("%s: %s has no MX records; implicit MX",
		    p->job->id, p->dest);
		strlcpy(p->hosts[0].name, p->dest, sizeof(p->hosts[0].name));
		p->nhosts = 1;
		goto out;
	case ARES_ENOTFOUND:
		path_set(p, 1, 550, "5.1.2", "%.200s: domain not found",
		    p->dest);
		goto out;
	default:
		path_set(p, 1, 451, "4.4.3", "MX lookup for %.200s: %s; "
		    "retry later", p->dest, dns_strerror(status));
		goto out;
	}
	for (m = mx; m != NULL; m = m->next) {
		if (m->host[0] == '\0' || strcmp(m->host, ".") == 0) {
			nnull++;
			continue;
		}
		if (n == PATH_MX_SEEN || strlen(m->host) > NETADDR_HOST_MAX)
			continue;
		strlcpy(seen[n].name, m->host, sizeof(seen[n].name));
		seen[n].pref = m->priority;
		seen[n].key = randombytes_random();
		n++;
	}
	if (n == 0 && nnull > 0) {
		/* RFC 7505 3: "domain does not accept mail" */
		path_set(p, 1, 556, "5.1.10", "%.200s: domain does not accept "
		    "mail (null MX)", p->dest);
		goto out;
	}
	if (n == 0) {
		path_set(p, 1, 451, "4.4.3", "MX lookup for %.200s: no usable "
		    "MX host in the answer", p->dest);
		goto out;
	}
	qsort(seen, n, sizeof(seen[0]), host_cmp);
	for (i = 0; i < n && i < DLV_MX_HOSTS; i++)
		p->hosts[i] = seen[i];
	p->nhosts = i;
	for (i = 0; i < p->nhosts; i++)
		log_debug("%s: MX %d %s", p->job->id, p->hosts[i].pref,
		    p->hosts[i].name);
 out:
	if (mx != NULL)
		ares_free_data(mx);
	path_wake(p);
}

/* path_8bit - does the name hold a byte outside US-ASCII? */
static int
path_8bit(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

static int
host_cmp(const void *a, const void *b)
{
	const struct dlv_host	*x = a, *y = b;

	if (x->pref != y->pref)
		return x->pref < y->pref ? -1 : 1;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return 0;
}

static void
path_a_cb(void *arg, int status, const unsigned char *abuf, int alen)
{
	path_addr_cb(arg, AF_INET, status, abuf, alen);
}

static void
path_aaaa_cb(void *arg, int status, const unsigned char *abuf, int alen)
{
	path_addr_cb(arg, AF_INET6, status, abuf, alen);
}

/*
 * path_addr_cb - one family of the current host's addresses; when
 * both are in, the list to try: IPv4 first (a gateway's IPv6 route is
 * the one more often broken), then IPv6
 */
static void
path_addr_cb(struct dlv_path *p, int af, int status,
    const unsigned char *abuf, int alen)
{
	struct ares_addrttl	 t4[DLV_HOST_ADDRS];
	struct ares_addr6ttl	 t6[DLV_HOST_ADDRS];
	const char		*name = p->hosts[p->host].name;
	int			 n = DLV_HOST_ADDRS, r, i;

	if (status == ARES_SUCCESS) {
		if (af == AF_INET)
			r = ares_parse_a_reply(abuf, alen, NULL, t4, &n);
		else
			r = ares_parse_aaaa_reply(abuf, alen, NULL, t6, &n);
		if (r != ARES_SUCCESS)
			status = r;
	}
	if (status == ARES_SUCCESS) {
		for (i = 0; i < n && i < DLV_HOST_ADDRS; i++) {
			struct sockaddr_storage *ss;

			if (af == AF_INET) {
				struct sockaddr_in *sin;

				ss = &p->a4[p->n4++];
				memset(ss, 0, sizeof(*ss));
				sin = (struct sockaddr_in *)ss;
				sin->sin_family = AF_INET;
				sin->sin_addr = t4[i].ipaddr;
			} else {
				struct sockaddr_in6 *sin6;

				ss = &p->a6[p->n6++];
				memset(ss, 0, sizeof(*ss));
				sin6 = (struct sockaddr_in6 *)ss;
				sin6->sin6_family = AF_INET6;
				memcpy(&sin6->sin6_addr, &t6[i].ip6addr,
				    sizeof(sin6->sin6_addr));
			}
		}
	} else if (status != ARES_ENODATA && status != ARES_ENOTFOUND) {
		p->soft = 1;
		path_set(p, 0, 451, "4.4.3", "%s lookup for %.200s: %s; "
		    "retry later", af == AF_INET ? "A" : "AAAA", name,
		    dns_strerror(status));
	}
	if (--p->pending > 0)
		return;
	p->naddrs = 0;
	for (i = 0; (size_t)i < p->n4; i++)
		p->addrs[p->naddrs++] = p->a4[i];
	for (i = 0; (size_t)i < p->n6; i++)
		p->addrs[p->naddrs++] = p->a6[i];
	p->addr = 0;
	p->resolved = 1;
	log_debug("%s: %s has %zu address%s", p->job->id, name, p->naddrs,
	    p->naddrs == 1 ? "" : "es");
	path_wake(p);
}
