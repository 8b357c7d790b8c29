//! World export and import: a world's chunks streamed to a checksummed text file, and put back
//! exactly (the same blob, revision and write sequence per chunk).
//!
//! # The file format (`cubewalk-world-export`, version 1)
//!
//! UTF-8 text, one record per line, each line ending in `\n`, fields separated by one space:
//!
//! ```text
//! cubewalk-world-export 1 world=<world> time=<RFC 3339 UTC time the export started>
//! c <x>,<y>,<z> <seq> <revision> <blob>
//! ...
//! end chunks=<number of chunk lines> sha256=<64 lowercase hex digits>
//! ```
//!
//! - a chunk line holds the chunk's coordinates, its write sequence (`v`, decimal), its
//!   revision (`r`, decimal; `-` when the chunk carries none, as chunks written by versions
//!   before random revisions do: it then answers `content_revision` of its blob, and so again
//!   after the import) and its encoded blob (`d`) in standard base64 with padding (`-` for an
//!   all-air chunk, which stores no blob);
//! - the trailer's `sha256` is the SHA-256 of the header line and every chunk line, each with
//!   its `\n`, in file order: a truncated file (no trailer, or fewer lines) or a changed byte
//!   anywhere before the trailer is refused;
//! - chunk lines come in the store's SCAN order (no order is promised) and each chunk once.
//!
//! # What an export sees
//!
//! SCAN with `MATCH cw:{<world>:*` walks the keys (on every primary, in cluster mode) and
//! batches of `HMGET` read them, so neither the keys nor the blobs are ever all in memory; only
//! the set of coordinates already written is kept (about 40 bytes per chunk), because SCAN may
//! name a key twice. Only keys that are exactly a chunk key of the world
//! (`cw:{<world>:<x>,<y>,<z>}`, as [`chunk_key`] writes it) are exported: the chunk logs, the
//! idempotency records and other worlds' keys are not. Each chunk is read atomically, but the
//! export is not a snapshot of the world at one instant: a chunk written while it runs is
//! exported as it was before or after that write. Every blob must decode, or the export fails
//! (a file that cannot be imported is no backup).
//!
//! # What an import does
//!
//! It reads the whole input once, checking the header, every chunk line (its fields, that its
//! blob decodes, that no chunk appears twice) and the trailer's count and checksum, copying the
//! chunk lines to a temporary file (in [`std::env::temp_dir`], removed afterwards) as it goes;
//! only when all of that holds does it write anything, reading the chunks back from the
//! temporary file. So a corrupt or truncated file writes nothing, and the input may be a pipe.
//!
//! Each chunk is written by one script that sets exactly the exported `v`, `r` (left absent
//! when the export had none) and `d` (absent for all air), after deleting any fields the chunk
//! held. In [`ImportMode::IntoEmpty`] (the default of the CLI) the import is refused before
//! writing when the world holds any chunk, and a chunk that appears while the import runs is
//! left as it is (the import then fails, saying how many). [`ImportMode::Replace`] overwrites
//! the chunks the file names and leaves the world's other chunks, logs and idempotency records
//! as they are. An import that fails while writing has written some chunks: run it again with
//! `--replace` (each chunk's write is idempotent).

use super::redis::{chunk_key, is_broken_connection, unavailable};
use super::{RedisStore, StoreError};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cubewalk_protocol::codec::{decode_chunk, MAX_BLOB_BASE64_LEN};
use cubewalk_protocol::{ChunkKey, WorldId};
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo};
use redis::Cmd;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, Write};

/// The format's name, the first word of every export.
pub const FORMAT_NAME: &str = "cubewalk-world-export";

/// The format's version, the header's second word; an import refuses any other.
pub const FORMAT_VERSION: u32 = 1;

/// Keys each SCAN step asks a node for: large enough that a world of a million chunks takes
/// about a thousand round trips per node, small enough that one step never blocks Redis long.
const SCAN_COUNT: usize = 1000;

/// Chunks read (`HMGET`) or written per round trip: a few megabytes at most in flight.
const BATCH: usize = 256;

