/*
 * NAME
 *	sandbox - one seccomp filter per process kind (libseccomp)
 * SYNOPSIS
 *	#include "sandbox.h"
 *
 *	int sandbox_apply(enum sandbox_profile profile);
 *	const char *sandbox_profile_str(enum sandbox_profile profile);
 * DESCRIPTION
 *	sandbox_apply() sets PR_SET_NO_NEW_PRIVS and loads an allow-list
 *	filter for the given process kind: the system calls that glibc,
 *	libevent, OpenSSL, hiredis, c-ares and libsodium make on behalf of
 *	that process once it runs its event loop, and nothing else.  No
 *	profile allows execve, ptrace, mount, module loading, or changing
 *	ids.  A call outside the list raises SIGSYS; the handler installed
 *	here writes "sandbox: blocked system call N (name)" to stderr with
 *	async-signal-safe calls and kills the process with SIGSYS, so
 *	sluiced reports the cause and restarts the child.
 *
 *	Profiles:
 *	  SANDBOX_SMTPD     accept, sockets it was given, TLS, no open(2)
 *	  SANDBOX_AUTHD     connect to Redis (unix or tcp), worker threads
 *	  SANDBOX_QUEUED    connect to Redis, memfd with seals, threads
 *	  SANDBOX_DELIVERD  outbound tcp, udp for DNS, no files
 *	  SANDBOX_TEST      the base set only (for unit tests)
 * DIAGNOSTICS
 *	Returns 0, or -1 after logging which step failed.
 */
#ifndef SLUICE_SANDBOX_H
#define SLUICE_SANDBOX_H

enum sandbox_profile {
	SANDBOX_SMTPD,
	SANDBOX_AUTHD,
	SANDBOX_QUEUED,
	SANDBOX_DELIVERD,
	SANDBOX_TEST
};

int		 sandbox_apply(enum sandbox_profile);
const char	*sandbox_profile_str(enum sandbox_profile);

#endif
