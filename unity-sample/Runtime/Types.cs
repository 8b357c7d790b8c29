using System;
using System.Runtime.InteropServices;
using CubeWalk.Native;

namespace CubeWalk
{
    /// <summary>Position of a chunk in its world, in chunk units. Same layout as the native CwChunkKey.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct ChunkKey : IEquatable<ChunkKey>
    {
        /// <summary>Chunk x.</summary>
        public int X;
        /// <summary>Chunk y (up).</summary>
        public int Y;
        /// <summary>Chunk z.</summary>
        public int Z;

        /// <summary>A key from its coordinates.</summary>
        /// <param name="x">Chunk x.</param>
        /// <param name="y">Chunk y (up).</param>
        /// <param name="z">Chunk z.</param>
        public ChunkKey(int x, int y, int z) { X = x; Y = y; Z = z; }

        /// <inheritdoc/>
        public bool Equals(ChunkKey other) { return X == other.X && Y == other.Y && Z == other.Z; }
        /// <inheritdoc/>
        public override bool Equals(object obj) { return obj is ChunkKey && Equals((ChunkKey)obj); }
        /// <inheritdoc/>
        public override int GetHashCode() { return (X * 73856093) ^ (Y * 19349663) ^ (Z * 83492791); }
        /// <inheritdoc/>
        public override string ToString() { return X + "," + Y + "," + Z; }
    }

    /// <summary>One cube edit: set cube <see cref="Index"/> of <see cref="Chunk"/> to <see cref="Value"/>.
    /// Same layout as the native CwEdit.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct CubeEdit
    {
        /// <summary>The chunk.</summary>
        public ChunkKey Chunk;
        /// <summary>Cube index in the game's order: x * 256 + z * 16 + y.</summary>
        public uint Index;
        /// <summary>The cube's new value (opaque to the network layer).</summary>
        public int Value;

        /// <summary>An edit of the cube at local (x, y, z), each 0..15.</summary>
        /// <param name="chunk">The chunk.</param>
        /// <param name="x">Local x, 0..15.</param>
        /// <param name="y">Local y, 0..15.</param>
        /// <param name="z">Local z, 0..15.</param>
        /// <param name="value">The cube's new value.</param>
        /// <exception cref="ArgumentOutOfRangeException">A coordinate is outside 0..15.</exception>
        public CubeEdit(ChunkKey chunk, int x, int y, int z, int value)
        {
            if (x < 0 || x > 15 || y < 0 || y > 15 || z < 0 || z > 15)
                throw new ArgumentOutOfRangeException("x/y/z", "local coordinates must be 0..15");
            Chunk = chunk;
            Index = (uint)(x * 256 + z * 16 + y);
            Value = value;
        }
    }

    /// <summary>A chunk and its version after a put. Same layout as the native CwChunkVersion.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct ChunkVersion
    {
        /// <summary>The chunk.</summary>
        public ChunkKey Key;
        /// <summary>Always 0 (alignment).</summary>
        public uint Reserved;
        /// <summary>The chunk's version after the put.</summary>
        public ulong Version;
    }

    /// <summary>What a realtime event says (<see cref="ChunkChange.Kind"/>).</summary>
    public enum ChangeKind : uint
    {
        /// <summary>The chunk changed and the event carries the cube edits: when the copy held is at
        /// <see cref="ChunkChange.Previous"/>, apply them and it is at <see cref="ChunkChange.Version"/>;
        /// when it is already at Version, nothing to do; otherwise refetch the chunk.</summary>
        Edits = 0,
        /// <summary>The chunk changed by too many cubes to carry them: refetch it (unless already at
        /// <see cref="ChunkChange.Version"/>).</summary>
        Refetch = 1,
        /// <summary>The server acknowledged the followed set: fetch it now; changes are reported
        /// from here on.</summary>
        Subscribed = 2,
        /// <summary>Changes may have been missed (the connection was lost and restored, or nobody
        /// polled for too long): refetch every followed chunk.</summary>
        Gap = 3,
    }

