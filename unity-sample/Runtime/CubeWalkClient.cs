using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using CubeWalk.Native;

namespace CubeWalk
{
    /// <summary>
    /// Safe wrapper over the native CubeWalk library. Blocking calls for tools, tests and worker
    /// threads; non-blocking requests for the game loop, completed only inside <see cref="Update"/>
    /// (the native library never calls back into C#). Chunk data goes straight into the caller's
    /// int[4096] arrays, pinned while a request is in flight.
    ///
    /// Every public method may be called from any thread: blocking calls use scratch space of
    /// their own thread, request bookkeeping is locked, and a finished request completes (its
    /// callback runs) on the thread whose <see cref="Update"/> found it finished. In Unity,
    /// managed-transport requests (<see cref="CubeWalkTransport.Managed"/>, WebGL) start on the
    /// next frame's player loop on the main thread, whichever thread began them, because
    /// UnityWebRequest works only there; a blocking call on the main thread drives them itself
    /// while it waits, one on another thread waits for the main thread's frames.
    ///
    /// The native library holds one session per process. Clients share it: each client holds a
    /// reference, and the session is shut down when the last client is disposed. Clients open at
    /// the same time must use the same endpoint, token and options (a client with other settings
    /// is refused with <see cref="InvalidOperationException"/> rather than silently changing the
    /// others' settings).
    /// </summary>
    public sealed class CubeWalkClient : IDisposable
    {
        /// <summary>"No version held": the chunk's data always comes back.</summary>
        public const ulong NoVersion = ulong.MaxValue;
        /// <summary>Cubes in a chunk.</summary>
        public const int ChunkCubes = 4096;

        // The process-wide native session: which clients hold it and with which settings.
        static readonly object sessionLock = new object();
        static readonly List<CubeWalkClient> open = new List<CubeWalkClient>();
        static readonly List<CubeWalkClient> suspended = new List<CubeWalkClient>();
        static Settings sessionSettings;
        static CubeWalkClient current;

        // Guards `pending` and the order of native begin calls, so pending order is begin order.
        readonly object gate = new object();
        readonly List<CubeWalkRequest> pending = new List<CubeWalkRequest>(64);
        // Owned by the thread inside Update (one at a time, see `updating`).
        readonly List<CubeWalkRequest> completing = new List<CubeWalkRequest>(64);
        readonly List<string> completingErrors = new List<string>(64);
        readonly object updateLock = new object();
        bool updating;
        // Set when this client speaks through the managed transport (WebGL, or asked for).
        Managed.ManagedTransport managed;
        // The managed transport's realtime follower, once started.
        Managed.ManagedRealtime realtime;
        /// <summary>Tests: the WebSocket bridges the managed realtime follower opens (null: the
        /// build's own, <see cref="Managed.WebSocketBridges.Create"/>).</summary>
        internal Func<Managed.IWebSocketBridge> RealtimeBridges;
        /// <summary>Tests: the managed realtime follower, or null.</summary>
        internal Managed.ManagedRealtime ManagedRealtimeForTests { get { return realtime; } }
        string lastEndpoint, lastToken;
        CubeWalkOptions lastOptions;
        volatile bool initialized;

        /// <summary>Creates a client and initializes (or joins) the native session.</summary>
        /// <param name="endpoint">The URL of /cubewalkblocks with its stage.</param>
        /// <param name="token">The secret sent in the token header.</param>
        /// <param name="options">Settings; null for the library's defaults.</param>
        /// <exception cref="CubeWalkException">The endpoint or token is invalid (InvalidArgument).</exception>
        /// <exception cref="InvalidOperationException">Another client is open with other settings.</exception>
        public CubeWalkClient(string endpoint, string token, CubeWalkOptions options = null)
        {
            Init(endpoint, token, options);
        }

        /// <summary>The client made most recently.</summary>
        public static CubeWalkClient Current { get { return current; } }

        /// <summary>True between a successful <see cref="Init"/> and <see cref="Dispose"/>.</summary>
        public bool IsInitialized { get { return initialized; } }

        /// <summary>Requests begun and not yet completed.</summary>
        public int PendingCount { get { lock (gate) return pending.Count + completing.Count; } }

        /// <summary>The native library version as major.minor.patch.</summary>
        public static string NativeVersion
        {
            get
            {
                uint v = NativeMethods.cw_version();
                return (v >> 16) + "." + ((v >> 8) & 0xff) + "." + (v & 0xff);
            }
        }

        /// <summary>(Re)initializes this client: <paramref name="endpoint"/> is the URL of
        /// /cubewalkblocks with its stage, <paramref name="token"/> the secret for the token
        /// header. While other clients are open the settings must equal theirs
        /// (<see cref="InvalidOperationException"/> otherwise); when this is the only client, new
        /// settings apply to requests begun afterwards (native requests in flight finish with the
        /// old ones; managed-transport requests in flight, or any when the transport changes, end
        /// cancelled). Initializing the native session again stops its realtime connection; on the
        /// managed transport, this client's realtime follower stops.</summary>
        /// <param name="endpoint">The URL of /cubewalkblocks with its stage.</param>
        /// <param name="token">The secret sent in the token header.</param>
        /// <param name="options">Settings; null for the library's defaults.</param>
        /// <exception cref="ArgumentNullException"><paramref name="endpoint"/> or <paramref name="token"/> is null.</exception>
        /// <exception cref="CubeWalkException">The endpoint or token is invalid (InvalidArgument).</exception>
        /// <exception cref="InvalidOperationException">Another client is open with other settings.</exception>
        public unsafe void Init(string endpoint, string token, CubeWalkOptions options = null)
        {
            if (endpoint == null) throw new ArgumentNullException("endpoint");
            if (token == null) throw new ArgumentNullException("token");
            options = options ?? new CubeWalkOptions();
            if (UsesManaged(options))
            {
                // Independent of the native session: nothing to share, nothing to shut down.
                // Requests in flight belong to the transport being replaced: they end cancelled.
                var transport = new Managed.ManagedTransport(endpoint, token, options.Clone(), Sender());
                lock (sessionLock)
                {
                    CancelAllPending();
                    if (managed == null) LeaveNativeSession();
                    // Its token and settings were the old transport's, as cw_init stops the native one.
                    StopManagedRealtime();
                    managed = transport;
                    Remember(endpoint, token, options);
                    initialized = true;
                    current = this;
                }
                CompleteCancelled("re-initialized");
                return;
            }
            var wanted = new Settings(endpoint, token, options);
            lock (sessionLock)
            {
                int others = open.Count - (open.Contains(this) ? 1 : 0);
                if (others > 0)
                {
                    // The others' settings may differ from this client's old ones: the session is theirs.
                    if (!wanted.SameAs(sessionSettings))
                        throw new InvalidOperationException("another CubeWalkClient is open with a different endpoint, token or options; "
                            + "the native library holds one session per process, so open clients must share their settings");
                }
                else
                {
                    wanted.Apply();
                    sessionSettings = wanted;
                }
                // Leaving the managed transport: its requests cannot be polled natively.
                if (managed != null) CancelAllPending();
                StopManagedRealtime();
                managed = null;
                Remember(endpoint, token, options);
                if (!open.Contains(this)) open.Add(this);
                suspended.Remove(this);
                initialized = true;
                current = this;
            }
            CompleteCancelled("re-initialized");
        }

