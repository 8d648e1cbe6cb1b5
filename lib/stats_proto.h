/*
 * NAME
 *	stats_proto - the counters smtpd reports to queued
 * SYNOPSIS
 *	#include "stats_proto.h"
 * DESCRIPTION
 *	smtpd has no Redis connection, so every STATS_INTERVAL seconds
 *	each smtpd sends queued one SMTPD_STATS frame: STATS_NFIELDS u64
 *	(8 bytes, host order) in the order of enum stats_field.  The
 *	first is a gauge, the sessions open in that process now; every
 *	other field is how much the counter grew since the last frame
 *	that smtpd sent, never a running total.  queued adds the growth
 *	to the Redis hash P stats, so the counters are cluster-wide,
 *	survive restarts of either side and are counted once; the gauge
 *	stays in queued's memory, per smtpd instance, for its metrics
 *	endpoint.  A frame that cannot be sent (queued restarting) is
 *	not lost: its growth goes into the next one.
 */
#ifndef SLUICE_STATS_PROTO_H
#define SLUICE_STATS_PROTO_H

enum stats_field {
	STATS_OPEN,		/* gauge: sessions open now */
	STATS_SESSIONS,		/* connections taken */
	STATS_REFUSED,		/* turned away: limits.connections(_per_ip) */
	STATS_TLS,		/* TLS handshakes completed */
	STATS_TLS_FAILED,	/* sessions that ended inside a handshake */
	STATS_AUTH_OK,
	STATS_AUTH_FAILED,	/* wrong login or password */
	STATS_AUTH_BLOCKED,	/* refused by the failure throttle */
	STATS_NFIELDS
};

#define STATS_INTERVAL		1			/* seconds */
#define STATS_FRAME_LEN		(STATS_NFIELDS * 8)	/* bytes */

#endif
