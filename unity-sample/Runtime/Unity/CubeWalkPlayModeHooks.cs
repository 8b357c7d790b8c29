#if UNITY_EDITOR
using UnityEditor;

// Namespace CubeWalk, not CubeWalk.Unity: a CubeWalk.Unity namespace would make `Unity.X` in any
// game code under a CubeWalk.* namespace resolve to CubeWalk.Unity.X (CS0234 for
// Unity.Mathematics, Unity.Collections, ...).
namespace CubeWalk
{
    /// <summary>
    /// The Unity Editor keeps native plugins loaded between Play sessions and across script
    /// reloads. Leaving Play mode shuts every client down (cancelling requests and unpinning
    /// buffers) and entering it again reinitializes them, so the second Play session works like
    /// the first; before an assembly reload every request in flight is cancelled and the library
    /// shut down, so nothing is written into the domain being unloaded. Outside Play mode the
    /// player loop does not run, so the Editor's update drives managed-transport requests (edit
    /// mode tools). Editor-only glue; the logic lives in <see cref="CubeWalkClient"/>.
    /// </summary>
    [InitializeOnLoad]
    static class CubeWalkPlayModeHooks
    {
        static CubeWalkPlayModeHooks()
        {
            // [InitializeOnLoad] constructors run on the main thread, before any edit-mode request.
            Managed.UnityWebRequestSender.SetMainThread();
            EditorApplication.update += Managed.ManagedLoop.Pump;
            EditorApplication.playModeStateChanged += OnPlayModeChanged;
            AssemblyReloadEvents.beforeAssemblyReload += CubeWalkClient.ShutdownAll;
            AssemblyReloadEvents.beforeAssemblyReload += Managed.UnityWebRequestSender.AbortAll;
        }

        static void OnPlayModeChanged(PlayModeStateChange change)
        {
            if (change == PlayModeStateChange.ExitingPlayMode) CubeWalkClient.SuspendAll();
            else if (change == PlayModeStateChange.EnteredPlayMode) CubeWalkClient.ResumeAll();
        }
    }
}
#endif