        /// <summary>Replaces the token without re-initializing: every HTTP attempt that starts from
        /// now on sends it (retries and queued puts of requests already begun included), and so
        /// does the next realtime connect or reconnect; a realtime connection stopped on a refused
        /// token (<see cref="CubeWalk.RealtimeState.Refused"/>, <see cref="CubeWalk.RealtimeState.TokenRefused"/>)
        /// tries again with it. Requests in flight are not cancelled. The native session is shared:
        /// every open native client sends the new token. Thread-safe. Call it after a new login
        /// (before the old token expires, or when a request ends <see cref="CubeWalkStatus.TokenRefused"/>).</summary>
        /// <param name="token">The new token (1 to 4096 visible ASCII characters).</param>
        /// <exception cref="ArgumentNullException"><paramref name="token"/> is null.</exception>
        /// <exception cref="CubeWalkException">The token is invalid (InvalidArgument; the old one stays),
        /// or the client is not initialized (NotInitialized).</exception>
        public unsafe void SetToken(string token)
        {
            if (token == null) throw new ArgumentNullException("token");
            lock (sessionLock)
            {
                if (!initialized)
                    throw new CubeWalkException(CubeWalkStatus.NotInitialized, "not initialized: call Init first");
                Managed.ManagedTransport m = managed;
                if (m != null)
                {
                    m.SetToken(token);
                    lastToken = token;
                    return;
                }
                byte[] t = Encoding.UTF8.GetBytes(token);
                fixed (byte* tp = t)
                    Check(NativeMethods.cw_set_token(tp, (UIntPtr)t.Length));
                // The session's settings now carry the new token: clients joining it, and
                // Reinitialize after a Play-mode pause, use it.
                if (sessionSettings != null)
                    sessionSettings = new Settings(sessionSettings.Endpoint, token, sessionSettings.Options);
                foreach (var c in open) c.lastToken = token;
            }
        }

        /// <summary>A new device secret for <see cref="LoginGuest"/>: 32 random bytes, base64url
        /// (43 characters). Make it once, keep it (PlayerPrefs), and log in with it every time: it
        /// is the guest's identity, so treat it as a password (never log or share it).</summary>
        /// <returns>The secret.</returns>
        public static string NewDeviceSecret()
        {
            var bytes = new byte[32];
            using (var rng = System.Security.Cryptography.RandomNumberGenerator.Create()) rng.GetBytes(bytes);
            return Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        }

