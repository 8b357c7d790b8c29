// Stand-ins for the UnityEngine/UnityEditor types the package's Unity glue uses, so run-tests.sh
// can compile that glue (the sample MonoBehaviours and the play-mode hooks) under Mono without
// Unity, once with the legacy Input Manager and once with ENABLE_INPUT_SYSTEM, and so the tests
// under UnityBuild/ can PLAY the sample: GameObjects with components and the MonoBehaviour
// lifecycle (Awake, OnEnable, Start, Update, LateUpdate, OnGUI, OnDisable, OnDestroy) as Unity
// calls it, transforms and vector/quaternion maths that really compute, meshes that keep their
// data, raycasts against mesh colliders, input, time and logs the test drives and reads through
// StandIn. Public signatures follow Unity's, so the sample stays real Unity code; StandIn is the
// only member that does not exist in Unity, and only tests use it. The UnityEditor stand-ins and
// the player loop are in PlayerLoopStubs.cs.
using System;
using System.Collections.Generic;
using System.Reflection;

namespace UnityEngine
{
    /// <summary>The test's side of the stand-in engine: what was logged and drawn, what is
    /// alive, the input of the next frame, and the frame loop itself.</summary>
    public static class StandIn
    {
        /// <summary>Every object made and not destroyed.</summary>
        public static readonly List<Object> Live = new List<Object>();
        /// <summary>Debug.Log messages.</summary>
        public static readonly List<string> Logs = new List<string>();
        /// <summary>Debug.LogWarning messages, and warnings Unity itself would print.</summary>
        public static readonly List<string> Warnings = new List<string>();
        /// <summary>Debug.LogError messages, and exceptions thrown out of a script callback (Unity
        /// logs those and carries on, so does this).</summary>
        public static readonly List<string> Errors = new List<string>();
        /// <summary>Exceptions thrown out of script callbacks.</summary>
        public static readonly List<Exception> Exceptions = new List<Exception>();
        /// <summary>The labels drawn by OnGUI in the last frame.</summary>
        public static readonly List<string> Labels = new List<string>();
        /// <summary>Times a MeshCollider was given a mesh with no vertices (PhysX warns).</summary>
        public static int EmptyColliderMeshes;
        /// <summary>Materials made with new Material(...).</summary>
        public static int MaterialsMade;
        /// <summary>Keys held down.</summary>
        public static readonly HashSet<KeyCode> KeysHeld = new HashSet<KeyCode>();
        /// <summary>Mouse buttons held down (0 left, 1 right, 2 middle).</summary>
        public static readonly HashSet<int> ButtonsHeld = new HashSet<int>();
        /// <summary>Input Manager axes ("Mouse X", "Horizontal", ...).</summary>
        public static readonly Dictionary<string, float> Axes = new Dictionary<string, float>();
        /// <summary>The pointer, in pixels from the bottom left.</summary>
        public static Vector3 MousePosition;
        /// <summary>Frames run.</summary>
        public static int FrameCount { get { return frame; } }

        internal static readonly Dictionary<string, Shader> Shaders = new Dictionary<string, Shader>();
        internal static readonly Dictionary<string, string> Prefs = new Dictionary<string, string>();
        static readonly HashSet<KeyCode> keysBefore = new HashSet<KeyCode>();
        static readonly HashSet<int> buttonsBefore = new HashSet<int>();
        static int frame;

        /// <summary>A fresh engine: nothing alive, nothing logged, no input, time 0, a 1280x720
        /// screen, no shaders (a player build where nothing references them).</summary>
        public static void Reset()
        {
            foreach (var o in Live.ToArray()) { var go = o as GameObject; if (go != null) Object.Destroy(go); }
            foreach (var o in Live.ToArray()) Object.Destroy(o);
            Live.Clear(); Logs.Clear(); Warnings.Clear(); Errors.Clear(); Exceptions.Clear(); Labels.Clear();
            EmptyColliderMeshes = 0; MaterialsMade = 0;
            KeysHeld.Clear(); ButtonsHeld.Clear(); Axes.Clear(); keysBefore.Clear(); buttonsBefore.Clear();
            Shaders.Clear(); Prefs.Clear();
            MousePosition = new Vector3(640, 360, 0);
            Screen.width = 1280; Screen.height = 720;
            Time.time = Time.unscaledTime = Time.deltaTime = 0;
            frame = 0;
            Camera.ResetMain();
        }

