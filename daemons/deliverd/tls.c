/*
 * tls.c - the client side of TLS to smarthosts
 *
 * Two contexts, both made in the privileged setup hook: after the
 * sandbox goes on nothing can be opened, so the trust store is read
 * whole from tls.ca_file now (never a hashed directory, whose files
 * OpenSSL would open lazily during a handshake and die of SIGSYS).
 *
 *   tls = "may", "encrypt"	encryption only; the chain is not checked
 *				(opportunistic TLS, RFC 7435)
 *   tls = "verify", "implicit"	the chain must lead to tls.ca_file and
 *				the certificate must name the smarthost
 *
 * "implicit" is checked like "verify": port 465 is where providers
 * take AUTH, and a password must not go to whoever answers.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "compat/compat.h"
#include "conf.h"
#include "deliverd.h"
#include "log.h"
#include "netaddr.h"
#include "xmalloc.h"

static SSL_CTX	*tls_plain;		/* may, encrypt */
static SSL_CTX	*tls_verify;		/* verify, implicit */
static char	 tls_verify_error[512];
static char	*tls_ca_file;

static SSL_CTX	*tls_ctx_new(const struct conf *, int);

/* tls_ctx_new - a client context with our protocol floor */
static SSL_CTX *
tls_ctx_new(const struct conf *conf, int verify)
{
	SSL_CTX	*ctx;

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		return NULL;
	if (SSL_CTX_set_min_proto_version(ctx, conf->tls.min_version) != 1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	/* renegotiation and compression only ever helped attackers */
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION);
	/* libevent may hand SSL_write a moved buffer on a retry */
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
	    SSL_MODE_ENABLE_PARTIAL_WRITE);
	SSL_CTX_set_verify(ctx, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
	    NULL);
	return ctx;
}

/* dlv_tls_init - both contexts; a CA file that fails only hurts verify */
int
dlv_tls_init(const struct conf *conf)
{
	char		 err[256];
	unsigned long	 e;

	OPENSSL_init_ssl(OPENSSL_INIT_LOAD_CONFIG, NULL);
	if ((tls_plain = tls_ctx_new(conf, 0)) == NULL ||
	    (tls_verify = tls_ctx_new(conf, 1)) == NULL) {
		log_warnx("deliverd: cannot make a TLS client context");
		return -1;
	}
	tls_ca_file = conf->tls.ca_file != NULL ?
	    xstrdup(conf->tls.ca_file) : NULL;
	if (conf->tls.ca_file == NULL)
		snprintf(tls_verify_error, sizeof(tls_verify_error),
		    "no tls.ca_file configured");
	else if (SSL_CTX_load_verify_locations(tls_verify, conf->tls.ca_file,
	    NULL) != 1) {
		e = ERR_get_error();
		ERR_error_string_n(e, err, sizeof(err));
		ERR_clear_error();
		snprintf(tls_verify_error, sizeof(tls_verify_error),
		    "tls.ca_file %s: %s", conf->tls.ca_file, err);
		/* only routes with tls = verify/implicit suffer: say so */
		log_warnx("deliverd: %s; routes with tls = \"verify\" will "
		    "defer", tls_verify_error);
	}
	return 0;
}

/* dlv_tls_reconfigure - the trust store cannot be re-read in the sandbox */
void
dlv_tls_reconfigure(const struct conf *conf, const struct conf *old)
{
	const char	*now;

	now = conf->tls.ca_file != NULL ? conf->tls.ca_file : "";
	if (strcmp(now, tls_ca_file != NULL ? tls_ca_file : "") != 0)
		log_warnx("deliverd: tls.ca_file changed to %s; the sandbox "
		    "keeps the one read at start until deliverd restarts",
		    now);
}

/*
 * dlv_tls_new - a client SSL for host under a route's policy: server
 * name indication for names, and for verify the name (or the address)
 * that the certificate must carry
 */
SSL *
dlv_tls_new(enum conf_route_tls mode, const char *host, char *err,
    size_t errlen)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	X509_VERIFY_PARAM	*vp;
	SSL			*ssl;
	int			 verify, literal;

	verify = mode == CONF_ROUTE_TLS_VERIFY ||
	    mode == CONF_ROUTE_TLS_IMPLICIT;
	if (verify && tls_verify_error[0] != '\0') {
		snprintf(err, errlen, "%s", tls_verify_error);
		return NULL;
	}
	if ((ssl = SSL_new(verify ? tls_verify : tls_plain)) == NULL) {
		snprintf(err, errlen, "SSL_new failed");
		return NULL;
	}
	literal = netaddr_parse_ip(host, &ss, &sslen) == 0;
	/* RFC 6066 3: literal addresses are not sent as server names */
	if (!literal && SSL_set_tlsext_host_name(ssl, host) != 1)
		goto fail;
	if (verify) {
		vp = SSL_get0_param(ssl);
		X509_VERIFY_PARAM_set_hostflags(vp,
		    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (literal ? X509_VERIFY_PARAM_set1_ip_asc(vp, host) != 1 :
		    X509_VERIFY_PARAM_set1_host(vp, host, 0) != 1)
			goto fail;
	}
	return ssl;
 fail:
	snprintf(err, errlen, "cannot set up TLS for %s", host);
	SSL_free(ssl);
	return NULL;
}

/*
 * dlv_tls_error - why a handshake failed: the certificate check if that
 * was it, else the first OpenSSL error, else what the socket said
 */
void
dlv_tls_error(SSL *ssl, unsigned long e, char *buf, size_t len)
{
	long	 v;
	char	 why[256];

	if (ssl != NULL && (v = SSL_get_verify_result(ssl)) != X509_V_OK) {
		snprintf(buf, len, "certificate verification failed: %s",
		    X509_verify_cert_error_string(v));
		return;
	}
	if (e == 0)
		e = ERR_peek_error();
	if (e != 0) {
		ERR_error_string_n(e, why, sizeof(why));
		snprintf(buf, len, "%s", why);
	} else
		snprintf(buf, len, "connection closed during the handshake");
	ERR_clear_error();
}

/* dlv_tls_describe - "TLSv1.3 TLS_AES_256_GCM_SHA384", for the log */
void
dlv_tls_describe(SSL *ssl, char *buf, size_t len)
{
	snprintf(buf, len, "%s %s", SSL_get_version(ssl),
	    SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)));
}
