//! One event fanned out to 1,000 members: through the real room actor
//! (`Registry::deliver` of a typing event to a room of 1,000 joined
//! outboxes, until every member's queue holds it), and the bare loop the room
//! runs (encode a comment once, `offer` the shared bytes to each outbox).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use vridge_protocol::codec::encode;
use vridge_protocol::{Comment, Encoding, ServerMessage};
use vridge_realtime::broker::Presence;
use vridge_realtime::metrics::Metrics;
use vridge_realtime::outbound::{Inbox, OutFrame, Outbox};
use vridge_realtime::room::{Registry, RoomSettings};
use vridge_realtime::store::Store;

const MEMBERS: usize = 1000;
const PROJECT: i64 = 1;

fn event() -> ServerMessage {
    ServerMessage::Comment {
        comment: Comment {
            id: 1,
            project_id: PROJECT,
            feedback_id: 7,
            user_id: 1001,
            text: "At 0:42 the colour jumps between the two shots".into(),
            title: None,
            section: None,
            security: None,
            timestamp: Some(42.5),
            created: "2026-11-22T10:00:00.123Z".into(),
            prev_id: None,
            ..Default::default()
        },
        user_id: 1001,
        // Outside the event log, so the room passes every repetition of it
        // on (a logged event would be delivered once: the rest are stale).
        event: None,
    }
}

fn outboxes(metrics: &Arc<Metrics>) -> (Vec<Outbox>, Vec<Inbox>) {
    (0..MEMBERS)
        .map(|_| {
            let (outbox, rx, _closer) = Outbox::channel(4096, Encoding::Json, metrics.clone());
            (outbox, rx)
        })
        .unzip()
}

fn drain(receivers: &mut [Inbox]) {
    for rx in receivers {
        while rx.try_recv().is_some() {}
    }
}

fn through_the_room(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let metrics = Arc::new(Metrics::default());
    // Rooms read missing comments from the store; this bench publishes no
    // comments, but a room needs one.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = rt.block_on(Store::connect(&url, 1)).unwrap();
    let registry = Registry::new(
        RoomSettings {
            typing_timeout: Duration::from_secs(10),
            // No typing window: every iteration's event fans out at once.
            typing_batch: Duration::ZERO,
            presence_leave_grace: Duration::ZERO,
            store,
            presence: Presence::Local,
        },
        metrics.clone(),
    );
    let (boxes, mut receivers) = outboxes(&metrics);
    rt.block_on(async {
        for (i, outbox) in boxes.into_iter().enumerate() {
            registry.join(PROJECT, i as u64, i as i64 + 1, outbox).await;
        }
    });
    drain(&mut receivers);
    // A typing event: ephemeral, so the room fans it out without the comment
    // chain bookkeeping (which would drop a repeated comment id as already seen).
    let msg = Arc::new(ServerMessage::Typing {
        user_id: 0,
        is_typing: false,
    });
    c.bench_function("fanout/room_actor/1000_members", |b| {
        b.iter(|| {
            rt.block_on(async {
                registry.deliver(PROJECT, msg.clone()).await;
                for rx in receivers.iter_mut() {
                    black_box(rx.recv().await);
                }
            })
        })
    });
}

fn encode_once_offer_loop(c: &mut Criterion) {
    let metrics = Arc::new(Metrics::default());
    let (boxes, mut receivers) = outboxes(&metrics);
    let msg = event();
    c.bench_function("fanout/encode_once_offer/1000_members", |b| {
        b.iter(|| {
            let bytes = encode(Encoding::Json, &msg).unwrap();
            for outbox in &boxes {
                outbox.offer(OutFrame {
                    bytes: bytes.clone(),
                    comment_id: Some(1),
                    ..Default::default()
                });
            }
            drain(&mut receivers);
        })
    });
}

criterion_group!(benches, through_the_room, encode_once_offer_loop);
criterion_main!(benches);
