using System;
using System.Net;
using System.Text;
using System.Threading;
using CubeWalk;
using NUnit.Framework;
using static CubeWalk.Tests.TestSupport;

namespace CubeWalk.Tests
{
    /// <summary>SetToken, the token statuses and the guest login, on the native plugin and on the
    /// managed (WebGL) transport, against the local gateway of run-tests.sh.</summary>
    [TestFixture(CubeWalkTransport.Native)]
    [TestFixture(CubeWalkTransport.Managed)]
    public class TokenTests
    {
        readonly CubeWalkTransport transport;

        /// <summary>The same suite on both transports.</summary>
        public TokenTests(CubeWalkTransport transport) { this.transport = transport; }

        CubeWalkOptions Options() { return new CubeWalkOptions { Transport = transport }; }

        static void Fetch(CubeWalkClient c)
        {
            c.FetchBlocks("mono-tokens", new[] { new ChunkKey(0, 0, 0) }, NoVersions(1), Buffers(1));
        }

        static CubeWalkStatus FetchStatus(CubeWalkClient c)
        {
            try
            {
                Fetch(c);
                return CubeWalkStatus.Ok;
            }
            catch (CubeWalkException e)
            {
                return e.Status;
            }
        }

        // A JWT (unsigned: the gateway refuses it whatever) whose exp is long past.
        static string ExpiredJwt()
        {
            Func<string, string> b64 = s => Convert.ToBase64String(Encoding.UTF8.GetBytes(s)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
            return b64("{\"alg\":\"EdDSA\",\"kid\":\"k1\"}") + "." + b64("{\"sub\":\"p\",\"exp\":1000}") + ".c2lnbmF0dXJl";
        }

        [Test]
        public void SetTokenReplacesTheTokenForTheNextRequest()
        {
            using (var c = new CubeWalkClient(Endpoint, "mono-wrong-token-1", Options()))
            {
                Assert.AreEqual(CubeWalkStatus.Unauthorized, FetchStatus(c), "a token that never worked");
                c.SetToken(Token);
                Fetch(c);
                // A non-blocking put begun after SetToken carries the new token too.
                var put = c.BeginPut("mono-tokens", new[] { new CubeEdit(new ChunkKey(0, 0, 0), 1, 2, 3, 4) }, new ChunkVersion[1]);
                TestSupport.PumpUntil(c, () => put.IsDone);
                Assert.AreEqual(CubeWalkStatus.Ok, put.Status, put.Error);

                // A bad token is refused and the good one stays.
                Assert.Throws<ArgumentNullException>(() => c.SetToken(null));
                var ex = Assert.Throws<CubeWalkException>(() => c.SetToken("bad\ntoken-value"));
                Assert.AreEqual(CubeWalkStatus.InvalidArgument, ex.Status);
                StringAssert.DoesNotContain("token-value", ex.Message);
                Fetch(c);

                // An expired JWT is TokenRefused (refresh it), and its text is in no message.
                string expired = ExpiredJwt();
                c.SetToken(expired);
                ex = Assert.Throws<CubeWalkException>(() => Fetch(c));
                Assert.AreEqual(CubeWalkStatus.TokenRefused, ex.Status);
                StringAssert.DoesNotContain(expired, ex.Message);
                c.SetToken(Token);
                Fetch(c);
            }
        }

        [Test]
        public void SetTokenBeforeInitIsNotInitialized()
        {
            var c = new CubeWalkClient(Endpoint, Token, Options());
            c.Shutdown();
            var ex = Assert.Throws<CubeWalkException>(() => c.SetToken(Token));
            Assert.AreEqual(CubeWalkStatus.NotInitialized, ex.Status);
            c.Dispose();
        }

        [Test]
        public void DeviceSecretsAreBase64UrlAndCheckedBeforeSending()
        {
            string a = CubeWalkClient.NewDeviceSecret(), b = CubeWalkClient.NewDeviceSecret();
            Assert.AreEqual(43, a.Length);
            Assert.AreNotEqual(a, b);
            StringAssert.IsMatch("^[A-Za-z0-9_-]{43}$", a);
            var ex = Assert.Throws<CubeWalkException>(() => CubeWalkClient.LoginGuest(Endpoint, "too-short", Options()));
            Assert.AreEqual(CubeWalkStatus.InvalidArgument, ex.Status);
            ex = Assert.Throws<CubeWalkException>(() => CubeWalkClient.BeginLoginGuest(Endpoint, "has spaces in it and is long enough", Options()));
            Assert.AreEqual(CubeWalkStatus.InvalidArgument, ex.Status);
            ex = Assert.Throws<CubeWalkException>(() => CubeWalkClient.LoginGuest("http://127.0.0.1:1/prod", a, Options()));
            Assert.AreEqual(CubeWalkStatus.InvalidArgument, ex.Status, "not a blocks or login URL");
        }

        /// <summary>A stand-in for POST /prod/cubewalklogin (the server side is being built at the
        /// same time) following its contract: it hands out the gateway's test token, 422
        /// invalid_request for secrets starting "bad", 429 rate_limited for "slow".</summary>
        sealed class LoginStandIn : IDisposable
        {
            readonly HttpListener listener = new HttpListener();
            internal readonly string Url;
            internal string LastBody;

            internal LoginStandIn()
            {
                int port = FreePort();
                listener.Prefixes.Add("http://127.0.0.1:" + port + "/");
                listener.Start();
                Url = "http://127.0.0.1:" + port + "/prod/cubewalkblocks";
                new Thread(Serve) { IsBackground = true }.Start();
            }

            static int FreePort()
            {
                var l = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
                l.Start();
                int port = ((IPEndPoint)l.LocalEndpoint).Port;
                l.Stop();
                return port;
            }

            void Serve()
            {
                while (listener.IsListening)
                {
                    HttpListenerContext ctx;
                    try { ctx = listener.GetContext(); } catch (Exception) { return; }
                    string body = new System.IO.StreamReader(ctx.Request.InputStream).ReadToEnd();
                    LastBody = body;
                    int status = 200;
                    string answer;
                    if (ctx.Request.HttpMethod != "POST" || ctx.Request.Url.AbsolutePath != "/prod/cubewalklogin" || ctx.Request.Headers["token"] != null)
                    {
                        status = 403;
                        answer = "{\"message\":\"Missing Authentication Token\"}";
                    }
                    else if (body.Contains("\"device_secret\":\"bad"))
                    {
                        status = 422;
                        answer = "{\"error\":{\"code\":\"invalid_request\",\"message\":\"bad secret\",\"request_id\":\"r1\"}}";
                    }
                    else if (body.Contains("\"device_secret\":\"slow"))
                    {
                        status = 429;
                        ctx.Response.AddHeader("Retry-After", "30");
                        answer = "{\"error\":{\"code\":\"rate_limited\",\"message\":\"too many logins\",\"request_id\":\"r2\"}}";
                    }
                    else
                    {
                        answer = "{\"token\":\"" + Token + "\",\"player\":\"guest-0123abcd\",\"role\":\"editor\",\"expires_at\":"
                            + (DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 3600) + ",\"expires_in\":3600}";
                    }
                    byte[] bytes = Encoding.UTF8.GetBytes(answer);
                    ctx.Response.StatusCode = status;
                    ctx.Response.ContentType = "application/json";
                    ctx.Response.OutputStream.Write(bytes, 0, bytes.Length);
                    ctx.Response.Close();
                }
            }

            public void Dispose() { listener.Close(); }
        }

        [Test]
        public void GuestLoginThenAClientWithItsToken()
        {
            using (var login = new LoginStandIn())
            {
                string secret = CubeWalkClient.NewDeviceSecret();
                GuestSession s = CubeWalkClient.LoginGuest(login.Url, secret, Options());
                Assert.AreEqual("guest-0123abcd", s.Player);
                Assert.AreEqual(3600, s.ExpiresIn);
                Assert.Greater(s.ExpiresAt, DateTimeOffset.UtcNow.ToUnixTimeSeconds());
                StringAssert.Contains("\"device_secret\":\"" + secret + "\"", login.LastBody);
                StringAssert.DoesNotContain(s.Token, s.ToString());
                using (var c = new CubeWalkClient(Endpoint, s.Token, Options())) Fetch(c);

                // Non-blocking, polled as a game would from its frame loop.
                GuestLoginRequest r = CubeWalkClient.BeginLoginGuest(login.Url, secret, Options());
                var deadline = DateTime.UtcNow.AddSeconds(10);
                while (!r.Poll() && DateTime.UtcNow < deadline) Thread.Sleep(5);
                Assert.AreEqual(CubeWalkStatus.Ok, r.Status, r.Error);
                Assert.AreEqual("guest-0123abcd", r.Session.Player);

                var ex = Assert.Throws<CubeWalkException>(() => CubeWalkClient.LoginGuest(login.Url, "bad-" + secret, Options()));
                Assert.AreEqual(CubeWalkStatus.BadRequest, ex.Status);
                StringAssert.DoesNotContain(secret, ex.Message);
                // Retry-After past the timeout: the native plugin gives up at once, the managed
                // transport does not retry; both say RateLimited.
                var quick = Options();
                quick.TimeoutMs = 2000;
                ex = Assert.Throws<CubeWalkException>(() => CubeWalkClient.LoginGuest(login.Url, "slow-" + secret, quick));
                Assert.AreEqual(CubeWalkStatus.RateLimited, ex.Status);
            }
        }

        [Test]
        public void StatusValuesAreAppendedAndNamedAsInTheHeader()
        {
            Assert.AreEqual(14, (int)CubeWalkStatus.RateLimited);
            Assert.AreEqual(15, (int)CubeWalkStatus.TokenRefused);
            Assert.AreEqual(16, (int)CubeWalkStatus.Banned);
            Assert.AreEqual(4, (int)RealtimeState.TokenRefused);
            // The managed transport maps answers as the native library does.
            string error;
            Assert.AreEqual(CubeWalkStatus.RateLimited, Managed.ManagedTransport.StatusOf(429, "rate_limited", "m", false, out error));
            Assert.AreEqual(CubeWalkStatus.ServerError, Managed.ManagedTransport.StatusOf(429, null, "Too Many Requests", false, out error));
            Assert.AreEqual(CubeWalkStatus.Banned, Managed.ManagedTransport.StatusOf(403, "banned", "m", false, out error));
            Assert.AreEqual(CubeWalkStatus.Forbidden, Managed.ManagedTransport.StatusOf(403, "forbidden", "m", false, out error));
            Assert.AreEqual(CubeWalkStatus.TokenRefused, Managed.ManagedTransport.StatusOf(401, null, "m", true, out error));
            Assert.AreEqual(CubeWalkStatus.Unauthorized, Managed.ManagedTransport.StatusOf(401, null, "m", false, out error));
            Assert.AreEqual("banned", Managed.ManagedTransport.Code("{\"error\":{\"code\":\"banned\",\"message\":\"x\"}}"));
            Assert.IsNull(Managed.ManagedTransport.Code("{\"message\":\"Forbidden\"}"));
        }
    }
}
