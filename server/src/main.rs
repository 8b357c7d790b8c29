//! `cubewalk-server`: runs the CubeWalk backend locally (`serve`), mints player tokens
//! (`token issue`, `token jwks`), makes signing keys (`token keygen`) and runs admin operations
//! on a Redis store (`admin ...`), and exports and imports worlds (`world export|import`).

mod admin_cli;
mod world_cli;

use clap::{Parser, Subcommand};
use cubewalk_protocol::WorldId;
use cubewalk_server::gateway::{self, GatewayConfig, MqttGate, RealtimeRoutes, TokenAuthorizer};
use cubewalk_server::handlers::login::{self, LoginConfig};
use cubewalk_server::identity::keys::default_key_path;
use cubewalk_server::identity::token::issue;
use cubewalk_server::identity::{
    Claims, OidcConfig, OidcIssuer, PublicKeys, Role, SigningKey, TokenSet, Verifier,
};
use cubewalk_server::realtime::{channel, run_publisher, BrokerAddress, MqttPublisher, Notifier};
use cubewalk_server::seed;
use cubewalk_server::store::{ChunkStore, MemoryStore, RedisStore, RedisStoreConfig};
use rand::distr::{Alphanumeric, SampleString};
use regex::Regex;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "cubewalk-server", version, about = "CubeWalk Net backend")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the local API Gateway with the authorizer and blocks handlers.
    Serve(Box<ServeArgs>),
    /// Player tokens: mint one, or print the public key that verifies them.
    #[command(subcommand)]
    Token(TokenCommand),
    /// History, rollback and bans on a Redis store.
    #[command(subcommand)]
    Admin(admin_cli::AdminCommand),
    /// Export a world's chunks to a checksummed file, or import one (backups and restore).
    #[command(subcommand)]
    World(world_cli::WorldCommand),
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a player token (a JWT signed with the signing key, EdDSA).
    Issue(IssueArgs),
    /// Print the signing key's public half as a JWK Set (the template's PlayerPublicKeys).
    Jwks(KeyArgs),
    /// Make a new Ed25519 signing key: write it to a new file (owner-only) as PKCS#8 PEM, for
    /// the guest login's secret or a studio backend, and print its public half as a JWK Set.
    Keygen(KeygenArgs),
}

#[derive(clap::Args)]
struct KeygenArgs {
    /// Where to write the private key; an existing file is never overwritten.
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args)]
struct KeyArgs {
    /// The Ed25519 signing key (PKCS#8 PEM); the development key `serve` uses when absent
    /// (created on first use).
    #[arg(long, env = "CUBEWALK_SIGNING_KEY")]
    key: Option<PathBuf>,
}

