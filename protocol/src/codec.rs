//! The two wire encodings and the batch frame.
//!
//! JSON text frames are the default; a client that offers the subprotocol
//! [`Encoding::MSGPACK_SUBPROTOCOL`] gets MessagePack binary frames (maps with
//! field names, so both encodings carry the same shape).

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::CommentId;
use crate::client::{ClientMessage, CommentEdit, NewComment, NewReaction};
use crate::server::ServerMessage;

/// The wire encoding of one socket, chosen at the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Json,
    MsgPack,
}

impl Encoding {
    pub const JSON_SUBPROTOCOL: &'static str = "feedback.v1.json";
    pub const MSGPACK_SUBPROTOCOL: &'static str = "feedback.v1.msgpack";
    /// Both encodings, for code that encodes once per encoding in use.
    pub const ALL: [Encoding; 2] = [Encoding::Json, Encoding::MsgPack];

    /// Picks the encoding from a `Sec-WebSocket-Protocol` offer; returns the
    /// encoding and the subprotocol to echo back (none when none was offered).
    pub fn negotiate(offer: Option<&str>) -> (Encoding, Option<&'static str>) {
        let Some(offer) = offer else {
            return (Encoding::Json, None);
        };
        let offered: Vec<&str> = offer.split(',').map(str::trim).collect();
        if offered.contains(&Self::MSGPACK_SUBPROTOCOL) {
            (Encoding::MsgPack, Some(Self::MSGPACK_SUBPROTOCOL))
        } else if offered.contains(&Self::JSON_SUBPROTOCOL) {
            (Encoding::Json, Some(Self::JSON_SUBPROTOCOL))
        } else {
            (Encoding::Json, None)
        }
    }

    /// Index into per-encoding arrays such as `[Bytes; 2]`.
    pub fn index(self) -> usize {
        match self {
            Encoding::Json => 0,
            Encoding::MsgPack => 1,
        }
    }

    /// Whether frames of this encoding are binary (else text).
    pub fn is_binary(self) -> bool {
        matches!(self, Encoding::MsgPack)
    }
}

/// Why a client frame was refused. The `Display` text is what the client is
/// told, in the product's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not a JSON (or MessagePack) object at all.
    #[error("Invalid JSON")]
    Malformed,
    #[error("Unknown message type: {0}")]
    UnknownType(String),
    #[error("Invalid comment data")]
    InvalidComment,
    #[error("Invalid typing data")]
    InvalidTyping,
    #[error("Invalid reaction data")]
    InvalidReaction,
    #[error("Invalid token")]
    InvalidToken,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type", default)]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct CommentAddBody {
    comment: NewComment,
    #[serde(default)]
    client_msg_id: Option<String>,
}

#[derive(Deserialize)]
struct TypingBody {
    is_typing: bool,
}

#[derive(Deserialize)]
struct ReactionBody {
    reaction: NewReaction,
    #[serde(default)]
    client_msg_id: Option<String>,
}

#[derive(Deserialize)]
struct EditBody {
    edit: CommentEdit,
    #[serde(default)]
    client_msg_id: Option<String>,
}

/// The body of the commands that name one comment.
#[derive(Deserialize)]
struct CommentIdBody {
    comment_id: CommentId,
    #[serde(default)]
    client_msg_id: Option<String>,
}

#[derive(Deserialize)]
struct RefreshTokenBody {
    token: String,
}

/// Deepest nesting of arrays and maps a MessagePack frame may have, the
/// limit serde_json applies to JSON. Our messages nest a few levels; rmp-serde
/// allows 1024, and at a few hundred levels decoding an untagged field (such
/// as `security`) in a debug build overflows a 2 MiB worker stack, which
/// aborts the process.
pub const MAX_MSGPACK_DEPTH: usize = 128;

/// `rmp_serde::from_slice` with nesting capped at [`MAX_MSGPACK_DEPTH`]:
/// every MessagePack decoder of outside bytes goes through this (client and
/// server frames here, the server's Redis envelopes).
pub fn msgpack_from_slice<T: DeserializeOwned>(
    bytes: &[u8],
) -> Result<T, rmp_serde::decode::Error> {
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    de.set_max_depth(MAX_MSGPACK_DEPTH);
    T::deserialize(&mut de)
}

