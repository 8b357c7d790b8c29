using System;
using System.Collections.Generic;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;

namespace CubeWalk.Managed
{
    /// <summary>Where a WebSocket bridge stands.</summary>
    internal enum BridgeState
    {
        /// <summary>Opening (the upgrade request is on its way).</summary>
        Connecting,
        /// <summary>Open: bytes go both ways.</summary>
        Open,
        /// <summary>Closed, or never opened (see <see cref="IWebSocketBridge.HandshakeStatus"/>);
        /// bytes received before are still readable.</summary>
        Closed,
    }

    /// <summary>
    /// The one WebSocket the managed realtime follower speaks MQTT over (subprotocol <c>mqtt</c>,
    /// binary frames), polled: nothing calls back. Frame boundaries do not matter to MQTT, so
    /// received frames come out as one byte stream. The follower uses it only from its pump (the
    /// main thread in Unity): in WebGL builds the browser's WebSocket through
    /// <c>Plugins/WebGL/CubeWalkWebSocket.jslib</c>, elsewhere
    /// <see cref="System.Net.WebSockets.ClientWebSocket"/>.
    /// </summary>
    internal interface IWebSocketBridge
    {
        /// <summary>Starts opening <paramref name="url"/>; returns at once.</summary>
        void Open(string url);
        /// <summary>Where it stands.</summary>
        BridgeState State { get; }
        /// <summary>When it closed without opening: the HTTP status the server answered the upgrade
        /// with, when the runtime says; -1 when the server answered but the runtime does not say
        /// with what (browsers never do; older Mono does not); 0 when no answer came (unreachable).</summary>
        int HandshakeStatus { get; }
        /// <summary>Why it closed or failed, or null (never holding the URL's token: the follower
        /// scrubs it anyway).</summary>
        string Error { get; }
        /// <summary>Copies up to <paramref name="count"/> received bytes into
        /// <paramref name="buffer"/> at <paramref name="offset"/>; how many (0: none waiting).</summary>
        int Read(byte[] buffer, int offset, int count);
        /// <summary>Sends the bytes as one binary frame (copied before it returns); false when it is
        /// not open.</summary>
        bool Send(byte[] data, int offset, int count);
        /// <summary>Closes it (what was sent before goes out first when the runtime allows); reads
        /// answer 0 afterwards.</summary>
        void Close();
    }

    /// <summary>The bridge this build uses.</summary>
    internal static class WebSocketBridges
    {
        /// <summary>A new, unopened bridge: the browser's WebSocket in WebGL players, ClientWebSocket elsewhere.</summary>
        internal static IWebSocketBridge Create()
        {
#if UNITY_WEBGL && !UNITY_EDITOR
            return new BrowserWebSocketBridge();
#else
            return new ClientWebSocketBridge();
#endif
        }
    }

#if UNITY_WEBGL && !UNITY_EDITOR
    /// <summary>
    /// The browser's WebSocket, through <c>Plugins/WebGL/CubeWalkWebSocket.jslib</c>: opened with
    /// subprotocol <c>mqtt</c> and binaryType arraybuffer; its frames wait in JavaScript until
    /// <see cref="Read"/> copies them into the managed buffer, once per frame. No callback into
    /// managed code. A browser never says why an upgrade failed (a 401 and an unreachable host look
    /// the same), so a failed open is <see cref="HandshakeStatus"/> -1.
    /// </summary>
    internal sealed unsafe class BrowserWebSocketBridge : IWebSocketBridge
    {
        // The jslib's states.
        const int JsConnecting = 0, JsOpen = 1, JsClosed = 2, JsFailed = 3, JsOverflow = 4;

        [DllImport("__Internal")] static extern int CubeWalkWebSocket_Open(string url);
        [DllImport("__Internal")] static extern int CubeWalkWebSocket_State(int socket);
        [DllImport("__Internal")] static extern int CubeWalkWebSocket_CloseCode(int socket);
        [DllImport("__Internal")] static extern int CubeWalkWebSocket_Send(int socket, byte* data, int length);
        [DllImport("__Internal")] static extern int CubeWalkWebSocket_Receive(int socket, byte* buffer, int capacity);
        [DllImport("__Internal")] static extern void CubeWalkWebSocket_Close(int socket);

        int socket;
        int last = JsConnecting;
        // The browser refused the URL itself (mixed content: ws:// from an https:// page).
        bool refusedUrl;

        public void Open(string url)
        {
            socket = CubeWalkWebSocket_Open(url);
            if (socket > 0) return;
            refusedUrl = true;
            last = JsClosed;
        }

        int Js()
        {
            if (socket > 0)
            {
                int s = CubeWalkWebSocket_State(socket);
                last = s < 0 ? JsClosed : s;
            }
            return last;
        }

        public BridgeState State
        {
            get
            {
                int s = Js();
                return s == JsConnecting ? BridgeState.Connecting : s == JsOpen ? BridgeState.Open : BridgeState.Closed;
            }
        }

