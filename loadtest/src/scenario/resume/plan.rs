//! What the seed phase of `resume` sends next: a mix of the commands that
//! make durable events, planned so that every command makes exactly one
//! event (never a no-op: no second reaction with the same emoji, no
//! resolving a resolved comment), whatever order the server commits
//! commands of one socket in. A comment has at most one command in flight,
//! and a command on a comment is planned only once its `comment_ack` came.

use std::collections::HashMap;

use vridge_protocol::CommentId;

/// The emojis reactions use (a reaction is one per user, comment and emoji).
pub const EMOJIS: [&str; 4] = ["👍", "🎉", "👀", "🔥"];

/// The statuses a feedback item cycles through (it is provisioned `open`);
/// each change is an event.
pub const STATUSES: [&str; 4] = ["in_progress", "resolved", "closed", "open"];

/// One command of the seed phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Edit(CommentId),
    React(CommentId, &'static str),
    Unreact(CommentId, &'static str),
    Resolve(CommentId),
    Reopen(CommentId),
    Delete(CommentId),
    /// A REST status change of the project's feedback item.
    Status(&'static str),
}

/// The kinds of [`Op`], in report order.
pub const KINDS: [&str; 8] = [
    "comment_add",
    "comment_edit",
    "reaction_add",
    "reaction_remove",
    "comment_resolve",
    "comment_reopen",
    "comment_delete",
    "status_change",
];

impl Op {
    /// Index into [`KINDS`].
    pub fn kind(self) -> usize {
        match self {
            Op::Add => 0,
            Op::Edit(_) => 1,
            Op::React(..) => 2,
            Op::Unreact(..) => 3,
            Op::Resolve(_) => 4,
            Op::Reopen(_) => 5,
            Op::Delete(_) => 6,
            Op::Status(_) => 7,
        }
    }

    /// The comment the command changes.
    pub fn comment(self) -> Option<CommentId> {
        match self {
            Op::Edit(c)
            | Op::React(c, _)
            | Op::Unreact(c, _)
            | Op::Resolve(c)
            | Op::Reopen(c)
            | Op::Delete(c) => Some(c),
            Op::Add | Op::Status(_) => None,
        }
    }
}

/// Percent of commands of each kind, in [`KINDS`] order (the rest, and
/// every command that finds no comment to act on, is `comment_add`).
pub const MIX: [u32; 8] = [40, 15, 17, 10, 8, 6, 3, 1];

/// The state of one of the seeder's comments, as its commands left it.
#[derive(Debug, Clone, Copy, Default)]
struct Tracked {
    id: CommentId,
    deleted: bool,
    resolved: bool,
    /// Bit i: the seeder reacted with `EMOJIS[i]`.
    reactions: u8,
    /// A command on it is in flight.
    busy: bool,
}

/// Plans the seed commands of one project.
#[derive(Debug)]
pub struct Planner {
    rng: u64,
    comments: Vec<Tracked>,
    index: HashMap<CommentId, usize>,
    /// Whether REST status changes are in the mix.
    status_changes: bool,
    status_in_flight: bool,
    statuses_sent: usize,
}

/// How many comments a plan looks at for a target before it adds a comment
/// instead.
const PROBES: usize = 8;

impl Planner {
    pub fn new(seed: u64, status_changes: bool) -> Self {
        Self {
            rng: seed,
            comments: Vec::new(),
            index: HashMap::new(),
            status_changes,
            status_in_flight: false,
            statuses_sent: 0,
        }
    }

    /// splitmix64: enough randomness for a mix, and reproducible.
    fn next_u64(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// The next command, with its effect on the plan's state applied (its
    /// comment is busy until [`Planner::done`]).
    pub fn next_op(&mut self) -> Op {
        let roll = self.below(100) as u32;
        let mut acc = 0;
        let kind = MIX
            .iter()
            .position(|w| {
                acc += w;
                roll < acc
            })
            .unwrap_or(0);
        if kind == 7 {
            if !self.status_changes || self.status_in_flight {
                return Op::Add;
            }
            self.status_in_flight = true;
            let status = STATUSES[self.statuses_sent % STATUSES.len()];
            self.statuses_sent += 1;
            return Op::Status(status);
        }
        if kind == 0 || self.comments.is_empty() {
            return Op::Add;
        }
        for _ in 0..PROBES {
            let i = self.below(self.comments.len());
            let r = self.below(EMOJIS.len());
            let c = &mut self.comments[i];
            if c.busy || c.deleted {
                continue;
            }
            let op = match kind {
                1 => Op::Edit(c.id),
                2 => {
                    // The first emoji from r on that it does not have yet.
                    let Some(e) = (0..EMOJIS.len())
                        .map(|k| (r + k) % EMOJIS.len())
                        .find(|e| c.reactions & (1 << e) == 0)
                    else {
                        continue;
                    };
                    c.reactions |= 1 << e;
                    Op::React(c.id, EMOJIS[e])
                }
                3 => {
                    let Some(e) = (0..EMOJIS.len())
                        .map(|k| (r + k) % EMOJIS.len())
                        .find(|e| c.reactions & (1 << e) != 0)
                    else {
                        continue;
                    };
                    c.reactions &= !(1 << e);
                    Op::Unreact(c.id, EMOJIS[e])
                }
                4 if !c.resolved => {
                    c.resolved = true;
                    Op::Resolve(c.id)
                }
                5 if c.resolved => {
                    c.resolved = false;
                    Op::Reopen(c.id)
                }
                6 => {
                    c.deleted = true;
                    Op::Delete(c.id)
                }
                _ => continue,
            };
            c.busy = true;
            return op;
        }
        Op::Add
    }

    /// A `comment_add` was acknowledged with this id: its comment may be
    /// acted on from now.
    pub fn added(&mut self, id: CommentId) {
        if self.index.contains_key(&id) {
            return;
        }
        self.index.insert(id, self.comments.len());
        self.comments.push(Tracked {
            id,
            ..Tracked::default()
        });
    }

    /// `op` was answered (acknowledged or refused): its comment is free.
    pub fn done(&mut self, op: Op) {
        if let Op::Status(_) = op {
            self.status_in_flight = false;
        }
        if let Some(i) = op.comment().and_then(|c| self.index.get(&c).copied()) {
            self.comments[i].busy = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replays a plan against a model of the server that refuses what
    /// would be a no-op or an error, answering commands in a shuffled order.
    #[test]
    fn every_planned_command_changes_something_whatever_the_answer_order() {
        #[derive(Default, Clone)]
        struct Server {
            deleted: bool,
            resolved: bool,
            reactions: u8,
        }
        let mut plan = Planner::new(7, true);
        let mut server: HashMap<CommentId, Server> = HashMap::new();
        let mut in_flight: Vec<Op> = Vec::new();
        let mut next_id = 100;
        let mut counts = [0u64; KINDS.len()];
        let mut shuffle = Planner::new(99, false);
        for _ in 0..20_000 {
            while in_flight.len() < 32 {
                let op = plan.next_op();
                // Nothing else in flight touches the same comment.
                if let Some(c) = op.comment() {
                    assert!(in_flight.iter().all(|o| o.comment() != Some(c)), "{op:?}");
                }
                in_flight.push(op);
            }
            let op = in_flight.swap_remove(shuffle.below(in_flight.len()));
            counts[op.kind()] += 1;
            let emoji = |e: &str| 1u8 << EMOJIS.iter().position(|x| *x == e).unwrap();
            match op {
                Op::Add => {
                    server.insert(next_id, Server::default());
                    plan.added(next_id);
                    next_id += 1;
                }
                Op::Status(_) => {}
                _ => {
                    let s = server.get_mut(&op.comment().unwrap()).unwrap();
                    assert!(!s.deleted, "{op:?} on a deleted comment");
                    match op {
                        Op::React(_, e) => {
                            assert_eq!(s.reactions & emoji(e), 0, "{op:?} twice");
                            s.reactions |= emoji(e);
                        }
                        Op::Unreact(_, e) => {
                            assert_ne!(s.reactions & emoji(e), 0, "{op:?} of none");
                            s.reactions &= !emoji(e);
                        }
                        Op::Resolve(_) => {
                            assert!(!s.resolved, "{op:?} twice");
                            s.resolved = true;
                        }
                        Op::Reopen(_) => {
                            assert!(s.resolved, "{op:?} of an open one");
                            s.resolved = false;
                        }
                        Op::Delete(_) => s.deleted = true,
                        _ => {}
                    }
                }
            }
            plan.done(op);
        }
        let total: u64 = counts.iter().sum();
        let share = |k: usize| counts[k] as f64 * 100.0 / total as f64;
        // comment_add about 40 % (more, for commands with no free target),
        // and every kind present.
        assert!((38.0..55.0).contains(&share(0)), "{counts:?}");
        assert!(counts.iter().all(|n| *n > 0), "{counts:?}");
        assert!(share(6) < 5.0 && share(7) <= 1.5, "{counts:?}");
    }

    #[test]
    fn status_changes_are_one_at_a_time_and_only_when_asked() {
        let mut plan = Planner::new(1, true);
        let mut first = None;
        for _ in 0..1000 {
            match plan.next_op() {
                Op::Status(s) if first.is_none() => first = Some(Op::Status(s)),
                Op::Status(s) => panic!("second status change {s} while one is in flight"),
                _ => {}
            }
        }
        assert_eq!(first, Some(Op::Status(STATUSES[0])));
        plan.done(Op::Status(STATUSES[0]));
        let mut without = Planner::new(1, false);
        assert!((0..1000).all(|_| !matches!(without.next_op(), Op::Status(_))));
    }
}