        /// <summary>Makes Shader.Find(name) find a shader, as when a material in the build uses it.</summary>
        /// <param name="name">The shader's name.</param>
        /// <returns>The shader.</returns>
        public static Shader RegisterShader(string name)
        {
            var s = new Shader(name);
            Shaders[name] = s;
            return s;
        }

        /// <summary>Live objects of type <typeparamref name="T"/>.</summary>
        /// <typeparam name="T">The type.</typeparam>
        /// <returns>How many.</returns>
        public static int LiveCount<T>() where T : Object
        {
            int n = 0;
            foreach (var o in Live) if (o is T) n++;
            return n;
        }

        /// <summary>One frame, as Unity runs it: time advances by <paramref name="deltaTime"/>, then
        /// Start (once), Update, LateUpdate and OnGUI of every enabled behaviour on an active
        /// GameObject; the input of this frame is what the test set before calling.</summary>
        /// <param name="deltaTime">Seconds since the last frame.</param>
        public static void Frame(float deltaTime)
        {
            frame++;
            Time.deltaTime = deltaTime;
            Time.time += deltaTime;
            Time.unscaledTime += deltaTime;
            var all = new List<MonoBehaviour>();
            foreach (var o in Live) { var b = o as MonoBehaviour; if (b != null) all.Add(b); }
            foreach (var b in all) if (b.isActiveAndEnabled && !b.started) { b.started = true; b.Call("Start"); }
            foreach (var b in all) if (b.isActiveAndEnabled) b.Call("Update");
            foreach (var b in all) if (b.isActiveAndEnabled) b.Call("LateUpdate");
            Labels.Clear();
            foreach (var b in all) if (b.isActiveAndEnabled) b.Call("OnGUI");
            keysBefore.Clear(); keysBefore.UnionWith(KeysHeld);
            buttonsBefore.Clear(); buttonsBefore.UnionWith(ButtonsHeld);
        }

        internal static bool KeyDown(KeyCode k) { return KeysHeld.Contains(k) && !keysBefore.Contains(k); }
        internal static bool ButtonDown(int b) { return ButtonsHeld.Contains(b) && !buttonsBefore.Contains(b); }
        internal static bool ButtonUp(int b) { return !ButtonsHeld.Contains(b) && buttonsBefore.Contains(b); }

        internal static void Threw(Exception e)
        {
            if (e is TargetInvocationException && e.InnerException != null) e = e.InnerException;
            Exceptions.Add(e);
            Errors.Add(e.GetType().Name + ": " + e.Message);
            Console.Error.WriteLine("[Unity exception] " + e);
        }
    }

    public class Object
    {
        internal bool destroyed;
        static int nextId;
        readonly int id = ++nextId;
        public string name { get; set; }

        public Object() { StandIn.Live.Add(this); }

        public int GetInstanceID() { return id; }

        public static void Destroy(Object obj)
        {
            if (obj == null) return;
            obj.OnDestroyed();
        }

        internal virtual void OnDestroyed()
        {
            destroyed = true;
            StandIn.Live.Remove(this);
        }

        // Unity's null: a destroyed object compares equal to null.
        static bool IsNull(Object o) { return ReferenceEquals(o, null) || o.destroyed; }
        public static bool operator ==(Object a, Object b)
        {
            bool an = IsNull(a), bn = IsNull(b);
            if (an || bn) return an && bn;
            return ReferenceEquals(a, b);
        }
        public static bool operator !=(Object a, Object b) { return !(a == b); }
        public static implicit operator bool(Object exists) { return !IsNull(exists); }
        public override bool Equals(object other) { return ReferenceEquals(this, other); }
        public override int GetHashCode() { return id; }
        public override string ToString() { return name; }
    }

    public class Component : Object
    {
        internal GameObject owner;
        public Transform transform { get { return owner.transform; } }
        public GameObject gameObject { get { return owner; } }
        public T GetComponent<T>() where T : class { return owner.GetComponent<T>(); }
        public string tag { get { return owner.tag; } set { owner.tag = value; } }
    }

    public class Behaviour : Component
    {
        bool isEnabled = true;
        public bool enabled
        {
            get { return isEnabled; }
            set
            {
                if (value == isEnabled) return;
                isEnabled = value;
                var mb = this as MonoBehaviour;
                if (mb != null && owner != null && owner.activeInHierarchy) mb.Call(value ? "OnEnable" : "OnDisable");
            }
        }
        public bool isActiveAndEnabled { get { return !destroyed && isEnabled && owner != null && owner.activeInHierarchy; } }
    }

