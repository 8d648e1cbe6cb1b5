/*
 * test_qstore.c - the queue key file (made once, mode 0600, refused when
 * others may read it or it is not 64 hex digits), Redis key names, and
 * sealed bodies: round trip, and every change to the sealed bytes, the
 * id or the length refused.
 *
 * Key files live in a directory made per test with mkdtemp() and removed
 * with all it holds afterwards.  The module's source is included so that
 * the O_EXCL creation can be tried on a file that is already there; its
 * symbols then come from here, not from qstore.o in the archive.
 */
#include "config.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "qstore.c"

#define ID	"01ARYZ6S4104HMASW9NF6YY093"
#define HEX63	"000102030405060708090a0b0c0d0e0f" \
		"101112131415161718191a1b1c1d1e1"
#define HEX64	HEX63 "f"

struct tmp {
	char	 dir[64];
	char	 path[PATH_MAX];	/* dir/queue.key */
};

/* a key file that must be refused: its bytes and its mode */
struct bad_key {
	const char	*what;
	const char	*text;
	size_t		 len;		/* 0: strlen(text) */
	mode_t		 mode;
	const char	*err;		/* expected after "PATH: " */
};

static int	tmp_setup(void **);
static int	tmp_teardown(void **);
static void	tmp_file(const char *, const void *, size_t, mode_t);
static void	key_of(unsigned char *, unsigned char);
static void	expect_key_refused(const struct tmp *, const struct bad_key *);

static const char	 not_key[] = "not a queue key (64 hex digits and a "
			    "newline)";

static const struct bad_key bad_keys[] = {
	{ "empty", "", 0, 0600, not_key },
	{ "a newline only", "\n", 0, 0600, not_key },
	{ "63 digits", HEX63 "\n", 0, 0600, not_key },
	{ "63 digits, no newline", HEX63, 0, 0600, not_key },
	{ "65 digits", HEX64 "0", 0, 0600, not_key },
	{ "65 digits and a newline", HEX64 "0\n", 0, 0600, not_key },
	{ "two newlines", HEX64 "\n\n", 0, 0600, not_key },
	{ "CRLF", HEX64 "\r\n", 0, 0600, not_key },
	{ "space after", HEX64 " ", 0, 0600, not_key },
	{ "128 digits", HEX64 HEX64 "\n", 0, 0600, not_key },
	{ "g in the middle", "000102030405060708090a0b0c0d0e0f"
	    "101112131415161718191a1b1c1d1e1g\n", 0, 0600, not_key },
	{ "space in front", " " HEX64 "\n", 0, 0600, not_key },
	{ "space in front, 64 bytes", " " HEX63, 0, 0600, not_key },
	{ "newline in front, 65 bytes", "\n" HEX63 "\n", 0, 0600, not_key },
	{ "a newline in place of the last digit", HEX63 "\n\n", 0, 0600,
	    not_key },
	{ "NUL inside", "0001020304050607\0" "8090a0b0c0d0e0f"
	    "101112131415161718191a1b1c1d1e1f\n", 65, 0600, not_key },
	{ "group may read", HEX64 "\n", 0, 0640,
	    "must be a regular file of mode 0600 (it is 0640)" },
	{ "others may read", HEX64 "\n", 0, 0604,
	    "must be a regular file of mode 0600 (it is 0604)" },
	{ "group may write", HEX64 "\n", 0, 0620,
	    "must be a regular file of mode 0600 (it is 0620)" },
	{ "world everything", HEX64 "\n", 0, 0666,
	    "must be a regular file of mode 0600 (it is 0666)" },
	{ "group may execute", HEX64 "\n", 0, 0610,
	    "must be a regular file of mode 0600 (it is 0610)" },
};

/* tmp_setup - a fresh private directory for the test's key files */
static int
tmp_setup(void **state)
{
	struct tmp	*t;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return -1;
	strcpy(t->dir, "/tmp/test_qstore.XXXXXX");
	if (mkdtemp(t->dir) == NULL) {
		free(t);
		return -1;
	}
	snprintf(t->path, sizeof(t->path), "%s/queue.key", t->dir);
	*state = t;
	return 0;
}

