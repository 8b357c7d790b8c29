using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using CubeWalk.Managed;

namespace CubeWalk
{
    /// <summary>How a <see cref="CubeWalkClient"/> reaches the API.</summary>
    public enum CubeWalkTransport
    {
        /// <summary>The native plugin, except in WebGL builds (which cannot load it): managed there.</summary>
        Auto,
        /// <summary>The native plugin (every platform but WebGL).</summary>
        Native,
        /// <summary>Plain C# over UnityWebRequest (HttpClient outside Unity): what WebGL builds use.
        /// Blocking calls are not available in WebGL builds; requests are not retried (but for the
        /// fence of a put whose answer never came, as the native library's). In Unity,
        /// requests begun on any thread start on the next frame's player loop on the main thread
        /// (UnityWebRequest works only there); a blocking call on the main thread drives them
        /// itself while it waits.</summary>
        Managed,
    }
}

namespace CubeWalk.Managed
{
    /// <summary>One HTTP exchange in flight, polled (never awaited) from the game loop.</summary>
    internal interface IHttpExchange
    {
        bool IsDone { get; }
        /// <summary>The HTTP status, or 0 when no answer came (see <see cref="Error"/>).</summary>
        int Status { get; }
        string Text { get; }
        string Error { get; }
        void Abort();
    }

    /// <summary>Starts HTTP exchanges: UnityWebRequest in Unity, HttpClient elsewhere (tests).
    /// Send and every member of the exchange may be called from any thread.</summary>
    internal interface IHttpSender
    {
        IHttpExchange Send(string method, string url, string token, byte[] body, int timeoutMs);
    }

#if !UNITY_2018_1_OR_NEWER
    /// <summary>HttpClient, for non-Unity hosts (the plain-C# tests under Mono). Never compiled
    /// into a Unity build: on the ".NET Framework" API level a Unity project does not reference
    /// System.Net.Http, and one use of it would fail the whole assembly (CS0234).</summary>
    internal sealed class HttpClientSender : IHttpSender
    {
        static readonly System.Net.Http.HttpClient Http = new System.Net.Http.HttpClient();

        public IHttpExchange Send(string method, string url, string token, byte[] body, int timeoutMs)
        {
            return new Exchange(method, url, token, body, timeoutMs);
        }

        sealed class Exchange : IHttpExchange
        {
            readonly CancellationTokenSource cancel;
            volatile bool done;
            public int Status { get; private set; }
            public string Text { get; private set; }
            public string Error { get; private set; }
            public bool IsDone { get { return done; } }

            internal Exchange(string method, string url, string token, byte[] body, int timeoutMs)
            {
                cancel = new CancellationTokenSource(timeoutMs);
                var request = new System.Net.Http.HttpRequestMessage(new System.Net.Http.HttpMethod(method), url);
                if (token != null) request.Headers.TryAddWithoutValidation("token", token);
                if (body != null)
                {
                    request.Content = new System.Net.Http.ByteArrayContent(body);
                    request.Content.Headers.TryAddWithoutValidation("content-type", "application/json");
                }
                // Runs on the thread pool; the game loop only reads IsDone.
                Run(request).ContinueWith(t => { }, TaskContinuationOptions.ExecuteSynchronously);
            }

            async Task Run(System.Net.Http.HttpRequestMessage request)
            {
                try
                {
                    using (var response = await Http.SendAsync(request, cancel.Token).ConfigureAwait(false))
                    {
                        Text = await response.Content.ReadAsStringAsync().ConfigureAwait(false);
                        Status = (int)response.StatusCode;
                    }
                }
                catch (Exception e)
                {
                    Error = cancel.IsCancellationRequested ? "timed out" : e.Message;
                }
                finally
                {
                    done = true;
                }
            }

            public void Abort() { cancel.Cancel(); }
        }
    }
#endif

#if UNITY_2018_1_OR_NEWER
    /// <summary>
    /// UnityWebRequest: the only HTTP a WebGL build has (the browser's fetch). Unity allows a
    /// UnityWebRequest to be created, sent, read, aborted and disposed only on the main thread,
    /// while <see cref="CubeWalkClient"/> may be called from any thread. So <see cref="Send"/> only
    /// queues an exchange (any thread); <see cref="Pump"/>, run once per frame on the main thread
    /// by the player loop (and by the Editor's update in edit mode), starts the queued ones, copies
    /// status, text and error of the finished ones into their exchange, and disposes every
    /// UnityWebRequest it made. A managed request therefore starts on the next frame's player
    /// loop. Blocking calls made on the main thread pump inline (<see cref="WaitABit"/>), since
    /// no frame can run while they wait.
    /// </summary>
    internal sealed class UnityWebRequestSender : IHttpSender
    {
        internal static readonly UnityWebRequestSender Instance = new UnityWebRequestSender();

        static readonly object gate = new object();
        // Queued by any thread, taken by the pump; guarded by gate.
        static List<Exchange> queued = new List<Exchange>();
        static List<Exchange> taking = new List<Exchange>();
        // Started and not yet finished: touched only on the main thread (by the pump).
        static readonly List<Exchange> running = new List<Exchange>();
        static volatile int mainThreadId;
        // The pump is not re-entered (a blocking call inside a callback of the player loop).
        static bool pumping;

        UnityWebRequestSender() { }

        /// <summary>Records the calling thread as Unity's main thread: the player loop installer
        /// and the Editor hooks call it from the main thread before the first frame.</summary>
        internal static void SetMainThread()
        {
            mainThreadId = Thread.CurrentThread.ManagedThreadId;
        }

        /// <summary>Whether the calling thread is Unity's main thread (false until one is known).</summary>
        internal static bool OnMainThread
        {
            get { int id = mainThreadId; return id != 0 && id == Thread.CurrentThread.ManagedThreadId; }
        }

        public IHttpExchange Send(string method, string url, string token, byte[] body, int timeoutMs)
        {
            var x = new Exchange(method, url, token, body, timeoutMs);
            lock (gate) queued.Add(x);
            return x;
        }

        /// <summary>Lets a waiting caller make progress: on the main thread one pump (the frame
        /// that would start and finish its requests cannot run while it waits), then a short
        /// sleep; elsewhere just the sleep, as the main thread's player loop does the work.</summary>
        internal static void WaitABit()
        {
            if (OnMainThread) Pump();
            Thread.Sleep(1);
        }

