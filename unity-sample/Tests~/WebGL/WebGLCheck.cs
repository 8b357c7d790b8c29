// Compiled with -define:UNITY_WEBGL (as a WebGL player build compiles the package) and run under
// Mono: the assembly must declare no P/Invoke at all (a WebGL build would fail to link
// "undefined symbol: cw_..."), and using the client must fail with a clear
// PlatformNotSupportedException instead.
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
        try
        {
            new CubeWalkClient("http://127.0.0.1:3000/prod/cubewalkblocks", "webgl-check-token");
            Console.WriteLine("a client was created in a WebGL build");
            return 1;
        }
        catch (PlatformNotSupportedException e)
        {
            Console.WriteLine("webgl: no P/Invoke; a client says: " + e.Message);
            return 0;
        }
    }
}
