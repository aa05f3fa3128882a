//! Reading one `initial_state` of a resume by event number without parsing
//! it: how many events it carries and of which type, whether their `seq`s
//! run on without a gap from where the client resumed, the `last_seq` to
//! resume from next and whether the resume is complete. Scanned with the
//! classifier (see [`crate::classify`]), so a client reading 10,000 events
//! costs far less than the server writing them.

use vridge_protocol::Encoding;

use crate::classify::{self, Kind};

/// The durable event types, in report order; anything else is `other`.
pub const EVENT_TYPES: [&str; 9] = [
    "comment",
    "comment_edited",
    "comment_deleted",
    "comment_resolved",
    "comment_reopened",
    "reaction",
    "reaction_removed",
    "feedback_created",
    "status_changed",
];

/// What one `initial_state` held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// Events in `events` (everything after `initial_state` in the frame).
    pub events: u64,
    /// Of them, by type: [`EVENT_TYPES`], then every other type.
    pub by_type: [u64; EVENT_TYPES.len() + 1],
    /// Events by classifier kind, for the run's counters (the
    /// `initial_state` itself included).
    pub kinds: [u64; Kind::ALL.len()],
    /// Events whose `seq` is not the one before it plus one (the first:
    /// `resumed_from_seq` plus one), or that have none.
    pub out_of_order: u64,
    /// The newest `seq` among the events.
    pub newest_event: Option<i64>,
    /// `initial_state.last_seq`: where to resume from next.
    pub last_seq: Option<i64>,
    /// `initial_state.resumed_from_seq` (the `since_seq` asked for, clamped
    /// to the project's newest event).
    pub resumed_from_seq: Option<i64>,
    /// `initial_state.resume_complete`: `Some(false)` when capped.
    pub complete: Option<bool>,
}

/// Scans a frame that should be an `initial_state`; `None` when its first
/// message is something else.
pub fn scan(frame: &[u8], encoding: Encoding) -> Option<Page> {
    let mut page = Page::default();
    let mut first = true;
    let mut is_state = false;
    let mut previous: Option<i64> = None;
    classify::for_each_named_event(frame, encoding, |kind, name, bytes| {
        page.kinds[kind.index()] += 1;
        if first {
            first = false;
            is_state = kind == Kind::InitialState;
            if is_state {
                // The state's own fields, up to its first event.
                page.last_seq = classify::int_field(bytes, "last_seq", encoding);
                page.resumed_from_seq = classify::int_field(bytes, "resumed_from_seq", encoding);
                page.complete = classify::bool_field(bytes, "resume_complete", encoding);
                previous = page.resumed_from_seq;
            }
            return;
        }
        page.events += 1;
        let t = EVENT_TYPES
            .iter()
            .position(|t| t.as_bytes() == name)
            .unwrap_or(EVENT_TYPES.len());
        page.by_type[t] += 1;
        let seq = classify::int_field(bytes, "seq", encoding);
        match (previous, seq) {
            (Some(p), Some(s)) if s == p + 1 => {}
            _ => page.out_of_order += 1,
        }
        if seq.is_some() {
            previous = seq;
            page.newest_event = page.newest_event.max(seq);
        }
    });
    is_state.then_some(page)
}

#[cfg(test)]
mod tests {
    use vridge_protocol::codec::encode;
    use vridge_protocol::{Comment, EventMeta, InitialState, Reaction, ServerMessage};

    use super::*;

    fn meta(seq: i64) -> Option<EventMeta> {
        Some(EventMeta {
            seq,
            prev_seq: seq - 1,
            actor_id: 3,
            at: "2026-11-22T10:00:00Z".into(),
        })
    }

    fn comment(id: i64, text: &str) -> Comment {
        Comment {
            id,
            project_id: 1,
            feedback_id: 2,
            user_id: 3,
            text: text.into(),
            created: "2026-11-22T10:00:00Z".into(),
            ..Default::default()
        }
    }

    fn state(from: i64, seqs: &[i64], complete: bool) -> InitialState {
        let events = seqs
            .iter()
            .enumerate()
            .map(|(i, s)| match i % 3 {
                0 => ServerMessage::Comment {
                    // A text that spells the fields the scan reads.
                    comment: comment(*s, r#""seq":1 "last_seq":2 resume_complete"#),
                    user_id: 3,
                    event: meta(*s),
                },
                1 => ServerMessage::Reaction {
                    reaction: Reaction {
                        comment_id: 1,
                        user_id: 3,
                        emoji: "👍".into(),
                        created: "2026-11-22T10:00:00Z".into(),
                    },
                    user_id: 3,
                    event: meta(*s),
                },
                _ => ServerMessage::StatusChanged {
                    feedback_id: 2,
                    status: "closed".into(),
                    priority: "low".into(),
                    user_id: 3,
                    event: meta(*s),
                },
            })
            .collect();
        InitialState {
            project_id: 1,
            online_users: vec![3],
            last_comment_id: Some(1),
            resume_complete: Some(complete),
            last_seq: Some(seqs.last().copied().unwrap_or(from)),
            resumed_from_seq: Some(from),
            events,
            ..Default::default()
        }
    }

    #[test]
    fn counts_the_events_of_a_real_capped_page_and_where_to_resume() {
        for enc in Encoding::ALL {
            let seqs: Vec<i64> = (1001..=2000).collect();
            let frame =
                encode(enc, &ServerMessage::InitialState(state(1000, &seqs, false))).unwrap();
            let page = scan(&frame, enc).expect("an initial_state");
            assert_eq!(page.events, 1000, "{enc:?}");
            assert_eq!(page.out_of_order, 0, "{enc:?}");
            assert_eq!(page.last_seq, Some(2000), "{enc:?}");
            assert_eq!(page.newest_event, Some(2000), "{enc:?}");
            assert_eq!(page.resumed_from_seq, Some(1000), "{enc:?}");
            assert_eq!(page.complete, Some(false), "{enc:?}");
            assert_eq!(page.by_type[0], 334, "{enc:?}");
            assert_eq!(page.by_type[5], 333, "{enc:?}");
            assert_eq!(page.by_type[8], 333, "{enc:?}");
            assert_eq!(page.kinds[Kind::InitialState.index()], 1, "{enc:?}");
        }
    }

    #[test]
    fn a_gap_a_repeat_and_a_complete_empty_page_are_told() {
        for enc in Encoding::ALL {
            let frame = encode(
                enc,
                &ServerMessage::InitialState(state(10, &[11, 13, 13], true)),
            )
            .unwrap();
            let page = scan(&frame, enc).unwrap();
            assert_eq!((page.events, page.out_of_order), (3, 2), "{enc:?}");
            assert_eq!(page.complete, Some(true));
            let empty = encode(enc, &ServerMessage::InitialState(state(10, &[], true))).unwrap();
            let page = scan(&empty, enc).unwrap();
            assert_eq!((page.events, page.last_seq), (0, Some(10)), "{enc:?}");
            // A server without the event log: no resume fields at all.
            let old = encode(
                enc,
                &ServerMessage::InitialState(InitialState {
                    project_id: 1,
                    comments: vec![comment(5, "x")],
                    ..Default::default()
                }),
            )
            .unwrap();
            let page = scan(&old, enc).unwrap();
            assert_eq!((page.complete, page.last_seq), (None, None), "{enc:?}");
            let not_state = encode(enc, &ServerMessage::PresenceJoin { user_id: 1 }).unwrap();
            assert_eq!(scan(&not_state, enc), None);
        }
    }
}
