/*
 * sluicectl.h - what the parts of sluicectl share
 *
 * main.c parses the command line, loads the configuration, connects to
 * Redis and owns struct ctl; it also has the helpers every verb uses
 * (one-line errors, Redis commands built as argument vectors, printing
 * peer-chosen text safely).  queue.c has the queue verbs and stats,
 * user.c the user verbs.
 * A verb returns the exit status; a runtime failure that stops
 * everything goes through ctl_die(), which prints one line and exits 1.
 */
#ifndef SLUICECTL_H
#define SLUICECTL_H

#include <stddef.h>
#include <stdio.h>
#include <time.h>

#include "qstore.h"

struct conf;
struct redisContext;
struct redisReply;

#define CTL_ARGS_MAX	16	/* words of one Redis command */

struct ctl {
	const char		*conf_path;
	struct conf		*conf;
	struct redisContext	*rc;
	int			 json;		/* --json */
	long long		 now;		/* Unix seconds, read once */
	long long		 now_ms;
	/* the queue-wide keys, under redis.prefix */
	char			 k_ids[QSTORE_NAME_MAX];
	char			 k_schedule[QSTORE_NAME_MAX];
	char			 k_stats[QSTORE_NAME_MAX];
	char			 k_events[QSTORE_NAME_MAX];
	char			 k_flush[QSTORE_NAME_MAX];
};

/* a verb: the words after it, options taken out */
typedef int	ctl_verb_fn(struct ctl *, int, char **);

/* main.c */
void	ctl_die(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	ctl_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
struct redisReply *ctl_redis(struct ctl *, const char *, ...)
	    __attribute__((sentinel));
void	ctl_redis_append(struct ctl *, const char *, ...)
	    __attribute__((sentinel));
struct redisReply *ctl_redis_get(struct ctl *);
void	ctl_key(struct ctl *, char *, const char *, const char *);
void	ctl_print(FILE *, const char *, size_t, int);
void	ctl_duration(char *, size_t, long long);
void	ctl_time(char *, size_t, long long);
int	ctl_num(const char *, long long *);
const char *ctl_shown(const char *, char *, size_t);

#define CTL_PRINT_LINE	0	/* one line: every control byte escaped */
#define CTL_PRINT_TEXT	1	/* CRLF and LF end lines, TAB stays */

/* queue.c */
ctl_verb_fn	queue_list;
ctl_verb_fn	queue_show;
ctl_verb_fn	queue_cat;
ctl_verb_fn	queue_flush;
ctl_verb_fn	queue_delete;
ctl_verb_fn	queue_hold;
ctl_verb_fn	queue_release;
ctl_verb_fn	stats_show;

/* user.c */
ctl_verb_fn	user_add;
ctl_verb_fn	user_passwd;
ctl_verb_fn	user_del;
ctl_verb_fn	user_show;
ctl_verb_fn	user_disable;
ctl_verb_fn	user_enable;
ctl_verb_fn	user_senders;
ctl_verb_fn	user_limits;
ctl_verb_fn	user_list;

#endif
