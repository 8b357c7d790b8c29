using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading.Tasks;
using CubeWalk.Native;

namespace CubeWalk
{
    /// <summary>
    /// Safe wrapper over the native CubeWalk library. Blocking calls for tools and tests;
    /// non-blocking requests for the game loop, completed only inside <see cref="Update"/> on the
    /// calling thread (the native library never calls back into C#). Chunk data goes straight
    /// into the caller's int[4096] arrays, pinned while a request is in flight.
    ///
    /// The native library holds one session per process: creating a client (or calling
    /// <see cref="Init"/>) replaces the previous settings; <see cref="Dispose"/> shuts it down.
    /// Use it from one thread (the game's main thread).
    /// </summary>
    public sealed class CubeWalkClient : IDisposable
    {
        /// <summary>"No version held": the chunk's data always comes back.</summary>
        public const ulong NoVersion = ulong.MaxValue;
        /// <summary>Cubes in a chunk.</summary>
        public const int ChunkCubes = 4096;

        static CubeWalkClient current;

        readonly List<CubeWalkRequest> pending = new List<CubeWalkRequest>(64);
        IntPtr[] pointers = new IntPtr[64];
        GCHandle[] blockingPins = new GCHandle[64];
        string endpoint, token;
        CubeWalkOptions options;
        string cachedWorld;
        byte[] cachedWorldBytes;
        bool initialized;

        /// <summary>Creates a client and initializes the native library.</summary>
        public CubeWalkClient(string endpoint, string token, CubeWalkOptions options = null)
        {
            Init(endpoint, token, options);
        }

        /// <summary>The client made most recently (used by the Editor play-mode hooks).</summary>
        public static CubeWalkClient Current { get { return current; } }

        /// <summary>True between a successful <see cref="Init"/> and <see cref="Dispose"/>.</summary>
        public bool IsInitialized { get { return initialized; } }

        /// <summary>Requests begun and not yet completed.</summary>
        public int PendingCount { get { return pending.Count; } }

        /// <summary>The native library version as major.minor.patch.</summary>
        public static string NativeVersion
        {
            get
            {
                uint v = NativeMethods.cw_version();
                return (v >> 16) + "." + ((v >> 8) & 0xff) + "." + (v & 0xff);
            }
        }

        /// <summary>(Re)initializes the native library: <paramref name="endpoint"/> is the URL of
        /// /cubewalkblocks with its stage, <paramref name="token"/> the secret for the token header.</summary>
        public unsafe void Init(string endpoint, string token, CubeWalkOptions options = null)
        {
            if (endpoint == null) throw new ArgumentNullException("endpoint");
            if (token == null) throw new ArgumentNullException("token");
            options = options ?? new CubeWalkOptions();
            byte[] e = Encoding.UTF8.GetBytes(endpoint);
            byte[] t = Encoding.UTF8.GetBytes(token);
            CwOptions o;
            Check(NativeMethods.cw_options_default(&o));
            o.timeout_ms = options.TimeoutMs;
            o.connect_timeout_ms = options.ConnectTimeoutMs;
            o.max_retries = options.MaxRetries;
            o.retry_base_delay_ms = options.RetryBaseDelayMs;
            o.retry_max_delay_ms = options.RetryMaxDelayMs;
            o.max_in_flight = options.MaxInFlight;
            o.allow_insecure_http = (byte)(options.AllowInsecureHttp ? 1 : 0);
            byte[] ca = options.CaPem;
            fixed (byte* ep = e)
            fixed (byte* tp = t)
            fixed (byte* cp = ca)
            {
                if (ca != null && ca.Length > 0)
                {
                    o.ca_pem = cp;
                    o.ca_pem_len = (UIntPtr)ca.Length;
                }
                Check(NativeMethods.cw_init_with_options(ep, (UIntPtr)e.Length, tp, (UIntPtr)t.Length, &o));
            }
            this.endpoint = endpoint;
            this.token = token;
            this.options = options;
            initialized = true;
            current = this;
        }

        /// <summary>Fetches chunks, blocking the calling thread (tools, tests, loading screens).
        /// <paramref name="versions"/>[i]: in, the version held in <paramref name="buffers"/>[i] (or
        /// <see cref="NoVersion"/>); out, the current version. Buffers of unchanged chunks are left
        /// alone; <paramref name="changed"/> (optional) tells which were written.</summary>
        public unsafe void FetchBlocks(string world, ChunkKey[] keys, ulong[] versions, int[][] buffers, byte[] changed = null)
        {
            ValidateFetch(keys, versions, buffers, changed);
            byte[] w = WorldBytes(world);
            int n = keys.Length;
            if (pointers.Length < n) pointers = new IntPtr[Math.Max(n, pointers.Length * 2)];
            if (blockingPins.Length < n) blockingPins = new GCHandle[Math.Max(n, blockingPins.Length * 2)];
            GCHandle[] handles = blockingPins;
            IntPtr[] ptrs = pointers;
            try
            {
                for (int i = 0; i < n; i++)
                {
                    handles[i] = GCHandle.Alloc(buffers[i], GCHandleType.Pinned);
                    ptrs[i] = handles[i].AddrOfPinnedObject();
                }
                fixed (byte* wp = w)
                fixed (ChunkKey* kp = keys)
                fixed (ulong* vp = versions)
                fixed (IntPtr* bp = ptrs)
                fixed (byte* cp = changed)
                {
                    Check(NativeMethods.cw_fetch_blocks(wp, (UIntPtr)w.Length, (CwChunkKey*)kp, (UIntPtr)n, vp, (int**)bp, cp));
                }
            }
            finally
            {
                for (int i = 0; i < n; i++) if (handles[i].IsAllocated) handles[i].Free();
            }
        }

