using CubeWalk;
using CubeWalk.Native;
using UnityEngine;

/// <summary>
/// Sample: keeps the chunks around the player loaded with non-blocking fetches (only changed
/// chunks travel), and places (left click) or removes (right click) a cube with a put. Thin
/// Unity glue over <see cref="CubeWalkClient"/> and <see cref="ChunkNeighbourhood"/>.
/// </summary>
public class CubeWalkSample : MonoBehaviour
{
    [Tooltip("The /cubewalkblocks URL: the local gateway's, or the ApiUrl output of the AWS stack.")]
    public string endpoint = "http://127.0.0.1:3000/prod/cubewalkblocks";
    [Tooltip("A token the authorizer accepts (the dev token printed by cubewalk-server serve).")]
    public string token = "";
    public string world = "default";
    [Range(0, 4)] public int radius = 1;
    [Tooltip("Seconds between refreshes of the neighbourhood.")]
    public float refreshEvery = 0.5f;
    public Transform player;
    public int placeValue = 1;

    CubeWalkClient client;
    ChunkNeighbourhood hood;
    float nextRefresh;
    readonly CubeEdit[] edit = new CubeEdit[1];
    readonly ChunkVersion[] editResult = new ChunkVersion[1];
    readonly PutRequest put = new PutRequest();
    bool putInFlight;

    void OnEnable()
    {
        client = new CubeWalkClient(endpoint, token);
        hood = new ChunkNeighbourhood(client, world, radius);
        hood.ChunkChanged = OnChunkChanged;
    }

    void OnDisable()
    {
        client.Dispose();
    }

    void Update()
    {
        client.Update();
        if (player != null)
        {
            Vector3 p = player.position;
            hood.MoveTo(new ChunkKey(Mathf.FloorToInt(p.x / 16f), Mathf.FloorToInt(p.y / 16f), Mathf.FloorToInt(p.z / 16f)));
        }
        if (Time.unscaledTime >= nextRefresh && hood.Refresh()) nextRefresh = Time.unscaledTime + refreshEvery;

        bool place = Input.GetMouseButtonDown(0), remove = Input.GetMouseButtonDown(1);
        RaycastHit hit;
        if ((place || remove) && !putInFlight && Camera.main != null &&
            Physics.Raycast(Camera.main.ScreenPointToRay(Input.mousePosition), out hit, 64f))
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

    static int FloorDiv(int v) { return v >= 0 ? v / 16 : (v - 15) / 16; }

    void OnPut(PutRequest r)
    {
        putInFlight = false;
        if (r.Status != CwStatus.Ok) Debug.LogWarning("CubeWalk put failed: " + r.Error);
        else nextRefresh = 0; // fetch the edited chunk at once
    }

    void OnChunkChanged(int index)
    {
        // Hand hood.Buffers[index] (int[4096], game order) to the chunk mesher here.
        Debug.Log("chunk " + hood.Keys[index] + " now at version " + hood.Versions[index]);
    }
}
