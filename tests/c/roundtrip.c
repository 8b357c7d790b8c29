/* A C program using the SDK exactly as documented in the README: init, put, blocking fetch,
 * begin/poll, realtime (follow a chunk, see a put come back as a change), a wrong token,
 * shutdown and init again. Built for the host and cross-built for
 * Windows (run under Wine) and Linux arm64 (run under qemu-user).
 * Usage: roundtrip <endpoint> <token>. Exits 0 and prints "ok" when every check passes. */
#define _POSIX_C_SOURCE 199309L /* nanosleep under -std=c99 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cubewalk.h"
#ifdef _WIN32
#include <windows.h>
static void pause_ms(unsigned ms) { Sleep(ms); }
#else
#include <time.h>
static void pause_ms(unsigned ms) {
    struct timespec t = {0, (long)ms * 1000000L};
    nanosleep(&t, NULL);
}
#endif

/* Polls a non-blocking request until it finishes (at most about 20 s). */
static CwStatus wait_for(uint64_t id) {
    for (int i = 0; i < 20000; i++) {
        CwStatus s = cw_poll(id);
        if (s != CW_STATUS_PENDING) return s;
        pause_ms(1);
    }
    return CW_STATUS_PENDING;
}

/* Polls realtime events (at most about 10 s) until one of `kind` (and, for changes, of
 * `version`) arrives; copies it and its first edit out. Returns 1 when found. */
static int wait_change(uint32_t kind, uint64_t version, CwChange *found, CwEdit *first_edit) {
    CwChange changes[8];
    CwEdit edits[CW_MAX_CHANGE_EDITS * 8];
    for (int i = 0; i < 10000; i++) {
        size_t n = 0, e = 0;
        if (cw_realtime_poll(changes, 8, edits, CW_MAX_CHANGE_EDITS * 8, &n, &e) != CW_STATUS_OK) return 0;
        for (size_t c = 0; c < n; c++) {
            if (changes[c].kind == kind && (version == 0 || changes[c].version == version)) {
                *found = changes[c];
                if (changes[c].edit_count > 0) *first_edit = edits[changes[c].first_edit];
                return 1;
            }
        }
        pause_ms(1);
    }
    return 0;
}

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

    /* Non-blocking: begin, poll until done; the buffer is written only by the final poll. */
    static int32_t chunk_c[4096];
    int32_t *one[1] = {chunk_c};
    uint64_t held[1] = {CW_NO_VERSION};
    uint8_t one_changed[1] = {0};
    uint64_t id = 0;
    s = cw_fetch_blocks_begin((const uint8_t *)world, strlen(world), keys, 1, held, one, one_changed, &id);
    if (s != CW_STATUS_OK) return fail("cw_fetch_blocks_begin", s);
    s = wait_for(id);
    if (s != CW_STATUS_OK) return fail("cw_poll", s);
    if (chunk_c[1 * 256 + 3 * 16 + 2] != 7 || held[0] != versions_out[0].version || !one_changed[0]) {
        fprintf(stderr, "unexpected polled fetch result\n");
        return 1;
    }

    /* Realtime: follow chunk (0,0,0) through the local gateway's MQTT gate beside the
     * endpoint (http://host/prod/cubewalkblocks -> ws://host/mqtt); a put comes back as a
     * change carrying its edit, from the version held to the new one. */
    char ws[512];
    if (strncmp(endpoint, "http://", 7) != 0 || strlen(endpoint) >= sizeof ws) {
        fprintf(stderr, "the realtime check needs an http:// endpoint\n");
        return 1;
    }
    snprintf(ws, sizeof ws, "ws://%s", endpoint + 7);
    char *path = strchr(ws + 5, '/');
    if (path) *path = '\0';
    if (strlen(ws) + 6 > sizeof ws) {
        fprintf(stderr, "endpoint too long\n");
        return 1;
    }
    strcat(ws, "/mqtt");
    s = cw_realtime_start((const uint8_t *)ws, strlen(ws));
    if (s != CW_STATUS_OK) return fail("cw_realtime_start", s);
    s = cw_realtime_follow((const uint8_t *)world, strlen(world), keys, 1);
    if (s != CW_STATUS_OK) return fail("cw_realtime_follow", s);
    CwChange change;
    CwEdit change_edit = {{0, 0, 0}, 0, 0};
    if (!wait_change(CW_CHANGE_SUBSCRIBED, 0, &change, &change_edit)) {
        fprintf(stderr, "no CW_CHANGE_SUBSCRIBED\n");
        return 1;
    }
    /* The writes above are published within a tick (100 ms), merged per chunk: let them
     * pass, so this put's change travels alone, from the version held. */
    pause_ms(300);
    /* A value the cube does not hold yet (runs share the gateway): a put that changes nothing
     * notifies nobody. */
    int32_t fresh = chunk_a[5] + 1;
    CwEdit again = {{0, 0, 0}, 5, fresh};
    s = cw_put_blocks((const uint8_t *)world, strlen(world), &again, 1, versions_out, 2, &touched);
    if (s != CW_STATUS_OK) return fail("cw_put_blocks (realtime)", s);
    if (!wait_change(CW_CHANGE_EDITS, versions_out[0].version, &change, &change_edit)) {
        int32_t state = -1;
        cw_realtime_state(&state);
        return fail("the put's change (realtime state in the message)", (CwStatus)state);
    }
    if (change.previous != versions[0] || change.edit_count != 1 || change_edit.index != 5 ||
        change_edit.value != fresh) {
        fprintf(stderr, "the put came back wrong: %u edits, index %u value %d\n",
                change.edit_count, change_edit.index, change_edit.value);
        return 1;
    }
    s = cw_realtime_stop();
    if (s != CW_STATUS_OK) return fail("cw_realtime_stop", s);

    /* A wrong token is refused as unauthorized. */
    const char *wrong = "wrong-token-for-this-test";
    s = cw_init((const uint8_t *)endpoint, strlen(endpoint), (const uint8_t *)wrong, strlen(wrong));
    if (s != CW_STATUS_OK) return fail("cw_init (wrong token)", s);
    versions[0] = versions[1] = CW_NO_VERSION;
    s = cw_fetch_blocks((const uint8_t *)world, strlen(world), keys, 2, versions, buffers, changed);
    if (s != CW_STATUS_UNAUTHORIZED) {
        fprintf(stderr, "wrong token gave %s\n", cw_status_str(s));
        return 1;
    }

    /* Shut down, then initialize again: the library works as on first use. */
    s = cw_shutdown();
    if (s != CW_STATUS_OK) return fail("cw_shutdown", s);
    s = cw_fetch_blocks((const uint8_t *)world, strlen(world), keys, 2, versions, buffers, changed);
    if (s != CW_STATUS_NOT_INITIALIZED) {
        fprintf(stderr, "fetch after shutdown gave %s\n", cw_status_str(s));
        return 1;
    }
    s = cw_init((const uint8_t *)endpoint, strlen(endpoint), (const uint8_t *)token, strlen(token));
    if (s != CW_STATUS_OK) return fail("cw_init (again)", s);
    s = cw_fetch_blocks((const uint8_t *)world, strlen(world), keys, 2, versions, buffers, changed);
    if (s != CW_STATUS_OK) return fail("cw_fetch_blocks (after re-init)", s);
    if (chunk_b[0] != -42) {
        fprintf(stderr, "unexpected fetch result after re-init\n");
        return 1;
    }

    cw_shutdown();
    printf("ok (sdk %u.%u.%u)\n", cw_version() >> 16, (cw_version() >> 8) & 0xff, cw_version() & 0xff);
    return 0;
}
