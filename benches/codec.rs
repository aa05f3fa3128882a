//! Encode and decode of the main events in JSON and MessagePack, and the
//! assembly of a batch frame from pre-encoded events.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use vridge_protocol::codec::{batch_frame, decode_client, decode_server, encode};
use vridge_protocol::{
    ClientMessage, Comment, CommentAck, Encoding, InitialState, NewComment, ServerMessage,
};

fn comment(id: i64) -> Comment {
    Comment {
        id,
        project_id: 42,
        feedback_id: 7,
        user_id: 1001,
        text: "At 0:42 the colour jumps between the two shots; can we match the grade?".into(),
        title: Some("Grade".into()),
        section: Some("intro".into()),
        security: None,
        timestamp: Some(42.5),
        created: "2026-11-22T10:00:00.123Z".into(),
        prev_id: None,
        ..Default::default()
    }
}

fn events() -> Vec<(&'static str, ServerMessage)> {
    vec![
        (
            "comment",
            ServerMessage::Comment {
                comment: comment(1),
                user_id: 1001,
                event: Some(vridge_protocol::EventMeta {
                    seq: 1041,
                    prev_seq: 1040,
                    actor_id: 1001,
                    at: "2026-11-22T10:00:00.123Z".into(),
                }),
            },
        ),
        (
            "typing",
            ServerMessage::Typing {
                user_id: 1001,
                is_typing: true,
            },
        ),
        (
            "comment_ack",
            ServerMessage::CommentAck(CommentAck {
                client_msg_id: Some("m-123".into()),
                comment_id: 1,
                duplicate: false,
                comment: comment(1),
            }),
        ),
        (
            "initial_state_20",
            ServerMessage::InitialState(InitialState {
                project_id: 42,
                comments: (1..=20).map(comment).collect(),
                online_users: (1000..1020).collect(),
                last_comment_id: Some(20),
                resumed_from: None,
                resume_complete: None,
                ..Default::default()
            }),
        ),
    ]
}

fn name(enc: Encoding) -> &'static str {
    match enc {
        Encoding::Json => "json",
        Encoding::MsgPack => "msgpack",
    }
}

fn server_events(c: &mut Criterion) {
    for enc in Encoding::ALL {
        for (event, msg) in events() {
            c.bench_function(&format!("encode/{}/{event}", name(enc)), |b| {
                b.iter(|| encode(enc, black_box(&msg)))
            });
            let bytes = encode(enc, &msg).unwrap();
            c.bench_function(&format!("decode_server/{}/{event}", name(enc)), |b| {
                b.iter(|| decode_server(enc, black_box(&bytes)))
            });
        }
    }
}

fn client_messages(c: &mut Criterion) {
    let add = ClientMessage::CommentAdd {
        comment: NewComment {
            feedback_id: 7,
            text: "At 0:42 the colour jumps between the two shots".into(),
            title: None,
            section: Some("intro".into()),
            security: None,
            timestamp: Some(42.5),
            ..Default::default()
        },
        client_msg_id: Some("m-123".into()),
    };
    let typing = ClientMessage::TypingIndicator { is_typing: true };
    for enc in Encoding::ALL {
        for (kind, msg) in [("comment_add", &add), ("typing_indicator", &typing)] {
            let bytes = encode(enc, msg).unwrap();
            c.bench_function(&format!("decode_client/{}/{kind}", name(enc)), |b| {
                b.iter(|| decode_client(enc, black_box(&bytes)))
            });
        }
    }
}

fn batch_frames(c: &mut Criterion) {
    for enc in Encoding::ALL {
        let part = encode(
            enc,
            &ServerMessage::Comment {
                comment: comment(1),
                user_id: 1001,
                event: None,
            },
        )
        .unwrap();
        let parts: Vec<Bytes> = (0..64).map(|_| part.clone()).collect();
        c.bench_function(&format!("batch_frame/{}/64_comments", name(enc)), |b| {
            b.iter(|| batch_frame(enc, black_box(&parts)))
        });
    }
}

criterion_group!(benches, server_events, client_messages, batch_frames);
criterion_main!(benches);
