/*
 * qstore.c - queue key file, key names and sealed message bodies
 */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "conf.h"
#include "qstore.h"
#include "xmalloc.h"

#define QSTORE_HEX_LEN	(2 * QSTORE_KEY_SIZE)

static int	qstore_key_create(const char *, unsigned char *, char *, size_t);

/* qstore_key_load - the queue key from its file, made on first use */
int
qstore_key_load(const char *path, int create, unsigned char *key,
    char *err, size_t errlen)
{
	struct stat	 st;
	char		 hex[QSTORE_HEX_LEN + 2];
	size_t		 bin;
	ssize_t		 n;
	int		 fd, rc = -1;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1) {
		if (errno == ENOENT && create)
			return qstore_key_create(path, key, err, errlen);
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	/* the key decrypts every queued message: only its owner reads it */
	if (!S_ISREG(st.st_mode) || (st.st_mode & 077) != 0) {
		snprintf(err, errlen, "%s: must be a regular file of mode 0600 "
		    "(it is %04o)", path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	n = read(fd, hex, sizeof(hex));
	if (n < QSTORE_HEX_LEN || (n > QSTORE_HEX_LEN && hex[QSTORE_HEX_LEN] !=
	    '\n') || n == (ssize_t)sizeof(hex)) {
		snprintf(err, errlen, "%s: not a queue key (%d hex digits and "
		    "a newline)", path, QSTORE_HEX_LEN);
		goto out;
	}
	if (sodium_hex2bin(key, QSTORE_KEY_SIZE, hex, QSTORE_HEX_LEN, NULL,
	    &bin, NULL) != 0 || bin != QSTORE_KEY_SIZE) {
		snprintf(err, errlen, "%s: not a queue key (%d hex digits and "
		    "a newline)", path, QSTORE_HEX_LEN);
		goto out;
	}
	rc = 0;
 out:
	sodium_memzero(hex, sizeof(hex));
	close(fd);
	return rc;
}

static int
qstore_key_create(const char *path, unsigned char *key, char *err,
    size_t errlen)
{
	char	 hex[QSTORE_HEX_LEN + 2];
	int	 fd, rc = -1;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (fd == -1) {
		snprintf(err, errlen, "%s: cannot create: %s", path,
		    strerror(errno));
		return -1;
	}
	randombytes_buf(key, QSTORE_KEY_SIZE);
	sodium_bin2hex(hex, sizeof(hex), key, QSTORE_KEY_SIZE);
	hex[QSTORE_HEX_LEN] = '\n';
	if (write(fd, hex, QSTORE_HEX_LEN + 1) != QSTORE_HEX_LEN + 1 ||
	    fsync(fd) == -1) {
		snprintf(err, errlen, "%s: write: %s", path, strerror(errno));
		unlink(path);
	} else
		rc = 0;
	sodium_memzero(hex, sizeof(hex));
	close(fd);
	return rc;
}

char *
qstore_key_path(const struct conf *conf)
{
	char	*p;

	if (conf->queue.key_file != NULL)
		return xstrdup(conf->queue.key_file);
	if (asprintf(&p, "%s/queue.key", conf->state_dir) == -1)
		return NULL;
	return p;
}

/* qstore_name - "PREFIXkind:{id}": the braces keep a message on one shard */
int
qstore_name(char *dst, size_t dstlen, const char *prefix, const char *kind,
    const char *id)
{
	int	 n;

	if (id == NULL)
		n = snprintf(dst, dstlen, "%s%s", prefix, kind);
	else
		n = snprintf(dst, dstlen, "%s%s:{%s}", prefix, kind, id);
	return n < 0 || (size_t)n >= dstlen ? -1 : 0;
}

size_t
qstore_sealed_len(size_t n)
{
	return QSTORE_NONCE_SIZE + n + QSTORE_TAG_SIZE;
}

void
qstore_seal(const unsigned char *key, const char *id, const void *m,
    size_t n, unsigned char *out)
{
	unsigned long long	 clen;

	randombytes_buf(out, QSTORE_NONCE_SIZE);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + QSTORE_NONCE_SIZE,
	    &clen, m, n, (const unsigned char *)id, strlen(id), NULL, out, key);
}

int
qstore_open(const unsigned char *key, const char *id, const void *c,
    size_t n, unsigned char *out, size_t *outlen)
{
	const unsigned char	*p = c;
	unsigned long long	 mlen;

	if (n < QSTORE_NONCE_SIZE + QSTORE_TAG_SIZE)
		return -1;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, &mlen, NULL,
	    p + QSTORE_NONCE_SIZE, n - QSTORE_NONCE_SIZE,
	    (const unsigned char *)id, strlen(id), p, key) != 0)
		return -1;
	*outlen = (size_t)mlen;
	return 0;
}
