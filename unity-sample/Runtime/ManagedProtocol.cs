using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.IO.Compression;
using System.Text;

namespace CubeWalk.Managed
{
    /// <summary>
    /// The wire format in C#, for builds where the native plugin cannot run (WebGL): the chunk
    /// blob decoder, the fetch query and the fetch answer. The same format as the Rust
    /// `cubewalk-protocol` crate (protocol/README.md); tests check the two agree cube for cube.
    /// </summary>
    internal static class ChunkCodec
    {
        const int Cubes = 4096;
        const byte TagRleDeflate = 1, TagRaw = 2;
        // Largest valid run-length stream: 4096 runs of a 2-byte length and a 5-byte value.
        const int MaxRle = Cubes * 7;
        [ThreadStatic] static byte[] rleBuffer;

        /// <summary>Decodes a blob (the bytes behind an answer's base64 <c>data</c>) into
        /// <paramref name="output"/>, the caller's int[4096] in game order.</summary>
        /// <exception cref="InvalidDataException">The blob is not a valid chunk.</exception>
        public static void Decode(byte[] blob, int[] output)
        {
            if (blob == null) throw new ArgumentNullException("blob");
            if (output == null || output.Length != Cubes) throw new ArgumentException("output must be an int[4096]", "output");
            if (blob.Length == 0)
            {
                Array.Clear(output, 0, Cubes);
                return;
            }
            if (blob[0] == TagRaw)
            {
                if (blob.Length != 1 + Cubes * 4) throw new InvalidDataException("raw chunk must hold 16384 bytes");
                for (int i = 0; i < Cubes; i++)
                    output[i] = blob[1 + 4 * i] | blob[2 + 4 * i] << 8 | blob[3 + 4 * i] << 16 | blob[4 + 4 * i] << 24;
                return;
            }
            if (blob[0] != TagRleDeflate) throw new InvalidDataException("unknown chunk encoding tag " + blob[0]);
            // One run-length buffer per thread, reused: decoding allocates only the inflater.
            byte[] rle = rleBuffer ?? (rleBuffer = new byte[MaxRle + 1]);
            int length = 0;
            try
            {
                using (var inflate = new DeflateStream(new MemoryStream(blob, 1, blob.Length - 1), CompressionMode.Decompress))
                {
                    int n;
                    while ((n = inflate.Read(rle, length, rle.Length - length)) > 0)
                    {
                        length += n;
                        if (length > MaxRle) throw new InvalidDataException("run-length stream too long");
                    }
                }
            }
            catch (IOException e)
            {
                // Runtimes differ in what a corrupt stream throws; callers get one exception type.
                throw new InvalidDataException("corrupt compressed chunk: " + e.Message);
            }
            int pos = 0, filled = 0;
            while (pos < length)
            {
                ulong run = Varint(rle, length, ref pos), zig = Varint(rle, length, ref pos);
                if (zig > uint.MaxValue) throw new InvalidDataException("value out of range");
                uint z = (uint)zig;
                int value = (int)(z >> 1) ^ -(int)(z & 1);
                if (run == 0 || run > (ulong)(Cubes - filled)) throw new InvalidDataException("run length out of range");
                for (int i = 0; i < (int)run; i++) output[filled + i] = value;
                filled += (int)run;
            }
            if (filled != Cubes) throw new InvalidDataException("runs do not cover the chunk");
        }

        static ulong Varint(byte[] b, int length, ref int pos)
        {
            ulong v = 0;
            for (int shift = 0; shift < 35; shift += 7)
            {
                if (pos >= length) throw new InvalidDataException("truncated run-length stream");
                byte x = b[pos++];
                v |= (ulong)(x & 0x7f) << shift;
                if ((x & 0x80) == 0) return v;
            }
            throw new InvalidDataException("varint too long");
        }
    }

    /// <summary>A fetch answer's entry: the chunk, its current version, and its blob when the
    /// chunk changed (null when the caller already holds this version).</summary>
    internal struct FetchedEntry
    {
        /// <summary>The chunk.</summary>
        public ChunkKey Key;
        /// <summary>Its current version.</summary>
        public ulong Version;
        /// <summary>Its write sequence (<c>n</c>; 0, and left out, for a chunk never written): the
        /// realtime follower orders changes against it.</summary>
        public ulong Seq;
        /// <summary>Its blob, or null when unchanged.</summary>
        public byte[] Blob;
    }

