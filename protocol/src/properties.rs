//! Property tests of the codecs: the client decoder answers every input
//! (arbitrary bytes, mangled frames, arbitrary JSON objects) with a message or
//! a typed error and never panics, and every message round-trips through both
//! encodings. The cargo-fuzz targets in `fuzz/` drive the same decoders with
//! coverage guidance; these run as part of `cargo test`.

use bytes::Bytes;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use crate::codec::{DecodeError, Encoding, batch_frame, decode_client, decode_server, encode};
use crate::strategy::{client_message, event, server_message};
use crate::{ClientMessage, ServerMessage};

fn encoding() -> impl Strategy<Value = Encoding> {
    prop_oneof![Just(Encoding::Json), Just(Encoding::MsgPack)]
}

/// Whatever the decoder accepted, encoded again, decodes to the same bytes:
/// an accepted frame always has one meaning. Compared as bytes, not values,
/// because a MessagePack frame may carry a NaN timestamp (refused later by
/// `ValidComment`) and NaN is not equal to itself.
fn assert_reencodes_stably(enc: Encoding, msg: &ClientMessage) -> Result<(), TestCaseError> {
    let once = encode(enc, msg).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let again = decode_client(enc, &once)
        .map_err(|e| TestCaseError::fail(format!("re-decoding {msg:?}: {e}")))?;
    let twice = encode(enc, &again).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(once, twice);
    Ok(())
}