/// The longest line an import accepts: a chunk line's blob is at most
/// [`MAX_BLOB_BASE64_LEN`] characters and its other fields under 100; the header and trailer
/// are shorter. A file that is not an export cannot make the import hold a huge line.
const MAX_LINE: usize = MAX_BLOB_BASE64_LEN + 256;

/// Writes one imported chunk exactly as exported.
///
/// KEYS[1]: the chunk's hash. ARGV[1]: `1` to overwrite a chunk that exists; ARGV[2]: `v`;
/// ARGV[3]: `r` (`''`: none); ARGV[4]: `d` (`''`: all air, no blob). Answers 0 when the chunk
/// was new, 1 when it replaced one, -1 when it exists and was left alone (not replacing). The
/// `DEL` first drops fields the file does not set (a blob where the export has all air, a
/// revision where it has none), so the chunk holds exactly what was exported.
const IMPORT_SCRIPT: &str = r"
local existed = redis.call('EXISTS', KEYS[1])
if existed == 1 and ARGV[1] ~= '1' then return -1 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'r', ARGV[3]) end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'd', ARGV[4]) end
return existed
";

/// Why an export or an import failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The store failed, or holds a chunk that cannot be decoded.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading or writing the file (or the import's temporary file) failed.
    #[error("{0}")]
    Io(String),
    /// The input is not a whole, intact export: nothing was written.
    #[error("not a valid world export: {0}")]
    Invalid(String),
    /// The import would overwrite chunks without [`ImportMode::Replace`].
    #[error("{0}")]
    Refused(String),
}

fn io(what: &str) -> impl Fn(std::io::Error) -> BackupError + '_ {
    move |e| BackupError::Io(format!("{what}: {e}"))
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportSummary {
    /// The world exported.
    pub world: String,
    /// When the export started (RFC 3339, UTC), as the header says.
    pub time: String,
    /// Chunks written (chunk lines).
    pub chunks: u64,
    /// Bytes written: the whole file.
    pub bytes: u64,
    /// The trailer's checksum (hex).
    pub sha256: String,
}

/// What an import wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    /// The world written to.
    pub world: String,
    /// The world the file was exported from.
    pub exported_world: String,
    /// When that export started, as its header says.
    pub exported_at: String,
    /// Chunks written.
    pub chunks: u64,
    /// Of those, how many replaced a chunk the world held ([`ImportMode::Replace`]).
    pub replaced: u64,
    /// Bytes read: the whole file.
    pub bytes: u64,
    /// The file's checksum (hex), verified.
    pub sha256: String,
}

/// Whether an import may overwrite chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportMode {
    /// Only into a world that holds no chunk: refused before writing otherwise.
    IntoEmpty,
    /// Overwrite each chunk the file names; other chunks of the world stay.
    Replace,
}

/// One chunk as a line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ChunkLine {
    key: ChunkKey,
    seq: u64,
    /// `None` when the chunk stores no revision.
    revision: Option<u64>,
    /// Empty for all air.
    blob: Vec<u8>,
}

impl ChunkLine {
    fn to_line(&self) -> String {
        let revision = self
            .revision
            .map_or_else(|| "-".to_string(), |r| r.to_string());
        let blob = if self.blob.is_empty() {
            "-".to_string()
        } else {
            STANDARD.encode(&self.blob)
        };
        format!("c {} {} {revision} {blob}\n", self.key, self.seq)
    }

    /// Parses a chunk line (without its `\n`), accepting only the exact form
    /// [`ChunkLine::to_line`] writes, so one content has one line and one checksum.
    fn parse(text: &str) -> Result<Self, String> {
        let fields: Vec<&str> = text.split(' ').collect();
        let [tag, key, seq, revision, blob] = fields[..] else {
            return Err("a chunk line has five fields".into());
        };
        if tag != "c" {
            return Err(format!("unknown record `{tag}`"));
        }
        let parsed: ChunkKey = key
            .parse()
            .map_err(|_| format!("`{key}` is not a chunk x,y,z"))?;
        if parsed.to_string() != key {
            return Err(format!("`{key}` is not a chunk x,y,z in canonical form"));
        }
        let seq = canonical_u64(seq).ok_or_else(|| format!("sequence `{seq}` is not a number"))?;
        let revision = match revision {
            "-" => None,
            r => Some(canonical_u64(r).ok_or_else(|| format!("revision `{r}` is not a number"))?),
        };
        let blob = match blob {
            "-" => Vec::new(),
            b => {
                let bytes = STANDARD
                    .decode(b)
                    .map_err(|e| format!("blob of chunk {key} is not base64: {e}"))?;
                if bytes.is_empty() {
                    return Err(format!("chunk {key}: an all-air blob is written `-`"));
                }
                bytes
            }
        };
        Ok(Self {
            key: parsed,
            seq,
            revision,
            blob,
        })
    }
}