/* tmp_teardown - the directory and everything the test left in it */
static int
tmp_teardown(void **state)
{
	struct tmp	*t = *state;
	struct dirent	*de;
	char		 p[PATH_MAX];
	DIR		*d;
	int		 rc = 0;

	if ((d = opendir(t->dir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0)
				continue;
			snprintf(p, sizeof(p), "%s/%s", t->dir, de->d_name);
			if (unlink(p) == -1 && rmdir(p) == -1)
				rc = -1;
		}
		closedir(d);
	}
	if (rmdir(t->dir) == -1)
		rc = -1;
	free(t);
	return rc;
}

/* tmp_file - exactly these bytes at path, with exactly this mode */
static void
tmp_file(const char *path, const void *p, size_t n, mode_t mode)
{
	int	 fd;

	unlink(path);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600)) == -1)
		fail_msg("open %s: %s", path, strerror(errno));
	if (write(fd, p, n) != (ssize_t)n)
		fail_msg("write %s: %s", path, strerror(errno));
	/* fchmod, so the umask has no say */
	if (fchmod(fd, mode) == -1)
		fail_msg("fchmod %s: %s", path, strerror(errno));
	close(fd);
}

/* key_of - a key whose bytes are seed, seed + 1, ... */
static void
key_of(unsigned char *key, unsigned char seed)
{
	size_t	 i;

	for (i = 0; i < QSTORE_KEY_SIZE; i++)
		key[i] = (unsigned char)(seed + i);
}

/* expect_key_refused - "PATH: reason", and the key left untouched */
static void
expect_key_refused(const struct tmp *t, const struct bad_key *bk)
{
	unsigned char	 key[QSTORE_KEY_SIZE];
	char		 err[256], want[PATH_MAX + 128];
	size_t		 len = bk->len != 0 ? bk->len : strlen(bk->text);

	tmp_file(t->path, bk->text, len, bk->mode);
	err[0] = '\0';
	if (qstore_key_load(t->path, 1, key, err, sizeof(err)) != -1)
		fail_msg("%s: accepted", bk->what);
	snprintf(want, sizeof(want), "%s: %s", t->path, bk->err);
	if (strcmp(err, want) != 0)
		fail_msg("%s: want \"%s\", got \"%s\"", bk->what, want, err);
	/* a refused file is never replaced by a new key */
	if (access(t->path, F_OK) == -1)
		fail_msg("%s: file removed", bk->what);
}

