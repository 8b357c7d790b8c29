using System;
using System.Runtime.InteropServices;
using CubeWalk.Native;

namespace CubeWalk
{
    /// <summary>A non-blocking request. Completed only inside <see cref="CubeWalkClient.Update"/>, on
    /// the thread whose Update found it finished. Request objects may be reused once done, so a game loop that
    /// keeps re-issuing requests allocates nothing.</summary>
    public abstract class CubeWalkRequest
    {
        internal ulong Id;
        internal GCHandle[] Pins = new GCHandle[0];
        internal int PinCount;

        // Read by threads other than the one completing the request.
        volatile bool isDone;

        /// <summary>True once the request finished (successfully or not) and its results are in
        /// the caller's arrays.</summary>
        public bool IsDone { get { return isDone; } internal set { isDone = value; } }
        /// <summary>The final status (<see cref="CubeWalkStatus.Pending"/> until done).</summary>
        public CubeWalkStatus Status { get; internal set; }
        /// <summary>The error message when <see cref="Status"/> is not Ok; null otherwise.</summary>
        public string Error { get; internal set; }

        /// <summary>Throws a <see cref="CubeWalkException"/> when the request failed.</summary>
        public void ThrowIfFailed()
        {
            if (IsDone && Status != CubeWalkStatus.Ok) throw new CubeWalkException(Status, Error);
        }

        internal abstract void InvokeCompleted();

        internal void Pin(object target)
        {
            if (PinCount == Pins.Length) Array.Resize(ref Pins, Math.Max(4, Pins.Length * 2));
            Pins[PinCount++] = GCHandle.Alloc(target, GCHandleType.Pinned);
        }

        internal void Unpin()
        {
            for (int i = 0; i < PinCount; i++) Pins[i].Free();
            PinCount = 0;
        }

        internal void Reset()
        {
            if (Id != 0 && !IsDone) throw new InvalidOperationException("request is still in flight");
            Id = 0;
            IsDone = false;
            Status = CubeWalkStatus.Pending;
            Error = null;
        }
    }

    /// <summary>A non-blocking fetch: on completion <see cref="Versions"/> hold the current versions,
    /// <see cref="Changed"/>[i] is 1 where <see cref="Buffers"/>[i] was rewritten.</summary>
    public sealed class FetchRequest : CubeWalkRequest
    {
        /// <summary>The chunks asked for.</summary>
        public ChunkKey[] Keys { get; internal set; }
        /// <summary>In: versions held (or <see cref="CubeWalkClient.NoVersion"/>); out: current versions.</summary>
        public ulong[] Versions { get; internal set; }
        /// <summary>The caller's int[4096] buffers, written on completion where changed.</summary>
        public int[][] Buffers { get; internal set; }
        /// <summary>Out: 1 where the buffer was written, 0 where the chunk was unchanged.</summary>
        public byte[] Changed { get; internal set; }
        /// <summary>Called on completion, on the thread whose Update completed the request.</summary>
        public Action<FetchRequest> Completed;

        /// <summary>A request object to pass to <see cref="CubeWalkClient.BeginFetch"/>; reuse it
        /// once done to avoid allocating.</summary>
        public FetchRequest() { }

        internal override void InvokeCompleted() { if (Completed != null) Completed(this); }
    }

    /// <summary>A non-blocking put: on completion <see cref="Results"/>[0..<see cref="Count"/>) hold
    /// each touched chunk's new version.</summary>
    public sealed class PutRequest : CubeWalkRequest
    {
        internal UIntPtr[] CountBox = new UIntPtr[1];

        /// <summary>Each touched chunk and its new version.</summary>
        public ChunkVersion[] Results { get; internal set; }
        /// <summary>How many entries of <see cref="Results"/> are filled.</summary>
        public int Count { get { return (int)CountBox[0].ToUInt32(); } }
        /// <summary>Called on completion, on the thread whose Update completed the request.</summary>
        public Action<PutRequest> Completed;

        /// <summary>A request object to pass to <see cref="CubeWalkClient.BeginPut"/>; reuse it
        /// once done to avoid allocating.</summary>
        public PutRequest() { }

        internal override void InvokeCompleted() { if (Completed != null) Completed(this); }
    }
}
