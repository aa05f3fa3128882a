//! The write-behind persister: every durable client write — comments from
//! sockets and REST, reactions — is queued here, written in order (runs of
//! comments in batches: one multi-row INSERT per flush), and only once
//! committed is it broadcast and acknowledged. A failed flush tells every
//! waiting sender; nothing is acknowledged that is not stored. Changes to
//! comments (edits, deletions, resolution, reactions) take the same queue,
//! so a socket's read loop never waits on the store, and a client's
//! commands are applied in the order it sent them.
//!
//! Flushing is driven by the queue, not a timer: the task wakes on the first
//! job, takes whatever else is already queued (up to the batch cap) and
//! writes it. At rest a comment waits for no one; under load batches grow.
//!
//! One client's row never fails another's: when the database refuses the
//! data of a batch (not when it is unreachable), the batch is split in two
//! and each half written again, until the refused rows stand alone — they
//! alone are told "Invalid comment data"; the rest are stored in order.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vridge_protocol::{Ack, CommentAck, DecodeError, ServerMessage};

use crate::broker::Broker;
use crate::metrics::Metrics;
use crate::outbound::Outbox;
use crate::store::{
    ChangeError, ChangeOutcome, ChangeRequest, CommentRequest, Store, StoredComment,
};

/// Jobs queued before submitters wait.
const QUEUE: usize = 8192;

/// What the client is told when its comment could not be stored; it may
/// retry with the same `client_msg_id`.
pub const STORE_FAILED: &str = "Comment could not be stored, please retry";

/// What the client is told when its reaction could not be stored.
pub const REACTION_FAILED: &str = "Reaction could not be stored, please retry";

/// What the client is told when a change to a comment could not be stored.
pub const CHANGE_FAILED: &str = "Change could not be stored, please retry";

/// What the client is told when `command` (a change to a comment) could
/// not be queued or stored; it may retry with the same `client_msg_id`.
pub fn failed_message(command: &str) -> &'static str {
    if command.starts_with("reaction") {
        REACTION_FAILED
    } else {
        CHANGE_FAILED
    }
}

/// Why a comment was not stored.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PersistError {
    #[error("the persister has stopped")]
    Stopped,
    #[error("{STORE_FAILED}")]
    Store,
    /// The database refused this comment's data (the rest of its batch was
    /// stored); retrying it unchanged fails again.
    #[error("Invalid comment data")]
    Rejected,
}

/// Where the outcome of a job goes.
#[derive(Debug)]
pub enum Reply {
    /// A socket: an acknowledgement or an error frame into its queue.
    Socket {
        outbox: Outbox,
        client_msg_id: Option<String>,
    },
    /// A waiting caller (REST).
    Waiter(oneshot::Sender<Result<StoredComment, PersistError>>),
}

/// One comment to store.
#[derive(Debug)]
pub struct PersistJob {
    pub request: CommentRequest,
    pub reply: Reply,
}

/// One change to a comment: whether the actor may make it is decided when
/// it is written, against the comment as stored.
#[derive(Debug)]
pub struct ChangeJob {
    pub request: ChangeRequest,
    /// The command's `type`, for its acknowledgement.
    pub command: &'static str,
    pub client_msg_id: Option<String>,
    /// Whether the sender is sent an `ack` (see [`super::Command::acked`]).
    pub ack: bool,
    /// Where the acknowledgement or error goes; the event itself is
    /// broadcast to the room.
    pub reply: Outbox,
}

/// What the persister's queue holds, in the order it was taken.
#[derive(Debug)]
enum Job {
    Comment(PersistJob),
    Change(ChangeJob),
}

/// Handle to the persister task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Persister {
    tx: mpsc::Sender<Job>,
}