    public class MonoBehaviour : Behaviour
    {
        internal bool awoken, started;
        static readonly Dictionary<KeyValuePair<Type, string>, MethodInfo> methods = new Dictionary<KeyValuePair<Type, string>, MethodInfo>();

        // Calls a message method (any visibility) as Unity does; an exception is logged, not thrown.
        internal void Call(string message)
        {
            var key = new KeyValuePair<Type, string>(GetType(), message);
            MethodInfo m;
            if (!methods.TryGetValue(key, out m))
            {
                for (Type t = GetType(); t != null && m == null; t = t.BaseType)
                    m = t.GetMethod(message, BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly, null, Type.EmptyTypes, null);
                methods[key] = m;
            }
            if (m == null) return;
            try { m.Invoke(this, null); }
            catch (Exception e) { StandIn.Threw(e); }
        }

        internal void Activated()
        {
            if (!awoken) { awoken = true; Call("Awake"); }
            if (enabled && !destroyed) Call("OnEnable");
        }
    }

    public class Transform : Component
    {
        Vector3 localPos;
        Quaternion localRot = Quaternion.identity;
        Transform parentTransform;
        internal readonly List<Transform> children = new List<Transform>();

        public Transform parent { get { return parentTransform; } set { SetParent(value, true); } }
        public int childCount { get { return children.Count; } }
        public Vector3 localPosition { get { return localPos; } set { localPos = value; } }
        public Quaternion localRotation { get { return localRot; } set { localRot = value; } }
        public Vector3 position
        {
            get { return parentTransform == null ? localPos : parentTransform.position + parentTransform.rotation * localPos; }
            set { localPos = parentTransform == null ? value : Quaternion.Inverse(parentTransform.rotation) * (value - parentTransform.position); }
        }
        public Quaternion rotation
        {
            get { return parentTransform == null ? localRot : parentTransform.rotation * localRot; }
            set { localRot = parentTransform == null ? value : Quaternion.Inverse(parentTransform.rotation) * value; }
        }
        public Vector3 eulerAngles { get { return rotation.eulerAngles; } set { rotation = Quaternion.Euler(value); } }
        public Vector3 localEulerAngles { get { return localRot.eulerAngles; } set { localRot = Quaternion.Euler(value); } }
        public Vector3 forward { get { return rotation * Vector3.forward; } }
        public Vector3 right { get { return rotation * Vector3.right; } }
        public Vector3 up { get { return rotation * Vector3.up; } }
        public Transform GetChild(int index) { return children[index]; }
        // Between world space and this transform's space (position and rotation; no scale).
        public Vector3 TransformPoint(Vector3 position) { return this.position + rotation * position; }
        public Vector3 InverseTransformPoint(Vector3 position) { return Quaternion.Inverse(rotation) * (position - this.position); }
        public Vector3 TransformDirection(Vector3 direction) { return rotation * direction; }
        public Vector3 InverseTransformDirection(Vector3 direction) { return Quaternion.Inverse(rotation) * direction; }

        public void SetParent(Transform parent) { SetParent(parent, true); }
        public void SetParent(Transform parent, bool worldPositionStays)
        {
            Vector3 p = position;
            Quaternion r = rotation;
            if (parentTransform != null) parentTransform.children.Remove(this);
            parentTransform = parent;
            if (parent != null) parent.children.Add(this);
            if (worldPositionStays) { position = p; rotation = r; }
        }
    }

    public sealed class GameObject : Object
    {
        readonly List<Component> components = new List<Component>();
        bool activeSelfFlag = true;

        public GameObject() : this("New Game Object") { }
        public GameObject(string name)
        {
            this.name = name;
            tag = "Untagged";
            Attach(new Transform());
        }

        public Transform transform { get { return (Transform)components[0]; } }
        public GameObject gameObject { get { return this; } }
        public string tag { get; set; }
        public bool activeSelf { get { return activeSelfFlag; } }
        public bool activeInHierarchy
        {
            get
            {
                if (destroyed || !activeSelfFlag) return false;
                Transform p = transform.parent;
                return p == null || p.gameObject.activeInHierarchy;
            }
        }

        void Attach(Component c) { c.owner = this; c.name = name; components.Add(c); }

        public T AddComponent<T>() where T : Component
        {
            var c = (T)Activator.CreateInstance(typeof(T), true);
            Attach(c);
            var mb = c as MonoBehaviour;
            if (mb != null && activeInHierarchy) mb.Activated();
            return c;
        }

