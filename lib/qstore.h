/*
 * NAME
 *	qstore - names and sealed bodies of queued messages in Redis
 * SYNOPSIS
 *	#include "qstore.h"
 *
 *	int qstore_key_load(const char *path, int create,
 *	    unsigned char key[QSTORE_KEY_SIZE], char *err, size_t errlen);
 *	char *qstore_key_path(const struct conf *conf);
 *	int qstore_name(char *dst, size_t dstlen, const char *prefix,
 *	    const char *kind, const char *id);
 *	size_t qstore_sealed_len(size_t n);
 *	void qstore_seal(const unsigned char *key, const char *id,
 *	    const void *m, size_t n, unsigned char *out);
 *	int qstore_open(const unsigned char *key, const char *id,
 *	    const void *c, size_t n, unsigned char *out, size_t *outlen);
 * DESCRIPTION
 *	A message body is kept in Redis sealed with XChaCha20-Poly1305:
 *	a random 24-byte nonce, then the ciphertext and its 16-byte tag,
 *	with the queue id as associated data (doc/redis-schema.md).
 *
 *	qstore_key_load() reads the 32-byte queue key from path, 64 hex
 *	digits and a newline.  With create set and no file there, it
 *	makes a new random key and writes it with mode 0600 (O_EXCL, so
 *	two starters never write two keys).  A file that group or others
 *	may read is refused.  qstore_key_path() is queue.key_file or
 *	state_dir/queue.key, allocated.
 *
 *	qstore_name() writes "PREFIXkind:{id}" ("sluice:msg:{ID}"), or
 *	"PREFIXkind" when id is NULL.  qstore_seal() writes
 *	qstore_sealed_len(n) bytes to out; qstore_open() writes at most n
 *	bytes to out.
 * DIAGNOSTICS
 *	qstore_key_load() returns -1 with the reason in err.  qstore_name()
 *	returns -1 when dst is too small.  qstore_open() returns -1 when
 *	the data is short, was changed, or belongs to another id.
 */
#ifndef SLUICE_QSTORE_H
#define SLUICE_QSTORE_H

#include <stddef.h>

#define QSTORE_KEY_SIZE		32
#define QSTORE_NONCE_SIZE	24
#define QSTORE_TAG_SIZE		16
#define QSTORE_NAME_MAX		320

struct conf;

int	 qstore_key_load(const char *, int, unsigned char *, char *, size_t);
char	*qstore_key_path(const struct conf *);
int	 qstore_name(char *, size_t, const char *, const char *, const char *);
size_t	 qstore_sealed_len(size_t);
void	 qstore_seal(const unsigned char *, const char *, const void *,
	    size_t, unsigned char *);
int	 qstore_open(const unsigned char *, const char *, const void *,
	    size_t, unsigned char *, size_t *);

#endif
