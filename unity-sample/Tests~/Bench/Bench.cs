// Fetch throughput and managed allocations: CubeWalkClient versus what a Unity developer would
// write by hand (HttpClient + JSON parsing + decoding into int[]), against the same gateway in
// one run. Usage: mono Bench.exe <endpoint> <token> <seconds-per-row>
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.IO.Compression;
using System.Net.Http;
using System.Runtime.Serialization;
using System.Runtime.Serialization.Json;
using System.Text;
using CubeWalk;

[DataContract] class Entry { [DataMember] public int[] key; [DataMember] public ulong version; [DataMember] public string data; }
[DataContract] class Answer { [DataMember] public string world; [DataMember] public Entry[] chunks; }

static class HandWritten
{
    static readonly DataContractJsonSerializer Json = new DataContractJsonSerializer(typeof(Answer));

    /// The straightforward hand-written client: GET, parse JSON, base64, inflate, run-length decode.
    public static void Fetch(HttpClient http, string url, string token, int[][] buffers)
    {
        var req = new HttpRequestMessage(HttpMethod.Get, url);
        req.Headers.Add("token", token);
        var resp = http.SendAsync(req).Result;
        resp.EnsureSuccessStatusCode();
        var stream = resp.Content.ReadAsStreamAsync().Result;
        var answer = (Answer)Json.ReadObject(stream);
        for (int i = 0; i < answer.chunks.Length; i++) Decode(Convert.FromBase64String(answer.chunks[i].data), buffers[i]);
    }

    static void Decode(byte[] blob, int[] output)
    {
        if (blob.Length == 0) { Array.Clear(output, 0, output.Length); return; }
        if (blob[0] == 2) { Buffer.BlockCopy(blob, 1, output, 0, 16384); return; }
        var rle = new MemoryStream();
        using (var inflate = new DeflateStream(new MemoryStream(blob, 1, blob.Length - 1), CompressionMode.Decompress))
            inflate.CopyTo(rle);
        byte[] r = rle.GetBuffer();
        int pos = 0, filled = 0, end = (int)rle.Length;
        while (pos < end)
        {
            long run = Varint(r, ref pos);
            uint zz = (uint)Varint(r, ref pos);
            int value = (int)(zz >> 1) ^ -(int)(zz & 1);
            for (long k = 0; k < run; k++) output[filled++] = value;
        }
    }

    static long Varint(byte[] b, ref int pos)
    {
        long v = 0;
        for (int shift = 0; ; shift += 7)
        {
            byte x = b[pos++];
            v |= (long)(x & 0x7f) << shift;
            if ((x & 0x80) == 0) return v;
        }
    }
}

static class Program
{
    static void Main(string[] args)
    {
        string endpoint = args[0], token = args[1];
        double seconds = double.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture);
        var client = new CubeWalkClient(endpoint, token);
        var managedClient = new CubeWalkClient(endpoint, token, new CubeWalkOptions { Transport = CubeWalkTransport.Managed });
        var terrain = CubeWalk.Tests.Fixtures.Terrain();
        var keys = new ChunkKey[27];
        for (int i = 0; i < 27; i++)
        {
            keys[i] = new ChunkKey(i % 3, i / 9, (i / 3) % 3);
            var edits = new CubeEdit[4096];
            for (int j = 0; j < 4096; j++) edits[j] = new CubeEdit { Chunk = keys[i], Index = (uint)j, Value = terrain[j] };
            client.PutBlocks("bench", edits, new ChunkVersion[1]);
        }
        var http = new HttpClient();
        foreach (int n in new[] { 1, 27 })
        {
            var nkeys = new ChunkKey[n];
            Array.Copy(keys, nkeys, n);
            var buffers = new int[n][];
            for (int i = 0; i < n; i++) buffers[i] = new int[4096];
            var versions = new ulong[n];
            var changed = new byte[n];
            var sb = new StringBuilder(endpoint + "?world=bench&chunks=");
            for (int i = 0; i < n; i++) sb.Append(i == 0 ? "" : ";").Append(nkeys[i].X + "," + nkeys[i].Y + "," + nkeys[i].Z);
            string url = sb.ToString();

            // Both run in alternating slices so they see the same machine.
            double sdkFetches = 0, sdkTime = 0, handFetches = 0, handTime = 0, pollFetches = 0, pollTime = 0;
            double sdkCpu = 0, handCpu = 0, pollCpu = 0, managedFetches = 0, managedTime = 0, managedCpu = 0;
            long sdkBytes = 0, handBytes = 0, pollBytes = 0, managedBytes = 0;
            var request = new FetchRequest();
            for (int slice = 0; slice < 6; slice++)
            {
                Measure(seconds / 6, () =>
                {
                    for (int i = 0; i < n; i++) versions[i] = CubeWalkClient.NoVersion;
                    client.FetchBlocks("bench", nkeys, versions, buffers, changed);
                }, ref sdkFetches, ref sdkTime, ref sdkBytes, ref sdkCpu);
                Measure(seconds / 6, () => HandWritten.Fetch(http, url, token, buffers), ref handFetches, ref handTime, ref handBytes, ref handCpu);
                Measure(seconds / 6, () =>
                {
                    // The game-loop path: begin (reusing the request object), then poll every "frame".
                    for (int i = 0; i < n; i++) versions[i] = CubeWalkClient.NoVersion;
                    client.BeginFetch("bench", nkeys, versions, buffers, changed, null, request);
                    while (!request.IsDone) client.Update();
                }, ref pollFetches, ref pollTime, ref pollBytes, ref pollCpu);
                Measure(seconds / 6, () =>
                {
                    // The WebGL path (HttpClient here, UnityWebRequest in a build), polled.
                    for (int i = 0; i < n; i++) versions[i] = CubeWalkClient.NoVersion;
                    managedClient.BeginFetch("bench", nkeys, versions, buffers, changed, null, request);
                    while (!request.IsDone) { managedClient.Update(); System.Threading.Thread.Sleep(0); }
                }, ref managedFetches, ref managedTime, ref managedBytes, ref managedCpu);
            }
            if (buffers[0][0] != terrain[0] || buffers[0][4095] != terrain[4095]) throw new Exception("wrong data");
            double sdkRate = sdkFetches / sdkTime, handRate = handFetches / handTime;
            // Data, one row per client: chunks, client, fetches per second, managed bytes per
            // fetch. The Rust benchmark renders the table and the ratios from these.
            Row(n, "sdk-blocking", sdkRate, sdkBytes / sdkFetches, sdkCpu / sdkFetches);
            Row(n, "sdk-polled", pollFetches / pollTime, pollBytes / pollFetches, pollCpu / pollFetches);
            Row(n, "hand-written", handRate, handBytes / handFetches, handCpu / handFetches);
            Row(n, "sdk-managed", managedFetches / managedTime, managedBytes / managedFetches, managedCpu / managedFetches);
        }
        client.Dispose();
        managedClient.Dispose();