        public T GetComponent<T>() where T : class
        {
            foreach (var c in components) { var t = c as T; if (t != null && !c.destroyed) return t; }
            return null;
        }

        public void SetActive(bool value)
        {
            if (value == activeSelfFlag) return;
            bool was = activeInHierarchy;
            activeSelfFlag = value;
            if (was != activeInHierarchy) Propagate(value);
        }

        void Propagate(bool active)
        {
            foreach (var c in components.ToArray())
            {
                var mb = c as MonoBehaviour;
                if (mb == null || mb.destroyed) continue;
                if (active) mb.Activated();
                else if (mb.enabled) mb.Call("OnDisable");
            }
            foreach (var child in transform.children.ToArray())
                if (child.gameObject.activeSelf) child.gameObject.Propagate(active);
        }

        internal override void OnDestroyed()
        {
            if (destroyed) return;
            foreach (var child in transform.children.ToArray()) child.gameObject.OnDestroyed();
            bool active = activeInHierarchy;
            foreach (var c in components.ToArray())
            {
                var mb = c as MonoBehaviour;
                if (mb != null && !mb.destroyed)
                {
                    if (active && mb.enabled) mb.Call("OnDisable");
                    if (mb.awoken) mb.Call("OnDestroy");
                }
                c.OnDestroyed();
            }
            if (transform.parent != null) transform.parent.children.Remove(transform);
            base.OnDestroyed();
        }
    }

    public struct Vector2
    {
        public float x, y;
        public Vector2(float x, float y) { this.x = x; this.y = y; }
        public static Vector2 zero { get { return new Vector2(); } }
        public static Vector2 operator +(Vector2 a, Vector2 b) { return new Vector2(a.x + b.x, a.y + b.y); }
        public static Vector2 operator -(Vector2 a, Vector2 b) { return new Vector2(a.x - b.x, a.y - b.y); }
        public static Vector2 operator *(Vector2 a, float d) { return new Vector2(a.x * d, a.y * d); }
        public static Vector2 operator *(float d, Vector2 a) { return new Vector2(a.x * d, a.y * d); }
        public static implicit operator Vector3(Vector2 v) { return new Vector3(v.x, v.y, 0); }
        public static implicit operator Vector2(Vector3 v) { return new Vector2(v.x, v.y); }
        public override string ToString() { return "(" + x + ", " + y + ")"; }
    }

    public struct Vector3
    {
        public float x, y, z;
        public Vector3(float x, float y, float z) { this.x = x; this.y = y; this.z = z; }
        public Vector3(float x, float y) { this.x = x; this.y = y; z = 0; }
        public static Vector3 zero { get { return new Vector3(0, 0, 0); } }
        public static Vector3 one { get { return new Vector3(1, 1, 1); } }
        public static Vector3 forward { get { return new Vector3(0, 0, 1); } }
        public static Vector3 back { get { return new Vector3(0, 0, -1); } }
        public static Vector3 up { get { return new Vector3(0, 1, 0); } }
        public static Vector3 down { get { return new Vector3(0, -1, 0); } }
        public static Vector3 right { get { return new Vector3(1, 0, 0); } }
        public static Vector3 left { get { return new Vector3(-1, 0, 0); } }
        public float magnitude { get { return (float)Math.Sqrt(x * x + y * y + z * z); } }
        public float sqrMagnitude { get { return x * x + y * y + z * z; } }
        public Vector3 normalized { get { float m = magnitude; return m > 1e-5f ? this / m : zero; } }
        public static Vector3 operator +(Vector3 a, Vector3 b) { return new Vector3(a.x + b.x, a.y + b.y, a.z + b.z); }
        public static Vector3 operator -(Vector3 a, Vector3 b) { return new Vector3(a.x - b.x, a.y - b.y, a.z - b.z); }
        public static Vector3 operator -(Vector3 a) { return new Vector3(-a.x, -a.y, -a.z); }
        public static Vector3 operator *(Vector3 a, float d) { return new Vector3(a.x * d, a.y * d, a.z * d); }
        public static Vector3 operator *(float d, Vector3 a) { return new Vector3(a.x * d, a.y * d, a.z * d); }
        public static Vector3 operator /(Vector3 a, float d) { return new Vector3(a.x / d, a.y / d, a.z / d); }
        public static float Dot(Vector3 a, Vector3 b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
        public static Vector3 Cross(Vector3 a, Vector3 b)
        {
            return new Vector3(a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x);
        }
        public static float Distance(Vector3 a, Vector3 b) { return (a - b).magnitude; }
        public override string ToString() { return "(" + x.ToString("F2") + ", " + y.ToString("F2") + ", " + z.ToString("F2") + ")"; }
    }

