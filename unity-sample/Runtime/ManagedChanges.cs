using System;

namespace CubeWalk.Managed
{
    /// <summary>One change of a region message (protocol/src/realtime.rs), as parsed.</summary>
    internal struct ParsedChange
    {
        internal ChunkKey Chunk;
        internal ulong Previous, Version, FromSeq, Seq;
        /// <summary>Where its edits start in the batch's edit arrays.</summary>
        internal int FirstEdit;
        /// <summary>How many edits; -1: none carried (too many cubes changed: refetch).</summary>
        internal int EditCount;
    }

    /// <summary>
    /// The message a region topic carries, parsed by hand from its UTF-8 bytes into arrays that
    /// are reused from message to message (they grow only while a bigger message than any before
    /// arrives): a JSON array of changes, each
    /// <c>[[x,y,z],"&lt;previous&gt;","&lt;version&gt;",from_seq,seq,index,value,...]</c> or ending
    /// with <c>null</c> instead of edits. Versions are 11 characters of unpadded base64url of the
    /// 8 little-endian bytes. The same checks as the Rust <c>Change::from_items</c>: a message
    /// with one bad change is refused whole.
    /// </summary>
    internal sealed class ChangeBatch
    {
        /// <summary>Most cube edits one change carries (MAX_EDITS_IN_CHANGE).</summary>
        internal const int MaxEditsInChange = 64;
        const int ChunkCubes = 4096;

        internal ParsedChange[] Changes = new ParsedChange[16];
        internal int Count;
        internal ushort[] EditIndex = new ushort[256];
        internal int[] EditValue = new int[256];
        internal int EditTotal;

        byte[] s;
        int i, end;
        // The first problem met; a constant string, so a bad message allocates nothing either.
        string problem;

        /// <summary>Parses <paramref name="count"/> bytes of <paramref name="text"/> from
        /// <paramref name="offset"/>; null when it is a region message, else why not.</summary>
        internal string Parse(byte[] text, int offset, int count)
        {
            s = text;
            i = offset;
            end = offset + count;
            Count = 0;
            EditTotal = 0;
            problem = null;
            bool ok = Message();
            s = null;
            return ok ? null : problem ?? "not a region message";
        }

        bool Fail(string why)
        {
            if (problem == null) problem = why;
            return false;
        }

        bool Message()
        {
            if (!Expect('[')) return false;
            Space();
            if (i < end && s[i] == ']') { i++; return End(); }
            while (true)
            {
                if (!Change()) return false;
                Space();
                if (i >= end) return Fail("truncated message");
                if (s[i] == ',') { i++; continue; }
                if (s[i] == ']') { i++; return End(); }
                return Fail("expected ',' or ']' between changes");
            }
        }

        bool End()
        {
            Space();
            return i == end || Fail("trailing bytes after the message");
        }

        bool Change()
        {
            if (Count == Changes.Length) Array.Resize(ref Changes, Changes.Length * 2);
            var c = new ParsedChange();
            long x, y, z;
            if (!Expect('[') || !Expect('[') || !Signed(out x) || !Expect(',') || !Signed(out y) || !Expect(',')
                || !Signed(out z) || !Expect(']'))
                return Fail("not a change: its first item is not a chunk key");
            if (x < int.MinValue || x > int.MaxValue || y < int.MinValue || y > int.MaxValue || z < int.MinValue || z > int.MaxValue)
                return Fail("not a change: chunk key out of range");
            c.Chunk = new ChunkKey((int)x, (int)y, (int)z);
            if (!Expect(',') || !Version(out c.Previous) || !Expect(',') || !Version(out c.Version)
                || !Expect(',') || !Unsigned(out c.FromSeq) || !Expect(',') || !Unsigned(out c.Seq))
                return Fail("not a change");
            if (c.FromSeq >= c.Seq) return Fail("not a change: from_seq is not below seq");
            c.FirstEdit = EditTotal;
            c.EditCount = 0;
            while (true)
            {
                Space();
                if (i >= end) return Fail("truncated change");
                if (s[i] == ']') { i++; break; }
                if (!Expect(',')) return false;
                Space();
                if (Literal("null"))
                {
                    // Only as the one item after the sequences.
                    if (c.EditCount != 0 || !Expect(']')) return Fail("not a change: null must be its only edit item");
                    c.EditCount = -1;
                    break;
                }
                ulong index;
                long value;
                if (!Unsigned(out index) || !Expect(',') || !Signed(out value))
                    return Fail("not a change: edits are index,value pairs");
                if (index >= ChunkCubes) return Fail("not a change: cube index out of range");
                if (value < int.MinValue || value > int.MaxValue) return Fail("not a change: cube value out of range");
                if (c.EditCount == MaxEditsInChange) return Fail("not a change: more than 64 edits");
                if (EditTotal == EditIndex.Length)
                {
                    Array.Resize(ref EditIndex, EditIndex.Length * 2);
                    Array.Resize(ref EditValue, EditValue.Length * 2);
                }
                EditIndex[EditTotal] = (ushort)index;
                EditValue[EditTotal] = (int)value;
                EditTotal++;
                c.EditCount++;
            }
            Changes[Count++] = c;
            return true;
        }

