/*
 * conf.c - load and validate sluice.conf
 *
 * libconfig does the parsing; this file decides what the parsed tree
 * means.  Each group of the file has one table of keys (name, kind,
 * field, range, default) and conf_walk() is the only code that reads
 * a table: it refuses unknown keys, checks types and ranges, stores
 * values, fills defaults and then runs the group's cross-key check.
 * Errors stop at the first one and come out as a single line,
 * "FILE:LINE: key.path: what is wrong".
 *
 * Values that depend on the machine (the host name, the number of
 * cores) are resolved here and written back into the tree, so the
 * image conf_export() hands to sandboxed children never makes them
 * look anything up.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <netinet/in.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libconfig.h>
#include <openssl/ssl.h>

#include "compat/compat.h"
#include "conf.h"
#include "log.h"
#include "netaddr.h"
#include "sizes.h"
#include "xmalloc.h"

#define CONF_FILE_MAX		(1024 * 1024)	/* bytes of one file or image */
#define CONF_LINES_MAX		65535		/* libconfig keeps lines in 16 bits */
#define CONF_PATH_MAX		128		/* "delivery.routes.[12].domains.[3]" */
#define CONF_SHOW_MAX		64		/* bytes of a value quoted in errors */
#define CONF_MAX_TRUSTED	256		/* networks per listener */
#define CONF_MAX_DOMAINS	1024		/* domains per route */
#define CONF_MAX_DNS		16		/* dns.servers */
#define CONF_USER_MAX		32		/* account names */
#define CONF_PREFIX_MAX		64		/* redis.prefix */
#define CONF_METRICS_DEFAULT	"127.0.0.1:9187"	/* metrics.listen */
#define CONF_LINE_UNKNOWN	1		/* where errors about the file go */

#define KB	1024LL
#define MB	(1024LL * 1024)
#define GB	(1024LL * 1024 * 1024)
#define MINUTE	60LL
#define HOUR	3600LL
#define DAY	86400LL

/* What conf_walk() needs while it works: where to put the one error. */
struct ctx {
	const char	*name;		/* the file, when libconfig names none */
	char		*err;
	size_t		 errlen;
	struct conf	*conf;
};

enum key_kind {
	K_INT,		/* int, min..max */
	K_BOOL,		/* int, 0 or 1 */
	K_STR,		/* char *, accepted by .check */
	K_SIZE,		/* uint64_t bytes: "35M" or an integer */
	K_DURATION,	/* uint32_t seconds: "5m" or an integer */
	K_ENUM,		/* int, one of .choices */
	K_GROUP,	/* a nested group with its own table */
	K_FN		/* anything else: .fn reads it, or sees it absent */
};

struct choice {
	const char	*name;
	int		 value;
};

struct key;
struct group;

/* a string check: NULL when s is acceptable, else why it is not */
typedef const char	*str_check(const char *);
/* a custom key: s is NULL when the key is absent from parent */
typedef int		 key_fn(struct ctx *, const config_setting_t *,
			    const config_setting_t *, const char *, void *);
/* a group's cross-key check, after all its keys are in place */
typedef int		 group_fn(struct ctx *, const config_setting_t *,
			    const char *, void *);

struct key {
	const char		*name;
	enum key_kind		 kind;
	size_t			 off;		/* field, from the group's base */
	int			 required;
	long long		 min, max;	/* K_INT, K_SIZE, K_DURATION */
	long long		 def;		/* numeric default */
	const char		*defstr;	/* K_STR default, or NULL */
	str_check		*check;		/* K_STR */
	const struct choice	*choices;	/* K_ENUM */
	const struct group	*group;		/* K_GROUP */
	key_fn			*fn;		/* K_FN */
};

struct group {
	const struct key	*keys;
	group_fn		*post;
};

/* Rows of the tables below; the last row of each has a NULL name. */
#define KINT(n, o, lo, hi, d)	{ .name = n, .kind = K_INT, .off = o, \
				    .min = lo, .max = hi, .def = d }
#define KINT_REQ(n, o, lo, hi)	{ .name = n, .kind = K_INT, .off = o, \
				    .min = lo, .max = hi, .required = 1 }
#define KBOOL(n, o, d)		{ .name = n, .kind = K_BOOL, .off = o, \
				    .def = d }
#define KSTR(n, o, d, c)	{ .name = n, .kind = K_STR, .off = o, \
				    .defstr = d, .check = c }
#define KSTR_REQ(n, o, c)	{ .name = n, .kind = K_STR, .off = o, \
				    .check = c, .required = 1 }
#define KSIZE(n, o, lo, hi, d)	{ .name = n, .kind = K_SIZE, .off = o, \
				    .min = lo, .max = hi, .def = d }
#define KDUR(n, o, lo, hi, d)	{ .name = n, .kind = K_DURATION, .off = o, \
				    .min = lo, .max = hi, .def = d }
#define KENUM(n, o, c, d)	{ .name = n, .kind = K_ENUM, .off = o, \
				    .choices = c, .def = d }
#define KGROUP(n, g)		{ .name = n, .kind = K_GROUP, .group = g }
#define KFN(n, f)		{ .name = n, .kind = K_FN, .fn = f }
#define KEND			{ .name = NULL }

#define C(f)	offsetof(struct conf, f)
#define L(f)	offsetof(struct conf_listen, f)
#define R(f)	offsetof(struct conf_route, f)

/* One lexical pass over the text libconfig read; see conf_lex_next(). */
struct lex {
	const char	*p;
	unsigned	 line;
	char		 name[CONF_PATH_MAX];	/* the last identifier */
	char		 lit[32];		/* the literal found */
	unsigned	 lit_line;
};

enum lex_event {
	LEX_END,
	LEX_BIG_INT,		/* an integer libconfig would truncate */
	LEX_OPEN_STRING		/* a string still open at end of line */
};

static struct conf	*conf_parse(const char *, char *, size_t, char *);
static int	 conf_validate(struct ctx *, config_t *);
static void	 conf_pin(struct conf *, config_t *);
static int	 conf_read_all(int, char **, size_t *);
static int	 conf_read_path(const char *, char **);
static const char *conf_read_error(int);
static int	 conf_syntax_error(struct ctx *, config_t *, const char *);
static int	 conf_check_literals(struct ctx *, config_t *, const char *);
static int	 conf_check_literals_text(struct ctx *, config_t *, const char *,
		    const char *);
static void	 conf_files(const config_setting_t *, const char ***, size_t *);
static int	 conf_find_path(const config_setting_t *, const char *,
		    const char *, unsigned, char *, size_t);
static enum lex_event conf_lex_next(struct lex *);
static void	 conf_lex_skip_number(struct lex *);

static int	 conf_err(struct ctx *, const config_setting_t *, const char *,
		    const char *, ...) __attribute__((format(printf, 4, 5)));
static const char *conf_show(const char *, char *, size_t);
static void	 conf_join(char *, size_t, const char *, const char *);
static void	 conf_index(char *, size_t, const char *, int);
static const char *conf_kind_str(enum key_kind);
static void	 conf_choices_str(const struct choice *, char *, size_t);
static void	 conf_size_str(uint64_t, char *, size_t);
static void	 conf_duration_str(uint64_t, char *, size_t);

static int	 conf_walk(struct ctx *, const config_setting_t *, const char *,
		    const struct group *, void *);
static int	 conf_key(struct ctx *, const struct key *,
		    const config_setting_t *, const config_setting_t *,
		    const char *, void *);
static int	 conf_get_int(struct ctx *, const config_setting_t *,
		    const char *, long long *);
static int	 conf_get_string(struct ctx *, const config_setting_t *,
		    const char *, const char **);
static int	 conf_key_number(struct ctx *, const struct key *,
		    const config_setting_t *, const char *, void *);
static int	 conf_key_enum(struct ctx *, const struct key *,
		    const config_setting_t *, const char *, void *);
static int	 conf_strings(struct ctx *, const config_setting_t *,
		    const char *, size_t, const char *);

static const char *check_abspath(const char *);
static const char *check_hostname(const char *);
static const char *check_ip(const char *);
static const char *check_text(const char *);
static const char *check_prefix(const char *);
static const char *check_user(const char *);
static const char *check_command(const char *);
static const char *cidr_why(const char *);

static key_fn	 fn_listen;
static key_fn	 fn_trusted;
static key_fn	 fn_redis_address;
static key_fn	 fn_routes;
static key_fn	 fn_domains;
static key_fn	 fn_smarthost;
static key_fn	 fn_rate;
static key_fn	 fn_dns_servers;
static key_fn	 fn_metrics_listen;
static group_fn	 post_root;
static group_fn	 post_listen;
static group_fn	 post_tls;
static group_fn	 post_redis;
static group_fn	 post_limits;
static group_fn	 post_queue;
static group_fn	 post_route;
static group_fn	 post_metrics;
static int	 conf_check_metrics(struct ctx *, const config_setting_t *);
static int	 conf_sa_port(const struct sockaddr_storage *);
static int	 conf_sa_any(const struct sockaddr_storage *);

static const struct choice tls_modes[] = {
	{ "starttls",	CONF_TLS_STARTTLS },
	{ "implicit",	CONF_TLS_IMPLICIT },
	{ "none",	CONF_TLS_NONE },
	{ NULL, 0 }
};