    public struct Quaternion
    {
        public float x, y, z, w;
        public Quaternion(float x, float y, float z, float w) { this.x = x; this.y = y; this.z = z; this.w = w; }
        public static Quaternion identity { get { return new Quaternion(0, 0, 0, 1); } }

        static Quaternion Axis(Vector3 axis, float degrees)
        {
            double half = degrees * Math.PI / 360.0;
            float s = (float)Math.Sin(half);
            return new Quaternion(axis.x * s, axis.y * s, axis.z * s, (float)Math.Cos(half));
        }

        public static Quaternion AngleAxis(float angle, Vector3 axis) { return Axis(axis.normalized, angle); }

        // Unity's order: around z, then x, then y.
        public static Quaternion Euler(float x, float y, float z)
        {
            return Axis(Vector3.up, y) * Axis(Vector3.right, x) * Axis(Vector3.forward, z);
        }
        public static Quaternion Euler(Vector3 euler) { return Euler(euler.x, euler.y, euler.z); }

        public static Quaternion Inverse(Quaternion q) { return new Quaternion(-q.x, -q.y, -q.z, q.w); }

        // Unity's: equal within its dot-product epsilon is 0 degrees.
        public static float Angle(Quaternion a, Quaternion b)
        {
            float d = Math.Min(Math.Abs(a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w), 1f);
            return d > 1f - 1e-6f ? 0f : (float)(Math.Acos(d) * 2.0 * 180.0 / Math.PI);
        }

        public Vector3 eulerAngles
        {
            get
            {
                double sx = 2.0 * (w * x - y * z);
                double ex, ey, ez;
                if (Math.Abs(sx) < 0.99999)
                {
                    ex = Math.Asin(sx);
                    ey = Math.Atan2(2.0 * (w * y + x * z), 1.0 - 2.0 * (x * x + y * y));
                    ez = Math.Atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (x * x + z * z));
                }
                else
                {
                    ex = Math.Sign(sx) * Math.PI / 2;
                    ey = Math.Atan2(-2.0 * (x * z - w * y), 1.0 - 2.0 * (y * y + z * z));
                    ez = 0;
                }
                return new Vector3(Deg(ex), Deg(ey), Deg(ez));
            }
        }

        static float Deg(double radians)
        {
            double d = radians * 180.0 / Math.PI % 360.0;
            if (d < 0) d += 360.0;
            float f = (float)d;
            return f >= 360f ? 0f : f;
        }

        public static Quaternion operator *(Quaternion a, Quaternion b)
        {
            return new Quaternion(
                a.w * b.x + a.x * b.w + a.y * b.z - a.z * b.y,
                a.w * b.y - a.x * b.z + a.y * b.w + a.z * b.x,
                a.w * b.z + a.x * b.y - a.y * b.x + a.z * b.w,
                a.w * b.w - a.x * b.x - a.y * b.y - a.z * b.z);
        }

        public static Vector3 operator *(Quaternion q, Vector3 v)
        {
            // v + 2w(u x v) + 2u x (u x v), u the vector part.
            var u = new Vector3(q.x, q.y, q.z);
            Vector3 t = Vector3.Cross(u, v) * 2f;
            return v + t * q.w + Vector3.Cross(u, t);
        }
    }

    public struct Color
    {
        public float r, g, b, a;
        public Color(float r, float g, float b, float a) { this.r = r; this.g = g; this.b = b; this.a = a; }
        public Color(float r, float g, float b) : this(r, g, b, 1f) { }
        public static Color white { get { return new Color(1, 1, 1, 1); } }
        public static Color red { get { return new Color(1, 0, 0, 1); } }
        public static Color yellow { get { return new Color(1, 0.92f, 0.016f, 1); } }
    }

    public struct Color32
    {
        public byte r, g, b, a;
        public Color32(byte r, byte g, byte b, byte a) { this.r = r; this.g = g; this.b = b; this.a = a; }
    }

    public struct Rect
    {
        public float x, y, width, height;
        public Rect(float x, float y, float width, float height) { this.x = x; this.y = y; this.width = width; this.height = height; }
    }

