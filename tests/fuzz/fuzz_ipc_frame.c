/*
 * fuzz_ipc_frame - throw arbitrary bytes at the frame parser and walk
 * whatever parses with getters the input chooses: nothing may be read or
 * written out of bounds, and every getter must give the answer a plain
 * model of the payload gives.
 *
 * Input: byte 0 modulo 3 is how many descriptors "arrived"; the rest is
 * the frame.  The frame's reqid, which the parser never checks, chooses
 * up to 16 getters, 4 bits each from the low end: 2 bits for the getter
 * (u32, u64, str, data) and 2 bits for its size (str: dstlen 0, 1, 5 or
 * 64; data: 0, 1, all that is left, or one byte more).  Destinations are
 * heap blocks of exactly that size, so ASan sees any write past them.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipc.h"

#define FUZZ_OPS	16

int		LLVMFuzzerTestOneInput(const uint8_t *, size_t);
static void	check(int);
static int	walk_str(struct ipc_msg *, size_t);
static int	walk_data(struct ipc_msg *, size_t);

static void
check(int ok)
{
	if (!ok)
		abort();
}

/* walk_str - ipc_get_str against the model: fits, no NUL, room for one */
static int
walk_str(struct ipc_msg *m, size_t dstlen)
{
	size_t		 left = m->len - m->pos, pos = m->pos;
	uint32_t	 n = 0;
	int		 want, rc;
	char		*dst;

	if (left >= 4)
		memcpy(&n, m->data + pos, 4);
	want = left >= 4 && n <= left - 4 && n < dstlen &&
	    memchr(m->data + pos + 4, '\0', n) == NULL ? 0 : -1;
	if ((dst = malloc(dstlen)) == NULL)
		return -1;
	rc = ipc_get_str(m, dst, dstlen);
	check(rc == want);
	if (rc == 0) {
		check(strlen(dst) == n);
		check(memcmp(dst, m->data + pos + 4, n) == 0);
		check(m->pos == pos + 4 + n);
	}
	free(dst);
	return rc;
}

/* walk_data - ipc_get_data against the model: all of n, or nothing */
static int
walk_data(struct ipc_msg *m, size_t n)
{
	size_t	 left = m->len - m->pos, pos = m->pos;
	int	 rc;
	uint8_t	*dst;

	if ((dst = malloc(n)) == NULL)
		return -1;
	rc = ipc_get_data(m, dst, n);
	check(rc == (n <= left ? 0 : -1));
	if (rc == 0) {
		check(memcmp(dst, m->data + pos, n) == 0);
		check(m->pos == pos + n);
	} else
		check(m->pos == pos);
	free(dst);
	return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t	 dstlens[4] = { 0, 1, 5, 64 };
	struct ipc_msg		 m;
	char			 err[128];
	uint64_t		 ops, u64;
	uint32_t		 u32;
	size_t			 i, pos, left, n;
	int			 nfds, rc;

	if (size < 1)
		return 0;
	nfds = data[0] % 3;
	memset(err, 0, sizeof(err));
	if (ipc_frame_parse(data + 1, size - 1, nfds, &m, err,
	    sizeof(err)) == -1) {
		/* a refusal always says why, in one terminated line */
		check(err[0] != '\0' && memchr(err, '\0', sizeof(err)) != NULL);
		check(strchr(err, '\n') == NULL);
		return 0;
	}
	check(size - 1 >= IPC_HDR_SIZE);
	check(m.len == size - 1 - IPC_HDR_SIZE && m.len <= IPC_MAX_PAYLOAD);
	check(m.type > 0 && m.type < IPC_TYPE_MAX);
	check(strcmp(ipc_type_str(m.type), "UNKNOWN") != 0);
	check(m.data == data + 1 + IPC_HDR_SIZE);
	check(m.pos == 0 && m.fd == -1);
	check(nfds <= 1);

	ops = m.reqid;
	for (i = 0, rc = 0; i < FUZZ_OPS && rc == 0; i++, ops >>= 4) {
		pos = m.pos;
		left = m.len - m.pos;
		switch (ops & 3) {
		case 0:
			rc = ipc_get_u32(&m, &u32);
			check(rc == (left >= 4 ? 0 : -1));
			check(m.pos == pos + (rc == 0 ? 4 : 0));
			check(rc != 0 || memcmp(&u32, m.data + pos, 4) == 0);
			break;
		case 1:
			rc = ipc_get_u64(&m, &u64);
			check(rc == (left >= 8 ? 0 : -1));
			check(m.pos == pos + (rc == 0 ? 8 : 0));
			check(rc != 0 || memcmp(&u64, m.data + pos, 8) == 0);
			break;
		case 2:
			rc = walk_str(&m, dstlens[(ops >> 2) & 3]);
			break;
		default:
			switch ((ops >> 2) & 3) {
			case 0:
				n = 0;
				break;
			case 1:
				n = 1;
				break;
			case 2:
				n = left;
				break;
			default:
				n = left + 1;
				break;
			}
			rc = walk_data(&m, n);
			break;
		}
		check(m.pos <= m.len);
	}
	check(ipc_end(&m) == (m.pos == m.len ? 0 : -1));
	return 0;
}