        /// <summary>One pass, on the main thread only: starts queued exchanges (dropping those
        /// aborted before they started, without creating a request), finishes done ones, aborts
        /// and disposes aborted ones.</summary>
        internal static void Pump()
        {
            if (pumping || !OnMainThread) return;
            pumping = true;
            try
            {
                List<Exchange> start;
                lock (gate)
                {
                    // Swap the lists so requests are created outside the lock.
                    start = queued;
                    queued = taking;
                    taking = start;
                }
                foreach (Exchange x in start)
                    if (!x.Aborted && x.Start()) running.Add(x);
                start.Clear();
                int kept = 0;
                for (int i = 0; i < running.Count; i++)
                {
                    Exchange x = running[i];
                    if (!x.Advance()) running[kept++] = x;
                }
                running.RemoveRange(kept, running.Count - kept);
            }
            finally
            {
                pumping = false;
            }
        }

        /// <summary>Aborts and disposes every request, started or queued (on the main thread):
        /// before the Editor unloads the domain, so no UnityWebRequest outlives the code that
        /// would dispose it. Their exchanges end with a network error.</summary>
        internal static void AbortAll()
        {
            if (!OnMainThread) return;
            List<Exchange> dropped;
            lock (gate)
            {
                dropped = new List<Exchange>(queued);
                queued.Clear();
            }
            foreach (Exchange x in running) x.Close("shut down");
            running.Clear();
            foreach (Exchange x in dropped) x.Finish(0, null, "shut down");
        }

        sealed class Exchange : IHttpExchange
        {
            readonly string method, url, token;
            readonly byte[] body;
            readonly int timeoutMs;
            // Only on the main thread, between Start and its disposal.
            UnityEngine.Networking.UnityWebRequest request;
            volatile bool aborted, done;
            int status;
            string text, error;

            internal Exchange(string method, string url, string token, byte[] body, int timeoutMs)
            {
                this.method = method;
                this.url = url;
                this.token = token;
                this.body = body;
                this.timeoutMs = timeoutMs;
            }

            internal bool Aborted { get { return aborted; } }

            // Written before `done` (volatile), read after it: a reader that saw IsDone sees them.
            public bool IsDone { get { return done; } }
            public int Status { get { return done ? status : 0; } }
            public string Text { get { return done ? text : null; } }
            public string Error { get { return done ? error : null; } }

            /// <summary>Any thread: the pump aborts and disposes the request on its next pass, or
            /// never creates it when it has not started.</summary>
            public void Abort() { aborted = true; }

            internal void Finish(int s, string t, string e)
            {
                status = s;
                text = t;
                error = e;
                done = true;
            }

            /// <summary>Creates and sends the request (main thread); false when it could not
            /// start (the exchange is then done with the reason).</summary>
            internal bool Start()
            {
                try
                {
                    request = new UnityEngine.Networking.UnityWebRequest(url, method);
                    request.downloadHandler = new UnityEngine.Networking.DownloadHandlerBuffer();
                    if (body != null)
                    {
                        request.uploadHandler = new UnityEngine.Networking.UploadHandlerRaw(body);
                        request.SetRequestHeader("content-type", "application/json");
                    }
                    if (token != null) request.SetRequestHeader("token", token);
                    request.timeout = Math.Max(1, (timeoutMs + 999) / 1000);
                    // Never follow a redirect (as the native library): the token header would
                    // go to wherever the answer points.
                    request.redirectLimit = 0;
                    request.SendWebRequest();
                    return true;
                }
                catch (Exception e)
                {
                    // A URL or header Unity refuses: end this exchange, not the whole pump.
                    Close(e.Message);
                    return false;
                }
            }

            /// <summary>Main thread: true once the exchange left the running list (finished or
            /// aborted), its request disposed.</summary>
            internal bool Advance()
            {
                if (aborted)
                {
                    Close("aborted");
                    return true;
                }
                if (!request.isDone) return false;
                var r = request.result;
                int s = r == UnityEngine.Networking.UnityWebRequest.Result.ConnectionError ? 0 : (int)request.responseCode;
                string t = request.downloadHandler.text;
                string e = s == 0 ? TimeoutOrError(request.error) : null;
                request.Dispose();
                request = null;
                Finish(s, t, e);
                return true;
            }

            // Unity says "Request timeout" when request.timeout passes; the transport's "timed out".
            static string TimeoutOrError(string e)
            {
                return e != null && e.IndexOf("timeout", StringComparison.OrdinalIgnoreCase) >= 0 ? "timed out" : e;
            }

            /// <summary>Main thread: aborts and disposes the request if there is one, and ends the
            /// exchange with a network error.</summary>
            internal void Close(string why)
            {
                if (request != null)
                {
                    try
                    {
                        if (!request.isDone) request.Abort();
                    }
                    finally
                    {
                        request.Dispose();
                        request = null;
                    }
                }
                if (!done) Finish(0, null, why);
            }
        }
    }
#endif

