// A working stand-in for UnityWebRequest: real HTTP underneath (HttpClient on the thread pool), and
// Unity's rule enforced: creating, configuring, sending, reading, aborting or disposing a request
// off the main thread (TestEngine.BecomeMainThread) throws InvalidOperationException, as Unity
// does. TestEngine counts the requests created and those not yet disposed, so tests can check
// that none leaks. Signatures follow Unity's.
using System;
using System.Collections.Generic;
using System.Net.Http;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace UnityEngine
{
    public static partial class TestEngine
    {
        static int webRequestsCreated, liveWebRequests;

        /// <summary>UnityWebRequests constructed so far.</summary>
        public static int WebRequestsCreated { get { return Volatile.Read(ref webRequestsCreated); } }

        /// <summary>UnityWebRequests constructed and not yet disposed.</summary>
        public static int LiveWebRequests { get { return Volatile.Read(ref liveWebRequests); } }

        internal static void WebRequestCreated()
        {
            Interlocked.Increment(ref webRequestsCreated);
            Interlocked.Increment(ref liveWebRequests);
        }

        internal static void WebRequestDisposed() { Interlocked.Decrement(ref liveWebRequests); }

        static TaskCompletionSource<bool> held;

        /// <summary>While true, answers that arrive are kept from their UnityWebRequests (isDone
        /// stays false, Abort still ends them) until it is set back to false: a test sees a
        /// request in flight however fast the gateway answers and however long the machine
        /// pauses the test's thread.</summary>
        public static bool HoldWebResponses
        {
            get { return Volatile.Read(ref held) != null; }
            set
            {
                if (value)
                    Interlocked.CompareExchange(ref held, new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously), null);
                else
                {
                    TaskCompletionSource<bool> h = Interlocked.Exchange(ref held, null);
                    if (h != null) h.SetResult(true);
                }
            }
        }

        /// <summary>Completes once answers are no longer held.</summary>
        internal static Task WebResponsesReleased()
        {
            TaskCompletionSource<bool> h = Volatile.Read(ref held);
            return h == null ? Task.CompletedTask : h.Task;
        }
    }
}

namespace UnityEngine.Networking
{
    public class DownloadHandler : IDisposable
    {
        internal volatile byte[] received;

        public string text
        {
            get
            {
                TestEngine.RequireMainThread("DownloadHandler.text");
                byte[] b = received;
                return b == null ? "" : Encoding.UTF8.GetString(b);
            }
        }

        public void Dispose() { }
    }

    public sealed class DownloadHandlerBuffer : DownloadHandler { }

    public class UploadHandler : IDisposable
    {
        internal byte[] payload;
        public void Dispose() { }
    }

    public sealed class UploadHandlerRaw : UploadHandler
    {
        public UploadHandlerRaw(byte[] data) { payload = data; }
    }

    public sealed class UnityWebRequestAsyncOperation
    {
        internal UnityWebRequestAsyncOperation(UnityWebRequest request) { webRequest = request; }
        public UnityWebRequest webRequest { get; private set; }
    }

    public sealed class UnityWebRequest : IDisposable
    {
        public enum Result { InProgress, Success, ConnectionError, ProtocolError, DataProcessingError }

