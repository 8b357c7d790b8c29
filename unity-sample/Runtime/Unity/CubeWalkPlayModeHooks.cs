#if UNITY_EDITOR
using UnityEditor;

namespace CubeWalk.Unity
{
    /// <summary>
    /// The Unity Editor keeps native plugins loaded between Play sessions and across script
    /// reloads. Leaving Play mode shuts every client down (cancelling requests and unpinning
    /// buffers) and entering it again reinitializes them, so the second Play session works like
    /// the first; before an assembly reload every request in flight is cancelled and the library
    /// shut down, so nothing is written into the domain being unloaded. Editor-only glue; the
    /// logic lives in <see cref="CubeWalkClient"/>.
    /// </summary>
    [InitializeOnLoad]
    static class CubeWalkPlayModeHooks
    {
        static CubeWalkPlayModeHooks()
        {
            EditorApplication.playModeStateChanged += OnPlayModeChanged;
            AssemblyReloadEvents.beforeAssemblyReload += CubeWalkClient.ShutdownAll;
        }

        static void OnPlayModeChanged(PlayModeStateChange change)
        {
            if (change == PlayModeStateChange.ExitingPlayMode) CubeWalkClient.SuspendAll();
            else if (change == PlayModeStateChange.EnteredPlayMode) CubeWalkClient.ResumeAll();
        }
    }
}
#endif