        public int HandshakeStatus { get { return !refusedUrl && Js() == JsFailed ? -1 : 0; } }

        public string Error
        {
            get
            {
                if (refusedUrl) return "the browser refused to open the URL (from an https:// page, use wss://)";
                switch (Js())
                {
                    case JsFailed: return "the browser could not open the WebSocket (it does not say why)";
                    case JsOverflow: return "too many bytes received and not read";
                    case JsClosed:
                        return socket > 0 ? "closed (code " + CubeWalkWebSocket_CloseCode(socket).ToString(CultureInfo.InvariantCulture) + ")" : "closed";
                    default: return null;
                }
            }
        }

        public int Read(byte[] buffer, int offset, int count)
        {
            if (socket <= 0 || count <= 0) return 0;
            fixed (byte* p = buffer) return CubeWalkWebSocket_Receive(socket, p + offset, count);
        }

        public bool Send(byte[] data, int offset, int count)
        {
            if (socket <= 0) return false;
            fixed (byte* p = data) return CubeWalkWebSocket_Send(socket, p + offset, count) == 1;
        }

        public void Close()
        {
            if (socket > 0) CubeWalkWebSocket_Close(socket);
            socket = 0;
            last = JsClosed;
        }
    }
#else
    /// <summary>
    /// <see cref="System.Net.WebSockets.ClientWebSocket"/> (every build but WebGL players): its
    /// asynchronous connect, receive and send run on the thread pool, as the runtime does them;
    /// received bytes wait in a buffer of this bridge (at most 4 MB unread, then it closes with an
    /// error) for <see cref="Read"/>. A runtime whose handshake error names the HTTP status (newer
    /// .NET) gives it; Mono's says only that the server answered otherwise than 101
    /// (<see cref="HandshakeStatus"/> -1).
    /// </summary>
    internal sealed class ClientWebSocketBridge : IWebSocketBridge
    {
        const int MaxUnread = 4 * 1024 * 1024;
        readonly object sync = new object();
        readonly CancellationTokenSource cancel = new CancellationTokenSource();
        System.Net.WebSockets.ClientWebSocket socket;
        // Received and not yet read: a ring.
        byte[] ring = new byte[64 * 1024];
        int ringStart, ringCount;
        // Sends wait here for the one send the socket allows at a time.
        readonly Queue<byte[]> outgoing = new Queue<byte[]>();
        bool sending, closing;
        BridgeState state = BridgeState.Connecting;
        int status;
        string error;

        public void Open(string url)
        {
            var uri = new Uri(url);
            socket = new System.Net.WebSockets.ClientWebSocket();
            socket.Options.AddSubProtocol("mqtt");
            Task.Run(() => Run(uri));
        }

        public BridgeState State { get { lock (sync) return state; } }
        public int HandshakeStatus { get { lock (sync) return status; } }
        public string Error { get { lock (sync) return error; } }

        async Task Run(Uri uri)
        {
            try
            {
                await socket.ConnectAsync(uri, cancel.Token).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                Handshake(e);
                return;
            }
            lock (sync)
            {
                if (state != BridgeState.Connecting) return;
                state = BridgeState.Open;
            }
            var buffer = new byte[16 * 1024];
            try
            {
                while (true)
                {
                    var segment = new ArraySegment<byte>(buffer);
                    System.Net.WebSockets.WebSocketReceiveResult r = await socket.ReceiveAsync(segment, cancel.Token).ConfigureAwait(false);
                    if (r.MessageType == System.Net.WebSockets.WebSocketMessageType.Close)
                    {
                        Closed("closed by the server" + (r.CloseStatus.HasValue ? " (code " + (int)r.CloseStatus.Value + ")" : ""));
                        return;
                    }
                    // A text frame is not MQTT: ignored, as the native follower does.
                    if (r.MessageType != System.Net.WebSockets.WebSocketMessageType.Binary) continue;
                    bool overflow;
                    lock (sync)
                    {
                        if (state != BridgeState.Open) return;
                        overflow = !Append(buffer, r.Count);
                        if (overflow)
                        {
                            state = BridgeState.Closed;
                            error = "more than " + (MaxUnread >> 20) + " MB received and not read";
                        }
                    }
                    if (overflow)
                    {
                        Abort();
                        return;
                    }
                }
            }
            catch (Exception e)
            {
                Closed(Describe(e));
            }
        }

        void Handshake(Exception e)
        {
            Exception x = e is AggregateException && e.InnerException != null ? e.InnerException : e;
            lock (sync)
            {
                if (state == BridgeState.Closed) return;
                state = BridgeState.Closed;
                status = StatusIn(x.Message);
                // Mono's ClientWebSocket throws a bare WebSocketException when the answer was not
                // 101 ("Unable to connect to the remote server", no inner exception); a transport
                // failure carries its cause.
                if (status == 0 && x is System.Net.WebSockets.WebSocketException && x.InnerException == null) status = -1;
                error = Describe(x);
            }
        }