static const struct choice auth_modes[] = {
	{ "required",	CONF_AUTH_REQUIRED },
	{ "optional",	CONF_AUTH_OPTIONAL },
	{ NULL, 0 }
};

static const struct choice route_tls_modes[] = {
	{ "none",	CONF_ROUTE_TLS_NONE },
	{ "may",	CONF_ROUTE_TLS_MAY },
	{ "encrypt",	CONF_ROUTE_TLS_ENCRYPT },
	{ "verify",	CONF_ROUTE_TLS_VERIFY },
	{ "implicit",	CONF_ROUTE_TLS_IMPLICIT },
	{ NULL, 0 }
};

static const struct choice durability_modes[] = {
	{ "fsync",	CONF_DURABILITY_FSYNC },
	{ "relaxed",	CONF_DURABILITY_RELAXED },
	{ NULL, 0 }
};

static const struct choice tls_versions[] = {
	{ "TLSv1.2",	TLS1_2_VERSION },
	{ "TLSv1.3",	TLS1_3_VERSION },
	{ NULL, 0 }
};

static const struct key listen_keys[] = {
	KSTR_REQ("address",	L(address), check_ip),
	KINT_REQ("port",	L(port), 1, 65535),
	KENUM("tls",		L(tls), tls_modes, CONF_TLS_STARTTLS),
	KENUM("auth",		L(auth), auth_modes, CONF_AUTH_REQUIRED),
	KFN("trusted_networks",	fn_trusted),
	KEND
};
static const struct group listen_group = { listen_keys, post_listen };

static const struct key tls_keys[] = {
	KSTR("certificate",	C(tls.certificate), NULL, check_abspath),
	KSTR("key",		C(tls.key), NULL, check_abspath),
	KENUM("min_version",	C(tls.min_version), tls_versions,
	    TLS1_2_VERSION),
	KSTR("ca_file",		C(tls.ca_file),
	    "/etc/ssl/certs/ca-certificates.crt", check_abspath),
	KEND
};
static const struct group tls_group = { tls_keys, post_tls };

static const struct key redis_keys[] = {
	KBOOL("embedded",	C(redis.embedded), 0),
	KFN("address",		fn_redis_address),
	KSTR("password_file",	C(redis.password_file), NULL, check_abspath),
	KSTR("prefix",		C(redis.prefix), "sluice:", check_prefix),
	KSTR("server",		C(redis.server), "redis-server",
	    check_command),
	KENUM("durability",	C(redis.durability), durability_modes,
	    CONF_DURABILITY_FSYNC),
	KEND
};
static const struct group redis_group = { redis_keys, post_redis };

static const struct key limits_keys[] = {
	KSIZE("message_size",	C(limits.message_size), KB, 500 * MB, 35 * MB),
	KINT("recipients",	C(limits.recipients), 1, 100000, 100),
	KINT("connections",	C(limits.connections), 1, 1000000, 2000),
	KINT("connections_per_ip", C(limits.connections_per_ip),
	    1, 1000000, 20),
	KINT("errors",		C(limits.errors), 1, 1000, 10),
	KINT("auth_failures",	C(limits.auth_failures), 1, 1000, 5),
	KDUR("auth_block",	C(limits.auth_block), 1, 7 * DAY, 15 * MINUTE),
	KINT("user_messages_per_hour", C(limits.user_messages_per_hour),
	    1, 10000000, 1000),
	KINT("user_recipients_per_hour", C(limits.user_recipients_per_hour),
	    1, 100000000, 5000),
	KEND
};
static const struct group limits_group = { limits_keys, post_limits };

static const struct key timeouts_keys[] = {
	KDUR("command",		C(timeouts.command), 1, DAY, 5 * MINUTE),
	KDUR("data_block",	C(timeouts.data_block), 1, DAY, 3 * MINUTE),
	KDUR("data_end",	C(timeouts.data_end), 1, DAY, 10 * MINUTE),
	KDUR("connect",		C(timeouts.connect), 1, DAY, 30),
	KDUR("upstream_command", C(timeouts.upstream_command), 1, DAY,
	    5 * MINUTE),
	KEND
};
static const struct group timeouts_group = { timeouts_keys, NULL };

static const struct key queue_keys[] = {
	KDUR("lifetime",	C(queue.lifetime), 1, 30 * DAY, 5 * DAY),
	KDUR("retry_min",	C(queue.retry_min), 1, DAY, MINUTE),
	KDUR("retry_max",	C(queue.retry_max), 1, 7 * DAY, HOUR),
	KDUR("lease",		C(queue.lease), 1, DAY, MINUTE),
	KDUR("delay_warning",	C(queue.delay_warning), 0, 30 * DAY, 0),
	KSTR("key_file",	C(queue.key_file), NULL, check_abspath),
	KEND
};
static const struct group queue_group = { queue_keys, post_queue };

static const struct key route_keys[] = {
	KFN("domains",		fn_domains),
	KFN("smarthost",	fn_smarthost),
	KBOOL("mx",		R(mx), 0),
	KENUM("tls",		R(tls), route_tls_modes, CONF_ROUTE_TLS_MAY),
	KSTR("auth_user",	R(auth_user), NULL, check_text),
	KSTR("auth_password_file", R(auth_password_file), NULL,
	    check_abspath),
	KSTR("helo",		R(helo), NULL, check_hostname),
	KFN("rate",		fn_rate),
	KINT("concurrency",	R(concurrency), 1, 1000, 0),
	KINT("messages_per_connection", R(messages_per_connection), 1,
	    100000, 100),
	KDUR("idle_timeout",	R(idle_timeout), 0, HOUR, 5),
	KDUR("backoff",		R(backoff), 1, DAY, MINUTE),
	KEND
};
static const struct group route_group = { route_keys, post_route };

static const struct key delivery_keys[] = {
	KINT("workers",		C(delivery.workers), 1, CONF_MAX_PROCESSES, 4),
	KFN("routes",		fn_routes),
	KEND
};
static const struct group delivery_group = { delivery_keys, NULL };

static const struct key dns_keys[] = {
	KFN("servers",		fn_dns_servers),
	KEND
};
static const struct group dns_group = { dns_keys, NULL };

static const struct key metrics_keys[] = {
	KFN("listen",		fn_metrics_listen),
	KEND
};
static const struct group metrics_group = { metrics_keys, post_metrics };

static const struct key users_keys[] = {
	KSTR("smtpd",		C(users.smtpd), "sluice-smtpd", check_user),
	KSTR("authd",		C(users.authd), "sluice-authd", check_user),
	KSTR("queued",		C(users.queued), "sluice-queued", check_user),
	KSTR("deliverd",	C(users.deliverd), "sluice-deliverd",
	    check_user),
	KSTR("redis",		C(users.redis), "sluice-redis", check_user),
	KEND
};
static const struct group users_group = { users_keys, NULL };

static const struct key root_keys[] = {
	KSTR("hostname",	C(hostname), NULL, check_hostname),
	KSTR("state_dir",	C(state_dir), CONF_DEFAULT_STATE_DIR,
	    check_abspath),
	KSTR("pid_file",	C(pid_file), CONF_DEFAULT_PID_FILE,
	    check_abspath),
	KINT("smtpd_processes",	C(smtpd_processes), 0, CONF_MAX_PROCESSES, 0),
	KFN("listen",		fn_listen),
	KGROUP("tls",		&tls_group),
	KGROUP("redis",		&redis_group),
	KGROUP("limits",	&limits_group),
	KGROUP("timeouts",	&timeouts_group),
	KGROUP("queue",		&queue_group),
	KGROUP("delivery",	&delivery_group),
	KGROUP("dns",		&dns_group),
	KGROUP("metrics",	&metrics_group),
	KGROUP("users",		&users_group),
	KEND
};
static const struct group root_group = { root_keys, post_root };

/* conf_load - read and validate the file at path */
struct conf *
conf_load(const char *path, char *err, size_t errlen)
{
	struct conf	*conf;
	char		*text;

	if (path == NULL) {
		snprintf(err, errlen, "(null): no configuration file");
		return NULL;
	}
	if (conf_read_path(path, &text) == -1) {
		snprintf(err, errlen, "%s: cannot read: %s", path,
		    conf_read_error(errno));
		return NULL;
	}
	conf = conf_parse(path, err, errlen, text);
	free(text);
	return conf;
}

/* conf_load_fd - read back an image written by conf_export() */
struct conf *
conf_load_fd(int fd, const char *name, char *err, size_t errlen)
{
	struct conf	*conf;
	char		*text;
	size_t		 len;

	if (name == NULL)
		name = "(image)";
	/* a memfd arrives with its offset wherever the writer left it */
	if (lseek(fd, 0, SEEK_SET) == -1 && errno != ESPIPE) {
		snprintf(err, errlen, "%s: cannot read: %s", name,
		    strerror(errno));
		return NULL;
	}
	if (conf_read_all(fd, &text, &len) == -1) {
		snprintf(err, errlen, "%s: cannot read: %s", name,
		    conf_read_error(errno));
		return NULL;
	}
	conf = conf_parse(name, err, errlen, text);
	free(text);
	return conf;
}