        internal static void CheckDeviceSecret(string secret)
        {
            if (secret == null) throw new ArgumentNullException("deviceSecret");
            bool ok = secret.Length >= 22 && secret.Length <= 128;
            foreach (char c in secret)
                ok &= (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
            if (!ok)
                throw new CubeWalkException(CubeWalkStatus.InvalidArgument,
                    "invalid argument: device secret must be 22 to 128 characters of A-Z a-z 0-9 _ -");
        }

        /// <summary>Logs in as the guest <paramref name="deviceSecret"/> stands for, blocking (not in
        /// WebGL builds: use <see cref="BeginLoginGuest"/>). Needs no client: log in, then create the
        /// client with <see cref="GuestSession.Token"/>. Transient failures are retried within the
        /// options' timeout (native plugin).</summary>
        /// <param name="endpoint">The /cubewalkblocks URL (its sibling /cubewalklogin is used) or the /cubewalklogin URL.</param>
        /// <param name="deviceSecret">The device's secret (<see cref="NewDeviceSecret"/>).</param>
        /// <param name="options">Settings (transport, timeout, CA, plain HTTP); null for the defaults.</param>
        /// <returns>The token, player and expiry.</returns>
        /// <exception cref="ArgumentNullException">An argument is null.</exception>
        /// <exception cref="CubeWalkException">The login failed: InvalidArgument (bad endpoint or
        /// secret, nothing sent), BadRequest (the server refused the secret), RateLimited, Network, ...</exception>
        /// <exception cref="PlatformNotSupportedException">In a WebGL build.</exception>
        public static unsafe GuestSession LoginGuest(string endpoint, string deviceSecret, CubeWalkOptions options = null)
        {
            if (endpoint == null) throw new ArgumentNullException("endpoint");
            CheckDeviceSecret(deviceSecret);
            options = options ?? new CubeWalkOptions();
            CheckCanBlock();
            if (UsesManaged(options))
            {
                var request = new GuestLoginRequest(Managed.ManagedTransport.BeginLogin(Sender(), endpoint, deviceSecret, options), deviceSecret);
                while (!request.Poll()) WaitForManaged();
                if (request.Status != CubeWalkStatus.Ok) throw new CubeWalkException(request.Status, request.Error);
                return request.Session;
            }
            var settings = new Settings(endpoint, "-", options);
            byte[] e = Encoding.UTF8.GetBytes(endpoint);
            byte[] secret = Encoding.UTF8.GetBytes(deviceSecret);
            byte[] token = new byte[NativeDefaults.MaxTokenLength];
            UIntPtr tokenLen;
            CwGuestSession session;
            CwOptions o = settings.Effective;
            byte[] ca = options.CaPem;
            fixed (byte* ep = e)
            fixed (byte* sp = secret)
            fixed (byte* tp = token)
            fixed (byte* cp = ca)
            {
                if (ca != null && ca.Length > 0)
                {
                    o.ca_pem = cp;
                    o.ca_pem_len = (UIntPtr)ca.Length;
                }
                Check(NativeMethods.cw_login_guest(ep, (UIntPtr)e.Length, sp, (UIntPtr)secret.Length, &o,
                    tp, (UIntPtr)token.Length, &tokenLen, &session));
            }
            int playerLen = (int)Math.Min(session.player_len, 128u);
            byte[] player = new byte[playerLen];
            for (int i = 0; i < playerLen; i++) player[i] = session.player[i];
            return new GuestSession(Encoding.UTF8.GetString(token, 0, (int)tokenLen.ToUInt32()), Encoding.UTF8.GetString(player),
                "", (long)session.expires_at, (int)Math.Min(session.expires_in, (uint)int.MaxValue));
        }

        /// <summary>Starts a guest login without blocking (every platform, WebGL included): poll the
        /// request once per frame with <see cref="GuestLoginRequest.Poll"/>. The native plugin logs in
        /// on a worker thread; the managed transport through UnityWebRequest (in Unity it starts on
        /// the next frame's player loop on the main thread, whichever thread called this).</summary>
        /// <param name="endpoint">The /cubewalkblocks URL (its sibling /cubewalklogin is used) or the /cubewalklogin URL.</param>
        /// <param name="deviceSecret">The device's secret (<see cref="NewDeviceSecret"/>).</param>
        /// <param name="options">Settings; null for the defaults.</param>
        /// <returns>The login in flight.</returns>
        /// <exception cref="ArgumentNullException">An argument is null.</exception>
        /// <exception cref="CubeWalkException">The endpoint or secret is invalid (nothing sent).</exception>
        public static GuestLoginRequest BeginLoginGuest(string endpoint, string deviceSecret, CubeWalkOptions options = null)
        {
            if (endpoint == null) throw new ArgumentNullException("endpoint");
            CheckDeviceSecret(deviceSecret);
            options = options ?? new CubeWalkOptions();
            if (UsesManaged(options))
                return new GuestLoginRequest(Managed.ManagedTransport.BeginLogin(Sender(), endpoint, deviceSecret, options), deviceSecret);
            CubeWalkOptions copy = options.Clone();
            return new GuestLoginRequest(Task.Run(() => LoginGuest(endpoint, deviceSecret, copy)));
        }

        static bool UsesManaged(CubeWalkOptions options)
        {
            if (options.Transport == CubeWalkTransport.Managed) return true;
#if UNITY_WEBGL && !UNITY_EDITOR
            // Browsers load no native code: WebGL builds always speak through UnityWebRequest.
            return true;
#else
            return false;
#endif
        }

        static Managed.IHttpSender Sender()
        {
#if UNITY_2018_1_OR_NEWER
            return Managed.UnityWebRequestSender.Instance;
#else
            return new Managed.HttpClientSender();
#endif
        }

        // One step of a blocking wait on the managed transport. In Unity its requests start and
        // finish in the main thread's player loop, which cannot run while the main thread waits
        // here: there the wait pumps them itself (elsewhere the player loop does).
        static void WaitForManaged()
        {
#if UNITY_2018_1_OR_NEWER
            Managed.UnityWebRequestSender.WaitABit();
#else
            Thread.Sleep(1);
#endif
        }

        void Remember(string endpoint, string token, CubeWalkOptions options)
        {
            lastEndpoint = endpoint;
            lastToken = token;
            lastOptions = options.Clone();
        }

        // Called under sessionLock when a client switches to the managed transport.
        void LeaveNativeSession()
        {
            CancelAllPending();
            if (open.Remove(this) && open.Count == 0) NativeMethods.cw_shutdown();
        }

        // Blocking calls wait by polling; a WebGL build has one thread and cannot wait.
        static void CheckCanBlock()
        {
#if UNITY_WEBGL && !UNITY_EDITOR
            throw new PlatformNotSupportedException("blocking calls are not available in WebGL builds: use BeginFetch/BeginPut and Update, or FetchAsync/PutAsync");
#endif
        }

        CubeWalkStatus WaitManaged(ulong id)
        {
            string error;
            CubeWalkStatus s;
            while ((s = managed.Poll(id, out error)) == CubeWalkStatus.Pending) WaitForManaged();
            if (s != CubeWalkStatus.Ok) throw new CubeWalkException(s, error);
            return s;
        }

        // The managed transport, or null for the native one; a shut-down managed client is
        // NotInitialized, as the native library answers.
        Managed.ManagedTransport ManagedOrNull()
        {
            Managed.ManagedTransport m = managed;
            if (m != null && !initialized)
                throw new CubeWalkException(CubeWalkStatus.NotInitialized, "not initialized: call Init first");
            return m;
        }

        /// <summary>Fetches chunks, blocking the calling thread (tools, tests, loading screens on a
        /// worker thread). <paramref name="versions"/>[i]: in, the version held in
        /// <paramref name="buffers"/>[i] (or <see cref="NoVersion"/>); out, the current version.
        /// Buffers of unchanged chunks are left alone; <paramref name="changed"/> (optional) tells
        /// which were written. Allocates nothing in the steady state.</summary>
        /// <param name="world">The world id (1 to 64 of A-Z a-z 0-9 _ - .).</param>
        /// <param name="keys">The chunks, each at most once.</param>
        /// <param name="versions">In: the version held in each buffer, or <see cref="NoVersion"/>; out: the current versions.</param>
        /// <param name="buffers">One int[4096] per chunk, in game order; written only where the chunk changed.</param>
        /// <param name="changed">Optional; out: 1 where the buffer was written.</param>
        /// <exception cref="ArgumentNullException">An argument is null.</exception>
        /// <exception cref="ArgumentException">The arrays do not match the keys, or a buffer is not an int[4096].</exception>
        /// <exception cref="CubeWalkException">The fetch failed (its status says why).</exception>
        /// <exception cref="PlatformNotSupportedException">In a WebGL build.</exception>
        public unsafe void FetchBlocks(string world, ChunkKey[] keys, ulong[] versions, int[][] buffers, byte[] changed = null)
        {
            ValidateFetch(keys, versions, buffers, changed);
            Managed.ManagedTransport m = ManagedOrNull();
            if (m != null)
            {
                CheckCanBlock();
                if (world == null) throw new ArgumentNullException("world");
                WaitManaged(m.BeginFetch(world, keys, versions, buffers, changed ?? new byte[keys.Length], keys.Length));
                return;
            }
            Scratch scratch = Scratch.ForThisThread(keys.Length);
            byte[] w = scratch.WorldBytes(world);
            int n = keys.Length;
            GCHandle[] handles = scratch.Pins;
            IntPtr[] ptrs = scratch.Pointers;
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
        /// <remarks>A request of the put whose answer never came (timeout, broken connection, 5xx)
        /// is <b>fenced</b> before the put answers, on both transports: the client asks the server,
        /// within one more timeout, to cancel it on each of its chunks and learns where it had
        /// applied. So an error answer means the chunks not listed as applied were not changed and
        /// never will be by this put; a later put of the same chunks can never be overtaken by it.
        /// If the fence cannot reach the server either, the put answers its error and its chunks'
        /// later puts wait until 45 s after its last send, past which the server can no longer
        /// apply it. A put cancelled in flight is fenced the same way in the background.</remarks>
        /// <param name="world">The world id (1 to 64 of A-Z a-z 0-9 _ - .).</param>
        /// <param name="edits">The edits, applied in order (a later edit of a cube wins).</param>
        /// <param name="results">Receives each touched chunk's new version, in order of first appearance.</param>
        /// <returns>How many entries of <paramref name="results"/> were filled.</returns>
        /// <exception cref="ArgumentNullException">An argument is null.</exception>
        /// <exception cref="ArgumentException"><paramref name="edits"/> is empty.</exception>
        /// <exception cref="CubeWalkException">The put failed (its status says why; BufferTooSmall when
        /// <paramref name="results"/> has fewer entries than chunks touched).</exception>
        /// <exception cref="PlatformNotSupportedException">In a WebGL build.</exception>
        public unsafe int PutBlocks(string world, CubeEdit[] edits, ChunkVersion[] results)
        {
            ValidatePut(edits, results);
            Managed.ManagedTransport m = ManagedOrNull();
            if (m != null)
            {
                CheckCanBlock();
                if (world == null) throw new ArgumentNullException("world");
                var box = new UIntPtr[1];
                WaitManaged(m.BeginPut(world, edits, results, box));
                return (int)box[0].ToUInt32();
            }
            byte[] w = Scratch.ForThisThread(0).WorldBytes(world);
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
        /// <param name="world">The world id (1 to 64 of A-Z a-z 0-9 _ - .).</param>
        /// <param name="keys">The chunks, each at most once.</param>
        /// <param name="versions">In: the version held in each buffer, or <see cref="NoVersion"/>; out: the current versions.</param>
        /// <param name="buffers">One int[4096] per chunk, in game order; written only where the chunk changed.</param>
        /// <param name="changed">Out: 1 where the buffer was written.</param>
        /// <param name="completed">Called on completion, on the thread whose Update completes it.</param>
        /// <param name="reuse">A finished request object to reuse, or null.</param>
        /// <returns>The request; it is done once <see cref="CubeWalkRequest.IsDone"/>.</returns>
        /// <exception cref="ArgumentNullException">An argument is null.</exception>
        /// <exception cref="ArgumentException">The arrays do not match the keys, or a buffer is not an int[4096].</exception>
        /// <exception cref="CubeWalkException">The fetch cannot start (not initialized, invalid world).</exception>
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
            int n = keys.Length;
            Managed.ManagedTransport m = ManagedOrNull();
            if (m != null)
            {
                if (world == null) throw new ArgumentNullException("world");
                lock (gate)
                {
                    r.Id = m.BeginFetch(world, keys, versions, buffers, changed, n);
                    pending.Add(r);
                }
                return r;
            }
            Scratch scratch = Scratch.ForThisThread(n);
            byte[] w = scratch.WorldBytes(world);
            IntPtr[] pointers = scratch.Pointers;
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
                    lock (gate)
                    {
                        Check(NativeMethods.cw_fetch_blocks_begin(wp, (UIntPtr)w.Length, (CwChunkKey*)kp, (UIntPtr)n, vp, (int**)bp, cp, &id));
                        r.Id = id;
                        pending.Add(r);
                    }
                }
            }
            catch
            {
                r.Unpin();
                throw;
            }
            return r;
        }

