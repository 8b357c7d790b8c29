//! Publishing to an MQTT broker over TCP (the embedded broker of `serve`, or any MQTT 3.1.1
//! broker such as Mosquitto), with rumqttc.

use super::publish::Publish;
use async_trait::async_trait;
use rumqttc::{AsyncClient, Event, MqttOptions, QoS};
use std::time::Duration;

/// Where a broker listens for plain MQTT (TCP) and the credentials it wants, if any.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// User name and password for CONNECT, if the broker asks for them.
    pub login: Option<(String, String)>,
}

impl std::fmt::Debug for BrokerAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password.
        write!(f, "mqtt://{}:{}", self.host, self.port)
    }
}

impl BrokerAddress {
    /// Parses `mqtt://[user:password@]host:port`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("mqtt://")
            .ok_or("the broker URL must start with mqtt://")?;
        let (login, host_port) = match rest.rsplit_once('@') {
            Some((login, hp)) => {
                let (user, password) = login
                    .split_once(':')
                    .ok_or("the broker URL's login must be user:password")?;
                (Some((user.to_owned(), password.to_owned())), hp)
            }
            None => (None, rest),
        };
        let host_port = host_port.trim_end_matches('/');
        let (host, port) = host_port
            .rsplit_once(':')
            .ok_or("the broker URL needs a port")?;
        let port = port
            .parse()
            .map_err(|_| "the broker URL's port is not a number")?;
        if host.is_empty() {
            return Err("the broker URL needs a host".into());
        }
        Ok(Self {
            host: host.trim_matches(['[', ']']).to_owned(),
            port,
            login,
        })
    }

    /// rumqttc options for a client of this broker named `client_id`.
    pub fn options(&self, client_id: &str) -> MqttOptions {
        let mut options = MqttOptions::new(client_id, self.host.clone(), self.port);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_max_packet_size(256 * 1024, 256 * 1024);
        if let Some((user, password)) = &self.login {
            options.set_credentials(user.clone(), password.clone());
        }
        options
    }
}

/// Publishes through one MQTT connection, kept (and re-made after failures) by a background
/// task.
pub struct MqttPublisher {
    client: AsyncClient,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MqttPublisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MqttPublisher {
    /// Connects to `broker` (in the background: publishing before the connection is up waits
    /// in rumqttc's queue).
    pub fn start(broker: &BrokerAddress) -> Self {
        let id = format!("cubewalk-publisher-{:016x}", rand::random::<u64>());
        let (client, mut events) = AsyncClient::new(broker.options(&id), 4096);
        let task = tokio::spawn(async move {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(_) | Event::Outgoing(_)) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "publisher's broker connection failed");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        });
        Self { client, task }
    }
}

#[async_trait]
impl Publish for MqttPublisher {
    async fn publish(&self, topic: &str, payload: String) -> Result<(), String> {
        self.client
            .publish(topic, QoS::AtMostOnce, false, payload.into_bytes())
            .await
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_parse_and_never_print_the_password() {
        let b = BrokerAddress::parse("mqtt://u:p%w@127.0.0.1:1883").unwrap();
        assert_eq!(b.host, "127.0.0.1");
        assert_eq!(b.port, 1883);
        assert_eq!(b.login, Some(("u".into(), "p%w".into())));
        assert!(!format!("{b:?}").contains("p%w"));
        assert_eq!(BrokerAddress::parse("mqtt://[::1]:1").unwrap().host, "::1");
        for bad in [
            "http://h:1",
            "mqtt://h",
            "mqtt://:1",
            "mqtt://u@h:1",
            "mqtt://h:x",
        ] {
            assert!(BrokerAddress::parse(bad).is_err(), "{bad}");
        }
    }
}
