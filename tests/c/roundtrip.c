/* A C program using the SDK exactly as documented in the README: init, put, fetch, check.
 * Usage: roundtrip <endpoint> <token>. Exits 0 and prints "ok" when every check passes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cubewalk.h"

static int fail(const char *what, CwStatus status) {
    char message[512];
    cw_last_error((uint8_t *)message, sizeof message, NULL);
    fprintf(stderr, "%s failed: %s (%s)\n", what, cw_status_str(status), message);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s <endpoint> <token>\n", argv[0]);
        return 2;
    }
    const char *endpoint = argv[1];
    const char *token = argv[2];
    const char *world = "c-world";

    CwStatus s = cw_init((const uint8_t *)endpoint, strlen(endpoint),
                         (const uint8_t *)token, strlen(token));
    if (s != CW_STATUS_OK) return fail("cw_init", s);

    /* Set cube (x=1, y=2, z=3) of chunk (0, 0, 0) and the first cube of chunk (-1, 0, 5). */
    CwEdit edits[2] = {
        {{0, 0, 0}, 1 * 256 + 3 * 16 + 2, 7},
        {{-1, 0, 5}, 0, -42},
    };
    CwChunkVersion versions_out[2];
    size_t touched = 0;
    s = cw_put_blocks((const uint8_t *)world, strlen(world), edits, 2, versions_out, 2, &touched);
    if (s != CW_STATUS_OK) return fail("cw_put_blocks", s);
    if (touched != 2 || versions_out[0].version == 0 || versions_out[0].version == CW_NO_VERSION ||
        versions_out[1].key.x != -1) {
        fprintf(stderr, "unexpected put result\n");
        return 1;
    }

    /* The game's own chunk buffers. */
    static int32_t chunk_a[4096], chunk_b[4096];
    int32_t *buffers[2] = {chunk_a, chunk_b};
    CwChunkKey keys[2] = {{0, 0, 0}, {-1, 0, 5}};
    uint64_t versions[2] = {CW_NO_VERSION, CW_NO_VERSION};
    uint8_t changed[2] = {0, 0};
    s = cw_fetch_blocks((const uint8_t *)world, strlen(world), keys, 2, versions, buffers, changed);
    if (s != CW_STATUS_OK) return fail("cw_fetch_blocks", s);
    if (chunk_a[1 * 256 + 3 * 16 + 2] != 7 || chunk_b[0] != -42 || chunk_a[0] != 0 ||
        versions[0] != versions_out[0].version || versions[1] != versions_out[1].version ||
        !changed[0] || !changed[1]) {
        fprintf(stderr, "unexpected fetch result\n");
        return 1;
    }

    /* Holding the current versions, nothing changes and the buffers are left alone. */
    chunk_a[0] = 99;
    s = cw_fetch_blocks((const uint8_t *)world, strlen(world), keys, 2, versions, buffers, changed);
    if (s != CW_STATUS_OK) return fail("cw_fetch_blocks (refetch)", s);
    if (changed[0] || changed[1] || chunk_a[0] != 99) {
        fprintf(stderr, "refetch rewrote unchanged chunks\n");
        return 1;
    }

    /* A bad argument is reported, not a crash. */
    s = cw_fetch_blocks(NULL, 0, keys, 2, versions, buffers, changed);
    if (s != CW_STATUS_INVALID_ARGUMENT) return fail("invalid-argument check", s);

    cw_shutdown();
    printf("ok (sdk %u.%u.%u)\n", cw_version() >> 16, (cw_version() >> 8) & 0xff, cw_version() & 0xff);
    return 0;
}