/* conf_export - write the validated tree to fd in libconfig syntax */
int
conf_export(const struct conf *conf, int fd)
{
	FILE	*fp;
	int	 dfd, saved;

	if (conf == NULL || conf->cfg == NULL) {
		errno = EINVAL;
		return -1;
	}
	/* fclose() must not take the caller's descriptor with it */
	if ((dfd = dup(fd)) == -1)
		return -1;
	if ((fp = fdopen(dfd, "w")) == NULL) {
		saved = errno;
		close(dfd);
		errno = saved;
		return -1;
	}
	config_write(conf->cfg, fp);
	if (fflush(fp) == EOF || ferror(fp)) {
		saved = errno != 0 ? errno : EIO;
		fclose(fp);
		errno = saved;
		return -1;
	}
	if (fclose(fp) == EOF)
		return -1;
	return 0;
}

/* conf_free - release a configuration and everything it owns */
void
conf_free(struct conf *conf)
{
	struct conf_route	*r;
	size_t			 i, j;

	if (conf == NULL)
		return;
	free(conf->file);
	free(conf->hostname);
	free(conf->state_dir);
	free(conf->pid_file);
	for (i = 0; i < conf->nlisten; i++) {
		free(conf->listen[i].address);
		free(conf->listen[i].trusted);
	}
	free(conf->listen);
	free(conf->tls.certificate);
	free(conf->tls.key);
	free(conf->tls.ca_file);
	free(conf->redis.address);
	free(conf->redis.unix_path);
	free(conf->redis.password_file);
	free(conf->redis.prefix);
	free(conf->redis.server);
	free(conf->queue.key_file);
	for (i = 0; i < conf->delivery.nroutes; i++) {
		r = &conf->delivery.routes[i];
		for (j = 0; j < r->ndomains; j++)
			free(r->domains[j]);
		free(r->domains);
		free(r->smarthost);
		free(r->auth_user);
		free(r->auth_password_file);
		free(r->helo);
	}
	free(conf->delivery.routes);
	free(conf->dns.servers);
	free(conf->metrics.listen);
	free(conf->users.smtpd);
	free(conf->users.authd);
	free(conf->users.queued);
	free(conf->users.deliverd);
	free(conf->users.redis);
	if (conf->cfg != NULL) {
		config_destroy(conf->cfg);
		free(conf->cfg);
	}
	free(conf);
}

/* conf_tls_mode_str - a listener's tls mode as the file spells it */
const char *
conf_tls_mode_str(enum conf_tls_mode m)
{
	const struct choice	*c;

	for (c = tls_modes; c->name != NULL; c++)
		if (c->value == (int)m)
			return c->name;
	return "unknown";
}

/* conf_route_tls_str - a route's tls mode as the file spells it */
const char *
conf_route_tls_str(enum conf_route_tls m)
{
	const struct choice	*c;

	for (c = route_tls_modes; c->name != NULL; c++)
		if (c->value == (int)m)
			return c->name;
	return "unknown";
}

/*
 * conf_parse - parse text (the whole of file name) and build a conf;
 * the libconfig tree stays with it for conf_export()
 */