/// A decimal u64 without sign, leading zeros or spaces.
fn canonical_u64(s: &str) -> Option<u64> {
    s.parse().ok().filter(|n: &u64| n.to_string() == s)
}

/// The chunk `key` names when it is exactly a chunk key of `world` (`cw:{<world>:<x>,<y>,<z>}`,
/// as [`chunk_key`] writes it); `None` for logs, idempotency records and anything else the
/// SCAN pattern also matches.
pub fn parse_chunk_key(world: &WorldId, key: &[u8]) -> Option<ChunkKey> {
    let key = std::str::from_utf8(key).ok()?;
    let coords = key
        .strip_prefix("cw:{")?
        .strip_prefix(world.as_str())?
        .strip_prefix(':')?
        .strip_suffix('}')?;
    let chunk: ChunkKey = coords.parse().ok()?;
    // Round trip: refuses `+1`, `01` and the like, which no writer of the store produces.
    (chunk_key(world, chunk) == key).then_some(chunk)
}

/// Where SCAN runs: the one server, or one primary of a cluster.
enum Node {
    Only,
    Primary { host: String, port: u16 },
}

/// The nodes whose keys together are the whole keyspace: the server, or every primary (SCAN
/// on a cluster connection would walk one node only).
async fn nodes(store: &RedisStore) -> Result<Vec<Node>, BackupError> {
    let Some(mut conn) = store.cluster_connection() else {
        return Ok(vec![Node::Only]);
    };
    // With no response policy, a command sent to all primaries answers a map from each
    // node's address to its reply: the primaries of the client's current slot map.
    let answer = conn
        .route_command(
            redis::cmd("PING"),
            RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None)),
        )
        .await
        .map_err(|e| unavailable(&e))?;
    let redis::Value::Map(pairs) = answer else {
        return Err(
            StoreError::Unavailable("Redis Cluster did not list its primaries".into()).into(),
        );
    };
    let mut nodes = Vec::new();
    for (address, reply) in pairs {
        if let redis::Value::ServerError(e) = reply {
            return Err(StoreError::Unavailable(format!("a primary refused PING: {e:?}")).into());
        }
        let address: String = redis::from_redis_value(address)
            .map_err(|e| StoreError::Unavailable(format!("unexpected Redis answer: {e}")))?;
        let (host, port) = address
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_string(), p.parse().ok()?)))
            .ok_or_else(|| StoreError::Unavailable(format!("odd node address {address}")))?;
        nodes.push(Node::Primary { host, port });
    }
    Ok(nodes)
}

/// One SCAN step on `node`: the next cursor (0 when done) and the keys of this step.
async fn scan_step(
    store: &RedisStore,
    node: &Node,
    cursor: u64,
    pattern: &str,
) -> Result<(u64, Vec<Vec<u8>>), BackupError> {
    let mut cmd = redis::cmd("SCAN");
    cmd.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(SCAN_COUNT);
    let result = match node {
        Node::Only => store.query(&cmd).await,
        Node::Primary { host, port } => {
            let conn = store.cluster_connection();
            let mut conn = conn.ok_or_else(|| StoreError::Unavailable("not a cluster".into()))?;
            let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                host: host.clone(),
                port: *port,
            });
            conn.route_command(cmd, routing)
                .await
                .and_then(|v| redis::from_redis_value(v).map_err(Into::into))
        }
    };
    Ok(result.map_err(|e| unavailable(&e))?)
}

