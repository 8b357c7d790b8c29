using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;
using System.Threading;
using CubeWalk;
using NUnit.Framework;
using UnityEngine;

/// <summary>
/// The first hour in Unity, played under Mono: the sample scene's scripts (CubeWalkSample and
/// SampleFirstPerson, set up as the prefabs set them up) run frame after frame in the stand-in
/// engine against a fresh <c>cubewalk-server serve</c> of their own (seeded spawn area, realtime
/// on), with the player clicking, turning and walking. Each test names the first-hour defect it
/// guards against.
/// </summary>
[TestFixture]
public class FirstHourTests
{
    const float FrameSeconds = 1f / 30f;
    // Neighbourhood of the prefab's radius 1: at most this many chunk views (and meshes).
    const int Neighbourhood = 27;

    Process server;
    string endpoint, realtime, token;

    static string SampleDir([CallerFilePath] string here = "")
    {
        return Path.GetFullPath(Path.Combine(Path.GetDirectoryName(here), "..", "..", "Samples~", "ChunkStreaming"));
    }

    [TestFixtureSetUp]
    public void StartServer()
    {
        token = "first-hour-" + Guid.NewGuid().ToString("N");
        server = StartServe("127.0.0.1:0", token, out endpoint, out realtime);
    }

    /// <summary>A fresh <c>cubewalk-server serve</c> on <paramref name="bind"/> (its default
    /// starting terrain included), with the URLs it printed.</summary>
    static Process StartServe(string bind, string withToken, out string http, out string ws)
    {
        string binary = Environment.GetEnvironmentVariable("CUBEWALK_TEST_SERVER");
        Assert.IsFalse(string.IsNullOrEmpty(binary), "CUBEWALK_TEST_SERVER (the cubewalk-server binary) is not set");
        var start = new ProcessStartInfo(binary, "serve --bind " + bind + " --tokens " + withToken)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        Process process = Process.Start(start);
        process.ErrorDataReceived += (s, e) => { };
        process.BeginErrorReadLine();
        http = null;
        ws = null;
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while ((http == null || ws == null) && DateTime.UtcNow < deadline)
        {
            string line = process.StandardOutput.ReadLine();
            if (line == null) break;
            Match h = Regex.Match(line, @"listening on (http://\S+)");
            if (h.Success) http = h.Groups[1].Value;
            Match w = Regex.Match(line, @"(ws://\S+)");
            if (w.Success) ws = w.Groups[1].Value;
        }
        Assert.IsNotNull(http, "serve printed no 'listening on http://...' line");
        Assert.IsNotNull(ws, "serve printed no realtime ws:// line");
        // Keep draining stdout so the server never blocks on a full pipe.
        StreamReader output = process.StandardOutput;
        new Thread(() => { while (output.ReadLine() != null) { } }) { IsBackground = true }.Start();
        return process;
    }

    [TestFixtureTearDown]
    public void StopServer()
    {
        if (server != null && !server.HasExited) server.Kill();
        if (server != null) server.WaitForExit(5000);
    }

    [SetUp]
    public void FreshEngine()
    {
        TestEngine.BecomeMainThread();
        StandIn.Reset();
    }

    [TearDown]
    public void EndPlay()
    {
        // Leaving Play mode: every object destroyed, so every client is disposed.
        StandIn.Reset();
    }

    // ---- the scene, as the prefabs make it ----

    sealed class Scene
    {
        public GameObject Player, CubeWalk;
        public CubeWalkSample Sample;
        public SampleFirstPerson Walker;
    }

    // The Player and CubeWalk prefabs' serialized values, applied as Unity applies them (before
    // Awake/OnEnable), then the overrides (the fresh server's URLs, say), then activation.
    Scene Build(Action<CubeWalkSample> configure, bool withMaterial = true)
    {
        var scene = new Scene();
        string dir = SampleDir();
        string player = File.ReadAllText(Path.Combine(dir, "Player.prefab"));
        scene.Player = new GameObject("Player");
        scene.Player.SetActive(false);
        scene.Player.tag = Field(player, "m_TagString");
        scene.Player.AddComponent<Camera>();
        scene.Walker = scene.Player.AddComponent<SampleFirstPerson>();
        scene.Player.transform.localPosition = Vec(Field(player, "m_LocalPosition"));
        scene.Player.transform.localRotation = Quat(Field(player, "m_LocalRotation"));
        ApplySerialized(scene.Walker, player);

        string cubeWalk = File.ReadAllText(Path.Combine(dir, "CubeWalk.prefab"));
        scene.CubeWalk = new GameObject("CubeWalk");
        scene.CubeWalk.SetActive(false);
        scene.Sample = scene.CubeWalk.AddComponent<CubeWalkSample>();
        ApplySerialized(scene.Sample, cubeWalk);
        scene.Sample.endpoint = endpoint;
        scene.Sample.realtimeEndpoint = realtime;
        if (withMaterial)
        {
            // ChunkMaterial.mat, which the prefab references: its shader is in the build because of it.
            scene.Sample.chunkMaterial = new Material(StandIn.RegisterShader("CubeWalk/VertexColorLit"));
        }
        if (configure != null) configure(scene.Sample);
        scene.Player.SetActive(true);
        scene.CubeWalk.SetActive(true);
        return scene;
    }