static struct conf *
conf_parse(const char *name, char *err, size_t errlen, char *text)
{
	struct ctx	 ctx;
	struct conf	*conf;
	config_t	*cfg;
	char		*p;

	memset(&ctx, 0, sizeof(ctx));
	ctx.name = name;
	ctx.err = err;
	ctx.errlen = errlen;
	if (errlen > 0)
		err[0] = '\0';

	cfg = xmalloc(sizeof(*cfg));
	config_init(cfg);
	/*
	 * No include directory: libconfig 1.5 would put it in front of
	 * absolute @include paths too.  Relative ones are taken from the
	 * working directory, as the manual page says.
	 */
	if (config_read_string(cfg, text) == CONFIG_FALSE) {
		conf_syntax_error(&ctx, cfg, text);
		goto fail;
	}
	if (conf_check_literals(&ctx, cfg, text) == -1)
		goto fail;

	conf = xcalloc(1, sizeof(*conf));
	conf->file = xstrdup(name);
	conf->cfg = cfg;
	ctx.conf = conf;
	if (conf_validate(&ctx, cfg) == -1) {
		conf_free(conf);
		goto out;
	}
	conf_pin(conf, cfg);
	return conf;

fail:
	config_destroy(cfg);
	free(cfg);
out:
	/* one line, whatever a file name or a value smuggled in */
	for (p = err; errlen > 0 && *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	return NULL;
}

/* conf_validate - walk the whole tree from the root table */
static int
conf_validate(struct ctx *ctx, config_t *cfg)
{
	return conf_walk(ctx, config_root_setting(cfg), "", &root_group,
	    ctx->conf);
}

/*
 * conf_pin - write the values resolved from the machine into the tree,
 * so that a child reading the exported image (inside a sandbox that
 * forbids the look-ups) sees exactly what sluiced saw
 */
static void
conf_pin(struct conf *conf, config_t *cfg)
{
	config_setting_t	*root = config_root_setting(cfg), *s;

	if ((s = config_setting_get_member(root, "hostname")) == NULL &&
	    (s = config_setting_add(root, "hostname",
	    CONFIG_TYPE_STRING)) != NULL)
		config_setting_set_string(s, conf->hostname);
	if ((s = config_setting_get_member(root, "smtpd_processes")) == NULL)
		s = config_setting_add(root, "smtpd_processes",
		    CONFIG_TYPE_INT);
	if (s != NULL)
		config_setting_set_int(s, conf->smtpd_processes);
}

/* conf_read_all - the whole of fd into a NUL-terminated buffer */
static int
conf_read_all(int fd, char **textp, size_t *lenp)
{
	char	*text = NULL;
	size_t	 len = 0, size = 0;
	ssize_t	 n;

	for (;;) {
		if (len + 1 >= size) {
			if (size >= CONF_FILE_MAX) {
				free(text);
				errno = EFBIG;
				return -1;
			}
			size = size == 0 ? 4096 : size * 2;
			text = xreallocarray(text, 1, size);
		}
		n = read(fd, text + len, size - len - 1);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			free(text);
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	text[len] = '\0';
	/* a NUL would end the text early without a word */
	if (strlen(text) != len) {
		free(text);
		errno = EILSEQ;
		return -1;
	}
	*textp = text;
	*lenp = len;
	return 0;
}

/* conf_read_path - the whole of the file at path */
static int
conf_read_path(const char *path, char **textp)
{
	size_t	 len;
	int	 fd, rc, saved;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	rc = conf_read_all(fd, textp, &len);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

/* conf_read_error - why conf_read_all() failed, for a message */
static const char *
conf_read_error(int e)
{
	if (e == EFBIG)
		return "larger than 1 MiB";
	if (e == EILSEQ)
		return "contains a NUL byte";
	return strerror(e);
}

/*
 * conf_syntax_error - libconfig's parse error, except that a string
 * left open is reported where it starts: libconfig reads on to the
 * next quote and complains lines later, or at the end of the file
 */
static int
conf_syntax_error(struct ctx *ctx, config_t *cfg, const char *text)
{
	struct lex	 lx;
	enum lex_event	 ev;
	const char	*file = config_error_file(cfg);
	int		 line = config_error_line(cfg);

	if (file == NULL) {
		memset(&lx, 0, sizeof(lx));
		lx.p = text;
		lx.line = 1;
		while ((ev = conf_lex_next(&lx)) != LEX_END)
			if (ev == LEX_OPEN_STRING && (int)lx.lit_line <= line) {
				snprintf(ctx->err, ctx->errlen,
				    "%s:%u: %s: unterminated string",
				    ctx->name, lx.lit_line, lx.name[0] != '\0' ?
				    lx.name : "syntax error");
				return -1;
			}
	}
	snprintf(ctx->err, ctx->errlen, "%s:%d: %s",
	    file != NULL ? file : ctx->name, line > 0 ? line : 1,
	    config_error_text(cfg) != NULL ? config_error_text(cfg) :
	    "syntax error");
	return -1;
}

/*
 * conf_check_literals - libconfig 1.5 reads an integer literal without
 * an L suffix into an int, silently truncated: "port = 4294967297"
 * would become port 1.  It also takes a string left open at the end of
 * the file without complaint.  Look at the text of every file that
 * went into the tree and refuse both before anything uses them; a
 * string running over a line end is refused too, as no key takes one.
 */
static int
conf_check_literals(struct ctx *ctx, config_t *cfg, const char *text)
{
	const char	**files = NULL;
	char		 *inc;
	size_t		  nfiles = 0, i;
	int		  rc;

	if ((rc = conf_check_literals_text(ctx, cfg, NULL, text)) == -1)
		return -1;
	conf_files(config_root_setting(cfg), &files, &nfiles);
	for (i = 0; i < nfiles && rc == 0; i++) {
		if (conf_read_path(files[i], &inc) == -1) {
			rc = -1;
			snprintf(ctx->err, ctx->errlen, "%s: cannot read: %s",
			    files[i], conf_read_error(errno));
			break;
		}
		rc = conf_check_literals_text(ctx, cfg, files[i], inc);
		free(inc);
	}
	free(files);
	return rc;
}

/* conf_check_literals_text - the first bad literal in one text */
static int
conf_check_literals_text(struct ctx *ctx, config_t *cfg, const char *file,
    const char *text)
{
	struct lex		 lx;
	char			 path[CONF_PATH_MAX];
	enum lex_event		 ev;

	memset(&lx, 0, sizeof(lx));
	lx.p = text;
	lx.line = 1;
	while ((ev = conf_lex_next(&lx)) != LEX_END) {
		path[0] = '\0';
		if (conf_find_path(config_root_setting(cfg), file, lx.name,
		    lx.lit_line, path, sizeof(path)) == -1)
			strlcpy(path, ev == LEX_BIG_INT ? lx.name :
			    "syntax error", sizeof(path));
		if (ev == LEX_BIG_INT)
			snprintf(ctx->err, ctx->errlen, "%s:%u: %s: %s does "
			    "not fit in a 32-bit integer (write it with an L "
			    "suffix, or use a size or duration string)",
			    file != NULL ? file : ctx->name, lx.lit_line, path,
			    lx.lit);
		else
			snprintf(ctx->err, ctx->errlen, "%s:%u: %s: "
			    "unterminated string", file != NULL ? file :
			    ctx->name, lx.lit_line, path);
		return -1;
	}
	if (lx.line > CONF_LINES_MAX) {
		snprintf(ctx->err, ctx->errlen, "%s: more than %d lines",
		    file != NULL ? file : ctx->name, CONF_LINES_MAX);
		return -1;
	}
	return 0;
}

/* conf_files - the distinct @include files settings came from */
static void
conf_files(const config_setting_t *s, const char ***files, size_t *n)
{
	const char	*f = config_setting_source_file(s);
	size_t		 i;
	int		 len;

	if (f != NULL) {
		for (i = 0; i < *n; i++)
			if (strcmp((*files)[i], f) == 0)
				break;
		if (i == *n) {
			*files = xreallocarray(*files, *n + 1, sizeof(**files));
			(*files)[(*n)++] = f;
		}
	}
	if (config_setting_is_aggregate(s)) {
		len = config_setting_length(s);
		for (i = 0; i < (size_t)len; i++)
			conf_files(config_setting_get_elem(s, (unsigned)i),
			    files, n);
	}
}

/*
 * conf_find_path - the dotted path of the setting called name that
 * starts on line of file (NULL: the main text); 0 when found
 */
static int
conf_find_path(const config_setting_t *s, const char *file, const char *name,
    unsigned line, char *path, size_t len)
{
	const config_setting_t	*e;
	const char		*f = config_setting_source_file(s);
	char			 sub[CONF_PATH_MAX];
	int			 i, n;

	if (config_setting_name(s) != NULL &&
	    strcmp(config_setting_name(s), name) == 0 &&
	    config_setting_source_line(s) == line &&
	    ((f == NULL && file == NULL) ||
	    (f != NULL && file != NULL && strcmp(f, file) == 0)))
		return 0;
	if (!config_setting_is_aggregate(s))
		return -1;
	n = config_setting_length(s);
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(s, (unsigned)i);
		if (config_setting_name(e) != NULL)
			conf_join(sub, sizeof(sub), path,
			    config_setting_name(e));
		else
			conf_index(sub, sizeof(sub), path, i);
		if (conf_find_path(e, file, name, line, sub,
		    sizeof(sub)) == 0) {
			strlcpy(path, sub, len);
			return 0;
		}
	}
	return -1;
}

/*
 * conf_lex_next - step through libconfig's lexical syntax far enough
 * to see comments, strings, names and numbers; stop at the next
 * literal worth a complaint.  The text has already been parsed (or
 * failed to), so only what libconfig accepts needs to be understood.
 */
static enum lex_event
conf_lex_next(struct lex *lx)
{
	const char	*p, *start;
	size_t		 n;

	while (*lx->p != '\0') {
		p = lx->p;
		if (*p == '\n') {
			lx->line++;
			lx->p++;
		} else if (*p == '#' || (p[0] == '/' && p[1] == '/')) {
			while (*lx->p != '\0' && *lx->p != '\n')
				lx->p++;
		} else if (p[0] == '/' && p[1] == '*') {
			for (lx->p += 2; *lx->p != '\0'; lx->p++) {
				if (lx->p[0] == '*' && lx->p[1] == '/') {
					lx->p += 2;
					break;
				}
				if (*lx->p == '\n')
					lx->line++;
			}
		} else if (*p == '"') {
			unsigned	 first = lx->line;
			int		 unclosed = 0;

			for (lx->p++; *lx->p != '\0' && *lx->p != '"';
			    lx->p++) {
				if (*lx->p == '\\' && lx->p[1] != '\0')
					lx->p++;
				if (*lx->p == '\n') {
					lx->line++;
					unclosed = 1;
				}
			}
			if (*lx->p == '"')
				lx->p++;
			else
				unclosed = 1;
			if (unclosed) {
				lx->lit_line = first;
				strlcpy(lx->lit, "\"", sizeof(lx->lit));
				return LEX_OPEN_STRING;
			}
		} else if (isalpha((unsigned char)*p) || *p == '*') {
			start = p;
			while (isalnum((unsigned char)*lx->p) ||
			    *lx->p == '_' || *lx->p == '-' || *lx->p == '*')
				lx->p++;
			n = (size_t)(lx->p - start);
			if (n >= sizeof(lx->name))
				n = sizeof(lx->name) - 1;
			memcpy(lx->name, start, n);
			lx->name[n] = '\0';
		} else if (isdigit((unsigned char)*p) ||
		    ((*p == '-' || *p == '+' || *p == '.') &&
		    isdigit((unsigned char)p[1]))) {
			start = p;
			conf_lex_skip_number(lx);
			if (lx->lit_line != 0) {
				n = (size_t)(lx->p - start);
				if (n >= sizeof(lx->lit))
					n = sizeof(lx->lit) - 1;
				memcpy(lx->lit, start, n);
				lx->lit[n] = '\0';
				return LEX_BIG_INT;
			}
		} else
			lx->p++;
	}
	return LEX_END;
}

/*
 * conf_lex_skip_number - step over one number; set lit_line when it is
 * an integer without L that does not fit in 32 bits, which libconfig
 * 1.5 would store truncated
 */
static void
conf_lex_skip_number(struct lex *lx)
{
	const char		*start = lx->p;
	unsigned long long	 u;
	long long		 v;
	int			 hex = 0;

	lx->lit_line = 0;
	if (*lx->p == '-' || *lx->p == '+')
		lx->p++;
	if (lx->p[0] == '0' && (lx->p[1] == 'x' || lx->p[1] == 'X')) {
		hex = 1;
		for (lx->p += 2; isxdigit((unsigned char)*lx->p); lx->p++)
			;
	} else {
		while (isdigit((unsigned char)*lx->p))
			lx->p++;
		if (*lx->p == '.' || *lx->p == 'e' || *lx->p == 'E') {
			/* a float: never truncated, never an integer key */
			while (isdigit((unsigned char)*lx->p) ||
			    *lx->p == '.' || *lx->p == 'e' || *lx->p == 'E' ||
			    ((*lx->p == '-' || *lx->p == '+') &&
			    (lx->p[-1] == 'e' || lx->p[-1] == 'E')))
				lx->p++;
			return;
		}
	}
	if (*lx->p == 'L') {
		while (*lx->p == 'L')
			lx->p++;
		return;
	}
	errno = 0;
	if (hex) {
		u = strtoull(start, NULL, 16);
		if (errno == ERANGE || u > INT_MAX)
			lx->lit_line = lx->line;
	} else {
		v = strtoll(start, NULL, 10);
		if (errno == ERANGE || v > INT_MAX || v < INT_MIN)
			lx->lit_line = lx->line;
	}
}

/*
 * conf_err - the one error line: "FILE:LINE: path: message", at the
 * place setting s was written (the start of the file for the root)
 */
static int
conf_err(struct ctx *ctx, const config_setting_t *s, const char *path,
    const char *fmt, ...)
{
	va_list		 ap;
	char		 msg[512];
	const char	*file = NULL;
	unsigned	 line = 0;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (s != NULL) {
		file = config_setting_source_file(s);
		line = config_setting_source_line(s);
	}
	if (file == NULL)
		file = ctx->name;
	if (line == 0)
		line = CONF_LINE_UNKNOWN;
	snprintf(ctx->err, ctx->errlen, "%s:%u: %s: %s", file, line, path,
	    msg);
	return -1;
}

/* conf_show - s quoted, made printable and cut short, for messages */
static const char *
conf_show(const char *s, char *buf, size_t len)
{
	char	 tmp[CONF_SHOW_MAX * 4 + 1];
	size_t	 n = strlen(s);

	log_printable(tmp, sizeof(tmp), s, n > CONF_SHOW_MAX ?
	    CONF_SHOW_MAX : n);
	snprintf(buf, len, "\"%s%s\"", tmp, n > CONF_SHOW_MAX ? "..." : "");
	return buf;
}

/* conf_join - "parent.name", or "name" at the top */
static void
conf_join(char *buf, size_t len, const char *parent, const char *name)
{
	if (parent[0] == '\0')
		snprintf(buf, len, "%s", name);
	else
		snprintf(buf, len, "%s.%s", parent, name);
}

/* conf_index - "parent.[i]", libconfig's path syntax for an element */
static void
conf_index(char *buf, size_t len, const char *parent, int i)
{
	snprintf(buf, len, "%s.[%d]", parent, i);
}

/* conf_kind_str - what a value of this kind must look like */
static const char *
conf_kind_str(enum key_kind kind)
{
	switch (kind) {
	case K_INT:
		return "must be an integer";
	case K_BOOL:
		return "must be true or false";
	case K_STR:
		return "must be a string";
	case K_SIZE:
		return "must be a size: a string such as \"35M\", or a "
		    "number of bytes";
	case K_DURATION:
		return "must be a duration: a string such as \"5m\", or a "
		    "number of seconds";
	case K_ENUM:
		return "must be a string";
	case K_GROUP:
		return "must be a group { ... }";
	case K_FN:
		break;
	}
	return "has the wrong type";
}

/* conf_choices_str - "\"a\", \"b\" or \"c\"" */
static void
conf_choices_str(const struct choice *c, char *buf, size_t len)
{
	size_t	 used;

	buf[0] = '\0';
	for (; c->name != NULL; c++) {
		used = strlen(buf);
		snprintf(buf + used, len - used, "%s\"%s\"",
		    used == 0 ? "" : c[1].name == NULL ? " or " : ", ",
		    c->name);
	}
}

/* conf_size_str - bytes in the largest unit that divides them */
static void
conf_size_str(uint64_t v, char *buf, size_t len)
{
	if (v != 0 && v % GB == 0)
		snprintf(buf, len, "%lluG", (unsigned long long)(v / GB));
	else if (v != 0 && v % MB == 0)
		snprintf(buf, len, "%lluM", (unsigned long long)(v / MB));
	else if (v != 0 && v % KB == 0)
		snprintf(buf, len, "%lluK", (unsigned long long)(v / KB));
	else
		snprintf(buf, len, "%llu", (unsigned long long)v);
}

/* conf_duration_str - seconds in the largest unit that divides them */
static void
conf_duration_str(uint64_t v, char *buf, size_t len)
{
	if (v != 0 && v % DAY == 0)
		snprintf(buf, len, "%llud", (unsigned long long)(v / DAY));
	else if (v != 0 && v % HOUR == 0)
		snprintf(buf, len, "%lluh", (unsigned long long)(v / HOUR));
	else if (v != 0 && v % MINUTE == 0)
		snprintf(buf, len, "%llum", (unsigned long long)(v / MINUTE));
	else
		snprintf(buf, len, "%llus", (unsigned long long)v);
}

/*
 * conf_walk - the one validator: every key of group grp (NULL when the
 * group is absent) against table g, in file order, then the defaults
 * of the keys not written, then g's cross-key check
 */
static int
conf_walk(struct ctx *ctx, const config_setting_t *grp, const char *path,
    const struct group *g, void *base)
{
	const struct key	*k;
	const config_setting_t	*s;
	const char		*name;
	char			 kpath[CONF_PATH_MAX];
	int			 i, n;

	n = grp != NULL ? config_setting_length(grp) : 0;
	for (i = 0; i < n; i++) {
		s = config_setting_get_elem(grp, (unsigned)i);
		name = config_setting_name(s);
		for (k = g->keys; k->name != NULL; k++)
			if (strcmp(k->name, name) == 0)
				break;
		conf_join(kpath, sizeof(kpath), path, name);
		if (k->name == NULL)
			return conf_err(ctx, s, kpath, "unknown key");
		if (conf_key(ctx, k, grp, s, kpath, base) == -1)
			return -1;
	}
	for (k = g->keys; k->name != NULL; k++) {
		if (grp != NULL && config_setting_get_member(grp,
		    k->name) != NULL)
			continue;
		conf_join(kpath, sizeof(kpath), path, k->name);
		if (conf_key(ctx, k, grp, NULL, kpath, base) == -1)
			return -1;
	}
	if (g->post != NULL)
		return g->post(ctx, grp, path, base);
	return 0;
}

/*
 * conf_key - check and store one key; s is NULL when it is absent from
 * parent (itself NULL when the whole group is absent)
 */
static int
conf_key(struct ctx *ctx, const struct key *k, const config_setting_t *parent,
    const config_setting_t *s, const char *path, void *base)
{
	void		*field = (char *)base + k->off;
	const char	*str = NULL, *why;
	char		 show[CONF_SHOW_MAX * 4 + 8];

	if (s == NULL && k->required)
		return conf_err(ctx, parent, path, "required, but not set");

	switch (k->kind) {
	case K_INT:
	case K_SIZE:
	case K_DURATION:
		return conf_key_number(ctx, k, s, path, field);
	case K_BOOL:
		if (s == NULL)
			*(int *)field = (int)k->def;
		else if (config_setting_type(s) != CONFIG_TYPE_BOOL)
			return conf_err(ctx, s, path, "%s",
			    conf_kind_str(k->kind));
		else
			*(int *)field = config_setting_get_bool(s);
		return 0;
	case K_STR:
		if (s == NULL) {
			if (k->defstr != NULL)
				*(char **)field = xstrdup(k->defstr);
			return 0;
		}
		if (conf_get_string(ctx, s, path, &str) == -1)
			return -1;
		if (k->check != NULL && (why = k->check(str)) != NULL) {
			if (str[0] == '\0')
				return conf_err(ctx, s, path, "must not be "
				    "empty");
			return conf_err(ctx, s, path, "%s %s",
			    conf_show(str, show, sizeof(show)), why);
		}
		*(char **)field = xstrdup(str);
		return 0;
	case K_ENUM:
		return conf_key_enum(ctx, k, s, path, field);
	case K_GROUP:
		if (s != NULL && !config_setting_is_group(s))
			return conf_err(ctx, s, path, "%s",
			    conf_kind_str(k->kind));
		return conf_walk(ctx, s, path, k->group, base);
	case K_FN:
		return k->fn(ctx, parent, s, path, base);
	}
	return conf_err(ctx, s, path, "no rule for this key");
}

/* conf_get_int - an integer setting, 32 or 64 bits */
static int
conf_get_int(struct ctx *ctx, const config_setting_t *s, const char *path,
    long long *v)
{
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_INT:
		*v = config_setting_get_int(s);
		return 0;
	case CONFIG_TYPE_INT64:
		*v = config_setting_get_int64(s);
		return 0;
	default:
		return conf_err(ctx, s, path, "%s", conf_kind_str(K_INT));
	}
}

/* conf_get_string - a string setting */
static int
conf_get_string(struct ctx *ctx, const config_setting_t *s, const char *path,
    const char **str)
{
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return conf_err(ctx, s, path, "%s", conf_kind_str(K_STR));
	*str = config_setting_get_string(s);
	return 0;
}

/*
 * conf_key_number - an integer, size or duration, range-checked; sizes
 * and durations may be written as strings with a unit
 */
static int
conf_key_number(struct ctx *ctx, const struct key *k,
    const config_setting_t *s, const char *path, void *field)
{
	char		 show[CONF_SHOW_MAX * 4 + 8], lo[32], hi[32];
	const char	*str = NULL;
	long long	 v;
	uint64_t	 u;
	uint32_t	 d;
	int		 type;

	if (s == NULL)
		u = (uint64_t)k->def;
	else if ((type = config_setting_type(s)) == CONFIG_TYPE_STRING &&
	    k->kind != K_INT) {
		str = config_setting_get_string(s);
		conf_show(str, show, sizeof(show));
		if (k->kind == K_SIZE) {
			if (size_parse(str, &u) == -1)
				return conf_err(ctx, s, path, errno == ERANGE ?
				    "%s is too large" : "invalid size %s (use "
				    "a number with K, M or G)", show);
		} else {
			if (duration_parse(str, &d) == -1)
				return conf_err(ctx, s, path, errno == ERANGE ?
				    "%s is too large" : "invalid duration %s "
				    "(use a number with s, m, h or d)", show);
			u = d;
		}
	} else if (type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64) {
		if (conf_get_int(ctx, s, path, &v) == -1)
			return -1;
		snprintf(show, sizeof(show), "%lld", v);
		if (v < k->min || v > k->max)
			goto range;
		u = (uint64_t)v;
	} else
		return conf_err(ctx, s, path, "%s", conf_kind_str(k->kind));

	if (s != NULL && (u < (uint64_t)k->min || u > (uint64_t)k->max))
		goto range;
	switch (k->kind) {
	case K_INT:
		*(int *)field = (int)u;
		break;
	case K_SIZE:
		*(uint64_t *)field = u;
		break;
	default:
		*(uint32_t *)field = (uint32_t)u;
		break;
	}
	return 0;

range:
	if (k->kind == K_SIZE) {
		conf_size_str((uint64_t)k->min, lo, sizeof(lo));
		conf_size_str((uint64_t)k->max, hi, sizeof(hi));
	} else if (k->kind == K_DURATION) {
		conf_duration_str((uint64_t)k->min, lo, sizeof(lo));
		conf_duration_str((uint64_t)k->max, hi, sizeof(hi));
	} else {
		snprintf(lo, sizeof(lo), "%lld", k->min);
		snprintf(hi, sizeof(hi), "%lld", k->max);
	}
	return conf_err(ctx, s, path, "%s is out of range (%s..%s)", show,
	    lo, hi);
}

/* conf_key_enum - one of a fixed set of spellings */
static int
conf_key_enum(struct ctx *ctx, const struct key *k, const config_setting_t *s,
    const char *path, void *field)
{
	const struct choice	*c;
	const char		*str = NULL;
	char			 list[256], show[CONF_SHOW_MAX * 4 + 8];

	if (s == NULL) {
		*(int *)field = (int)k->def;
		return 0;
	}
	conf_choices_str(k->choices, list, sizeof(list));
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return conf_err(ctx, s, path, "must be a string: %s", list);
	str = config_setting_get_string(s);
	for (c = k->choices; c->name != NULL; c++)
		if (strcmp(c->name, str) == 0) {
			*(int *)field = c->value;
			return 0;
		}
	return conf_err(ctx, s, path, "%s is not one of %s",
	    conf_show(str, show, sizeof(show)), list);
}

/*
 * conf_strings - s is a non-empty array (or list) of at most max
 * strings; example shows one in the "must be" message
 */
static int
conf_strings(struct ctx *ctx, const config_setting_t *s, const char *path,
    size_t max, const char *example)
{
	const config_setting_t	*e;
	char			 epath[CONF_PATH_MAX];
	int			 i, n;

	if (!config_setting_is_array(s) && !config_setting_is_list(s))
		return conf_err(ctx, s, path, "must be an array of strings, "
		    "such as [ %s ]", example);
	if ((n = config_setting_length(s)) == 0)
		return conf_err(ctx, s, path, "must not be empty");
	if ((size_t)n > max)
		return conf_err(ctx, s, path, "too many entries (at most %zu)",
		    max);
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(s, (unsigned)i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			conf_index(epath, sizeof(epath), path, i);
			return conf_err(ctx, e, epath, "must be a string");
		}
	}
	return 0;
}

