//! The realtime client's subscriptions for a 9x9x9 neighbourhood, against a stand-in broker: the
//! 27 regions of 4x4x4 chunks it spans go out in SUBSCRIBEs of at most 8 filters (IoT Core's
//! limit per SUBSCRIBE), and a move across a region border swaps one face of 9 regions.

#[path = "common/mqtt.rs"]
mod mqtt;

use cubewalk::realtime::{Realtime, RealtimeEvent};
use cubewalk::{ChunkKey, Client, ClientOptions};
use cubewalk_protocol::realtime::{region_topic, regions_covering, REGION_CHUNKS};
use cubewalk_protocol::WorldId;
use mqtt::{accept_mqtt, read_mqtt, send_mqtt, until};
use rumqttc::mqttbytes::v4::{
    ConnAck, ConnectReturnCode, Packet, SubAck, SubscribeReasonCode, UnsubAck,
};
use rumqttc::mqttbytes::QoS;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// The 729 chunks of the 9x9x9 neighbourhood centred on chunk `(x, 0, 0)`.
fn neighbourhood(x: i32) -> Vec<ChunkKey> {
    (0..729)
        .map(|i| ChunkKey::new(x + i % 9 - 4, (i / 9) % 9 - 4, i / 81 - 4))
        .collect()
}

fn topics(chunks: &[ChunkKey]) -> BTreeSet<String> {
    regions_covering(chunks)
        .into_iter()
        .map(|r| region_topic(&WorldId::default(), r))
        .collect()
}

/// What the stand-in broker was sent, in order.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Subscribe(Vec<String>),
    Unsubscribe(Vec<String>),
}

#[tokio::test]
async fn a_neighbourhood_subscribes_27_regions_in_batches_of_8_and_a_border_move_swaps_9() {
    assert_eq!(
        REGION_CHUNKS, 4,
        "the numbers below are for regions of 4x4x4 chunks"
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        let mut ws = accept_mqtt(s).await.unwrap();
        let Some(Packet::Connect(_)) = read_mqtt(&mut ws).await else {
            panic!("no CONNECT");
        };
        send_mqtt(
            &mut ws,
            Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, false)),
        )
        .await;
        while let Some(packet) = read_mqtt(&mut ws).await {
            match packet {
                Packet::Subscribe(sub) => {
                    let codes =
                        vec![SubscribeReasonCode::Success(QoS::AtMostOnce); sub.filters.len()];
                    log.lock().unwrap().push(Seen::Subscribe(
                        sub.filters.iter().map(|f| f.path.clone()).collect(),
                    ));
                    send_mqtt(&mut ws, Packet::SubAck(SubAck::new(sub.pkid, codes))).await;
                }
                Packet::Unsubscribe(u) => {
                    log.lock()
                        .unwrap()
                        .push(Seen::Unsubscribe(u.topics.clone()));
                    send_mqtt(&mut ws, Packet::UnsubAck(UnsubAck::new(u.pkid))).await;
                }
                _ => {}
            }
        }
    });
    let client = Client::new(
        "http://127.0.0.1:9/prod/cubewalkblocks",
        "realtime-regions-token",
        ClientOptions::default(),
    )
    .unwrap();
    let r = Realtime::start(&client, &format!("ws://{addr}/mqtt")).unwrap();
    let subscribed = || {
        let mut n = 0;
        r.drain(usize::MAX, |e| {
            n += usize::from(*e == RealtimeEvent::Subscribed);
            true
        });
        n
    };

    // Centred on chunk x = 3: chunks -1..=7 on x, regions -1..=1 on every axis.
    let here = neighbourhood(3);
    r.follow(&WorldId::default(), &here).unwrap();
    until("subscribed", || subscribed() > 0).await;
    let first = seen.lock().unwrap().clone();
    let sizes: Vec<usize> = first
        .iter()
        .map(|s| match s {
            Seen::Subscribe(t) => t.len(),
            Seen::Unsubscribe(_) => panic!("nothing to unsubscribe yet: {s:?}"),
        })
        .collect();
    assert_eq!(sizes, [8, 8, 8, 3], "27 filters, at most 8 per SUBSCRIBE");
    let all: BTreeSet<String> = first
        .iter()
        .flat_map(|s| match s {
            Seen::Subscribe(t) | Seen::Unsubscribe(t) => t.clone(),
        })
        .collect();
    assert_eq!(all, topics(&here));
    assert_eq!(all.len(), 27);

    // One chunk east, to x = 4 (chunks 0..=8): regions 0..=2 on x, so the 9 regions of x = -1
    // go and the 9 of x = 2 come, in one UNSUBSCRIBE and SUBSCRIBEs of 8 and 1.
    seen.lock().unwrap().clear();
    r.follow(&WorldId::default(), &neighbourhood(4)).unwrap();
    until("subscribed again", || {
        seen.lock().unwrap().len() >= 3
            && seen
                .lock()
                .unwrap()
                .iter()
                .map(|s| match s {
                    Seen::Subscribe(t) => t.len(),
                    Seen::Unsubscribe(_) => 0,
                })
                .sum::<usize>()
                >= 9
    })
    .await;
    let moved = seen.lock().unwrap().clone();
    let gone: BTreeSet<String> = topics(&here)
        .difference(&topics(&neighbourhood(4)))
        .cloned()
        .collect();
    let came: BTreeSet<String> = topics(&neighbourhood(4))
        .difference(&topics(&here))
        .cloned()
        .collect();
    assert_eq!((gone.len(), came.len()), (9, 9));
    assert!(gone.iter().all(|t| t.starts_with("cw/default/-1/")));
    assert!(came.iter().all(|t| t.starts_with("cw/default/2/")));
    let Seen::Unsubscribe(off) = &moved[0] else {
        panic!("the regions left behind go first: {moved:?}")
    };
    assert_eq!(off.iter().cloned().collect::<BTreeSet<_>>(), gone);
    let on: Vec<&Vec<String>> = moved[1..]
        .iter()
        .map(|s| match s {
            Seen::Subscribe(t) => t,
            Seen::Unsubscribe(_) => panic!("one UNSUBSCRIBE: {moved:?}"),
        })
        .collect();
    assert_eq!(on.iter().map(|t| t.len()).collect::<Vec<_>>(), [8, 1]);
    assert_eq!(
        on.iter()
            .flat_map(|t| t.iter().cloned())
            .collect::<BTreeSet<_>>(),
        came
    );
}
