//! The AsyncAPI document is part of the protocol: every message type of the
//! Rust enums must be documented with at least one example of its own; every
//! example must decode with the real types in both encodings, carry no field
//! the types would silently drop, use only fields its schema declares (and
//! every field a schema declares must be shown by some example); and the
//! examples must keep the event log's rules (seq without holes, resume
//! answers that add up).

use std::collections::BTreeSet;

use serde_json::Value;
use vridge_protocol::codec::{decode_client, decode_server};
use vridge_protocol::{ClientMessage, Comment, Encoding, InitialState, ServerMessage};

fn document() -> Value {
    let text = include_str!("../asyncapi.json");
    serde_json::from_str(text).expect("asyncapi.json is JSON")
}

/// The `type` tags of an internally tagged enum, read from the types
/// themselves: serde lists every variant when it meets an unknown one. A
/// variant added to `ClientMessage` or `ServerMessage` thus shows up here
/// without anyone remembering to list it.
fn variants<T: serde::de::DeserializeOwned + std::fmt::Debug>() -> BTreeSet<String> {
    let err = serde_json::from_value::<T>(serde_json::json!({"type": "\u{1}"}))
        .expect_err("no variant is called \\u{1}")
        .to_string();
    let list = err
        .split_once("expected one of ")
        .unwrap_or_else(|| panic!("serde's unknown-variant message changed: {err}"))
        .1;
    let names: BTreeSet<String> = list
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    assert!(names.len() > 3, "could not read the variants from: {err}");
    names
}

fn client_types() -> BTreeSet<String> {
    variants::<ClientMessage>()
}

fn server_types() -> BTreeSet<String> {
    variants::<ServerMessage>()
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

/// Decodes an example with the real codec in both encodings, checks both
/// agree and that the example is `covered` by what the types make of it.
enum Decoded {
    Client(ClientMessage),
    Server(Box<ServerMessage>),
}

fn decode(name: &str, direction: &str, payload: &Value) -> (Decoded, Value) {
    let json = serde_json::to_vec(payload).unwrap();
    let packed = rmp_serde::to_vec_named(payload).unwrap();
    let (decoded, typed) = if direction == "client" {
        let a = decode_client(Encoding::Json, &json).unwrap_or_else(|e| panic!("{name}: {e}"));
        let b = decode_client(Encoding::MsgPack, &packed).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(a, b, "{name}: JSON and MessagePack decode alike");
        let typed = serde_json::to_value(&a).unwrap();
        (Decoded::Client(a), typed)
    } else {
        let a = decode_server(Encoding::Json, &json).unwrap_or_else(|e| panic!("{name}: {e}"));
        let b = decode_server(Encoding::MsgPack, &packed).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(a, b, "{name}: JSON and MessagePack decode alike");
        let typed = serde_json::to_value(&a).unwrap();
        (Decoded::Server(Box::new(a)), typed)
    };
    covered(payload, &typed, name).unwrap_or_else(|e| panic!("{e}"));
    (decoded, typed)
}

/// Every documented message with its direction and examples.
fn examples(doc: &Value) -> Vec<(String, String, Value)> {
    let messages = doc["components"]["messages"].as_object().expect("messages");
    let mut out = Vec::new();
    for (name, message) in messages {
        let direction = message["x-direction"].as_str().expect("x-direction");
        for example in message["examples"].as_array().expect("examples") {
            out.push((
                name.clone(),
                direction.to_owned(),
                example["payload"].clone(),
            ));
        }
    }
    out
}

#[test]
fn every_message_type_of_the_types_is_documented_with_its_direction() {
    let doc = document();
    let messages = doc["components"]["messages"].as_object().expect("messages");
    let of = |dir: &str| -> BTreeSet<String> {
        messages
            .iter()
            .filter(|(_, m)| m["x-direction"] == dir)
            .map(|(k, _)| k.clone())
            .collect()
    };
    assert_eq!(of("client"), client_types(), "client messages");
    assert_eq!(of("server"), server_types(), "server messages");
    assert_eq!(messages.len(), client_types().len() + server_types().len());
    let channel = doc["channels"]["feedback"]["messages"].as_object().unwrap();
    let listed: BTreeSet<String> = channel.keys().cloned().collect();
    let all: BTreeSet<String> = messages.keys().cloned().collect();
    assert_eq!(listed, all, "the channel lists every message");
    let operation = |op: &str| -> BTreeSet<String> {
        doc["operations"][op]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let r = r["$ref"].as_str().unwrap();
                r.rsplit('/').next().unwrap().to_owned()
            })
            .collect()
    };
    assert_eq!(operation("send"), client_types(), "the server receives");
    assert_eq!(operation("receive"), server_types(), "the server sends");
}