/* check_abspath - an absolute path */
static const char *
check_abspath(const char *s)
{
	if (s[0] != '/')
		return "is not an absolute path";
	if (strlen(s) >= PATH_MAX)
		return "is too long";
	return check_text(s);
}

/* check_hostname - a DNS name fit for a greeting and HELO */
static const char *
check_hostname(const char *s)
{
	if (!netaddr_domain_valid(s))
		return "is not a valid host name (letters, digits, '-' and "
		    "'.' only)";
	return NULL;
}

/* check_ip - a numeric address, since listeners never look names up */
static const char *
check_ip(const char *s)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;

	if (netaddr_parse_ip(s, &ss, &sslen) == -1)
		return "is not a numeric IPv4 or IPv6 address";
	return NULL;
}

/* check_text - non-empty printable text */
static const char *
check_text(const char *s)
{
	size_t	 n;

	if (s[0] == '\0')
		return "must not be empty";
	for (n = 0; s[n] != '\0'; n++)
		if ((unsigned char)s[n] < 0x20 || (unsigned char)s[n] == 0x7f)
			return "contains a control character";
	if (n > 255)
		return "is too long";
	return NULL;
}

/* check_prefix - a redis key prefix: printable, no white space */
static const char *
check_prefix(const char *s)
{
	size_t	 n;

	if (s[0] == '\0')
		return "must not be empty";
	for (n = 0; s[n] != '\0'; n++)
		if ((unsigned char)s[n] <= 0x20 || (unsigned char)s[n] >= 0x7f)
			return "must not contain spaces or control characters";
	if (n > CONF_PREFIX_MAX)
		return "is too long";
	return NULL;
}