        /// <summary>Applies cube edits, blocking; returns how many entries of
        /// <paramref name="results"/> were filled (one per touched chunk, with its new version).</summary>
        public unsafe int PutBlocks(string world, CubeEdit[] edits, ChunkVersion[] results)
        {
            ValidatePut(edits, results);
            byte[] w = WorldBytes(world);
            UIntPtr count;
            fixed (byte* wp = w)
            fixed (CubeEdit* ep = edits)
            fixed (ChunkVersion* rp = results)
            {
                Check(NativeMethods.cw_put_blocks(wp, (UIntPtr)w.Length, (CwEdit*)ep, (UIntPtr)edits.Length,
                    (CwChunkVersion*)rp, (UIntPtr)results.Length, &count));
            }
            return (int)count.ToUInt32();
        }

        /// <summary>Starts a fetch and returns at once; the request completes inside a later
        /// <see cref="Update"/>. The arrays stay pinned until then. Pass <paramref name="reuse"/> (a
        /// finished request) to avoid allocating.</summary>
        public unsafe FetchRequest BeginFetch(string world, ChunkKey[] keys, ulong[] versions, int[][] buffers,
            byte[] changed, Action<FetchRequest> completed = null, FetchRequest reuse = null)
        {
            ValidateFetch(keys, versions, buffers, changed);
            if (changed == null) throw new ArgumentNullException("changed");
            FetchRequest r = reuse ?? new FetchRequest();
            r.Reset();
            r.Keys = keys;
            r.Versions = versions;
            r.Buffers = buffers;
            r.Changed = changed;
            if (completed != null) r.Completed = completed;
            byte[] w = WorldBytes(world);
            int n = keys.Length;
            if (pointers.Length < n) pointers = new IntPtr[Math.Max(n, pointers.Length * 2)];
            try
            {
                for (int i = 0; i < n; i++)
                {
                    r.Pin(buffers[i]);
                    pointers[i] = r.Pins[r.PinCount - 1].AddrOfPinnedObject();
                }
                r.Pin(versions);
                r.Pin(changed);
                ulong id;
                fixed (byte* wp = w)
                fixed (ChunkKey* kp = keys)
                fixed (IntPtr* bp = pointers)
                {
                    ulong* vp = (ulong*)r.Pins[r.PinCount - 2].AddrOfPinnedObject();
                    byte* cp = (byte*)r.Pins[r.PinCount - 1].AddrOfPinnedObject();
                    Check(NativeMethods.cw_fetch_blocks_begin(wp, (UIntPtr)w.Length, (CwChunkKey*)kp, (UIntPtr)n, vp, (int**)bp, cp, &id));
                }
                r.Id = id;
            }
            catch
            {
                r.Unpin();
                throw;
            }
            pending.Add(r);
            return r;
        }

        /// <summary>Starts a put and returns at once; completes inside a later <see cref="Update"/>.</summary>
        public unsafe PutRequest BeginPut(string world, CubeEdit[] edits, ChunkVersion[] results,
            Action<PutRequest> completed = null, PutRequest reuse = null)
        {
            ValidatePut(edits, results);
            PutRequest r = reuse ?? new PutRequest();
            r.Reset();
            r.Results = results;
            r.CountBox[0] = UIntPtr.Zero;
            if (completed != null) r.Completed = completed;
            byte[] w = WorldBytes(world);
            try
            {
                r.Pin(results);
                r.Pin(r.CountBox);
                ulong id;
                fixed (byte* wp = w)
                fixed (CubeEdit* ep = edits)
                {
                    var rp = (CwChunkVersion*)r.Pins[0].AddrOfPinnedObject();
                    var np = (UIntPtr*)r.Pins[1].AddrOfPinnedObject();
                    Check(NativeMethods.cw_put_blocks_begin(wp, (UIntPtr)w.Length, (CwEdit*)ep, (UIntPtr)edits.Length,
                        rp, (UIntPtr)results.Length, np, &id));
                }
                r.Id = id;
            }
            catch
            {
                r.Unpin();
                throw;
            }
            pending.Add(r);
            return r;
        }

