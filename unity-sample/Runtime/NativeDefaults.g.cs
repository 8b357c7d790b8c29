// Generated from sdk/src/options.rs, sdk/src/retry.rs, sdk/src/batching.rs, protocol/src/limits.rs and protocol/src/realtime.rs by sdk/tests/generated.rs. Do not edit: run `CUBEWALK_UPDATE_GENERATED=1 cargo test -p cubewalk --test generated`.

namespace CubeWalk
{
    /// <summary>The native library's defaults and the protocol's limits, for the managed
    /// transport, which runs where the library cannot be asked (WebGL).</summary>
    internal static class NativeDefaults
    {
        internal const uint TimeoutMs = 10000;
        internal const uint ConnectTimeoutMs = 5000;
        internal const uint MaxRetries = 3;
        internal const uint RetryBaseDelayMs = 100;
        internal const uint RetryMaxDelayMs = 2000;
        internal const int FenceHorizonMs = 45000;
        internal const int MaxChunksPerFetch = 256;
        internal const int MaxChunksPerPut = 256;
        internal const int MaxEditsPerPut = 16384;
        internal const int MaxWorldIdLength = 64;
        internal const int MaxEndpointLength = 2048;
        internal const int MaxTokenLength = 4096;
        internal const int RegionChunks = 4;
    }
}
