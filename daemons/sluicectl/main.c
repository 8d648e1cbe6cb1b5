/*
 * sluicectl - the administrator's tool: the queue, the users and the
 * counters in Redis
 *
 * It is a short-lived command, not a daemon: it reads the same
 * configuration as sluiced, talks to Redis synchronously with hiredis
 * and exits.  Commands are looked up in one table of group and verb
 * (ctl_cmds[]), so a new group is a few rows there.  Every Redis
 * command is sent as an argument vector, never formatted: ids, keys and
 * everything else an operator types travel as separate arguments.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <sodium.h>

#include "compat/compat.h"
#include "conf.h"
#include "json.h"
#include "log.h"
#include "qstore.h"
#include "redis_ev.h"
#include "sluicectl.h"
#include "xmalloc.h"

#ifdef CONF_DEFAULT_FILE
#define CTL_CONF_DEFAULT	CONF_DEFAULT_FILE
#else
#define CTL_CONF_DEFAULT	"/etc/sluice/sluice.conf"
#endif

#define CTL_CONNECT_TIMEOUT	5	/* seconds */
#define CTL_COMMAND_TIMEOUT	30	/* a long ZRANGE on a big queue */

#define CMD_JSON	0x01	/* takes --json */
#define CMD_RAW		0x02	/* gets its words as they are; no config */
#define CMD_OPTS	0x04	/* parses its own options (all but --json) */

struct ctl_cmd {
	const char	*group;
	const char	*verb;		/* NULL: the group is the command */
	ctl_verb_fn	*fn;
	int		 minargs;
	int		 maxargs;	/* -1: no limit */
	int		 flags;		/* CMD_* */
	const char	*args;		/* for the usage line */
};

static const struct ctl_cmd ctl_cmds[] = {
	{ "queue", "list",    queue_list,    0, 0,  CMD_JSON, "[--json]" },
	{ "queue", "show",    queue_show,    1, 1,  CMD_JSON, "ID [--json]" },
	{ "queue", "cat",     queue_cat,     1, 1,  0,        "ID" },
	{ "queue", "flush",   queue_flush,   0, -1, 0,        "[ID ...]" },
	{ "queue", "delete",  queue_delete,  1, -1, 0,        "ID ..." },
	{ "queue", "hold",    queue_hold,    1, -1, 0,        "ID ..." },
	{ "queue", "release", queue_release, 1, -1, 0,        "ID ..." },
	{ "stats", NULL,      stats_show,    0, 0,  CMD_JSON, "[--json]" },
	{ "user",  "add",     user_add,      1, -1, CMD_OPTS,
	    "LOGIN [--password-stdin] [--sender PATTERN]..." },
	{ "user",  "passwd",  user_passwd,   1, -1, CMD_OPTS,
	    "LOGIN [--password-stdin]" },
	{ "user",  "del",     user_del,      1, 1,  0,        "LOGIN" },
	{ "user",  "show",    user_show,     1, 1,  CMD_JSON,
	    "LOGIN [--json]" },
	{ "user",  "disable", user_disable,  1, 1,  0,        "LOGIN" },
	{ "user",  "enable",  user_enable,   1, 1,  0,        "LOGIN" },
	{ "user",  "senders", user_senders,  3, 3,  0,
	    "LOGIN add|del PATTERN" },
	{ "user",  "limits",  user_limits,   1, -1, CMD_OPTS,
	    "LOGIN [--messages-per-hour N] [--recipients-per-hour N]" },
	{ "user",  "list",    user_list,     0, 0,  CMD_JSON, "[--json]" },
};
#define CTL_NCMDS	(sizeof(ctl_cmds) / sizeof(ctl_cmds[0]))

static void	usage(void) __attribute__((noreturn));
static void	usage_group(const char *) __attribute__((noreturn));
static void	usage_cmd(const struct ctl_cmd *) __attribute__((noreturn));
static const struct ctl_cmd *ctl_lookup(int, char **, int *);
static int	ctl_words(const struct ctl_cmd *, struct ctl *, int, char **,
		    char **);
static void	ctl_connect(struct ctl *);
static void	ctl_keys(struct ctl *);
static void	ctl_vredis(struct ctl *, const char *, va_list);
static struct redisReply *ctl_checked(struct ctl *, struct redisReply *,
		    const char *);