/// A JSON value of any shape, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        crate::strategy::seconds().prop_map(Value::from),
        crate::strategy::text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map(crate::strategy::text(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A value for a field: usually of the right type, often of any type.
fn field(right: BoxedStrategy<Value>) -> impl Strategy<Value = Option<Value>> {
    prop::option::weighted(0.8, prop_oneof![3 => right, 1 => any_json()])
}

fn object(fields: Vec<(&'static str, Option<Value>)>, extra: Map<String, Value>) -> Value {
    let mut map = extra;
    for (name, value) in fields {
        if let Some(value) = value {
            map.insert(name.to_owned(), value);
        }
    }
    Value::Object(map)
}

fn comment_body() -> impl Strategy<Value = Value> {
    let int = any::<i64>().prop_map(Value::from).boxed();
    let text = crate::strategy::text().prop_map(Value::String).boxed();
    let opt_text = prop_oneof![Just(Value::Null), text.clone()].boxed();
    let security = prop_oneof![opt_text.clone(), any::<bool>().prop_map(Value::Bool)].boxed();
    let seconds = crate::strategy::seconds().prop_map(Value::from).boxed();
    (
        (field(int), field(text), field(opt_text.clone())),
        (field(opt_text), field(security), field(seconds)),
        btree_map("[a-z_]{1,8}", any_json(), 0..2),
    )
        .prop_map(
            |((feedback_id, text, title), (section, security, timestamp), extra)| {
                object(
                    vec![
                        ("feedback_id", feedback_id),
                        ("text", text),
                        ("title", title),
                        ("section", section),
                        ("security", security),
                        ("timestamp", timestamp),
                    ],
                    extra.into_iter().collect(),
                )
            },
        )
}

fn reaction_body() -> impl Strategy<Value = Value> {
    let int = any::<i64>().prop_map(Value::from).boxed();
    let text = crate::strategy::text().prop_map(Value::String).boxed();
    (field(int), field(text)).prop_map(|(comment_id, emoji)| {
        object(
            vec![("comment_id", comment_id), ("emoji", emoji)],
            Map::new(),
        )
    })
}

/// A client frame as a JSON object: a `type` that is one of the known tags,
/// an unknown one, absent, or not a string; the bodies of every known type,
/// each field right, wrong or missing; and stray fields.
fn client_object() -> impl Strategy<Value = Value> {
    let tag = prop_oneof![
        4 => prop_oneof![
            Just("comment_add"),
            Just("typing_indicator"),
            Just("reaction_add"),
        ]
        .prop_map(|t| Some(json!(t))),
        1 => crate::strategy::text().prop_map(|t| Some(Value::String(t))),
        1 => any_json().prop_map(Some),
        1 => Just(None),
    ];
    let typing = any::<bool>().prop_map(Value::Bool).boxed();
    let msg_id = prop_oneof![
        Just(Value::Null),
        crate::strategy::text().prop_map(Value::String)
    ]
    .boxed();
    (
        tag,
        prop::option::of(comment_body()),
        field(msg_id),
        field(typing),
        prop::option::of(reaction_body()),
        btree_map("[a-z_]{1,8}", any_json(), 0..2),
    )
        .prop_map(
            |(tag, comment, client_msg_id, is_typing, reaction, extra)| {
                object(
                    vec![
                        ("type", tag),
                        ("comment", comment),
                        ("client_msg_id", client_msg_id),
                        ("is_typing", is_typing),
                        ("reaction", reaction),
                    ],
                    extra.into_iter().collect(),
                )
            },
        )
}

/// The decoder's answer to an object matches its `type`: a message of that
/// type or the error for a bad body of that type; any other string is an
/// unknown type (named, truncated); a missing or null one is "None"; a
/// non-string one is not a frame we read at all.
fn check_answer(
    value: &Value,
    got: &Result<ClientMessage, DecodeError>,
) -> Result<(), TestCaseError> {
    match value.get("type") {
        Some(Value::String(tag)) => match (tag.as_str(), got) {
            ("comment_add", Ok(ClientMessage::CommentAdd { .. }))
            | ("comment_add", Err(DecodeError::InvalidComment))
            | ("typing_indicator", Ok(ClientMessage::TypingIndicator { .. }))
            | ("typing_indicator", Err(DecodeError::InvalidTyping))
            | ("reaction_add", Ok(ClientMessage::ReactionAdd { .. }))
            | ("reaction_add", Err(DecodeError::InvalidReaction)) => {}
            (other, Err(DecodeError::UnknownType(named)))
                if !matches!(other, "comment_add" | "typing_indicator" | "reaction_add") =>
            {
                prop_assert_eq!(named, &other.chars().take(64).collect::<String>());
            }
            (tag, got) => prop_assert!(false, "type {tag:?} answered {got:?}"),
        },
        None | Some(Value::Null) => {
            prop_assert_eq!(got, &Err(DecodeError::UnknownType("None".into())));
        }
        Some(_) => prop_assert_eq!(got, &Err(DecodeError::Malformed)),
    }
    Ok(())
}

proptest! {
    #[test]
    fn decode_client_never_panics_on_arbitrary_bytes(
        enc in encoding(),
        frame in vec(any::<u8>(), 0..512),
    ) {
        if let Ok(msg) = decode_client(enc, &frame) {
            assert_reencodes_stably(enc, &msg)?;
        }
    }

    /// Valid frames with bytes overwritten, cut short or spliced: closer to
    /// a valid frame than random bytes, so the decoder gets deeper.
    #[test]
    fn decode_client_never_panics_on_mangled_frames(
        enc in encoding(),
        msg in client_message(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut frame = encode(enc, &msg).map_err(|e| TestCaseError::fail(e.to_string()))?.to_vec();
        for (at, byte) in edits {
            let i = at.index(frame.len());
            frame[i] = byte;
        }
        for frame in [&frame[..], &frame[..cut.index(frame.len() + 1)]] {
            if let Ok(msg) = decode_client(enc, frame) {
                assert_reencodes_stably(enc, &msg)?;
            }
        }
    }

    /// Arbitrary objects shaped like client frames, in both encodings: the
    /// answer matches the `type`, and JSON and MessagePack give the same one.
    #[test]
    fn decode_client_answers_structured_frames_by_their_type(value in client_object()) {
        let json = serde_json::to_vec(&value).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let from_json = decode_client(Encoding::Json, &json);
        check_answer(&value, &from_json)?;
        let msgpack = rmp_serde::to_vec_named(&value).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let from_msgpack = decode_client(Encoding::MsgPack, &msgpack);
        prop_assert_eq!(from_json, from_msgpack, "{}", value);
    }

    #[test]
    fn decode_server_never_panics_on_arbitrary_bytes(
        enc in encoding(),
        frame in vec(any::<u8>(), 0..512),
    ) {
        let _ = decode_server(enc, &frame);
    }

    #[test]
    fn client_messages_round_trip(enc in encoding(), msg in client_message()) {
        let frame = encode(enc, &msg).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(decode_client(enc, &frame), Ok(msg));
    }

    #[test]
    fn server_messages_round_trip(enc in encoding(), msg in server_message()) {
        let frame = encode(enc, &msg).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(decode_server(enc, &frame), Ok(msg));
    }

    /// A batch frame assembled from pre-encoded events (as the writer does)
    /// decodes to those events in order.
    #[test]
    fn batch_frames_round_trip(enc in encoding(), events in vec(event(), 0..8)) {
        let parts = events
            .iter()
            .map(|e| encode(enc, e))
            .collect::<Result<Vec<Bytes>, _>>()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(
            decode_server(enc, &batch_frame(enc, &parts)),
            Ok(ServerMessage::Batch { messages: events })
        );
    }
}
