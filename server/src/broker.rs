//! The embedded MQTT broker of `serve`: rumqttd on a loopback port, reachable only with a
//! random login made at start, so only this process's publisher and gate use it: the
//! publisher publishes each region's changes, the gate holds one subscription to them all and
//! fans them out to the players' sessions ([`crate::gateway::fanout`]). Players never reach
//! the broker itself.

use crate::realtime::BrokerAddress;
use rand::distr::{Alphanumeric, SampleString};
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
use std::collections::HashMap;
use std::time::Duration;

/// Starts the broker on its own threads, at the background's lower priority, and answers where it listens once it accepts
/// connections.
pub async fn start_embedded() -> Result<BrokerAddress, String> {
    // A free loopback port (rumqttd binds it itself, just after).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port for the broker: {e}"))?
        .port();
    let user = "cubewalk".to_string();
    let password = Alphanumeric.sample_string(&mut rand::rng(), 32);
    let connections = ConnectionSettings {
        connection_timeout_ms: 10_000,
        max_payload_size: 256 * 1024,
        max_inflight_count: 200,
        auth: Some(HashMap::from([(user.clone(), password.clone())])),
        external_auth: None,
        dynamic_filters: true,
    };
    let server = ServerSettings {
        name: "cubewalk-v4".into(),
        listen: ([127, 0, 0, 1], port).into(),
        tls: None,
        next_connection_delay_ms: 0,
        connections,
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            // The publisher and the gate, and room for a few reconnections racing the old
            // connections' ends.
            max_connections: 16,
            max_outgoing_packet_count: 200,
            // One filter holds every change (the gate's `cw/#`); its log keeps at most two
            // segments of 1 MB. A gate further behind than that loses the oldest, and its
            // followers see the jump in the chunks' sequences and refetch.
            max_segment_size: 1024 * 1024,
            max_segment_count: 2,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("1".to_string(), server)])),
        ..Config::default()
    };
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            // The broker's own threads (started from this one) inherit it.
            crate::background::lower_this_thread();
            let mut broker = Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "the embedded MQTT broker stopped");
            }
        })
        .map_err(|e| format!("cannot start the broker: {e}"))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if tokio::time::Instant::now() > deadline {
            return Err(format!("the embedded broker did not listen on port {port}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(BrokerAddress {
        host: "127.0.0.1".into(),
        port,
        login: Some((user, password)),
    })
}
