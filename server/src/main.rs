//! `cubewalk-server`: runs the CubeWalk backend locally (`serve`).

use clap::{Parser, Subcommand};
use cubewalk_server::gateway::{self, GatewayConfig, TokenAuthorizer};
use cubewalk_server::handlers::authorizer::TokenSet;
use cubewalk_server::realtime::{MemorySubscriptions, Subscriptions};
use cubewalk_server::store::{ChunkStore, MemoryStore, RedisStore, RedisStoreConfig};
use rand::distr::{Alphanumeric, SampleString};
use regex::Regex;
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
    Serve(ServeArgs),
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
    /// Accepted tokens, comma-separated; a random dev token is made and printed when absent.
    #[arg(long, env = "CUBEWALK_TOKENS", hide_env_values = true)]
    tokens: Option<String>,
    /// Stage name (first path segment).
    #[arg(long, default_value = "prod")]
    stage: String,
    /// Authorizer cache TTL in seconds (API Gateway's ReauthorizeEvery; 0 disables).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(0..=3600))]
    auth_cache_ttl: u64,
    /// Identity validation expression for the `token` header.
    #[arg(long, default_value = gateway::DEFAULT_TOKEN_REGEX)]
    token_regex: String,
    /// Most connections open at once (more wait in the listen backlog).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=65536))]
    max_connections: u64,
    /// Seconds a connection may take to send a request head; idle keep-alive connections are
    /// closed after it too.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    header_timeout: u64,
    /// Seconds an authorized request's body may take to arrive (408 after).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    body_timeout: u64,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let token_regex =
        Regex::new(&args.token_regex).map_err(|e| format!("bad --token-regex: {e}"))?;
    let (tokens, dev_token) = match &args.tokens {
        Some(list) => (TokenSet::from_list(list), None),
        None => {
            let t = Alphanumeric.sample_string(&mut rand::rng(), 32);
            (TokenSet::new([&t]), Some(t))
        }
    };
    if tokens.is_empty() {
        return Err("no usable token in CUBEWALK_TOKENS".into());
    }
    let (store, index, store_name): (Arc<dyn ChunkStore>, Arc<dyn Subscriptions>, String) =
        match &args.redis {
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
                let store = Arc::new(store);
                (store.clone(), store, mode.to_string())
            }
            None => (
                Arc::new(MemoryStore::new()),
                Arc::new(MemorySubscriptions::new()),
                "embedded (in memory; gone when this process stops)".into(),
            ),
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
            header_timeout: Duration::from_secs(args.header_timeout),
            ..defaults.connections.clone()
        },
        management_endpoint: Some(format!("http://{addr}/{}", args.stage)),
        ..defaults
    };
    let limits = config.connections.clone();
    let app = gateway::router(config, Arc::new(TokenAuthorizer(tokens)), store, index);
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "listening on a non-loopback address: reachable from the network");
    }
    let url = format!("http://{addr}/{}/cubewalkblocks", args.stage);
    println!("CubeWalk local gateway listening on {url}");
    println!("realtime (WebSocket): ws://{addr}/{}", args.stage);
    println!("store: {store_name}");
    match &dev_token {
        Some(t) => {
            println!("dev token: {t}");
            println!("try: curl -H 'token:{t}' {url}");
        }
        None => println!("try: curl -H \"token:$YOUR_TOKEN\" {url}"),
    }
    println!("press Ctrl-C to stop");
    gateway::serve(listener, app, limits, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .map_err(|e| e.to_string())?;
    println!("stopped");
    Ok(())
}