    static string Field(string yaml, string name)
    {
        Match m = Regex.Match(yaml, @"^\s*" + Regex.Escape(name) + @":[ ]?(.*)$", RegexOptions.Multiline);
        Assert.IsTrue(m.Success, name + " not in the prefab");
        return m.Groups[1].Value.Trim();
    }

    static float Num(string yaml, string key)
    {
        return float.Parse(Regex.Match(yaml, @"\b" + key + @":\s*(-?[0-9.eE+-]+)").Groups[1].Value, CultureInfo.InvariantCulture);
    }

    static Vector3 Vec(string v) { return new Vector3(Num(v, "x"), Num(v, "y"), Num(v, "z")); }
    static Quaternion Quat(string v) { return new Quaternion(Num(v, "x"), Num(v, "y"), Num(v, "z"), Num(v, "w")); }

    // Public fields of plain types take the prefab's values; references ({fileID: ...}) are set by the test.
    static void ApplySerialized(MonoBehaviour behaviour, string yaml)
    {
        foreach (FieldInfo f in behaviour.GetType().GetFields(BindingFlags.Public | BindingFlags.Instance))
        {
            Match m = Regex.Match(yaml, @"^  " + f.Name + @":[ ]?(.*)$", RegexOptions.Multiline);
            Assert.IsTrue(m.Success, behaviour.GetType().Name + "." + f.Name + " is not serialized in the prefab");
            string text = m.Groups[1].Value.Trim();
            if (f.FieldType == typeof(string)) f.SetValue(behaviour, text);
            else if (f.FieldType == typeof(int)) f.SetValue(behaviour, int.Parse(text, CultureInfo.InvariantCulture));
            else if (f.FieldType == typeof(float)) f.SetValue(behaviour, float.Parse(text, CultureInfo.InvariantCulture));
            else if (f.FieldType == typeof(bool)) f.SetValue(behaviour, text == "1");
        }
    }

    // ---- playing ----

    static void Frame()
    {
        TestEngine.RunPlayerLoopOnce();
        StandIn.Frame(FrameSeconds);
        Thread.Sleep(4); // the network works meanwhile, as it does between real frames
    }

