/*
 * deliverd - a delivery worker: the SMTP client that relays to smarthosts and MX hosts (skeleton)
 *
 * For now it runs the common child life (configuration, privilege drop,
 * sandbox, heartbeats, sibling channels) and nothing else; the work
 * itself arrives with its own issue.
 */
#include "config.h"

#include "child.h"

static const struct child_ops deliverd_ops = {
	.kind = PROC_DELIVERD,
	.sandbox = SANDBOX_DELIVERD,
};

int
main(int argc, char **argv)
{
	return child_main(argc, argv, &deliverd_ops);
}