/// The SCAN pattern of `world`'s keys. World ids hold only `[A-Za-z0-9_.-]`, none of them a
/// glob character, so the id needs no escaping.
fn pattern(world: &WorldId) -> String {
    format!("cw:{{{world}:*")
}

/// Runs read-only commands, once more after a broken connection (they are safe to repeat).
async fn read_all<T: redis::FromRedisValue>(
    store: &RedisStore,
    cmds: Vec<Cmd>,
) -> Result<Vec<T>, BackupError> {
    match store.run_all(cmds.clone()).await {
        Err(e) if is_broken_connection(&e) => store.run_all(cmds).await,
        other => other,
    }
    .map_err(|e| unavailable(&e).into())
}

/// A writer that counts the bytes through it.
struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Counting<W> {
    fn put(&mut self, line: &str) -> Result<(), BackupError> {
        self.inner
            .write_all(line.as_bytes())
            .map_err(io("cannot write the export"))?;
        self.bytes += line.len() as u64;
        Ok(())
    }
}

/// Streams every chunk of `world` to `out` in the format above and answers what it wrote.
///
/// Blocking writes to `out` happen on the calling task: meant for a tool (the CLI), not a
/// server's request path. On failure `out` holds a file without a trailer, which an import
/// refuses.
pub async fn export_world(
    store: &RedisStore,
    world: &WorldId,
    out: impl Write,
) -> Result<ExportSummary, BackupError> {
    let time = rfc3339_utc(std::time::SystemTime::now());
    let mut out = Counting {
        inner: BufWriter::new(out),
        bytes: 0,
    };
    let mut hash = Sha256::new();
    let header = format!("{FORMAT_NAME} {FORMAT_VERSION} world={world} time={time}\n");
    hash.update(header.as_bytes());
    out.put(&header)?;
    let pattern = pattern(world);
    let mut seen: HashSet<ChunkKey> = HashSet::new();
    let mut chunks = 0u64;
    for node in nodes(store).await? {
        let mut cursor = 0;
        loop {
            let (next, keys) = scan_step(store, &node, cursor, &pattern).await?;
            // SCAN may name a key again (when the keyspace grows meanwhile): once in the file.
            let fresh: Vec<ChunkKey> = keys
                .iter()
                .filter_map(|k| parse_chunk_key(world, k))
                .filter(|&k| seen.insert(k))
                .collect();
            for batch in fresh.chunks(BATCH) {
                let cmds = batch
                    .iter()
                    .map(|&k| {
                        let mut c = redis::cmd("HMGET");
                        c.arg(chunk_key(world, k)).arg("v").arg("r").arg("d");
                        c
                    })
                    .collect();
                type Fields = (Option<String>, Option<String>, Option<Vec<u8>>);
                let rows: Vec<Fields> = read_all(store, cmds).await?;
                for (&key, (v, r, d)) in batch.iter().zip(rows) {
                    if v.is_none() && r.is_none() && d.is_none() {
                        continue; // gone since SCAN named it (a flush): nothing to keep
                    }
                    let line = stored_line(world, key, v, r, d)?;
                    let text = line.to_line();
                    hash.update(text.as_bytes());
                    out.put(&text)?;
                    chunks += 1;
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    let sha256 = hex(&hash.finalize());
    out.put(&format!("end chunks={chunks} sha256={sha256}\n"))?;
    out.inner.flush().map_err(io("cannot write the export"))?;
    Ok(ExportSummary {
        world: world.to_string(),
        time,
        chunks,
        bytes: out.bytes,
        sha256,
    })
}

/// A chunk's stored fields as a line, refusing fields the store could not have written.
fn stored_line(
    world: &WorldId,
    key: ChunkKey,
    v: Option<String>,
    r: Option<String>,
    d: Option<Vec<u8>>,
) -> Result<ChunkLine, BackupError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        world: world.to_string(),
        key,
        reason,
    };
    // A sequence absent reads as 0 in the store; exported as 0 it reads the same again.
    let seq = match v.as_deref() {
        None => 0,
        Some(v) => canonical_u64(v).ok_or_else(|| corrupt(format!("sequence `{v}`")))?,
    };
    let revision = match r.as_deref() {
        None => None,
        Some(r) => Some(canonical_u64(r).ok_or_else(|| corrupt(format!("revision `{r}`")))?),
    };
    let blob = d.unwrap_or_default();
    decode_chunk(&blob).map_err(|e| corrupt(e.to_string()))?;
    Ok(ChunkLine {
        key,
        seq,
        revision,
        blob,
    })
}

/// The import's temporary copy of the verified chunk lines, removed when dropped.
struct Spool {
    path: std::path::PathBuf,
    file: std::fs::File,
}

impl Spool {
    fn create() -> Result<Self, BackupError> {
        let path = std::env::temp_dir().join(format!(
            "cubewalk-import-{}-{:016x}.tmp",
            std::process::id(),
            rand::random::<u64>()
        ));
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options
            .open(&path)
            .map_err(io("cannot create the import's temporary file"))?;
        Ok(Self { path, file })
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What the header says.
struct Header {
    world: WorldId,
    time: String,
}

fn parse_header(text: &str) -> Result<Header, String> {
    let fields: Vec<&str> = text.split(' ').collect();
    let [name, version, world, time] = fields[..] else {
        return Err("the first line is not a cubewalk-world-export header".into());
    };
    if name != FORMAT_NAME {
        return Err("the first line is not a cubewalk-world-export header".into());
    }
    if version != FORMAT_VERSION.to_string() {
        return Err(format!(
            "format version {version}; this build reads version {FORMAT_VERSION}"
        ));
    }
    let world = world
        .strip_prefix("world=")
        .ok_or("the header names no world")?;
    let world = WorldId::new(world).map_err(|e| format!("header world: {e}"))?;
    let time = time
        .strip_prefix("time=")
        .filter(|t| !t.is_empty())
        .ok_or("the header has no time")?;
    Ok(Header {
        world,
        time: time.to_string(),
    })
}

/// Reads one line (with its `\n`) into `buf`; `false` at the end of the input.
fn read_line(input: &mut impl BufRead, buf: &mut Vec<u8>, n: u64) -> Result<bool, BackupError> {
    buf.clear();
    let read = input
        .by_ref()
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', buf)
        .map_err(io("cannot read the export"))?;
    if read == 0 {
        return Ok(false);
    }
    if buf.last() != Some(&b'\n') {
        return Err(BackupError::Invalid(if read > MAX_LINE {
            format!("line {n} is longer than any export's")
        } else {
            format!("line {n} ends without a newline: the file is truncated")
        }));
    }
    buf.pop();
    Ok(true)
}

/// The verified input: its header, chunk count, checksum and size.
struct Verified {
    header: Header,
    chunks: u64,
    sha256: String,
    bytes: u64,
}

/// Reads the whole input, checking every line, the count and the checksum, and copies the
/// chunk lines to `spool`. Writes nothing to the store.
fn verify(mut input: impl BufRead, spool: &mut impl Write) -> Result<Verified, BackupError> {
    let invalid = |n: u64, e: String| BackupError::Invalid(format!("line {n}: {e}"));
    let mut buf = Vec::new();
    let mut bytes = 0u64;
    let mut n = 1u64;
    if !read_line(&mut input, &mut buf, n)? {
        return Err(BackupError::Invalid("the file is empty".into()));
    }
    bytes += buf.len() as u64 + 1;
    let text = std::str::from_utf8(&buf).map_err(|_| invalid(n, "not UTF-8".into()))?;
    let header = parse_header(text).map_err(|e| invalid(n, e))?;
    let mut hash = Sha256::new();
    hash.update(&buf);
    hash.update(b"\n");
    let mut seen: HashSet<ChunkKey> = HashSet::new();
    let mut chunks = 0u64;
    loop {
        n += 1;
        if !read_line(&mut input, &mut buf, n)? {
            return Err(BackupError::Invalid(
                "no trailer: the file is truncated".into(),
            ));
        }
        bytes += buf.len() as u64 + 1;
        let text = std::str::from_utf8(&buf).map_err(|_| invalid(n, "not UTF-8".into()))?;
        if let Some(trailer) = text.strip_prefix("end ") {
            let (count, sha) = trailer
                .split_once(' ')
                .and_then(|(c, s)| {
                    Some((
                        canonical_u64(c.strip_prefix("chunks=")?)?,
                        s.strip_prefix("sha256=")?,
                    ))
                })
                .ok_or_else(|| invalid(n, "not a trailer".into()))?;
            let actual = hex(&hash.finalize());
            if count != chunks {
                return Err(invalid(
                    n,
                    format!("the trailer counts {count} chunks, the file holds {chunks}"),
                ));
            }
            if sha != actual {
                return Err(invalid(
                    n,
                    format!("checksum mismatch: the trailer says {sha}, the content is {actual}"),
                ));
            }
            if read_line(&mut input, &mut buf, n + 1)? {
                return Err(invalid(n + 1, "data after the trailer".into()));
            }
            return Ok(Verified {
                header,
                chunks,
                sha256: actual,
                bytes,
            });
        }
        let line = ChunkLine::parse(text).map_err(|e| invalid(n, e))?;
        decode_chunk(&line.blob)
            .map_err(|e| invalid(n, format!("chunk {} does not decode: {e}", line.key)))?;
        if !seen.insert(line.key) {
            return Err(invalid(n, format!("chunk {} appears twice", line.key)));
        }
        hash.update(&buf);
        hash.update(b"\n");
        spool
            .write_all(&buf)
            .and_then(|()| spool.write_all(b"\n"))
            .map_err(io("cannot write the import's temporary file"))?;
        chunks += 1;
    }
}

/// Whether `world` holds any chunk.
async fn world_has_chunks(store: &RedisStore, world: &WorldId) -> Result<bool, BackupError> {
    let pattern = pattern(world);
    for node in nodes(store).await? {
        let mut cursor = 0;
        loop {
            let (next, keys) = scan_step(store, &node, cursor, &pattern).await?;
            if keys.iter().any(|k| parse_chunk_key(world, k).is_some()) {
                return Ok(true);
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(false)
}

/// Verifies `input` as a whole export, then writes its chunks to `world_override` (or the
/// world its header names) exactly as exported; see the module documentation for what is
/// checked and when it refuses. Nothing is written unless the whole file is intact and, in
/// [`ImportMode::IntoEmpty`], the world holds no chunk.
pub async fn import_world(
    store: &RedisStore,
    world_override: Option<&WorldId>,
    input: impl BufRead,
    mode: ImportMode,
) -> Result<ImportSummary, BackupError> {
    let mut spool = Spool::create()?;
    let verified = {
        let mut writer = BufWriter::new(&spool.file);
        let verified = verify(input, &mut writer)?;
        writer
            .flush()
            .map_err(io("cannot write the import's temporary file"))?;
        verified
    };
    let world = world_override
        .cloned()
        .unwrap_or_else(|| verified.header.world.clone());
    if mode == ImportMode::IntoEmpty && world_has_chunks(store, &world).await? {
        return Err(BackupError::Refused(format!(
            "world {world} already holds chunks: nothing imported (--replace overwrites the \
             chunks the file names)"
        )));
    }
    spool
        .file
        .rewind()
        .map_err(io("cannot read the import's temporary file"))?;
    let mut reader = BufReader::new(&spool.file);
    let (mut written, mut replaced, mut refused) = (0u64, 0u64, 0u64);
    let mut buf = Vec::new();
    let mut batch = Vec::with_capacity(BATCH);
    let mut n = 0;
    loop {
        n += 1;
        let more = read_line(&mut reader, &mut buf, n)?;
        if more {
            // Verified above: a line that no longer parses means the temporary file changed.
            let text = std::str::from_utf8(&buf)
                .map_err(|_| BackupError::Io("the temporary file changed".into()))?;
            batch.push(ChunkLine::parse(text).map_err(BackupError::Io)?);
        }
        if batch.len() == BATCH || (!more && !batch.is_empty()) {
            let cmds: Vec<Cmd> = batch
                .drain(..)
                .map(|line| {
                    let mut c = redis::cmd("EVAL");
                    c.arg(IMPORT_SCRIPT)
                        .arg(1)
                        .arg(chunk_key(&world, line.key))
                        .arg(if mode == ImportMode::Replace {
                            "1"
                        } else {
                            "0"
                        })
                        .arg(line.seq)
                        .arg(line.revision.map(|r| r.to_string()).unwrap_or_default())
                        .arg(line.blob);
                    c
                })
                .collect();
            // Not repeated after a broken connection: some scripts may have run, and in
            // IntoEmpty mode their second run would report the import's own chunks as
            // conflicts. The error tells the operator to run it again with --replace.
            let answers: Vec<i64> = store.run_all(cmds).await.map_err(|e| {
                BackupError::Store(StoreError::Unavailable(format!(
                    "{} after writing {written} chunks (run the import again with --replace)",
                    unavailable(&e)
                )))
            })?;
            for a in answers {
                match a {
                    -1 => refused += 1,
                    1 => {
                        written += 1;
                        replaced += 1;
                    }
                    _ => written += 1,
                }
            }
        }
        if !more {
            break;
        }
    }
    if written + refused != verified.chunks {
        return Err(BackupError::Io(format!(
            "the temporary file held {} of the {} verified chunks",
            written + refused,
            verified.chunks
        )));
    }
    if refused > 0 {
        return Err(BackupError::Refused(format!(
            "{refused} chunks of world {world} were written by someone else during the import \
             and were left as they are; {written} chunks were imported"
        )));
    }
    Ok(ImportSummary {
        world: world.to_string(),
        exported_world: verified.header.world.to_string(),
        exported_at: verified.header.time,
        chunks: written,
        replaced,
        bytes: verified.bytes,
        sha256: verified.sha256,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `time` as RFC 3339 in UTC to the second (`2024-05-01T12:00:00Z`), without a date library.
fn rfc3339_utc(time: std::time::SystemTime) -> String {
    let secs = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm, for days >= 0).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_keys_parse_strictly() {
        let w = WorldId::new("w.1").unwrap();
        assert_eq!(
            parse_chunk_key(&w, b"cw:{w.1:-1,2,-3}"),
            Some(ChunkKey::new(-1, 2, -3))
        );
        for other in [
            &b"cw:{w.1:-1,2,-3}:log"[..],
            b"cw:{w.1:-1,2,-3}:put:k:p",
            b"cw:{w.12:1,2,3}",
            b"cw:{w.1:+1,2,3}",
            b"cw:{w.1:01,2,3}",
            b"cw:{w.1:1,2}",
            b"cw:{w.1:1,2,3,4}",
            b"cw:{w.1:1,2,3",
            b"cw:{w.1:1, 2,3}",
            b"cw:{p:w.1}:ban",
            b"cw:{w.1:\xff}",
        ] {
            assert_eq!(parse_chunk_key(&w, other), None, "{other:?}");
        }
    }

    #[test]
    fn chunk_lines_round_trip_and_refuse_other_forms() {
        let line = ChunkLine {
            key: ChunkKey::new(i32::MIN, 0, i32::MAX),
            seq: u64::MAX,
            revision: Some(42),
            blob: vec![1, 2, 3],
        };
        let text = line.to_line();
        assert_eq!(ChunkLine::parse(text.trim_end()), Ok(line));
        let air = ChunkLine {
            key: ChunkKey::new(0, 0, 0),
            seq: 1,
            revision: None,
            blob: Vec::new(),
        };
        assert_eq!(air.to_line(), "c 0,0,0 1 - -\n");
        assert_eq!(ChunkLine::parse("c 0,0,0 1 - -"), Ok(air));
        for bad in [
            "c 0,0,0 1 -",
            "c 0,0,0 01 - -",
            "c 0,0,0 1 +5 -",
            "c 0,0,0 1 - AQI",
            "c 0,0,0 1 -  -",
            "x 0,0,0 1 - -",
            "c +0,0,0 1 - -",
        ] {
            assert!(ChunkLine::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_are_rfc3339_utc() {
        let at = |secs| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        assert_eq!(rfc3339_utc(at(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(at(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(at(1_735_689_599)), "2024-12-31T23:59:59Z");
    }
}
