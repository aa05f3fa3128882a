//! The order in which a room hands a project's events to its members.
//!
//! Every durable event names its project's previous event (`prev_seq`; the
//! log numbers them without holes, in commit order). A node delivers its own
//! events at once and other nodes' when the broker brings them, so a room
//! can see event 10 before event 9. [`CommentChain`] passes an event on only
//! when it follows the last one passed on, holds it back otherwise, and lets
//! the held ones go as soon as the missing one arrives. So every member sees
//! the project's commit order, and the newest `seq` (or comment id) a client
//! holds is always a safe place to resume from. With nothing missing (the
//! normal case) an event passes at once. What the room does when a gap
//! lasts is its business (it reads the store): this type only keeps the
//! order. Messages outside the log (typing, presence) pass straight.

use std::collections::BTreeMap;
use std::sync::Arc;

use vridge_protocol::{Seq, ServerMessage};

/// Events held back per room; beyond that the room gives up waiting.
pub(super) const MAX_HELD: usize = 1024;

/// What became of an offered comment.
#[derive(Debug)]
pub(super) enum Offered {
    /// Pass these on, in this order (the comment, then held ones it freed).
    Deliver(Vec<Arc<ServerMessage>>),
    /// Already passed on (an echo or a duplicate): drop it.
    Stale,
    /// Held back until its predecessor comes.
    Held,
    /// Held back, and the hold is full: the room must resolve the gap now.
    Full,
}

/// The comment order of one room.
#[derive(Debug, Default)]
pub(super) struct CommentChain {
    /// The newest comment id passed on, in chain order; `None` before any
    /// (and, once `started`, also "the project had no comment").
    last: Option<Seq>,
    /// Whether `last` is known; when not, the next comment starts the chain.
    started: bool,
    /// Comments waiting for a predecessor, by id.
    held: BTreeMap<Seq, Arc<ServerMessage>>,
}

/// The number and predecessor of a durable event (`None` before the
/// project's first); `None` for messages outside the log.
pub(super) fn link_of(msg: &ServerMessage) -> Option<(Seq, Option<Seq>)> {
    msg.event()
        .map(|e| (e.seq, (e.prev_seq > 0).then_some(e.prev_seq)))
}

impl CommentChain {
    /// A chain that continues after `last` (the project's newest comment id
    /// when the room started; `None`: it had none).
    pub(super) fn after(last: Option<Seq>) -> Self {
        Self {
            last,
            started: true,
            held: BTreeMap::new(),
        }
    }

    /// A chain whose first comment is taken as its start.
    pub(super) fn unstarted() -> Self {
        Self::default()
    }

    /// The newest comment id passed on.
    pub(super) fn last(&self) -> Option<Seq> {
        self.last
    }

    /// Whether comments are held back.
    pub(super) fn is_waiting(&self) -> bool {
        !self.held.is_empty()
    }

    /// Offers a comment event.
    pub(super) fn offer(&mut self, msg: Arc<ServerMessage>) -> Offered {
        let Some((id, prev)) = link_of(&msg) else {
            return Offered::Deliver(vec![msg]);
        };
        if self.started && self.last.is_some_and(|last| id <= last) {
            return Offered::Stale;
        }
        if !self.started || prev.is_none() || prev == self.last {
            self.pass(id);
            let mut out = vec![msg];
            out.extend(self.drain());
            return Offered::Deliver(out);
        }
        self.held.insert(id, msg);
        if self.held.len() > MAX_HELD {
            Offered::Full
        } else {
            Offered::Held
        }
    }

    /// Comments read from the store after `last()`, oldest first: a
    /// committed prefix, so each follows the one before. Returns what to
    /// pass on: those not passed on yet, then held ones they freed.
    pub(super) fn fill(&mut self, from_store: Vec<Arc<ServerMessage>>) -> Vec<Arc<ServerMessage>> {
        let mut out = Vec::new();
        for msg in from_store {
            let Some((id, _)) = link_of(&msg) else {
                continue;
            };
            if self.last.is_some_and(|last| id <= last) {
                continue;
            }
            self.pass(id);
            out.push(msg);
        }
        out.extend(self.drain());
        out
    }