static void
test_qstore_key_created_once(void **state)
{
	struct tmp	*t = *state;
	struct stat	 st;
	unsigned char	 key[QSTORE_KEY_SIZE], again[QSTORE_KEY_SIZE];
	unsigned char	 zero[QSTORE_KEY_SIZE];
	char		 err[256], text[QSTORE_HEX_LEN + 8], hex[QSTORE_HEX_LEN + 1];
	ssize_t		 n;
	mode_t		 old;
	int		 fd;

	memset(zero, 0, sizeof(zero));
	memset(key, 0, sizeof(key));
	/* a permissive umask does not widen the mode */
	old = umask(0);
	assert_int_equal(qstore_key_load(t->path, 1, key, err, sizeof(err)), 0);
	umask(old);
	assert_memory_not_equal(key, zero, sizeof(key));

	assert_int_equal(lstat(t->path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_size, QSTORE_HEX_LEN + 1);

	/* 64 lower-case hex digits of the key and a newline */
	assert_true((fd = open(t->path, O_RDONLY)) >= 0);
	n = read(fd, text, sizeof(text));
	close(fd);
	assert_int_equal(n, QSTORE_HEX_LEN + 1);
	sodium_bin2hex(hex, sizeof(hex), key, sizeof(key));
	assert_memory_equal(text, hex, QSTORE_HEX_LEN);
	assert_int_equal(text[QSTORE_HEX_LEN], '\n');

	/* the next start reads the same key, with or without create */
	memset(again, 0, sizeof(again));
	assert_int_equal(qstore_key_load(t->path, 1, again, err, sizeof(err)),
	    0);
	assert_memory_equal(again, key, sizeof(key));
	memset(again, 0, sizeof(again));
	assert_int_equal(qstore_key_load(t->path, 0, again, err, sizeof(err)),
	    0);
	assert_memory_equal(again, key, sizeof(key));
}

static void
test_qstore_key_two_new_keys_differ(void **state)
{
	struct tmp	*t = *state;
	unsigned char	 a[QSTORE_KEY_SIZE], b[QSTORE_KEY_SIZE];
	char		 err[256];

	assert_int_equal(qstore_key_load(t->path, 1, a, err, sizeof(err)), 0);
	assert_int_equal(unlink(t->path), 0);
	assert_int_equal(qstore_key_load(t->path, 1, b, err, sizeof(err)), 0);
	/* 2^-256 of the time these match */
	assert_memory_not_equal(a, b, sizeof(a));
}

static void
test_qstore_key_missing_without_create(void **state)
{
	struct tmp	*t = *state;
	unsigned char	 key[QSTORE_KEY_SIZE];
	char		 err[256], want[PATH_MAX + 64];

	assert_int_equal(qstore_key_load(t->path, 0, key, err, sizeof(err)),
	    -1);
	snprintf(want, sizeof(want), "%s: No such file or directory", t->path);
	assert_string_equal(err, want);
	/* and nothing was made */
	assert_int_equal(access(t->path, F_OK), -1);
	assert_int_equal(errno, ENOENT);
}

static void
test_qstore_key_create_in_missing_dir(void **state)
{
	struct tmp	*t = *state;
	unsigned char	 key[QSTORE_KEY_SIZE];
	char		 err[256], path[PATH_MAX], want[PATH_MAX + 64];

	snprintf(path, sizeof(path), "%s/nodir/queue.key", t->dir);
	assert_int_equal(qstore_key_load(path, 1, key, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: cannot create: No such file or "
	    "directory", path);
	assert_string_equal(err, want);
}

/* O_EXCL: a key that appeared meanwhile is never overwritten */
static void
test_qstore_key_create_excl(void **state)
{
	struct tmp	*t = *state;
	unsigned char	 key[QSTORE_KEY_SIZE], want[QSTORE_KEY_SIZE];
	char		 err[256], msg[PATH_MAX + 64];

	tmp_file(t->path, HEX64 "\n", QSTORE_HEX_LEN + 1, 0600);
	assert_int_equal(qstore_key_create(t->path, key, err, sizeof(err)), -1);
	snprintf(msg, sizeof(msg), "%s: cannot create: File exists", t->path);
	assert_string_equal(err, msg);
	/* the first starter's key is still there, and still loads */
	key_of(want, 0);
	assert_int_equal(qstore_key_load(t->path, 0, key, err, sizeof(err)), 0);
	assert_memory_equal(key, want, sizeof(key));

	/* nor is a dangling symbolic link followed to make one */
	assert_int_equal(unlink(t->path), 0);
	assert_int_equal(symlink("/nonexistent/queue.key", t->path), 0);
	assert_int_equal(qstore_key_create(t->path, key, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot create"));
}

static void
test_qstore_key_known_value(void **state)
{
	struct tmp	*t = *state;
	unsigned char	 key[QSTORE_KEY_SIZE], want[QSTORE_KEY_SIZE];
	char		 err[256];
	static const char upper[] = "000102030405060708090A0B0C0D0E0F"
			    "101112131415161718191A1B1C1D1E1F\n";

	key_of(want, 0);
	tmp_file(t->path, HEX64 "\n", QSTORE_HEX_LEN + 1, 0600);
	assert_int_equal(qstore_key_load(t->path, 0, key, err, sizeof(err)), 0);
	assert_memory_equal(key, want, sizeof(key));

	/* read-only for the owner is fine too */
	memset(key, 0, sizeof(key));
	tmp_file(t->path, HEX64 "\n", QSTORE_HEX_LEN + 1, 0400);
	assert_int_equal(qstore_key_load(t->path, 0, key, err, sizeof(err)), 0);
	assert_memory_equal(key, want, sizeof(key));

	/* upper-case digits are the same key */
	memset(key, 0, sizeof(key));
	tmp_file(t->path, upper, sizeof(upper) - 1, 0600);
	assert_int_equal(qstore_key_load(t->path, 0, key, err, sizeof(err)), 0);
	assert_memory_equal(key, want, sizeof(key));

	/* a file written without its final newline is still read */
	memset(key, 0, sizeof(key));
	tmp_file(t->path, HEX64, QSTORE_HEX_LEN, 0600);
	assert_int_equal(qstore_key_load(t->path, 0, key, err, sizeof(err)), 0);
	assert_memory_equal(key, want, sizeof(key));
}

/* wrong lengths, wrong digits, modes that others could read */
static void
test_qstore_key_refused_table(void **state)
{
	struct tmp	*t = *state;
	size_t		 i;

	for (i = 0; i < sizeof(bad_keys) / sizeof(bad_keys[0]); i++)
		expect_key_refused(t, &bad_keys[i]);
}

static void
test_qstore_key_not_regular(void **state)
{
	struct tmp	*t = *state;
	unsigned char	 key[QSTORE_KEY_SIZE];
	char		 err[256], want[PATH_MAX + 64], target[PATH_MAX];

	/* a directory opens, but is no key */
	assert_int_equal(mkdir(t->path, 0700), 0);
	assert_int_equal(qstore_key_load(t->path, 1, key, err, sizeof(err)),
	    -1);
	snprintf(want, sizeof(want), "%s: must be a regular file of mode "
	    "0600 (it is 0700)", t->path);
	assert_string_equal(err, want);
	assert_int_equal(rmdir(t->path), 0);

	/* a symbolic link to a good key is not followed */
	snprintf(target, sizeof(target), "%s/real.key", t->dir);
	tmp_file(target, HEX64 "\n", QSTORE_HEX_LEN + 1, 0600);
	assert_int_equal(symlink(target, t->path), 0);
	assert_int_equal(qstore_key_load(t->path, 1, key, err, sizeof(err)),
	    -1);
	snprintf(want, sizeof(want), "%s: %s", t->path, strerror(ELOOP));
	assert_string_equal(err, want);
}

/* a short error buffer is cut, never overrun */
static void
test_qstore_key_short_error_buffer(void **state)
{
	struct tmp	*t = *state;
	unsigned char	 key[QSTORE_KEY_SIZE];
	char		 err[16];

	memset(err, 'X', sizeof(err));
	assert_int_equal(qstore_key_load(t->path, 0, key, err, 8), -1);
	assert_int_equal(strlen(err), 7);
	assert_int_equal(err[8], 'X');
}

static void
test_qstore_key_path(void **state)
{
	struct conf	 conf;
	char		*p;

	memset(&conf, 0, sizeof(conf));
	conf.state_dir = "/var/lib/sluice";
	assert_non_null(p = qstore_key_path(&conf));
	assert_string_equal(p, "/var/lib/sluice/queue.key");
	free(p);

	conf.queue.key_file = "/etc/sluice/queue.key";
	assert_non_null(p = qstore_key_path(&conf));
	assert_string_equal(p, "/etc/sluice/queue.key");
	/* a copy the caller owns */
	assert_ptr_not_equal(p, conf.queue.key_file);
	free(p);
}

static void
test_qstore_name(void **state)
{
	char	 name[QSTORE_NAME_MAX];

	assert_int_equal(qstore_name(name, sizeof(name), "sluice:", "msg", ID),
	    0);
	assert_string_equal(name, "sluice:msg:{" ID "}");
	assert_int_equal(qstore_name(name, sizeof(name), "mx1:", "queue",
	    NULL), 0);
	assert_string_equal(name, "mx1:queue");
	assert_int_equal(qstore_name(name, sizeof(name), "", "rcpt", "x"), 0);
	assert_string_equal(name, "rcpt:{x}");
}

/* exactly enough room works; one byte less is refused */
static void
test_qstore_name_truncation(void **state)
{
	static const struct {
		const char	*prefix, *kind, *id, *want;
	} rows[] = {
		{ "sluice:", "msg", ID, "sluice:msg:{" ID "}" },
		{ "sluice:", "queue", NULL, "sluice:queue" },
		{ "", "k", "", "k:{}" },
		{ "", "", NULL, "" },
	};
	char	 name[QSTORE_NAME_MAX];
	size_t	 i, len;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		len = strlen(rows[i].want);
		memset(name, 'X', sizeof(name));
		assert_int_equal(qstore_name(name, len + 1, rows[i].prefix,
		    rows[i].kind, rows[i].id), 0);
		assert_string_equal(name, rows[i].want);
		memset(name, 'X', sizeof(name));
		assert_int_equal(qstore_name(name, len, rows[i].prefix,
		    rows[i].kind, rows[i].id), -1);
		/* nothing written past dstlen */
		assert_int_equal(name[len], 'X');
	}
	assert_int_equal(qstore_name(name, 0, "sluice:", "msg", ID), -1);
	assert_int_equal(name[0], 'X');
}

/* the longest prefix the config allows still names a message */
static void
test_qstore_name_max(void **state)
{
	char	 prefix[65], name[QSTORE_NAME_MAX];

	memset(prefix, 'p', 64);
	prefix[64] = '\0';
	assert_int_equal(qstore_name(name, sizeof(name), prefix, "msg", ID), 0);
	assert_int_equal(strlen(name), 64 + 3 + 3 + strlen(ID));
}

static void
test_qstore_sealed_len(void **state)
{
	assert_int_equal(qstore_sealed_len(0), 40);
	assert_int_equal(qstore_sealed_len(1), 41);
	assert_int_equal(qstore_sealed_len(1000), 1040);
	assert_int_equal(QSTORE_NONCE_SIZE +
	    QSTORE_TAG_SIZE, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES +
	    crypto_aead_xchacha20poly1305_ietf_ABYTES);
	assert_int_equal(QSTORE_KEY_SIZE,
	    crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
}

static void
test_qstore_seal_round_trip(void **state)
{
	static const size_t	 sizes[] = { 0, 1, 15, 16, 17, 63, 64, 65,
				    1000, 65536, 1048577 };
	unsigned char		 key[QSTORE_KEY_SIZE];
	unsigned char		*m, *c, *out;
	size_t			 i, j, n, outlen;

	key_of(key, 7);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		n = sizes[i];
		assert_non_null(m = malloc(n + 1));
		assert_non_null(c = malloc(qstore_sealed_len(n)));
		assert_non_null(out = malloc(qstore_sealed_len(n)));
		for (j = 0; j < n; j++)
			m[j] = (unsigned char)(j * 131 + 5);
		qstore_seal(key, ID, m, n, c);
		/* the text does not appear in the sealed bytes */
		if (n >= 16)
			assert_memory_not_equal(c + QSTORE_NONCE_SIZE, m, 16);
		outlen = 12345;
		assert_int_equal(qstore_open(key, ID, c, qstore_sealed_len(n),
		    out, &outlen), 0);
		assert_int_equal(outlen, n);
		if (n > 0)
			assert_memory_equal(out, m, n);
		free(m);
		free(c);
		free(out);
	}
}

/* a fresh nonce each time: the same body never seals the same */
static void
test_qstore_seal_nonce_fresh(void **state)
{
	unsigned char	 key[QSTORE_KEY_SIZE];
	unsigned char	 a[64 + 40], b[64 + 40], m[64];

	key_of(key, 1);
	memset(m, 'm', sizeof(m));
	qstore_seal(key, ID, m, sizeof(m), a);
	qstore_seal(key, ID, m, sizeof(m), b);
	assert_memory_not_equal(a, b, QSTORE_NONCE_SIZE);
	assert_memory_not_equal(a + QSTORE_NONCE_SIZE, b + QSTORE_NONCE_SIZE,
	    sizeof(m));
}

static void
test_qstore_empty_message(void **state)
{
	unsigned char	 key[QSTORE_KEY_SIZE];
	unsigned char	 c[QSTORE_NONCE_SIZE + QSTORE_TAG_SIZE + 1], out[1];
	size_t		 outlen = 99;

	key_of(key, 3);
	memset(c, 0xaa, sizeof(c));
	qstore_seal(key, ID, "", 0, c);
	assert_int_equal(c[QSTORE_NONCE_SIZE + QSTORE_TAG_SIZE], 0xaa);
	assert_int_equal(qstore_open(key, ID, c, qstore_sealed_len(0), out,
	    &outlen), 0);
	assert_int_equal(outlen, 0);
	/* still bound to its id */
	assert_int_equal(qstore_open(key, "01ARYZ6S4104HMASW9NF6YY094", c,
	    qstore_sealed_len(0), out, &outlen), -1);
	/* and to its length */
	assert_int_equal(qstore_open(key, ID, c, qstore_sealed_len(0) - 1, out,
	    &outlen), -1);
	c[QSTORE_NONCE_SIZE + QSTORE_TAG_SIZE] = 0;
	assert_int_equal(qstore_open(key, ID, c, qstore_sealed_len(0) + 1, out,
	    &outlen), -1);
	assert_int_equal(outlen, 0);
}

/* every byte of nonce, ciphertext and tag matters, every bit of each */
static void
test_qstore_open_tampered(void **state)
{
	unsigned char	 key[QSTORE_KEY_SIZE], m[33];
	unsigned char	 c[sizeof(m) + 40], t[sizeof(c)], out[sizeof(c)];
	size_t		 i, outlen;
	unsigned	 bit;

	key_of(key, 9);
	memset(m, 'b', sizeof(m));
	qstore_seal(key, ID, m, sizeof(m), c);
	for (i = 0; i < sizeof(c); i++)
		for (bit = 0; bit < 8; bit++) {
			memcpy(t, c, sizeof(c));
			t[i] ^= (unsigned char)(1u << bit);
			outlen = 777;
			if (qstore_open(key, ID, t, sizeof(t), out, &outlen) !=
			    -1)
				fail_msg("accepted with bit %u of byte %zu "
				    "flipped", bit, i);
			assert_int_equal(outlen, 777);
		}
	/* the untouched copy still opens */
	assert_int_equal(qstore_open(key, ID, c, sizeof(c), out, &outlen), 0);
	assert_int_equal(outlen, sizeof(m));
}

/* the queue id is associated data: another id, or another key, fails */
static void
test_qstore_open_wrong_id(void **state)
{
	static const char	*ids[] = {
		"01ARYZ6S4104HMASW9NF6YY094",	/* last character */
		"11ARYZ6S4104HMASW9NF6YY093",	/* first character */
		"01ARYZ6S4104HMASW9NF6YY09",	/* a prefix of it */
		ID "0",				/* one longer */
		"01aryz6s4104hmasw9nf6yy093",	/* lower case */
		"",
	};
	unsigned char		 key[QSTORE_KEY_SIZE], other[QSTORE_KEY_SIZE];
	unsigned char		 c[10 + 40], out[sizeof(c)];
	size_t			 i, outlen;

	key_of(key, 11);
	qstore_seal(key, ID, "0123456789", 10, c);
	for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
		if (qstore_open(key, ids[i], c, sizeof(c), out, &outlen) != -1)
			fail_msg("opened as \"%s\"", ids[i]);
	key_of(other, 12);
	assert_int_equal(qstore_open(other, ID, c, sizeof(c), out, &outlen),
	    -1);
	assert_int_equal(qstore_open(key, ID, c, sizeof(c), out, &outlen), 0);
	assert_int_equal(outlen, 10);
	assert_memory_equal(out, "0123456789", 10);
}

/* every length short of the whole, down to zero, and one byte more */
static void
test_qstore_open_truncated(void **state)
{
	unsigned char	 key[QSTORE_KEY_SIZE], m[20];
	unsigned char	 c[sizeof(m) + 40 + 1], out[sizeof(c)];
	size_t		 n, outlen;

	key_of(key, 13);
	memset(m, 'z', sizeof(m));
	qstore_seal(key, ID, m, sizeof(m), c);
	c[sizeof(c) - 1] = 0;
	for (n = 0; n < qstore_sealed_len(sizeof(m)); n++) {
		outlen = 555;
		if (qstore_open(key, ID, c, n, out, &outlen) != -1)
			fail_msg("opened %zu of %zu bytes", n,
			    qstore_sealed_len(sizeof(m)));
		assert_int_equal(outlen, 555);
	}
	assert_int_equal(qstore_open(key, ID, c, sizeof(c), out, &outlen), -1);
	/* the tail cut off but the head kept is no better */
	assert_int_equal(qstore_open(key, ID, c + 1, sizeof(c) - 2, out,
	    &outlen), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_qstore_key_created_once,
		    tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(
		    test_qstore_key_two_new_keys_differ, tmp_setup,
		    tmp_teardown),
		cmocka_unit_test_setup_teardown(
		    test_qstore_key_missing_without_create, tmp_setup,
		    tmp_teardown),
		cmocka_unit_test_setup_teardown(
		    test_qstore_key_create_in_missing_dir, tmp_setup,
		    tmp_teardown),
		cmocka_unit_test_setup_teardown(test_qstore_key_create_excl,
		    tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_qstore_key_known_value,
		    tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_qstore_key_refused_table,
		    tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_qstore_key_not_regular,
		    tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(
		    test_qstore_key_short_error_buffer, tmp_setup,
		    tmp_teardown),
		cmocka_unit_test(test_qstore_key_path),
		cmocka_unit_test(test_qstore_name),
		cmocka_unit_test(test_qstore_name_truncation),
		cmocka_unit_test(test_qstore_name_max),
		cmocka_unit_test(test_qstore_sealed_len),
		cmocka_unit_test(test_qstore_seal_round_trip),
		cmocka_unit_test(test_qstore_seal_nonce_fresh),
		cmocka_unit_test(test_qstore_empty_message),
		cmocka_unit_test(test_qstore_open_tampered),
		cmocka_unit_test(test_qstore_open_wrong_id),
		cmocka_unit_test(test_qstore_open_truncated),
	};

	if (sodium_init() == -1)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