    /// <summary>One realtime event, as <see cref="CubeWalkClient.PollChanges"/> fills it (the
    /// native <c>CwChange</c>'s layout).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct ChunkChange
    {
        /// <summary>The chunk (zero for <see cref="ChangeKind.Subscribed"/> and <see cref="ChangeKind.Gap"/>).</summary>
        public ChunkKey Chunk;
        /// <summary>What happened.</summary>
        public ChangeKind Kind;
        /// <summary>The chunk's version before the change.</summary>
        public ulong Previous;
        /// <summary>The chunk's version after the change.</summary>
        public ulong Version;
        /// <summary>Where this change's edits start in the edits array of the same poll.</summary>
        public uint FirstEdit;
        /// <summary>How many edits it has (0 unless <see cref="ChangeKind.Edits"/>).</summary>
        public uint EditCount;
    }

    /// <summary>Where the realtime connection stands.</summary>
    public enum RealtimeState
    {
        /// <summary>Not started, or stopped.</summary>
        Off = 0,
        /// <summary>Connecting, or waiting to reconnect after a failure (with backoff).</summary>
        Connecting = 1,
        /// <summary>Connected.</summary>
        Connected = 2,
        /// <summary>The server refused the token (a 401 to a token that never worked, or a 403);
        /// no more attempts until <see cref="CubeWalkClient.SetToken"/> gives a new one.</summary>
        Refused = 3,
        /// <summary>The server answered 401 to a token that had worked or has expired: log in again
        /// and call <see cref="CubeWalkClient.SetToken"/>; attempts resume with the new token.</summary>
        TokenRefused = 4,
    }

    /// <summary>What a guest login answered (<see cref="CubeWalkClient.LoginGuest"/>).</summary>
    public sealed class GuestSession
    {
        /// <summary>The player token, for <see cref="CubeWalkClient"/> or <see cref="CubeWalkClient.SetToken"/>.
        /// A credential: never log it.</summary>
        public string Token { get; private set; }
        /// <summary>The guest's player id (guest-...), the same for every login with the same secret.</summary>
        public string Player { get; private set; }
        /// <summary>The token's role (editor for guests).</summary>
        public string Role { get; private set; }
        /// <summary>When the token expires, in seconds since the Unix epoch (by the server's clock).</summary>
        public long ExpiresAt { get; private set; }
        /// <summary>How long the token is valid from the answer, in seconds: schedule the next login
        /// from this (it does not depend on the device's clock).</summary>
        public int ExpiresIn { get; private set; }

        /// <summary>A session as the login answered it.</summary>
        /// <param name="token">The player token.</param>
        /// <param name="player">The player id.</param>
        /// <param name="role">The role.</param>
        /// <param name="expiresAt">Expiry, Unix seconds.</param>
        /// <param name="expiresIn">Validity from the answer, seconds.</param>
        public GuestSession(string token, string player, string role, long expiresAt, int expiresIn)
        {
            Token = token;
            Player = player;
            Role = role;
            ExpiresAt = expiresAt;
            ExpiresIn = expiresIn;
        }

        /// <summary>The player and expiry; never the token.</summary>
        /// <returns>A description without the token.</returns>
        public override string ToString()
        {
            return "GuestSession(" + Player + ", " + Role + ", expires in " + ExpiresIn + " s)";
        }
    }

    /// <summary>A guest login in flight (<see cref="CubeWalkClient.BeginLoginGuest"/>): call
    /// <see cref="Poll"/> once per frame until it answers true, from any thread. On the managed
    /// transport in Unity it is sent on the next frame's player loop on the main thread, so it
    /// finishes only while frames run.</summary>
    public sealed class GuestLoginRequest
    {
        readonly System.Threading.Tasks.Task<GuestSession> native;
        readonly Managed.IHttpExchange managed;
        readonly string secret;

        internal GuestLoginRequest(System.Threading.Tasks.Task<GuestSession> native) { this.native = native; }