#[derive(clap::Args)]
struct IssueArgs {
    /// The player id (the token's `sub`).
    #[arg(long)]
    player: String,
    /// viewer (fetch and follow), editor (also put) or admin.
    #[arg(long, default_value = "editor", value_parser = parse_role)]
    role: Role,
    /// A world the token may touch (repeat for several); every world when absent.
    #[arg(long = "world")]
    worlds: Vec<String>,
    /// Seconds until the token expires.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    ttl: u64,
    #[command(flatten)]
    key: KeyArgs,
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| "the role is viewer, editor or admin".into())
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on. Loopback by default: anything else exposes the world to the network.
    #[arg(long, env = "CUBEWALK_BIND", default_value = gateway::DEFAULT_BIND)]
    bind: String,
    /// Redis URL (`redis://`, `rediss://`); the embedded in-memory store when absent.
    #[arg(long, env = "CUBEWALK_REDIS_URL", hide_env_values = true)]
    redis: Option<String>,
    /// The Redis URL is a Redis Cluster node (cluster mode enabled).
    #[arg(long, env = "CUBEWALK_REDIS_CLUSTER")]
    redis_cluster: bool,
    /// Extra trusted root certificate (PEM file) for `rediss://`.
    #[arg(long, env = "CUBEWALK_REDIS_CA_FILE")]
    redis_ca_file: Option<std::path::PathBuf>,
    /// Static development tokens, comma-separated `token[:player[:role]]`; a random one is
    /// made and printed when absent. Player tokens are accepted either way.
    #[arg(long, env = "CUBEWALK_TOKENS", hide_env_values = true)]
    tokens: Option<String>,
    /// The development signing key (PKCS#8 PEM): created on first start in a per-user folder
    /// when absent; tokens it signs are accepted.
    #[arg(long, env = "CUBEWALK_SIGNING_KEY")]
    signing_key: Option<PathBuf>,
    /// More public keys to accept player tokens from: a JWK Set file (Ed25519 or P-256 keys,
    /// each with a kid).
    #[arg(long, env = "CUBEWALK_PUBLIC_KEYS_FILE")]
    public_keys: Option<PathBuf>,
    /// The worlds players may use, with bounds and budgets: comma-separated
    /// `<name or prefix*>[=<horizontal>/<vertical>[/<budget MiB>]]` (chunks; MiB of chunk data).
    /// `*` allows any world name.
    #[arg(long, env = "CUBEWALK_WORLDS", default_value = "*")]
    worlds: String,
    /// Stage name (first path segment).
    #[arg(long, default_value = "prod")]
    stage: String,
    /// Authorizer cache TTL in seconds (API Gateway's ReauthorizeEvery; 0 disables). At most
    /// 60, so a ban or an expired token takes effect within a minute.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(0..=60))]
    auth_cache_ttl: u64,
    /// Identity validation expression for the `token` header.
    #[arg(long, default_value = gateway::DEFAULT_TOKEN_REGEX)]
    token_regex: String,
    /// Most connections open at once (more wait in the listen backlog).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=65536))]
    max_connections: u64,
    /// Most realtime (MQTT over WebSocket) sessions open at once (more are refused with 429).
    /// They do not count in --max-connections.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=20_000))]
    max_realtime_connections: u64,
    /// Seconds a connection may take to send a request head; idle keep-alive connections are
    /// closed after it too.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    header_timeout: u64,
    /// Seconds an authorized request's body may take to arrive (408 after).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    body_timeout: u64,
    /// Lifetime of the guest login's tokens (`POST /<stage>/cubewalklogin`, signed with the
    /// signing key), in seconds.
    #[arg(long, default_value_t = login::DEFAULT_GUEST_TTL_SECS,
          value_parser = clap::value_parser!(u64).range(*login::GUEST_TTL_SECS.start()..=*login::GUEST_TTL_SECS.end()))]
    guest_token_ttl: u64,
    /// Also accept tokens of this OpenID Connect issuer (its URL, exactly as its tokens' `iss`);
    /// its keys come from `<issuer>/.well-known/openid-configuration`.
    #[arg(long, env = "CUBEWALK_OIDC_ISSUER", requires = "oidc_audience")]
    oidc_issuer: Option<String>,
    /// The audience (`aud`) the issuer's tokens must name (an app client id, a project id).
    #[arg(long, env = "CUBEWALK_OIDC_AUDIENCE", requires = "oidc_issuer")]
    oidc_audience: Option<String>,
    /// The issuer's claim holding the player id.
    #[arg(long, env = "CUBEWALK_OIDC_PLAYER_CLAIM", default_value = "sub")]
    oidc_player_claim: String,
    /// The issuer's claim naming the role (a string or a list, e.g. `cognito:groups`).
    #[arg(long, env = "CUBEWALK_OIDC_ROLE_CLAIM")]
    oidc_role_claim: Option<String>,
    /// The role of the issuer's tokens whose role claim names none.
    #[arg(long, env = "CUBEWALK_OIDC_ROLE", default_value = "editor", value_parser = parse_role)]
    oidc_role: Role,
    /// The issuer's key set URL, when it publishes no discovery document.
    #[arg(long, env = "CUBEWALK_OIDC_JWKS_URL")]
    oidc_jwks_url: Option<String>,
    /// Chunks on each side of the origin seeded with terrain in world `default` at start (only
    /// chunks never written, so a kept store keeps its edits), so a fresh world has ground to
    /// stand on and click; 0 seeds nothing.
    #[arg(long, env = "CUBEWALK_SEED_RADIUS", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(0..=i64::from(seed::MAX_SEED_RADIUS)))]
    seed_radius: u32,
    /// An MQTT broker to publish changes through and to put the gate in front of
    /// (`mqtt://[user:password@]host:port`, MQTT 3.1.1 over TCP, e.g. Mosquitto); without
    /// it, an embedded broker on a loopback port.
    #[arg(long, env = "CUBEWALK_BROKER_URL", hide_env_values = true)]
    broker: Option<String>,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            // The embedded broker logs every subscription at info, and every connection's end
            // at error, however it ended (the gate logs sessions itself): warnings only from
            // it, and nothing from its per-connection code.
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rumqttd=warn,rumqttd::server::broker=off".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = match cli.command {
        Command::Serve(args) => match cubewalk_server::background::runtime() {
            Ok(background) => runtime.block_on(serve(*args, background.handle().clone())),
            Err(e) => Err(format!("cannot start the realtime threads: {e}")),
        },
        Command::Token(TokenCommand::Issue(args)) => issue_token(args),
        Command::Token(TokenCommand::Jwks(args)) => print_jwks(args),
        Command::Admin(command) => runtime.block_on(admin_cli::run(command)),
        Command::World(command) => runtime.block_on(world_cli::run(command)),
        Command::Token(TokenCommand::Keygen(args)) => keygen(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The signing key at `path`, or the development key, created when missing (said on stderr).
fn signing_key(path: Option<&Path>) -> Result<(SigningKey, PathBuf), String> {
    let path = match path {
        Some(p) => p.to_owned(),
        None => default_key_path()?,
    };
    let (key, created) = SigningKey::load_or_create(&path)?;
    if created {
        eprintln!("created signing key {}", path.display());
    }
    Ok((key, path))
}

fn issue_token(args: IssueArgs) -> Result<(), String> {
    let (key, _) = signing_key(args.key.key.as_deref())?;
    let worlds = if args.worlds.is_empty() {
        None
    } else {
        Some(
            args.worlds
                .iter()
                .map(|w| WorldId::new(w).map_err(|e| format!("--world {w}: {e}")))
                .collect::<Result<Vec<_>, _>>()?,
        )
    };
    let claims = Claims::new(&args.player, args.role, worlds, args.ttl);
    println!("{}", issue(&claims, &key)?);
    Ok(())
}

fn print_jwks(args: KeyArgs) -> Result<(), String> {
    let (key, _) = signing_key(args.key.as_deref())?;
    println!("{}", serde_json::json!({ "keys": [key.public_jwk()] }));
    Ok(())
}

fn keygen(args: KeygenArgs) -> Result<(), String> {
    let (key, created) = SigningKey::load_or_create(&args.out)?;
    if !created {
        return Err(format!(
            "{} exists: not overwritten (choose another --out)",
            args.out.display()
        ));
    }
    eprintln!("wrote {} (kid {})", args.out.display(), key.kid());
    println!("{}", serde_json::json!({ "keys": [key.public_jwk()] }));
    Ok(())
}

/// Runs the local stack until Ctrl-C; the realtime side (broker, gate sessions, publisher) on
/// `background`, so it yields to the put path.
async fn serve(args: ServeArgs, background: tokio::runtime::Handle) -> Result<(), String> {
    let token_regex =
        Regex::new(&args.token_regex).map_err(|e| format!("bad --token-regex: {e}"))?;
    let (static_tokens, dev_token) = match &args.tokens {
        Some(list) => (TokenSet::parse(list)?, None),
        None => {
            let t = Alphanumeric.sample_string(&mut rand::rng(), 32);
            (TokenSet::new([&t]), Some(t))
        }
    };
    let (key, key_path) = signing_key(args.signing_key.as_deref())?;
    let mut keys = match &args.public_keys {
        Some(path) => PublicKeys::from_jwks(
            &std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        )
        .map_err(|e| format!("{}: {e}", path.display()))?,
        None => PublicKeys::new(),
    };
    keys.add_signing_key(&key);
    // The guest login signs with the same key, so its tokens are accepted.
    let login = LoginConfig {
        key,
        ttl_secs: args.guest_token_ttl,
    };
    let issuer = match (&args.oidc_issuer, &args.oidc_audience) {
        (Some(issuer), Some(audience)) => {
            let config = OidcConfig {
                player_claim: args.oidc_player_claim.clone(),
                role_claim: args.oidc_role_claim.clone(),
                default_role: args.oidc_role,
                jwks_url: args.oidc_jwks_url.clone(),
                ..OidcConfig::new(issuer.clone(), audience.clone())
            };
            let issuer = OidcIssuer::new(config)?;
            let count = issuer
                .refresh()
                .await
                .map_err(|e| format!("OpenID Connect issuer {}: {e}", issuer.config().issuer))?;
            println!(
                "trusting tokens of {} for audience {} ({count} keys)",
                issuer.config().issuer,
                issuer.config().audience
            );
            Some(Arc::new(issuer))
        }
        _ => None,
    };
    let verifier = Verifier {
        keys,
        static_tokens,
        issuer,
    };
    let (store, store_name): (Arc<dyn ChunkStore>, String) = match &args.redis {
        Some(url) => {
            let mut config = RedisStoreConfig::new(url.clone());
            config.cluster = args.redis_cluster;
            if let Some(path) = &args.redis_ca_file {
                config.ca_pem = Some(
                    std::fs::read(path)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
                );
            }
            let store = RedisStore::open(&config).await.map_err(|e| e.to_string())?;
            let mode = if config.cluster {
                "Redis Cluster"
            } else {
                "Redis"
            };
            (Arc::new(store), mode.to_string())
        }
        None => (
            Arc::new(MemoryStore::new()),
            "embedded (in memory; gone when this process stops)".into(),
        ),
    };
    // Realtime: an MQTT broker (embedded unless one is named), the publisher that sends it
    // what puts change, and the gate players follow through.
    let (broker, broker_name) = match &args.broker {
        Some(url) => (
            BrokerAddress::parse(url)?,
            format!("{:?}", BrokerAddress::parse(url)?),
        ),
        None => (
            cubewalk_server::broker::start_embedded().await?,
            "embedded (rumqttd)".to_string(),
        ),
    };
    let (sink, queue) = channel();
    let publisher = {
        // The publisher's connection runs on the background runtime, as the publisher does.
        let _in_background = background.enter();
        Arc::new(MqttPublisher::start(&broker))
    };
    background.spawn(run_publisher(queue, publisher, None, Default::default()));
    let max_realtime_connections =
        usize::try_from(args.max_realtime_connections).unwrap_or(usize::MAX);
    let mut gate = MqttGate::new(broker, verifier.clone(), store.clone());
    background.spawn(gate.run_fanout());
    gate.runtime = Some(background);
    gate.max_connections = max_realtime_connections;
    let gate = Arc::new(gate);
    let realtime = RealtimeRoutes {
        notifier: Notifier {
            sink,
            sessions: Some(gate.sessions()),
        },
        gate: Some(gate),
    };
    let seeded = if args.seed_radius > 0 {
        seed::seed_spawn(store.as_ref(), &WorldId::default(), args.seed_radius)
            .await
            .map_err(|e| format!("cannot seed the spawn area: {e}"))?
    } else {
        0
    };
    let listener = tokio::net::TcpListener::bind(&args.bind)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.bind))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let defaults = GatewayConfig::default();
    let config = GatewayConfig {
        stage: args.stage.clone(),
        auth_cache_ttl: Duration::from_secs(args.auth_cache_ttl),
        token_regex: Some(token_regex),
        body_timeout: Duration::from_secs(args.body_timeout),
        connections: gateway::ConnectionLimits {
            max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
            max_realtime_connections,
            header_timeout: Duration::from_secs(args.header_timeout),
            ..defaults.connections.clone()
        },
        rules: cubewalk_server::handlers::blocks::Rules {
            limits: cubewalk_server::store::PlayerLimits::from_env()?,
            worlds: cubewalk_server::worlds::Worlds::parse(&args.worlds)
                .map_err(|e| format!("--worlds: {e}"))?,
        },
        login: Some(Arc::new(login)),
        ..defaults
    };
    let limits = config.connections.clone();
    let app = gateway::router(
        config,
        Arc::new(TokenAuthorizer(verifier)),
        store,
        Some(realtime),
    );
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "listening on a non-loopback address: reachable from the network");
    }
    let url = format!("http://{addr}/{}/cubewalkblocks", args.stage);
    println!("CubeWalk local gateway listening on {url}");
    println!("realtime (MQTT over WebSocket): ws://{addr}/mqtt (broker: {broker_name})");
    println!("store: {store_name}");
    if args.seed_radius > 0 {
        let r = args.seed_radius;
        println!(
            "world default: terrain in chunks -{r}..={r} around the origin ({seeded} chunks seeded now; --seed-radius 0 for none)"
        );
    }
    match &dev_token {
        Some(t) => {
            println!("dev token: {t} (static, development only: player static-0, editor)");
            println!("try: curl -H 'token:{t}' {url}");
        }
        None => println!("try: curl -H \"token:$YOUR_TOKEN\" {url}"),
    }
    println!("signing key: {}", key_path.display());
    println!(
        "guest login: curl -X POST -d '{{\"device_secret\":\"<22+ random chars>\"}}' http://{addr}/{}{}",
        args.stage,
        login::RESOURCE
    );
    println!(
        "mint a player token: cargo run -p cubewalk-server -- token issue --player alice [--role viewer|editor|admin] [--world W] [--ttl S]"
    );
    println!("press Ctrl-C to stop");
    gateway::serve(listener, app, limits, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .map_err(|e| e.to_string())?;
    println!("stopped");
    Ok(())
}