fn parse<T: DeserializeOwned>(enc: Encoding, frame: &[u8]) -> Option<T> {
    match enc {
        Encoding::Json => serde_json::from_slice(frame).ok(),
        Encoding::MsgPack => msgpack_from_slice(frame).ok(),
    }
}

/// Decodes one client frame. The type tag is read first so that an unknown
/// type and a bad body of a known type get different errors, as the product's
/// consumer reported them.
pub fn decode_client(enc: Encoding, frame: &[u8]) -> Result<ClientMessage, DecodeError> {
    let envelope: Envelope = parse(enc, frame).ok_or(DecodeError::Malformed)?;
    match envelope.kind.as_deref() {
        Some("comment_add") => parse::<CommentAddBody>(enc, frame)
            .map(|b| ClientMessage::CommentAdd {
                comment: b.comment,
                client_msg_id: b.client_msg_id,
            })
            .ok_or(DecodeError::InvalidComment),
        Some("typing_indicator") => parse::<TypingBody>(enc, frame)
            .map(|b| ClientMessage::TypingIndicator {
                is_typing: b.is_typing,
            })
            .ok_or(DecodeError::InvalidTyping),
        Some("reaction_add") => parse::<ReactionBody>(enc, frame)
            .map(|b| ClientMessage::ReactionAdd {
                reaction: b.reaction,
                client_msg_id: b.client_msg_id,
            })
            .ok_or(DecodeError::InvalidReaction),
        Some("reaction_remove") => parse::<ReactionBody>(enc, frame)
            .map(|b| ClientMessage::ReactionRemove {
                reaction: b.reaction,
                client_msg_id: b.client_msg_id,
            })
            .ok_or(DecodeError::InvalidReaction),
        Some("comment_edit") => parse::<EditBody>(enc, frame)
            .map(|b| ClientMessage::CommentEdit {
                edit: b.edit,
                client_msg_id: b.client_msg_id,
            })
            .ok_or(DecodeError::InvalidComment),
        Some(kind @ ("comment_delete" | "comment_resolve" | "comment_reopen")) => {
            parse::<CommentIdBody>(enc, frame)
                .map(|b| {
                    let (comment_id, client_msg_id) = (b.comment_id, b.client_msg_id);
                    match kind {
                        "comment_delete" => ClientMessage::CommentDelete {
                            comment_id,
                            client_msg_id,
                        },
                        "comment_resolve" => ClientMessage::CommentResolve {
                            comment_id,
                            client_msg_id,
                        },
                        _ => ClientMessage::CommentReopen {
                            comment_id,
                            client_msg_id,
                        },
                    }
                })
                .ok_or(DecodeError::InvalidComment)
        }
        Some("refresh_token") => parse::<RefreshTokenBody>(enc, frame)
            .map(|b| ClientMessage::RefreshToken { token: b.token })
            .ok_or(DecodeError::InvalidToken),
        Some(other) => Err(DecodeError::UnknownType(truncate(other, 64))),
        None => Err(DecodeError::UnknownType("None".to_owned())),
    }
}

#[derive(Deserialize)]
struct ClientMsgIdOnly {
    #[serde(default)]
    client_msg_id: Option<String>,
}