        void Space()
        {
            while (i < end && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) i++;
        }

        bool Expect(char c)
        {
            Space();
            if (i < end && s[i] == c) { i++; return true; }
            return Fail("malformed JSON");
        }

        bool Literal(string word)
        {
            if (end - i < word.Length) return false;
            for (int k = 0; k < word.Length; k++)
                if (s[i + k] != word[k]) return false;
            i += word.Length;
            return true;
        }

        // A JSON integer (no fraction, no exponent, no leading zero) within 64 bits.
        bool Unsigned(out ulong value)
        {
            value = 0;
            Space();
            int start = i;
            while (i < end && s[i] >= '0' && s[i] <= '9')
            {
                ulong digit = (ulong)(s[i] - '0');
                if (value > (ulong.MaxValue - digit) / 10) return Fail("number out of range");
                value = value * 10 + digit;
                i++;
            }
            if (i == start) return Fail("expected a number");
            if (i - start > 1 && s[start] == '0') return Fail("malformed JSON number");
            if (i < end && (s[i] == '.' || s[i] == 'e' || s[i] == 'E')) return Fail("expected an integer");
            return true;
        }

        bool Signed(out long value)
        {
            value = 0;
            Space();
            bool negative = i < end && s[i] == '-';
            if (negative) i++;
            ulong magnitude;
            if (i < end && (s[i] < '0' || s[i] > '9')) return Fail("expected a number");
            if (!Unsigned(out magnitude)) return false;
            if (magnitude > (negative ? 9223372036854775808UL : long.MaxValue)) return Fail("number out of range");
            value = negative ? (long)(0 - magnitude) : (long)magnitude;
            return true;
        }

        // "<11 characters of unpadded base64url>" holding the 8 little-endian bytes of a version.
        bool Version(out ulong version)
        {
            version = 0;
            Space();
            if (end - i < 13 || s[i] != '"' || s[i + 12] != '"') return Fail("not a change: a version is 11 characters");
            int p = i + 1;
            ulong bits = 0;
            // 11 symbols are 66 bits: the 64 of the 8 bytes, then 2 that must be zero.
            for (int k = 0; k < 11; k++)
            {
                int v = Symbol(s[p + k]);
                if (v < 0) return Fail("not a change: a version is not base64url");
                if (k < 10) bits = (bits << 6) | (uint)v;
                else
                {
                    if ((v & 3) != 0) return Fail("not a change: a version has trailing bits");
                    bits = (bits << 4) | (uint)(v >> 2);
                }
            }
            // bits holds the bytes in order, first byte highest: reverse them (little-endian).
            for (int k = 0; k < 8; k++)
            {
                version |= ((bits >> (56 - 8 * k)) & 0xff) << (8 * k);
            }
            i += 13;
            return true;
        }

        static int Symbol(byte c)
        {
            if (c >= 'A' && c <= 'Z') return c - 'A';
            if (c >= 'a' && c <= 'z') return c - 'a' + 26;
            if (c >= '0' && c <= '9') return c - '0' + 52;
            if (c == '-') return 62;
            if (c == '_') return 63;
            return -1;
        }
    }
}