    /// <summary>
    /// The API spoken from C#: what <see cref="CubeWalkClient"/> uses in WebGL builds (or when
    /// asked for <see cref="CubeWalkTransport.Managed"/>). The same requests, answers, limits and
    /// outputs as the native library: fetches split into requests of at most 256 chunks, puts
    /// split by chunk with an idempotency key per request and applied one put at a time in the
    /// order begun (on each chunk: a put held by a failed fence, below, lets later puts of other
    /// chunks go first), outputs written only when <see cref="Poll"/> reports the end. Not retried,
    /// except the fence of a put (below).
    /// <para>A put request whose answer never came (timeout, network error after sending, 5xx,
    /// an answer that is not a put answer) is <b>fenced</b> before the put answers, as the native
    /// library does: a cancel request (PUT to the same URL,
    /// <c>{"world":..,"cancel":"&lt;its idempotency key&gt;","chunks":[[x,y,z],..]}</c>), retried
    /// like the native library's repeatable requests within one more timeout, asks the server to
    /// cancel it on each of its chunks and learns where it had applied. All applied: the put
    /// succeeded after all; none: its original error, and it never will apply; some: a partial
    /// put (the error, the applied chunks in <c>results</c>). The next put starts only then. If
    /// the fence fails too, the put answers its original error and its chunks' later puts wait
    /// until <see cref="FenceHorizonMs"/> after its deadline (its last possible send), past which
    /// the server can no longer apply it. A cancelled (<see cref="Cancel"/>) put in flight is
    /// fenced the same way in the background. All of it is polled: nothing blocks.</para>
    /// </summary>
    internal sealed class ManagedTransport
    {
        // The server takes 8192 characters of `chunks`; leave room under URL limits, as the SDK does.
        const int ParamBudget = 6000;
        readonly string endpoint;
        // Replaced whole by SetToken; each exchange keeps the one it was sent with.
        volatile TokenState token;
        readonly int timeoutMs;
        readonly IHttpSender http;
        readonly object gate = new object();
        readonly Dictionary<ulong, Op> ops = new Dictionary<ulong, Op>();
        // Puts not started yet, in the order begun.
        readonly List<Op> queuedPuts = new List<Op>();
        Op putInFlight;
        ulong nextId;
        // The native retry policy, for the fence's cancel request (the only request retried here).
        readonly uint maxRetries, retryBaseMs, retryMaxMs;
        // Cancelled puts whose fence still runs: advanced on every call, they hold the put line.
        readonly List<Op> abandoned = new List<Op>();
        // Chunks of puts whose fence failed, with when the server can no longer apply them;
        // all of them are past once holdsEnd is.
        readonly List<Hold> holds = new List<Hold>();
        DateTime holdsEnd;

        /// <summary>How long after its deadline (its last possible send) a put whose fence failed
        /// can still apply on the server, so how long its chunks' later puts wait (the native
        /// library's FENCE_HORIZON, sdk/src/batching.rs): API Gateway gives up on a request after
        /// 29 s, so the function starts within that, and the store stops retrying a put 10 s after
        /// the function started it.</summary>
        internal const int FenceHorizonMs = NativeDefaults.FenceHorizonMs;
        /// <summary>Tests: the time every deadline, fence budget and hold is measured against.</summary>
        internal Func<DateTime> Clock = () => DateTime.UtcNow;
        /// <summary>Tests: the backoff jitter of the fence's retries.</summary>
        internal Random Random = new Random();

        struct Hold
        {
            internal string World;
            internal ChunkKey Key;
            internal DateTime Until;
        }
        /// <summary>The write sequences of the realtime follower started from this transport's
        /// client, which every fetch answer sets; null when none runs.</summary>
        internal volatile Floors Follower;

        internal ManagedTransport(string endpoint, string token, CubeWalkOptions options, IHttpSender sender)
        {
            this.endpoint = CheckEndpoint(endpoint, options.AllowInsecureHttp);
            this.token = new TokenState(CheckToken(token));
            timeoutMs = (int)(options.TimeoutMs ?? NativeDefaults.TimeoutMs);
            maxRetries = options.MaxRetries ?? NativeDefaults.MaxRetries;
            retryBaseMs = options.RetryBaseDelayMs ?? NativeDefaults.RetryBaseDelayMs;
            retryMaxMs = options.RetryMaxDelayMs ?? NativeDefaults.RetryMaxDelayMs;
            ConnectTimeoutMs = options.ConnectTimeoutMs ?? NativeDefaults.ConnectTimeoutMs;
            AllowInsecure = options.AllowInsecureHttp;
            http = sender;
        }

        /// <summary>The token every exchange sent from now on carries.</summary>
        internal TokenState Token { get { return token; } }
        /// <summary>How HTTP is sent (the realtime follower's handshake probe uses it too).</summary>
        internal IHttpSender Http { get { return http; } }
        /// <summary>The options' connect timeout (ms), for the realtime connection.</summary>
        internal readonly uint ConnectTimeoutMs;
        /// <summary>Whether plain http:// and ws:// may go to a non-loopback host.</summary>
        internal readonly bool AllowInsecure;

        internal static string CheckToken(string token)
        {
            if (token == null) throw new ArgumentNullException("token");
            if (token.Length == 0 || token.Length > NativeDefaults.MaxTokenLength)
                throw Invalid("token must be 1 to " + NativeDefaults.MaxTokenLength + " characters");
            foreach (char c in token)
                if (c < 0x20 || c > 0x7e) throw Invalid("token holds characters not allowed in an HTTP header");
            return token;
        }

        /// <summary>Replaces the token: every exchange sent from now on carries it (parts of
        /// puts still queued behind another put included), as the native library does.</summary>
        internal void SetToken(string newToken)
        {
            token = new TokenState(CheckToken(newToken));
        }

        /// <summary>A token, its JWT expiry, and whether it has worked (an answer from behind the
        /// authorizer), so a 401 tells "refresh it" (TokenRefused) from "never right" (Unauthorized).</summary>
        internal sealed class TokenState
        {
            internal readonly string Text;
            readonly long expiresAt;
            internal volatile bool Worked;
            /// <summary>The API answered 401 to it (a realtime handshake whose status the runtime
            /// hides is then taken for a 401 too).</summary>
            internal volatile bool Unauthorized;

            internal TokenState(string text)
            {
                Text = text;
                expiresAt = JwtExpiry(text);
            }

            internal bool RefusedAfterUse
            {
                get { return Worked || (expiresAt > 0 && DateTimeOffset.UtcNow.ToUnixTimeSeconds() >= expiresAt); }
            }

            // The exp claim of header.payload.signature (base64url), or 0 when not a JWT with one.
            static long JwtExpiry(string text)
            {
                string[] parts = text.Split('.');
                if (parts.Length != 3) return 0;
                try
                {
                    string b64 = parts[1].Replace('-', '+').Replace('_', '/');
                    b64 = b64.PadRight(b64.Length + (4 - b64.Length % 4) % 4, '=');
                    string json = Encoding.UTF8.GetString(Convert.FromBase64String(b64));
                    int at = json.IndexOf("\"exp\":", StringComparison.Ordinal);
                    if (at < 0) return 0;
                    int i = at + 6, start;
                    while (i < json.Length && json[i] == ' ') i++;
                    start = i;
                    while (i < json.Length && char.IsDigit(json[i])) i++;
                    long exp;
                    return long.TryParse(json.Substring(start, i - start), NumberStyles.None, CultureInfo.InvariantCulture, out exp) ? exp : 0;
                }
                catch (FormatException)
                {
                    return 0;
                }
            }
        }