/* usage - every group on one line */
static void
usage(void)
{
	size_t	 i, j;

	fprintf(stderr, "usage: sluicectl [-c file] ");
	for (i = 0; i < CTL_NCMDS; i++) {
		for (j = 0; j < i; j++)
			if (strcmp(ctl_cmds[j].group, ctl_cmds[i].group) == 0)
				break;
		if (j == i)
			fprintf(stderr, "%s%s", i == 0 ? "" : "|",
			    ctl_cmds[i].group);
	}
	fprintf(stderr, " ...\n");
	exit(1);
}

/* usage_group - the verbs of one group on one line */
static void
usage_group(const char *group)
{
	size_t	 i;
	int	 n = 0;

	fprintf(stderr, "usage: sluicectl [-c file] %s ", group);
	for (i = 0; i < CTL_NCMDS; i++)
		if (strcmp(ctl_cmds[i].group, group) == 0 &&
		    ctl_cmds[i].verb != NULL)
			fprintf(stderr, "%s%s", n++ ? "|" : "",
			    ctl_cmds[i].verb);
	fprintf(stderr, " ...\n");
	exit(1);
}

static void
usage_cmd(const struct ctl_cmd *c)
{
	fprintf(stderr, "usage: sluicectl [-c file] %s%s%s %s\n", c->group,
	    c->verb != NULL ? " " : "", c->verb != NULL ? c->verb : "",
	    c->args);
	exit(1);
}

