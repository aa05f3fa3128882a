//! Counting server events without parsing them. A frame holds one event or a
//! `batch` of them; each event starts with its `type` key (the server's
//! serializer writes the tag first, and the key cannot occur unescaped
//! inside a JSON string), so the events of a frame are found by searching
//! for that key with memchr's `memmem`, and a comment's send time is read
//! from a marker the load generator put in its text. This keeps the client
//! far cheaper per event than the server, so it is rarely the bottleneck.

use memchr::memmem;
use vridge_protocol::Encoding;

/// The events the load generator tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    InitialState,
    Comment,
    CommentAck,
    Typing,
    Presence,
    Error,
    /// Any other event type (reaction, feedback_created, …).
    Other,
}

impl Kind {
    /// The kind of a type name; `None` for names that are not event types
    /// of the protocol (and for `batch`, which only wraps events).
    fn known(name: &[u8]) -> Option<Kind> {
        Some(match name {
            b"initial_state" => Kind::InitialState,
            b"comment" => Kind::Comment,
            b"comment_ack" => Kind::CommentAck,
            b"typing" => Kind::Typing,
            b"presence_join" | b"presence_leave" => Kind::Presence,
            b"error" => Kind::Error,
            // Every other message of the protocol. MessagePack counts only
            // names listed here, so each new server message belongs here.
            b"reaction" | b"reaction_removed" | b"comment_edited" | b"comment_deleted"
            | b"comment_resolved" | b"comment_reopened" | b"feedback_created"
            | b"status_changed" | b"ack" | b"resync" | b"token_expiring" | b"token_refreshed" => {
                Kind::Other
            }
            _ => return None,
        })
    }

    /// Stable lower-case name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::InitialState => "initial_state",
            Kind::Comment => "comment",
            Kind::CommentAck => "comment_ack",
            Kind::Typing => "typing",
            Kind::Presence => "presence",
            Kind::Error => "error",
            Kind::Other => "other",
        }
    }

    /// Every kind, for iterating counters.
    pub const ALL: [Kind; 7] = [
        Kind::InitialState,
        Kind::Comment,
        Kind::CommentAck,
        Kind::Typing,
        Kind::Presence,
        Kind::Error,
        Kind::Other,
    ];

    /// Index into per-kind arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The key that starts every event: `"type"` in JSON, a 4-byte fixstr in
/// MessagePack.
const JSON_KEY: &[u8] = b"\"type\"";
const MSGPACK_KEY: &[u8] = b"\xa4type";

/// Finds the type name that follows a key found at `at`; returns the name and
/// where it ends.
fn name_after(frame: &[u8], at: usize, encoding: Encoding) -> Option<(&[u8], usize)> {
    match encoding {
        Encoding::Json => {
            let mut i = at + JSON_KEY.len();
            while frame.get(i).is_some_and(u8::is_ascii_whitespace) {
                i += 1;
            }
            if frame.get(i) != Some(&b':') {
                return None;
            }
            i += 1;
            while frame.get(i).is_some_and(u8::is_ascii_whitespace) {
                i += 1;
            }
            if frame.get(i) != Some(&b'"') {
                return None;
            }
            let start = i + 1;
            let len = memchr::memchr(b'"', frame.get(start..)?)?;
            Some((&frame[start..start + len], start + len + 1))
        }
        Encoding::MsgPack => {
            let i = at + MSGPACK_KEY.len();
            let head = *frame.get(i)?;
            let (start, len) = match head {
                0xa0..=0xbf => (i + 1, usize::from(head & 0x1f)),
                0xd9 => (i + 2, usize::from(*frame.get(i + 1)?)),
                _ => return None,
            };
            Some((frame.get(start..start + len)?, start + len))
        }
    }
}

/// Calls `each(kind, event_bytes)` for every event in `frame`, in order.
/// `event_bytes` runs from the event's type to the start of the next event.
pub fn for_each_event(frame: &[u8], encoding: Encoding, mut each: impl FnMut(Kind, &[u8])) {
    for_each_named_event(frame, encoding, |kind, _, event| each(kind, event));
}