        static CubeWalkException Invalid(string message)
        {
            return new CubeWalkException(CubeWalkStatus.InvalidArgument, "invalid argument: " + message);
        }

        static string CheckEndpoint(string text, bool allowInsecure)
        {
            Uri uri;
            if (text.Length == 0 || text.Length > NativeDefaults.MaxEndpointLength || !Uri.TryCreate(text, UriKind.Absolute, out uri))
                throw Invalid("endpoint is not a URL");
            if (uri.Query.Length > 0 || uri.Fragment.Length > 0 || uri.UserInfo.Length > 0)
                throw Invalid("endpoint must not carry a query, fragment or credentials");
            if (uri.Scheme == "https") return text;
            if (uri.Scheme != "http") throw Invalid("endpoint scheme must be https or http, not " + uri.Scheme);
            if (allowInsecure || uri.IsLoopback) return text;
            throw Invalid("plain http is only allowed to a loopback host; use https or set allow_insecure_http");
        }

        internal static void CheckWorld(string world)
        {
            if (world.Length == 0 || world.Length > NativeDefaults.MaxWorldIdLength) throw Invalid("world id must be 1 to 64 characters");
            foreach (char c in world)
                if (!(c < 128 && (char.IsLetterOrDigit(c) || c == '_' || c == '-' || c == '.')))
                    throw Invalid("world id may only contain ASCII letters, digits, '_', '-' and '.'");
        }

        sealed class Part
        {
            internal IHttpExchange Exchange;
            internal TokenState Token; // the one it was sent with
            internal int First, Count; // fetch: the keys it carries
            internal List<ChunkKey> Chunks; // put: the chunks it touches, in order
            internal string Method, Url;
            internal byte[] Body;
            // Put: its idempotency key, where it stands, and its outcome: Ok, or its original
            // error; Entries (in request order) for Ok or a partial, Unsettled when its fence failed.
            internal string Key;
            internal PartPhase Phase;
            internal CubeWalkStatus Status;
            internal string Error;
            internal List<FetchedEntry> Entries;
            internal bool Unsettled;
            // Its fence: the cancel request (null between attempts), its token, body, budget,
            // attempts made and when the next one goes.
            internal IHttpExchange Fence;
            internal TokenState FenceToken;
            internal byte[] FenceBody;
            internal DateTime FenceDeadline, RetryAt;
            internal uint FenceAttempts;
        }

        enum PartPhase { Sending, Fencing, Done }

        sealed class Op
        {
            internal ulong Id;
            internal bool IsPut;
            internal readonly List<Part> Parts = new List<Part>();
            internal DateTime Deadline;
            internal ChunkKey[] Keys;
            internal string World;
            internal ulong[] Held, Versions, Seqs;
            internal int[][] Buffers;
            internal byte[] Changed;
            internal ChunkVersion[] Results;
            internal UIntPtr[] Count;
            internal bool Started;
            // Put: its chunks in order of first appearance (all of its parts'), and whether it
            // was cancelled (its fence then runs on and its outputs are never written).
            internal List<ChunkKey> Touched;
            internal bool Abandoned;
        }

        internal ulong BeginFetch(string world, ChunkKey[] keys, ulong[] versions, int[][] buffers, byte[] changed, int n)
        {
            CheckWorld(world);
            var seen = new HashSet<ChunkKey>();
            for (int i = 0; i < n; i++)
                if (!seen.Add(keys[i])) throw Invalid("chunk " + keys[i] + " appears twice");
            var op = new Op { Keys = (ChunkKey[])keys.Clone(), World = world, Held = new ulong[n], Seqs = new ulong[n], Versions = versions, Buffers = buffers, Changed = changed };
            Array.Copy(versions, op.Held, n);
            int first = 0;
            while (first < n)
            {
                int count = 0, length = 0;
                while (first + count < n && count < NativeDefaults.MaxChunksPerFetch)
                {
                    int entry = FetchProtocol.EntryLength(op.Keys, op.Held, first + count);
                    if (count > 0 && length + entry > ParamBudget) break;
                    length += entry;
                    count++;
                }
                var query = FetchProtocol.Query(world, op.Keys, op.Held, first, count);
                op.Parts.Add(new Part { First = first, Count = count, Method = "GET", Url = endpoint + "?" + query });
                first += count;
            }
            return Start(op);
        }

        internal ulong BeginPut(string world, CubeEdit[] edits, ChunkVersion[] results, UIntPtr[] count)
        {
            CheckWorld(world);
            // Group by chunk in first-appearance order; the last edit of a cube wins.
            var order = new List<ChunkKey>();
            var byChunk = new Dictionary<ChunkKey, Dictionary<uint, int>>();
            var cubeOrder = new Dictionary<ChunkKey, List<uint>>();
            for (int i = 0; i < edits.Length; i++)
            {
                CubeEdit e = edits[i];
                if (e.Index >= 4096) throw Invalid("edits[" + i + "].index " + e.Index + " outside 0..4096");
                Dictionary<uint, int> cubes;
                if (!byChunk.TryGetValue(e.Chunk, out cubes))
                {
                    cubes = new Dictionary<uint, int>();
                    byChunk.Add(e.Chunk, cubes);
                    cubeOrder.Add(e.Chunk, new List<uint>());
                    order.Add(e.Chunk);
                }
                if (!cubes.ContainsKey(e.Index)) cubeOrder[e.Chunk].Add(e.Index);
                cubes[e.Index] = e.Value;
            }
            if (order.Count > results.Length)
                throw new CubeWalkException(CubeWalkStatus.BufferTooSmall, "results need " + order.Count + " entries, one per chunk touched");
            var op = new Op { IsPut = true, World = world, Results = results, Count = count, Touched = order };
            Part part = null;
            int editsInPart = 0;
            StringBuilder body = null;
            Action close = () =>
            {
                body.Append("]}");
                part.Body = Encoding.UTF8.GetBytes(body.ToString());
                op.Parts.Add(part);
            };
            foreach (ChunkKey k in order)
            {
                int cubes = cubeOrder[k].Count;
                if (part == null || part.Chunks.Count == NativeDefaults.MaxChunksPerPut || editsInPart + cubes > NativeDefaults.MaxEditsPerPut)
                {
                    if (part != null) close();
                    part = new Part { Chunks = new List<ChunkKey>(), Method = "PUT", Url = endpoint, Key = Guid.NewGuid().ToString("N") };
                    body = new StringBuilder("{\"world\":\"").Append(world).Append("\",\"idempotency_key\":\"")
                        .Append(part.Key).Append("\",\"edits\":[");
                    editsInPart = 0;
                }
                part.Chunks.Add(k);
                foreach (uint index in cubeOrder[k])
                {
                    if (editsInPart > 0) body.Append(',');
                    body.Append("{\"chunk\":[").Append(k.X.ToString(CultureInfo.InvariantCulture)).Append(',')
                        .Append(k.Y.ToString(CultureInfo.InvariantCulture)).Append(',').Append(k.Z.ToString(CultureInfo.InvariantCulture))
                        .Append("],\"index\":").Append(index.ToString(CultureInfo.InvariantCulture))
                        .Append(",\"value\":").Append(byChunk[k][index].ToString(CultureInfo.InvariantCulture)).Append('}');
                    editsInPart++;
                }
            }
            close();
            return Start(op);
        }