/// The `client_msg_id` of a frame whose body did not decode, when it has a
/// readable one, so that the error can name the comment it refuses.
pub fn client_msg_id_of(enc: Encoding, frame: &[u8]) -> Option<String> {
    parse::<ClientMsgIdOnly>(enc, frame).and_then(|b| b.client_msg_id)
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

/// Encoding failed; only possible for values serde cannot represent, which
/// our types never contain, but it is reported rather than assumed.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("msgpack: {0}")]
    MsgPack(#[from] rmp_serde::encode::Error),
}

/// Encodes one message for the wire.
pub fn encode<T: serde::Serialize>(enc: Encoding, msg: &T) -> Result<Bytes, EncodeError> {
    Ok(match enc {
        Encoding::Json => Bytes::from(serde_json::to_vec(msg)?),
        Encoding::MsgPack => Bytes::from(rmp_serde::to_vec_named(msg)?),
    })
}

/// Decodes a server frame: used by clients (tests, the load generator).
pub fn decode_server(enc: Encoding, frame: &[u8]) -> Result<ServerMessage, DecodeError> {
    parse(enc, frame).ok_or(DecodeError::Malformed)
}

/// Builds a `{"type":"batch","messages":[…]}` frame by concatenating events
/// that are already encoded, so a batch costs no re-serialization.
pub fn batch_frame(enc: Encoding, parts: &[Bytes]) -> Bytes {
    let payload: usize = parts.iter().map(Bytes::len).sum();
    let mut out = BytesMut::with_capacity(payload + parts.len() + 40);
    match enc {
        Encoding::Json => {
            out.put_slice(br#"{"type":"batch","messages":["#);
            for (i, part) in parts.iter().enumerate() {
                if i > 0 {
                    out.put_u8(b',');
                }
                out.put_slice(part);
            }
            out.put_slice(b"]}");
        }
        Encoding::MsgPack => {
            let mut head = Vec::with_capacity(32);
            // Writing into a Vec cannot fail; the results are ignored for that reason.
            let _ = rmp::encode::write_map_len(&mut head, 2);
            let _ = rmp::encode::write_str(&mut head, "type");
            let _ = rmp::encode::write_str(&mut head, "batch");
            let _ = rmp::encode::write_str(&mut head, "messages");
            let _ = rmp::encode::write_array_len(&mut head, parts.len() as u32);
            out.put_slice(&head);
            for part in parts {
                out.put_slice(part);
            }
        }
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Comment;

    fn comment(id: i64) -> ServerMessage {
        ServerMessage::Comment {
            comment: Comment {
                id,
                project_id: 1,
                feedback_id: 2,
                user_id: 3,
                text: "at 0:42 the cut jumps".into(),
                title: None,
                section: Some("intro".into()),
                security: None,
                timestamp: Some(42.5),
                created: "2026-11-22T10:00:00Z".into(),
                prev_id: Some(id - 1),
                ..Default::default()
            },
            user_id: 3,
            event: None,
        }
    }

    #[test]
    fn batch_frame_decodes_to_the_same_events_in_both_encodings() {
        for enc in Encoding::ALL {
            let events = [comment(1), comment(2), comment(3)];
            let parts: Vec<Bytes> = events.iter().map(|e| encode(enc, e).unwrap()).collect();
            let frame = batch_frame(enc, &parts);
            let decoded = decode_server(enc, &frame).unwrap();
            assert_eq!(
                decoded,
                ServerMessage::Batch {
                    messages: events.to_vec()
                },
                "{enc:?}"
            );
        }
    }

    #[test]
    fn msgpack_batch_of_many_uses_wide_array_header() {
        let parts: Vec<Bytes> = (0..70_000)
            .map(|_| {
                encode(
                    Encoding::MsgPack,
                    &ServerMessage::PresenceJoin { user_id: 1 },
                )
                .unwrap()
            })
            .collect();
        match decode_server(Encoding::MsgPack, &batch_frame(Encoding::MsgPack, &parts)).unwrap() {
            ServerMessage::Batch { messages } => assert_eq!(messages.len(), 70_000),
            other => panic!("not a batch: {other:?}"),
        }
    }

    #[test]
    fn client_errors_use_the_products_wording() {
        let j = Encoding::Json;
        assert_eq!(
            decode_client(j, b"{not json").unwrap_err().to_string(),
            "Invalid JSON"
        );
        assert_eq!(
            decode_client(j, b"[1,2]").unwrap_err().to_string(),
            "Invalid JSON"
        );
        assert_eq!(
            decode_client(j, br#"{"type":"dance"}"#)
                .unwrap_err()
                .to_string(),
            "Unknown message type: dance"
        );
        assert_eq!(
            decode_client(j, br#"{"type":"comment_add","comment":{"text":"x"}}"#)
                .unwrap_err()
                .to_string(),
            "Invalid comment data"
        );
    }

    #[test]
    fn comment_add_accepts_boolean_security_and_optional_fields() {
        let msg = decode_client(
            Encoding::Json,
            br#"{"type":"comment_add","comment":{"feedback_id":7,"text":"hi","security":true},"client_msg_id":"a1"}"#,
        )
        .unwrap();
        match msg {
            ClientMessage::CommentAdd {
                comment,
                client_msg_id,
            } => {
                assert_eq!(comment.security.as_deref(), Some("true"));
                assert_eq!(comment.feedback_id, 7);
                assert_eq!(client_msg_id.as_deref(), Some("a1"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn msgpack_client_frames_decode() {
        let sent = ClientMessage::TypingIndicator { is_typing: true };
        let frame = rmp_serde::to_vec_named(&sent).unwrap();
        assert_eq!(decode_client(Encoding::MsgPack, &frame).unwrap(), sent);
        assert_eq!(
            decode_client(Encoding::MsgPack, b"\xc1").unwrap_err(),
            DecodeError::Malformed
        );
    }

    /// `levels` arrays nested in the `security` of a MessagePack
    /// `comment_add`: the untagged field buffers them, one stack frame set
    /// per level.
    fn nested_security(levels: usize) -> Vec<u8> {
        let mut out = b"\x82\xa4type\xabcomment_add\xa7comment\x83\xabfeedback_id\x01\xa4text\xa1x\xa8security".to_vec();
        out.extend(std::iter::repeat_n(0x91, levels));
        out.push(0x90);
        out
    }

    /// `levels` batches, each the only message of the one around it.
    fn nested_batches(levels: usize) -> Vec<u8> {
        let mut out = b"\x82\xa4type\xa5batch\xa8messages\x91".repeat(levels);
        out.pop();
        out.push(0x90);
        out
    }

    #[test]
    fn deep_frames_are_refused_without_exhausting_the_stack() {
        // A thread with a quarter of a tokio worker's stack: before the
        // depth cap, 600 levels overflowed 2 MiB in a debug build.
        let decoded = std::thread::Builder::new()
            .stack_size(512 << 10)
            .spawn(|| {
                let levels = [10, MAX_MSGPACK_DEPTH / 2, 600, 1000, 30_000];
                let client: Vec<_> = levels
                    .iter()
                    .map(|&n| decode_client(Encoding::MsgPack, &nested_security(n)))
                    .collect();
                let server: Vec<_> = levels
                    .iter()
                    .map(|&n| decode_server(Encoding::MsgPack, &nested_batches(n)).is_ok())
                    .collect();
                // JSON: serde_json's own limit of 128 levels refuses the
                // body (skipping the unread fields for the type tag is
                // iterative, so the tag is still read).
                let json = |n: usize| {
                    let frame = format!(
                        r#"{{"type":"comment_add","comment":{{"feedback_id":1,"text":"x","security":{}{}}}}}"#,
                        "[".repeat(n),
                        "]".repeat(n)
                    );
                    decode_client(Encoding::Json, frame.as_bytes())
                };
                assert_eq!(json(120), Err(DecodeError::InvalidComment));
                assert_eq!(json(30_000), Err(DecodeError::InvalidComment));
                (client, server)
            })
            .unwrap()
            .join()
            .expect("decoding deep frames must not overflow the stack");
        let (client, server) = decoded;
        // Shallow: a bad body of a known type. Deep: not a frame at all.
        assert_eq!(client[0], Err(DecodeError::InvalidComment));
        assert_eq!(client[1], Err(DecodeError::InvalidComment));
        for deep in &client[2..] {
            assert_eq!(deep, &Err(DecodeError::Malformed));
        }
        // Batches nest two levels each (map and array).
        assert_eq!(server, [true, false, false, false, false]);
    }

    #[test]
    fn negotiation_prefers_msgpack_and_echoes_only_what_was_offered() {
        assert_eq!(Encoding::negotiate(None), (Encoding::Json, None));
        assert_eq!(
            Encoding::negotiate(Some("feedback.v1.json, feedback.v1.msgpack")),
            (Encoding::MsgPack, Some(Encoding::MSGPACK_SUBPROTOCOL))
        );
        assert_eq!(
            Encoding::negotiate(Some("feedback.v1.json")),
            (Encoding::Json, Some(Encoding::JSON_SUBPROTOCOL))
        );
        assert_eq!(Encoding::negotiate(Some("chat")), (Encoding::Json, None));
    }
}
