//! The gate's one session on the broker, and who holds which region.
//!
//! The gate subscribes to every change topic once (`cw/#`) and hands each change to the
//! sessions holding its region, through a bounded queue per session. Players' subscriptions
//! never reach the broker: rumqttd keeps the state of every topic filter it was ever asked for,
//! and frees none, so one player subscribing to region after region would grow the server
//! without bound. Here a region's entry lives exactly as long as a session holds it.
//!
//! When the broker connection fails, every session is closed (their followers reconnect and
//! reconcile) and new ones are refused (CONNACK 3) until the gate is subscribed again, so no
//! follower believes it holds a region while changes to it are lost.

use crate::realtime::BrokerAddress;
use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4::{Packet, Publish};
use rumqttc::{AsyncClient, Event, QoS};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};

/// The filter the gate holds on the broker: every region's change topic.
pub const ALL_CHANGES: &str = "cw/#";
/// Messages a session may have waiting for its client; one more and it is closed (its
/// follower reconnects and reconciles). A tick sends at most one per region held (50).
pub const SESSION_QUEUE: usize = 256;

/// A change on its way to a session: its region topic, and its PUBLISH packet, ready for the
/// client.
pub type Queued = (Arc<str>, Bytes);

/// One session's end of the fan-out: its queue, and what tells it that it fell behind.
#[derive(Clone)]
pub struct Outbox {
    id: u64,
    queue: mpsc::Sender<Queued>,
    behind: Arc<Notify>,
}

/// What a session reads from: its messages, and the signal that it fell behind.
pub struct Inbox {
    /// Changes for the regions it held when they came; one of a region it has left since is
    /// dropped, not sent.
    pub messages: mpsc::Receiver<Queued>,
    /// Notified once a message could not be queued.
    pub behind: Arc<Notify>,
}

/// Sessions by the region topics they hold, and the broker connection's state.
pub struct Fanout {
    holders: Mutex<HashMap<String, Vec<Outbox>>>,
    /// Whether the gate holds its subscription on the broker now.
    subscribed: watch::Sender<bool>,
    /// How many times the broker connection was lost: a session started at one count ends
    /// when it moves (a watch, so no loss is missed between two looks).
    losses: watch::Sender<u64>,
    broker: BrokerAddress,
}

impl Fanout {
    /// A fan-out from `broker`; nothing flows until [`Fanout::run`] runs.
    pub fn new(broker: BrokerAddress) -> Arc<Self> {
        Arc::new(Self {
            holders: Mutex::new(HashMap::new()),
            subscribed: watch::Sender::new(false),
            losses: watch::Sender::new(0),
            broker,
        })
    }

    /// A new session's outbox and inbox.
    pub fn session(id: u64) -> (Outbox, Inbox) {
        let (queue, messages) = mpsc::channel(SESSION_QUEUE);
        let behind = Arc::new(Notify::new());
        (
            Outbox {
                id,
                queue,
                behind: behind.clone(),
            },
            Inbox { messages, behind },
        )
    }

    /// Whether the gate holds its subscription on the broker, or comes to within `within`
    /// (at start, or while it reconnects): sessions are refused otherwise.
    pub async fn subscribed_within(&self, within: Duration) -> bool {
        let mut up = self.subscribed.subscribe();
        let subscribed = matches!(
            tokio::time::timeout(within, up.wait_for(|s| *s)).await,
            Ok(Ok(_))
        );
        subscribed
    }

    /// Changes when the broker connection is lost: a session watching it from its start
    /// ends then.
    pub fn losses(&self) -> watch::Receiver<u64> {
        self.losses.subscribe()
    }

    /// `outbox` receives the changes of `topic` from now on.
    pub fn hold(&self, topic: &str, outbox: &Outbox) {
        let mut holders = self.holders.lock().unwrap_or_else(|p| p.into_inner());
        let list = holders.entry(topic.to_owned()).or_default();
        if !list.iter().any(|o| o.id == outbox.id) {
            list.push(outbox.clone());
        }
    }

    /// Session `id` no longer receives `topic`; the topic's entry goes with its last holder.
    pub fn release(&self, topic: &str, id: u64) {
        let mut holders = self.holders.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = holders.get_mut(topic) {
            list.retain(|o| o.id != id);
            if list.is_empty() {
                holders.remove(topic);
            }
        }
    }

