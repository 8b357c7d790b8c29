// Compiled with -define:UNITY_WEBGL (as a WebGL player build compiles the package) and run under
// Mono: the assembly must declare no P/Invoke at all (a WebGL build would fail to link
// "undefined symbol: cw_..."), a client must work through the managed transport, and a blocking
// call must fail with a clear PlatformNotSupportedException.
using System;
using System.Reflection;
using CubeWalk;

static class WebGLCheck
{
    static int Main()
    {
        int pinvokes = 0;
        foreach (Type t in typeof(CubeWalkClient).Assembly.GetTypes())
            foreach (MethodInfo m in t.GetMethods(BindingFlags.Static | BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
                if ((m.Attributes & MethodAttributes.PinvokeImpl) != 0)
                {
                    Console.WriteLine("P/Invoke in a WebGL build: " + t.FullName + "." + m.Name);
                    pinvokes++;
                }
        if (pinvokes > 0) return 1;
        // A client works through the managed transport: begin needs no native code; blocking
        // calls are refused (a WebGL build has one thread and cannot wait).
        var client = new CubeWalkClient("http://127.0.0.1:9/prod/cubewalkblocks", "webgl-check-token");
        var keys = new[] { new ChunkKey(0, 0, 0) };
        var request = client.BeginFetch("default", keys, new[] { CubeWalkClient.NoVersion }, new[] { new int[4096] }, new byte[1]);
        client.Cancel(request);
        try
        {
            client.FetchBlocks("default", keys, new[] { CubeWalkClient.NoVersion }, new[] { new int[4096] });
            Console.WriteLine("a blocking call ran in a WebGL build");
            return 1;
        }
        catch (PlatformNotSupportedException e)
        {
            Console.WriteLine("webgl: no P/Invoke; requests go through the managed transport; a blocking call says: " + e.Message);
        }
        client.Dispose();
        return 0;
    }
}
