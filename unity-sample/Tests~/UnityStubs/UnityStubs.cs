// Minimal stand-ins for the UnityEngine/UnityEditor types the package's Unity glue uses, so
// run-tests.sh can compile that glue (the sample MonoBehaviours and the play-mode hooks) under
// Mono without Unity, once with the legacy Input Manager and once with ENABLE_INPUT_SYSTEM.
// Compile-only: nothing here runs. Signatures follow Unity's.
using System;
using System.Collections.Generic;

namespace UnityEngine
{
    public class Object { public static void Destroy(Object o) { } }
    public class Component : Object
    {
        public Transform transform { get { return null; } }
        public GameObject gameObject { get { return null; } }
    }
    public class Behaviour : Component { public bool enabled; }
    public class MonoBehaviour : Behaviour { }
    public class Transform : Component
    {
        public Vector3 position;
        public Vector3 localPosition;
        public Quaternion rotation;
        public void SetParent(Transform parent, bool worldPositionStays) { }
    }
    public sealed class GameObject : Object
    {
        public GameObject(string name) { }
        public Transform transform { get { return null; } }
        public T AddComponent<T>() where T : Component, new() { return new T(); }
    }
    public struct Vector2
    {
        public float x, y;
        public Vector2(float x, float y) { this.x = x; this.y = y; }
        public static Vector2 zero { get { return new Vector2(); } }
        public static Vector2 operator *(Vector2 a, float b) { return a; }
        public static implicit operator Vector3(Vector2 v) { return new Vector3(v.x, v.y, 0); }
    }
    public struct Vector3
    {
        public float x, y, z;
        public Vector3(float x, float y, float z) { this.x = x; this.y = y; this.z = z; }
        public static Vector3 zero { get { return new Vector3(); } }
        public static Vector3 operator +(Vector3 a, Vector3 b) { return a; }
        public static Vector3 operator *(Vector3 a, float b) { return a; }
    }
    public struct Quaternion
    {
        public static Quaternion Euler(float x, float y, float z) { return new Quaternion(); }
        public static Vector3 operator *(Quaternion q, Vector3 v) { return v; }
    }
    public struct Color32 { public Color32(byte r, byte g, byte b, byte a) { } }
    public struct Rect { public Rect(float x, float y, float w, float h) { } }
    public struct Ray { }
    public struct RaycastHit { public Vector3 point; public Vector3 normal; }
    public class Shader : Object { public static Shader Find(string name) { return null; } }
    public class Material : Object { public Material(Shader s) { } }
    public sealed class Mesh : Object
    {
        public void Clear() { }
        public void SetVertices(List<Vector3> v) { }
        public void SetNormals(List<Vector3> v) { }
        public void SetColors(List<Color32> c) { }
        public void SetTriangles(List<int> t, int submesh) { }
    }
    public class MeshFilter : Component { public Mesh sharedMesh; }
    public class Renderer : Component { public Material sharedMaterial; }
    public class MeshRenderer : Renderer { }
    public class Collider : Component { }
    public class MeshCollider : Collider { public Mesh sharedMesh; }
    public class Camera : Component { public static Camera main; public Ray ScreenPointToRay(Vector3 p) { return new Ray(); } }
    public static class Physics { public static bool Raycast(Ray r, out RaycastHit hit, float max) { hit = new RaycastHit(); return false; } }
    public enum KeyCode { A, C, D, S, W, Space }
    public static class Input
    {
        public static Vector3 mousePosition;
        public static bool GetMouseButtonDown(int b) { return false; }
        public static bool GetMouseButton(int b) { return false; }
        public static bool GetKey(KeyCode k) { return false; }
        public static float GetAxis(string name) { return 0; }
    }
    public static class Time { public static float unscaledTime; public static float deltaTime; }
    public static class PlayerPrefs
    {
        public static string GetString(string key, string defaultValue) { return defaultValue; }
        public static void SetString(string key, string value) { }
        public static void Save() { }
    }
    public static class Screen { public static int width; }
    public static class GUI { public static void Label(Rect r, string text) { } }
    public static class Mathf
    {
        public static int FloorToInt(float f) { return (int)Math.Floor(f); }
        public static float Clamp(float v, float min, float max) { return v; }
    }
    public static class Debug
    {
        public static void Log(object o) { }
        public static void LogWarning(object o) { }
        public static void LogError(object o) { }
    }
    public class TooltipAttribute : Attribute { public TooltipAttribute(string s) { } }
    public class RangeAttribute : Attribute { public RangeAttribute(float a, float b) { } }
}

namespace UnityEngine.Networking
{
    public class DownloadHandler { public string text { get { return null; } } }
    public sealed class DownloadHandlerBuffer : DownloadHandler { }
    public class UploadHandler { }
    public sealed class UploadHandlerRaw : UploadHandler { public UploadHandlerRaw(byte[] data) { } }
    public sealed class UnityWebRequestAsyncOperation { }
    public sealed class UnityWebRequest
    {
        public enum Result { InProgress, Success, ConnectionError, ProtocolError, DataProcessingError }
        public UnityWebRequest(string url, string method) { }
        public DownloadHandler downloadHandler;
        public UploadHandler uploadHandler;
        public int timeout;
        public bool isDone { get { return false; } }
        public long responseCode { get { return 0; } }
        public Result result { get { return Result.InProgress; } }
        public string error { get { return null; } }
        public void SetRequestHeader(string name, string value) { }
        public UnityWebRequestAsyncOperation SendWebRequest() { return null; }
        public void Abort() { }
    }
}

namespace UnityEngine.InputSystem
{
    public class ButtonControl { public bool isPressed; public bool wasPressedThisFrame; }
    public class KeyControl : ButtonControl { }
    public class Vector2Control { public UnityEngine.Vector2 ReadValue() { return new UnityEngine.Vector2(); } }
    public class Mouse
    {
        public static Mouse current;
        public ButtonControl leftButton, rightButton;
        public Vector2Control position, delta;
    }
    public class Keyboard
    {
        public static Keyboard current;
        public KeyControl aKey, cKey, dKey, sKey, wKey, spaceKey;
    }
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
