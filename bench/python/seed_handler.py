"""The blocks handler written the way the design CubeWalk Net started from wrote it: a Python
Lambda with the `redis` client. Used only by the cost benchmark (`cargo run --release -p
cubewalk-bench -- cost`), which runs it with Amazon's Python runtime interface client
(`python3 -m awslambdaric seed_handler.handler`) against the same local Runtime API and the same
Redis as our Rust functions. It is never deployed.

Same GET/PUT semantics on the same stored format as the Rust store: a chunk is the hash
`cw:{<world>:<x>,<y>,<z>}` with the encoded blob in field `d` (empty: all air; 0x01 + raw
DEFLATE of a run-length stream of LEB128 run lengths and zigzag LEB128 values; 0x02 + 16384
little-endian bytes) and a write counter in field `v`; a client holds the revision, the first 8
bytes (little-endian) of the blob's SHA-256. A PUT applies each chunk's edits with
WATCH/MULTI/EXEC and retries on a conflict. It does less than the Rust function: no chunk log,
no idempotency keys, no per-player limits, no realtime notifications, so the comparison
flatters it.
"""

import base64
import hashlib
import json
import os
import struct
import zlib

import redis

CUBES = 4096
EMPTY_REVISION = 0
NO_REVISION = (1 << 64) - 1

# One connection per execution environment, made during init as the seed's Lambda did.
store = redis.Redis.from_url(os.environ.get("CUBEWALK_REDIS_URL", "redis://127.0.0.1:6379"))
store.ping()


def revision(blob):
    if not blob:
        return EMPTY_REVISION
    r = struct.unpack("<Q", hashlib.sha256(blob).digest()[:8])[0]
    return 1 if r in (EMPTY_REVISION, NO_REVISION) else r


def read_uleb(data, at):
    result = shift = 0
    while True:
        byte = data[at]
        at += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, at
        shift += 7


def write_uleb(out, n):
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


def decode(blob):
    if not blob:
        return [0] * CUBES
    if blob[0] == 2:
        return list(struct.unpack("<4096i", blob[1:]))
    runs = zlib.decompress(blob[1:], -15)
    cubes, at = [], 0
    while len(cubes) < CUBES:
        length, at = read_uleb(runs, at)
        zig, at = read_uleb(runs, at)
        value = (zig >> 1) ^ -(zig & 1)
        cubes.extend([value] * length)
    return cubes


def encode(cubes):
    if not any(cubes):
        return b""
    runs = bytearray()
    i = 0
    while i < CUBES:
        j = i
        while j < CUBES and cubes[j] == cubes[i]:
            j += 1
        write_uleb(runs, j - i)
        v = cubes[i]
        write_uleb(runs, ((v << 1) ^ (v >> 31)) & 0xFFFFFFFF)
        i = j
    packer = zlib.compressobj(6, zlib.DEFLATED, -15)
    packed = b"\x01" + packer.compress(bytes(runs)) + packer.flush()
    raw = b"\x02" + struct.pack("<4096i", *cubes)
    return packed if len(packed) <= len(raw) else raw


def key(world, x, y, z):
    return f"cw:{{{world}:{x},{y},{z}}}"


def answer(status, body):
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}


def error(status, code, message):
    return answer(status, {"error": {"code": code, "message": message}})


def get(params):
    world = params.get("world") or "default"
    wanted = []
    for item in filter(None, (params.get("chunks") or "").split(";")):
        coords, _, held = item.partition("@")
        x, y, z = (int(c) for c in coords.split(","))
        wanted.append(((x, y, z), int(held) if held else None))
    pipe = store.pipeline(transaction=False)
    for (x, y, z), _ in wanted:
        pipe.hget(key(world, x, y, z), "d")
    chunks = []
    for ((x, y, z), held), blob in zip(wanted, pipe.execute()):
        blob = blob or b""
        rev = revision(blob)
        entry = {"key": [x, y, z], "version": rev}
        if held != rev:
            entry["data"] = base64.b64encode(blob).decode()
        chunks.append(entry)
    return answer(200, {"world": world, "chunks": chunks})


def put(body):
    request = json.loads(body)
    world = request.get("world") or "default"
    by_chunk = {}
    for edit in request["edits"]:
        by_chunk.setdefault(tuple(edit["chunk"]), []).append((edit["index"], edit["value"]))
    chunks = []
    for (x, y, z), edits in by_chunk.items():
        k = key(world, x, y, z)
        with store.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(k)
                    blob = pipe.hget(k, "d") or b""
                    cubes = decode(blob)
                    for index, value in edits:
                        cubes[index] = value
                    new = encode(cubes)
                    if new != blob:
                        pipe.multi()
                        if new:
                            pipe.hset(k, "d", new)
                        else:
                            pipe.hdel(k, "d")
                        pipe.hincrby(k, "v", 1)
                        # Our store keeps a revision drawn per write in "r"; this design
                        # names content by its hash, so it drops ours (which would name the
                        # old content) and our reader falls back to the hash too.
                        pipe.hdel(k, "r")
                        pipe.execute()
                    else:
                        pipe.unwatch()
                    break
                except redis.WatchError:
                    continue
        chunks.append({"key": [x, y, z], "version": revision(new)})
    return answer(200, {"world": world, "chunks": chunks})


def handler(event, context):
    try:
        method = event.get("httpMethod")
        if method == "GET":
            return get(event.get("queryStringParameters") or {})
        if method == "PUT":
            return put(event.get("body") or "")
        return error(405, "method_not_allowed", "use GET or PUT")
    except (ValueError, KeyError, TypeError, IndexError, struct.error, zlib.error) as e:
        return error(400, "bad_request", str(e))
