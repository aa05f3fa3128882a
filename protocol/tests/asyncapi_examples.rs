//! The AsyncAPI document is part of the protocol: every example in it must
//! decode with the real types, carry no field the types would silently drop,
//! and every message type must be documented.

use std::collections::BTreeSet;

use serde_json::Value;
use vridge_protocol::codec::{decode_client, decode_server};
use vridge_protocol::{ClientMessage, Encoding, ServerMessage};

const CLIENT_TYPES: &[&str] = &[
    "comment_add",
    "typing_indicator",
    "reaction_add",
    "refresh_token",
];
const SERVER_TYPES: &[&str] = &[
    "initial_state",
    "comment",
    "comment_ack",
    "typing",
    "reaction",
    "feedback_created",
    "status_changed",
    "presence_join",
    "presence_leave",
    "error",
    "resync",
    "token_expiring",
    "token_refreshed",
    "batch",
];

fn document() -> Value {
    let text = include_str!("../asyncapi.json");
    serde_json::from_str(text).expect("asyncapi.json is JSON")
}

/// Every key of `example` is in `typed` with an equal value (recursively);
/// `typed` may add keys whose value is null (optional fields).
fn covered(example: &Value, typed: &Value, path: &str) -> Result<(), String> {
    match (example, typed) {
        (Value::Object(e), Value::Object(t)) => {
            for (k, v) in e {
                let Some(tv) = t.get(k) else {
                    return Err(format!("{path}.{k} is not a field of the type"));
                };
                covered(v, tv, &format!("{path}.{k}"))?;
            }
            for (k, v) in t {
                if !e.contains_key(k) && !v.is_null() {
                    return Err(format!("{path}.{k} was added with a value"));
                }
            }
            Ok(())
        }
        (Value::Array(e), Value::Array(t)) if e.len() == t.len() => e
            .iter()
            .zip(t)
            .enumerate()
            .try_for_each(|(i, (a, b))| covered(a, b, &format!("{path}[{i}]"))),
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => Ok(()),
        (Value::Bool(true), Value::String(s)) | (Value::Bool(false), Value::String(s))
            if path.ends_with(".security") && (s == "true" || s == "false") =>
        {
            Ok(())
        }
        (a, b) if a == b => Ok(()),
        (a, b) => Err(format!("{path}: example {a} but the type gives {b}")),
    }
}

#[test]
fn every_example_decodes_with_the_real_types_in_both_encodings() {
    let doc = document();
    let messages = doc["components"]["messages"].as_object().expect("messages");
    let mut checked = 0;
    for (name, message) in messages {
        let direction = message["x-direction"].as_str().expect("x-direction");
        for example in message["examples"].as_array().expect("examples") {
            let payload = &example["payload"];
            assert_eq!(
                payload["type"],
                Value::String(name.clone()),
                "{name}: example type"
            );
            let json = serde_json::to_vec(payload).unwrap();
            let packed = rmp_serde::to_vec_named(payload).unwrap();
            let typed = if direction == "client" {
                let a =
                    decode_client(Encoding::Json, &json).unwrap_or_else(|e| panic!("{name}: {e}"));
                let b = decode_client(Encoding::MsgPack, &packed)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(a, b, "{name}: JSON and MessagePack decode alike");
                serde_json::to_value::<ClientMessage>(a).unwrap()
            } else {
                let a =
                    decode_server(Encoding::Json, &json).unwrap_or_else(|e| panic!("{name}: {e}"));
                let b = decode_server(Encoding::MsgPack, &packed)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(a, b, "{name}: JSON and MessagePack decode alike");
                serde_json::to_value::<ServerMessage>(a).unwrap()
            };
            covered(payload, &typed, name).unwrap_or_else(|e| panic!("{e}"));
            checked += 1;
        }
    }
    assert!(checked >= CLIENT_TYPES.len() + SERVER_TYPES.len());
}

#[test]
fn every_message_type_is_documented_with_its_direction() {
    let doc = document();
    let messages = doc["components"]["messages"].as_object().expect("messages");
    let of = |dir: &str| -> BTreeSet<String> {
        messages
            .iter()
            .filter(|(_, m)| m["x-direction"] == dir)
            .map(|(k, _)| k.clone())
            .collect()
    };
    let want = |types: &[&str]| types.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(of("client"), want(CLIENT_TYPES));
    assert_eq!(of("server"), want(SERVER_TYPES));
    let channel = doc["channels"]["feedback"]["messages"].as_object().unwrap();
    assert_eq!(
        channel.len(),
        messages.len(),
        "the channel lists every message"
    );
}

#[test]
fn a_misspelled_field_in_an_example_would_be_caught() {
    let typed = serde_json::json!({"type": "typing", "user_id": 1, "is_typing": true});
    let bad =
        serde_json::json!({"type": "typing", "user_id": 1, "is_typing": true, "istyping": true});
    assert!(covered(&bad, &typed, "typing").is_err());
    assert!(covered(&typed, &typed, "typing").is_ok());
}
