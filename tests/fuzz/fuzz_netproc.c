/*
 * fuzz_netproc - arbitrary frames from a (compromised) network process to
 * the parent's decoder and permitted-request table (np_permit_check), as the
 * parent sees them: the issuer and the four requests in flight of
 * tests/netproc_fixture.h (an issue, a revoke, a renewal-info, a probe).
 * The input is cut into frames at each length prefix, so that one run checks
 * a sequence (the challenge counter carries over between frames).
 */
#include "../netproc_fixture.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct np_permit_ctx ctx = { fx_find_issuer, fx_find_req, NULL, false };
	struct cs_frame_msg m;
	char why[512];

	fx_reset();
	while (size >= 4) {
		size_t n = 4 + ((size_t)data[0] << 24 | (size_t)data[1] << 16 |
				(size_t)data[2] << 8 | data[3]);
		if (n > size)
			n = size;
		if (np_permit_check(&ctx, data, n, &m, why, sizeof(why)) == 0)
			cs_frame_msg_free(&m);
		data += n;
		size -= n;
	}
	return 0;
}