impl Persister {
    /// Spawns the task. It stops taking jobs when `shutdown` fires, writes
    /// every job already queued, then ends (await the returned handle).
    pub fn spawn(
        store: Store,
        broker: Broker,
        metrics: Arc<Metrics>,
        max_batch: usize,
        shutdown: CancellationToken,
    ) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = Task {
            store,
            broker,
            metrics,
            max_batch: max_batch.max(1),
        };
        let handle = tokio::spawn(task.run(rx, shutdown));
        (Self { tx }, handle)
    }

    /// Queues a comment; waits only while the queue is full.
    pub async fn submit(&self, job: PersistJob) -> Result<(), PersistError> {
        self.tx
            .send(Job::Comment(job))
            .await
            .map_err(|_| PersistError::Stopped)
    }

    /// Queues a change to a comment; waits only while the queue is full.
    pub async fn submit_change(&self, job: ChangeJob) -> Result<(), PersistError> {
        self.tx
            .send(Job::Change(job))
            .await
            .map_err(|_| PersistError::Stopped)
    }

    /// Stores one comment and waits for the outcome (REST).
    pub async fn store(&self, request: CommentRequest) -> Result<StoredComment, PersistError> {
        let (tx, rx) = oneshot::channel();
        self.submit(PersistJob {
            request,
            reply: Reply::Waiter(tx),
        })
        .await?;
        rx.await.map_err(|_| PersistError::Stopped)?
    }
}

struct Task {
    store: Store,
    broker: Broker,
    metrics: Arc<Metrics>,
    max_batch: usize,
}

impl Task {
    async fn run(self, mut rx: mpsc::Receiver<Job>, shutdown: CancellationToken) {
        loop {
            let first = tokio::select! {
                biased;
                job = rx.recv() => job,
                () = shutdown.cancelled() => None,
            };
            let Some(first) = first else { break };
            self.write(first, &mut rx).await;
        }
        rx.close();
        while let Some(first) = rx.recv().await {
            self.write(first, &mut rx).await;
        }
        tracing::info!("persister flushed and stopped");
    }