        // Update() with requests in flight and nothing finished: a listener that accepts and
        // never answers holds them.
        var silent = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        silent.Start();
        int port = ((System.Net.IPEndPoint)silent.LocalEndpoint).Port;
        var held = new CubeWalkClient("http://127.0.0.1:" + port + "/prod/cubewalkblocks", token,
            new CubeWalkOptions { TimeoutMs = 600000, MaxInFlight = 64 });
        var c2 = System.Globalization.CultureInfo.InvariantCulture;
        foreach (int inFlight in new[] { 0, 1, 16 })
            Console.WriteLine("update\t" + inFlight + "\t" + UpdateMicros(held, inFlight, keys[0]).ToString("F2", c2));
        held.Dispose();
        silent.Stop();
    }

    static void Row(int chunks, string client, double rate, double bytes, double cpuSeconds)
    {
        var c = System.Globalization.CultureInfo.InvariantCulture;
        Console.WriteLine(chunks + "\t" + client + "\t" + rate.ToString("F1", c) + "\t" + bytes.ToString("F1", c)
            + "\t" + (cpuSeconds * 1e6).ToString("F1", c));
    }

    // Process CPU time: what the game pays, the native library's own threads and the thread
    // pool's included (the gateway runs in another process).
    static double CpuSeconds() { return Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds; }

    static void Measure(double seconds, Action fetch, ref double count, ref double time, ref long bytes, ref double cpu)
    {
        fetch(); // warm
        // The CPU clock is read outside the allocation window (reading it allocates).
        double cpuBefore = CpuSeconds();
        var sw = Stopwatch.StartNew();
        long before = GC.GetAllocatedBytesForCurrentThread();
        int done = 0;
        while (sw.Elapsed.TotalSeconds < seconds) { fetch(); done++; }
        bytes += GC.GetAllocatedBytesForCurrentThread() - before;
        cpu += CpuSeconds() - cpuBefore;
        time += sw.Elapsed.TotalSeconds;
        count += done;
    }

    /// <summary>Main-thread cost of one Update() with <paramref name="inFlight"/> requests in
    /// flight and none finished: fetches held by a gateway answer that cannot come (the requests
    /// go to a listener that accepts and never answers). Median over many calls, in µs.</summary>
    static double UpdateMicros(CubeWalkClient client, int inFlight, ChunkKey key)
    {
        var requests = new FetchRequest[inFlight];
        for (int i = 0; i < inFlight; i++)
            requests[i] = client.BeginFetch("bench", new[] { key }, new[] { CubeWalkClient.NoVersion },
                new[] { new int[4096] }, new byte[1]);
        for (int i = 0; i < 1000; i++) client.Update(); // warm
        var samples = new double[20000];
        for (int i = 0; i < samples.Length; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            client.Update();
            samples[i] = (Stopwatch.GetTimestamp() - t0) * 1e6 / Stopwatch.Frequency;
        }
        foreach (var r in requests) client.Cancel(r);
        Array.Sort(samples);
        return samples[samples.Length / 2];
    }
}
