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

    Serve server;
    string endpoint, realtime, token;

    static string SampleDir([CallerFilePath] string here = "")
    {
        return Path.GetFullPath(Path.Combine(Path.GetDirectoryName(here), "..", "..", "Samples~", "ChunkStreaming"));
    }

    [TestFixtureSetUp]
    public void StartServer()
    {
        token = "first-hour-" + Guid.NewGuid().ToString("N");
        server = new Serve("127.0.0.1:0", token);
        endpoint = server.Http;
        realtime = server.Ws;
    }

    /// <summary>A <c>cubewalk-server serve</c> of the test's own, with the URLs it printed and
    /// the guest logins it answered (counted from its log).</summary>
    sealed class Serve : IDisposable
    {
        public readonly Process Process;
        public readonly string Http, Ws;
        int logins;

        /// <summary>A fresh serve on <paramref name="bind"/> (its default starting terrain
        /// included); <paramref name="extra"/> more arguments (a signing key, say).</summary>
        public Serve(string bind, string withToken, string extra = "")
        {
            string http, ws;
            Process = StartServe(bind, withToken, extra, line =>
            {
                if (line.Contains("login status=200")) Interlocked.Increment(ref logins);
            }, out http, out ws);
            Http = http;
            Ws = ws;
        }

        public int Port { get { return new Uri(Http).Port; } }
        /// <summary>Guest logins it answered with a token.</summary>
        public int Logins { get { return Volatile.Read(ref logins); } }

        public void Dispose()
        {
            if (!Process.HasExited) Process.Kill();
            Process.WaitForExit(5000);
        }
    }

    /// <summary>A fresh <c>cubewalk-server serve</c> on <paramref name="bind"/> (its default
    /// starting terrain included), with the URLs it printed.</summary>
    static Process StartServe(string bind, string withToken, out string http, out string ws)
    {
        return StartServe(bind, withToken, "", null, out http, out ws);
    }

    static Process StartServe(string bind, string withToken, string extra, Action<string> onLog, out string http, out string ws)
    {
        string binary = Environment.GetEnvironmentVariable("CUBEWALK_TEST_SERVER");
        Assert.IsFalse(string.IsNullOrEmpty(binary), "CUBEWALK_TEST_SERVER (the cubewalk-server binary) is not set");
        var start = new ProcessStartInfo(binary, "serve --bind " + bind + " --tokens " + withToken + " " + extra)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        Process process = Process.Start(start);
        process.ErrorDataReceived += (s, e) => { if (e.Data != null && onLog != null) onLog(e.Data); };
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
        if (server != null) server.Dispose();
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
    int FetchCube(Cube c) { return FetchCube(c, endpoint); }

    int FetchCube(Cube c, string from)
    {
        var key = new ChunkKey(FloorDiv(c.x), FloorDiv(c.y), FloorDiv(c.z));
        using (var other = new CubeWalkClient(from, token))
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
                s.realtimeEndpoint = "ws://" + lan + ":" + port + "/mqtt";
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
        StringAssert.Contains("CGPROGRAM", source, "no built-in-pipeline SubShader");
        int builtIn = source.IndexOf("CGPROGRAM", StringComparison.Ordinal);
        Assert.Less(source.IndexOf("UniversalPipeline", StringComparison.Ordinal), builtIn,
            "the URP SubShader must come first (Unity takes the first that fits)");
        // Defect (review 6): the URP passes a Deferred renderer and SSAO with depth priming need.
        string urp = source.Substring(0, builtIn);
        foreach (string lightMode in new[] { "UniversalForwardOnly", "DepthOnly", "DepthNormals" })
            StringAssert.Contains("\"LightMode\" = \"" + lightMode + "\"", urp, "no " + lightMode + " pass in the URP SubShader");
        StringAssert.DoesNotContain("\"LightMode\" = \"UniversalForward\"", urp,
            "a UniversalForward pass without a GBuffer pass: Deferred renderers skip it");
        StringAssert.Contains("NormalizeNormalPerPixel", urp, "the DepthNormals pass does not write the normal as URP does");
    }

    // ---- the outside review of the sample (issue 20) ----

    static void PlayFor(float seconds, Action everyFrame = null) { PlayUntil(() => false, seconds, everyFrame); }

    static void NoErrors()
    {
        if (StandIn.Exceptions.Count > 0) Assert.Fail("exception in a script: " + StandIn.Exceptions[0]);
        if (StandIn.Errors.Count > 0) Assert.Fail("error logged: " + StandIn.Errors[0]);
    }

    static string OutageNotice() { return StandIn.Labels.Find(l => l.Contains("retrying")); }

    static string TempDir()
    {
        string dir = Path.Combine(Path.GetTempPath(), "cubewalk-first-hour-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    // A quad facing the camera (front face towards it: raycasts hit front faces only).
    static Mesh Quad(Vector3 centre, Vector3 right, Vector3 up, Vector3 forward)
    {
        var corners = new List<Vector3> { centre - right - up, centre + right - up, centre + right + up, centre - right + up };
        var mesh = new Mesh();
        mesh.SetVertices(corners);
        bool facesCamera = Vector3.Dot(Vector3.Cross(corners[1] - corners[0], corners[2] - corners[0]), forward) < 0;
        mesh.SetTriangles(facesCamera ? new[] { 0, 1, 2, 0, 2, 3 } : new[] { 0, 2, 1, 0, 3, 2 }, 0);
        return mesh;
    }

    /// <summary>Review 1: once the world has loaded, stopping the server is a passing notice
    /// (short, without the request URL), not the end: the chunks stay on screen, nothing is
    /// logged as an error, and when a server comes back on the same port the world is back and
    /// an edit works.</summary>
    [Test]
    public void AServerThatGoesAwayAndComesBackIsANoticeNotTheEnd()
    {
        var first = new Serve("127.0.0.1:0", token);
        Serve second = null;
        try
        {
            Scene scene = Build(s => { s.token = token; s.endpoint = first.Http; s.realtimeEndpoint = first.Ws; });
            RaycastHit hit = new RaycastHit();
            Assert.IsTrue(PlayUntil(() => Aim(out hit), 20f, Invariants), "the world never loaded");
            int shown = StandIn.LiveCount<Mesh>();

            first.Dispose();
            Action kept = () =>
            {
                NoErrors();
                Assert.AreEqual(shown, StandIn.LiveCount<Mesh>(), "the chunks shown changed while the server was away");
            };
            Assert.IsTrue(PlayUntil(() => OutageNotice() != null, 60f, kept), "no notice on screen with the server gone");
            string notice = OutageNotice();
            Console.WriteLine("server gone: " + notice);
            Assert.LessOrEqual(notice.Length, 260, "the notice is not short: " + notice);
            StringAssert.DoesNotContain("chunks=", notice, "the notice holds the request's query string");
            StringAssert.DoesNotContain("\n", notice);
            // It stays while the server is away; the sample keeps running and keeps the world.
            PlayFor(3f, () => { kept(); Assert.IsNotNull(OutageNotice(), "the notice went while the server is still away"); });
            Assert.IsTrue(scene.Sample.enabled);
            Assert.IsTrue(Aim(out hit), "nothing under the crosshair any more");

            second = new Serve("127.0.0.1:" + first.Port, token);
            Assert.IsTrue(PlayUntil(() => OutageNotice() == null && Aim(out hit), 60f, NoErrors),
                "the world did not come back with the server: " + OutageNotice());
            Cube placed = CubeAt(hit.point + hit.normal * 0.5f);
            Click(0);
            RaycastHit now = new RaycastHit();
            Assert.IsTrue(PlayUntil(() => Aim(out now) && CubeAt(now.point - now.normal * 0.5f).Same(placed), 20f, NoErrors),
                "the cube placed after the server came back never showed");
            Assert.AreEqual(scene.Sample.placeValue, FetchCube(placed, second.Http), "the server that came back does not have the cube");
        }
        finally
        {
            first.Dispose();
            if (second != null) second.Dispose();
        }
    }

    /// <summary>Review 3: a guest whose token is refused (the server came back with another
    /// signing key) logs in again once per refusal, not once per round trip, and goes on with
    /// the new token.</summary>
    [Test]
    public void ARefusedGuestTokenLogsInAgainOnce()
    {
        string keys = TempDir();
        var first = new Serve("127.0.0.1:0", token, "--signing-key " + Path.Combine(keys, "a.pem"));
        Serve second = null;
        try
        {
            Scene scene = Build(s => { s.token = ""; s.endpoint = first.Http; s.realtimeEndpoint = first.Ws; });
            RaycastHit hit = new RaycastHit();
            Assert.IsTrue(PlayUntil(() => Aim(out hit), 20f, Invariants), "the guest's world never loaded");
            Assert.AreEqual(1, first.Logins, "guest logins before any refusal");

            // Another signing key: the guest's token (signed with the first) is refused from now on.
            first.Dispose();
            second = new Serve("127.0.0.1:" + first.Port, token, "--signing-key " + Path.Combine(keys, "b.pem"));
            Assert.IsTrue(PlayUntil(() => second.Logins > 0, 60f, NoErrors), "the guest never logged in again");
            PlayFor(5f, NoErrors);
            Assert.AreEqual(1, second.Logins, "guest logins for one refused token");

            // The new token works.
            Assert.IsTrue(PlayUntil(() => OutageNotice() == null && Aim(out hit), 30f, NoErrors), "the world did not come back");
            Cube placed = CubeAt(hit.point + hit.normal * 0.5f);
            Click(0);
            RaycastHit now = new RaycastHit();
            Assert.IsTrue(PlayUntil(() => Aim(out now) && CubeAt(now.point - now.normal * 0.5f).Same(placed), 20f, NoErrors),
                "the cube placed with the new token never showed");
            Assert.AreEqual(1, second.Logins, "guest logins for one refused token");
            scene.Sample.enabled = false; // the native session is one per process: the guest's goes first
            Assert.AreEqual(scene.Sample.placeValue, FetchCube(placed, second.Http));
        }
        finally
        {
            first.Dispose();
            if (second != null) second.Dispose();
            try { Directory.Delete(keys, true); } catch (IOException) { }
        }
    }

    /// <summary>Review 4: radius 0 is only the player's chunk (air, with the ground in the chunk
    /// below): the Inspector starts at 1, and a script's 0 is clamped.</summary>
    [Test]
    public void RadiusZeroStillShowsTheGround()
    {
        Scene scene = Build(s => { s.token = token; s.radius = 0; });
        Transform root = scene.CubeWalk.transform;
        Func<bool> groundShown = () =>
        {
            for (int i = 0; i < root.childCount; i++)
                if (root.GetChild(i).localPosition.y == 0) return true;
            return false;
        };
        Assert.IsTrue(PlayUntil(groundShown, 20f, Invariants), "radius 0: the ground's chunks (y = 0) never shown");
        RaycastHit hit;
        Assert.IsTrue(Aim(out hit), "radius 0: nothing under the crosshair");
        Assert.IsTrue(scene.Sample.enabled);
        var range = (UnityEngine.RangeAttribute)Attribute.GetCustomAttribute(typeof(CubeWalkSample).GetField("radius"), typeof(UnityEngine.RangeAttribute));
        Assert.IsNotNull(range, "radius has no Inspector range");
        Assert.AreEqual(1f, range.min, "the Inspector offers a radius that shows nothing");
        Assert.AreEqual(4f, range.max);
    }

    /// <summary>Review 4: the CubeWalk object moved in the scene (the chunk views are its
    /// children): the neighbourhood follows the player in its space, and a click places the cube
    /// under the crosshair, at the coordinates a second client fetches it back from.</summary>
    [Test]
    public void AMovedCubeWalkObjectEditsTheCubeUnderTheCrosshair()
    {
        var offset = new Vector3(100, 0, -37);
        // A server of its own: the cubes other tests place do not get in the way.
        using (var own = new Serve("127.0.0.1:0", token))
        {
            Scene scene = Build(s => { s.token = token; s.endpoint = own.Http; s.realtimeEndpoint = own.Ws; });
            scene.CubeWalk.transform.position = offset;
            scene.Player.transform.position += offset; // the same view of the world as unmoved
            RaycastHit hit = new RaycastHit();
            Assert.IsTrue(PlayUntil(() => Aim(out hit), 20f, Invariants), "nothing under the crosshair with the CubeWalk object moved");
            Assert.AreEqual(scene.CubeWalk.transform, hit.collider.transform.parent, "the crosshair is not on a chunk view");
            Cube placed = CubeAt(hit.point - offset + hit.normal * 0.5f);
            Assert.AreEqual(0, FetchCube(placed, own.Http), "the cube to place is not air");
            Click(0);
            RaycastHit now = new RaycastHit();
            Assert.IsTrue(PlayUntil(() => Aim(out now) && CubeAt(now.point - offset - now.normal * 0.5f).Same(placed), 10f, Invariants),
                "the placed cube " + placed + " never showed under the crosshair");
            Assert.AreEqual(scene.Sample.placeValue, FetchCube(placed, own.Http), "a second client does not see the cube at " + placed);
        }
    }

    /// <summary>Review 4: a click on a collider that is not one of the sample's chunks (a wall
    /// of the game's own in front of the camera) edits nothing.</summary>
    [Test]
    public void AClickOnAnotherColliderEditsNothing()
    {
        // A server of its own: a cube wrongly placed must not get in other tests' way.
        using (var own = new Serve("127.0.0.1:0", token))
        {
            Scene scene = Build(s => { s.token = token; s.endpoint = own.Http; s.realtimeEndpoint = own.Ws; });
            RaycastHit hit = new RaycastHit();
            Assert.IsTrue(PlayUntil(() => Aim(out hit), 20f, Invariants), "the world never loaded");
            Transform cam = scene.Player.transform;
            var wall = new GameObject("Wall");
            MeshCollider collider = wall.AddComponent<MeshCollider>();
            collider.sharedMesh = Quad(cam.position + cam.forward * 1.5f, cam.right, cam.up, cam.forward);
            Assert.IsTrue(Aim(out hit), "nothing under the crosshair");
            Assert.AreEqual(collider, hit.collider, "the wall is not under the crosshair");
            Cube before = CubeAt(hit.point + hit.normal * 0.5f), behind = CubeAt(hit.point - hit.normal * 0.5f);
            Assert.AreEqual(0, FetchCube(before, own.Http));
            Click(0);
            PlayFor(2f, Clean);
            Assert.AreEqual(0, FetchCube(before, own.Http), "a left click on the wall placed a cube in front of it");
            Click(1);
            PlayFor(2f, Clean);
            Assert.AreEqual(0, FetchCube(behind, own.Http), "a right click on the wall edited behind it");
            Assert.IsTrue(scene.Sample.enabled);
        }
    }

    /// <summary>Review 5: a look speed of 0 (typed into the Inspector, or set by a script) does
    /// not turn the view into NaN; the arrow keys still turn it.</summary>
    [Test]
    public void ALookSpeedOfZeroKeepsTheViewUsable()
    {
        var go = new GameObject("Player");
        go.SetActive(false);
        go.tag = "MainCamera";
        go.AddComponent<Camera>();
        SetField(go.AddComponent<SampleFirstPerson>(), "lookSpeed", 0f);
        Quaternion authored = Quaternion.Euler(20f, 30f, 0f);
        go.transform.rotation = authored;
        go.SetActive(true);
        Func<bool> finite = () =>
        {
            Quaternion q = go.transform.rotation;
            Vector3 p = go.transform.position;
            return !(float.IsNaN(q.x) || float.IsNaN(q.y) || float.IsNaN(q.z) || float.IsNaN(q.w)
                || float.IsNaN(p.x) || float.IsNaN(p.y) || float.IsNaN(p.z));
        };
        Play(5, () => Assert.IsTrue(finite(), "the view became NaN without any input"));
        Assert.Less(Quaternion.Angle(authored, go.transform.rotation), 0.01f, "the view moved without input");
        StandIn.KeysHeld.Add(KeyCode.RightArrow);
        Play(10, () => Assert.IsTrue(finite(), "the view became NaN turning"));
        StandIn.KeysHeld.Clear();
        Assert.Greater(Quaternion.Angle(authored, go.transform.rotation), 1f, "the arrow keys do not turn the view");
        var min = (MinAttribute)Attribute.GetCustomAttribute(typeof(SampleFirstPerson).GetField("lookSpeed"), typeof(MinAttribute));
        Assert.IsNotNull(min, "the Inspector accepts a look speed of 0");
        Assert.Greater(min.min, 0f);
        Clean();
    }

    /// <summary>Review 7: disabling the sample with a put in flight is silent (the put ends
    /// cancelled by the shutdown; that is no failure to report).</summary>
    [Test]
    public void DisablingWithAPutInFlightIsSilent()
    {
        // A server of its own: the cube may land, and must not get in other tests' way.
        using (var own = new Serve("127.0.0.1:0", token))
        {
            Scene scene = Build(s => { s.token = token; s.endpoint = own.Http; s.realtimeEndpoint = own.Ws; });
            RaycastHit hit;
            Assert.IsTrue(PlayUntil(() => Aim(out hit), 20f, Invariants), "the world never loaded");
            // The click's frame sends the put; disabled at once, before any frame could complete it.
            StandIn.MousePosition = Centre;
            StandIn.ButtonsHeld.Add(0);
            TestEngine.RunPlayerLoopOnce();
            StandIn.Frame(FrameSeconds);
            StandIn.ButtonsHeld.Remove(0);
            scene.Sample.enabled = false;
            Clean();
            Assert.AreEqual(0, StandIn.LiveCount<Mesh>(), "views left after OnDisable");
        }
    }
}