        internal GuestLoginRequest(Managed.IHttpExchange managed, string secret)
        {
            this.managed = managed;
            this.secret = secret;
        }

        /// <summary>True once finished (then <see cref="Status"/>, <see cref="Error"/> and <see cref="Session"/> are set).</summary>
        public bool IsDone { get; private set; }
        /// <summary>How it ended (Pending while running).</summary>
        public CubeWalkStatus Status { get; private set; }
        /// <summary>Why it failed (never containing the secret), or null.</summary>
        public string Error { get; private set; }
        /// <summary>The session on success, or null.</summary>
        public GuestSession Session { get; private set; }

        /// <summary>Checks whether the login finished, never blocking; true once it has.</summary>
        /// <returns>Whether it is done.</returns>
        public bool Poll()
        {
            if (IsDone) return true;
            if (native != null)
            {
                if (!native.IsCompleted) return false;
                if (native.Status == System.Threading.Tasks.TaskStatus.RanToCompletion)
                {
                    Session = native.Result;
                    Status = CubeWalkStatus.Ok;
                }
                else
                {
                    var e = native.Exception == null ? null : native.Exception.InnerException as CubeWalkException;
                    Status = e != null ? e.Status : CubeWalkStatus.Internal;
                    Error = e != null ? e.Message : "guest login failed";
                }
            }
            else
            {
                if (!managed.IsDone) return false;
                GuestSession session;
                string error;
                Status = Managed.ManagedTransport.FinishLogin(managed, secret, out session, out error);
                Session = session;
                Error = error;
            }
            IsDone = true;
            return true;
        }
    }

    /// <summary>Client settings. Every setting left null keeps the native library's default
    /// (<c>cw_options_default</c>: 10 s timeout, 5 s connect, 3 retries from 100 ms up to 2 s,
    /// 16 requests in flight), so a default changed in the library reaches the game.</summary>
    public sealed class CubeWalkOptions
    {
        /// <summary>Longest one call may take, retries included (ms); null for the default.</summary>
        public uint? TimeoutMs;
        /// <summary>Longest wait for a connection (ms); null for the default.</summary>
        public uint? ConnectTimeoutMs;
        /// <summary>Retries of transient failures (connect errors, 429, 502, 503, 504); null for the default.</summary>
        public uint? MaxRetries;
        /// <summary>Backoff base delay (ms); null for the default.</summary>
        public uint? RetryBaseDelayMs;
        /// <summary>Largest wait between retries (ms); null for the default.</summary>
        public uint? RetryMaxDelayMs;
        /// <summary>Most HTTP requests in flight at once; null for the default.</summary>
        public uint? MaxInFlight;
        /// <summary>Allow plain http:// to a non-loopback host (sends the token in clear).</summary>
        public bool AllowInsecureHttp;
        /// <summary>Extra trusted root certificates (PEM bytes), or null.</summary>
        public byte[] CaPem;
        /// <summary>Native plugin or managed C# (what WebGL builds use); Auto picks the native
        /// plugin except in WebGL builds.</summary>
        public CubeWalkTransport Transport;

        /// <summary>Settings with every value unset: the native library's defaults.</summary>
        public CubeWalkOptions() { }

        /// <summary>A copy (the certificate bytes copied too).</summary>
        /// <returns>The copy.</returns>
        public CubeWalkOptions Clone()
        {
            var c = (CubeWalkOptions)MemberwiseClone();
            if (CaPem != null) c.CaPem = (byte[])CaPem.Clone();
            return c;
        }
    }

    /// <summary>The one exception type of the SDK: the native status and its message.</summary>
    public sealed class CubeWalkException : Exception
    {
        /// <summary>What failed, as the native library reports it.</summary>
        public CubeWalkStatus Status { get; private set; }

        /// <summary>An exception for a failed status.</summary>
        /// <param name="status">What failed.</param>
        /// <param name="message">Why, as the library reports it (never containing the token).</param>
        public CubeWalkException(CubeWalkStatus status, string message)
            : base(status + ": " + message)
        {
            Status = status;
        }
    }
}