    /// <summary>The fetch request and answer of the HTTP API (protocol/README.md).</summary>
    internal static class FetchProtocol
    {
        /// <summary>The query string of a fetch: <c>world=W&amp;chunks=x,y,z@v;...</c>, with
        /// <c>@version</c> only for chunks held (<see cref="CubeWalkClient.NoVersion"/> means none).</summary>
        public static string Query(string world, ChunkKey[] keys, ulong[] versions, int count)
        {
            return Query(world, keys, versions, 0, count);
        }

        /// <summary>As <see cref="Query(string, ChunkKey[], ulong[], int)"/> for
        /// <paramref name="count"/> chunks from <paramref name="first"/>.</summary>
        public static string Query(string world, ChunkKey[] keys, ulong[] versions, int first, int count)
        {
            var sb = new StringBuilder("world=").Append(Uri.EscapeDataString(world)).Append("&chunks=");
            for (int i = first; i < first + count; i++)
            {
                if (i > first) sb.Append(';');
                sb.Append(keys[i].X.ToString(CultureInfo.InvariantCulture)).Append(',')
                  .Append(keys[i].Y.ToString(CultureInfo.InvariantCulture)).Append(',')
                  .Append(keys[i].Z.ToString(CultureInfo.InvariantCulture));
                if (versions[i] != CubeWalkClient.NoVersion)
                    sb.Append('@').Append(versions[i].ToString(CultureInfo.InvariantCulture));
            }
            return sb.ToString();
        }

        /// <summary>Characters chunk <paramref name="i"/> takes in a query's <c>chunks</c>, its
        /// separator included.</summary>
        public static int EntryLength(ChunkKey[] keys, ulong[] versions, int i)
        {
            var c = CultureInfo.InvariantCulture;
            int n = keys[i].X.ToString(c).Length + keys[i].Y.ToString(c).Length + keys[i].Z.ToString(c).Length + 3;
            if (versions[i] != CubeWalkClient.NoVersion) n += 1 + versions[i].ToString(c).Length;
            return n;
        }

        /// <summary>Parses a fetch answer <c>{"world":..,"chunks":[{"key":[x,y,z],"version":v,"n":seq,"data":"..."}]}</c>.</summary>
        /// <exception cref="InvalidDataException">The text is not a fetch answer.</exception>
        public static List<FetchedEntry> ParseAnswer(string json)
        {
            var p = new Json(json);
            var entries = new List<FetchedEntry>();
            p.Expect('{');
            bool first = true;
            while (!p.TryConsume('}'))
            {
                if (!first) p.Expect(',');
                first = false;
                string name = p.String();
                p.Expect(':');
                if (name == "chunks")
                {
                    p.Expect('[');
                    bool firstEntry = true;
                    while (!p.TryConsume(']'))
                    {
                        if (!firstEntry) p.Expect(',');
                        firstEntry = false;
                        entries.Add(Entry(p));
                    }
                }
                else p.Skip();
            }
            return entries;
        }

        /// <summary>Parses the answer to a put's fence (its cancel request)
        /// <c>{"world":..,"applied":[{"key":[x,y,z],"version":v}..],"cancelled":[[x,y,z]..]}</c>
        /// into <paramref name="applied"/> (the chunks where the put had applied, with the revision
        /// it answered) and <paramref name="cancelled"/> (where it now never will).</summary>
        /// <exception cref="InvalidDataException">The text is not a cancel answer.</exception>
        public static void ParseCancelAnswer(string json, List<FetchedEntry> applied, List<ChunkKey> cancelled)
        {
            var p = new Json(json);
            bool sawApplied = false, sawCancelled = false, first = true;
            p.Expect('{');
            while (!p.TryConsume('}'))
            {
                if (!first) p.Expect(',');
                first = false;
                string name = p.String();
                p.Expect(':');
                if (name == "applied" || name == "cancelled")
                {
                    bool isApplied = name == "applied";
                    if (isApplied) sawApplied = true;
                    else sawCancelled = true;
                    p.Expect('[');
                    bool firstEntry = true;
                    while (!p.TryConsume(']'))
                    {
                        if (!firstEntry) p.Expect(',');
                        firstEntry = false;
                        if (isApplied) applied.Add(Entry(p));
                        else cancelled.Add(Key(p));
                    }
                }
                else p.Skip();
            }
            if (!sawApplied || !sawCancelled) throw new InvalidDataException("cancel answer without applied or cancelled");
        }

