#if UNITY_2018_1_OR_NEWER
using System;
using UnityEngine;
using UnityEngine.LowLevel;

namespace CubeWalk
{
    /// <summary>
    /// Runs the managed transport's UnityWebRequest pump and its realtime followers (the MQTT
    /// connection over the browser's WebSocket in WebGL) once per frame on the main thread, as a
    /// system of the player loop's Update phase: clients may begin and poll requests on any
    /// thread, but only the main thread may touch a UnityWebRequest or the browser. Installed
    /// before the first scene loads, in the Editor and in players alike, with no MonoBehaviour to
    /// keep alive.
    /// </summary>
    static class CubeWalkPlayerLoop
    {
        [RuntimeInitializeOnLoadMethod(RuntimeInitializeLoadType.SubsystemRegistration)]
        static void Install()
        {
            // RuntimeInitializeOnLoadMethod runs on the main thread.
            Managed.UnityWebRequestSender.SetMainThread();
            PlayerLoopSystem root = PlayerLoop.GetCurrentPlayerLoop();
            if (AddToUpdate(ref root)) PlayerLoop.SetPlayerLoop(root);
        }

        // Adds (or, after Enter Play Mode without a domain reload, replaces) our system at the end
        // of the Update phase; false when the loop has no Update phase.
        static bool AddToUpdate(ref PlayerLoopSystem root)
        {
            PlayerLoopSystem[] phases = root.subSystemList;
            if (phases == null) return false;
            for (int i = 0; i < phases.Length; i++)
            {
                if (phases[i].type != typeof(UnityEngine.PlayerLoop.Update)) continue;
                PlayerLoopSystem[] systems = phases[i].subSystemList ?? new PlayerLoopSystem[0];
                var pump = new PlayerLoopSystem
                {
                    type = typeof(CubeWalkPlayerLoop),
                    updateDelegate = Managed.ManagedLoop.Pump,
                };
                // Matched by name: a system left by an earlier load of this assembly has another Type.
                for (int j = 0; j < systems.Length; j++)
                {
                    if (systems[j].type == null || systems[j].type.FullName != typeof(CubeWalkPlayerLoop).FullName) continue;
                    systems[j] = pump;
                    phases[i].subSystemList = systems;
                    return true;
                }
                var more = new PlayerLoopSystem[systems.Length + 1];
                Array.Copy(systems, more, systems.Length);
                more[systems.Length] = pump;
                phases[i].subSystemList = more;
                return true;
            }
            return false;
        }
    }
}
#endif
