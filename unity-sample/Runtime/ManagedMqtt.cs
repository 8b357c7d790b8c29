using System;
using System.Text;

namespace CubeWalk.Managed
{
    /// <summary>
    /// MQTT 3.1.1, written by hand for exactly what a follower sends: CONNECT (clean session, no
    /// credentials: the token travels in the WebSocket URL), SUBSCRIBE and UNSUBSCRIBE at QoS 0,
    /// PINGREQ and DISCONNECT. Every packet is written into one reused buffer.
    /// </summary>
    internal static class Mqtt
    {
        internal const int Connect = 1, ConnAck = 2, Publish = 3, Subscribe = 8, SubAck = 9,
            Unsubscribe = 10, UnsubAck = 11, PingReq = 12, PingResp = 13, Disconnect = 14;

        /// <summary>Largest packet accepted from the broker (AWS IoT Core's message limit is 128 KB),
        /// as the native follower.</summary>
        internal const int MaxPacketBytes = 256 * 1024;

        /// <summary>The name of a packet type, for error messages.</summary>
        internal static string Name(int type)
        {
            switch (type)
            {
                case Connect: return "CONNECT";
                case ConnAck: return "CONNACK";
                case Publish: return "PUBLISH";
                case 4: return "PUBACK";
                case 5: return "PUBREC";
                case 6: return "PUBREL";
                case 7: return "PUBCOMP";
                case Subscribe: return "SUBSCRIBE";
                case SubAck: return "SUBACK";
                case Unsubscribe: return "UNSUBSCRIBE";
                case UnsubAck: return "UNSUBACK";
                case PingReq: return "PINGREQ";
                case PingResp: return "PINGRESP";
                case Disconnect: return "DISCONNECT";
                default: return "packet type " + type;
            }
        }

        /// <summary>CONNECT: protocol level 4, clean session, <paramref name="keepAliveSeconds"/>,
        /// the client id, nothing else. Returns its length in <paramref name="buffer"/>.</summary>
        internal static int WriteConnect(ref byte[] buffer, string clientId, int keepAliveSeconds)
        {
            int id = Encoding.UTF8.GetByteCount(clientId);
            int remaining = 10 + 2 + id;
            int at = Header(ref buffer, 0x10, remaining);
            buffer[at++] = 0; buffer[at++] = 4;
            buffer[at++] = (byte)'M'; buffer[at++] = (byte)'Q'; buffer[at++] = (byte)'T'; buffer[at++] = (byte)'T';
            buffer[at++] = 4;    // protocol level: 3.1.1
            buffer[at++] = 0x02; // clean session
            buffer[at++] = (byte)(keepAliveSeconds >> 8); buffer[at++] = (byte)keepAliveSeconds;
            buffer[at++] = (byte)(id >> 8); buffer[at++] = (byte)id;
            at += Encoding.UTF8.GetBytes(clientId, 0, clientId.Length, buffer, at);
            return at;
        }

        /// <summary>SUBSCRIBE (QoS 0 for each filter) or UNSUBSCRIBE of
        /// <paramref name="count"/> topics from <paramref name="first"/>.</summary>
        internal static int WriteSubscription(ref byte[] buffer, bool subscribe, ushort packetId, string[] topics, int first, int count)
        {
            int remaining = 2;
            for (int i = first; i < first + count; i++)
                remaining += 2 + Encoding.UTF8.GetByteCount(topics[i]) + (subscribe ? 1 : 0);
            int at = Header(ref buffer, subscribe ? 0x82 : 0xA2, remaining);
            buffer[at++] = (byte)(packetId >> 8); buffer[at++] = (byte)packetId;
            for (int i = first; i < first + count; i++)
            {
                int n = Encoding.UTF8.GetBytes(topics[i], 0, topics[i].Length, buffer, at + 2);
                buffer[at] = (byte)(n >> 8); buffer[at + 1] = (byte)n;
                at += 2 + n;
                if (subscribe) buffer[at++] = 0; // QoS 0
            }
            return at;
        }

        /// <summary>PINGREQ or DISCONNECT (a fixed header alone).</summary>
        internal static int WriteEmpty(ref byte[] buffer, int type)
        {
            return Header(ref buffer, type << 4, 0);
        }

