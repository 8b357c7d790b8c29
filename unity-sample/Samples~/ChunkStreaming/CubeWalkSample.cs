using System;
using System.Collections.Generic;
using System.Text.RegularExpressions;
using CubeWalk;
using UnityEngine;
#if ENABLE_INPUT_SYSTEM
using UnityEngine.InputSystem;
#endif

/// <summary>
/// Sample: shows the chunks around the player (one mesh and collider per chunk that has faces,
/// rebuilt when a chunk changes, released with its mesh when the chunk leaves the neighbourhood),
/// follows other players' edits over realtime (MQTT over WebSocket, WebGL builds included;
/// polling with non-blocking fetches, where only changed chunks travel, when realtime is off or
/// down), and edits the cube under the pointer with a put.
///
/// Controls: left click places a cube on the face under the pointer, right click removes the
/// cube under it; moving and looking are <see cref="SampleFirstPerson"/>'s (WASD, Space/C, arrow
/// keys or middle mouse drag), so no button does two things. Works with the Input System package
/// and with the legacy Input Manager.
///
/// With no token configured it logs in as a guest (a device secret made once and kept in
/// PlayerPrefs) and logs in again before the token expires (at 80% of its lifetime) or when the
/// API answers TokenRefused, handing the new token to <see cref="CubeWalkClient.SetToken"/>
/// without restarting anything (once per refusal: a refusal of a request sent with the old token
/// does not count). A wrong token, a ban, or an endpoint that cannot be reached before anything
/// has loaded stops it: the client shuts down and one message stays on screen (and in the
/// Console) until the component is disabled and enabled again; the component itself stays
/// enabled, because Unity does not call OnGUI on a disabled behaviour. Once the world has loaded,
/// losing the server (stopped, restarted, the network down) is not the end: a notice stays on
/// screen while the neighbourhood keeps retrying, the chunks already shown stay, and the world
/// comes back with the server. Passing trouble (a put refused, editing too fast, realtime off)
/// shows on screen for a few seconds. Nothing throws every frame.
///
/// The chunk views are children of this object, so it may be moved or turned in the scene: the
/// player's position and the click are converted into its space. Only clicks on the chunk views
/// edit; other colliders in the scene are left alone. Thin Unity glue over
/// <see cref="CubeWalkClient"/>, <see cref="ChunkNeighbourhood"/> and <see cref="ChunkMesher"/>.
/// </summary>
public class CubeWalkSample : MonoBehaviour
{
    [Tooltip("The /cubewalkblocks URL: the local gateway's, or the ApiUrl output of the AWS stack.")]
    public string endpoint = "http://127.0.0.1:3000/prod/cubewalkblocks";
    [Tooltip("A token the authorizer accepts (the dev token printed by cubewalk-server serve). Empty: log in as a guest.")]
    public string token = "";
    public string world = "default";
    [Tooltip("Chunks on each side of the player's chunk. At least 1: the player usually stands in the chunk above the ground's.")]
    [Range(1, 4)] public int radius = 1;
    [Tooltip("The MQTT-over-WebSocket URL for other players' edits: the local gateway's /mqtt, or the RealtimeUrl output of the AWS stack. Empty: poll instead.")]
    public string realtimeEndpoint = "ws://127.0.0.1:3000/mqtt";
    [Tooltip("Seconds between refreshes of the neighbourhood while not following over realtime.")]
    public float refreshEvery = 0.5f;
    [Tooltip("The player's transform; the camera's when empty.")]
    public Transform player;
    public int placeValue = 1;
    [Tooltip("Material for the chunk meshes (vertex colours): the sample's ChunkMaterial. Keep it assigned: a player build strips shaders no asset references, so without it there may be no shader to make one from.")]
    public Material chunkMaterial;
    [Tooltip("DEVELOPMENT ONLY, never ship it on: allow plain http:// and ws:// to a non-loopback address (a gateway on another PC of your LAN, seen from a phone or an emulator). The token then travels in clear.")]
    public bool allowInsecureHttpForDevelopment;

