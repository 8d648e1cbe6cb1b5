/*
 * NAME
 *	conf - load and validate sluice.conf
 * SYNOPSIS
 *	#include "conf.h"
 *
 *	struct conf *conf_load(const char *path, char *err, size_t errlen);
 *	struct conf *conf_load_fd(int fd, const char *name, char *err,
 *	    size_t errlen);
 *	int conf_export(const struct conf *conf, int fd);
 *	void conf_free(struct conf *conf);
 *	const char *conf_tls_mode_str(enum conf_tls_mode);
 *	const char *conf_route_tls_str(enum conf_route_tls);
 * DESCRIPTION
 *	conf_load() parses FILE with libconfig and walks one declarative
 *	table per group.  Every key of ../shared/CONFIG.md is typed and
 *	range-checked; sizes ("35M"), durations ("5d"), rates ("20/s"),
 *	CIDRs and host:port values are parsed here so that no consumer ever
 *	sees an unchecked string.  Keys that are absent take their default.
 *
 *	conf_export() writes the parsed tree (with @include expanded) to fd
 *	in libconfig syntax; conf_load_fd() reads such an image back.  This
 *	is how sluiced hands the configuration it validated to children
 *	that have no file system access.
 *
 *	The returned struct conf owns every string and array it points to;
 *	conf_free() releases all of it and accepts NULL.
 * DIAGNOSTICS
 *	conf_load() and conf_load_fd() return NULL and write one line,
 *	"FILE:LINE: key: what is wrong", into err.  Unknown keys, wrong
 *	types and out-of-range values are errors.  conf_export() returns -1
 *	with errno set.
 */
#ifndef SLUICE_CONF_H
#define SLUICE_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "netaddr.h"

#define CONF_MAX_LISTEN		64
#define CONF_MAX_ROUTES		256
#define CONF_MAX_PROCESSES	256

enum conf_tls_mode {
	CONF_TLS_NONE,
	CONF_TLS_STARTTLS,
	CONF_TLS_IMPLICIT
};

enum conf_auth_mode {
	CONF_AUTH_REQUIRED,
	CONF_AUTH_OPTIONAL
};

enum conf_durability {
	CONF_DURABILITY_FSYNC,		/* AOF, appendfsync always */
	CONF_DURABILITY_RELAXED		/* whatever the server does */
};

enum conf_route_tls {
	CONF_ROUTE_TLS_NONE,
	CONF_ROUTE_TLS_MAY,
	CONF_ROUTE_TLS_ENCRYPT,
	CONF_ROUTE_TLS_VERIFY,
	CONF_ROUTE_TLS_IMPLICIT
};

struct conf_listen {
	char			*address;	/* numeric IPv4/IPv6 literal */
	int			 port;		/* 1..65535 */
	enum conf_tls_mode	 tls;		/* default starttls */
	enum conf_auth_mode	 auth;		/* default required */
	struct netaddr_cidr	*trusted;	/* trusted_networks */
	size_t			 ntrusted;
	struct sockaddr_storage	 ss;		/* address + port, ready to bind */
	socklen_t		 sslen;
	int			 line;		/* where it was written */
};

struct conf_route {
	char			**domains;	/* "example.org", "*.example.org", "*" */
	size_t			 ndomains;
	char			*smarthost;	/* as written, NULL when mx */
	struct netaddr_hostport	 relay;		/* parsed smarthost */
	int			 mx;		/* direct MX delivery */
	enum conf_route_tls	 tls;		/* default "may" */
	char			*auth_user;
	char			*auth_password_file;
	char			*helo;
	uint32_t		 rate_count;	/* 0: no rate limit */
	uint32_t		 rate_period;	/* seconds */
	int			 concurrency;	/* 0: unlimited */
	int			 messages_per_connection; /* default 100 */
	uint32_t		 idle_timeout;	/* s an idle connection waits, 0: none */
	uint32_t		 backoff;	/* s a destination pauses after 421 */
	int			 line;
};

struct conf {
	char			*file;		/* file name, for messages */
	char			*hostname;	/* default: gethostname() */
	char			*state_dir;	/* absolute */
	char			*pid_file;	/* absolute */
	int			 smtpd_processes; /* 0 in the file: one per core */

	struct conf_listen	*listen;
	size_t			 nlisten;

	struct {
		char		*certificate;	/* NULL: self-signed under state_dir */
		char		*key;
		int		 self_signed;	/* certificate/key were generated */
		int		 min_version;	/* TLS1_2_VERSION or TLS1_3_VERSION */
		char		*ca_file;
	} tls;

	struct {
		int		 embedded;
		char		*address;	/* as written; NULL when embedded */
		char		*unix_path;	/* unix socket (embedded: under state_dir) */
		struct netaddr_hostport tcp;	/* when not unix */
		char		*password_file;
		char		*prefix;	/* default "sluice:" */
		char		*server;	/* redis-server binary for embedded */
		int		 durability;	/* CONF_DURABILITY_* */
	} redis;

	struct {
		uint64_t	 message_size;	/* bytes */
		int		 recipients;
		int		 connections;
		int		 connections_per_ip;
		int		 errors;
		int		 auth_failures;
		uint32_t	 auth_block;	/* seconds */
		int		 user_messages_per_hour;
		int		 user_recipients_per_hour;
	} limits;

	struct {			/* all in seconds */
		uint32_t	 command;
		uint32_t	 data_block;
		uint32_t	 data_end;
		uint32_t	 connect;
		uint32_t	 upstream_command;
	} timeouts;

	struct {			/* all in seconds */
		uint32_t	 lifetime;
		uint32_t	 retry_min;
		uint32_t	 retry_max;
		uint32_t	 lease;		/* a claim lasts this long unrenewed */
		uint32_t	 delay_warning;	/* 0: none */
		char		*key_file;	/* NULL: state_dir/queue.key */
	} queue;

	struct {
		int		 workers;
		struct conf_route *routes;
		size_t		 nroutes;
	} delivery;

	struct {
		struct netaddr_hostport *servers;	/* NULL: /etc/resolv.conf */
		size_t		 nservers;
	} dns;

	struct {			/* the Prometheus endpoint of queued */
		int		 enabled;	/* a metrics group was given */
		char		*listen;	/* "ip:port", default 127.0.0.1:9187 */
		struct sockaddr_storage ss;	/* ready to bind */
		socklen_t	 sslen;
	} metrics;

	struct {			/* unprivileged accounts, used when root */
		char		*smtpd;
		char		*authd;
		char		*queued;
		char		*deliverd;
		char		*redis;
	} users;

	void			*cfg;		/* libconfig tree, for conf_export() */
};

struct conf	*conf_load(const char *, char *, size_t);
struct conf	*conf_load_fd(int, const char *, char *, size_t);
int		 conf_export(const struct conf *, int);
void		 conf_free(struct conf *);
const char	*conf_tls_mode_str(enum conf_tls_mode);
const char	*conf_route_tls_str(enum conf_route_tls);

#endif