        static ChunkKey Key(Json p)
        {
            p.Expect('[');
            int x = (int)p.Integer(); p.Expect(',');
            int y = (int)p.Integer(); p.Expect(',');
            int z = (int)p.Integer(); p.Expect(']');
            return new ChunkKey(x, y, z);
        }

        static FetchedEntry Entry(Json p)
        {
            var e = new FetchedEntry();
            bool hasKey = false, hasVersion = false, first = true;
            p.Expect('{');
            while (!p.TryConsume('}'))
            {
                if (!first) p.Expect(',');
                first = false;
                string name = p.String();
                p.Expect(':');
                switch (name)
                {
                    case "key":
                        e.Key = Key(p);
                        hasKey = true;
                        break;
                    case "version":
                        e.Version = p.Unsigned();
                        hasVersion = true;
                        break;
                    case "n":
                        e.Seq = p.Unsigned();
                        break;
                    case "data":
                        if (p.TryNull()) e.Blob = null;
                        else e.Blob = Convert.FromBase64String(p.String());
                        break;
                    default:
                        p.Skip();
                        break;
                }
            }
            if (!hasKey || !hasVersion) throw new InvalidDataException("fetch answer entry without key or version");
            return e;
        }

        /// <summary>A small JSON reader for the API's answers: numbers stay exact (versions
        /// are 64-bit), and nothing is built that the answer does not need.</summary>
        sealed class Json
        {
            readonly string s;
            int i;

            internal Json(string s) { this.s = s ?? throw new InvalidDataException("no answer"); }

            void Space() { while (i < s.Length && char.IsWhiteSpace(s[i])) i++; }

            internal void Expect(char c)
            {
                Space();
                if (i >= s.Length || s[i] != c) throw new InvalidDataException("expected '" + c + "' at " + i);
                i++;
            }

            internal bool TryConsume(char c)
            {
                Space();
                if (i < s.Length && s[i] == c) { i++; return true; }
                return false;
            }

            internal bool TryNull()
            {
                Space();
                if (string.CompareOrdinal(s, i, "null", 0, 4) == 0) { i += 4; return true; }
                return false;
            }

            internal string String()
            {
                Expect('"');
                var sb = new StringBuilder();
                while (i < s.Length && s[i] != '"')
                {
                    char c = s[i++];
                    if (c != '\\') { sb.Append(c); continue; }
                    if (i >= s.Length) break;
                    char esc = s[i++];
                    switch (esc)
                    {
                        case 'n': sb.Append('\n'); break;
                        case 't': sb.Append('\t'); break;
                        case 'r': sb.Append('\r'); break;
                        case 'b': sb.Append('\b'); break;
                        case 'f': sb.Append('\f'); break;
                        case 'u':
                            sb.Append((char)int.Parse(s.Substring(i, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
                            i += 4;
                            break;
                        default: sb.Append(esc); break;
                    }
                }
                Expect('"');
                return sb.ToString();
            }

            string Number()
            {
                Space();
                int start = i;
                while (i < s.Length && (char.IsDigit(s[i]) || s[i] == '-' || s[i] == '+' || s[i] == '.' || s[i] == 'e' || s[i] == 'E')) i++;
                if (i == start) throw new InvalidDataException("expected a number at " + i);
                return s.Substring(start, i - start);
            }

            internal long Integer() { return long.Parse(Number(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture); }
            internal ulong Unsigned() { return ulong.Parse(Number(), NumberStyles.None, CultureInfo.InvariantCulture); }

            internal void Skip()
            {
                Space();
                if (i >= s.Length) throw new InvalidDataException("truncated answer");
                char c = s[i];
                if (c == '"') { String(); return; }
                if (c == '{' || c == '[')
                {
                    char close = c == '{' ? '}' : ']';
                    i++;
                    bool first = true;
                    while (!TryConsume(close))
                    {
                        if (!first) Expect(',');
                        first = false;
                        if (c == '{') { String(); Expect(':'); }
                        Skip();
                    }
                    return;
                }
                if (TryNull()) return;
                if (string.CompareOrdinal(s, i, "true", 0, 4) == 0) { i += 4; return; }
                if (string.CompareOrdinal(s, i, "false", 0, 5) == 0) { i += 5; return; }
                Number();
            }
        }
    }
}
