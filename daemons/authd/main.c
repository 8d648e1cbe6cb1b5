/*
 * authd - the authentication service: verifies credentials against the user store in Redis (skeleton)
 *
 * For now it runs the common child life (configuration, privilege drop,
 * sandbox, heartbeats, sibling channels) and nothing else; the work
 * itself arrives with its own issue.
 */
#include "config.h"

#include "child.h"

static const struct child_ops authd_ops = {
	.kind = PROC_AUTHD,
	.sandbox = SANDBOX_AUTHD,
};

int
main(int argc, char **argv)
{
	return child_main(argc, argv, &authd_ops);
}