    /// Passes on every held comment in id order, whatever is missing before
    /// them (they are in the store, so a read from there finds nothing
    /// else).
    pub(super) fn release_held(&mut self) -> Vec<Arc<ServerMessage>> {
        let held = std::mem::take(&mut self.held);
        let mut out = Vec::with_capacity(held.len());
        for (id, msg) in held {
            if self.last.is_some_and(|last| id <= last) {
                continue;
            }
            self.pass(id);
            out.push(msg);
        }
        out
    }

    /// Drops every held comment and continues after the newest of them:
    /// members are told to resync, and resume from the newest id they hold,
    /// which is still before the gap, so the resume fills it.
    pub(super) fn skip_held(&mut self) {
        if let Some((id, _)) = self.held.pop_last() {
            self.pass(id);
        }
        self.held.clear();
    }

    fn pass(&mut self, id: Seq) {
        self.last = Some(id);
        self.started = true;
    }

    /// Takes the held comments that now follow `last`, in order.
    fn drain(&mut self) -> Vec<Arc<ServerMessage>> {
        let mut out = Vec::new();
        while let Some(entry) = self.held.first_entry() {
            let id = *entry.key();
            if self.last.is_some_and(|last| id <= last) {
                entry.remove();
                continue;
            }
            let prev = link_of(entry.get()).and_then(|(_, prev)| prev);
            if prev.is_some() && prev != self.last {
                break;
            }
            out.push(entry.remove());
            self.pass(id);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room::test_support::comment;

    fn ids(out: &[Arc<ServerMessage>]) -> Vec<Seq> {
        out.iter()
            .filter_map(|m| link_of(m))
            .map(|(id, _)| id)
            .collect()
    }

    fn delivered(offered: Offered) -> Vec<Seq> {
        match offered {
            Offered::Deliver(out) => ids(&out),
            other => panic!("expected a delivery, got {other:?}"),
        }
    }

    #[test]
    fn a_comment_before_its_predecessor_waits_for_it() {
        let mut chain = CommentChain::after(Some(8));
        assert!(matches!(chain.offer(comment(10, Some(9))), Offered::Held));
        assert!(chain.is_waiting());
        assert_eq!(delivered(chain.offer(comment(9, Some(8)))), vec![9, 10]);
        assert!(!chain.is_waiting());
        assert!(matches!(chain.offer(comment(9, Some(8))), Offered::Stale));
        assert_eq!(delivered(chain.offer(comment(11, Some(10)))), vec![11]);
    }

    #[test]
    fn an_unstarted_chain_starts_at_its_first_comment() {
        let mut chain = CommentChain::unstarted();
        assert_eq!(delivered(chain.offer(comment(5, Some(4)))), vec![5]);
        assert!(matches!(chain.offer(comment(4, Some(3))), Offered::Stale));
    }

    #[test]
    fn a_started_empty_chain_waits_for_the_first_comment() {
        let mut chain = CommentChain::after(None);
        assert!(matches!(chain.offer(comment(2, Some(1))), Offered::Held));
        assert_eq!(delivered(chain.offer(comment(1, None))), vec![1, 2]);
    }

    #[test]
    fn a_fill_from_the_store_frees_what_was_held() {
        let mut chain = CommentChain::after(Some(8));
        assert!(matches!(chain.offer(comment(11, Some(10))), Offered::Held));
        let out = chain.fill(vec![
            comment(8, Some(7)),
            comment(9, Some(8)),
            comment(10, Some(9)),
        ]);
        assert_eq!(ids(&out), vec![9, 10, 11]);
        assert_eq!(chain.last(), Some(11));
    }

    #[test]
    fn skipping_continues_after_the_newest_held() {
        let mut chain = CommentChain::after(Some(1));
        for id in (3..=(3 + MAX_HELD as i64)).rev() {
            let offered = chain.offer(comment(id, Some(id - 1)));
            if id == 3 {
                assert!(matches!(offered, Offered::Full));
            }
        }
        chain.skip_held();
        assert!(!chain.is_waiting());
        assert_eq!(chain.last(), Some(3 + MAX_HELD as i64));
        let mut released = CommentChain::after(Some(1));
        released.offer(comment(4, Some(3)));
        released.offer(comment(3, Some(2)));
        assert_eq!(ids(&released.release_held()), vec![3, 4]);
    }
}
