/*
 * tls_setup.c - the server certificate: check what the admin named, or
 * make the self-signed default; hand smtpd the PEM, never a path.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sodium.h>

#include "conf.h"
#include "log.h"
#include "sluiced.h"
#include "xmalloc.h"

#define TLS_MAX_FILE		(512 * 1024)
#define SELFSIGNED_DAYS		825

static int	tls_read_file(const char *, const char *, char **, size_t *,
		    char *, size_t);
static int	tls_selfsigned(const struct conf *, char *, size_t);
static int	tls_add_ext(X509 *, int, const char *);
static int	tls_check_pair(const struct conf *, char *, size_t);
static const char *tls_error(void);

/* tls_error - the first error queued is the cause; later ones are layers */
static const char *
tls_error(void)
{
	const char	*s = ERR_reason_error_string(ERR_peek_error());

	ERR_clear_error();
	return s != NULL ? s : "unknown error";
}

/*
 * tls_check_files - the certificate and key named in the configuration
 * exist, parse, and belong together.  The self-signed default is made
 * later, by tls_setup(), so "sluiced -n" writes nothing.
 */
int
tls_check_files(const struct conf *c, char *err, size_t errlen)
{
	if (c->tls.self_signed)
		return 0;
	return tls_check_pair(c, err, errlen);
}

/* tls_check_pair - certificate and key files parse and match */
static int
tls_check_pair(const struct conf *c, char *err, size_t errlen)
{
	SSL_CTX	*ctx;
	int	 rc = -1;

	if (access(c->tls.certificate, R_OK) == -1) {
		snprintf(err, errlen, "%s: tls.certificate: cannot read %s: %s",
		    c->file, c->tls.certificate, strerror(errno));
		return -1;
	}
	if (access(c->tls.key, R_OK) == -1) {
		snprintf(err, errlen, "%s: tls.key: cannot read %s: %s",
		    c->file, c->tls.key, strerror(errno));
		return -1;
	}
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		snprintf(err, errlen, "SSL_CTX_new: %s", tls_error());
		return -1;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, c->tls.certificate) != 1)
		snprintf(err, errlen, "%s: tls.certificate: %s: %s", c->file,
		    c->tls.certificate, tls_error());
	else if (SSL_CTX_use_PrivateKey_file(ctx, c->tls.key,
	    SSL_FILETYPE_PEM) != 1) {
		/* OpenSSL checks the pair while loading; say it our way */
		if (ERR_GET_REASON(ERR_peek_last_error()) ==
		    X509_R_KEY_VALUES_MISMATCH) {
			ERR_clear_error();
			snprintf(err, errlen, "%s: tls.key: %s does not match "
			    "the certificate %s", c->file, c->tls.key,
			    c->tls.certificate);
		} else
			snprintf(err, errlen, "%s: tls.key: %s: %s", c->file,
			    c->tls.key, tls_error());
	} else if (SSL_CTX_check_private_key(ctx) != 1)
		snprintf(err, errlen, "%s: tls.key: %s does not match the "
		    "certificate %s", c->file, c->tls.key, c->tls.certificate);
	else
		rc = 0;
	SSL_CTX_free(ctx);
	return rc;
}

/* tls_read_file - a whole small file, appended to *buf */
static int
tls_read_file(const char *key, const char *path, char **buf, size_t *len,
    char *err, size_t errlen)
{
	struct stat	 st;
	ssize_t		 n;
	size_t		 got = 0;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1) {
		snprintf(err, errlen, "%s: cannot read %s: %s", key, path,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	if (st.st_size <= 0 || st.st_size > TLS_MAX_FILE) {
		snprintf(err, errlen, "%s: %s: size %lld is not plausible",
		    key, path, (long long)st.st_size);
		close(fd);
		return -1;
	}
	*buf = xreallocarray(*buf, *len + (size_t)st.st_size + 2, 1);
	while (got < (size_t)st.st_size) {
		n = read(fd, *buf + *len + got, (size_t)st.st_size - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "%s: read %s: %s", key, path,
			    n == 0 ? "short file" : strerror(errno));
			close(fd);
			return -1;
		}
		got += (size_t)n;
	}
	close(fd);
	*len += got;
	(*buf)[(*len)++] = '\n';	/* PEM blocks must not run together */
	return 0;
}

static int
tls_add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX	 ctx;
	X509_EXTENSION	*ext;
	int		 ok;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value)) == NULL)
		return -1;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : -1;
}