int
main(int argc, char **argv)
{
	const struct ctl_cmd	*c;
	struct ctl		 ctl;
	struct timespec		 ts;
	char			 err[1024];
	char			**words;
	int			 ch, used, nwords, rc;

	memset(&ctl, 0, sizeof(ctl));
	ctl.conf_path = CTL_CONF_DEFAULT;
	/* errors of the library (out of memory) on stderr only */
	log_init("sluicectl", LOG_F_NOSYSLOG | LOG_F_STDERR);

	/*
	 * "+": options end at the command, whose own come after it.
	 * getopt's own complaint would be a second line on stderr.
	 */
	opterr = 0;
	while ((ch = getopt(argc, argv, "+c:V")) != -1) {
		switch (ch) {
		case 'c':
			ctl.conf_path = optarg;
			break;
		case 'V':
			printf("sluicectl %s\n", SLUICE_VERSION);
			exit(0);
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0)
		usage();

	c = ctl_lookup(argc, argv, &used);
	argc -= used;
	argv += used;
	if (c->flags & CMD_RAW)
		return c->fn(&ctl, argc, argv);

	words = xcalloc((size_t)argc + 1, sizeof(*words));
	nwords = ctl_words(c, &ctl, argc, argv, words);

	if ((ctl.conf = conf_load(ctl.conf_path, err, sizeof(err))) == NULL)
		ctl_die("%s", err);
	if (sodium_init() == -1)
		ctl_die("sodium_init failed");
	clock_gettime(CLOCK_REALTIME, &ts);
	ctl.now = (long long)ts.tv_sec;
	ctl.now_ms = ctl.now * 1000 + ts.tv_nsec / 1000000;
	ctl_keys(&ctl);
	ctl_connect(&ctl);

	rc = c->fn(&ctl, nwords, words);

	if (fflush(stdout) == EOF || ferror(stdout))
		ctl_die("standard output: %s", strerror(errno));
	redisFree(ctl.rc);
	conf_free(ctl.conf);
	free(words);
	return rc;
}

/* ctl_lookup - the table row for the words in front, or a usage line */
static const struct ctl_cmd *
ctl_lookup(int argc, char **argv, int *used)
{
	size_t	 i;
	int	 known = 0;

	for (i = 0; i < CTL_NCMDS; i++) {
		if (strcmp(ctl_cmds[i].group, argv[0]) != 0)
			continue;
		known = 1;
		if (ctl_cmds[i].verb == NULL) {
			*used = 1;
			return &ctl_cmds[i];
		}
		if (argc > 1 && strcmp(ctl_cmds[i].verb, argv[1]) == 0) {
			*used = 2;
			return &ctl_cmds[i];
		}
	}
	if (known)
		usage_group(argv[0]);
	usage();
}

/*
 * ctl_words - take the options out of a command's words, check how
 * many are left
 *
 * Options may come anywhere after the verb.  Ids never start with a
 * dash, so anything else that does is a mistake, not an id.
 */
static int
ctl_words(const struct ctl_cmd *c, struct ctl *ctl, int argc, char **argv,
    char **words)
{
	int	 i, n = 0, opts = 1;

	for (i = 0; i < argc; i++) {
		if (opts && strcmp(argv[i], "--") == 0 &&
		    !(c->flags & CMD_OPTS))
			opts = 0;
		else if (opts && strcmp(argv[i], "--json") == 0 &&
		    (c->flags & CMD_JSON))
			ctl->json = 1;
		else if (c->flags & CMD_OPTS)
			words[n++] = argv[i];
		else if (opts && argv[i][0] == '-' && argv[i][1] != '\0')
			usage_cmd(c);
		else
			words[n++] = argv[i];
	}
	if (n < c->minargs || (c->maxargs != -1 && n > c->maxargs))
		usage_cmd(c);
	return n;
}

static void
ctl_keys(struct ctl *ctl)
{
	ctl_key(ctl, ctl->k_ids, "ids", NULL);
	ctl_key(ctl, ctl->k_schedule, "schedule", NULL);
	ctl_key(ctl, ctl->k_stats, "stats", NULL);
	ctl_key(ctl, ctl->k_events, "events", NULL);
	ctl_key(ctl, ctl->k_flush, "flush", NULL);
}

/* ctl_connect - a synchronous connection, authenticated when configured */
static void
ctl_connect(struct ctl *ctl)
{
	const struct conf	*conf = ctl->conf;
	struct timeval		 tv = { CTL_CONNECT_TIMEOUT, 0 };
	redisReply		*r;
	char			 where[300], err[1024];
	char			*pw;

	if (conf->redis.unix_path != NULL) {
		snprintf(where, sizeof(where), "%s", conf->redis.unix_path);
		ctl->rc = redisConnectUnixWithTimeout(conf->redis.unix_path,
		    tv);
	} else {
		snprintf(where, sizeof(where), "%s:%d", conf->redis.tcp.host,
		    conf->redis.tcp.port);
		ctl->rc = redisConnectWithTimeout(conf->redis.tcp.host,
		    conf->redis.tcp.port, tv);
	}
	if (ctl->rc == NULL)
		ctl_die("redis %s: cannot allocate a connection", where);
	if (ctl->rc->err)
		ctl_die("redis %s: %s", where, ctl->rc->errstr);
	tv.tv_sec = CTL_COMMAND_TIMEOUT;
	if (redisSetTimeout(ctl->rc, tv) != REDIS_OK)
		ctl_die("redis %s: cannot set a timeout", where);

	if (conf->redis.password_file == NULL)
		return;
	if ((pw = redis_ev_read_password(conf->redis.password_file, err,
	    sizeof(err))) == NULL)
		ctl_die("%s", err);
	r = ctl_redis(ctl, "AUTH", pw, (char *)NULL);
	sodium_memzero(pw, strlen(pw));
	free(pw);
	freeReplyObject(r);
}

void
ctl_die(const char *fmt, ...)
{
	va_list	 ap;

	fflush(stdout);
	fprintf(stderr, "sluicectl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

void
ctl_warn(const char *fmt, ...)
{
	va_list	 ap;

	fflush(stdout);
	fprintf(stderr, "sluicectl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
}

/*
 * ctl_vredis - append one command, whose words are C strings up to a
 * NULL, to the output buffer; the next redisGetReply() sends it
 */
static void
ctl_vredis(struct ctl *ctl, const char *cmd, va_list ap)
{
	const char	*argv[CTL_ARGS_MAX];
	size_t		 argvlen[CTL_ARGS_MAX];
	const char	*s;
	int		 argc = 0;

	argv[argc] = cmd;
	argvlen[argc++] = strlen(cmd);
	while ((s = va_arg(ap, const char *)) != NULL) {
		log_assert(argc < CTL_ARGS_MAX);
		argv[argc] = s;
		argvlen[argc++] = strlen(s);
	}
	if (redisAppendCommandArgv(ctl->rc, argc, argv, argvlen) != REDIS_OK)
		ctl_die("redis: %s: %s", cmd, ctl->rc->errstr);
}

/* ctl_checked - a reply, or one line and exit for a dead connection */
static struct redisReply *
ctl_checked(struct ctl *ctl, struct redisReply *r, const char *cmd)
{
	if (r == NULL)
		ctl_die("redis: %s: %s", cmd, ctl->rc->err ? ctl->rc->errstr :
		    "no reply");
	if (r->type == REDIS_REPLY_ERROR)
		ctl_die("redis: %s: %s", cmd, r->str);
	return r;
}

/* ctl_redis - run one command; the caller frees the reply */
struct redisReply *
ctl_redis(struct ctl *ctl, const char *cmd, ...)
{
	va_list		 ap;
	void		*r;

	va_start(ap, cmd);
	ctl_vredis(ctl, cmd, ap);
	va_end(ap);
	if (redisGetReply(ctl->rc, &r) != REDIS_OK)
		r = NULL;
	return ctl_checked(ctl, r, cmd);
}

/* ctl_redis_append - queue one command; ctl_redis_get() reads its reply */
void
ctl_redis_append(struct ctl *ctl, const char *cmd, ...)
{
	va_list	 ap;

	va_start(ap, cmd);
	ctl_vredis(ctl, cmd, ap);
	va_end(ap);
}

struct redisReply *
ctl_redis_get(struct ctl *ctl)
{
	void	*r;

	if (redisGetReply(ctl->rc, &r) != REDIS_OK)
		r = NULL;
	return ctl_checked(ctl, r, "reply");
}

/* ctl_key - a key name under redis.prefix; the prefix is short enough */
void
ctl_key(struct ctl *ctl, char *dst, const char *kind, const char *id)
{
	if (qstore_name(dst, QSTORE_NAME_MAX, ctl->conf->redis.prefix, kind,
	    id) == -1)
		ctl_die("redis.prefix: too long for key %s", kind);
}

/*
 * ctl_print - text a peer chose, safe for a terminal
 *
 * Addresses, HELO names and remote replies could carry escape
 * sequences that rewrite the administrator's screen.  Control bytes
 * (C0, DEL and the C1 range U+0080..U+009F, which some terminals obey
 * in UTF-8 too) and bytes that are not UTF-8 are written as \xNN.
 */
void
ctl_print(FILE *fp, const char *s, size_t n, int mode)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i = 0, len;

	while (i < n) {
		if (mode == CTL_PRINT_TEXT && p[i] == '\r' && i + 1 < n &&
		    p[i + 1] == '\n') {
			i++;
			continue;
		}
		if (mode == CTL_PRINT_TEXT && (p[i] == '\n' || p[i] == '\t')) {
			putc(p[i++], fp);
			continue;
		}
		if (p[i] < 0x20 || p[i] == 0x7f) {
			fprintf(fp, "\\x%02x", p[i++]);
			continue;
		}
		len = json_utf8_len(p + i, n - i);
		if (len == 0 || (len == 2 && p[i] == 0xc2 && p[i + 1] < 0xa0)) {
			fprintf(fp, "\\x%02x", p[i++]);
			continue;
		}
		fwrite(p + i, 1, len, fp);
		i += len;
	}
}

/* ctl_duration - "45s", "3m12s", "2h5m", "4d3h": the two largest units */
void
ctl_duration(char *dst, size_t dstlen, long long secs)
{
	static const struct {
		char		 unit;
		long long	 secs;
	} units[] = { { 'd', 86400 }, { 'h', 3600 }, { 'm', 60 }, { 's', 1 } };
	size_t		 i;
	long long	 a, b;

	if (secs < 0)
		secs = 0;
	for (i = 0; i < 3 && secs < units[i].secs; i++)
		;
	a = secs / units[i].secs;
	if (i == 3) {
		snprintf(dst, dstlen, "%llds", a);
		return;
	}
	b = (secs % units[i].secs) / units[i + 1].secs;
	if (b == 0)
		snprintf(dst, dstlen, "%lld%c", a, units[i].unit);
	else
		snprintf(dst, dstlen, "%lld%c%lld%c", a, units[i].unit, b,
		    units[i + 1].unit);
}

/* ctl_time - a Unix time as local time, with its offset from UTC */
void
ctl_time(char *dst, size_t dstlen, long long t)
{
	struct tm	 tm;
	time_t		 tt = (time_t)t;

	if (localtime_r(&tt, &tm) == NULL ||
	    strftime(dst, dstlen, "%Y-%m-%d %H:%M:%S %z", &tm) == 0)
		snprintf(dst, dstlen, "%lld", t);
}

/* ctl_num - a decimal integer field of a record; -1 if it is not one */
int
ctl_num(const char *s, long long *v)
{
	const char	*errstr;

	if (s == NULL || *s == '\0')
		return -1;
	*v = strtonum(s, -9007199254740991LL, 9007199254740991LL, &errstr);
	return errstr == NULL ? 0 : -1;
}

/* ctl_shown - what the operator typed, bounded and printable, for errors */
const char *
ctl_shown(const char *s, char *dst, size_t dstlen)
{
	size_t	 n = strlen(s);

	if (n > 64)
		n = 64;
	log_printable(dst, dstlen, s, n);
	return dst;
}