/* check_user - an account name as useradd(8) takes it */
static const char *
check_user(const char *s)
{
	size_t	 n;

	if (!((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
		return "is not a valid user name ([a-z_][a-z0-9_-]*)";
	for (n = 1; s[n] != '\0'; n++)
		if (!((s[n] >= 'a' && s[n] <= 'z') ||
		    (s[n] >= '0' && s[n] <= '9') || s[n] == '_' || s[n] == '-'))
			return "is not a valid user name ([a-z_][a-z0-9_-]*)";
	if (n > CONF_USER_MAX)
		return "is too long";
	return NULL;
}

/* check_command - a program name looked up in PATH, or an absolute path */
static const char *
check_command(const char *s)
{
	if (s[0] != '/' && strchr(s, '/') != NULL)
		return "must be a command name or an absolute path";
	return check_text(s);
}

/* cidr_why - why netaddr_parse_cidr() refused s */
static const char *
cidr_why(const char *s)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	char			 ip[NETADDR_HOST_MAX + 1];
	const char		*slash = strchr(s, '/');
	size_t			 len = slash ? (size_t)(slash - s) : strlen(s);

	if (len >= sizeof(ip))
		return "is not a network (address/prefix)";
	memcpy(ip, s, len);
	ip[len] = '\0';
	if (netaddr_parse_ip(ip, &ss, &sslen) == -1)
		return "is not a network: the address is not a numeric IPv4 "
		    "or IPv6 address";
	if (slash != NULL) {
		struct netaddr_cidr	 c;
		char			 full[NETADDR_HOST_MAX + 8];

		/* the prefix alone, on an all-zero address */
		snprintf(full, sizeof(full), "%s/%s",
		    ss.ss_family == AF_INET ? "0.0.0.0" : "::", slash + 1);
		if (netaddr_parse_cidr(full, &c) == -1)
			return ss.ss_family == AF_INET ?
			    "is not a network: the prefix length must be 0..32" :
			    "is not a network: the prefix length must be 0..128";
	}
	return "has host bits set below the prefix length";
}

/* fn_listen - the list of listeners; at least one is required */
static int
fn_listen(struct ctx *ctx, const config_setting_t *parent,
    const config_setting_t *s, const char *path, void *base)
{
	struct conf		*conf = base;
	struct conf_listen	*l, *o;
	const config_setting_t	*e;
	char			 epath[CONF_PATH_MAX], addr[64];
	size_t			 i, j;
	int			 n;

	if (s == NULL)
		return conf_err(ctx, parent, path,
		    "at least one listener is required");
	if (!config_setting_is_list(s))
		return conf_err(ctx, s, path, "must be a list of listeners "
		    "( { address = ...; port = ...; }, ... )");
	if ((n = config_setting_length(s)) == 0)
		return conf_err(ctx, s, path,
		    "at least one listener is required");
	if (n > CONF_MAX_LISTEN)
		return conf_err(ctx, s, path,
		    "too many listeners (at most %d)", CONF_MAX_LISTEN);
	conf->listen = xcalloc((size_t)n, sizeof(*conf->listen));
	conf->nlisten = (size_t)n;
	for (i = 0; i < (size_t)n; i++) {
		e = config_setting_get_elem(s, (unsigned)i);
		conf_index(epath, sizeof(epath), path, (int)i);
		if (!config_setting_is_group(e))
			return conf_err(ctx, e, epath, "must be a group "
			    "{ address = ...; port = ...; }");
		l = &conf->listen[i];
		if (conf_walk(ctx, e, epath, &listen_group, l) == -1)
			return -1;
		for (j = 0; j < i; j++) {
			o = &conf->listen[j];
			if (o->sslen == l->sslen &&
			    memcmp(&o->ss, &l->ss, l->sslen) == 0) {
				netaddr_ntop((struct sockaddr *)&l->ss, addr,
				    sizeof(addr));
				return conf_err(ctx, e, epath, "%s port %d is "
				    "already used by the listener on line %d",
				    addr, l->port, o->line);
			}
		}
	}
	return 0;
}

/* post_listen - the address and port as a sockaddr ready for bind() */
static int
post_listen(struct ctx *ctx, const config_setting_t *grp, const char *path,
    void *base)
{
	struct conf_listen	*l = base;

	if (netaddr_parse_ip(l->address, &l->ss, &l->sslen) == -1)
		return conf_err(ctx, grp, path, "no usable address");
	if (l->ss.ss_family == AF_INET)
		((struct sockaddr_in *)&l->ss)->sin_port =
		    htons((uint16_t)l->port);
	else
		((struct sockaddr_in6 *)&l->ss)->sin6_port =
		    htons((uint16_t)l->port);
	l->line = config_setting_source_line(grp);
	return 0;
}

/* fn_trusted - networks that may relay without AUTH on this listener */
static int
fn_trusted(struct ctx *ctx, const config_setting_t *parent,
    const config_setting_t *s, const char *path, void *base)
{
	struct conf_listen	*l = base;
	const config_setting_t	*e;
	const char		*str = NULL;
	char			 epath[CONF_PATH_MAX];
	char			 show[CONF_SHOW_MAX * 4 + 8];
	int			 i, n;

	(void)parent;
	if (s == NULL)
		return 0;
	if (conf_strings(ctx, s, path, CONF_MAX_TRUSTED,
	    "\"10.0.0.0/8\"") == -1)
		return -1;
	n = config_setting_length(s);
	l->trusted = xcalloc((size_t)n, sizeof(*l->trusted));
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(s, (unsigned)i);
		str = config_setting_get_string(e);
		if (netaddr_parse_cidr(str, &l->trusted[i]) == -1) {
			conf_index(epath, sizeof(epath), path, i);
			return conf_err(ctx, e, epath, "%s %s",
			    conf_show(str, show, sizeof(show)), cidr_why(str));
		}
		l->ntrusted++;
	}
	return 0;
}

/* post_tls - certificate and key come as a pair */
static int
post_tls(struct ctx *ctx, const config_setting_t *grp, const char *path,
    void *base)
{
	struct conf	*conf = base;
	char		 kpath[CONF_PATH_MAX];

	if ((conf->tls.certificate == NULL) != (conf->tls.key == NULL)) {
		conf_join(kpath, sizeof(kpath), path,
		    conf->tls.key == NULL ? "key" : "certificate");
		return conf_err(ctx, grp, kpath, "required when tls.%s is set",
		    conf->tls.key == NULL ? "certificate" : "key");
	}
	return 0;
}

/* fn_redis_address - "host:port" or "unix:/absolute/path" */
static int
fn_redis_address(struct ctx *ctx, const config_setting_t *parent,
    const config_setting_t *s, const char *path, void *base)
{
	struct conf		*conf = base;
	struct sockaddr_un	 sun;
	const char		*str = NULL;
	char			 show[CONF_SHOW_MAX * 4 + 8];

	(void)parent;
	if (s == NULL)
		return 0;
	if (conf_get_string(ctx, s, path, &str) == -1)
		return -1;
	conf_show(str, show, sizeof(show));
	if (strncmp(str, "unix:", 5) == 0) {
		if (str[5] != '/' || check_text(str + 5) != NULL)
			return conf_err(ctx, s, path, "%s: the socket must be "
			    "an absolute path (\"unix:/run/redis.sock\")", show);
		if (strlen(str + 5) >= sizeof(sun.sun_path))
			return conf_err(ctx, s, path, "%s: the socket path is "
			    "longer than %zu bytes", show,
			    sizeof(sun.sun_path) - 1);
		conf->redis.unix_path = xstrdup(str + 5);
	} else {
		struct sockaddr_storage	 ss;
		socklen_t		 sslen;

		if (netaddr_parse_hostport(str, &conf->redis.tcp) == -1)
			return conf_err(ctx, s, path, "%s is not \"host:port\" "
			    "(port 1..65535) or \"unix:/path\"", show);
		/*
		 * hiredis resolves a name on every connect, reading
		 * /etc/hosts, which the sandboxes of authd and queued
		 * forbid: a name would be a crash loop, not a lookup.
		 */
		if (netaddr_parse_ip(conf->redis.tcp.host, &ss, &sslen) == -1)
			return conf_err(ctx, s, path, "%s: give the server's IP "
			    "address, not a host name", show);
	}
	conf->redis.address = xstrdup(str);
	return 0;
}

/*
 * post_redis - an embedded server or an address, never both; with
 * neither, sluiced runs its own
 */
static int
post_redis(struct ctx *ctx, const config_setting_t *grp, const char *path,
    void *base)
{
	struct conf		*conf = base;
	const config_setting_t	*emb = NULL, *pw = NULL;
	char			 kpath[CONF_PATH_MAX];

	if (grp != NULL) {
		emb = config_setting_get_member(grp, "embedded");
		pw = config_setting_get_member(grp, "password_file");
	}
	if (conf->redis.address != NULL) {
		if (conf->redis.embedded) {
			conf_join(kpath, sizeof(kpath), path, "embedded");
			return conf_err(ctx, emb, kpath, "cannot be true "
			    "together with redis.address");
		}
		return 0;
	}
	if (emb != NULL && !conf->redis.embedded) {
		conf_join(kpath, sizeof(kpath), path, "address");
		return conf_err(ctx, emb, kpath,
		    "required when embedded = false");
	}
	conf->redis.embedded = 1;
	if (pw != NULL) {
		conf_join(kpath, sizeof(kpath), path, "password_file");
		return conf_err(ctx, pw, kpath, "only for a server given "
		    "by redis.address; the embedded one has a private "
		    "socket");
	}
	return 0;
}

/* post_limits - a single client cannot be allowed more than everyone */
static int
post_limits(struct ctx *ctx, const config_setting_t *grp, const char *path,
    void *base)
{
	struct conf	*conf = base;
	char		 kpath[CONF_PATH_MAX];

	if (conf->limits.connections_per_ip > conf->limits.connections) {
		conf_join(kpath, sizeof(kpath), path, "connections_per_ip");
		return conf_err(ctx, grp != NULL ? config_setting_get_member(grp,
		    "connections_per_ip") : NULL, kpath, "%d is more than "
		    "limits.connections (%d)", conf->limits.connections_per_ip,
		    conf->limits.connections);
	}
	return 0;
}

/* post_queue - retries grow from retry_min to retry_max within lifetime */
static int
post_queue(struct ctx *ctx, const config_setting_t *grp, const char *path,
    void *base)
{
	struct conf	*conf = base;
	char		 kpath[CONF_PATH_MAX], a[32], b[32];
	const char	*key = NULL, *other = NULL;
	uint32_t	 v = 0, w = 0;

	if (conf->queue.retry_min > conf->queue.retry_max) {
		key = "retry_min";
		other = "retry_max";
		v = conf->queue.retry_min;
		w = conf->queue.retry_max;
	} else if (conf->queue.retry_max > conf->queue.lifetime) {
		key = "retry_max";
		other = "lifetime";
		v = conf->queue.retry_max;
		w = conf->queue.lifetime;
	}
	if (key == NULL)
		return 0;
	conf_join(kpath, sizeof(kpath), path, key);
	conf_duration_str(v, a, sizeof(a));
	conf_duration_str(w, b, sizeof(b));
	return conf_err(ctx, grp != NULL ? config_setting_get_member(grp, key) :
	    NULL, kpath, "%s is more than queue.%s (%s)", a, other, b);
}

/* fn_routes - the route list; without one, deliver to MX hosts */
static int
fn_routes(struct ctx *ctx, const config_setting_t *parent,
    const config_setting_t *s, const char *path, void *base)
{
	struct conf		*conf = base;
	struct conf_route	*r;
	const config_setting_t	*e;
	char			 epath[CONF_PATH_MAX];
	size_t			 i;
	int			 n;

	(void)parent;
	if (s == NULL) {
		conf->delivery.routes = xcalloc(1, sizeof(*r));
		conf->delivery.nroutes = 1;
		r = &conf->delivery.routes[0];
		r->domains = xcalloc(1, sizeof(*r->domains));
		r->domains[0] = xstrdup("*");
		r->ndomains = 1;
		r->mx = 1;
		r->tls = CONF_ROUTE_TLS_MAY;
		r->messages_per_connection = 100;
		r->idle_timeout = 5;
		r->backoff = MINUTE;
		return 0;
	}
	if (!config_setting_is_list(s))
		return conf_err(ctx, s, path, "must be a list of routes "
		    "( { domains = [ ... ]; ... }, ... )");
	if ((n = config_setting_length(s)) == 0)
		return conf_err(ctx, s, path, "at least one route is required "
		    "(remove delivery.routes for direct MX delivery)");
	if (n > CONF_MAX_ROUTES)
		return conf_err(ctx, s, path, "too many routes (at most %d)",
		    CONF_MAX_ROUTES);
	conf->delivery.routes = xcalloc((size_t)n, sizeof(*r));
	conf->delivery.nroutes = (size_t)n;
	for (i = 0; i < (size_t)n; i++) {
		e = config_setting_get_elem(s, (unsigned)i);
		conf_index(epath, sizeof(epath), path, (int)i);
		if (!config_setting_is_group(e))
			return conf_err(ctx, e, epath, "must be a group "
			    "{ domains = [ ... ]; ... }");
		if (conf_walk(ctx, e, epath, &route_group,
		    &conf->delivery.routes[i]) == -1)
			return -1;
	}
	return 0;
}

/* fn_domains - "*", "*.example.org" or "example.org", kept lower case */
static int
fn_domains(struct ctx *ctx, const config_setting_t *parent,
    const config_setting_t *s, const char *path, void *base)
{
	struct conf_route	*r = base;
	const config_setting_t	*e;
	const char		*str = NULL, *d;
	char			 epath[CONF_PATH_MAX], *p;
	char			 show[CONF_SHOW_MAX * 4 + 8];
	int			 i, n;

	if (s == NULL)
		return conf_err(ctx, parent, path, "required, but not set");
	if (conf_strings(ctx, s, path, CONF_MAX_DOMAINS,
	    "\"example.org\"") == -1)
		return -1;
	n = config_setting_length(s);
	r->domains = xcalloc((size_t)n, sizeof(*r->domains));
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(s, (unsigned)i);
		str = config_setting_get_string(e);
		d = strncmp(str, "*.", 2) == 0 ? str + 2 : str;
		if (strcmp(str, "*") != 0 && !netaddr_domain_valid(d)) {
			conf_index(epath, sizeof(epath), path, i);
			return conf_err(ctx, e, epath, "%s is not \"*\", "
			    "\"*.domain\" or a domain",
			    conf_show(str, show, sizeof(show)));
		}
		r->domains[i] = xstrdup(str);
		r->ndomains++;
		/* domains compare without regard to case (RFC 5321 2.4) */
		for (p = r->domains[i]; *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
	}
	return 0;
}

/* fn_smarthost - the relay as "host:port" */
static int
fn_smarthost(struct ctx *ctx, const config_setting_t *parent,
    const config_setting_t *s, const char *path, void *base)
{
	struct conf_route	*r = base;
	const char		*str = NULL;
	char			 show[CONF_SHOW_MAX * 4 + 8];

	(void)parent;
	if (s == NULL)
		return 0;
	if (conf_get_string(ctx, s, path, &str) == -1)
		return -1;
	if (netaddr_parse_hostport(str, &r->relay) == -1)
		return conf_err(ctx, s, path, "%s is not \"host:port\" "
		    "(port 1..65535; \"[addr]:port\" for IPv6)",
		    conf_show(str, show, sizeof(show)));
	r->smarthost = xstrdup(str);
	return 0;
}

/* fn_rate - "N/s", "N/m", "N/h" or "N/d" */
static int
fn_rate(struct ctx *ctx, const config_setting_t *parent,
    const config_setting_t *s, const char *path, void *base)
{
	struct conf_route	*r = base;
	const char		*str = NULL;
	char			 show[CONF_SHOW_MAX * 4 + 8];

	(void)parent;
	if (s == NULL)
		return 0;
	if (conf_get_string(ctx, s, path, &str) == -1)
		return -1;
	if (rate_parse(str, &r->rate_count, &r->rate_period) == -1)
		return conf_err(ctx, s, path, "invalid rate %s (use a count "
		    "above 0 per s, m, h or d, such as \"20/s\")",
		    conf_show(str, show, sizeof(show)));
	return 0;
}

/* post_route - exactly one way out, and settings that fit it */
static int
post_route(struct ctx *ctx, const config_setting_t *grp, const char *path,
    void *base)
{
	struct conf_route	*r = base;
	char			 kpath[CONF_PATH_MAX];

	r->line = config_setting_source_line(grp);
	if (r->smarthost != NULL && r->mx) {
		conf_join(kpath, sizeof(kpath), path, "mx");
		return conf_err(ctx, config_setting_get_member(grp, "mx"),
		    kpath, "cannot be true together with smarthost");
	}
	if (r->smarthost == NULL && !r->mx)
		return conf_err(ctx, grp, path,
		    "needs either smarthost = \"host:port\" or mx = true");
	if ((r->auth_user == NULL) != (r->auth_password_file == NULL)) {
		conf_join(kpath, sizeof(kpath), path, r->auth_user == NULL ?
		    "auth_user" : "auth_password_file");
		return conf_err(ctx, grp, kpath, "required when %s is set",
		    r->auth_user == NULL ? "auth_password_file" : "auth_user");
	}
	/* MX hosts take no AUTH from strangers, nor TLS on connect */
	if (r->mx && r->auth_user != NULL) {
		conf_join(kpath, sizeof(kpath), path, "auth_user");
		return conf_err(ctx, config_setting_get_member(grp,
		    "auth_user"), kpath, "only with a smarthost, not mx");
	}
	if (r->mx && r->tls == CONF_ROUTE_TLS_IMPLICIT) {
		conf_join(kpath, sizeof(kpath), path, "tls");
		return conf_err(ctx, config_setting_get_member(grp, "tls"),
		    kpath, "\"implicit\" only with a smarthost, not mx");
	}
	return 0;
}

/* fn_dns_servers - resolvers as "ip:port", "[v6]:port" or a bare ip */
static int
fn_dns_servers(struct ctx *ctx, const config_setting_t *parent,
    const config_setting_t *s, const char *path, void *base)
{
	struct conf		*conf = base;
	struct netaddr_hostport	*hp;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	const config_setting_t	*e;
	const char		*str = NULL;
	char			 epath[CONF_PATH_MAX];
	char			 show[CONF_SHOW_MAX * 4 + 8];
	int			 i, n;

	(void)parent;
	if (s == NULL)
		return 0;
	if (conf_strings(ctx, s, path, CONF_MAX_DNS,
	    "\"127.0.0.1:53\"") == -1)
		return -1;
	n = config_setting_length(s);
	conf->dns.servers = xcalloc((size_t)n, sizeof(*conf->dns.servers));
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(s, (unsigned)i);
		str = config_setting_get_string(e);
		hp = &conf->dns.servers[i];
		if (netaddr_parse_ip(str, &ss, &sslen) == 0 &&
		    strlcpy(hp->host, str, sizeof(hp->host)) <
		    sizeof(hp->host))
			hp->port = 53;
		else if (netaddr_parse_hostport(str, hp) == -1 ||
		    netaddr_parse_ip(hp->host, &ss, &sslen) == -1) {
			conf_index(epath, sizeof(epath), path, i);
			return conf_err(ctx, e, epath, "%s is not \"ip:port\" "
			    "with a numeric address (no names: they would "
			    "need a resolver)",
			    conf_show(str, show, sizeof(show)));
		}
		conf->dns.nservers++;
	}
	return 0;
}

