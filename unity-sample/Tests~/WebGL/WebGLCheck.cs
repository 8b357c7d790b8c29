// Compiled with -define:UNITY_WEBGL (as a WebGL player build compiles the package) and run under
// Mono: the assembly must declare no P/Invoke into a native library (a WebGL build would fail to
// link "undefined symbol: cw_..."): only [DllImport("__Internal")] functions that the package's
// jslib defines (the browser's WebSocket for realtime); a client must work through the managed
// transport, a blocking call must fail with a clear PlatformNotSupportedException, and realtime
// must start on the managed transport and, when the JavaScript side is missing (as here, no
// browser), report it without throwing into the frame.
using System;
using System.IO;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using CubeWalk;
using UnityEngine;

static class WebGLCheck
{
    static int Main(string[] args)
    {
        string jslib = File.ReadAllText(args[0]);
        int bad = 0, bridged = 0;
        foreach (Type t in typeof(CubeWalkClient).Assembly.GetTypes())
            foreach (MethodInfo m in t.GetMethods(BindingFlags.Static | BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
            {
                if ((m.Attributes & MethodAttributes.PinvokeImpl) == 0) continue;
                var import = (DllImportAttribute)Attribute.GetCustomAttribute(m, typeof(DllImportAttribute));
                string entry = import == null ? m.Name : import.EntryPoint ?? m.Name;
                if (import == null || import.Value != "__Internal")
                {
                    Console.WriteLine("P/Invoke into a native library in a WebGL build: " + t.FullName + "." + m.Name);
                    bad++;
                }
                else if (!Regex.IsMatch(jslib, @"^\s*" + Regex.Escape(entry) + @": function\s*\(", RegexOptions.Multiline))
                {
                    Console.WriteLine("[DllImport(\"__Internal\")] " + entry + " is not defined in CubeWalkWebSocket.jslib");
                    bad++;
                }
                else bridged++;
            }
        if (bad > 0) return 1;
        if (bridged == 0)
        {
            Console.WriteLine("no jslib function bound: the WebGL build has no browser WebSocket bridge");
            return 1;
        }
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
            Console.WriteLine("webgl: no P/Invoke but " + bridged + " jslib functions; requests go through the managed transport; a blocking call says: " + e.Message);
        }
        // Realtime starts on the managed transport; the player loop runs it. Without a browser the
        // jslib functions are missing: that is a problem reported, never an exception in a frame.
        TestEngine.BecomeMainThread();
        TestEngine.RunInitializeOnLoadMethods(typeof(CubeWalkClient).Assembly);
        client.StartRealtime("ws://127.0.0.1:9/mqtt");
        client.Follow("default", keys, 1);
        for (int i = 0; i < 5; i++) TestEngine.RunPlayerLoopOnce();
        if (client.RealtimeState != RealtimeState.Connecting || client.RealtimeProblem == null)
        {
            Console.WriteLine("realtime without the jslib: state " + client.RealtimeState + ", problem " + client.RealtimeProblem);
            return 1;
        }
        Console.WriteLine("webgl: realtime follows on the managed transport; without a browser it says: " + client.RealtimeProblem);
        client.Dispose();
        return 0;
    }
}
