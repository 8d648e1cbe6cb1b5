/*
 * NAME
 *	auth_proto - what smtpd asks authd, and what it hears back
 * SYNOPSIS
 *	#include "auth_proto.h"
 * DESCRIPTION
 *	smtpd never sees a password hash or Redis.  It decodes AUTH PLAIN
 *	or LOGIN itself, sends the login and password to authd, wipes its
 *	copy, and gets back a verdict and the user's policy.  Fields (u32
 *	= 4 bytes host order, str = u32 length then bytes), one request
 *	per reqid chosen by smtpd:
 *
 *	  AUTH_REQ   str login, str password, str client address
 *	  AUTH_RES   u32 result (AP_*), u32 retry (seconds a block still
 *	             lasts, for AP_BLOCKED), str login (as stored),
 *	             u32 messages per hour, u32 recipients per hour (the
 *	             user's, or the limits.user_* defaults), str senders
 *	             (the user's --sender patterns joined by '\n':
 *	             "user@dom", "@dom", "*")
 *
 *	  RATE_REQ   str login, u32 messages, u32 recipients: take this
 *	             many from the user's hourly allowance (cluster-wide,
 *	             in Redis), or none at all
 *	  RATE_RES   u32 result (AP_OK, AP_LIMITED, AP_TEMPFAIL), u32
 *	             retry (seconds until the allowance has room)
 *
 *	A wrong password and an unknown login give the same answer after
 *	the same time (an unknown login is hashed against a dummy).  After
 *	limits.auth_failures failures from one client address or for one
 *	login within limits.auth_block, every request from it or for it
 *	gets AP_BLOCKED until the block ends; smtpd answers 421 4.7.0 and
 *	closes.  AP_TEMPFAIL (Redis down) becomes 454 4.7.0 for AUTH and
 *	451 4.3.0 for a rate check.
 */
#ifndef SLUICE_AUTH_PROTO_H
#define SLUICE_AUTH_PROTO_H

#define AP_OK		0
#define AP_FAIL		1	/* wrong login or password, or disabled */
#define AP_BLOCKED	2	/* too many failures: 421 4.7.0 */
#define AP_TEMPFAIL	3	/* the user store is unavailable */
#define AP_LIMITED	4	/* rate limit reached: 450 4.7.1 */

#define AP_MAX_LOGIN	256
#define AP_MAX_PASSWORD	1024
#define AP_MAX_SENDERS	8192	/* bytes of the joined patterns */
#define AP_MAX_PATTERN	320

#endif