    /// Writes `first` and whatever else is already queued, in queue order:
    /// each run of comments (up to the batch cap) as one batch, each
    /// reaction on its own.
    async fn write(&self, first: Job, rx: &mut mpsc::Receiver<Job>) {
        let mut next = Some(first);
        let mut written = 0;
        while let Some(job) = next.take() {
            match job {
                Job::Change(change) => {
                    self.change(change).await;
                    written += 1;
                }
                Job::Comment(comment) => {
                    let mut batch = vec![comment];
                    while batch.len() < self.max_batch {
                        match rx.try_recv() {
                            Ok(Job::Comment(c)) => batch.push(c),
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    written += batch.len();
                    self.flush(batch).await;
                }
            }
            // One wake writes at most a batch's worth; the rest waits its
            // turn behind the shutdown check of `run`.
            if next.is_none() && written < self.max_batch {
                next = rx.try_recv().ok();
            }
        }
    }

    /// Applies one change; acknowledges it to its sender (or says why
    /// not), then broadcasts the event it made.
    async fn change(&self, job: ChangeJob) {
        let ChangeJob {
            request,
            command,
            client_msg_id,
            ack,
            reply,
        } = job;
        let reaction = command.starts_with("reaction");
        let outcome = self.store.change_comment(&request).await;
        let (seq, duplicate, broadcast) = match outcome {
            Ok(ChangeOutcome::Applied(msg)) => (msg.seq(), false, Some(*msg)),
            Ok(ChangeOutcome::Unchanged) => (None, false, None),
            Ok(ChangeOutcome::Duplicate(seq)) => (Some(seq), true, None),
            Err(e) => {
                let message = match e {
                    ChangeError::NotFound if reaction => DecodeError::InvalidReaction.to_string(),
                    ChangeError::NotFound => DecodeError::InvalidComment.to_string(),
                    ChangeError::Forbidden => "Permission denied".to_owned(),
                    ChangeError::Store(e) => {
                        tracing::error!(error = %e, command, "storing a change failed");
                        failed_message(command).to_owned()
                    }
                };
                self.metrics.messages_out("error", 1);
                reply.offer_message(&ServerMessage::Error {
                    message,
                    client_msg_id,
                });
                return;
            }
        };
        if ack {
            self.metrics.messages_out("ack", 1);
            reply.offer_message(&ServerMessage::Ack(Ack {
                command: command.to_owned(),
                client_msg_id,
                seq,
                duplicate,
            }));
        }
        if let Some(msg) = broadcast {
            self.broker.publish(request.project, msg).await;
        }
    }

    /// Writes `batch` in order. A batch whose data the database refused is
    /// split and its halves written again (first half first, so ids keep
    /// the queue's order), down to single rows; a batch that failed for any
    /// other reason (the database is unreachable) fails as a whole.
    async fn flush(&self, batch: Vec<PersistJob>) {
        let mut chunks = VecDeque::from([batch]);
        while let Some(mut chunk) = chunks.pop_front() {
            let (requests, replies): (Vec<CommentRequest>, Vec<Reply>) =
                chunk.drain(..).map(|j| (j.request, j.reply)).unzip();
            let started = Instant::now();
            let result = self.store.insert_comments(&requests).await;
            self.metrics
                .persist_seconds
                .observe(started.elapsed().as_secs_f64());
            self.metrics.persist_rows.observe(requests.len() as f64);
            match result {
                Ok(outcomes) => self.stored(outcomes, replies).await,
                Err(e) if e.is_refused_data() && requests.len() > 1 => {
                    tracing::warn!(error = %e, rows = requests.len(), "batch refused; splitting it");
                    let mut jobs: Vec<PersistJob> = requests
                        .into_iter()
                        .zip(replies)
                        .map(|(request, reply)| PersistJob { request, reply })
                        .collect();
                    let second = jobs.split_off(jobs.len() / 2);
                    chunks.push_front(second);
                    chunks.push_front(jobs);
                }
                Err(e) => {
                    self.metrics
                        .persist_failures
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let outcome = if e.is_refused_data() {
                        tracing::warn!(error = %e, "a comment's data was refused by the store");
                        PersistError::Rejected
                    } else {
                        tracing::error!(error = %e, rows = requests.len(), "persister flush failed");
                        PersistError::Store
                    };
                    for reply in replies {
                        self.reply(reply, Err(outcome.clone()));
                    }
                }
            }
        }
    }

    /// Answers every request, then broadcasts the newly stored comments.
    /// The acknowledgement is queued to the author's socket before the
    /// broadcast reaches its room, so an author always reads its ack (with
    /// the stored comment and its `client_msg_id`) before the `comment`
    /// event of the same id, and can match its pending comment by id alone.
    async fn stored(&self, outcomes: Vec<StoredComment>, replies: Vec<Reply>) {
        for (outcome, reply) in outcomes.into_iter().zip(replies) {
            let broadcast = (!outcome.duplicate).then(|| ServerMessage::Comment {
                user_id: outcome.comment.user_id,
                comment: outcome.comment.clone(),
                event: outcome.event.clone(),
            });
            let project = outcome.comment.project_id;
            self.reply(reply, Ok(outcome));
            if let Some(msg) = broadcast {
                self.broker.publish(project, msg).await;
            }
        }
    }

    fn reply(&self, reply: Reply, outcome: Result<StoredComment, PersistError>) {
        match reply {
            Reply::Waiter(tx) => {
                let _ = tx.send(outcome);
            }
            Reply::Socket {
                outbox,
                client_msg_id,
            } => {
                let msg = match outcome {
                    Ok(stored) => {
                        self.metrics.messages_out("comment_ack", 1);
                        ServerMessage::CommentAck(CommentAck {
                            client_msg_id,
                            comment_id: stored.comment.id,
                            duplicate: stored.duplicate,
                            comment: stored.comment,
                        })
                    }
                    Err(e) => {
                        self.metrics.messages_out("error", 1);
                        ServerMessage::Error {
                            message: e.to_string(),
                            client_msg_id,
                        }
                    }
                };
                outbox.offer_message(&msg);
            }
        }
    }
}