    // How long a passing warning stays on screen (unscaled seconds).
    const float NoticeSeconds = 4f;
    // Native error texts can hold a whole request URL (every chunk key); the screen gets this much.
    const int ShownErrorLength = 200;
    // Guest tokens: never log in again sooner than this after a login (seconds), whatever lifetime
    // the server states, and wait this long after a failed login before the next.
    const float MinLoginInterval = 30f;
    const float LoginRetrySeconds = 5f;

    CubeWalkClient client;
    ChunkNeighbourhood hood;
    readonly ChunkMesher mesher = new ChunkMesher();
    readonly Dictionary<ChunkKey, ChunkView> views = new Dictionary<ChunkKey, ChunkView>();
    // The views' colliders: a click edits only when it hits one of them.
    readonly HashSet<Collider> viewColliders = new HashSet<Collider>();
    // The material the views share: chunkMaterial, or one made here (and destroyed here).
    Material material;
    Material ownMaterial;
    bool refreshNow;
    readonly CubeEdit[] edit = new CubeEdit[1];
    readonly ChunkVersion[] editResult = new ChunkVersion[1];
    readonly PutRequest put = new PutRequest();
    bool putInFlight;
    // A failure that stopped the sample (drawn until re-enabled), and the latest passing warning.
    string problem;
    string notice;
    float noticeUntil;
    string realtimeProblemShown;
    // The server is out of reach after the world had loaded: shown while it lasts, or null.
    string outage;
    // Guest login: the request in flight, and when to log in again (unscaled seconds).
    const string DeviceSecretKey = "CubeWalk.DeviceSecret";
    GuestLoginRequest login;
    bool guest;
    float loginAgainAt = float.MaxValue;
    float noLoginBefore;
    // Each SetToken starts a generation. A refusal counts only for a request sent with the
    // current token: until a refresh sent with it has ended, the neighbourhood's TokenRefused is
    // the old token's, and a put remembers the generation it was sent in.
    int tokenGeneration;
    int putGeneration;
    bool tokenUnproven;
    bool provingRefresh;

    void OnEnable()
    {
        problem = null;
        notice = null;
        outage = null;
        realtimeProblemShown = null;
        noLoginBefore = 0f;
        tokenUnproven = false;
        provingRefresh = false;
        material = ChunkMaterial();
        if (material == null)
        {
            Fail("CubeWalk: no shader for the chunk meshes. Assign Chunk Material on CubeWalkSample " +
                "(the sample's ChunkMaterial): a player build strips shaders that no asset references.");
            return;
        }
        guest = string.IsNullOrEmpty(token);
        if (guest)
        {
            // The client starts once the login answers (Update polls it).
            LogInAsGuest();
            return;
        }
        Begin(token);
    }

    // The material the chunks are drawn with. Shader.Find only finds shaders that are in the
    // build, so the fallbacks are for the Editor (URP/Lit and Standard ignore vertex colours: a
    // grey world, but not a pink one); null when there is no shader at all (never
    // new Material(null), which throws).
    Material ChunkMaterial()
    {
        if (chunkMaterial != null) return chunkMaterial;
        if (ownMaterial != null) return ownMaterial;
        Shader shader = Shader.Find("CubeWalk/VertexColorLit");
        if (shader == null) shader = Shader.Find("Universal Render Pipeline/Lit");
        if (shader == null) shader = Shader.Find("Standard");
        if (shader == null) return null;
        ownMaterial = new Material(shader);
        return ownMaterial;
    }

    // Plain http is refused except to this machine; say which switch allows it for development.
    string InsecureHint()
    {
        Uri url;
        if (allowInsecureHttpForDevelopment || !Uri.TryCreate(endpoint, UriKind.Absolute, out url) || url.Scheme != "http" || url.IsLoopback)
            return "";
        return " (a development gateway on another machine: tick Allow Insecure Http For Development; never in a shipped build)";
    }

