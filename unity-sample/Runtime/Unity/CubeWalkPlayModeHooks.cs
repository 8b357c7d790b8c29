#if UNITY_EDITOR
using UnityEditor;

namespace CubeWalk.Unity
{
    /// <summary>
    /// The Unity Editor keeps native plugins loaded between Play sessions. Shut the library down
    /// when leaving Play mode (cancelling requests and unpinning buffers) and initialize it again
    /// on entering, so the second Play session works like the first. Editor-only glue; the logic
    /// lives in <see cref="CubeWalkClient"/>.
    /// </summary>
    [InitializeOnLoad]
    static class CubeWalkPlayModeHooks
    {
        static CubeWalkPlayModeHooks()
        {
            EditorApplication.playModeStateChanged += OnPlayModeChanged;
        }

        static void OnPlayModeChanged(PlayModeStateChange change)
        {
            var client = CubeWalkClient.Current;
            if (client == null) return;
            if (change == PlayModeStateChange.ExitingPlayMode) client.Shutdown();
            else if (change == PlayModeStateChange.EnteredPlayMode) client.Reinitialize();
        }
    }
}
#endif