        // The fixed header; grows the buffer to hold the whole packet. Returns where the variable
        // header starts.
        static int Header(ref byte[] buffer, int first, int remaining)
        {
            int needed = 5 + remaining;
            if (buffer == null || buffer.Length < needed) buffer = new byte[Math.Max(needed, 256)];
            buffer[0] = (byte)first;
            int at = 1;
            do
            {
                int digit = remaining & 0x7f;
                remaining >>= 7;
                buffer[at++] = (byte)(remaining > 0 ? digit | 0x80 : digit);
            } while (remaining > 0);
            return at;
        }
    }

    /// <summary>
    /// The broker's byte stream cut into MQTT packets, however the WebSocket frames split or merged
    /// them: bytes go in at <see cref="Space"/>, whole packets come out of <see cref="Next"/> with
    /// their body in <see cref="Buffer"/>. One buffer of <see cref="Mqtt.MaxPacketBytes"/> plus a
    /// header, allocated once: a packet declared bigger is refused before its bytes arrive.
    /// </summary>
    internal sealed class MqttReader
    {
        readonly byte[] buffer = new byte[Mqtt.MaxPacketBytes + 5];
        int start, end;

        /// <summary>The bytes; the current packet's body is at <see cref="Body"/>.</summary>
        internal byte[] Buffer { get { return buffer; } }
        /// <summary>The current packet's type (1..14).</summary>
        internal int Type;
        /// <summary>The low four bits of its first byte.</summary>
        internal int Flags;
        /// <summary>Where its body (variable header and payload) starts in <see cref="Buffer"/>.</summary>
        internal int Body;
        /// <summary>Its body's length.</summary>
        internal int Length;
        /// <summary>Why <see cref="Next"/> answered -1.</summary>
        internal string Error;

        /// <summary>Forgets everything buffered (a new connection).</summary>
        internal void Clear()
        {
            start = end = 0;
        }

        /// <summary>Bytes buffered and not yet taken as packets.</summary>
        internal int Buffered { get { return end - start; } }

        /// <summary>Room for more bytes after <see cref="Tail"/> (the taken packets' room is
        /// reclaimed first: call it only between packets, as a packet's body moves).</summary>
        internal int Space
        {
            get
            {
                if (start > 0)
                {
                    System.Buffer.BlockCopy(buffer, start, buffer, 0, end - start);
                    end -= start;
                    start = 0;
                }
                return buffer.Length - end;
            }
        }

        /// <summary>Where new bytes go.</summary>
        internal int Tail { get { return end; } }

        /// <summary>Records <paramref name="n"/> bytes written at <see cref="Tail"/>.</summary>
        internal void Added(int n)
        {
            end += n;
        }

        /// <summary>Copies bytes in (tests, and bridges that hand over arrays); false when they do
        /// not fit.</summary>
        internal bool Add(byte[] data, int offset, int count)
        {
            if (count > Space) return false;
            System.Buffer.BlockCopy(data, offset, buffer, end, count);
            end += count;
            return true;
        }

        /// <summary>1: a whole packet is there (its fields set, its bytes taken); 0: more bytes are
        /// needed; -1: the stream is not MQTT 3.1.1 or the packet is too big (<see cref="Error"/>).</summary>
        internal int Next()
        {
            int available = end - start;
            if (available < 2) return 0;
            int first = buffer[start];
            int type = first >> 4;
            if (type == 0 || type == 15)
            {
                Error = "not MQTT: reserved packet type " + type;
                return -1;
            }
            int length = 0, shift = 0, at = start + 1;
            while (true)
            {
                if (at - start > 4)
                {
                    Error = "malformed remaining length";
                    return -1;
                }
                if (at >= end) return 0;
                int b = buffer[at++];
                length |= (b & 0x7f) << shift;
                if ((b & 0x80) == 0) break;
                shift += 7;
            }
            if (length > Mqtt.MaxPacketBytes)
            {
                Error = "packet too large (" + length + " bytes, at most " + Mqtt.MaxPacketBytes + ")";
                return -1;
            }
            if (end - at < length) return 0;
            Type = type;
            Flags = first & 0x0f;
            Body = at;
            Length = length;
            start = at + length;
            if (start == end) start = end = 0;
            return 1;
        }
    }
}