    CubeWalkOptions Options()
    {
        return new CubeWalkOptions { AllowInsecureHttp = allowInsecureHttpForDevelopment };
    }

    // The device's guest identity: made once, then the same secret (the same player) every run.
    // It is a password: kept in PlayerPrefs, never logged.
    static string DeviceSecret()
    {
        string secret = PlayerPrefs.GetString(DeviceSecretKey, "");
        if (secret.Length == 0)
        {
            secret = CubeWalkClient.NewDeviceSecret();
            PlayerPrefs.SetString(DeviceSecretKey, secret);
            PlayerPrefs.Save();
        }
        return secret;
    }

    void LogInAsGuest()
    {
        if (login != null) return;
        try
        {
            login = CubeWalkClient.BeginLoginGuest(endpoint, DeviceSecret(), Options());
        }
        catch (Exception e)
        {
            Fail("Cannot log in as a guest: " + Short(e.Message) + InsecureHint());
            return;
        }
        loginAgainAt = float.MaxValue;
    }

    // Polls the guest login; on success starts the client, or gives a running one the new token.
    void PollLogin()
    {
        if (login == null || !login.Poll()) return;
        GuestLoginRequest done = login;
        login = null;
        if (done.Status != CubeWalkStatus.Ok)
        {
            if (client == null || done.Status == CubeWalkStatus.Banned || done.Status == CubeWalkStatus.BadRequest)
            {
                Fail("Guest login failed: " + Short(done.Error) + InsecureHint());
                return;
            }
            // The old token may still be good: try again in a while.
            Notice("CubeWalk guest login failed, trying again: " + Short(done.Error));
            loginAgainAt = Time.unscaledTime + LoginRetrySeconds;
            noLoginBefore = loginAgainAt;
            return;
        }
        // Log in again at 80% of the token's lifetime, well before it runs out; never sooner than
        // MinLoginInterval, so a server stating a tiny lifetime cannot make it log in every frame.
        loginAgainAt = Time.unscaledTime + Mathf.Max(MinLoginInterval, done.Session.ExpiresIn * 0.8f);
        if (client == null)
        {
            Begin(done.Session.Token);
            return;
        }
        client.SetToken(done.Session.Token);
        tokenGeneration++;
        // Refresh with the new token at once: following over realtime nothing else would, and
        // until a refresh sent with it ends, the refusal on record is the old token's.
        tokenUnproven = true;
        provingRefresh = false;
        refreshNow = true;
    }

    void Begin(string startToken)
    {
        try
        {
            client = new CubeWalkClient(endpoint, startToken, Options());
        }
        catch (Exception e)
        {
            Fail("Cannot start CubeWalk: " + Short(e.Message) + InsecureHint());
            return;
        }
        // Radius 0 would be the player's chunk alone: standing on the ground, that is the air
        // above it. Clamped here too, as a script or an old scene can set any value.
        hood = new ChunkNeighbourhood(client, world, Mathf.Clamp(radius, 1, 4));
        hood.ChunkChanged = OnChunkChanged;
        hood.ChunkLeft = OnChunkLeft;
        // Realtime is an optimisation: when it cannot start (a bad URL) or stays down, the
        // neighbourhood polls, so a failure here is only a passing notice (see Update).
        if (!string.IsNullOrEmpty(realtimeEndpoint)) hood.Follow(realtimeEndpoint);
        if (player == null && Camera.main != null) player = Camera.main.transform;
    }

    void OnDisable()
    {
        Stop();
        if (ownMaterial != null) Destroy(ownMaterial);
        ownMaterial = null;
        material = null;
    }

    // Shuts the client down and releases every view: what disabling does, and what a failure
    // does while keeping the component enabled so OnGUI still draws the reason.
    void Stop()
    {
        // Let go of the client and the neighbourhood before disposing: the shutdown ends what is
        // in flight (a put ends Cancelled), and those callbacks, seeing no neighbourhood, report
        // nothing. Stopping is silent.
        CubeWalkClient stopping = client;
        client = null;
        hood = null;
        if (stopping != null) stopping.Dispose();
        login = null;
        putInFlight = false;
        loginAgainAt = float.MaxValue;
        foreach (var view in views.Values) view.Release();
        views.Clear();
        viewColliders.Clear();
        outage = null;
    }

