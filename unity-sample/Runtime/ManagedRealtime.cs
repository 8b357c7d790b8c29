using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace CubeWalk.Managed
{
#if UNITY_2018_1_OR_NEWER
    /// <summary>What the package's player-loop system (and, in the Editor outside Play mode, its
    /// update) runs once per frame on the main thread: the UnityWebRequest pump of the managed
    /// transport, then every managed realtime follower.</summary>
    internal static class ManagedLoop
    {
        internal static void Pump()
        {
            UnityWebRequestSender.Pump();
            if (UnityWebRequestSender.OnMainThread) ManagedRealtime.PumpAll();
        }
    }
#endif

    /// <summary>
    /// Per chunk, the write sequence of the copy the caller holds as far as one follower knows
    /// (sdk/src/realtime.rs <c>Floors</c>): set exactly by every fetch answer of its client (a
    /// store that lost the chunk starts counting again) and moved on by every change let through.
    /// 0 means unknown. A change at or below it is dropped; one that does not start exactly at it
    /// loses its edits (refetch); and when the caller drains, a queued change below what a fetch
    /// answered meanwhile is dropped.
    /// </summary>
    internal sealed class Floors
    {
        internal const int MaxFloors = 65536;

        struct Key : IEquatable<Key>
        {
            internal string World;
            internal ChunkKey Chunk;
            public bool Equals(Key other) { return Chunk.Equals(other.Chunk) && string.Equals(World, other.World, StringComparison.Ordinal); }
            public override bool Equals(object obj) { return obj is Key && Equals((Key)obj); }
            public override int GetHashCode() { return Chunk.GetHashCode() * 31 + World.GetHashCode(); }
        }

        // Per chunk: the sequence held (moved on by changes let through) and the one the last
        // fetch answered.
        struct Floor
        {
            internal ulong Held, Fetched;
        }

        readonly object sync = new object();
        readonly Dictionary<Key, Floor> seqs = new Dictionary<Key, Floor>();

        /// <summary>What a fetch of <paramref name="world"/> answered: chunk i at seqs[i].</summary>
        internal void Record(string world, ChunkKey[] keys, ulong[] at, int count)
        {
            lock (sync)
                for (int i = 0; i < count; i++)
                    seqs[new Key { World = world, Chunk = keys[i] }] = new Floor { Held = at[i], Fetched = at[i] };
        }

        /// <summary>What to do with a change: false to drop it (at or below what is held); else
        /// <paramref name="keepEdits"/> says whether its edits apply (it starts exactly at what is
        /// held, or nothing is known). Moves the floor on to the change's sequence.</summary>
        internal bool Admit(string world, ChunkKey chunk, ulong fromSeq, ulong seq, out bool keepEdits)
        {
            keepEdits = true;
            var key = new Key { World = world, Chunk = chunk };
            lock (sync)
            {
                Floor floor;
                bool known = seqs.TryGetValue(key, out floor);
                if (known && floor.Held != 0)
                {
                    if (seq <= floor.Held) return false;
                    if (fromSeq != floor.Held) keepEdits = false;
                }
                floor.Held = seq;
                seqs[key] = floor;
                return true;
            }
        }

        /// <summary>Whether a queued change of sequence <paramref name="seq"/> is still news: not
        /// below what a fetch answered since (a change queued before the fetch that passed it).
        /// Changes let through after it do not count: two changes of one chunk queued between two
        /// drains both stay news.</summary>
        internal bool StillNews(string world, ChunkKey chunk, ulong seq)
        {
            lock (sync)
            {
                Floor floor;
                return !seqs.TryGetValue(new Key { World = world, Chunk = chunk }, out floor) || seq >= floor.Fetched;
            }
        }

        /// <summary>Bounds the map: past <see cref="MaxFloors"/>, forgets the chunks not followed.</summary>
        internal void Prune(string world, HashSet<ChunkKey> followed)
        {
            lock (sync)
            {
                if (seqs.Count <= MaxFloors) return;
                var drop = new List<Key>();
                foreach (Key k in seqs.Keys)
                    if (!string.Equals(k.World, world, StringComparison.Ordinal) || !followed.Contains(k.Chunk)) drop.Add(k);
                foreach (Key k in drop) seqs.Remove(k);
            }
        }

        internal int Count { get { lock (sync) return seqs.Count; } }
    }

    /// <summary>
    /// The managed realtime follower: the same behaviour as the native one (sdk/src/realtime.rs)
    /// in plain C#, for clients on the managed transport (WebGL builds, or when asked for). MQTT
    /// 3.1.1 over a WebSocket (subprotocol <c>mqtt</c>) whose URL carries the token in its
    /// <c>token</c> query parameter, as a browser can only send it.
    ///
    /// Nothing runs on its own: <see cref="Pump"/> does all the work, once per frame, on Unity's
    /// main thread (the package's player-loop system) or from <see cref="CubeWalkClient.Update"/>
    /// outside Unity. It connects (random client id, keepalive 60 s, clean session), subscribes to
    /// the region topics covering the followed chunks (the difference after a move: UNSUBSCRIBE
    /// what is gone, SUBSCRIBE what is new, 8 filters a packet), queues a Subscribed event once
    /// every SUBACK arrived (Gap instead when an earlier connection had been subscribed), resends
    /// after a backoff when the broker refuses a subscription, sends PINGREQ every keepalive and
    /// gives a connection silent for 1.5 keepalives up, reconnects with exponential backoff and
    /// full jitter (250 ms doubling up to 30 s), queues a Gap every 60 s while subscribed, and
    /// orders changes by each chunk's write sequence against the client's fetches
    /// (<see cref="Floors"/>). A refused token stops it until a new one is set. Nothing it meets
    /// (a broken stream, a bridge that throws) escapes <see cref="Pump"/>: it is reported in
    /// <see cref="Problem"/> and the connection is made again.
    ///
    /// Every member may be called from any thread (one lock); the WebSocket bridge is touched only
    /// inside <see cref="Pump"/> and <see cref="Stop"/>.
    /// </summary>
    internal sealed class ManagedRealtime
    {
        internal const int KeepAliveSeconds = 60;
        internal const double KeepAliveMs = KeepAliveSeconds * 1000.0;
        internal const double ReconcileMs = 60000;
        internal const double ReconnectBaseMs = 250, ReconnectMaxMs = 30000;
        internal const int FiltersPerSubscribe = 8;
        internal const int MaxFollowedRegions = 50;
        internal const int MaxSubscribedChunks = 1024;
        internal const int RegionChunks = NativeDefaults.RegionChunks;
        internal const int MaxQueuedEvents = 4096;
        internal const int MinEditCapacity = ChangeBatch.MaxEditsInChange;
        internal const string TopicRoot = "cw";

        enum Phase { Waiting, Opening, Probing, Connecting, Serving, Refused, Stopped }

        // ---- every follower alive, for the player loop ----
        static readonly object liveLock = new object();
        static readonly List<ManagedRealtime> live = new List<ManagedRealtime>();
        static ManagedRealtime[] pumping = new ManagedRealtime[4];

        /// <summary>Pumps every running follower once (the player loop's system, on the main
        /// thread). Allocates nothing in the steady state.</summary>
        internal static void PumpAll()
        {
            int n;
            lock (liveLock)
            {
                n = live.Count;
                if (pumping.Length < n) pumping = new ManagedRealtime[n * 2];
                live.CopyTo(pumping);
            }
            for (int i = 0; i < n; i++)
            {
                pumping[i].Pump();
                pumping[i] = null;
            }
        }

        /// <summary>Stops every follower (the Editor before a domain reload, leaving Play mode).</summary>
        internal static void StopAll()
        {
            ManagedRealtime[] all;
            lock (liveLock) all = live.ToArray();
            foreach (ManagedRealtime r in all) r.Stop();
        }

        readonly object sync = new object();
        readonly ManagedTransport transport;
        readonly string baseUrl;
        readonly double connectTimeoutMs;
        readonly Func<IWebSocketBridge> bridges;
        readonly IHttpSender http;
        internal readonly Floors Floors = new Floors();
        /// <summary>Milliseconds of a monotonic clock (tests replace it).</summary>
        internal Func<double> Clock = DefaultClock;
        internal Random Random = new Random();

        Phase phase = Phase.Waiting;
        volatile int state = (int)RealtimeState.Connecting;
        string lastError;
        bool subscriptionRefused;

        // The connection.
        IWebSocketBridge bridge;
        IHttpExchange probe;
        ManagedTransport.TokenState tokenUsed;
        readonly MqttReader reader = new MqttReader();
        byte[] outBuffer = new byte[256];
        double deadline, startedAt, retryAt, heardAt, pingAt, reconcileAt, resendAt = -1;
        int failures, refusals;
        bool everSubscribed, gapPending, acked;
        ushort nextPacketId = 1;
        readonly HashSet<ushort> pendingAcks = new HashSet<ushort>();
        HashSet<string> subscribed = new HashSet<string>(StringComparer.Ordinal);

        // The followed set as the caller last set it, and whether the connection took it up.
        string world;
        byte[] topicPrefix;
        HashSet<ChunkKey> chunks = new HashSet<ChunkKey>();
        string[] topics = new string[0];
        int followVersion, followApplied = -1;

        // Parsed messages and queued events.
        readonly ChangeBatch batch = new ChangeBatch();
        readonly EventQueue events = new EventQueue();

        /// <summary>Connections opened (tests count attempts).</summary>
        internal int Connects;
        /// <summary>Times the connection was given up (tests).</summary>
        internal int Drops;
        /// <summary>Change messages of the followed world received (tests).</summary>
        internal int Messages;

        static readonly double TicksToMs = 1000.0 / Stopwatch.Frequency;
        static double DefaultClock() { return Stopwatch.GetTimestamp() * TicksToMs; }

        /// <summary>A follower of <paramref name="transport"/>'s client (its token, read afresh at every
        /// connect), following nothing yet, on <paramref name="endpoint"/>. Call <see cref="Register"/>
        /// to have the player loop pump it.</summary>
        /// <exception cref="CubeWalkException">The endpoint is not a realtime URL (InvalidArgument).</exception>
        internal ManagedRealtime(ManagedTransport transport, string endpoint, bool allowInsecure, double connectTimeoutMs,
            Func<IWebSocketBridge> bridges, IHttpSender http)
        {
            this.transport = transport;
            baseUrl = CheckEndpoint(endpoint, allowInsecure);
            this.connectTimeoutMs = connectTimeoutMs;
            this.bridges = bridges;
            this.http = http;
            retryAt = double.MinValue;
        }

        /// <summary>Adds it to the followers the player loop pumps.</summary>
        internal void Register()
        {
            lock (liveLock) if (!live.Contains(this)) live.Add(this);
        }

        /// <summary>The realtime URL rule of the native library: <c>wss://</c>, or <c>ws://</c> to a
        /// loopback host only unless plain HTTP is allowed; a host, no fragment, no credentials.</summary>
        internal static string CheckEndpoint(string text, bool allowInsecure)
        {
            if (text == null) throw new ArgumentNullException("realtimeEndpoint");
            Uri uri;
            if (text.Length == 0 || text.Length > NativeDefaults.MaxEndpointLength || !Uri.TryCreate(text, UriKind.Absolute, out uri))
                throw Invalid("realtime endpoint is not a URL");
            if (uri.Fragment.Length > 0 || uri.UserInfo.Length > 0 || uri.Host.Length == 0)
                throw Invalid("realtime endpoint must name a host and carry no fragment or credentials");
            if (uri.Scheme == "wss") return text;
            if (uri.Scheme != "ws") throw Invalid("realtime endpoint scheme must be wss or ws, not " + uri.Scheme);
            if (allowInsecure || uri.IsLoopback) return text;
            throw Invalid("plain ws is only allowed to a loopback host; use wss or set allow_insecure_http");
        }

        static CubeWalkException Invalid(string message)
        {
            return new CubeWalkException(CubeWalkStatus.InvalidArgument, "invalid argument: " + message);
        }

        /// <summary>Where the connection stands.</summary>
        internal RealtimeState State { get { return (RealtimeState)state; } }

        /// <summary>Whether <see cref="Stop"/> ended it.</summary>
        internal bool Stopped { get { lock (sync) return phase == Phase.Stopped; } }

        /// <summary>The last problem the connection met while it is not connected (or while the
        /// broker refuses the subscription), else null.</summary>
        internal string Problem
        {
            get
            {
                lock (sync)
                    return state != (int)RealtimeState.Connected || subscriptionRefused ? lastError : null;
            }
        }

        /// <summary>The last problem met, whatever the state (tests).</summary>
        internal string LastError { get { lock (sync) return lastError; } }

        /// <summary>Follows exactly <paramref name="count"/> chunks of <paramref name="keys"/> in
        /// <paramref name="followedWorld"/> from now on; the next <see cref="Pump"/> subscribes.</summary>
        internal void Follow(string followedWorld, ChunkKey[] keys, int count)
        {
            if (count > MaxSubscribedChunks)
                throw Invalid("at most " + MaxSubscribedChunks + " chunks can be followed, got " + count);
            ManagedTransport.CheckWorld(followedWorld);
            var set = new HashSet<ChunkKey>();
            var regions = new HashSet<ChunkKey>();
            for (int i = 0; i < count; i++)
            {
                set.Add(keys[i]);
                regions.Add(new ChunkKey(RegionOf(keys[i].X), RegionOf(keys[i].Y), RegionOf(keys[i].Z)));
            }
            if (regions.Count > MaxFollowedRegions)
                throw Invalid("the chunks span " + regions.Count + " regions of " + RegionChunks + "x" + RegionChunks + "x" + RegionChunks
                    + " chunks; at most " + MaxFollowedRegions + " can be followed (follow a compact neighbourhood)");
            var names = new List<string>(regions.Count);
            foreach (ChunkKey r in regions) names.Add(Topic(followedWorld, r));
            names.Sort(StringComparer.Ordinal);
            byte[] prefix = Encoding.UTF8.GetBytes(TopicRoot + "/" + followedWorld + "/");
            lock (sync)
            {
                world = followedWorld;
                topicPrefix = prefix;
                chunks = set;
                topics = names.ToArray();
                followVersion++;
            }
        }

        /// <summary>The region coordinate of chunk coordinate <paramref name="c"/>: divided by
        /// <see cref="RegionChunks"/>, rounded down (C#'s division rounds toward zero).</summary>
        internal static int RegionOf(int c)
        {
            return c >= 0 ? c / RegionChunks : -1 - (-1 - c) / RegionChunks;
        }

        /// <summary>The topic region <paramref name="r"/> of <paramref name="w"/> is published on.</summary>
        internal static string Topic(string w, ChunkKey r)
        {
            var c = CultureInfo.InvariantCulture;
            return TopicRoot + "/" + w + "/" + r.X.ToString(c) + "/" + r.Y.ToString(c) + "/" + r.Z.ToString(c);
        }

        /// <summary>Moves queued events into <paramref name="changes"/> and their edits into
        /// <paramref name="edits"/> as <see cref="CubeWalkClient.PollChanges"/> describes; a change a
        /// fetch answered since it was queued is dropped. Allocates nothing.</summary>
        internal int Poll(ChunkChange[] changes, CubeEdit[] edits, out int editCount)
        {
            if (changes.Length == 0) throw Invalid("capacity must be at least 1");
            if (edits.Length < MinEditCapacity) throw Invalid("edit_capacity must be at least " + MinEditCapacity);
            lock (sync) return events.Drain(changes, edits, world, Floors, out editCount);
        }

        /// <summary>Closes the connection (DISCONNECT first when connected), drops the queued events
        /// and leaves the player loop. Harmless twice.</summary>
        internal void Stop()
        {
            lock (liveLock) live.Remove(this);
            lock (sync)
            {
                if (phase == Phase.Stopped) return;
                try
                {
                    if (phase == Phase.Serving) Send(Mqtt.WriteEmpty(ref outBuffer, Mqtt.Disconnect));
                }
                catch (Exception)
                {
                    // Closing anyway.
                }
                CloseConnection();
                phase = Phase.Stopped;
                state = (int)RealtimeState.Off;
                events.Clear();
            }
        }

        /// <summary>One step of everything: connect, read, subscribe, ping, reconnect. Never throws,
        /// never blocks.</summary>
        internal void Pump()
        {
            lock (sync)
            {
                if (phase == Phase.Stopped) return;
                try
                {
                    Step(Clock());
                }
                catch (Exception e)
                {
                    // A bridge or a runtime that threw: the connection is not to be trusted; make
                    // it again rather than let the game see the exception.
                    Fail(Scrub(e.GetType().Name + ": " + e.Message));
                    try { End(Clock()); }
                    catch (Exception) { phase = Phase.Waiting; retryAt = Clock() + ReconnectMaxMs; }
                }
            }
        }

        void Step(double now)
        {
            switch (phase)
            {
                case Phase.Waiting:
                    if (now >= retryAt) Open(now);
                    return;
                case Phase.Refused:
                    // A new token: start afresh with it.
                    if (transport.Token != tokenUsed)
                    {
                        failures = 0;
                        Open(now);
                    }
                    return;
                case Phase.Opening:
                    StepOpening(now);
                    return;
                case Phase.Probing:
                    StepProbing(now);
                    return;
                case Phase.Connecting:
                    StepConnack(now);
                    return;
                case Phase.Serving:
                    StepServing(now);
                    return;
            }
        }

        void Open(double now)
        {
            state = (int)RealtimeState.Connecting;
            startedAt = now;
            deadline = now + connectTimeoutMs;
            tokenUsed = transport.Token;
            reader.Clear();
            Connects++;
            phase = Phase.Opening;
            bridge = bridges();
            bridge.Open(WithToken(baseUrl));
        }

        // The URL with the token in its query (percent-encoded), as browsers must send it.
        string WithToken(string url)
        {
            return url + (url.IndexOf('?') >= 0 ? "&" : "?") + "token=" + Uri.EscapeDataString(tokenUsed.Text);
        }

        void StepOpening(double now)
        {
            BridgeState s = bridge.State;
            if (s == BridgeState.Open)
            {
                // A client id of our own: a session on the broker is never shared.
                string id = "cw-" + Guid.NewGuid().ToString("N");
                phase = Phase.Connecting;
                if (!Send(Mqtt.WriteConnect(ref outBuffer, id, KeepAliveSeconds)))
                {
                    Fail("MQTT connect: connection lost");
                    End(now);
                }
                return;
            }
            if (s == BridgeState.Closed)
            {
                HandshakeFailed(now);
                return;
            }
            if (now >= deadline)
            {
                Fail("realtime connect timed out");
                End(now);
            }
        }

        // The WebSocket never opened: why, as far as the runtime says.
        void HandshakeFailed(double now)
        {
            int status = bridge.HandshakeStatus;
            if (status > 0)
            {
                ByStatus(status, now);
                return;
            }
            if (status < 0)
            {
                // The server answered without upgrading and the runtime hides the status (browsers
                // always do). A 401 the API gave this very token says it; else ask the URL itself
                // once over HTTP (a browser may not be allowed to read that answer: then retry).
                if (tokenUsed.Unauthorized)
                {
                    ByStatus(401, now);
                    return;
                }
                if (http != null)
                {
                    CloseBridge();
                    probe = http.Send("GET", WithToken(HttpUrl(baseUrl)), null, null, (int)Math.Max(1, deadline - now));
                    phase = Phase.Probing;
                    return;
                }
                Fail("WebSocket handshake refused (the runtime does not say why)");
                End(now);
                return;
            }
            Fail("cannot reach " + Authority(baseUrl) + (bridge.Error != null ? ": " + Scrub(bridge.Error) : ""));
            End(now);
        }

        void StepProbing(double now)
        {
            if (!probe.IsDone)
            {
                if (now < deadline) return;
                Fail("realtime connect timed out");
                End(now);
                return;
            }
            int status = probe.Status;
            probe = null;
            if (status == 401 || status == 403)
            {
                ByStatus(status, now);
                return;
            }
            Fail("WebSocket handshake refused (the runtime does not say why; the URL answers "
                + (status > 0 ? "HTTP " + status.ToString(CultureInfo.InvariantCulture) : "nothing readable") + ")");
            End(now);
        }

        // What a handshake answered with this status means (as the native follower reads it).
        void ByStatus(int status, double now)
        {
            if (status == 401 && transport.Token != tokenUsed)
            {
                // Replaced while connecting: the next attempt sends the new one.
                End(now);
                return;
            }
            if (status == 401 && tokenUsed.RefusedAfterUse)
            {
                Fail("token refused: HTTP 401 to a token that had worked or has expired; set a new token");
                Refuse(RealtimeState.TokenRefused);
                return;
            }
            if (status == 401 || status == 403)
            {
                Fail("refused: HTTP " + status.ToString(CultureInfo.InvariantCulture) + " (is the token right?)");
                Refuse(RealtimeState.Refused);
                return;
            }
            Fail("WebSocket handshake: HTTP " + status.ToString(CultureInfo.InvariantCulture));
            End(now);
        }

        void StepConnack(double now)
        {
            bool open;
            Read(out open);
            int r = reader.Next();
            if (r < 0)
            {
                Fail("realtime: unreadable packet: " + reader.Error);
                End(now);
                return;
            }
            if (r == 0)
            {
                if (!open)
                {
                    Fail("MQTT connect: connection lost");
                    End(now);
                }
                else if (now >= deadline)
                {
                    Fail("realtime connect timed out");
                    End(now);
                }
                return;
            }
            if (reader.Type != Mqtt.ConnAck || reader.Length != 2 || reader.Flags != 0)
            {
                Fail("MQTT: expected CONNACK, got " + Mqtt.Name(reader.Type));
                End(now);
                return;
            }
            int code = reader.Buffer[reader.Body + 1];
            if (code == 0)
            {
                Connected(now);
                return;
            }
            if (code == 4 || code == 5)
            {
                Fail("refused: the broker did not authorize the token");
                Refuse(RealtimeState.Refused);
                return;
            }
            Fail("MQTT connect refused: " + ConnAckName(code));
            End(now);
        }

        static string ConnAckName(int code)
        {
            switch (code)
            {
                case 1: return "unacceptable protocol version";
                case 2: return "identifier rejected";
                case 3: return "server unavailable";
                default: return "return code " + code;
            }
        }

        void Connected(double now)
        {
            tokenUsed.Worked = true;
            state = (int)RealtimeState.Connected;
            phase = Phase.Serving;
            gapPending = everSubscribed;
            subscribed.Clear();
            pendingAcks.Clear();
            acked = false;
            heardAt = now;
            pingAt = now + KeepAliveMs;
            reconcileAt = now + ReconcileMs;
            resendAt = -1;
            // Subscribe to the current set at once.
            followApplied = -1;
            StepServing(now);
        }

        void StepServing(double now)
        {
            bool open = true;
            // What arrived since the last frame, a reader's buffer at a time (bounded per frame).
            for (int round = 0; round < 16; round++)
            {
                int got = Read(out open);
                if (got > 0) heardAt = now;
                while (true)
                {
                    int r = reader.Next();
                    if (r == 0) break;
                    if (r < 0)
                    {
                        Fail("realtime: unreadable packet: " + reader.Error);
                        End(now);
                        return;
                    }
                    if (!Receive(now))
                    {
                        End(now);
                        return;
                    }
                }
                if (got == 0) break;
            }
            if (!open)
            {
                Fail("realtime connection lost" + (bridge.Error != null ? ": " + Scrub(bridge.Error) : ""));
                End(now);
                return;
            }
            if (followApplied != followVersion)
            {
                followApplied = followVersion;
                acked = false;
                if (!Subscribe(now)) return;
            }
            if (resendAt >= 0 && now >= resendAt)
            {
                resendAt = -1;
                subscribed.Clear();
                if (!Subscribe(now)) return;
            }
            if (now - heardAt > 1.5 * KeepAliveMs)
            {
                Fail("realtime: the broker stopped answering");
                End(now);
                return;
            }
            if (now >= pingAt)
            {
                pingAt = now + KeepAliveMs;
                if (!Send(Mqtt.WriteEmpty(ref outBuffer, Mqtt.PingReq)))
                {
                    Lost(now);
                    return;
                }
            }
            if (now >= reconcileAt)
            {
                reconcileAt = now + ReconcileMs;
                if (acked) events.Push(ChangeKind.Gap);
            }
        }

        void Lost(double now)
        {
            Fail("realtime connection lost" + (bridge != null && bridge.Error != null ? ": " + Scrub(bridge.Error) : ""));
            End(now);
        }

        // Brings the subscriptions to the followed set's regions; false when the connection ended.
        bool Subscribe(double now)
        {
            if (world == null) return true;
            Floors.Prune(world, chunks);
            var wanted = new HashSet<string>(topics, StringComparer.Ordinal);
            var gone = new List<string>();
            foreach (string t in subscribed) if (!wanted.Contains(t)) gone.Add(t);
            gone.Sort(StringComparer.Ordinal);
            var added = new List<string>();
            foreach (string t in topics) if (!subscribed.Contains(t)) added.Add(t);
            string[] goneTopics = gone.ToArray(), addedTopics = added.ToArray();
            for (int first = 0; first < goneTopics.Length; first += FiltersPerSubscribe)
            {
                int n = Math.Min(FiltersPerSubscribe, goneTopics.Length - first);
                if (!Send(Mqtt.WriteSubscription(ref outBuffer, false, PacketId(), goneTopics, first, n)))
                {
                    Lost(now);
                    return false;
                }
            }
            for (int first = 0; first < addedTopics.Length; first += FiltersPerSubscribe)
            {
                int n = Math.Min(FiltersPerSubscribe, addedTopics.Length - first);
                ushort id = PacketId();
                pendingAcks.Add(id);
                if (!Send(Mqtt.WriteSubscription(ref outBuffer, true, id, addedTopics, first, n)))
                {
                    Lost(now);
                    return false;
                }
            }
            subscribed = wanted;
            AnnounceIfAcked();
            return true;
        }

        ushort PacketId()
        {
            ushort id = nextPacketId;
            nextPacketId = (ushort)(nextPacketId == ushort.MaxValue ? 1 : nextPacketId + 1);
            return id;
        }

        // Once every SUBSCRIBE was acknowledged: the subscription is in place.
        void AnnounceIfAcked()
        {
            if (pendingAcks.Count > 0 || acked) return;
            // The first acknowledgement of a connection after an earlier one was subscribed closes
            // a window in which changes were not delivered.
            events.Push(gapPending ? ChangeKind.Gap : ChangeKind.Subscribed);
            gapPending = false;
            everSubscribed = true;
            acked = true;
            refusals = 0;
            subscriptionRefused = false;
        }

        // One packet from the broker; false when it is not valid MQTT (the connection is dropped).
        bool Receive(double now)
        {
            byte[] b = reader.Buffer;
            int at = reader.Body, length = reader.Length;
            switch (reader.Type)
            {
                case Mqtt.Publish:
                {
                    int qos = (reader.Flags >> 1) & 3;
                    if (qos == 3 || length < 2) return Malformed("PUBLISH");
                    int topicLength = b[at] << 8 | b[at + 1];
                    int payload = at + 2 + topicLength + (qos > 0 ? 2 : 0);
                    if (payload > at + length) return Malformed("PUBLISH");
                    Publish(b, at + 2, topicLength, payload, at + length - payload);
                    return true;
                }
                case Mqtt.SubAck:
                {
                    if (length < 3 || reader.Flags != 0) return Malformed("SUBACK");
                    ushort id = (ushort)(b[at] << 8 | b[at + 1]);
                    bool refused = false;
                    for (int i = at + 2; i < at + length; i++)
                    {
                        int code = b[i];
                        if (code == 0x80) refused = true;
                        else if (code > 2) return Malformed("SUBACK");
                    }
                    if (!pendingAcks.Remove(id)) return true;
                    if (refused)
                    {
                        // Not allowed (a token without the world), or the broker could not: try
                        // again after a backoff; no event until it is in place.
                        Fail("realtime: the broker refused the subscription (does the token allow this world?)");
                        subscriptionRefused = true;
                        if (refusals < int.MaxValue) refusals++;
                        resendAt = now + Math.Min(ReconnectBaseMs * (1 << Math.Min(refusals, 16)), ReconnectMaxMs);
                        pendingAcks.Clear();
                        return true;
                    }
                    AnnounceIfAcked();
                    return true;
                }
                case Mqtt.UnsubAck:
                    return length == 2 && reader.Flags == 0 || Malformed("UNSUBACK");
                case Mqtt.PingResp:
                    return length == 0 && reader.Flags == 0 || Malformed("PINGRESP");
                default:
                    // Nothing else is expected; like the native follower, ignore it.
                    return true;
            }
        }

        bool Malformed(string what)
        {
            Fail("realtime: unreadable packet: malformed " + what);
            return false;
        }

        // A message on a topic: the changes of followed chunks of the followed world, ordered by
        // write sequence, queued.
        void Publish(byte[] b, int topic, int topicLength, int payload, int payloadLength)
        {
            if (world == null || !IsFollowedTopic(b, topic, topicLength)) return;
            Messages++;
            string why = batch.Parse(b, payload, payloadLength);
            if (why != null)
            {
                Fail("unreadable change message: " + why);
                return;
            }
            for (int i = 0; i < batch.Count; i++)
            {
                ParsedChange c = batch.Changes[i];
                if (!chunks.Contains(c.Chunk)) continue;
                bool keepEdits;
                if (!Floors.Admit(world, c.Chunk, c.FromSeq, c.Seq, out keepEdits)) continue;
                if (!keepEdits) c.EditCount = -1;
                events.PushChange(ref c, batch);
            }
        }

        // cw/<followed world>/<int>/<int>/<int>
        bool IsFollowedTopic(byte[] b, int at, int length)
        {
            byte[] prefix = topicPrefix;
            if (length <= prefix.Length) return false;
            for (int i = 0; i < prefix.Length; i++)
                if (b[at + i] != prefix[i]) return false;
            int p = at + prefix.Length, end = at + length;
            for (int axis = 0; axis < 3; axis++)
            {
                if (axis > 0)
                {
                    if (p >= end || b[p] != '/') return false;
                    p++;
                }
                if (p < end && b[p] == '-') p++;
                int digits = 0;
                while (p < end && b[p] >= '0' && b[p] <= '9') { p++; digits++; }
                if (digits == 0 || digits > 10) return false;
            }
            return p == end;
        }

        // Moves the bytes the bridge received into the reader (as many as fit: the rest wait for
        // the packets before them to be taken); how many. `open`: false once the bridge is closed
        // and has nothing more.
        int Read(out bool open)
        {
            int total = 0;
            open = true;
            while (true)
            {
                int room = reader.Space;
                if (room == 0) return total;
                int n = bridge.Read(reader.Buffer, reader.Tail, room);
                if (n <= 0) break;
                reader.Added(n);
                total += n;
            }
            open = bridge.State != BridgeState.Closed;
            return total;
        }

        bool Send(int length)
        {
            return bridge != null && bridge.Send(outBuffer, 0, length);
        }

        void Refuse(RealtimeState refusedState)
        {
            CloseConnection();
            Drops++;
            // Trying the same token again would only be refused again: wait for the game to set
            // another (at once if it did since this connect read the token).
            state = (int)refusedState;
            phase = Phase.Refused;
        }

        // The connection ended: make it again after a backoff with full jitter.
        void End(double now)
        {
            bool served = phase == Phase.Serving;
            CloseConnection();
            Drops++;
            // A connection that lived a while was healthy: start backing off afresh.
            if (served && now - startedAt > 30000) failures = 0;
            if (failures < int.MaxValue) failures++;
            double cap = Math.Min(ReconnectBaseMs * (1 << Math.Min(failures, 16)), ReconnectMaxMs);
            retryAt = now + Random.NextDouble() * cap;
            state = (int)RealtimeState.Connecting;
            phase = Phase.Waiting;
        }

        void CloseConnection()
        {
            if (probe != null)
            {
                probe.Abort();
                probe = null;
            }
            CloseBridge();
            reader.Clear();
            pendingAcks.Clear();
        }

        void CloseBridge()
        {
            IWebSocketBridge b = bridge;
            bridge = null;
            if (b != null) b.Close();
        }

        void Fail(string why)
        {
            lastError = why;
        }

        // Error texts never carry the token (the URL with it may appear in a runtime's message).
        string Scrub(string text)
        {
            if (text == null || tokenUsed == null) return text;
            string t = tokenUsed.Text;
            if (t.Length == 0) return text;
            text = text.Replace(t, "[token]");
            string escaped = Uri.EscapeDataString(t);
            return escaped == t ? text : text.Replace(escaped, "[token]");
        }

        static string HttpUrl(string ws)
        {
            return (ws.StartsWith("wss:", StringComparison.OrdinalIgnoreCase) ? "https:" + ws.Substring(4) : "http:" + ws.Substring(3));
        }

        static string Authority(string url)
        {
            Uri u;
            return Uri.TryCreate(url, UriKind.Absolute, out u) ? u.Host + ":" + u.Port.ToString(CultureInfo.InvariantCulture) : url;
        }

        /// <summary>
        /// Events waiting for <see cref="Poll"/>, in arrays reused from poll to poll (they grow only
        /// while a bigger backlog than any before builds up): at most
        /// <see cref="MaxQueuedEvents"/>; past that, nobody is draining, whatever is queued is stale
        /// and one Gap replaces it all.
        /// </summary>
        sealed class EventQueue
        {
            struct Event
            {
                internal ChangeKind Kind;
                internal ChunkKey Chunk;
                internal ulong Previous, Version, Seq;
                internal int FirstEdit, EditCount;
            }

            Event[] queue = new Event[64];
            int head, tail;
            ushort[] editIndex = new ushort[1024];
            int[] editValue = new int[1024];
            int editHead, editTail;

            internal int Count { get { return tail - head; } }

            internal void Clear()
            {
                head = tail = editHead = editTail = 0;
            }

            internal void Push(ChangeKind kind)
            {
                if (!Room(0)) return;
                queue[tail++] = new Event { Kind = kind };
            }

            internal void PushChange(ref ParsedChange c, ChangeBatch batch)
            {
                int n = Math.Max(0, c.EditCount);
                if (!Room(n)) return;
                var e = new Event
                {
                    Kind = c.EditCount < 0 ? ChangeKind.Refetch : ChangeKind.Edits,
                    Chunk = c.Chunk,
                    Previous = c.Previous,
                    Version = c.Version,
                    Seq = c.Seq,
                    FirstEdit = editTail,
                    EditCount = n,
                };
                Array.Copy(batch.EditIndex, c.FirstEdit, editIndex, editTail, n);
                Array.Copy(batch.EditValue, c.FirstEdit, editValue, editTail, n);
                editTail += n;
                queue[tail++] = e;
            }

            // Room for one more event with `edits` edits; false when the queue overflowed (it then
            // holds one Gap).
            bool Room(int edits)
            {
                if (tail - head >= MaxQueuedEvents)
                {
                    Clear();
                    queue[tail++] = new Event { Kind = ChangeKind.Gap };
                    return false;
                }
                if (tail == queue.Length)
                {
                    if (head > 0) Compact();
                    else Array.Resize(ref queue, queue.Length * 2);
                }
                if (editTail + edits > editIndex.Length)
                {
                    if (editHead > 0) Compact();
                    if (editTail + edits > editIndex.Length)
                    {
                        int size = Math.Max(editIndex.Length * 2, editTail + edits);
                        Array.Resize(ref editIndex, size);
                        Array.Resize(ref editValue, size);
                    }
                }
                return true;
            }

            void Compact()
            {
                int n = tail - head;
                Array.Copy(queue, head, queue, 0, n);
                head = 0;
                tail = n;
                int m = editTail - editHead;
                Array.Copy(editIndex, editHead, editIndex, 0, m);
                Array.Copy(editValue, editHead, editValue, 0, m);
                for (int i = 0; i < n; i++) queue[i].FirstEdit -= editHead;
                editHead = 0;
                editTail = m;
            }

            internal int Drain(ChunkChange[] changes, CubeEdit[] edits, string world, Floors floors, out int editCount)
            {
                int n = 0, e = 0;
                while (head < tail && n < changes.Length)
                {
                    Event ev = queue[head];
                    bool change = ev.Kind == ChangeKind.Edits || ev.Kind == ChangeKind.Refetch;
                    // A fetch answered since this change was queued may hold a newer copy already.
                    if (change && world != null && !floors.StillNews(world, ev.Chunk, ev.Seq))
                    {
                        Take(ev);
                        continue;
                    }
                    if (e + ev.EditCount > edits.Length) break;
                    for (int i = 0; i < ev.EditCount; i++)
                        edits[e + i] = new CubeEdit { Chunk = ev.Chunk, Index = editIndex[ev.FirstEdit + i], Value = editValue[ev.FirstEdit + i] };
                    changes[n] = new ChunkChange
                    {
                        Chunk = ev.Chunk,
                        Kind = ev.Kind,
                        Previous = ev.Previous,
                        Version = ev.Version,
                        FirstEdit = (uint)e,
                        EditCount = (uint)ev.EditCount,
                    };
                    n++;
                    e += ev.EditCount;
                    Take(ev);
                }
                if (head == tail) Clear();
                editCount = e;
                return n;
            }

            void Take(Event ev)
            {
                head++;
                if (ev.EditCount > 0) editHead = ev.FirstEdit + ev.EditCount;
            }
        }
    }
}