        ulong Start(Op op)
        {
            lock (gate)
            {
                DateTime now = Clock();
                AdvanceAbandoned(now);
                op.Id = ++nextId;
                op.Deadline = now.AddMilliseconds(timeoutMs);
                ops.Add(op.Id, op);
                if (op.IsPut) queuedPuts.Add(op);
                else Send(op);
                StartNextPut(now);
                return op.Id;
            }
        }

        void Send(Op op)
        {
            TokenState t = token;
            foreach (Part p in op.Parts)
            {
                p.Token = t;
                p.Exchange = http.Send(p.Method, p.Url, t.Text, p.Body, timeoutMs);
            }
            op.Started = true;
        }

        // Puts apply one at a time, in the order begun on each chunk, so two puts of a chunk
        // never race: the first queued put that touches no held chunk (a failed fence's) and no
        // chunk of a put begun before it that still waits goes next.
        void StartNextPut(DateTime now)
        {
            if (putInFlight != null || queuedPuts.Count == 0) return;
            if (holds.Count > 0 && now >= holdsEnd) holds.Clear();
            int next = 0;
            if (holds.Count > 0)
            {
                next = -1;
                for (int i = 0; i < queuedPuts.Count && next < 0; i++)
                {
                    Op q = queuedPuts[i];
                    bool waits = Held(q, now);
                    for (int j = 0; j < i && !waits; j++) waits = Overlap(queuedPuts[j], q);
                    if (!waits) next = i;
                }
                if (next < 0) return;
            }
            putInFlight = queuedPuts[next];
            queuedPuts.RemoveAt(next);
            putInFlight.Deadline = now.AddMilliseconds(timeoutMs);
            Send(putInFlight);
        }

        bool Held(Op q, DateTime now)
        {
            foreach (Hold h in holds)
                if (h.Until > now && h.World == q.World && q.Touched.Contains(h.Key)) return true;
            return false;
        }

        static bool Overlap(Op a, Op b)
        {
            if (a.World != b.World) return false;
            foreach (ChunkKey k in a.Touched)
                if (b.Touched.Contains(k)) return true;
            return false;
        }

        /// <summary>The request's status: Pending while it runs; at the end its outputs are
        /// written (only then) and it is forgotten. Unknown ids are InvalidArgument.</summary>
        internal CubeWalkStatus Poll(ulong id, out string error)
        {
            error = null;
            lock (gate)
            {
                DateTime now = Clock();
                AdvanceAbandoned(now);
                Op op;
                if (!ops.TryGetValue(id, out op))
                {
                    error = "invalid argument: unknown request id " + id;
                    return CubeWalkStatus.InvalidArgument;
                }
                // A put waiting for a held chunk goes once the hold has passed.
                if (!op.Started) StartNextPut(now);
                if (!op.Started) return CubeWalkStatus.Pending;
                if (op.IsPut)
                {
                    if (!AdvancePut(op, now)) return CubeWalkStatus.Pending;
                    Settle(op, now);
                    return FinishPut(op, out error);
                }
                bool done = true;
                foreach (Part p in op.Parts) done &= p.Exchange.IsDone;
                if (!done)
                {
                    if (now < op.Deadline) return CubeWalkStatus.Pending;
                    Forget(op);
                    error = "timed out after " + timeoutMs + " ms";
                    return CubeWalkStatus.Timeout;
                }
                Forget(op);
                try
                {
                    CubeWalkStatus s = FinishFetch(op, out error);
                    // The realtime follower orders changes against what this answer holds.
                    Floors floors = Follower;
                    if (s == CubeWalkStatus.Ok && floors != null) floors.Record(op.World, op.Keys, op.Seqs, op.Keys.Length);
                    return s;
                }
                catch (Exception e) when (e is InvalidDataException || e is FormatException || e is OverflowException)
                {
                    error = "protocol: " + e.Message;
                    return CubeWalkStatus.Protocol;
                }
            }
        }

        void Forget(Op op)
        {
            ops.Remove(op.Id);
            foreach (Part p in op.Parts) if (p.Exchange != null && !p.Exchange.IsDone) p.Exchange.Abort();
            if (putInFlight == op) putInFlight = null;
            StartNextPut(Clock());
        }

        // A put has its outcome (every part done): the next puts may go, except those of its
        // chunks when a fence failed, which wait until the server can no longer apply it.
        void Settle(Op op, DateTime now)
        {
            ops.Remove(op.Id);
            if (putInFlight == op) putInFlight = null;
            bool unsettled = false;
            foreach (Part p in op.Parts) unsettled |= p.Unsettled;
            if (unsettled)
            {
                DateTime until = op.Deadline.AddMilliseconds(FenceHorizonMs);
                int kept = 0;
                for (int i = 0; i < holds.Count; i++) if (holds[i].Until > now) holds[kept++] = holds[i];
                holds.RemoveRange(kept, holds.Count - kept);
                foreach (ChunkKey k in op.Touched) holds.Add(new Hold { World = op.World, Key = k, Until = until });
                if (until > holdsEnd) holdsEnd = until;
            }
            StartNextPut(now);
        }

