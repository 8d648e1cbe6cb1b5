/*
 * queued - the queue manager: commits messages to Redis and schedules deliveries (skeleton)
 *
 * For now it runs the common child life (configuration, privilege drop,
 * sandbox, heartbeats, sibling channels) and nothing else; the work
 * itself arrives with its own issue.
 */
#include "config.h"

#include "child.h"

static const struct child_ops queued_ops = {
	.kind = PROC_QUEUED,
	.sandbox = SANDBOX_QUEUED,
};

int
main(int argc, char **argv)
{
	return child_main(argc, argv, &queued_ops);
}
