//! The room task: owns the members of one project on this node and fans
//! events out to them, encoding each event once per wire encoding in use.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use vridge_protocol::codec::encode;
use vridge_protocol::{ProjectId, ServerMessage, UserId};

use super::registry::Registry;
use super::{ConnId, Joined, RoomCmd, RoomEvent};
use crate::ws::outbox::{OutFrame, Outbox};

struct Member {
    user: UserId,
    outbox: Outbox,
}

/// State of one room. Lives as long as the room task; only the task touches it.
pub(super) struct Room {
    pub(super) project: ProjectId,
    pub(super) instance: u64,
    pub(super) registry: Registry,
    /// Sockets in the room, by connection.
    members: HashMap<ConnId, Member>,
    /// Sockets per user, for presence; a user is online while their count is > 0.
    sockets_per_user: BTreeMap<UserId, usize>,
    /// When each typing user's indicator lapses unless refreshed.
    typing: HashMap<UserId, Instant>,
}

impl Room {
    pub(super) fn new(project: ProjectId, instance: u64, registry: Registry) -> Self {
        Self {
            project,
            instance,
            registry,
            members: HashMap::new(),
            sockets_per_user: BTreeMap::new(),
            typing: HashMap::new(),
        }
    }

    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<RoomCmd>) {
        let metrics = self.registry.metrics().clone();
        metrics.rooms_active.fetch_add(1, Relaxed);
        loop {
            let next_lapse = self.typing.values().min().copied();
            let cmd = tokio::select! {
                cmd = rx.recv() => cmd,
                () = sleep_until(next_lapse.unwrap_or_else(Instant::now)), if next_lapse.is_some() => {
                    self.expire_typing();
                    continue;
                }
            };
            let Some(cmd) = cmd else { break };
            let may_empty = matches!(
                cmd,
                RoomCmd::Leave { .. } | RoomCmd::Evict { .. } | RoomCmd::Publish(_)
            );
            self.handle(cmd);
            if may_empty && self.members.is_empty() {
                break;
            }
        }
        self.retire(rx).await;
        metrics.rooms_active.fetch_sub(1, Relaxed);
    }

    /// Leaves the registry first, so no new join can find this room, then
    /// closes the queue; a join that slipped in before the close has its reply
    /// dropped, and the joiner retries on a fresh room.
    async fn retire(&self, mut rx: mpsc::Receiver<RoomCmd>) {
        self.registry.forget(self.project, self.instance);
        self.registry.report(RoomEvent::Retired(self.project));
        rx.close();
        while let Some(cmd) = rx.recv().await {
            drop(cmd);
        }
    }

    fn handle(&mut self, cmd: RoomCmd) {
        match cmd {
            RoomCmd::Join {
                conn,
                user,
                outbox,
                reply,
            } => {
                let first = self.add(conn, user, outbox);
                let joined = Joined {
                    online_users: self.sockets_per_user.keys().copied().collect(),
                };
                if reply.send(joined).is_err() {
                    // The joiner gave up (its socket closed); undo.
                    self.remove_and_announce(conn);
                    return;
                }
                if first {
                    self.announce_online(user);
                }
                if !self.typing.is_empty() {
                    self.replay_typing(conn);
                }
            }
            RoomCmd::Leave { conn } => self.remove_and_announce(conn),
            RoomCmd::Publish(msg) => {
                let except = match &*msg {
                    ServerMessage::Typing { user_id, is_typing } => {
                        if *is_typing {
                            self.typing.insert(
                                *user_id,
                                Instant::now() + self.registry.settings().typing_timeout,
                            );
                        } else {
                            self.typing.remove(user_id);
                        }
                        Some(*user_id)
                    }
                    // Nobody is told they joined themselves.
                    ServerMessage::PresenceJoin { user_id } => Some(*user_id),
                    _ => None,
                };
                self.broadcast(&msg, except);
            }
            RoomCmd::Evict { user, code } => {
                let conns: Vec<ConnId> = self
                    .members
                    .iter()
                    .filter(|(_, m)| m.user == user)
                    .map(|(c, _)| *c)
                    .collect();
                for conn in conns {
                    if let Some(m) = self.members.get(&conn) {
                        m.outbox.close(code);
                    }
                    self.remove_and_announce(conn);
                }
            }
        }
    }

    /// Adds a member; true when it is the user's first socket here.
    fn add(&mut self, conn: ConnId, user: UserId, outbox: Outbox) -> bool {
        self.members.insert(conn, Member { user, outbox });
        let count = self.sockets_per_user.entry(user).or_insert(0);
        *count += 1;
        *count == 1
    }

    /// Tells a newcomer who is typing right now.
    fn replay_typing(&mut self, conn: ConnId) {
        let Some(member) = self.members.get(&conn) else {
            return;
        };
        let typing: Vec<UserId> = self
            .typing
            .keys()
            .copied()
            .filter(|u| *u != member.user)
            .collect();
        for user_id in typing {
            member.outbox.offer_message(&ServerMessage::Typing {
                user_id,
                is_typing: true,
            });
        }
    }

    /// Removes a connection; when it was its user's last, the user's typing
    /// indicator stops and everyone left is told the user went offline. Members
    /// dropped while announcing that are removed the same way.
    fn remove_and_announce(&mut self, conn: ConnId) {
        let mut pending = vec![conn];
        while let Some(conn) = pending.pop() {
            let Some(member) = self.members.remove(&conn) else {
                continue;
            };
            let Some(count) = self.sockets_per_user.get_mut(&member.user) else {
                continue;
            };
            *count -= 1;
            if *count > 0 {
                continue;
            }
            self.sockets_per_user.remove(&member.user);
            let was_typing = self.typing.remove(&member.user).is_some();
            if was_typing {
                let stop = ServerMessage::Typing {
                    user_id: member.user,
                    is_typing: false,
                };
                pending.extend(self.fan_out(&stop, Some(member.user)));
            }
            if self.registry.has_hooks() {
                // The broker decides whether this was the user's last socket
                // on any node, and tells every node's members.
                self.registry.report(RoomEvent::UserOffline {
                    project: self.project,
                    user: member.user,
                    was_typing,
                });
            } else {
                pending.extend(self.fan_out(
                    &ServerMessage::PresenceLeave {
                        user_id: member.user,
                    },
                    None,
                ));
            }
        }
    }

    /// A user's first socket here opened: tell the room (one node) or the
    /// broker, which announces it only when it is the user's first anywhere.
    fn announce_online(&mut self, user: UserId) {
        if self.registry.has_hooks() {
            self.registry.report(RoomEvent::UserOnline {
                project: self.project,
                user,
            });
        } else {
            self.broadcast(&ServerMessage::PresenceJoin { user_id: user }, Some(user));
        }
    }

    fn expire_typing(&mut self) {
        let now = Instant::now();
        let lapsed: Vec<UserId> = self
            .typing
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(u, _)| *u)
            .collect();
        for user_id in lapsed {
            self.typing.remove(&user_id);
            self.broadcast(
                &ServerMessage::Typing {
                    user_id,
                    is_typing: false,
                },
                Some(user_id),
            );
        }
    }

    /// Sends `msg` to every member except `except`'s sockets, then removes
    /// the members whose queues were full.
    fn broadcast(&mut self, msg: &ServerMessage, except: Option<UserId>) {
        let dropped = self.fan_out(msg, except);
        for conn in dropped {
            self.remove_and_announce(conn);
        }
    }

    /// Queues `msg` to members; returns the connections that could not take it.
    fn fan_out(&self, msg: &ServerMessage, except: Option<UserId>) -> Vec<ConnId> {
        let comment_id = match msg {
            ServerMessage::Comment { comment, .. } => Some(comment.id),
            _ => None,
        };
        let mut encoded: [Option<Bytes>; 2] = [None, None];
        let mut dropped = Vec::new();
        let mut delivered = 0u64;
        for (conn, member) in &self.members {
            if Some(member.user) == except {
                continue;
            }
            let enc = member.outbox.encoding();
            let bytes = match &encoded[enc.index()] {
                Some(b) => b.clone(),
                None => match encode(enc, msg) {
                    Ok(b) => {
                        encoded[enc.index()] = Some(b.clone());
                        b
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "encoding an event failed");
                        return dropped;
                    }
                },
            };
            if member.outbox.offer(OutFrame { bytes, comment_id }) {
                delivered += 1;
            } else {
                dropped.push(*conn);
            }
        }
        self.registry
            .metrics()
            .messages_out(out_kind(msg), delivered);
        dropped
    }
}

/// The metric label of an event.
pub(crate) fn out_kind(msg: &ServerMessage) -> &'static str {
    match msg {
        ServerMessage::InitialState(_) => "initial_state",
        ServerMessage::Comment { .. } => "comment",
        ServerMessage::CommentAck(_) => "comment_ack",
        ServerMessage::Typing { .. } => "typing",
        ServerMessage::Reaction { .. } => "reaction",
        ServerMessage::FeedbackCreated { .. } => "feedback_created",
        ServerMessage::StatusChanged { .. } => "status_changed",
        ServerMessage::PresenceJoin { .. } | ServerMessage::PresenceLeave { .. } => "presence",
        ServerMessage::Error { .. } => "error",
        ServerMessage::Resync { .. } => "resync",
        ServerMessage::Batch { .. } => "batch",
    }
}