        // Cancelled puts whose fence runs on: settled (letting the line go) once it ends.
        void AdvanceAbandoned(DateTime now)
        {
            for (int i = abandoned.Count - 1; i >= 0; i--)
            {
                Op op = abandoned[i];
                if (!AdvancePut(op, now)) continue;
                abandoned.RemoveAt(i);
                Settle(op, now);
            }
        }

        // Moves each part of a started put on as far as it can go now; true once all are done.
        bool AdvancePut(Op op, DateTime now)
        {
            bool done = true;
            foreach (Part p in op.Parts)
            {
                if (p.Phase == PartPhase.Sending) AdvanceSend(op, p, now);
                if (p.Phase == PartPhase.Fencing) AdvanceFence(p, now);
                done &= p.Phase == PartPhase.Done;
            }
            return done;
        }

        /// <summary>Whether a put request that failed with <paramref name="status"/> (HTTP
        /// <paramref name="http"/>, 0 when no answer came) may have applied on the server anyway,
        /// as the native library decides (may_have_applied, sdk/src/batching.rs): it was sent and
        /// the answer did not come (timeout, broken connection, cancelled), came as a server
        /// failure that may have struck after some chunks were written (5xx), or was not a put
        /// answer. Refusals (4xx) are answered before anything is written.</summary>
        internal static bool MayHaveApplied(CubeWalkStatus status, int http)
        {
            switch (status)
            {
                case CubeWalkStatus.Timeout:
                case CubeWalkStatus.Network:
                case CubeWalkStatus.Protocol:
                case CubeWalkStatus.Cancelled:
                    return true;
                case CubeWalkStatus.ServerError:
                    return http >= 500;
                default:
                    return false;
            }
        }

        void AdvanceSend(Op op, Part p, DateTime now)
        {
            CubeWalkStatus s;
            string why;
            if (!p.Exchange.IsDone)
            {
                if (!op.Abandoned && now < op.Deadline) return;
                p.Exchange.Abort();
                if (op.Abandoned) { s = CubeWalkStatus.Cancelled; why = "cancelled"; }
                else { s = CubeWalkStatus.Timeout; why = "timed out after " + timeoutMs + " ms"; }
                BeginFence(op, p, s, why, now);
                return;
            }
            s = Failed(p, out why);
            if (s == CubeWalkStatus.Ok)
            {
                try
                {
                    List<FetchedEntry> entries = FetchProtocol.ParseAnswer(p.Exchange.Text);
                    if (entries.Count != p.Chunks.Count) throw new InvalidDataException("put answer does not list the chunks sent");
                    for (int j = 0; j < entries.Count; j++)
                        if (!entries[j].Key.Equals(p.Chunks[j])) throw new InvalidDataException("put answer does not list the chunks sent");
                    p.Entries = entries;
                    p.Status = CubeWalkStatus.Ok;
                    p.Phase = PartPhase.Done;
                    return;
                }
                catch (Exception e) when (e is InvalidDataException || e is FormatException || e is OverflowException)
                {
                    s = CubeWalkStatus.Protocol;
                    why = "protocol: " + e.Message;
                }
            }
            if (MayHaveApplied(s, p.Exchange.Status))
            {
                BeginFence(op, p, s, why, now);
                return;
            }
            p.Status = s;
            p.Error = why;
            p.Phase = PartPhase.Done;
        }

        // The part failed with (s, why) after it may have reached the server: its fence starts,
        // within a fresh budget of one timeout.
        void BeginFence(Op op, Part p, CubeWalkStatus s, string why, DateTime now)
        {
            p.Status = s;
            p.Error = why;
            p.Phase = PartPhase.Fencing;
            p.FenceDeadline = now.AddMilliseconds(timeoutMs);
            p.FenceAttempts = 0;
            var body = new StringBuilder(64 + 16 * p.Chunks.Count).Append("{\"world\":\"").Append(op.World)
                .Append("\",\"cancel\":\"").Append(p.Key).Append("\",\"chunks\":[");
            for (int i = 0; i < p.Chunks.Count; i++)
            {
                ChunkKey k = p.Chunks[i];
                if (i > 0) body.Append(',');
                body.Append('[').Append(k.X.ToString(CultureInfo.InvariantCulture)).Append(',')
                    .Append(k.Y.ToString(CultureInfo.InvariantCulture)).Append(',')
                    .Append(k.Z.ToString(CultureInfo.InvariantCulture)).Append(']');
            }
            p.FenceBody = Encoding.UTF8.GetBytes(body.Append("]}").ToString());
            SendFence(p, now);
        }

        void SendFence(Part p, DateTime now)
        {
            TokenState t = token;
            p.FenceToken = t;
            p.FenceAttempts++;
            int left = (int)Math.Ceiling((p.FenceDeadline - now).TotalMilliseconds);
            p.Fence = http.Send("PUT", p.Url, t.Text, p.FenceBody, Math.Max(1, left));
        }

        // The fence's cancel request, retried as the native library retries a repeatable request
        // (network errors and 429/502/503/504, with backoff, while the budget lasts; a 401 to a
        // token replaced meanwhile at once with the new one).
        void AdvanceFence(Part p, DateTime now)
        {
            if (p.Fence == null)
            {
                if (now < p.RetryAt) return;
                if (now >= p.FenceDeadline) { FenceFailed(p); return; }
                SendFence(p, now);
            }
            IHttpExchange x = p.Fence;
            if (!x.IsDone)
            {
                if (now < p.FenceDeadline) return;
                x.Abort();
                FenceFailed(p);
                return;
            }
            p.Fence = null;
            int s = x.Status;
            if (s >= 200 && s < 300)
            {
                p.FenceToken.Worked = true;
                try
                {
                    FenceAnswered(p, x.Text);
                }
                catch (Exception e) when (e is InvalidDataException || e is FormatException || e is OverflowException)
                {
                    FenceFailed(p);
                }
                return;
            }
            bool again;
            if (s == 0) again = x.Error != "timed out";
            else
            {
                if (Code(x.Text) != null) p.FenceToken.Worked = true;
                if (s == 401 && p.FenceToken != token)
                {
                    SendFence(p, now);
                    return;
                }
                if (s == 401) p.FenceToken.Unauthorized = true;
                again = s == 429 || s == 502 || s == 503 || s == 504;
            }
            if (again && p.FenceAttempts <= maxRetries)
            {
                DateTime at = now.AddMilliseconds(RetryDelayMs(p.FenceAttempts));
                if (at < p.FenceDeadline)
                {
                    p.RetryAt = at;
                    return;
                }
            }
            FenceFailed(p);
        }