        // "... status code '401' ..." (newer .NET's message); 0 when absent.
        static int StatusIn(string message)
        {
            if (message == null) return 0;
            int at = message.IndexOf("status code '", StringComparison.Ordinal);
            if (at < 0) return 0;
            at += 13;
            int end = at;
            while (end < message.Length && char.IsDigit(message[end])) end++;
            int s;
            return end > at && int.TryParse(message.Substring(at, end - at), NumberStyles.None, CultureInfo.InvariantCulture, out s) ? s : 0;
        }

        static string Describe(Exception e)
        {
            string m = e.Message;
            for (Exception inner = e.InnerException; inner != null; inner = inner.InnerException)
                m += ": " + inner.Message;
            return m;
        }

        void Closed(string why)
        {
            lock (sync)
            {
                if (state == BridgeState.Closed) return;
                state = BridgeState.Closed;
                error = why;
            }
        }

        // Under the lock.
        bool Append(byte[] data, int count)
        {
            if (ringCount + count > MaxUnread) return false;
            if (ringCount + count > ring.Length)
            {
                var bigger = new byte[Math.Min(MaxUnread, Math.Max(ring.Length * 2, ringCount + count))];
                CopyOut(bigger, 0, ringCount);
                ring = bigger;
                ringStart = 0;
            }
            int tail = (ringStart + ringCount) % ring.Length;
            int first = Math.Min(count, ring.Length - tail);
            Buffer.BlockCopy(data, 0, ring, tail, first);
            Buffer.BlockCopy(data, first, ring, 0, count - first);
            ringCount += count;
            return true;
        }

        // Under the lock: moves n bytes from the ring's start into `into` (without consuming them).
        void CopyOut(byte[] into, int offset, int n)
        {
            int first = Math.Min(n, ring.Length - ringStart);
            Buffer.BlockCopy(ring, ringStart, into, offset, first);
            Buffer.BlockCopy(ring, 0, into, offset + first, n - first);
        }

        public int Read(byte[] buffer, int offset, int count)
        {
            lock (sync)
            {
                int n = Math.Min(count, ringCount);
                if (n <= 0) return 0;
                CopyOut(buffer, offset, n);
                ringStart = (ringStart + n) % ring.Length;
                ringCount -= n;
                if (ringCount == 0) ringStart = 0;
                return n;
            }
        }

        public bool Send(byte[] data, int offset, int count)
        {
            var copy = new byte[count];
            Buffer.BlockCopy(data, offset, copy, 0, count);
            lock (sync)
            {
                if (state != BridgeState.Open || closing) return false;
                outgoing.Enqueue(copy);
                if (sending) return true;
                sending = true;
            }
            Task.Run(SendAll);
            return true;
        }

        // One send at a time, in order; then, once closing, the close handshake.
        async Task SendAll()
        {
            while (true)
            {
                byte[] next;
                lock (sync)
                {
                    if (outgoing.Count == 0)
                    {
                        sending = false;
                        if (!closing) return;
                        next = null;
                    }
                    else next = outgoing.Dequeue();
                }
                if (next == null)
                {
                    await CloseGracefully().ConfigureAwait(false);
                    return;
                }
                try
                {
                    await socket.SendAsync(new ArraySegment<byte>(next), System.Net.WebSockets.WebSocketMessageType.Binary, true, cancel.Token)
                        .ConfigureAwait(false);
                }
                catch (Exception e)
                {
                    Closed(Describe(e));
                    lock (sync)
                    {
                        outgoing.Clear();
                        sending = false;
                    }
                    Abort();
                    return;
                }
            }
        }

        public void Close()
        {
            bool wasOpen, closeNow;
            lock (sync)
            {
                if (closing) return;
                closing = true;
                wasOpen = state == BridgeState.Open;
                state = BridgeState.Closed;
                ringCount = 0;
                if (error == null) error = "closed";
                closeNow = wasOpen && !sending;
                // Still connecting (or already failed): nothing to say goodbye on.
                if (!wasOpen) outgoing.Clear();
            }
            if (!wasOpen) Abort();
            else if (closeNow) Task.Run(CloseGracefully);
        }

        async Task CloseGracefully()
        {
            try
            {
                using (var timeout = new CancellationTokenSource(1000))
                    await socket.CloseOutputAsync(System.Net.WebSockets.WebSocketCloseStatus.NormalClosure, "", timeout.Token).ConfigureAwait(false);
            }
            catch (Exception)
            {
                // Gone already: abort below.
            }
            Abort();
        }

        void Abort()
        {
            try
            {
                cancel.Cancel();
                System.Net.WebSockets.ClientWebSocket s = socket;
                if (s != null)
                {
                    s.Abort();
                    s.Dispose();
                }
            }
            catch (Exception)
            {
                // Closing is best effort; nothing must reach the game.
            }
        }
    }
#endif
}