    // Frames until the condition holds (checking the invariants every frame); false at the deadline.
    static bool PlayUntil(Func<bool> done, float seconds, Action everyFrame = null)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (DateTime.UtcNow < deadline)
        {
            Frame();
            if (everyFrame != null) everyFrame();
            if (done()) return true;
        }
        return false;
    }

    static void Play(int frames, Action everyFrame = null)
    {
        for (int i = 0; i < frames; i++)
        {
            Frame();
            if (everyFrame != null) everyFrame();
        }
    }

    static Vector3 Centre { get { return new Vector3(Screen.width / 2f, Screen.height / 2f, 0); } }

    static bool Aim(out RaycastHit hit)
    {
        return Physics.Raycast(Camera.main.ScreenPointToRay(Centre), out hit, 64f);
    }

    static Cube CubeAt(Vector3 p)
    {
        return new Cube(Mathf.FloorToInt(p.x), Mathf.FloorToInt(p.y), Mathf.FloorToInt(p.z));
    }

    struct Cube
    {
        public int x, y, z;
        public Cube(int x, int y, int z) { this.x = x; this.y = y; this.z = z; }
        public bool Same(Cube o) { return x == o.x && y == o.y && z == o.z; }
        public override string ToString() { return "(" + x + ", " + y + ", " + z + ")"; }
    }

    // A click: pressed for one frame (the mouse drifting a little, as a hand does), released the next.
    static void Click(int button)
    {
        StandIn.MousePosition = Centre;
        StandIn.Axes["Mouse X"] = 0.5f;
        StandIn.Axes["Mouse Y"] = -0.3f;
        StandIn.ButtonsHeld.Add(button);
        Frame();
        StandIn.ButtonsHeld.Remove(button);
        StandIn.Axes.Clear();
        Frame();
    }

    // Nothing went wrong that a developer would see in the Console.
    static void Clean()
    {
        if (StandIn.Exceptions.Count > 0) Assert.Fail("exception in a script: " + StandIn.Exceptions[0]);
        if (StandIn.Errors.Count > 0) Assert.Fail("error logged: " + StandIn.Errors[0]);
        if (StandIn.Warnings.Count > 0) Assert.Fail("warning logged: " + StandIn.Warnings[0]);
        Assert.AreEqual(0, StandIn.EmptyColliderMeshes, "a MeshCollider was given a mesh with no vertices");
    }

    // Views never outnumber the neighbourhood: 2 GameObjects of the scene plus one per chunk view.
    static void Bounded()
    {
        Assert.LessOrEqual(StandIn.LiveCount<Mesh>(), Neighbourhood, "meshes pile up");
        Assert.LessOrEqual(StandIn.LiveCount<GameObject>(), 2 + Neighbourhood, "chunk GameObjects pile up");
    }

    static void Invariants() { Clean(); Bounded(); }

    // By name, so this file also compiles against a sample without the field (it then fails).
    static void SetField(object target, string name, object value)
    {
        FieldInfo f = target.GetType().GetField(name);
        Assert.IsNotNull(f, target.GetType().Name + " has no public field " + name);
        f.SetValue(target, value);
    }

    static int Value(int[] chunk, int x, int y, int z) { return chunk[ChunkMesher.Index(x, y, z)]; }

    static int FloorDiv(int v) { return v >= 0 ? v / 16 : (v - 15) / 16; }

    // The cube's value as a second, independent client (the static test token) fetches it.
    int FetchCube(Cube c)
    {
        var key = new ChunkKey(FloorDiv(c.x), FloorDiv(c.y), FloorDiv(c.z));
        using (var other = new CubeWalkClient(endpoint, token))
        {
            var buffers = new[] { new int[CubeWalkClient.ChunkCubes] };
            other.FetchBlocks("default", new[] { key }, new[] { CubeWalkClient.NoVersion }, buffers);
            return Value(buffers[0], c.x - key.X * 16, c.y - key.Y * 16, c.z - key.Z * 16);
        }
    }

    // ---- the tests ----

    /// <summary>Defects 1, 2, 4 and 8: against a fresh server, the prefab's camera sees ground
    /// under its crosshair; left click places, right click removes (neither turns the view; the
    /// arrow keys and a middle-button drag do); walking across chunk borders keeps the views
    /// within the neighbourhood; disabling releases every GameObject and Mesh; nothing logs a
    /// warning or an error; a second client fetches the edits back.</summary>
    [Test]
    public void PlaceRemoveAndWalkOnAFreshServer()
    {
        Scene scene = Build(null);
        Transform cam = scene.Player.transform;
        RaycastHit hit = new RaycastHit();
        Assert.IsTrue(PlayUntil(() => Aim(out hit), 20f, Invariants),
            "nothing under the crosshair of the prefab's camera at " + cam.position + " (no seeded ground in view?)");
        Assert.IsTrue(scene.Sample.enabled);

        // Left click: a cube in front of the face under the crosshair.
        Cube placed = CubeAt(hit.point + hit.normal * 0.5f);
        Quaternion before = cam.rotation;
        Click(0);
        Assert.Less(Quaternion.Angle(before, cam.rotation), 0.01f, "a left click turned the view");
        RaycastHit now = new RaycastHit();
        Assert.IsTrue(PlayUntil(() => Aim(out now) && CubeAt(now.point - now.normal * 0.5f).Same(placed), 10f, Invariants),
            "the placed cube " + placed + " never showed under the crosshair");

        // Looking is its own input: the arrow keys and a middle-button drag turn the view.
        before = cam.rotation;
        StandIn.KeysHeld.Add(KeyCode.LeftArrow);
        Play(10, Invariants);
        StandIn.KeysHeld.Remove(KeyCode.LeftArrow);
        Assert.Greater(Quaternion.Angle(before, cam.rotation), 5f, "the arrow keys do not turn the view");
        before = cam.rotation;
        StandIn.ButtonsHeld.Add(2);
        StandIn.Axes["Mouse X"] = 1f;
        Play(3, Invariants);
        StandIn.ButtonsHeld.Remove(2);
        StandIn.Axes.Clear();
        Assert.Greater(Quaternion.Angle(before, cam.rotation), 1f, "a middle-button drag does not turn the view");

        // Right click: the cube under the crosshair goes, and the view does not turn.
        Assert.IsTrue(PlayUntil(() => Aim(out hit), 5f, Invariants), "nothing under the crosshair after turning");
        Cube removed = CubeAt(hit.point - hit.normal * 0.5f);
        Assert.IsFalse(removed.Same(placed), "turned back onto the placed cube");
        before = cam.rotation;
        Click(1);
        Assert.Less(Quaternion.Angle(before, cam.rotation), 0.01f, "a right click turned the view");
        Assert.IsTrue(PlayUntil(() => !Aim(out now) || !CubeAt(now.point - now.normal * 0.5f).Same(removed), 10f, Invariants),
            "the removed cube " + removed + " stayed under the crosshair");

        // Walk across chunk borders (right, forward, then back left), views staying bounded.
        Vector3 start = cam.position;
        int most = 0;
        Action walk = () => { Invariants(); most = Math.Max(most, StandIn.LiveCount<Mesh>()); };
        foreach (KeyCode key in new[] { KeyCode.D, KeyCode.W, KeyCode.A })
        {
            StandIn.KeysHeld.Add(key);
            Play(240, walk);
            StandIn.KeysHeld.Remove(key);
            Play(60, walk); // let the neighbourhood catch up
        }
        Assert.Greater(Vector3.Distance(start, cam.position), 48f, "the walk did not cross several chunks");
        Assert.Greater(most, 0, "no chunk was ever shown while walking");
        Console.WriteLine("first hour: placed " + placed + ", removed " + removed + ", walked " + start + " -> " + cam.position
            + ", at most " + most + " chunk meshes, " + StandIn.FrameCount + " frames");
        Assert.AreEqual(start.y, cam.position.y, 0.01f, "walking changed the height (WASD keeps level)");

        // Disabling releases every view: GameObject and Mesh.
        scene.Sample.enabled = false;
        Assert.AreEqual(0, StandIn.LiveCount<Mesh>(), "meshes left after OnDisable");
        Assert.AreEqual(2, StandIn.LiveCount<GameObject>(), "chunk GameObjects left after OnDisable");
        Clean();

        Assert.AreEqual(scene.Sample.placeValue, FetchCube(placed), "a second client does not see the placed cube");
        Assert.AreEqual(0, FetchCube(removed), "a second client still sees the removed cube");
    }

    /// <summary>Defect 3: a refused connection, with a token or as a guest, and a wrong token
    /// each stop the sample with their message drawn by OnGUI frame after frame (so the
    /// behaviour must stay enabled), and release everything.</summary>
    [TestCase("refused", "")]
    [TestCase("refused", "some-token")]
    [TestCase("wrong token", "not-the-token")]
    public void AFailedSetupShowsItsErrorOnScreen(string setup, string withToken)
    {
        string refused = null;
        if (setup == "refused")
        {
            var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            int port = ((IPEndPoint)listener.LocalEndpoint).Port;
            listener.Stop();
            refused = "http://127.0.0.1:" + port + "/prod/cubewalkblocks";
        }
        Scene scene = Build(s =>
        {
            s.token = withToken;
            if (refused != null) { s.endpoint = refused; s.realtimeEndpoint = ""; }
        });
        // Realtime may be refused first: a passing notice; the failure replaces it.
        Assert.IsTrue(PlayUntil(() => StandIn.Errors.Count > 0, 30f), "no failure (" + setup + ")");
        Assert.AreEqual(1, StandIn.Labels.Count, "the failure is not on screen");
        string shown = StandIn.Labels[0];
        StringAssert.Contains(StandIn.Labels[0], StandIn.Errors[0], "the screen and the Console disagree");
        Play(30, () => CollectionAssert.AreEqual(new[] { shown }, StandIn.Labels, "the message did not stay on screen"));
        Assert.IsTrue(scene.Sample.enabled, "disabled: Unity would not call OnGUI");
        Assert.AreEqual(0, StandIn.Exceptions.Count, "an exception: " + string.Join("; ", StandIn.Exceptions));
        Assert.AreEqual(1, StandIn.Errors.Count, "the error was logged more than once: " + string.Join("; ", StandIn.Errors));
        Assert.AreEqual(0, StandIn.LiveCount<Mesh>(), "views left after stopping");
    }

    /// <summary>Defect 3: passing trouble (here realtime failing to start) shows on screen for a
    /// few seconds, then goes, while the sample keeps working.</summary>
    [Test]
    public void APassingWarningShowsForAFewSeconds()
    {
        Scene scene = Build(s => { s.token = token; s.realtimeEndpoint = "not a url"; });
        Assert.IsTrue(PlayUntil(() => StandIn.Labels.Count > 0, 5f), "no warning on screen");
        StringAssert.Contains("realtime", StandIn.Labels[0]);
        Assert.AreEqual(1, StandIn.Warnings.Count, "logged other than once: " + string.Join("; ", StandIn.Warnings));
        float shownAt = Time.unscaledTime;
        Assert.IsTrue(PlayUntil(() => StandIn.Labels.Count == 0, 30f), "the warning never went away");
        Assert.Greater(Time.unscaledTime - shownAt, 1f, "gone before anyone could read it");
        Assert.Less(Time.unscaledTime - shownAt, 15f, "on screen for too long");
        RaycastHit hit;
        Assert.IsTrue(PlayUntil(() => Aim(out hit), 20f), "the sample stopped working (polling should show the ground)");
        Assert.IsTrue(scene.Sample.enabled);
        Assert.AreEqual(0, StandIn.Errors.Count, string.Join("; ", StandIn.Errors));
        Assert.AreEqual(0, StandIn.Exceptions.Count);
    }

    /// <summary>Defect 5: the camera keeps the angle it was authored with; the first frame
    /// without input does not level it.</summary>
    [Test]
    public void TheCameraKeepsItsAuthoredAngle()
    {
        var go = new GameObject("Player");
        go.SetActive(false);
        go.tag = "MainCamera";
        go.AddComponent<Camera>();
        go.AddComponent<SampleFirstPerson>();
        Quaternion authored = Quaternion.Euler(35f, 120f, 0f);
        go.transform.rotation = authored;
        go.SetActive(true);
        Play(5);
        Assert.Less(Quaternion.Angle(authored, go.transform.rotation), 0.01f,
            "the view moved from " + authored.eulerAngles + " to " + go.transform.rotation.eulerAngles);
        // Turning starts from the authored angle, not from level.
        StandIn.KeysHeld.Add(KeyCode.RightArrow);
        Play(1);
        StandIn.KeysHeld.Clear();
        Vector3 e = go.transform.eulerAngles;
        Assert.AreEqual(35f, e.x, 0.01f, "the pitch was lost when turning");
        Assert.Greater(e.y, 120f, "did not turn right");
        Assert.Less(e.y, 125f, "turned too far in one frame");
        Clean();
    }

    /// <summary>Defect 6: a player build without Chunk Material assigned and with no shader to
    /// make one from says so on screen instead of throwing (new Material(null)).</summary>
    [Test]
    public void NoMaterialAndNoShaderIsAClearErrorNotAnException()
    {
        Scene scene = Build(s => s.token = token, withMaterial: false);
        PlayUntil(() => StandIn.Labels.Count > 0 || StandIn.Exceptions.Count > 0, 10f);
        Assert.AreEqual(0, StandIn.Exceptions.Count, "an exception: " + string.Join("; ", StandIn.Exceptions));
        Assert.AreEqual(1, StandIn.Labels.Count, "no message on screen");
        StringAssert.Contains("Chunk Material", StandIn.Labels[0]);
        Assert.IsTrue(scene.Sample.enabled);
        Assert.AreEqual(0, StandIn.MaterialsMade, "made a material without a shader");
    }

    /// <summary>Defect 6: without Chunk Material the sample makes its own from the sample's
    /// shader when the build has it (and destroys it when disabled).</summary>
    [Test]
    public void WithoutChunkMaterialTheSampleShaderIsUsed()
    {
        StandIn.RegisterShader("Standard");
        StandIn.RegisterShader("CubeWalk/VertexColorLit");
        Scene scene = Build(s => s.token = token, withMaterial: false);
        RaycastHit hit;
        Assert.IsTrue(PlayUntil(() => Aim(out hit), 20f, Invariants), "no ground shown");
        Transform root = scene.CubeWalk.transform;
        Assert.Greater(root.childCount, 0);
        for (int i = 0; i < root.childCount; i++)
        {
            Material m = root.GetChild(i).GetComponent<MeshRenderer>().sharedMaterial;
            Assert.IsNotNull(m, "a chunk without a material");
            Assert.AreEqual("CubeWalk/VertexColorLit", m.shader.name);
        }
        scene.Sample.enabled = false;
        Assert.AreEqual(0, StandIn.LiveCount<Material>(), "the sample's own material outlived it");
        Clean();
    }

    /// <summary>Defect 7: the Inspector switch for plain http to a LAN address reaches the
    /// client: off, a LAN address is refused on screen; on, it is accepted.</summary>
    [TestCase(false, false)]
    [TestCase(false, true)]
    [TestCase(true, false)]
    [TestCase(true, true)]
    public void PlainHttpToALanAddressNeedsTheDevelopmentSwitch(bool allow, bool asGuest)
    {
        // A gateway reached as a phone or another PC would: on this machine's own network
        // address, not loopback.
        IPAddress lan = Array.Find(Dns.GetHostAddresses(Dns.GetHostName()),
            a => a.AddressFamily == AddressFamily.InterNetwork && !IPAddress.IsLoopback(a));
        if (lan == null) Assert.Ignore("this machine has no non-loopback IPv4 address");
        string http, ws;
        Process lanServer = StartServe("0.0.0.0:0", token, out http, out ws);
        try
        {
            int port = new Uri(http).Port;
            Scene scene = Build(s =>
            {
                s.token = asGuest ? "" : token;
                s.endpoint = "http://" + lan + ":" + port + "/prod/cubewalkblocks";
                s.realtimeEndpoint = "ws://" + lan + ":" + port + "/prod";
                SetField(s, "allowInsecureHttpForDevelopment", allow);
            });
            if (allow)
            {
                // Allowed: the world loads from the LAN address (ground shows up) with nothing on screen.
                bool loaded = PlayUntil(() => StandIn.LiveCount<Mesh>() > 0 || StandIn.Labels.Count > 0, 15f);
                Assert.AreEqual(0, StandIn.Labels.Count, "refused although allowed: " + string.Join("; ", StandIn.Labels));
                Assert.IsTrue(loaded, "nothing loaded from the LAN address");
                Assert.AreEqual(0, StandIn.Errors.Count, string.Join("; ", StandIn.Errors));
            }
            else
            {
                // The refusal is immediate (guest login: once the login request ends, which is at once).
                PlayUntil(() => StandIn.Labels.Count > 0, 5f);
                Assert.AreEqual(1, StandIn.Labels.Count, "plain http to a LAN address was not refused");
                StringAssert.Contains("Allow Insecure Http For Development", StandIn.Labels[0], "the message does not say how to allow it");
            }
            Assert.AreEqual(0, StandIn.Exceptions.Count, string.Join("; ", StandIn.Exceptions));
            scene.Sample.enabled = false;
        }
        finally
        {
            if (!lanServer.HasExited) lanServer.Kill();
            lanServer.WaitForExit(5000);
        }
    }

    /// <summary>The sample's asset chain a player build keeps the shader through: the prefab and
    /// the scene reference ChunkMaterial.mat, which references VertexColorLit.shader; and the
    /// shader has a URP SubShader beside the built-in one.</summary>
    [Test]
    public void ThePrefabReferencesTheMaterialThatReferencesTheShader()
    {
        string dir = SampleDir();
        Func<string, string> guid = f => Field(File.ReadAllText(Path.Combine(dir, f + ".meta")), "guid");
        string material = guid("ChunkMaterial.mat"), shader = guid("VertexColorLit.shader");
        foreach (string f in new[] { "CubeWalk.prefab", "ChunkStreaming.unity" })
            StringAssert.Contains("guid: " + material, Field(File.ReadAllText(Path.Combine(dir, f)), "chunkMaterial"), f);
        StringAssert.Contains("guid: " + shader, Field(File.ReadAllText(Path.Combine(dir, "ChunkMaterial.mat")), "m_Shader"));
        string source = File.ReadAllText(Path.Combine(dir, "VertexColorLit.shader"));
        StringAssert.Contains("\"RenderPipeline\" = \"UniversalPipeline\"", source, "no URP SubShader");
        StringAssert.Contains("UniversalForward", source);
        StringAssert.Contains("CGPROGRAM", source, "no built-in-pipeline SubShader");
        Assert.Less(source.IndexOf("UniversalPipeline", StringComparison.Ordinal), source.IndexOf("CGPROGRAM", StringComparison.Ordinal),
            "the URP SubShader must come first (Unity takes the first that fits)");
    }
}
