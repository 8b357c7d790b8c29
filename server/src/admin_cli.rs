//! `cubewalk-server admin ...`: the admin operations run directly on a Redis URL (for an
//! operator with network access to the store, such as a bastion in the VPC). They answer JSON,
//! as the REST admin API does.
//!
//! A ban refuses the player's puts at once and new realtime connections from then on. An open
//! realtime connection ends when IoT Core next re-runs the broker authorizer (every 300 s,
//! `REFRESH_AFTER_SECS`), which refuses a banned player; only `serve`'s gate, banned through
//! its REST admin API, closes one at once.

use cubewalk_protocol::{ChunkKey, WorldId};
use cubewalk_server::admin;
use cubewalk_server::identity::valid_player_id;
use cubewalk_server::store::{RedisStore, RedisStoreConfig};

/// Where the store is.
#[derive(clap::Args)]
pub struct StoreArgs {
    /// Redis URL (`redis://[user:pass@]host:port`, `rediss://` for TLS).
    #[arg(long, env = "CUBEWALK_REDIS_URL", hide_env_values = true)]
    redis: String,
    /// The URL is a Redis Cluster node.
    #[arg(long, env = "CUBEWALK_REDIS_CLUSTER")]
    redis_cluster: bool,
}

/// The admin commands.
#[derive(clap::Subcommand)]
pub enum AdminCommand {
    /// A chunk's log: who changed which cube from what to what, oldest first.
    ChunkHistory {
        #[command(flatten)]
        store: StoreArgs,
        /// The world.
        #[arg(long, default_value = "default")]
        world: String,
        /// The chunk, `x,y,z`.
        #[arg(long, value_parser = parse_chunk, allow_hyphen_values = true)]
        chunk: ChunkKey,
        /// From when: Unix milliseconds, or an age such as `90m`, `2h`, `3d`.
        #[arg(long, default_value = "7d", value_parser = parse_since)]
        since: u64,
    },
    /// A player's edits in a world, oldest first.
    PlayerHistory {
        #[command(flatten)]
        store: StoreArgs,
        /// The world.
        #[arg(long, default_value = "default")]
        world: String,
        /// The player id.
        #[arg(long, value_parser = parse_player)]
        player: String,
        /// From when: Unix milliseconds, or an age such as `90m`, `2h`, `3d`.
        #[arg(long, default_value = "7d", value_parser = parse_since)]
        since: u64,
    },
    /// Put back every cube the player changed since a time, where no one changed it since.
    Rollback {
        #[command(flatten)]
        store: StoreArgs,
        /// The world.
        #[arg(long, default_value = "default")]
        world: String,
        /// The player id.
        #[arg(long, value_parser = parse_player)]
        player: String,
        /// From when: Unix milliseconds, or an age such as `90m`, `2h`, `3d`.
        #[arg(long, value_parser = parse_since)]
        since: u64,
    },
    /// Refuse the player's puts and follows from now on.
    Ban {
        #[command(flatten)]
        store: StoreArgs,
        /// The player id.
        #[arg(long, value_parser = parse_player)]
        player: String,
    },
    /// Lift a ban.
    Unban {
        #[command(flatten)]
        store: StoreArgs,
        /// The player id.
        #[arg(long, value_parser = parse_player)]
        player: String,
    },
}

fn parse_chunk(s: &str) -> Result<ChunkKey, String> {
    s.parse()
        .map_err(|e: cubewalk_protocol::ChunkKeyParseError| e.to_string())
}

fn parse_player(s: &str) -> Result<String, String> {
    valid_player_id(s)
        .then(|| s.to_owned())
        .ok_or_else(|| "a player id is 1 to 128 of A-Z a-z 0-9 . _ : @ | + -".into())
}

/// Unix milliseconds, or an age (`<n>m`, `<n>h`, `<n>d`) before now.
fn parse_since(s: &str) -> Result<u64, String> {
    let unit = match s.chars().last() {
        Some('m') => 60_000,
        Some('h') => 3_600_000,
        Some('d') => 86_400_000,
        _ => {
            return s
                .parse()
                .map_err(|_| "Unix milliseconds, or 90m, 2h, 3d".into())
        }
    };
    let n: u64 = s[..s.len() - 1]
        .parse()
        .map_err(|_| "Unix milliseconds, or 90m, 2h, 3d".to_string())?;
    Ok(cubewalk_server::store::log::now_ms().saturating_sub(n.saturating_mul(unit)))
}

fn world(s: &str) -> Result<WorldId, String> {
    WorldId::new(s).map_err(|e| e.to_string())
}

pub(crate) async fn open(args: &StoreArgs) -> Result<RedisStore, String> {
    let mut config = RedisStoreConfig::new(args.redis.clone());
    config.cluster = args.redis_cluster;
    RedisStore::connect(&config)
        .await
        .map_err(|e| e.to_string())
}

fn print(value: &impl serde::Serialize) -> Result<(), String> {
    println!(
        "{}",
        serde_json::to_string_pretty(value).map_err(|e| e.to_string())?
    );
    Ok(())
}

/// Runs one admin command, printing its JSON answer.
pub async fn run(command: AdminCommand) -> Result<(), String> {
    let e = |e: cubewalk_server::store::StoreError| e.to_string();
    match command {
        AdminCommand::ChunkHistory {
            store,
            world: w,
            chunk,
            since,
        } => {
            let store = open(&store).await?;
            let records = admin::chunk_history(&store, &world(&w)?, chunk, since)
                .await
                .map_err(e)?;
            print(&serde_json::json!({ "records": records }))
        }
        AdminCommand::PlayerHistory {
            store,
            world: w,
            player,
            since,
        } => {
            let store = open(&store).await?;
            let records = admin::player_history(&store, &world(&w)?, &player, since)
                .await
                .map_err(e)?;
            print(&serde_json::json!({ "records": records }))
        }
        AdminCommand::Rollback {
            store,
            world: w,
            player,
            since,
        } => {
            let store = open(&store).await?;
            // The rollback's changes go to the realtime feed, as the blocks function's do.
            let notifier = cubewalk_server::realtime::Notifier {
                sink: std::sync::Arc::new(cubewalk_server::realtime::RedisSink(
                    std::sync::Arc::new(store.clone()),
                )),
                sessions: None,
            };
            let report = admin::rollback(
                &store,
                Some(&notifier),
                &world(&w)?,
                &player,
                since,
                "admin:cli",
            )
            .await
            .map_err(e)?;
            print(&report)
        }
        AdminCommand::Ban { store, player } => ban(&store, &player, true).await,
        AdminCommand::Unban { store, player } => ban(&store, &player, false).await,
    }
}

/// Sets the ban flag (no notifier: the CLI cannot close connections, so `closed` is 0).
async fn ban(store: &StoreArgs, player: &str, banned: bool) -> Result<(), String> {
    let store = open(store).await?;
    let closed = admin::set_banned(&store, None, player, banned)
        .await
        .map_err(|e| e.to_string())?;
    print(&serde_json::json!({ "player": player, "banned": banned, "closed": closed }))
}