/// As [`for_each_event`], with the event's type name (`b"comment_edited"`).
pub fn for_each_named_event(
    frame: &[u8],
    encoding: Encoding,
    mut each: impl FnMut(Kind, &[u8], &[u8]),
) {
    let key = match encoding {
        Encoding::Json => JSON_KEY,
        Encoding::MsgPack => MSGPACK_KEY,
    };
    let finder = memmem::Finder::new(key);
    // The event being read: its kind, name and where its bytes start.
    let mut pending: Option<(Kind, &[u8], usize)> = None;
    let mut from = 0;
    while let Some(found) = finder.find(&frame[from..]) {
        let at = from + found;
        let boundary = name_after(frame, at, encoding).and_then(|(name, end)| {
            match (Kind::known(name), encoding) {
                (Some(kind), _) => Some((Some(kind), name, end)),
                (None, _) if name == b"batch" => Some((None, name, end)),
                // JSON finds only keys (the colon is checked), so an unknown
                // name is a newer event type. In MessagePack a key and a
                // string value look alike: a value "type" followed by
                // another string is not an event, so only known names count.
                (None, Encoding::Json) => Some((Some(Kind::Other), name, end)),
                (None, Encoding::MsgPack) => None,
            }
        });
        match boundary {
            Some((kind, name, end)) => {
                if let Some((kind, name, start)) = pending.take() {
                    each(kind, name, &frame[start..at]);
                }
                pending = kind.map(|k| (k, name, end));
                from = end;
            }
            None => from = at + key.len(),
        }
    }
    if let Some((kind, name, start)) = pending {
        each(kind, name, &frame[start..]);
    }
}

/// Where the value of the *last* `key` field in `bytes` starts (JSON:
/// after `"key":`; MessagePack: after the key's fixstr). The last, because
/// the server writes an event's entity (with its user-written text) before
/// its `event`, and `initial_state`'s `comments` before `last_seq` and
/// `resume_complete`: whatever a text holds, the last match is the field.
fn value_of(bytes: &[u8], key: &str, encoding: Encoding) -> Option<usize> {
    match encoding {
        Encoding::Json => {
            let needle = format!("\"{key}\"");
            let mut end = bytes.len();
            while let Some(at) = memmem::rfind(&bytes[..end], needle.as_bytes()) {
                let mut i = at + needle.len();
                while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
                    i += 1;
                }
                if bytes.get(i) == Some(&b':') {
                    i += 1;
                    while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
                        i += 1;
                    }
                    return Some(i);
                }
                // A string value that spells the key: look further back.
                end = at;
            }
            None
        }
        Encoding::MsgPack => {
            let len = u8::try_from(key.len()).ok().filter(|l| *l < 32)?;
            let mut needle = vec![0xa0 | len];
            needle.extend_from_slice(key.as_bytes());
            memmem::rfind(bytes, &needle).map(|at| at + needle.len())
        }
    }
}

/// The integer value of the last `key` field in `bytes` (see [`value_of`]);
/// `None` when absent, `null` or not an integer.
pub fn int_field(bytes: &[u8], key: &str, encoding: Encoding) -> Option<i64> {
    let at = value_of(bytes, key, encoding)?;
    let v = bytes.get(at..)?;
    match encoding {
        Encoding::Json => {
            let (neg, digits) = match v.first() {
                Some(b'-') => (true, &v[1..]),
                _ => (false, v),
            };
            let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
            if len == 0 || len > 18 {
                return None;
            }
            let n = digits[..len]
                .iter()
                .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
            Some(if neg { -n } else { n })
        }
        Encoding::MsgPack => {
            let be = |n: usize| -> Option<u64> {
                let b = v.get(1..1 + n)?;
                Some(b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x)))
            };
            let head = *v.first()?;
            match head {
                0x00..=0x7f => Some(i64::from(head)),
                0xe0..=0xff => Some(i64::from(head as i8)),
                0xcc => be(1).map(|n| n as i64),
                0xcd => be(2).map(|n| n as i64),
                0xce => be(4).map(|n| n as i64),
                0xcf => be(8).and_then(|n| i64::try_from(n).ok()),
                0xd0 => be(1).map(|n| i64::from(n as u8 as i8)),
                0xd1 => be(2).map(|n| i64::from(n as u16 as i16)),
                0xd2 => be(4).map(|n| i64::from(n as u32 as i32)),
                0xd3 => be(8).map(|n| n as i64),
                _ => None,
            }
        }
    }
}

/// The boolean value of the last `key` field in `bytes` (see [`value_of`]).
pub fn bool_field(bytes: &[u8], key: &str, encoding: Encoding) -> Option<bool> {
    let at = value_of(bytes, key, encoding)?;
    let v = bytes.get(at..)?;
    match encoding {
        Encoding::Json if v.starts_with(b"true") => Some(true),
        Encoding::Json if v.starts_with(b"false") => Some(false),
        Encoding::MsgPack if v.first() == Some(&0xc3) => Some(true),
        Encoding::MsgPack if v.first() == Some(&0xc2) => Some(false),
        _ => None,
    }
}

