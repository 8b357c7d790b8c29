using System;
using System.Collections.Generic;
using CubeWalk;
using UnityEngine;
#if ENABLE_INPUT_SYSTEM
using UnityEngine.InputSystem;
#endif

/// <summary>
/// Sample: shows the chunks around the player (one mesh and collider per chunk, rebuilt when a
/// chunk changes), follows other players' edits over the realtime (WebSocket) API (polling with
/// non-blocking fetches, where only changed chunks travel, when realtime is off or down), and
/// places (left click) or removes (right click) the cube under the crosshair with a put. Works
/// with the Input System package and with the legacy Input Manager. With no token configured it
/// logs in as a guest (a device secret made once and kept in PlayerPrefs) and logs in again
/// before the token expires (at 80% of its lifetime) or when the API answers TokenRefused,
/// handing the new token to <see cref="CubeWalkClient.SetToken"/> without restarting anything.
/// A wrong token, a ban or an unreachable endpoint shows one message, on screen and in the
/// Console, and disables the component; nothing throws every frame. Thin Unity glue over <see cref="CubeWalkClient"/>,
/// <see cref="ChunkNeighbourhood"/> and <see cref="ChunkMesher"/>.
/// </summary>
public class CubeWalkSample : MonoBehaviour
{
    [Tooltip("The /cubewalkblocks URL: the local gateway's, or the ApiUrl output of the AWS stack.")]
    public string endpoint = "http://127.0.0.1:3000/prod/cubewalkblocks";
    [Tooltip("A token the authorizer accepts (the dev token printed by cubewalk-server serve). Empty: log in as a guest.")]
    public string token = "";
    public string world = "default";
    [Range(0, 4)] public int radius = 1;
    [Tooltip("The WebSocket URL for other players' edits: the local gateway's, or the RealtimeUrl output of the AWS stack. Empty: poll instead.")]
    public string realtimeEndpoint = "ws://127.0.0.1:3000/prod";
    [Tooltip("Seconds between refreshes of the neighbourhood while not following over realtime.")]
    public float refreshEvery = 0.5f;
    [Tooltip("The player's transform; the camera's when empty.")]
    public Transform player;
    public int placeValue = 1;
    [Tooltip("Material for the chunk meshes (vertex colours); a default one when empty.")]
    public Material chunkMaterial;

    CubeWalkClient client;
    ChunkNeighbourhood hood;
    readonly ChunkMesher mesher = new ChunkMesher();
    readonly Dictionary<ChunkKey, ChunkView> views = new Dictionary<ChunkKey, ChunkView>();
    bool refreshNow;
    readonly CubeEdit[] edit = new CubeEdit[1];
    readonly ChunkVersion[] editResult = new ChunkVersion[1];
    readonly PutRequest put = new PutRequest();
    bool putInFlight;
    string problem;
    // Guest login: the request in flight, and when to log in again (unscaled seconds).
    const string DeviceSecretKey = "CubeWalk.DeviceSecret";
    GuestLoginRequest login;
    bool guest;
    float loginAgainAt = float.MaxValue;