        // The native backoff: full jitter up to base * 2^(retry-1), capped at the largest delay.
        double RetryDelayMs(uint retry)
        {
            double cap = Math.Min((double)retryMaxMs, retryBaseMs * Math.Pow(2, Math.Min(retry - 1, 20u)));
            return Random.NextDouble() * cap;
        }

        // The fence could not be recorded: the part keeps its original error and may still apply.
        static void FenceFailed(Part p)
        {
            p.Unsettled = true;
            p.Phase = PartPhase.Done;
        }

        // The cancel answer: each chunk of the part either applied (with its revision) or is
        // cancelled for good. All applied: the part succeeded after all; none: its original
        // error stands; some: its applied chunks, in request order, and the original error.
        static void FenceAnswered(Part p, string text)
        {
            var applied = new List<FetchedEntry>();
            var cancelled = new List<ChunkKey>();
            FetchProtocol.ParseCancelAnswer(text, applied, cancelled);
            // Each chunk sent (distinct) found once among as many answered: no more, no fewer.
            if (applied.Count + cancelled.Count != p.Chunks.Count)
                throw new InvalidDataException("cancel answer does not list the chunks sent");
            var entries = new List<FetchedEntry>(applied.Count);
            foreach (ChunkKey k in p.Chunks)
            {
                int at = -1;
                for (int i = 0; i < applied.Count && at < 0; i++) if (applied[i].Key.Equals(k)) at = i;
                if (at >= 0) entries.Add(applied[at]);
                else if (!cancelled.Contains(k)) throw new InvalidDataException("cancel answer does not list the chunks sent");
            }
            if (cancelled.Count == 0)
            {
                p.Status = CubeWalkStatus.Ok;
                p.Error = null;
            }
            p.Entries = entries;
            p.Phase = PartPhase.Done;
        }

        static CubeWalkStatus Failed(Part p, out string error)
        {
            if (p.Exchange.Status == 0)
            {
                error = "network error: " + p.Exchange.Error;
                return p.Exchange.Error == "timed out" ? CubeWalkStatus.Timeout : CubeWalkStatus.Network;
            }
            int s = p.Exchange.Status;
            string code = Code(p.Exchange.Text);
            // Our own answers come from behind the authorizer: the token was accepted.
            if (p.Token != null && ((s >= 200 && s < 300) || code != null)) p.Token.Worked = true;
            if (p.Token != null && s == 401) p.Token.Unauthorized = true;
            if (s >= 200 && s < 300)
            {
                error = null;
                return CubeWalkStatus.Ok;
            }
            string message = Message(p.Exchange.Text);
            if (p.Token != null && message.Contains(p.Token.Text)) message = message.Replace(p.Token.Text, "[token]");
            return StatusOf(s, code, message, p.Token != null && p.Token.RefusedAfterUse, out error);
        }

        /// <summary>The status and message of an HTTP error answer (not retried here).</summary>
        internal static CubeWalkStatus StatusOf(int s, string code, string message, bool refusedAfterUse, out string error)
        {
            if (s == 401 && refusedAfterUse)
            {
                error = "token refused (401) after it had worked or expired; get a new token and set it: " + message;
                return CubeWalkStatus.TokenRefused;
            }
            if (s == 401) { error = "unauthorized (401): " + message; return CubeWalkStatus.Unauthorized; }
            if (s == 403 && code == "banned") { error = "banned (403): " + message; return CubeWalkStatus.Banned; }
            if (s == 403) { error = "forbidden (403): " + message; return CubeWalkStatus.Forbidden; }
            if (s == 429 && code == "rate_limited") { error = "rate limited (429): " + message; return CubeWalkStatus.RateLimited; }
            if (s >= 300 && s < 400) { error = "the server answered " + s + "; redirects are never followed"; return CubeWalkStatus.Protocol; }
            if (s >= 400 && s < 500 && s != 429) { error = "bad request (" + s + "): " + message; return CubeWalkStatus.BadRequest; }
            error = "server error (" + s + "): " + message;
            return CubeWalkStatus.ServerError;
        }

        // The code of our error body ({"error":{"code":"..."}}), or null for anything else.
        internal static string Code(string body)
        {
            if (string.IsNullOrEmpty(body) || !body.StartsWith("{\"error\":", StringComparison.Ordinal)) return null;
            int at = body.IndexOf("\"code\":\"", StringComparison.Ordinal);
            if (at < 0) return null;
            int start = at + 8;
            int end = body.IndexOf('"', start);
            return end < 0 ? null : body.Substring(start, end - start);
        }

        // The human part of an error body: ours ({"error":{"code","message"}}) or API Gateway's.
        internal static string Message(string body)
        {
            if (string.IsNullOrEmpty(body)) return "";
            int at = body.IndexOf("\"message\":", StringComparison.Ordinal);
            if (at < 0) return body.Length > 200 ? body.Substring(0, 200) : body;
            int start = body.IndexOf('"', at + 10);
            int end = start < 0 ? -1 : body.IndexOf('"', start + 1);
            return start < 0 || end < 0 ? "null" : body.Substring(start + 1, end - start - 1);
        }

        static CubeWalkStatus FinishFetch(Op op, out string error)
        {
            foreach (Part p in op.Parts)
            {
                CubeWalkStatus s = Failed(p, out error);
                if (s != CubeWalkStatus.Ok) return s;
            }
            foreach (Part p in op.Parts)
            {
                List<FetchedEntry> entries = FetchProtocol.ParseAnswer(p.Exchange.Text);
                if (entries.Count != p.Count) throw new InvalidDataException("asked for " + p.Count + " chunks, got " + entries.Count);
                for (int j = 0; j < p.Count; j++)
                {
                    int i = p.First + j;
                    FetchedEntry e = entries[j];
                    if (!e.Key.Equals(op.Keys[i])) throw new InvalidDataException("asked for chunk " + op.Keys[i] + ", got " + e.Key);
                    if (e.Blob != null) ChunkCodec.Decode(e.Blob, op.Buffers[i]);
                    else if (op.Held[i] != e.Version) throw new InvalidDataException("chunk " + e.Key + " came back without data at a version not held");
                    op.Versions[i] = e.Version;
                    op.Seqs[i] = e.Seq;
                    op.Changed[i] = (byte)(e.Blob != null ? 1 : 0);
                }
            }
            error = null;
            return CubeWalkStatus.Ok;
        }