        static readonly HttpClient Http = new HttpClient { Timeout = System.Threading.Timeout.InfiniteTimeSpan };
        // redirectLimit 0: Unity answers the 3xx itself instead of following it.
        static readonly HttpClient NoRedirects = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false })
        {
            Timeout = System.Threading.Timeout.InfiniteTimeSpan
        };
        int redirects = 32;

        readonly string requestUrl, requestMethod;
        readonly Dictionary<string, string> headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        readonly object gate = new object();
        readonly CancellationTokenSource cancel = new CancellationTokenSource();
        DownloadHandler download;
        UploadHandler upload;
        int timeoutSeconds;
        bool sent, disposed;
        volatile bool timedOut;
        volatile bool finished;
        long code;
        Result outcome = Result.InProgress;
        string failure;

        public UnityWebRequest(string url, string method)
        {
            TestEngine.RequireMainThread("UnityWebRequest constructor");
            requestUrl = url;
            requestMethod = method;
            TestEngine.WebRequestCreated();
        }

        public string url { get { Check("url"); return requestUrl; } }
        public string method { get { Check("method"); return requestMethod; } }
        public DownloadHandler downloadHandler { get { Check("downloadHandler"); return download; } set { CheckUnsent("downloadHandler"); download = value; } }
        public UploadHandler uploadHandler { get { Check("uploadHandler"); return upload; } set { CheckUnsent("uploadHandler"); upload = value; } }
        public int timeout { get { Check("timeout"); return timeoutSeconds; } set { CheckUnsent("timeout"); timeoutSeconds = value; } }
        public int redirectLimit { get { Check("redirectLimit"); return redirects; } set { CheckUnsent("redirectLimit"); redirects = value; } }
        public bool isDone { get { Check("isDone"); return finished; } }
        public long responseCode { get { Check("responseCode"); lock (gate) return code; } }
        public Result result { get { Check("result"); lock (gate) return outcome; } }
        public string error { get { Check("error"); lock (gate) return failure; } }

        public void SetRequestHeader(string name, string value)
        {
            CheckUnsent("SetRequestHeader");
            headers[name] = value;
        }

        public UnityWebRequestAsyncOperation SendWebRequest()
        {
            CheckUnsent("SendWebRequest");
            sent = true;
            var message = new HttpRequestMessage(new HttpMethod(requestMethod), requestUrl);
            if (upload != null && upload.payload != null) message.Content = new ByteArrayContent(upload.payload);
            foreach (var h in headers)
            {
                if (message.Content != null && h.Key.Equals("content-type", StringComparison.OrdinalIgnoreCase))
                    message.Content.Headers.TryAddWithoutValidation(h.Key, h.Value);
                else
                    message.Headers.TryAddWithoutValidation(h.Key, h.Value);
            }
            if (timeoutSeconds > 0)
            {
                var t = new CancellationTokenSource(timeoutSeconds * 1000);
                t.Token.Register(() => { timedOut = true; cancel.Cancel(); });
            }
            Task.Run(() => Run(message));
            return new UnityWebRequestAsyncOperation(this);
        }

        async Task Run(HttpRequestMessage message)
        {
            try
            {
                using (HttpResponseMessage response = await (redirects == 0 ? NoRedirects : Http).SendAsync(message, cancel.Token).ConfigureAwait(false))
                {
                    byte[] body = await response.Content.ReadAsByteArrayAsync().ConfigureAwait(false);
                    int s = (int)response.StatusCode;
                    await TestEngine.WebResponsesReleased().ConfigureAwait(false);
                    if (download != null) download.received = body;
                    Finish(s, s >= 400 ? Result.ProtocolError : Result.Success, s >= 400 ? "HTTP/1.1 " + s + " " + response.ReasonPhrase : null);
                }
            }
            catch (Exception)
            {
                Finish(0, Result.ConnectionError, timedOut ? "Request timeout" : "Cannot connect to destination host");
            }
        }

        void Finish(long status, Result r, string e)
        {
            lock (gate)
            {
                if (finished) return;
                code = status;
                outcome = r;
                failure = e;
                finished = true;
            }
        }

        public void Abort()
        {
            Check("Abort");
            cancel.Cancel();
            Finish(0, Result.ConnectionError, "Request aborted");
        }

        public void Dispose()
        {
            TestEngine.RequireMainThread("UnityWebRequest.Dispose");
            if (disposed) return;
            disposed = true;
            cancel.Cancel();
            if (download != null) download.Dispose();
            if (upload != null) upload.Dispose();
            TestEngine.WebRequestDisposed();
        }

        void Check(string api)
        {
            TestEngine.RequireMainThread("UnityWebRequest." + api);
            if (disposed) throw new ObjectDisposedException("UnityWebRequest", "UnityWebRequest." + api + " used after Dispose");
        }

        void CheckUnsent(string api)
        {
            Check(api);
            if (sent) throw new InvalidOperationException("UnityWebRequest has already been sent; its " + api + " cannot change");
        }
    }
}