    void OnEnable()
    {
        problem = null;
        guest = string.IsNullOrEmpty(token);
        if (guest)
        {
            // The client starts once the login answers (Update polls it).
            LogInAsGuest();
            return;
        }
        Begin(token);
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
            login = CubeWalkClient.BeginLoginGuest(endpoint, DeviceSecret());
        }
        catch (Exception e)
        {
            Fail("Cannot log in as a guest: " + e.Message);
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
                Fail("Guest login failed: " + done.Error);
                return;
            }
            // The old token may still be good: try again in a while.
            Debug.LogWarning("CubeWalk guest login failed, trying again: " + done.Error);
            loginAgainAt = Time.unscaledTime + 5f;
            return;
        }
        // Log in again at 80% of the token's lifetime, well before it runs out.
        loginAgainAt = Time.unscaledTime + done.Session.ExpiresIn * 0.8f;
        if (client == null) Begin(done.Session.Token);
        else client.SetToken(done.Session.Token);
    }

    void Begin(string startToken)
    {
        try
        {
            client = new CubeWalkClient(endpoint, startToken);
        }
        catch (Exception e)
        {
            Fail("Cannot start CubeWalk: " + e.Message);
            return;
        }
        hood = new ChunkNeighbourhood(client, world, radius);
        hood.ChunkChanged = OnChunkChanged;
        // Realtime is an optimisation: when it cannot start (a WebGL build) or stays down, the
        // neighbourhood polls, so a failure here is only worth a warning.
        if (!string.IsNullOrEmpty(realtimeEndpoint) && !hood.Follow(realtimeEndpoint))
            Debug.LogWarning("CubeWalk realtime off, polling instead: " + hood.RealtimeProblem);
        if (player == null && Camera.main != null) player = Camera.main.transform;
    }

    void OnDisable()
    {
        if (client != null) client.Dispose();
        client = null;
        login = null;
        loginAgainAt = float.MaxValue;
        foreach (var view in views.Values) view.Destroy();
        views.Clear();
    }

    void Update()
    {
        if (guest)
        {
            PollLogin();
            if (Time.unscaledTime >= loginAgainAt) LogInAsGuest();
        }
        if (client == null) return;
        client.Update();
        // An expired guest token: log in again; the neighbourhood keeps retrying meanwhile and
        // picks the new token up with its next request.
        if (guest && hood.LastStatus == CubeWalkStatus.TokenRefused) LogInAsGuest();
        else if (hood.LastError != null && Stops(hood.LastStatus))
        {
            Fail("CubeWalk stopped: " + hood.LastError);
            return;
        }
        if (player != null)
        {
            Vector3 p = player.position;
            hood.MoveTo(new ChunkKey(Mathf.FloorToInt(p.x / 16f), Mathf.FloorToInt(p.y / 16f), Mathf.FloorToInt(p.z / 16f)));
        }
        if (refreshNow && hood.Refresh()) refreshNow = false;
        hood.Tick(Time.unscaledTime, refreshEvery);

        bool place, remove;
        Vector3 pointer;
        ReadPointer(out place, out remove, out pointer);
        RaycastHit hit;
        if ((place || remove) && !putInFlight && Camera.main != null &&
            Physics.Raycast(Camera.main.ScreenPointToRay(pointer), out hit, 64f))
        {
            // Place in front of the hit face, remove the hit cube itself.
            Vector3 cube = hit.point + hit.normal * (place ? 0.5f : -0.5f);
            int cx = Mathf.FloorToInt(cube.x), cy = Mathf.FloorToInt(cube.y), cz = Mathf.FloorToInt(cube.z);
            var chunk = new ChunkKey(FloorDiv(cx), FloorDiv(cy), FloorDiv(cz));
            edit[0] = new CubeEdit(chunk, cx - chunk.X * 16, cy - chunk.Y * 16, cz - chunk.Z * 16, place ? placeValue : 0);
            client.BeginPut(world, edit, editResult, OnPut, put);
            putInFlight = true;
        }
    }

    // Failures a retry will not fix: stop and say so once.
    static bool Stops(CubeWalkStatus s)
    {
        return s == CubeWalkStatus.Unauthorized || s == CubeWalkStatus.Forbidden || s == CubeWalkStatus.InvalidArgument
            || s == CubeWalkStatus.Network || s == CubeWalkStatus.NotInitialized || s == CubeWalkStatus.Banned
            || s == CubeWalkStatus.TokenRefused;
    }

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

    void Fail(string message)
    {
        problem = message;
        Debug.LogError(message);
        enabled = false;
    }

    void OnGUI()
    {
        if (problem != null) GUI.Label(new Rect(10, 10, Screen.width - 20, 60), problem);
    }

    static int FloorDiv(int v) { return v >= 0 ? v / 16 : (v - 15) / 16; }

    void OnPut(PutRequest r)
    {
        putInFlight = false;
        if (r.Status == CubeWalkStatus.TokenRefused && guest) LogInAsGuest();
        else if (r.Status == CubeWalkStatus.RateLimited) Debug.LogWarning("CubeWalk: editing too fast, slow down: " + r.Error);
        else if (r.Status != CubeWalkStatus.Ok) Debug.LogWarning("CubeWalk put failed: " + r.Error);
        else refreshNow = !hood.IsFollowing; // following: the change comes back as an event
    }

    void OnChunkChanged(int index)
    {
        ChunkKey key = hood.Keys[index];
        ChunkView view;
        if (!views.TryGetValue(key, out view))
        {
            view = new ChunkView(key, transform, chunkMaterial);
            views.Add(key, view);
        }
        mesher.Build(hood.Buffers[index]);
        view.Show(mesher);
    }

    /// <summary>One chunk on screen: a GameObject with a mesh, a renderer and a collider (the
    /// collider is what the click raycast hits). Its arrays are reused across rebuilds.</summary>
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
            go = new GameObject("Chunk " + key);
            go.transform.SetParent(parent, false);
            go.transform.localPosition = new Vector3(key.X * 16, key.Y * 16, key.Z * 16);
            go.AddComponent<MeshFilter>().sharedMesh = mesh;
            go.AddComponent<MeshRenderer>().sharedMaterial = material != null ? material : new Material(Shader.Find("Standard"));
            collider = go.AddComponent<MeshCollider>();
        }

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

        internal void Destroy()
        {
            UnityEngine.Object.Destroy(go);
        }
    }
}
