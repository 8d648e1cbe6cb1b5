/*
 * fuzz_ipc_frame - throw arbitrary bytes at the frame parser and walk
 * whatever parses with the typed getters: nothing may read out of bounds.
 * The first byte picks how many descriptors "arrived" (0..2); the rest is
 * the frame.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ipc.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ipc_msg	 m;
	char		 err[128], str[64];
	uint8_t		 blob[32];
	uint32_t	 u32;
	uint64_t	 u64;
	size_t		 i;

	if (size < 1)
		return 0;
	if (ipc_frame_parse(data + 1, size - 1, data[0] % 3, &m, err,
	    sizeof(err)) == -1)
		return 0;
	/* a getter sequence driven by the payload itself */
	for (i = 0; i < 64; i++) {
		int	 rc;

		switch ((m.pos + i) % 4) {
		case 0:
			rc = ipc_get_u32(&m, &u32);
			break;
		case 1:
			rc = ipc_get_u64(&m, &u64);
			break;
		case 2:
			rc = ipc_get_str(&m, str, sizeof(str));
			break;
		default:
			rc = ipc_get_data(&m, blob, 1 + i % sizeof(blob));
			break;
		}
		if (rc == -1 || m.pos > m.len)
			break;
	}
	(void)ipc_end(&m);
	(void)ipc_type_str(m.type);
	return 0;
}