#[test]
fn every_message_type_has_an_example_that_decodes_as_that_type() {
    let doc = document();
    let mut shown = BTreeSet::new();
    for (name, direction, payload) in examples(&doc) {
        assert_eq!(
            payload["type"],
            Value::String(name.clone()),
            "{name}: example type"
        );
        let (decoded, typed) = decode(&name, &direction, &payload);
        assert_eq!(
            typed["type"], payload["type"],
            "{name}: decoded as its type"
        );
        if let Decoded::Client(m) = &decoded {
            assert_eq!(m.kind(), name, "{name}: ClientMessage::kind");
        }
        shown.insert(name);
    }
    let all: BTreeSet<String> = client_types().union(&server_types()).cloned().collect();
    let missing: Vec<_> = all.difference(&shown).collect();
    assert!(
        missing.is_empty(),
        "message types without an example: {missing:?}"
    );
}

/// Follows a local `$ref` (`#/components/...`).
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> (&'a Value, Option<String>) {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r.strip_prefix('#').expect("local $ref");
            let target = doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("dangling $ref {r}"));
            (target, Some(r.to_owned()))
        }
        None => (schema, None),
    }
}

/// Walks `value` along `schema` (at JSON pointer `at`): every key must be a
/// declared property; with `strict`, every required property must be
/// there. Records each (schema, property) an example shows in `seen` and
/// each schema with properties in `declared`. Array items and `$ref`s are
/// followed; an object item whose schema declares no properties (the
/// messages of `batch`, the `events` of `initial_state`) is walked along
/// the schema of the server message its `type` names.
#[allow(clippy::too_many_arguments)]
fn walk(
    doc: &Value,
    schema: &Value,
    at: &str,
    value: &Value,
    path: &str,
    strict: bool,
    seen: &mut BTreeSet<(String, String)>,
    declared: &mut BTreeSet<String>,
) -> Result<(), String> {
    let (schema, reference) = resolve(doc, schema);
    let at = reference.unwrap_or_else(|| at.to_owned());
    match value {
        Value::Object(fields) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                declared.insert(at.clone());
                for (k, v) in fields {
                    let Some(sub) = props.get(k) else {
                        return Err(format!("{path}.{k} is not in the schema {at}"));
                    };
                    seen.insert((at.clone(), k.clone()));
                    walk(
                        doc,
                        sub,
                        &format!("{at}/properties/{k}"),
                        v,
                        &format!("{path}.{k}"),
                        strict,
                        seen,
                        declared,
                    )?;
                }
                if strict {
                    for r in schema["required"].as_array().into_iter().flatten() {
                        let r = r.as_str().unwrap();
                        if !fields.contains_key(r) {
                            return Err(format!("{path}: required {r} missing ({at})"));
                        }
                    }
                }
            } else if let Some(kind) = fields.get("type").and_then(Value::as_str) {
                let message = format!("#/components/messages/{kind}/payload");
                let Some(sub) = doc.pointer(&message[1..]) else {
                    return Err(format!("{path}: no message {kind}"));
                };
                walk(doc, sub, &message, value, path, strict, seen, declared)?;
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    walk(
                        doc,
                        sub,
                        &format!("{at}/items"),
                        item,
                        &format!("{path}[{i}]"),
                        strict,
                        seen,
                        declared,
                    )?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

#[test]
fn examples_use_only_documented_fields_and_show_every_documented_field() {
    let doc = document();
    let mut seen = BTreeSet::new();
    let mut declared = BTreeSet::new();
    for (name, direction, payload) in examples(&doc) {
        let schema = &doc["components"]["messages"][&name]["payload"];
        let at = format!("#/components/messages/{name}/payload");
        walk(
            &doc,
            schema,
            &at,
            &payload,
            &name,
            true,
            &mut seen,
            &mut declared,
        )
        .unwrap_or_else(|e| panic!("example: {e}"));
        // What the types make of it (every field they serialize, nulls
        // included) must be documented too.
        let (_, typed) = decode(&name, &direction, &payload);
        walk(
            &doc,
            schema,
            &at,
            &typed,
            &name,
            false,
            &mut BTreeSet::new(),
            &mut BTreeSet::new(),
        )
        .unwrap_or_else(|e| panic!("typed: {e}"));
    }
    let mut unshown = Vec::new();
    for at in &declared {
        let (schema, _) = resolve(&doc, doc.pointer(&at[1..]).unwrap());
        for key in schema["properties"].as_object().unwrap().keys() {
            if !seen.contains(&(at.clone(), key.clone())) {
                unshown.push(format!("{at}: {key}"));
            }
        }
    }
    assert!(
        unshown.is_empty(),
        "documented fields no example shows (so none is checked against the types): {unshown:#?}"
    );
}

/// Every server message of an example, batches and resumed events included.
fn flatten(msg: &ServerMessage, out: &mut Vec<ServerMessage>) {
    out.push(msg.clone());
    match msg {
        ServerMessage::Batch { messages } => messages.iter().for_each(|m| flatten(m, out)),
        ServerMessage::InitialState(s) => s.events.iter().for_each(|m| flatten(m, out)),
        _ => {}
    }
}

fn comment_of(msg: &ServerMessage) -> Option<&Comment> {
    match msg {
        ServerMessage::Comment { comment, .. }
        | ServerMessage::CommentEdited { comment, .. }
        | ServerMessage::CommentDeleted { comment, .. }
        | ServerMessage::CommentResolved { comment, .. }
        | ServerMessage::CommentReopened { comment, .. } => Some(comment),
        _ => None,
    }
}

fn actor_of(msg: &ServerMessage) -> Option<i64> {
    match msg {
        ServerMessage::Comment { user_id, .. }
        | ServerMessage::CommentEdited { user_id, .. }
        | ServerMessage::CommentDeleted { user_id, .. }
        | ServerMessage::CommentResolved { user_id, .. }
        | ServerMessage::CommentReopened { user_id, .. }
        | ServerMessage::Reaction { user_id, .. }
        | ServerMessage::ReactionRemoved { user_id, .. }
        | ServerMessage::StatusChanged { user_id, .. } => Some(*user_id),
        _ => None,
    }
}

fn check_resume(name: &str, s: &InitialState) {
    let Some(from) = s.resumed_from_seq else {
        assert!(
            s.events.is_empty(),
            "{name}: events only on a since_seq resume"
        );
        return;
    };
    assert!(
        s.comments.is_empty(),
        "{name}: a since_seq resume has no comments"
    );
    assert!(s.resume_complete.is_some(), "{name}: resume_complete");
    let mut expect = from + 1;
    for e in &s.events {
        let seq = e
            .seq()
            .unwrap_or_else(|| panic!("{name}: resumed event without event"));
        assert_eq!(
            seq, expect,
            "{name}: resumed events follow on without a hole"
        );
        expect += 1;
    }
    assert_eq!(
        s.last_seq,
        Some(expect - 1),
        "{name}: last_seq is the last event's seq (or resumed_from_seq)"
    );
}

#[test]
fn examples_keep_the_event_logs_rules() {
    let doc = document();
    for (name, direction, payload) in examples(&doc) {
        let (decoded, _) = decode(&name, &direction, &payload);
        let msg = match decoded {
            Decoded::Server(m) => *m,
            Decoded::Client(_) => continue,
        };
        let mut all = Vec::new();
        flatten(&msg, &mut all);
        let mut last_in_frame = 0;
        for m in &all {
            if let Some(event) = m.event() {
                assert_eq!(event.prev_seq, event.seq - 1, "{name}: prev_seq = seq - 1");
                if let Some(actor) = actor_of(m) {
                    assert_eq!(actor, event.actor_id, "{name}: user_id is the actor");
                }
                if matches!(msg, ServerMessage::Batch { .. }) {
                    assert!(event.seq > last_in_frame, "{name}: a batch is in seq order");
                    last_in_frame = event.seq;
                }
            }
            if let Some(c) = comment_of(m) {
                assert!(m.event().is_some(), "{name}: a durable event carries event");
                if c.deleted_at.is_some() {
                    assert!(
                        c.text.is_empty()
                            && c.title.is_none()
                            && c.section.is_none()
                            && c.security.is_none(),
                        "{name}: a deleted comment is a tombstone"
                    );
                }
                assert!(
                    c.reply_count == 0 && c.reactions.is_empty(),
                    "{name}: counts are not sent on events"
                );
            }
            match m {
                ServerMessage::InitialState(s) => check_resume(&name, s),
                ServerMessage::Ack(ack) => {
                    assert!(
                        client_types().contains(&ack.command)
                            && !["comment_add", "typing_indicator", "refresh_token"]
                                .contains(&ack.command.as_str()),
                        "{name}: ack names a command it acknowledges, not {}",
                        ack.command
                    );
                }
                ServerMessage::CommentDeleted { comment, .. } => {
                    assert!(comment.deleted_at.is_some(), "{name}: deleted_at");
                }
                ServerMessage::CommentEdited { comment, .. } => {
                    assert!(comment.edited_at.is_some(), "{name}: edited_at");
                }
                ServerMessage::CommentResolved { comment, .. } => {
                    assert!(comment.resolved_at.is_some() && comment.resolved_by.is_some());
                }
                ServerMessage::CommentReopened { comment, .. } => {
                    assert!(comment.resolved_at.is_none() && comment.resolved_by.is_none());
                }
                _ => {}
            }
        }
    }
}

#[test]
fn the_checks_would_catch_a_bad_example() {
    let typed = serde_json::json!({"type": "typing", "user_id": 1, "is_typing": true});
    let bad =
        serde_json::json!({"type": "typing", "user_id": 1, "is_typing": true, "istyping": true});
    assert!(covered(&bad, &typed, "typing").is_err());
    assert!(covered(&typed, &typed, "typing").is_ok());

    let doc = document();
    let schema = &doc["components"]["messages"]["typing"]["payload"];
    let walk_of = |v: &Value| {
        walk(
            &doc,
            schema,
            "#/components/messages/typing/payload",
            v,
            "typing",
            true,
            &mut BTreeSet::new(),
            &mut BTreeSet::new(),
        )
    };
    assert!(walk_of(&typed).is_ok());
    assert!(walk_of(&bad).is_err(), "an undocumented field");
    assert!(
        walk_of(&serde_json::json!({"type": "typing", "user_id": 1})).is_err(),
        "a required field missing"
    );

    assert!(client_types().contains("comment_edit"));
    assert!(server_types().contains("comment_edited"));
}