/*
 * tls_selfsigned - an ECDSA P-256 key and a certificate for hostname:
 * P-256 signs about 14 times faster than RSA-2048, which is most of a
 * TLS handshake's cost on our side.
 */
static int
tls_selfsigned(const struct conf *c, char *err, size_t errlen)
{
	EVP_PKEY	*pkey = NULL;
	X509		*x = NULL;
	X509_NAME	*name;
	FILE		*fp = NULL;
	char		 san[300];
	uint64_t	 serial;
	int		 fd = -1, rc = -1;

	if ((pkey = EVP_EC_gen("P-256")) == NULL || (x = X509_new()) == NULL)
		goto ssl;
	randombytes_buf(&serial, sizeof(serial));
	serial >>= 1;		/* a positive INTEGER */
	if (X509_set_version(x, 2) != 1 ||
	    ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), serial) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x),
	    (long)SELFSIGNED_DAYS * 86400) == NULL ||
	    X509_set_pubkey(x, pkey) != 1)
		goto ssl;
	name = X509_get_subject_name(x);
	if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)c->hostname, -1, -1, 0) != 1 ||
	    X509_set_issuer_name(x, name) != 1)
		goto ssl;
	snprintf(san, sizeof(san), "DNS:%s", c->hostname);
	if (tls_add_ext(x, NID_subject_alt_name, san) == -1 ||
	    tls_add_ext(x, NID_basic_constraints, "critical,CA:FALSE") == -1 ||
	    tls_add_ext(x, NID_key_usage, "critical,digitalSignature") == -1 ||
	    tls_add_ext(x, NID_ext_key_usage, "serverAuth") == -1 ||
	    X509_sign(x, pkey, EVP_sha256()) == 0)
		goto ssl;

	/* key first, 0600, and never over an existing file */
	if ((fd = open(c->tls.key, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600)) == -1 || (fp = fdopen(fd, "w")) == NULL) {
		snprintf(err, errlen, "tls: cannot create %s: %s", c->tls.key,
		    strerror(errno));
		goto done;
	}
	fd = -1;
	if (PEM_write_PrivateKey(fp, pkey, NULL, NULL, 0, NULL, NULL) != 1 ||
	    fclose(fp) != 0) {
		fp = NULL;
		snprintf(err, errlen, "tls: cannot write %s", c->tls.key);
		goto done;
	}
	if ((fd = open(c->tls.certificate, O_WRONLY | O_CREAT | O_TRUNC |
	    O_CLOEXEC, 0644)) == -1 || (fp = fdopen(fd, "w")) == NULL) {
		snprintf(err, errlen, "tls: cannot create %s: %s",
		    c->tls.certificate, strerror(errno));
		fp = NULL;
		goto done;
	}
	fd = -1;
	if (PEM_write_X509(fp, x) != 1 || fclose(fp) != 0) {
		fp = NULL;
		snprintf(err, errlen, "tls: cannot write %s",
		    c->tls.certificate);
		goto done;
	}
	fp = NULL;
	log_info("tls: made a self-signed certificate for %s in %s; name a "
	    "real one with tls.certificate and tls.key", c->hostname,
	    c->tls.certificate);
	rc = 0;
	goto done;
 ssl:
	snprintf(err, errlen, "tls: cannot make a self-signed certificate: %s",
	    tls_error());
 done:
	if (rc == -1 && fp == NULL && fd == -1)
		unlink(c->tls.key);
	if (fp != NULL)
		fclose(fp);
	if (fd != -1)
		close(fd);
	X509_free(x);
	EVP_PKEY_free(pkey);
	return rc;
}

/*
 * tls_setup - make sure a usable certificate exists and return chain +
 * key as one PEM buffer for smtpd, which cannot open files itself.
 */
int
tls_setup(const struct conf *c, char **pem, size_t *pemlen, char *err,
    size_t errlen)
{
	struct stat	 st;
	char		*buf = NULL;
	size_t		 len = 0;

	if (c->tls.self_signed && stat(c->tls.key, &st) == -1 &&
	    errno == ENOENT && tls_selfsigned(c, err, errlen) == -1)
		return -1;
	if (tls_check_pair(c, err, errlen) == -1)
		return -1;
	if (tls_read_file("tls.certificate", c->tls.certificate, &buf, &len,
	    err, errlen) == -1 ||
	    tls_read_file("tls.key", c->tls.key, &buf, &len, err,
	    errlen) == -1) {
		if (buf != NULL)
			sodium_memzero(buf, len);
		free(buf);
		return -1;
	}
	*pem = buf;
	*pemlen = len;
	return 0;
}