        /// <summary>Polls every request in flight (never blocks) and completes the finished ones on
        /// this thread: results land in the caller's arrays, then the Completed callback runs.
        /// Call it once per frame. Allocates nothing unless a request fails.</summary>
        public void Update()
        {
            for (int i = pending.Count - 1; i >= 0; i--)
            {
                if (i >= pending.Count) continue;
                CubeWalkRequest r = pending[i];
                CwStatus s = NativeMethods.cw_poll(r.Id);
                if (s == CwStatus.Pending) continue;
                Finish(i, r, s, s == CwStatus.Ok ? null : LastError());
            }
        }

        /// <summary>Cancels a request in flight: its arrays are never written after this returns.
        /// It completes at once with status Cancelled. A cancelled put may or may not have reached
        /// the server.</summary>
        public void Cancel(CubeWalkRequest request)
        {
            int i = pending.IndexOf(request);
            if (i < 0) return;
            NativeMethods.cw_cancel(request.Id);
            Finish(i, request, CwStatus.Cancelled, "cancelled");
        }

        /// <summary>A fetch as a Task, completed from <see cref="Update"/> on the calling thread.</summary>
        public Task<FetchRequest> FetchAsync(string world, ChunkKey[] keys, ulong[] versions, int[][] buffers, byte[] changed)
        {
            var tcs = new TaskCompletionSource<FetchRequest>();
            BeginFetch(world, keys, versions, buffers, changed, r => Settle(tcs, r));
            return tcs.Task;
        }

        /// <summary>A put as a Task, completed from <see cref="Update"/> on the calling thread.</summary>
        public Task<PutRequest> PutAsync(string world, CubeEdit[] edits, ChunkVersion[] results)
        {
            var tcs = new TaskCompletionSource<PutRequest>();
            BeginPut(world, edits, results, r => Settle(tcs, r));
            return tcs.Task;
        }

        /// <summary>Cancels everything in flight and shuts the native library down. A new client (or
        /// <see cref="Init"/>) works afterwards.</summary>
        public void Dispose()
        {
            Shutdown();
            if (current == this) current = null;
        }

        /// <summary>Leaving Play mode in the Editor: cancel and shut down, keeping the settings.</summary>
        public void Shutdown()
        {
            NativeMethods.cw_shutdown();
            for (int i = pending.Count - 1; i >= 0; i--)
                Finish(i, pending[i], CwStatus.Cancelled, "shut down");
            initialized = false;
        }

        /// <summary>Entering Play mode again: initialize with the settings of the last Init.</summary>
        public void Reinitialize()
        {
            if (!initialized && endpoint != null) Init(endpoint, token, options);
        }

        static void Settle<T>(TaskCompletionSource<T> tcs, T r) where T : CubeWalkRequest
        {
            if (r.Status == CwStatus.Ok) tcs.SetResult(r);
            else if (r.Status == CwStatus.Cancelled) tcs.SetCanceled();
            else tcs.SetException(new CubeWalkException(r.Status, r.Error));
        }

        void Finish(int index, CubeWalkRequest r, CwStatus status, string error)
        {
            pending.RemoveAt(index);
            r.Unpin();
            r.Status = status;
            r.Error = error;
            r.IsDone = true;
            r.InvokeCompleted();
        }

        byte[] WorldBytes(string world)
        {
            if (world == null) throw new ArgumentNullException("world");
            if (!string.Equals(world, cachedWorld, StringComparison.Ordinal))
            {
                cachedWorldBytes = Encoding.UTF8.GetBytes(world);
                cachedWorld = world;
            }
            return cachedWorldBytes;
        }

        static void ValidateFetch(ChunkKey[] keys, ulong[] versions, int[][] buffers, byte[] changed)
        {
            if (keys == null) throw new ArgumentNullException("keys");
            if (versions == null) throw new ArgumentNullException("versions");
            if (buffers == null) throw new ArgumentNullException("buffers");
            if (keys.Length == 0) throw new ArgumentException("no chunks to fetch", "keys");
            if (versions.Length < keys.Length || buffers.Length < keys.Length || (changed != null && changed.Length < keys.Length))
                throw new ArgumentException("versions, buffers and changed need one entry per key");
            for (int i = 0; i < keys.Length; i++)
                if (buffers[i] == null || buffers[i].Length != ChunkCubes)
                    throw new ArgumentException("buffers[" + i + "] must be an int[4096]", "buffers");
        }

        static void ValidatePut(CubeEdit[] edits, ChunkVersion[] results)
        {
            if (edits == null) throw new ArgumentNullException("edits");
            if (results == null) throw new ArgumentNullException("results");
            if (edits.Length == 0) throw new ArgumentException("no edits", "edits");
        }

        static void Check(CwStatus status)
        {
            if (status != CwStatus.Ok) throw new CubeWalkException(status, LastError());
        }

        static unsafe string LastError()
        {
            byte* buf = stackalloc byte[1024];
            UIntPtr len;
            NativeMethods.cw_last_error(buf, (UIntPtr)1024, &len);
            int n = (int)Math.Min(len.ToUInt64(), 1023);
            return Encoding.UTF8.GetString(buf, n);
        }
    }
}