    public struct Ray
    {
        Vector3 o, d;
        public Ray(Vector3 origin, Vector3 direction) { o = origin; d = direction.normalized; }
        public Vector3 origin { get { return o; } }
        public Vector3 direction { get { return d; } }
        public Vector3 GetPoint(float distance) { return o + d * distance; }
    }

    public struct RaycastHit
    {
        public Vector3 point { get; set; }
        public Vector3 normal { get; set; }
        public float distance { get; set; }
        public Collider collider { get; internal set; }
    }

    public sealed class Shader : Object
    {
        internal Shader(string name) { this.name = name; StandIn.Live.Remove(this); }
        // Null unless the test registered it: a player build strips shaders nothing references.
        public static Shader Find(string name)
        {
            Shader s;
            return StandIn.Shaders.TryGetValue(name, out s) ? s : null;
        }
    }

    public class Material : Object
    {
        public Material(Shader shader)
        {
            if (shader == null) { StandIn.Live.Remove(this); destroyed = true; throw new ArgumentNullException("shader"); }
            this.shader = shader;
            name = shader.name;
            StandIn.MaterialsMade++;
        }
        public Material(Material source) : this(source.shader) { }
        public Shader shader { get; set; }
    }

    public sealed class Mesh : Object
    {
        Vector3[] positions = new Vector3[0];
        Vector3[] normalsArray = new Vector3[0];
        Color32[] colorsArray = new Color32[0];
        int[] indices = new int[0];

        public Mesh() { name = ""; }
        public int vertexCount { get { return positions.Length; } }
        public Vector3[] vertices { get { return (Vector3[])positions.Clone(); } set { positions = (Vector3[])value.Clone(); } }
        public Vector3[] normals { get { return (Vector3[])normalsArray.Clone(); } set { normalsArray = (Vector3[])value.Clone(); } }
        public Color32[] colors32 { get { return (Color32[])colorsArray.Clone(); } set { colorsArray = (Color32[])value.Clone(); } }
        public int[] triangles { get { return (int[])indices.Clone(); } set { SetTriangles(value, 0); } }

        public void Clear()
        {
            positions = new Vector3[0]; normalsArray = new Vector3[0]; colorsArray = new Color32[0]; indices = new int[0];
        }
        public void SetVertices(List<Vector3> inVertices) { positions = inVertices.ToArray(); }
        public void SetNormals(List<Vector3> inNormals) { normalsArray = inNormals.ToArray(); }
        public void SetColors(List<Color32> inColors) { colorsArray = inColors.ToArray(); }
        public void SetTriangles(List<int> triangles, int submesh) { SetTriangles(triangles.ToArray(), submesh); }
        public void SetTriangles(int[] triangles, int submesh)
        {
            foreach (int i in triangles)
                if (i < 0 || i >= positions.Length)
                {
                    // Unity refuses the whole set with this error.
                    Debug.LogError("Failed setting triangles. Some indices are referencing out of bounds vertices.");
                    return;
                }
            indices = (int[])triangles.Clone();
        }
        internal Vector3[] Positions { get { return positions; } }
        internal int[] Indices { get { return indices; } }
    }

    public class MeshFilter : Component { public Mesh sharedMesh { get; set; } }
    public class Renderer : Component
    {
        public Material sharedMaterial { get; set; }
        public bool enabled { get; set; } = true;
    }
    public class MeshRenderer : Renderer { }
    public class Collider : Component { public bool enabled { get; set; } = true; }
    public class MeshCollider : Collider
    {
        Mesh mesh;
        public Mesh sharedMesh
        {
            get { return mesh; }
            set
            {
                if (value != null && value.vertexCount == 0)
                {
                    StandIn.EmptyColliderMeshes++;
                    StandIn.Warnings.Add("[Physics.PhysX] cleaning the mesh failed: a MeshCollider was given a mesh with no vertices");
                }
                mesh = value;
            }
        }
    }

    public class Camera : Behaviour
    {
        public float fieldOfView { get; set; } = 60f;
        public float aspect { get { return Screen.height > 0 ? (float)Screen.width / Screen.height : 1f; } }

        // Unity's: the first enabled camera tagged MainCamera.
        public static Camera main
        {
            get
            {
                foreach (var o in StandIn.Live)
                {
                    var c = o as Camera;
                    if (c != null && c.isActiveAndEnabled && c.gameObject.tag == "MainCamera") return c;
                }
                return null;
            }
        }
        internal static void ResetMain() { }