    void Update()
    {
        if (problem != null) return; // stopped: OnGUI shows why
        if (guest)
        {
            PollLogin();
            if (Time.unscaledTime >= loginAgainAt) LogInAsGuest();
        }
        if (client == null) return;
        client.Update();
        if (client == null) return; // a callback failed and stopped it
        // The refresh sent with a new token has ended: from now on a refusal is the new token's.
        if (provingRefresh && !hood.Busy)
        {
            provingRefresh = false;
            tokenUnproven = false;
        }
        CubeWalkStatus status = hood.LastStatus;
        if (hood.LastError == null)
        {
            if (outage != null) Debug.Log("CubeWalk: the server is back");
            outage = null;
        }
        else if (guest && status == CubeWalkStatus.TokenRefused)
        {
            // An expired guest token: log in again, once per refusal; the neighbourhood keeps
            // retrying meanwhile and picks the new token up with its next request.
            if (!tokenUnproven && Time.unscaledTime >= noLoginBefore) LogInAsGuest();
        }
        else if (Passing(status) && hood.Refreshes > 0)
        {
            // The world had loaded, so the endpoint is right: the server went away (stopped,
            // restarted, the network down). Keep the chunks shown, say so while it lasts (logged
            // once), and let the neighbourhood keep retrying until the server is back.
            if (outage == null) Debug.LogWarning("CubeWalk: lost the server, retrying: " + Short(hood.LastError));
            outage = "CubeWalk: cannot reach the server, retrying: " + Short(hood.LastError);
        }
        else if (Stops(status) || Passing(status))
        {
            // Nothing ever loaded (a wrong URL, a refused connection), or a refusal a retry will
            // not change: stop and say so once.
            Fail("CubeWalk stopped: " + Short(hood.LastError));
            return;
        }
        if (player != null)
        {
            // The chunk views sit in this object's space: the player's position too.
            Vector3 p = transform.InverseTransformPoint(player.position);
            hood.MoveTo(new ChunkKey(Mathf.FloorToInt(p.x / 16f), Mathf.FloorToInt(p.y / 16f), Mathf.FloorToInt(p.z / 16f)));
        }
        if (refreshNow && hood.Refresh())
        {
            refreshNow = false;
            provingRefresh = tokenUnproven;
        }
        hood.Tick(Time.unscaledTime, refreshEvery);
        // Realtime going off (or failing to start) is news once per reason, not every retry.
        if (hood.RealtimeProblem != null && hood.RealtimeProblem != realtimeProblemShown)
            Notice("CubeWalk realtime off, polling instead: " + Short(hood.RealtimeProblem));
        realtimeProblemShown = hood.RealtimeProblem;

        bool place, remove;
        Vector3 pointer;
        ReadPointer(out place, out remove, out pointer);
        RaycastHit hit;
        if ((place || remove) && !putInFlight && Camera.main != null &&
            Physics.Raycast(Camera.main.ScreenPointToRay(pointer), out hit, 64f) &&
            viewColliders.Contains(hit.collider)) // something else in the scene: not a cube
        {
            // Place in front of the hit face, remove the hit cube itself; in this object's space,
            // where one unit is one cube wherever the object is and however it is turned.
            Vector3 cube = transform.InverseTransformPoint(hit.point) +
                transform.InverseTransformDirection(hit.normal) * (place ? 0.5f : -0.5f);
            int cx = Mathf.FloorToInt(cube.x), cy = Mathf.FloorToInt(cube.y), cz = Mathf.FloorToInt(cube.z);
            var chunk = new ChunkKey(FloorDiv(cx), FloorDiv(cy), FloorDiv(cz));
            edit[0] = new CubeEdit(chunk, cx - chunk.X * 16, cy - chunk.Y * 16, cz - chunk.Z * 16, place ? placeValue : 0);
            client.BeginPut(world, edit, editResult, OnPut, put);
            putInFlight = true;
            putGeneration = tokenGeneration;
        }
    }

