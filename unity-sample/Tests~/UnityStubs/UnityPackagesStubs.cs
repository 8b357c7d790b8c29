// Stand-ins for types of Unity's packages under the root namespace Unity (Unity.Mathematics,
// Unity.Collections, ...), so run-tests.sh can check that the CubeWalk.Net assembly declares no
// namespace that hides them from game code in a CubeWalk.* namespace.
namespace Unity.Mathematics
{
    public struct float3
    {
        public float x, y, z;
        public float3(float x, float y, float z) { this.x = x; this.y = y; this.z = z; }
    }
}