/// The marker that carries a send time inside a comment's text.
const MARKER: &[u8] = b"@lt:";

/// The comment text the load generator sends: the marker with the send time
/// (nanoseconds since the Unix epoch, a clock every process on the machine
/// shares), padded with `pad` bytes of filler.
pub fn comment_text(sent_ns: u64, pad: usize) -> String {
    let mut text = format!(
        "load test {}{sent_ns};",
        std::str::from_utf8(MARKER).unwrap_or("@lt:")
    );
    text.extend(std::iter::repeat_n('x', pad));
    text
}

/// The send time embedded in an event by [`comment_text`], if any.
pub fn sent_ns(event: &[u8]) -> Option<u64> {
    let at = memmem::find(event, MARKER)? + MARKER.len();
    let digits = &event[at..];
    let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 || len > 19 {
        return None;
    }
    digits[..len].iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Whether a `typing` event says the user started (true) or stopped typing.
pub fn is_typing(event: &[u8], encoding: Encoding) -> bool {
    match encoding {
        Encoding::Json => memmem::find(event, b"\"is_typing\":true").is_some(),
        Encoding::MsgPack => memmem::find(event, b"\xa9is_typing\xc3").is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_events_in_hand_written_frames() {
        let frame = br#"{"type" : "comment","comment":{"text":"say \"type\":\"x\" @lt:42;"}}"#;
        let mut seen = Vec::new();
        for_each_event(frame, Encoding::Json, |k, e| seen.push((k, sent_ns(e))));
        assert_eq!(seen, vec![(Kind::Comment, Some(42))]);
        let mut kinds = Vec::new();
        for_each_event(
            br#"{"type":"batch","messages":[{"type":"dance"},{"type":"typing"}]}"#,
            Encoding::Json,
            |k, _| kinds.push(k),
        );
        assert_eq!(
            kinds,
            vec![Kind::Other, Kind::Typing],
            "unknown JSON types still count"
        );
        assert_eq!(sent_ns(b"@lt:;"), None);
        assert_eq!(
            sent_ns(b"@lt:99999999999999999999"),
            None,
            "overflow is refused"
        );
    }

    #[test]
    fn reads_the_last_integer_and_boolean_field_of_json() {
        let event = br#"{"comment":{"text":"say \"seq\":9 or seq","title":"seq"},"event":{"seq" : 42,"prev_seq":41}}"#;
        assert_eq!(int_field(event, "seq", Encoding::Json), Some(42));
        assert_eq!(int_field(event, "prev_seq", Encoding::Json), Some(41));
        assert_eq!(int_field(event, "last_seq", Encoding::Json), None);
        assert_eq!(int_field(br#"{"seq":null}"#, "seq", Encoding::Json), None);
        assert_eq!(int_field(br#"{"seq":-3}"#, "seq", Encoding::Json), Some(-3));
        assert_eq!(
            int_field(br#"{"seq":99999999999999999999}"#, "seq", Encoding::Json),
            None,
            "overflow is refused"
        );
        let state = br#"{"resume_complete":false,"last_seq":7,"events":[]}"#;
        assert_eq!(
            bool_field(state, "resume_complete", Encoding::Json),
            Some(false)
        );
        assert_eq!(bool_field(state, "last_seq", Encoding::Json), None);
    }

    #[test]
    fn comment_text_round_trips_its_send_time() {
        let text = comment_text(1_763_000_000_123_456_789, 16);
        assert!(text.ends_with(&"x".repeat(16)));
        assert_eq!(sent_ns(text.as_bytes()), Some(1_763_000_000_123_456_789));
    }
}

#[cfg(test)]
mod real_frames {
    //! The classifier against frames the server's own codec produces.
    use bytes::Bytes;
    use vridge_protocol::codec::{batch_frame, encode};
    use vridge_protocol::{Comment, CommentAck, InitialState, ServerMessage};

    use super::*;

    fn comment(id: i64, text: &str) -> Comment {
        Comment {
            id,
            project_id: 1,
            feedback_id: 2,
            user_id: 3,
            text: text.into(),
            title: Some("type".into()),
            section: None,
            security: None,
            timestamp: Some(1.5),
            created: "2026-11-22T10:00:00Z".into(),
            prev_id: None,
            ..Default::default()
        }
    }

    #[test]
    fn finds_the_newer_messages_and_their_seq_in_both_encodings() {
        use vridge_protocol::{Ack, EventMeta, Reaction};
        let meta = |seq| {
            Some(EventMeta {
                seq,
                prev_seq: seq - 1,
                actor_id: 3,
                at: "2026-11-22T10:00:00Z".into(),
            })
        };
        let reaction = Reaction {
            comment_id: 2,
            user_id: 3,
            emoji: "👍".into(),
            created: "2026-11-22T10:00:00Z".into(),
        };
        // Sequence numbers of every MessagePack integer width.
        let seqs = [5, 200, 40_000, 5_000_000_000];
        for enc in Encoding::ALL {
            let events = [
                ServerMessage::CommentEdited {
                    comment: comment(2, "seq"),
                    user_id: 3,
                    event: meta(seqs[0]),
                },
                ServerMessage::ReactionRemoved {
                    reaction: reaction.clone(),
                    user_id: 3,
                    event: meta(seqs[1]),
                },
                ServerMessage::Ack(Ack {
                    command: "comment_resolve".into(),
                    client_msg_id: Some("m2".into()),
                    seq: Some(seqs[2]),
                    duplicate: false,
                }),
                ServerMessage::CommentDeleted {
                    comment: comment(2, ""),
                    user_id: 3,
                    event: meta(seqs[3]),
                },
            ];
            let parts: Vec<Bytes> = events.iter().map(|e| encode(enc, e).unwrap()).collect();
            let frame = batch_frame(enc, &parts);
            let mut seen = Vec::new();
            for_each_named_event(&frame, enc, |kind, name, event| {
                seen.push((
                    kind,
                    String::from_utf8_lossy(name).into_owned(),
                    int_field(event, "seq", enc),
                ));
            });
            let names = [
                "comment_edited",
                "reaction_removed",
                "ack",
                "comment_deleted",
            ];
            let want: Vec<_> = names
                .iter()
                .zip(seqs)
                .map(|(n, s)| (Kind::Other, n.to_string(), Some(s)))
                .collect();
            assert_eq!(seen, want, "{enc:?}");
        }
    }

    #[test]
    fn counts_and_times_every_event_of_real_batches_in_both_encodings() {
        for enc in Encoding::ALL {
            let events = [
                ServerMessage::InitialState(InitialState {
                    project_id: 1,
                    comments: vec![comment(1, &comment_text(5, 0))],
                    online_users: vec![3],
                    last_comment_id: Some(1),
                    resumed_from: None,
                    resume_complete: None,
                    ..Default::default()
                }),
                ServerMessage::Comment {
                    comment: comment(2, &comment_text(111, 8)),
                    user_id: 3,
                    event: None,
                },
                ServerMessage::Typing {
                    user_id: 4,
                    is_typing: true,
                },
                ServerMessage::CommentAck(CommentAck {
                    client_msg_id: Some("m1".into()),
                    comment_id: 2,
                    duplicate: false,
                    comment: comment(2, &comment_text(111, 8)),
                }),
                ServerMessage::Typing {
                    user_id: 4,
                    is_typing: false,
                },
                ServerMessage::PresenceJoin { user_id: 9 },
                ServerMessage::Comment {
                    comment: comment(3, &comment_text(222, 0)),
                    user_id: 3,
                    event: None,
                },
                ServerMessage::Error {
                    message: "Rate limit exceeded".into(),
                    client_msg_id: None,
                },
            ];
            let parts: Vec<Bytes> = events.iter().map(|e| encode(enc, e).unwrap()).collect();
            let frame = batch_frame(enc, &parts);
            let mut seen = Vec::new();
            for_each_event(&frame, enc, |kind, event| {
                let typing = (kind == Kind::Typing).then(|| is_typing(event, enc));
                let sent = (kind == Kind::Comment).then(|| sent_ns(event)).flatten();
                seen.push((kind, sent, typing));
            });
            assert_eq!(
                seen,
                vec![
                    (Kind::InitialState, None, None),
                    (Kind::Comment, Some(111), None),
                    (Kind::Typing, None, Some(true)),
                    (Kind::CommentAck, None, None),
                    (Kind::Typing, None, Some(false)),
                    (Kind::Presence, None, None),
                    (Kind::Comment, Some(222), None),
                    (Kind::Error, None, None),
                ],
                "{enc:?}"
            );
            // A single event, not batched, is found too.
            let mut single = Vec::new();
            for_each_event(&parts[1], enc, |k, e| single.push((k, sent_ns(e))));
            assert_eq!(single, vec![(Kind::Comment, Some(111))], "{enc:?}");
        }
    }
}