        /// <summary>Starts a put and returns at once; completes inside a later <see cref="Update"/>.
        /// Puts of the same chunk apply in the order they were begun. On failure,
        /// <see cref="PutRequest.Count"/> entries of results list the chunks confirmed applied (a
        /// partial put; the remarks say what became of the others).</summary>
        /// <remarks>A request of the put whose answer never came (timeout, broken connection, 5xx)
        /// is <b>fenced</b> before the put answers, on both transports: the client asks the server,
        /// within one more timeout, to cancel it on each of its chunks and learns where it had
        /// applied. So an error answer means the chunks not listed as applied were not changed and
        /// never will be by this put; a later put of the same chunks can never be overtaken by it.
        /// If the fence cannot reach the server either, the put answers its error and its chunks'
        /// later puts wait until 45 s after its last send, past which the server can no longer
        /// apply it. A put cancelled in flight is fenced the same way in the background.</remarks>
        /// <param name="world">The world id (1 to 64 of A-Z a-z 0-9 _ - .).</param>
        /// <param name="edits">The edits (copied now).</param>
        /// <param name="results">Receives each touched chunk's new version on completion.</param>
        /// <param name="completed">Called on completion, on the thread whose Update completes it.</param>
        /// <param name="reuse">A finished request object to reuse, or null.</param>
        /// <returns>The request; <see cref="PutRequest.Count"/> entries of results are filled once done.</returns>
        /// <exception cref="ArgumentNullException">An argument is null.</exception>
        /// <exception cref="ArgumentException"><paramref name="edits"/> is empty.</exception>
        /// <exception cref="CubeWalkException">The put cannot start (not initialized, invalid edit, results too small).</exception>
        public unsafe PutRequest BeginPut(string world, CubeEdit[] edits, ChunkVersion[] results,
            Action<PutRequest> completed = null, PutRequest reuse = null)
        {
            ValidatePut(edits, results);
            PutRequest r = reuse ?? new PutRequest();
            r.Reset();
            r.Results = results;
            r.CountBox[0] = UIntPtr.Zero;
            if (completed != null) r.Completed = completed;
            Managed.ManagedTransport m = ManagedOrNull();
            if (m != null)
            {
                if (world == null) throw new ArgumentNullException("world");
                lock (gate)
                {
                    r.Id = m.BeginPut(world, edits, results, r.CountBox);
                    pending.Add(r);
                }
                return r;
            }
            byte[] w = Scratch.ForThisThread(0).WorldBytes(world);
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
                    lock (gate)
                    {
                        Check(NativeMethods.cw_put_blocks_begin(wp, (UIntPtr)w.Length, (CwEdit*)ep, (UIntPtr)edits.Length,
                            rp, (UIntPtr)results.Length, np, &id));
                        r.Id = id;
                        pending.Add(r);
                    }
                }
            }
            catch
            {
                r.Unpin();
                throw;
            }
            return r;
        }

        /// <summary>Polls every request in flight (never blocks) and completes the finished ones on
        /// this thread, in the order they were begun: results land in the caller's arrays, then the
        /// Completed callbacks run. Call it once per frame. While another thread is inside Update
        /// (or when called from a Completed callback) it returns at once and that call completes
        /// the requests. Allocates nothing unless a request fails.</summary>
        public void Update()
        {
#if !UNITY_2018_1_OR_NEWER
            // Outside Unity there is no player loop: the managed realtime follower runs here.
            Managed.ManagedRealtime follower = realtime;
            if (follower != null) follower.Pump();
#endif
            if (!Monitor.TryEnter(updateLock)) return;
            try
            {
                if (updating) return;
                updating = true;
                lock (gate)
                {
                    int kept = 0;
                    for (int i = 0; i < pending.Count; i++)
                    {
                        CubeWalkRequest r = pending[i];
                        string error = null;
                        CubeWalkStatus s = managed != null ? managed.Poll(r.Id, out error) : NativeMethods.cw_poll(r.Id);
                        if (s == CubeWalkStatus.Pending)
                        {
                            pending[kept++] = r;
                            continue;
                        }
                        r.Status = s;
                        completing.Add(r);
                        completingErrors.Add(s == CubeWalkStatus.Ok ? null : managed != null ? error : LastError());
                    }
                    pending.RemoveRange(kept, pending.Count - kept);
                }
                // Callbacks run outside the lock: they may begin, cancel or dispose.
                for (int i = 0; i < completing.Count; i++)
                {
                    CubeWalkRequest r = completing[i];
                    Complete(r, r.Status, completingErrors[i]);
                }
            }
            finally
            {
                completing.Clear();
                completingErrors.Clear();
                updating = false;
                Monitor.Exit(updateLock);
            }
        }

        /// <summary>Cancels a request in flight: its arrays are never written after this returns,
        /// and it completes at once with status Cancelled. A request that already finished (its
        /// results written, its completion due in the running <see cref="Update"/>) is left to
        /// complete normally. A cancelled put may or may not have reached the server: if it was in
        /// flight it is fenced in the background (see <see cref="BeginPut"/>), and the next puts of
        /// its chunks wait for that.</summary>
        /// <param name="request">A request begun by this client.</param>
        /// <exception cref="ArgumentNullException"><paramref name="request"/> is null.</exception>
        public void Cancel(CubeWalkRequest request)
        {
            if (request == null) throw new ArgumentNullException("request");
            lock (gate)
            {
                int i = pending.IndexOf(request);
                if (i < 0) return;
                if (managed != null) managed.Cancel(request.Id);
                else NativeMethods.cw_cancel(request.Id);
                pending.RemoveAt(i);
            }
            Complete(request, CubeWalkStatus.Cancelled, "cancelled");
        }

        /// <summary>A fetch as a Task, completed from <see cref="Update"/>. Cancelling
        /// <paramref name="cancellationToken"/> cancels the native request (its arrays are never
        /// written afterwards) and the task ends as cancelled.</summary>
        /// <returns>The finished request; faulted with <see cref="CubeWalkException"/> on failure.</returns>
        /// <param name="world">The world id (1 to 64 of A-Z a-z 0-9 _ - .).</param>
        /// <param name="keys">The chunks, each at most once.</param>
        /// <param name="versions">In: the version held in each buffer, or <see cref="NoVersion"/>; out: the current versions.</param>
        /// <param name="buffers">One int[4096] per chunk, in game order; written only where the chunk changed.</param>
        /// <param name="changed">Out: 1 where the buffer was written.</param>
        /// <param name="cancellationToken">Cancels the request.</param>
        public Task<FetchRequest> FetchAsync(string world, ChunkKey[] keys, ulong[] versions, int[][] buffers, byte[] changed,
            CancellationToken cancellationToken = default(CancellationToken))
        {
            var tcs = new TaskCompletionSource<FetchRequest>();
            if (cancellationToken.IsCancellationRequested)
            {
                tcs.SetCanceled();
                return tcs.Task;
            }
            FetchRequest r = BeginFetch(world, keys, versions, buffers, changed, done => Settle(tcs, done));
            return CancelWith(tcs, r, cancellationToken);
        }

        /// <summary>A put as a Task, completed from <see cref="Update"/>. Cancelling
        /// <paramref name="cancellationToken"/> cancels the native request (a cancelled put may
        /// or may not have reached the server) and the task ends as cancelled.</summary>
        /// <returns>The finished request; faulted with <see cref="CubeWalkException"/> on failure.</returns>
        /// <param name="world">The world id (1 to 64 of A-Z a-z 0-9 _ - .).</param>
        /// <param name="edits">The edits (copied now).</param>
        /// <param name="results">Receives each touched chunk's new version.</param>
        /// <param name="cancellationToken">Cancels the request.</param>
        public Task<PutRequest> PutAsync(string world, CubeEdit[] edits, ChunkVersion[] results,
            CancellationToken cancellationToken = default(CancellationToken))
        {
            var tcs = new TaskCompletionSource<PutRequest>();
            if (cancellationToken.IsCancellationRequested)
            {
                tcs.SetCanceled();
                return tcs.Task;
            }
            PutRequest r = BeginPut(world, edits, results, done => Settle(tcs, done));
            return CancelWith(tcs, r, cancellationToken);
        }

        Task<T> CancelWith<T>(TaskCompletionSource<T> tcs, CubeWalkRequest r, CancellationToken cancellationToken)
            where T : CubeWalkRequest
        {
            if (!cancellationToken.CanBeCanceled) return tcs.Task;
            CancellationTokenRegistration registration = cancellationToken.Register(() => Cancel(r));
            tcs.Task.ContinueWith(_ => registration.Dispose(), TaskContinuationOptions.ExecuteSynchronously);
            return tcs.Task;
        }

        /// <summary>Opens the realtime connection: MQTT 3.1.1 over a WebSocket (subprotocol
        /// <c>mqtt</c>) to the broker, AWS IoT Core's <c>wss://&lt;endpoint&gt;/mqtt</c> when deployed
        /// (the stack's <c>RealtimeUrl</c>), the local gateway's <c>ws://127.0.0.1:3000/mqtt</c>, with
        /// this client's token and settings, in the background: it connects, re-connects with backoff
        /// after failures and follows the set given to <see cref="Follow"/>. With the native plugin
        /// the connection belongs to the process's native session, like every client's requests:
        /// one consumer should poll it (a <see cref="ChunkNeighbourhood"/>); initializing the native
        /// session again (another settings' client, <see cref="Reinitialize"/>) stops it. On the
        /// managed transport (WebGL builds, or <see cref="CubeWalkTransport.Managed"/>) the same
        /// follower runs in C#, belongs to this client, sends the token in the URL's <c>token</c>
        /// query parameter (the only place a browser can put it) and is driven once per frame on
        /// the main thread by the package's player-loop system (outside Unity, by
        /// <see cref="Update"/>); a re-initialization of this client stops it. Starting it again
        /// replaces it.</summary>
        /// <param name="realtimeEndpoint">The broker's MQTT-over-WebSocket URL (<c>wss://</c>, or
        /// <c>ws://</c> to a loopback host unless <see cref="CubeWalkOptions.AllowInsecureHttp"/>).</param>
        /// <exception cref="ArgumentNullException"><paramref name="realtimeEndpoint"/> is null.</exception>
        /// <exception cref="CubeWalkException">The URL is invalid, or the client is not initialized.</exception>
        public unsafe void StartRealtime(string realtimeEndpoint)
        {
            if (realtimeEndpoint == null) throw new ArgumentNullException("realtimeEndpoint");
            Managed.ManagedTransport m = ManagedOrNull();
            if (m != null)
            {
                var follower = new Managed.ManagedRealtime(m, realtimeEndpoint, m.AllowInsecure, m.ConnectTimeoutMs,
                    RealtimeBridges ?? Managed.WebSocketBridges.Create, m.Http);
                lock (sessionLock)
                {
                    StopManagedRealtime();
                    realtime = follower;
                    m.Follower = follower.Floors;
                    follower.Register();
                }
                return;
            }
            byte[] url = Encoding.UTF8.GetBytes(realtimeEndpoint);
            fixed (byte* p = url)
                Check(NativeMethods.cw_realtime_start(p, (UIntPtr)url.Length));
        }

        // Under sessionLock: stops this client's managed follower, if any.
        void StopManagedRealtime()
        {
            Managed.ManagedRealtime r = realtime;
            realtime = null;
            if (r == null) return;
            Managed.ManagedTransport m = managed;
            if (m != null && m.Follower == r.Floors) m.Follower = null;
            r.Stop();
        }

        // The managed follower, or an exception as the native library answers when none runs.
        Managed.ManagedRealtime Follower()
        {
            Managed.ManagedRealtime r = realtime;
            if (r == null || r.Stopped)
                throw new CubeWalkException(CubeWalkStatus.InvalidArgument,
                    "invalid argument: the realtime connection is not started: call StartRealtime first");
            return r;
        }

        /// <summary>Follows exactly <paramref name="count"/> chunks of <paramref name="keys"/> in
        /// <paramref name="world"/> from now on (replacing the earlier set; 0 follows nothing): the
        /// connection subscribes to the topics of the 4x4x4-chunk regions covering them (at most 50
        /// regions; a 9x9x9 neighbourhood spans 27). The server's acknowledgement arrives as a <see cref="ChangeKind.Subscribed"/>
        /// event.</summary>
        /// <param name="world">The world id.</param>
        /// <param name="keys">The chunks.</param>
        /// <param name="count">How many of <paramref name="keys"/> to follow (at most 1024).</param>
        /// <exception cref="ArgumentNullException">An argument is null.</exception>
        /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is outside the array.</exception>
        /// <exception cref="CubeWalkException">The realtime connection is not started, the world is
        /// invalid, or the chunks are too many or span too many regions (InvalidArgument).</exception>
        public unsafe void Follow(string world, ChunkKey[] keys, int count)
        {
            if (keys == null) throw new ArgumentNullException("keys");
            if (count < 0 || count > keys.Length) throw new ArgumentOutOfRangeException("count");
            if (managed != null)
            {
                if (world == null) throw new ArgumentNullException("world");
                Follower().Follow(world, keys, count);
                return;
            }
            byte[] w = Scratch.ForThisThread(0).WorldBytes(world);
            fixed (byte* wp = w)
            fixed (ChunkKey* kp = keys)
                Check(NativeMethods.cw_realtime_follow(wp, (UIntPtr)w.Length, (CwChunkKey*)kp, (UIntPtr)count));
        }

        /// <summary>Moves queued realtime events into <paramref name="changes"/> and their cube edits
        /// into <paramref name="edits"/> (each <see cref="ChunkChange"/> says where its edits are),
        /// oldest first, as many as fit; the rest wait for the next call. A change that a fetch
        /// answered since it was queued (the chunk's write sequence says so) is dropped. Never
        /// blocks and allocates nothing.</summary>
        /// <param name="changes">Receives the events.</param>
        /// <param name="edits">Receives their edits; at least 64 entries.</param>
        /// <param name="editCount">How many entries of <paramref name="edits"/> were filled.</param>
        /// <returns>How many entries of <paramref name="changes"/> were filled.</returns>
        /// <exception cref="ArgumentNullException">An array is null.</exception>
        /// <exception cref="CubeWalkException">The realtime connection is not started, or an array is too small.</exception>
        public unsafe int PollChanges(ChunkChange[] changes, CubeEdit[] edits, out int editCount)
        {
            if (changes == null) throw new ArgumentNullException("changes");
            if (edits == null) throw new ArgumentNullException("edits");
            if (managed != null) return Follower().Poll(changes, edits, out editCount);
            UIntPtr n, e;
            fixed (ChunkChange* cp = changes)
            fixed (CubeEdit* ep = edits)
            {
                Check(NativeMethods.cw_realtime_poll((CwChange*)cp, (UIntPtr)changes.Length, (CwEdit*)ep,
                    (UIntPtr)edits.Length, &n, &e));
            }
            editCount = (int)e.ToUInt32();
            return (int)n.ToUInt32();
        }

        /// <summary>Where the realtime connection stands (<see cref="RealtimeState.Off"/> when it is
        /// not started).</summary>
        public unsafe RealtimeState RealtimeState
        {
            get
            {
                if (managed != null)
                {
                    Managed.ManagedRealtime r = realtime;
                    return r == null ? RealtimeState.Off : r.State;
                }
                int state;
                return NativeMethods.cw_realtime_state(&state) == CubeWalkStatus.Ok ? (RealtimeState)state : RealtimeState.Off;
            }
        }

        /// <summary>What keeps changes from arriving, or null: why the realtime connection is not
        /// connected (its last problem), or, while connected, the broker's refusal of the
        /// subscription (a token without the world), until it is in place.</summary>
        public unsafe string RealtimeProblem
        {
            get
            {
                if (managed != null)
                {
                    Managed.ManagedRealtime r = realtime;
                    string p = r == null ? null : r.Problem;
                    return p == null ? null : "realtime: " + p;
                }
                int state;
                if (NativeMethods.cw_realtime_state(&state) != CubeWalkStatus.Ok) return LastError();
                string problem = LastError();
                return problem.Length == 0 ? null : problem;
            }
        }

        /// <summary>Closes the realtime connection and drops its queued events.</summary>
        public void StopRealtime()
        {
            if (managed == null)
            {
                NativeMethods.cw_realtime_stop();
                return;
            }
            lock (sessionLock) StopManagedRealtime();
        }

        /// <summary>Cancels this client's requests and leaves the native session; the last client
        /// out shuts the library down. <see cref="Init"/> works afterwards.</summary>
        public void Dispose()
        {
            Shutdown();
            lock (sessionLock)
            {
                suspended.Remove(this);
                if (current == this) current = null;
            }
        }

        /// <summary>Cancels this client's requests in flight (they complete at once with status
        /// Cancelled; their arrays are never written afterwards) and leaves the native session,
        /// keeping the settings for <see cref="Reinitialize"/>. The last client out shuts the
        /// library down.</summary>
        public void Shutdown()
        {
            lock (sessionLock)
            {
                CancelAllPending();
                StopManagedRealtime();
                if (open.Remove(this) && open.Count == 0) NativeMethods.cw_shutdown();
                initialized = false;
            }
            CompleteCancelled("shut down");
        }

        /// <summary>Initializes again with the settings of the last <see cref="Init"/>.</summary>
        public void Reinitialize()
        {
            if (!initialized && lastEndpoint != null) Init(lastEndpoint, lastToken, lastOptions);
        }

        /// <summary>Shuts every open client down and the native library with them, whatever holds
        /// it, and stops every managed realtime connection: once this returns no request begun
        /// earlier writes anything. The Editor runs it before an assembly reload, so nothing is
        /// written into a domain that is going away.</summary>
        public static void ShutdownAll()
        {
            CubeWalkClient[] all;
            lock (sessionLock)
            {
                all = open.ToArray();
                foreach (var c in all) c.CancelAllPending();
                open.Clear();
                NativeMethods.cw_shutdown();
                foreach (var c in all) c.initialized = false;
            }
            // Managed-transport clients keep their transport, but no realtime connection outlives
            // this either (each is started again by whoever follows).
            Managed.ManagedRealtime.StopAll();
            foreach (var c in all) c.CompleteCancelled("shut down");
        }

        /// <summary>Leaving Play mode: <see cref="ShutdownAll"/>, remembering the clients for
        /// <see cref="ResumeAll"/>.</summary>
        internal static void SuspendAll()
        {
            lock (sessionLock)
            {
                suspended.Clear();
                suspended.AddRange(open);
            }
            ShutdownAll();
        }

        /// <summary>Entering Play mode again: reinitialize the clients <see cref="SuspendAll"/> shut.</summary>
        internal static void ResumeAll()
        {
            CubeWalkClient[] again;
            lock (sessionLock)
            {
                again = suspended.ToArray();
                suspended.Clear();
            }
            foreach (var c in again) c.Reinitialize();
        }

        // Native cancels under the gate; completions (callbacks) later, outside every lock.
        readonly List<CubeWalkRequest> cancelled = new List<CubeWalkRequest>();

        void CancelAllPending()
        {
            lock (gate)
            {
                foreach (var r in pending)
                {
                    if (managed != null) managed.Cancel(r.Id);
                    else NativeMethods.cw_cancel(r.Id);
                }
                cancelled.AddRange(pending);
                pending.Clear();
            }
        }

        void CompleteCancelled(string why)
        {
            CubeWalkRequest[] done;
            lock (gate)
            {
                done = cancelled.ToArray();
                cancelled.Clear();
            }
            foreach (var r in done) Complete(r, CubeWalkStatus.Cancelled, why);
        }

        static void Settle<T>(TaskCompletionSource<T> tcs, T r) where T : CubeWalkRequest
        {
            if (r.Status == CubeWalkStatus.Ok) tcs.SetResult(r);
            else if (r.Status == CubeWalkStatus.Cancelled) tcs.SetCanceled();
            else tcs.SetException(new CubeWalkException(r.Status, r.Error));
        }

        static void Complete(CubeWalkRequest r, CubeWalkStatus status, string error)
        {
            r.Unpin();
            r.Status = status;
            r.Error = error;
            r.IsDone = true;
            r.InvokeCompleted();
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

        static void Check(CubeWalkStatus status)
        {
            if (status != CubeWalkStatus.Ok) throw new CubeWalkException(status, LastError());
        }

        static unsafe string LastError()
        {
            byte* buf = stackalloc byte[1024];
            UIntPtr len;
            NativeMethods.cw_last_error(buf, (UIntPtr)1024, &len);
            int n = (int)Math.Min(len.ToUInt64(), 1023);
            return Encoding.UTF8.GetString(buf, n);
        }

        /// <summary>Per-thread scratch space for building native arguments, so calls from several
        /// threads never share it and the steady state allocates nothing.</summary>
        sealed class Scratch
        {
            [ThreadStatic] static Scratch mine;

            internal IntPtr[] Pointers = new IntPtr[64];
            internal GCHandle[] Pins = new GCHandle[64];
            string world;
            byte[] worldBytes;

            internal static Scratch ForThisThread(int chunks)
            {
                Scratch s = mine ?? (mine = new Scratch());
                if (s.Pointers.Length < chunks)
                {
                    int size = Math.Max(chunks, s.Pointers.Length * 2);
                    s.Pointers = new IntPtr[size];
                    s.Pins = new GCHandle[size];
                }
                return s;
            }

            internal byte[] WorldBytes(string w)
            {
                if (w == null) throw new ArgumentNullException("world");
                if (!string.Equals(w, world, StringComparison.Ordinal))
                {
                    worldBytes = Encoding.UTF8.GetBytes(w);
                    world = w;
                }
                return worldBytes;
            }
        }

        /// <summary>The settings a session was opened with, compared field by field.</summary>
        sealed class Settings
        {
            internal readonly string Endpoint, Token;
            internal readonly CubeWalkOptions Options;
            // What the library will run with: its defaults, overridden where the game set a value.
            readonly CwOptions effective;

            /// <summary>The effective options (without the CA pointer, which must be pinned per call).</summary>
            internal CwOptions Effective { get { return effective; } }

            internal unsafe Settings(string endpoint, string token, CubeWalkOptions options)
            {
                Endpoint = endpoint;
                Token = token;
                // A copy: the caller may change its object after Init without changing the session.
                Options = options.Clone();
                CwOptions o;
                Check(NativeMethods.cw_options_default(&o));
                o.timeout_ms = Options.TimeoutMs ?? o.timeout_ms;
                o.connect_timeout_ms = Options.ConnectTimeoutMs ?? o.connect_timeout_ms;
                o.max_retries = Options.MaxRetries ?? o.max_retries;
                o.retry_base_delay_ms = Options.RetryBaseDelayMs ?? o.retry_base_delay_ms;
                o.retry_max_delay_ms = Options.RetryMaxDelayMs ?? o.retry_max_delay_ms;
                o.max_in_flight = Options.MaxInFlight ?? o.max_in_flight;
                o.allow_insecure_http = (byte)(Options.AllowInsecureHttp ? 1 : 0);
                effective = o;
            }

            /// <summary>Same endpoint, token and effective options (a value set to the library's
            /// default equals leaving it unset).</summary>
            internal bool SameAs(Settings other)
            {
                if (other == null) return false;
                CwOptions a = effective, b = other.effective;
                return Endpoint == other.Endpoint && Token == other.Token
                    && a.timeout_ms == b.timeout_ms && a.connect_timeout_ms == b.connect_timeout_ms
                    && a.max_retries == b.max_retries && a.retry_base_delay_ms == b.retry_base_delay_ms
                    && a.retry_max_delay_ms == b.retry_max_delay_ms && a.max_in_flight == b.max_in_flight
                    && a.allow_insecure_http == b.allow_insecure_http && SameBytes(Options.CaPem, other.Options.CaPem);
            }

            static bool SameBytes(byte[] a, byte[] b)
            {
                int la = a == null ? 0 : a.Length, lb = b == null ? 0 : b.Length;
                if (la != lb) return false;
                for (int i = 0; i < la; i++) if (a[i] != b[i]) return false;
                return true;
            }

            internal unsafe void Apply()
            {
                byte[] e = Encoding.UTF8.GetBytes(Endpoint);
                byte[] t = Encoding.UTF8.GetBytes(Token);
                CwOptions o = effective;
                byte[] ca = Options.CaPem;
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
            }
        }
    }
}