    // Failures a retry will not fix: stop and say so once.
    static bool Stops(CubeWalkStatus s)
    {
        return s == CubeWalkStatus.Unauthorized || s == CubeWalkStatus.Forbidden || s == CubeWalkStatus.InvalidArgument
            || s == CubeWalkStatus.NotInitialized || s == CubeWalkStatus.Banned || s == CubeWalkStatus.TokenRefused;
    }

    // The server out of reach or failing: passing once the world has loaded (the neighbourhood
    // retries), fatal before (most likely a wrong endpoint).
    static bool Passing(CubeWalkStatus s)
    {
        return s == CubeWalkStatus.Network || s == CubeWalkStatus.Timeout || s == CubeWalkStatus.ServerError;
    }

    // A native error text made readable on screen: its first line, without query strings (a
    // fetch's URL lists every chunk key), at most ShownErrorLength characters.
    static string Short(string error)
    {
        if (string.IsNullOrEmpty(error)) return "";
        int end = error.IndexOfAny(new[] { '\r', '\n' });
        if (end >= 0) error = error.Substring(0, end);
        error = Regex.Replace(error, @"\?[^\s)\]""']*", "");
        return error.Length <= ShownErrorLength ? error : error.Substring(0, ShownErrorLength - 3) + "...";
    }

    // Left button places, right button removes; looking around is not on either (see
    // SampleFirstPerson), so a click never both turns the view and edits.
    static void ReadPointer(out bool place, out bool remove, out Vector3 pointer)
    {
#if ENABLE_INPUT_SYSTEM
        var mouse = Mouse.current;
        place = mouse != null && mouse.leftButton.wasPressedThisFrame;
        remove = mouse != null && mouse.rightButton.wasPressedThisFrame;
        pointer = mouse != null ? (Vector3)mouse.position.ReadValue() : Vector3.zero;
#else
        place = Input.GetMouseButtonDown(0);
        remove = Input.GetMouseButtonDown(1);
        pointer = Input.mousePosition;
#endif
    }

    // Stops for good (until the component is enabled again), keeping the component enabled so
    // OnGUI keeps drawing the message.
    void Fail(string message)
    {
        problem = message;
        Debug.LogError(message);
        Stop();
    }

    // A passing problem: on screen for a few seconds, and in the Console.
    void Notice(string message)
    {
        notice = message;
        noticeUntil = Time.unscaledTime + NoticeSeconds;
        Debug.LogWarning(message);
    }

    void OnGUI()
    {
        if (problem != null) GUI.Label(new Rect(10, 10, Screen.width - 20, 60), problem);
        else if (outage != null) GUI.Label(new Rect(10, 10, Screen.width - 20, 40), outage);
        else if (notice != null && Time.unscaledTime < noticeUntil) GUI.Label(new Rect(10, 10, Screen.width - 20, 40), notice);
    }

    static int FloorDiv(int v) { return v >= 0 ? v / 16 : (v - 15) / 16; }

    void OnPut(PutRequest r)
    {
        putInFlight = false;
        if (hood == null || r.Status == CubeWalkStatus.Cancelled) return; // stopped meanwhile
        if (r.Status == CubeWalkStatus.TokenRefused && guest)
        {
            // Sent with the token before the latest login: that login already answered this.
            if (putGeneration == tokenGeneration && Time.unscaledTime >= noLoginBefore) LogInAsGuest();
        }
        else if (r.Status == CubeWalkStatus.RateLimited) Notice("CubeWalk: editing too fast, slow down: " + Short(r.Error));
        else if (r.Status != CubeWalkStatus.Ok) Notice("CubeWalk put failed: " + Short(r.Error));
        else refreshNow = !hood.IsFollowing; // following: the change comes back as an event
    }

