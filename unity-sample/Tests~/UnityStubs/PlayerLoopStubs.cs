// Working stand-ins for Unity's player loop (UnityEngine.LowLevel.PlayerLoop), its
// [RuntimeInitializeOnLoadMethod] and the Editor's update loop, plus TestEngine: the test side of
// the engine, which says which thread is Unity's main thread, runs an assembly's initialize-on-load
// methods, and runs frames. Signatures follow Unity's; the engine runs only when a test drives it.
using System;
using System.Collections.Generic;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Threading;

namespace UnityEngine
{
    /// <summary>When a [RuntimeInitializeOnLoadMethod] runs, in Unity's order of the values below
    /// (SubsystemRegistration first).</summary>
    public enum RuntimeInitializeLoadType
    {
        AfterSceneLoad = 0,
        BeforeSceneLoad = 1,
        AfterAssembliesLoaded = 2,
        BeforeSplashScreen = 3,
        SubsystemRegistration = 4,
    }

    /// <summary>Marks a static method the engine runs once at start (TestEngine.RunInitializeOnLoadMethods).</summary>
    [AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
    public sealed class RuntimeInitializeOnLoadMethodAttribute : Attribute
    {
        public RuntimeInitializeOnLoadMethodAttribute() { loadType = RuntimeInitializeLoadType.AfterSceneLoad; }
        public RuntimeInitializeOnLoadMethodAttribute(RuntimeInitializeLoadType loadType) { this.loadType = loadType; }
        public RuntimeInitializeLoadType loadType { get; private set; }
    }

    /// <summary>The engine as tests drive it. Partial: other stand-in files add their parts.</summary>
    public static partial class TestEngine
    {
        static volatile int mainThreadId;
        static int frameCount;

        /// <summary>Makes the calling thread Unity's main thread (where UnityWebRequest and the
        /// player loop may run); every other thread is not.</summary>
        public static void BecomeMainThread()
        {
            mainThreadId = Thread.CurrentThread.ManagedThreadId;
        }

        /// <summary>Whether the calling thread is the main thread.</summary>
        public static bool IsMainThread
        {
            get { int id = mainThreadId; return id != 0 && id == Thread.CurrentThread.ManagedThreadId; }
        }

        /// <summary>Throws as Unity does when a main-thread-only API is used on another thread.</summary>
        public static void RequireMainThread(string api)
        {
            if (!IsMainThread)
                throw new InvalidOperationException(api + " can only be called from the main thread. Constructors and field "
                    + "initializers will be executed from the loading thread when loading a scene.");
        }

        /// <summary>Frames run so far by <see cref="RunPlayerLoopOnce"/>.</summary>
        public static int FrameCount { get { return Volatile.Read(ref frameCount); } }

        /// <summary>Runs every [RuntimeInitializeOnLoadMethod] static method of <paramref name="assembly"/>
        /// on the calling thread (the main thread), in Unity's order of load types.</summary>
        public static void RunInitializeOnLoadMethods(Assembly assembly)
        {
            RequireMainThread("RunInitializeOnLoadMethods");
            var found = new List<KeyValuePair<RuntimeInitializeLoadType, MethodInfo>>();
            foreach (Type t in assembly.GetTypes())
                foreach (MethodInfo m in t.GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
                {
                    var a = (RuntimeInitializeOnLoadMethodAttribute)Attribute.GetCustomAttribute(m, typeof(RuntimeInitializeOnLoadMethodAttribute));
                    if (a != null) found.Add(new KeyValuePair<RuntimeInitializeLoadType, MethodInfo>(a.loadType, m));
                }
            foreach (RuntimeInitializeLoadType when in new[] { RuntimeInitializeLoadType.SubsystemRegistration,
                RuntimeInitializeLoadType.AfterAssembliesLoaded, RuntimeInitializeLoadType.BeforeSplashScreen,
                RuntimeInitializeLoadType.BeforeSceneLoad, RuntimeInitializeLoadType.AfterSceneLoad })
                foreach (var f in found)
                    if (f.Key == when) InvokeUnwrapped(f.Value);
        }

        /// <summary>Runs the static constructor of every [InitializeOnLoad] class of
        /// <paramref name="assembly"/> (the Editor does on load), on the calling thread.</summary>
        public static void RunInitializeOnLoadClasses(Assembly assembly)
        {
            RequireMainThread("RunInitializeOnLoadClasses");
            foreach (Type t in assembly.GetTypes())
                if (Attribute.IsDefined(t, typeof(UnityEditor.InitializeOnLoadAttribute)))
                    RuntimeHelpers.RunClassConstructor(t.TypeHandle);
        }

        /// <summary>One frame: every updateDelegate of the current player loop, depth first in
        /// order, on the main thread.</summary>
        public static void RunPlayerLoopOnce()
        {
            RequireMainThread("RunPlayerLoopOnce");
            Run(LowLevel.PlayerLoop.GetCurrentPlayerLoop());
            Interlocked.Increment(ref frameCount);
        }

        /// <summary>One Editor update: <see cref="UnityEditor.EditorApplication.update"/>, on the main thread.</summary>
        public static void RunEditorUpdateOnce()
        {
            RequireMainThread("RunEditorUpdateOnce");
            UnityEditor.EditorApplication.CallbackFunction update = UnityEditor.EditorApplication.update;
            if (update != null) update();
        }

        static void Run(LowLevel.PlayerLoopSystem system)
        {
            if (system.updateDelegate != null) system.updateDelegate();
            if (system.subSystemList != null)
                foreach (LowLevel.PlayerLoopSystem s in system.subSystemList) Run(s);
        }

        static void InvokeUnwrapped(MethodInfo m)
        {
            try
            {
                m.Invoke(null, null);
            }
            catch (TargetInvocationException e)
            {
                throw new InvalidOperationException("[RuntimeInitializeOnLoadMethod] " + m.DeclaringType.FullName + "." + m.Name + " threw", e.InnerException);
            }
        }
    }
}

namespace UnityEngine.LowLevel
{
    /// <summary>A node of the player loop: a phase or a system, with what it runs each frame.</summary>
    public struct PlayerLoopSystem
    {
        public Type type;
        public PlayerLoopSystem[] subSystemList;
        public UpdateFunction updateDelegate;
        public IntPtr updateFunction;
        public IntPtr loopConditionFunction;

        public delegate void UpdateFunction();
    }

    /// <summary>The player loop; Get returns a copy, as Unity's does, so a change takes effect only through Set.</summary>
    public class PlayerLoop
    {
        static PlayerLoopSystem current = GetDefaultPlayerLoop();
        static readonly object gate = new object();

        public static PlayerLoopSystem GetDefaultPlayerLoop()
        {
            Func<Type, Type[], PlayerLoopSystem> phase = (t, systems) =>
            {
                var list = new PlayerLoopSystem[systems.Length];
                for (int i = 0; i < systems.Length; i++) list[i] = new PlayerLoopSystem { type = systems[i] };
                return new PlayerLoopSystem { type = t, subSystemList = list };
            };
            return new PlayerLoopSystem
            {
                subSystemList = new[]
                {
                    phase(typeof(UnityEngine.PlayerLoop.TimeUpdate), new Type[0]),
                    phase(typeof(UnityEngine.PlayerLoop.Initialization), new Type[0]),
                    phase(typeof(UnityEngine.PlayerLoop.EarlyUpdate), new Type[0]),
                    phase(typeof(UnityEngine.PlayerLoop.FixedUpdate), new[] { typeof(UnityEngine.PlayerLoop.FixedUpdate.ScriptRunBehaviourFixedUpdate) }),
                    phase(typeof(UnityEngine.PlayerLoop.PreUpdate), new Type[0]),
                    phase(typeof(UnityEngine.PlayerLoop.Update), new[] { typeof(UnityEngine.PlayerLoop.Update.ScriptRunBehaviourUpdate) }),
                    phase(typeof(UnityEngine.PlayerLoop.PreLateUpdate), new[] { typeof(UnityEngine.PlayerLoop.PreLateUpdate.ScriptRunBehaviourLateUpdate) }),
                    phase(typeof(UnityEngine.PlayerLoop.PostLateUpdate), new Type[0]),
                },
            };
        }

        public static PlayerLoopSystem GetCurrentPlayerLoop()
        {
            lock (gate) return Copy(current);
        }

        public static void SetPlayerLoop(PlayerLoopSystem loop)
        {
            lock (gate) current = Copy(loop);
        }

        static PlayerLoopSystem Copy(PlayerLoopSystem s)
        {
            if (s.subSystemList != null)
            {
                var list = new PlayerLoopSystem[s.subSystemList.Length];
                for (int i = 0; i < list.Length; i++) list[i] = Copy(s.subSystemList[i]);
                s.subSystemList = list;
            }
            return s;
        }
    }
}

namespace UnityEngine.PlayerLoop
{
    public struct TimeUpdate { }
    public struct Initialization { }
    public struct EarlyUpdate { }
    public struct FixedUpdate { public struct ScriptRunBehaviourFixedUpdate { } }
    public struct PreUpdate { }
    public struct Update { public struct ScriptRunBehaviourUpdate { } }
    public struct PreLateUpdate { public struct ScriptRunBehaviourLateUpdate { } }
    public struct PostLateUpdate { }
}

namespace UnityEditor
{
    public enum PlayModeStateChange { EnteredEditMode, ExitingEditMode, EnteredPlayMode, ExitingPlayMode }
    public static class EditorApplication
    {
        public delegate void CallbackFunction();
        /// <summary>Called on every Editor update (TestEngine.RunEditorUpdateOnce), in and out of Play mode.</summary>
        public static CallbackFunction update;
        public static event Action<PlayModeStateChange> playModeStateChanged;
    }
    [AttributeUsage(AttributeTargets.Class)]
    public class InitializeOnLoadAttribute : Attribute { }
    public static class AssemblyReloadEvents
    {
        public delegate void AssemblyReloadCallback();
        public static event AssemblyReloadCallback beforeAssemblyReload;
    }
}