/*
 * fn_metrics_listen - "ip:port" or "[ipv6]:port" of the metrics
 * endpoint; loopback when the group is there without it
 */
static int
fn_metrics_listen(struct ctx *ctx, const config_setting_t *parent,
    const config_setting_t *s, const char *path, void *base)
{
	struct conf		*conf = base;
	struct netaddr_hostport	 hp;
	const char		*str = CONF_METRICS_DEFAULT;
	char			 show[CONF_SHOW_MAX * 4 + 8];

	if (parent == NULL)
		return 0;		/* no metrics group: no endpoint */
	if (s != NULL && conf_get_string(ctx, s, path, &str) == -1)
		return -1;
	conf_show(str, show, sizeof(show));
	if (netaddr_parse_hostport(str, &hp) == -1)
		return conf_err(ctx, s, path, "%s is not \"ip:port\" "
		    "(port 1..65535; \"[addr]:port\" for IPv6)", show);
	/* queued binds it in its sandbox-to-be: no resolver there */
	if (netaddr_parse_ip(hp.host, &conf->metrics.ss,
	    &conf->metrics.sslen) == -1)
		return conf_err(ctx, s, path, "%s: give a numeric address, "
		    "not a host name", show);
	if (conf->metrics.ss.ss_family == AF_INET)
		((struct sockaddr_in *)&conf->metrics.ss)->sin_port =
		    htons((uint16_t)hp.port);
	else
		((struct sockaddr_in6 *)&conf->metrics.ss)->sin6_port =
		    htons((uint16_t)hp.port);
	conf->metrics.listen = xstrdup(str);
	return 0;
}