    void OnChunkChanged(int index)
    {
        if (hood == null) return; // stopped meanwhile
        ChunkKey key = hood.Keys[index];
        mesher.Build(hood.Buffers[index]);
        ChunkView view;
        bool shown = views.TryGetValue(key, out view);
        if (mesher.VertexCount == 0)
        {
            // Air (or emptied): nothing to draw or to click on, so no view at all.
            if (shown)
            {
                viewColliders.Remove(view.Collider);
                view.Release();
                views.Remove(key);
            }
            return;
        }
        if (!shown)
        {
            view = new ChunkView(key, transform, material);
            views.Add(key, view);
            viewColliders.Add(view.Collider);
        }
        view.Show(mesher);
    }

    // The neighbourhood moved on: this chunk's view (GameObject and Mesh) goes.
    void OnChunkLeft(ChunkKey key)
    {
        ChunkView view;
        if (!views.TryGetValue(key, out view)) return;
        viewColliders.Remove(view.Collider);
        view.Release();
        views.Remove(key);
    }

    /// <summary>One chunk on screen: a GameObject with a mesh, a renderer and a collider (the
    /// collider is what the click raycast hits). Its arrays are reused across rebuilds. The mesh
    /// is an asset-like object that destroying the GameObject does not free, so
    /// <see cref="Release"/> destroys both.</summary>
    sealed class ChunkView
    {
        readonly GameObject go;
        readonly Mesh mesh = new Mesh();
        readonly MeshCollider collider;
        readonly List<Vector3> positions = new List<Vector3>();
        readonly List<Vector3> normals = new List<Vector3>();
        readonly List<Color32> colors = new List<Color32>();
        readonly List<int> triangles = new List<int>();

        internal ChunkView(ChunkKey key, Transform parent, Material material)
        {
            mesh.name = "Chunk " + key;
            go = new GameObject("Chunk " + key);
            go.transform.SetParent(parent, false);
            go.transform.localPosition = new Vector3(key.X * 16, key.Y * 16, key.Z * 16);
            go.AddComponent<MeshFilter>().sharedMesh = mesh;
            go.AddComponent<MeshRenderer>().sharedMaterial = material;
            collider = go.AddComponent<MeshCollider>();
        }

        internal Collider Collider { get { return collider; } }

        // Only ever called with faces to show (a chunk without any has no view).
        internal void Show(ChunkMesher m)
        {
            positions.Clear(); normals.Clear(); colors.Clear(); triangles.Clear();
            for (int v = 0; v < m.VertexCount; v++)
            {
                positions.Add(new Vector3(m.Positions[v * 3], m.Positions[v * 3 + 1], m.Positions[v * 3 + 2]));
                normals.Add(new Vector3(m.Normals[v * 3], m.Normals[v * 3 + 1], m.Normals[v * 3 + 2]));
                colors.Add(ColorOf(m.Values[v]));
            }
            for (int i = 0; i < m.IndexCount; i++) triangles.Add(m.Indices[i]);
            mesh.Clear();
            mesh.SetVertices(positions);
            mesh.SetNormals(normals);
            mesh.SetColors(colors);
            mesh.SetTriangles(triangles, 0);
            collider.sharedMesh = null; // re-cook the collider from the new mesh
            collider.sharedMesh = mesh;
        }

        // One colour per cube value: a few named ones, a hash for the rest.
        static Color32 ColorOf(int value)
        {
            switch (value)
            {
                case 1: return new Color32(128, 128, 128, 255); // stone
                case 2: return new Color32(134, 96, 67, 255);   // dirt
                case 3: return new Color32(95, 159, 53, 255);   // grass
                default:
                    unchecked
                    {
                        uint h = (uint)value * 2654435761u;
                        return new Color32((byte)(h >> 24), (byte)(h >> 16), (byte)(h >> 8), 255);
                    }
            }
        }

        internal void Release()
        {
            UnityEngine.Object.Destroy(go);
            UnityEngine.Object.Destroy(mesh);
        }
    }
}