        // A perspective ray from the camera through the pixel (bottom left is 0,0).
        public Ray ScreenPointToRay(Vector3 pos)
        {
            double tan = Math.Tan(fieldOfView * Math.PI / 360.0);
            float nx = 2f * pos.x / Screen.width - 1f, ny = 2f * pos.y / Screen.height - 1f;
            var local = new Vector3((float)(nx * tan * aspect), (float)(ny * tan), 1f);
            return new Ray(transform.position, transform.rotation * local);
        }
    }

    public static class Physics
    {
        // Against the triangles of every enabled MeshCollider, front faces only (Unity's default
        // queriesHitBackfaces = false), in world space (position and rotation; no scale).
        public static bool Raycast(Ray ray, out RaycastHit hitInfo, float maxDistance)
        {
            hitInfo = new RaycastHit();
            bool any = false;
            float best = maxDistance;
            Vector3 o = ray.origin, d = ray.direction;
            foreach (var obj in StandIn.Live)
            {
                var c = obj as MeshCollider;
                if (c == null || !c.enabled || c.sharedMesh == null || !c.gameObject.activeInHierarchy) continue;
                Transform t = c.transform;
                Vector3 tp = t.position;
                Quaternion tr = t.rotation;
                Vector3[] v = c.sharedMesh.Positions;
                int[] tri = c.sharedMesh.Indices;
                for (int i = 0; i + 2 < tri.Length; i += 3)
                {
                    Vector3 a = tp + tr * v[tri[i]], b = tp + tr * v[tri[i + 1]], e = tp + tr * v[tri[i + 2]];
                    Vector3 e1 = b - a, e2 = e - a;
                    Vector3 n = Vector3.Cross(e1, e2);
                    if (Vector3.Dot(n, d) >= 0) continue; // back face or edge-on
                    // Möller–Trumbore.
                    Vector3 p = Vector3.Cross(d, e2);
                    float det = Vector3.Dot(e1, p);
                    if (Math.Abs(det) < 1e-9f) continue;
                    float inv = 1f / det;
                    Vector3 s = o - a;
                    float u = Vector3.Dot(s, p) * inv;
                    if (u < 0 || u > 1) continue;
                    Vector3 q = Vector3.Cross(s, e1);
                    float w = Vector3.Dot(d, q) * inv;
                    if (w < 0 || u + w > 1) continue;
                    float dist = Vector3.Dot(e2, q) * inv;
                    if (dist < 0 || dist > best) continue;
                    best = dist;
                    any = true;
                    hitInfo = new RaycastHit { point = o + d * dist, normal = n.normalized, distance = dist, collider = c };
                }
            }
            return any;
        }
    }

    public enum KeyCode
    {
        None, A, C, D, E, Q, S, W, Space, LeftShift, Escape,
        UpArrow, DownArrow, LeftArrow, RightArrow,
    }

    public static class Input
    {
        public static Vector3 mousePosition { get { return StandIn.MousePosition; } }
        public static bool GetMouseButtonDown(int button) { return StandIn.ButtonDown(button); }
        public static bool GetMouseButtonUp(int button) { return StandIn.ButtonUp(button); }
        public static bool GetMouseButton(int button) { return StandIn.ButtonsHeld.Contains(button); }
        public static bool GetKey(KeyCode key) { return StandIn.KeysHeld.Contains(key); }
        public static bool GetKeyDown(KeyCode key) { return StandIn.KeyDown(key); }
        public static float GetAxis(string axisName)
        {
            float v;
            return StandIn.Axes.TryGetValue(axisName, out v) ? v : 0f;
        }
    }

    public static class Time
    {
        public static float time { get; internal set; }
        public static float unscaledTime { get; internal set; }
        public static float deltaTime { get; internal set; }
        public static float unscaledDeltaTime { get { return deltaTime; } }
        public static int frameCount { get { return StandIn.FrameCount; } }
    }

    public static class PlayerPrefs
    {
        public static string GetString(string key, string defaultValue)
        {
            string v;
            return StandIn.Prefs.TryGetValue(key, out v) ? v : defaultValue;
        }
        public static string GetString(string key) { return GetString(key, ""); }
        public static void SetString(string key, string value) { StandIn.Prefs[key] = value; }
        public static bool HasKey(string key) { return StandIn.Prefs.ContainsKey(key); }
        public static void DeleteKey(string key) { StandIn.Prefs.Remove(key); }
        public static void Save() { }
    }