/* post_metrics - the endpoint is on exactly when the group is there */
static int
post_metrics(struct ctx *ctx, const config_setting_t *grp, const char *path,
    void *base)
{
	struct conf	*conf = base;

	(void)ctx;
	(void)path;
	conf->metrics.enabled = grp != NULL;
	return 0;
}

/*
 * conf_check_metrics - the endpoint must not take the port of an SMTP
 * listener; a wildcard address on either side takes it on every one
 */
static int
conf_check_metrics(struct ctx *ctx, const config_setting_t *root)
{
	const struct conf		*conf = ctx->conf;
	const struct conf_listen	*l;
	const config_setting_t		*grp = NULL, *s = NULL;
	int				 port;
	size_t				 i;

	if (!conf->metrics.enabled)
		return 0;
	port = conf_sa_port(&conf->metrics.ss);
	for (i = 0; i < conf->nlisten; i++) {
		l = &conf->listen[i];
		if (l->port != port)
			continue;
		if (!conf_sa_any(&l->ss) && !conf_sa_any(&conf->metrics.ss) &&
		    (l->sslen != conf->metrics.sslen ||
		    memcmp(&l->ss, &conf->metrics.ss, l->sslen) != 0))
			continue;
		if (root != NULL)
			grp = config_setting_get_member(root, "metrics");
		if (grp != NULL)
			s = config_setting_get_member(grp, "listen");
		return conf_err(ctx, s != NULL ? s : grp, s != NULL ?
		    "metrics.listen" : "metrics", "port %d is already used by "
		    "the listener on line %d", port, l->line);
	}
	return 0;
}

/* conf_sa_port - the port of an IPv4 or IPv6 socket address */
static int
conf_sa_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

/* conf_sa_any - 0.0.0.0 or :: */
static int
conf_sa_any(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_addr.s_addr ==
		    htonl(INADDR_ANY);
	return IN6_IS_ADDR_UNSPECIFIED(
	    &((const struct sockaddr_in6 *)ss)->sin6_addr);
}

/*
 * post_root - values that depend on several groups or on the machine,
 * resolved once all keys are read
 */
static int
post_root(struct ctx *ctx, const config_setting_t *grp, const char *path,
    void *base)
{
	struct conf		*conf = base;
	struct sockaddr_un	 sun;
	char			 host[256];
	long			 ncpu;

	(void)path;
	if (conf->hostname == NULL) {
		if (gethostname(host, sizeof(host)) == -1)
			host[0] = '\0';
		host[sizeof(host) - 1] = '\0';
		if (!netaddr_domain_valid(host))
			return conf_err(ctx, grp, "hostname", "not set, and the "
			    "system host name is not usable; set hostname");
		conf->hostname = xstrdup(host);
	}
	if (conf->smtpd_processes == 0) {
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		if (ncpu < 1)
			ncpu = 1;
		if (ncpu > CONF_MAX_PROCESSES)
			ncpu = CONF_MAX_PROCESSES;
		conf->smtpd_processes = (int)ncpu;
	}
	if (conf->tls.certificate == NULL) {
		conf->tls.self_signed = 1;
		xasprintf(&conf->tls.certificate, "%s/tls/selfsigned.crt",
		    conf->state_dir);
		xasprintf(&conf->tls.key, "%s/tls/selfsigned.key",
		    conf->state_dir);
	}
	if (conf->redis.embedded) {
		xasprintf(&conf->redis.unix_path, "%s/redis/redis.sock",
		    conf->state_dir);
		if (strlen(conf->redis.unix_path) >= sizeof(sun.sun_path))
			return conf_err(ctx, grp != NULL ?
			    config_setting_get_member(grp, "state_dir") : NULL,
			    "state_dir", "too long for the embedded redis "
			    "socket %s/redis/redis.sock (at most %zu bytes)",
			    conf->state_dir, sizeof(sun.sun_path) - 1);
	}
	return conf_check_metrics(ctx, grp);
}
