//! What crosses Redis: one MessagePack envelope per event, naming the node
//! that published it so that node can ignore its own echo (it delivered to
//! its own members at once, before publishing).

use serde::{Deserialize, Serialize};
use vridge_protocol::{ProjectId, ServerMessage, UserId};

/// Identifies one server process for its whole life (random at start).
pub type NodeId = u64;

/// One event on a project's channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The node that published it.
    pub origin: NodeId,
    pub project: ProjectId,
    pub payload: Payload,
}

/// What the receiving nodes do with an envelope.
// Most envelopes are events; boxing them would add an allocation to each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Payload {
    /// Deliver this event to the project's members.
    Event { message: ServerMessage },
    /// Close every socket `user` holds to the project with `code`.
    Evict { user: UserId, code: u16 },
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("encoding an envelope: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    #[error("decoding an envelope: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
}

impl Envelope {
    /// MessagePack with field names, so nodes of different versions can
    /// still read each other's envelopes when fields are added.
    pub fn encode(&self) -> Result<Vec<u8>, EnvelopeError> {
        Ok(rmp_serde::to_vec_named(self)?)
    }

    /// An event envelope, encoded from a borrowed message: the publisher
    /// keeps its message for this node's members, with no copy made for
    /// the wire. Reads back as an [`Envelope`] with a [`Payload::Event`].
    pub fn encode_event(
        origin: NodeId,
        project: ProjectId,
        message: &ServerMessage,
    ) -> Result<Vec<u8>, EnvelopeError> {
        #[derive(Serialize)]
        struct EventEnvelope<'a> {
            origin: NodeId,
            project: ProjectId,
            payload: EventPayload<'a>,
        }
        #[derive(Serialize)]
        #[serde(tag = "kind", rename_all = "snake_case")]
        enum EventPayload<'a> {
            Event { message: &'a ServerMessage },
        }
        Ok(rmp_serde::to_vec_named(&EventEnvelope {
            origin,
            project,
            payload: EventPayload::Event { message },
        })?)
    }

    /// Nesting is capped as for client frames, so a corrupt or hostile
    /// publisher cannot exhaust a node's stack.
    pub fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        Ok(vridge_protocol::codec::msgpack_from_slice(bytes)?)
    }
}

/// The pub/sub channel of a project.
pub fn channel(project: ProjectId) -> String {
    format!("vridge:project:{project}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_payload_round_trips_through_messagepack() {
        let cases = [
            Payload::Event {
                message: ServerMessage::Typing {
                    user_id: 3,
                    is_typing: true,
                },
            },
            Payload::Event {
                message: ServerMessage::Resync {
                    reason: "lagged".into(),
                },
            },
            Payload::Evict {
                user: 9,
                code: 4003,
            },
        ];
        for payload in cases {
            let env = Envelope {
                origin: u64::MAX,
                project: 42,
                payload,
            };
            let bytes = env.encode().unwrap();
            assert_eq!(Envelope::decode(&bytes).unwrap(), env);
        }
    }

    #[test]
    fn an_event_encoded_from_a_borrowed_message_reads_back_as_an_envelope() {
        let message = ServerMessage::Typing {
            user_id: 3,
            is_typing: true,
        };
        let bytes = Envelope::encode_event(7, 42, &message).unwrap();
        let owned = Envelope {
            origin: 7,
            project: 42,
            payload: Payload::Event { message },
        };
        assert_eq!(Envelope::decode(&bytes).unwrap(), owned);
        assert_eq!(bytes, owned.encode().unwrap());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Envelope::decode(b"\xc1not msgpack").is_err());
    }

    mod properties {
        //! What a node reads from Redis is bytes another process wrote: the
        //! decoder must answer anything with an error, never a panic, and
        //! every envelope must round-trip (fuzz target: `envelope`).

        use proptest::collection::vec;
        use proptest::prelude::*;
        use proptest::sample::Index;
        use vridge_protocol::strategy::server_message;

        use super::*;

        fn envelope() -> impl Strategy<Value = Envelope> {
            let payload = prop_oneof![
                server_message().prop_map(|message| Payload::Event { message }),
                (any::<i64>(), any::<u16>()).prop_map(|(user, code)| Payload::Evict { user, code }),
            ];
            (any::<u64>(), any::<i64>(), payload).prop_map(|(origin, project, payload)| Envelope {
                origin,
                project,
                payload,
            })
        }

        /// An accepted envelope encodes to bytes that decode to an envelope
        /// encoding to the same bytes (bytes, not values: a MessagePack
        /// float may be NaN, which is not equal to itself).
        fn assert_reencodes_stably(env: &Envelope) -> Result<(), TestCaseError> {
            let fail = |e: EnvelopeError| TestCaseError::fail(e.to_string());
            let once = env.encode().map_err(fail)?;
            let twice = Envelope::decode(&once)
                .map_err(fail)?
                .encode()
                .map_err(fail)?;
            prop_assert_eq!(once, twice);
            Ok(())
        }

        proptest! {
            #[test]
            fn envelope_decode_never_panics_on_arbitrary_bytes(bytes in vec(any::<u8>(), 0..512)) {
                if let Ok(env) = Envelope::decode(&bytes) {
                    assert_reencodes_stably(&env)?;
                }
            }

            #[test]
            fn envelope_decode_never_panics_on_mangled_envelopes(
                env in envelope(),
                edits in vec((any::<Index>(), any::<u8>()), 1..4),
                cut in any::<Index>(),
            ) {
                let mut bytes = env.encode().map_err(|e| TestCaseError::fail(e.to_string()))?;
                for (at, byte) in edits {
                    let i = at.index(bytes.len());
                    bytes[i] = byte;
                }
                for bytes in [&bytes[..], &bytes[..cut.index(bytes.len() + 1)]] {
                    if let Ok(env) = Envelope::decode(bytes) {
                        assert_reencodes_stably(&env)?;
                    }
                }
            }

            #[test]
            fn envelopes_round_trip(env in envelope()) {
                let bytes = env.encode().map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(Envelope::decode(&bytes).ok(), Some(env));
            }
        }
    }
}