    public static class Screen
    {
        public static int width { get; internal set; } = 1280;
        public static int height { get; internal set; } = 720;
    }

    public static class GUI
    {
        public static Color color { get; set; } = Color.white;
        public static void Label(Rect position, string text) { StandIn.Labels.Add(text); }
    }

    public static class Mathf
    {
        public const float PI = (float)Math.PI;
        public static int FloorToInt(float f) { return (int)Math.Floor(f); }
        public static float Floor(float f) { return (float)Math.Floor(f); }
        public static float Abs(float f) { return Math.Abs(f); }
        public static float Min(float a, float b) { return a < b ? a : b; }
        public static float Max(float a, float b) { return a > b ? a : b; }
        public static int Min(int a, int b) { return a < b ? a : b; }
        public static int Max(int a, int b) { return a > b ? a : b; }
        public static float Clamp(float value, float min, float max) { return value < min ? min : value > max ? max : value; }
        public static int Clamp(int value, int min, int max) { return value < min ? min : value > max ? max : value; }
        public static float DeltaAngle(float current, float target)
        {
            float d = (target - current) % 360f;
            if (d > 180f) d -= 360f;
            if (d < -180f) d += 360f;
            return d;
        }
    }

    public static class Debug
    {
        public static void Log(object message) { StandIn.Logs.Add(Convert.ToString(message)); }
        public static void LogWarning(object message)
        {
            StandIn.Warnings.Add(Convert.ToString(message));
            Console.Error.WriteLine("[Unity warning] " + message);
        }
        public static void LogError(object message)
        {
            StandIn.Errors.Add(Convert.ToString(message));
            Console.Error.WriteLine("[Unity error] " + message);
        }
        public static void LogException(Exception exception) { StandIn.Threw(exception); }
    }

    [AttributeUsage(AttributeTargets.Field, Inherited = true, AllowMultiple = false)]
    public class TooltipAttribute : Attribute { public TooltipAttribute(string tooltip) { } }
    [AttributeUsage(AttributeTargets.Field, Inherited = true, AllowMultiple = false)]
    public class RangeAttribute : Attribute
    {
        public readonly float min, max;
        public RangeAttribute(float min, float max) { this.min = min; this.max = max; }
    }
    [AttributeUsage(AttributeTargets.Field, Inherited = true, AllowMultiple = false)]
    public sealed class MinAttribute : Attribute
    {
        public readonly float min;
        public MinAttribute(float min) { this.min = min; }
    }
    [AttributeUsage(AttributeTargets.Field, Inherited = true, AllowMultiple = true)]
    public class HeaderAttribute : Attribute { public HeaderAttribute(string header) { } }
}

namespace UnityEngine.InputSystem.Controls
{
    // The Input System's controls, state set by the test (the first-hour test plays the legacy
    // Input Manager path; these keep the ENABLE_INPUT_SYSTEM build compiling and usable).
    public class ButtonControl
    {
        public bool isPressed { get; set; }
        public bool wasPressedThisFrame { get; set; }
        public bool wasReleasedThisFrame { get; set; }
    }
    public class KeyControl : ButtonControl { }
    public class Vector2Control
    {
        public UnityEngine.Vector2 value;
        public UnityEngine.Vector2 ReadValue() { return value; }
    }
}

namespace UnityEngine.InputSystem
{
    using UnityEngine.InputSystem.Controls;

    public class Mouse
    {
        public static Mouse current { get; set; }
        public ButtonControl leftButton { get; } = new ButtonControl();
        public ButtonControl rightButton { get; } = new ButtonControl();
        public ButtonControl middleButton { get; } = new ButtonControl();
        public Vector2Control position { get; } = new Vector2Control();
        public Vector2Control delta { get; } = new Vector2Control();
    }
    public class Keyboard
    {
        public static Keyboard current { get; set; }
        public KeyControl aKey { get; } = new KeyControl();
        public KeyControl cKey { get; } = new KeyControl();
        public KeyControl dKey { get; } = new KeyControl();
        public KeyControl sKey { get; } = new KeyControl();
        public KeyControl wKey { get; } = new KeyControl();
        public KeyControl spaceKey { get; } = new KeyControl();
        public KeyControl leftArrowKey { get; } = new KeyControl();
        public KeyControl rightArrowKey { get; } = new KeyControl();
        public KeyControl upArrowKey { get; } = new KeyControl();
        public KeyControl downArrowKey { get; } = new KeyControl();
    }
}
