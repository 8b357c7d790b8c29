// Minimal stand-ins for the UnityEngine/UnityEditor types the package's Unity glue uses, so
// run-tests.sh can compile that glue (the sample MonoBehaviour and the play-mode hooks) under
// Mono without Unity. Compile-only: nothing here runs.
using System;

namespace UnityEngine
{
    public class Object { }
    public class Component : Object { public Transform transform { get { return null; } } }
    public class Behaviour : Component { public bool enabled; }
    public class MonoBehaviour : Behaviour { }
    public class Transform : Component { public Vector3 position; }
    public struct Vector3
    {
        public float x, y, z;
        public static Vector3 operator +(Vector3 a, Vector3 b) { return a; }
        public static Vector3 operator *(Vector3 a, float b) { return a; }
    }
    public struct Ray { }
    public struct RaycastHit { public Vector3 point; public Vector3 normal; }
    public class Camera : Component { public static Camera main; public Ray ScreenPointToRay(Vector3 p) { return new Ray(); } }
    public static class Physics { public static bool Raycast(Ray r, out RaycastHit hit, float max) { hit = new RaycastHit(); return false; } }
    public static class Input { public static Vector3 mousePosition; public static bool GetMouseButtonDown(int b) { return false; } }
    public static class Time { public static float unscaledTime; }
    public static class Mathf { public static int FloorToInt(float f) { return (int)Math.Floor(f); } }
    public static class Debug { public static void Log(object o) { } public static void LogWarning(object o) { } }
    public class TooltipAttribute : Attribute { public TooltipAttribute(string s) { } }
    public class RangeAttribute : Attribute { public RangeAttribute(float a, float b) { } }
}

namespace UnityEditor
{
    public enum PlayModeStateChange { EnteredEditMode, ExitingEditMode, EnteredPlayMode, ExitingPlayMode }
    public static class EditorApplication { public static event Action<PlayModeStateChange> playModeStateChanged; }
    public class InitializeOnLoadAttribute : Attribute { }
    public static class AssemblyReloadEvents
    {
        public delegate void AssemblyReloadCallback();
        public static event AssemblyReloadCallback beforeAssemblyReload;
    }
}
