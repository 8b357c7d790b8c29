using System;
using System.Threading;
using NUnit.Framework;

namespace CubeWalk.Tests
{
    /// <summary>What every fixture needs: the gateway run-tests.sh started, fresh chunk arrays, and
    /// a frame loop that pumps a client until a condition holds.</summary>
    static class TestSupport
    {
        /// <summary>The local gateway's blocks URL (CUBEWALK_TEST_ENDPOINT).</summary>
        public static string Endpoint { get { return Environment.GetEnvironmentVariable("CUBEWALK_TEST_ENDPOINT"); } }
        /// <summary>The local gateway's MQTT-over-WebSocket gate (same host, <c>/mqtt</c>).</summary>
        public static string RealtimeEndpoint
        {
            get { return Endpoint.Replace("http://", "ws://").Replace("/prod/cubewalkblocks", "/mqtt"); }
        }
        /// <summary>Its token (CUBEWALK_TEST_TOKEN).</summary>
        public static string Token { get { return Environment.GetEnvironmentVariable("CUBEWALK_TEST_TOKEN"); } }

        /// <summary>n chunk buffers of 4096 cubes.</summary>
        public static int[][] Buffers(int n)
        {
            var b = new int[n][];
            for (int i = 0; i < n; i++) b[i] = new int[4096];
            return b;
        }

        /// <summary>n "no version held" entries.</summary>
        public static ulong[] NoVersions(int n)
        {
            var v = new ulong[n];
            for (int i = 0; i < n; i++) v[i] = CubeWalkClient.NoVersion;
            return v;
        }

        /// <summary>Calls Update once a "frame" until <paramref name="done"/> (20 s at most).</summary>
        public static void PumpUntil(CubeWalkClient client, Func<bool> done)
        {
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (!done())
            {
                Assert.Less(DateTime.UtcNow, deadline, "request never completed");
                client.Update();
                Thread.Sleep(1);
            }
        }
    }
}
