/* Prints the size and field offsets of every struct the C header shares with C#, one
 * "Struct.field offset" line per field and "Struct size" per struct, for the C# layout test
 * (unity-sample/Tests~/LayoutTests.cs) to compare with what the CLR lays out. */
#include <stddef.h>
#include <stdio.h>
#include "cubewalk.h"

#define SIZE(T) printf(#T " size %zu\n", sizeof(T))
#define FIELD(T, f) printf(#T "." #f " %zu\n", offsetof(T, f))

int main(void) {
    SIZE(CwChunkKey);
    FIELD(CwChunkKey, x);
    FIELD(CwChunkKey, y);
    FIELD(CwChunkKey, z);
    SIZE(CwEdit);
    FIELD(CwEdit, chunk);
    FIELD(CwEdit, index);
    FIELD(CwEdit, value);
    SIZE(CwChunkVersion);
    FIELD(CwChunkVersion, key);
    FIELD(CwChunkVersion, reserved);
    FIELD(CwChunkVersion, version);
    SIZE(CwOptions);
    FIELD(CwOptions, struct_size);
    FIELD(CwOptions, timeout_ms);
    FIELD(CwOptions, connect_timeout_ms);
    FIELD(CwOptions, max_retries);
    FIELD(CwOptions, retry_base_delay_ms);
    FIELD(CwOptions, retry_max_delay_ms);
    FIELD(CwOptions, max_in_flight);
    FIELD(CwOptions, allow_insecure_http);
    FIELD(CwOptions, reserved);
    FIELD(CwOptions, ca_pem);
    FIELD(CwOptions, ca_pem_len);
    SIZE(CwChange);
    FIELD(CwChange, chunk);
    FIELD(CwChange, kind);
    FIELD(CwChange, previous);
    FIELD(CwChange, version);
    FIELD(CwChange, first_edit);
    FIELD(CwChange, edit_count);
    SIZE(CwGuestSession);
    FIELD(CwGuestSession, expires_at);
    FIELD(CwGuestSession, expires_in);
    FIELD(CwGuestSession, player_len);
    FIELD(CwGuestSession, player);
    return 0;
}