    /// Region topics held by at least one session.
    pub fn topics(&self) -> usize {
        self.holders.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Hands one change message to every session holding `topic`.
    fn deliver(&self, topic: &str, packet: &Bytes) {
        let holders = self.holders.lock().unwrap_or_else(|p| p.into_inner());
        let Some(list) = holders.get(topic) else {
            return;
        };
        let topic: Arc<str> = Arc::from(topic);
        for outbox in list {
            if outbox
                .queue
                .try_send((topic.clone(), packet.clone()))
                .is_err()
            {
                // Full (the client stopped reading) or closed (the session is ending).
                outbox.behind.notify_one();
            }
        }
    }

    /// Keeps the gate's session on the broker, subscribed to [`ALL_CHANGES`], and fans out
    /// what it receives; re-connects with backoff after a failure. Runs until dropped.
    pub async fn run(self: Arc<Self>) {
        let id = format!("cubewalk-gate-{:016x}", rand::random::<u64>());
        let (client, mut events) = AsyncClient::new(self.broker.options(&id), 64);
        let mut backoff = Duration::from_millis(100);
        loop {
            match events.poll().await {
                Ok(Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                    if let Err(e) = client.try_subscribe(ALL_CHANGES, QoS::AtMostOnce) {
                        tracing::warn!(error = %e, "the gate cannot subscribe on the broker");
                    }
                }
                Ok(Event::Incoming(rumqttc::Packet::SubAck(ack))) => {
                    let granted = ack
                        .return_codes
                        .iter()
                        .all(|c| matches!(c, rumqttc::SubscribeReasonCode::Success(_)));
                    if granted {
                        backoff = Duration::from_millis(100);
                        self.subscribed.send_replace(true);
                        tracing::info!("realtime gate subscribed on the broker");
                    } else {
                        tracing::error!("the broker refused the gate's subscription");
                    }
                }
                Ok(Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    match encode(&p.topic, p.payload) {
                        Ok(packet) => self.deliver(&p.topic, &packet),
                        Err(e) => tracing::warn!(error = %e, "a change could not be encoded"),
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if self.subscribed.send_replace(false) {
                        tracing::warn!(error = %e, "the gate lost the broker; closing realtime sessions");
                    }
                    // Every session ends: changes may be lost from now until the gate is
                    // subscribed again, and a follower reconciles when it reconnects.
                    self.losses.send_modify(|n| *n += 1);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// A QoS 0 PUBLISH of `payload` on `topic`, as the client receives it.
fn encode(topic: &str, payload: Bytes) -> Result<Bytes, String> {
    let mut out = BytesMut::with_capacity(payload.len() + topic.len() + 8);
    let mut publish = Publish::from_bytes(topic, QoS::AtMostOnce, payload);
    publish.retain = false;
    Packet::Publish(publish)
        .write(&mut out, super::mqtt::MAX_PACKET_BYTES)
        .map_err(|e| e.to_string())?;
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker() -> BrokerAddress {
        BrokerAddress {
            host: "127.0.0.1".into(),
            port: 1,
            login: None,
        }
    }

    #[tokio::test]
    async fn a_change_reaches_its_regions_holders_only_and_entries_go_with_them() {
        let fanout = Fanout::new(broker());
        let (a, mut a_in) = Fanout::session(1);
        let (b, mut b_in) = Fanout::session(2);
        fanout.hold("cw/w/0/0/0", &a);
        fanout.hold("cw/w/0/0/0", &a);
        fanout.hold("cw/w/0/0/0", &b);
        fanout.hold("cw/w/1/0/0", &b);
        let packet = encode("cw/w/0/0/0", Bytes::from_static(b"[]")).unwrap();
        fanout.deliver("cw/w/0/0/0", &packet);
        assert_eq!(a_in.messages.try_recv().unwrap().1, packet);
        assert!(
            a_in.messages.try_recv().is_err(),
            "held twice, delivered once"
        );
        let (topic, got) = b_in.messages.try_recv().unwrap();
        assert_eq!((&*topic, got), ("cw/w/0/0/0", packet.clone()));
        fanout.deliver("cw/w/2/0/0", &packet);
        assert!(a_in.messages.try_recv().is_err() && b_in.messages.try_recv().is_err());
        assert_eq!(fanout.topics(), 2);
        fanout.release("cw/w/0/0/0", 1);
        fanout.release("cw/w/0/0/0", 2);
        fanout.release("cw/w/1/0/0", 2);
        assert_eq!(fanout.topics(), 0, "nothing kept for regions no one holds");
    }

    #[tokio::test]
    async fn a_session_that_falls_behind_is_told_once_its_queue_is_full() {
        let fanout = Fanout::new(broker());
        let (a, a_in) = Fanout::session(1);
        fanout.hold("cw/w/0/0/0", &a);
        let packet = encode("cw/w/0/0/0", Bytes::from_static(b"[]")).unwrap();
        for _ in 0..SESSION_QUEUE {
            fanout.deliver("cw/w/0/0/0", &packet);
        }
        let told = a_in.behind.notified();
        tokio::pin!(told);
        assert!(
            futures_util::poll!(told.as_mut()).is_pending(),
            "not behind yet"
        );
        fanout.deliver("cw/w/0/0/0", &packet);
        tokio::time::timeout(Duration::from_secs(1), told)
            .await
            .expect("told it fell behind");
    }

    #[test]
    fn changes_reach_clients_as_plain_qos_0_publishes() {
        let packet = encode("cw/w/0/0/0", Bytes::from_static(b"[1]")).unwrap();
        let mut buf = BytesMut::from(&packet[..]);
        match Packet::read(&mut buf, 1 << 20).unwrap() {
            Packet::Publish(p) => {
                assert_eq!(p.topic, "cw/w/0/0/0");
                assert_eq!(p.qos, QoS::AtMostOnce);
                assert!(!p.retain && !p.dup);
                assert_eq!(&p.payload[..], b"[1]");
            }
            other => panic!("{other:?}"),
        }
    }
}