        // The put's answer from its parts' outcomes, as the native library gives it: all Ok, the
        // entries; else the first failure, with the chunks confirmed applied written (and counted
        // in the message) unless the put was one request and none applied.
        CubeWalkStatus FinishPut(Op op, out string error)
        {
            int written = 0;
            CubeWalkStatus failure = CubeWalkStatus.Ok;
            error = null;
            foreach (Part p in op.Parts)
            {
                if (p.Status != CubeWalkStatus.Ok && failure == CubeWalkStatus.Ok)
                {
                    failure = p.Status;
                    error = p.Error;
                }
                if (p.Entries == null) continue;
                foreach (FetchedEntry e in p.Entries)
                    op.Results[written++] = new ChunkVersion { Key = e.Key, Version = e.Version };
            }
            if (failure != CubeWalkStatus.Ok && (op.Parts.Count > 1 || written > 0))
                error += " (" + written + " of " + op.Touched.Count + " chunks confirmed applied)";
            // On failure, the chunks confirmed applied (as the native library reports them).
            op.Count[0] = (UIntPtr)written;
            return failure;
        }

        /// <summary>The guest login URL for an endpoint: the /cubewalkblocks URL (its sibling
        /// cubewalklogin is taken) or the /cubewalklogin URL, as the native library reads it.</summary>
        internal static string LoginUrl(string endpoint, bool allowInsecure)
        {
            string url = CheckEndpoint(endpoint, allowInsecure);
            if (url.EndsWith("/cubewalklogin", StringComparison.Ordinal)) return url;
            if (url.EndsWith("/cubewalkblocks", StringComparison.Ordinal))
                return url.Substring(0, url.Length - "cubewalkblocks".Length) + "cubewalklogin";
            throw Invalid("login endpoint must end in /cubewalkblocks or /cubewalklogin (with its stage before it)");
        }

        /// <summary>Starts a guest login (POST, no token header) through <paramref name="http"/>.</summary>
        internal static IHttpExchange BeginLogin(IHttpSender http, string endpoint, string secret, CubeWalkOptions options)
        {
            string url = LoginUrl(endpoint, options.AllowInsecureHttp);
            CubeWalkClient.CheckDeviceSecret(secret);
            byte[] body = Encoding.UTF8.GetBytes("{\"device_secret\":\"" + secret + "\"}");
            return http.Send("POST", url, null, body, (int)(options.TimeoutMs ?? NativeDefaults.TimeoutMs));
        }

        /// <summary>The end of a guest login begun with <see cref="BeginLogin"/>.</summary>
        internal static CubeWalkStatus FinishLogin(IHttpExchange x, string secret, out GuestSession session, out string error)
        {
            session = null;
            if (x.Status == 0)
            {
                error = "network error: " + x.Error;
                return x.Error == "timed out" ? CubeWalkStatus.Timeout : CubeWalkStatus.Network;
            }
            if (x.Status < 200 || x.Status >= 300)
            {
                string message = Message(x.Text).Replace(secret, "[device secret]");
                if (x.Status >= 300 && x.Status < 400) { error = "the server answered " + x.Status + "; redirects are never followed"; return CubeWalkStatus.Protocol; }
                return StatusOf(x.Status, Code(x.Text), message, false, out error);
            }
            string text = x.Text ?? "";
            string token = StringField(text, "token"), player = StringField(text, "player");
            long expiresAt, expiresIn;
            if (token == null || player == null || !long.TryParse(NumberField(text, "expires_at"), NumberStyles.None, CultureInfo.InvariantCulture, out expiresAt)
                || !long.TryParse(NumberField(text, "expires_in"), NumberStyles.None, CultureInfo.InvariantCulture, out expiresIn))
            {
                error = "protocol error: login answer is not valid";
                return CubeWalkStatus.Protocol;
            }
            session = new GuestSession(token, player, StringField(text, "role") ?? "", expiresAt, (int)Math.Min(expiresIn, int.MaxValue));
            error = null;
            return CubeWalkStatus.Ok;
        }

        // A string field of a flat JSON object whose values carry no escapes (the login answer's).
        static string StringField(string json, string name)
        {
            string key = "\"" + name + "\":";
            int at = json.IndexOf(key, StringComparison.Ordinal);
            if (at < 0) return null;
            int start = json.IndexOf('"', at + key.Length);
            int end = start < 0 ? -1 : json.IndexOf('"', start + 1);
            return end < 0 ? null : json.Substring(start + 1, end - start - 1);
        }

        static string NumberField(string json, string name)
        {
            string key = "\"" + name + "\":";
            int at = json.IndexOf(key, StringComparison.Ordinal);
            if (at < 0) return null;
            int i = at + key.Length;
            while (i < json.Length && json[i] == ' ') i++;
            int start = i;
            while (i < json.Length && char.IsDigit(json[i])) i++;
            return json.Substring(start, i - start);
        }

        /// <summary>Cancels a request: its outputs are never written afterwards. A put may or may
        /// not have reached the server: one in flight is fenced in the background (as the native
        /// library does), and the next puts wait for that fence (and its hold, if it fails).</summary>
        internal void Cancel(ulong id)
        {
            lock (gate)
            {
                DateTime now = Clock();
                AdvanceAbandoned(now);
                Op op;
                if (!ops.TryGetValue(id, out op)) return;
                if (!op.IsPut)
                {
                    Forget(op);
                    return;
                }
                ops.Remove(op.Id);
                if (!op.Started)
                {
                    queuedPuts.Remove(op);
                    return;
                }
                op.Abandoned = true;
                if (AdvancePut(op, now)) Settle(op, now);
                else abandoned.Add(op);
            }
        }
    }
}
