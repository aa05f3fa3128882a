//! The client commands a socket sends, checked and routed: roles first,
//! then the input, then ownership; durable writes go to the persister
//! (acknowledged there after commit), typing straight to the broker.

use vridge_protocol::{
    CommentEdit, CommentId, DecodeError, NewComment, NewReaction, ProjectId, ServerMessage, UserId,
};

use super::Hub;
use super::persister::{
    CHANGE_FAILED, ChangeJob, PersistJob, REACTION_FAILED, Reply, STORE_FAILED, failed_message,
};
use crate::domain::{Emoji, IdempotencyKey, Role, ValidComment, ValidEdit};
use crate::outbound::Outbox;
use crate::store::{ChangeRequest, CommentChange, CommentRequest};

/// Who sends a command: a member of a project, with their role in it.
#[derive(Debug, Clone, Copy)]
pub struct Author {
    pub project: ProjectId,
    pub user: UserId,
    pub role: Role,
}

/// Why a command was refused; its text is what the client reads, in the
/// product's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("Permission denied")]
    PermissionDenied,
    /// The input is not valid (the product's wording for each kind).
    #[error(transparent)]
    Invalid(#[from] DecodeError),
    /// Not stored; the client may retry.
    #[error("{STORE_FAILED}")]
    StoreFailed,
    /// Not stored; the client may retry.
    #[error("{REACTION_FAILED}")]
    ReactionFailed,
    /// Not stored; the client may retry.
    #[error("{CHANGE_FAILED}")]
    ChangeFailed,
}

impl Hub {
    /// Queues a comment for the persister, which acknowledges it to `reply`
    /// once committed (or reports why not) and then broadcasts it.
    pub async fn comment_add(
        &self,
        author: Author,
        comment: NewComment,
        client_msg_id: Option<&str>,
        reply: &Outbox,
    ) -> Result<(), CommandError> {
        if !author.role.can_create() {
            return Err(CommandError::PermissionDenied);
        }
        let (Ok(comment), Ok(key)) = (
            ValidComment::parse(comment),
            IdempotencyKey::from_client(client_msg_id),
        ) else {
            return Err(DecodeError::InvalidComment.into());
        };
        match self.feedback_project(comment.inner().feedback_id).await {
            Ok(Some(p)) if p == author.project => {}
            Ok(_) => return Err(DecodeError::InvalidComment.into()),
            Err(e) => {
                tracing::error!(error = %e, "feedback lookup failed");
                return Err(CommandError::StoreFailed);
            }
        }
        let parent = self.thread_root(&comment).await?;
        let job = PersistJob {
            request: CommentRequest {
                project_id: author.project,
                user_id: author.user,
                comment,
                key,
                parent,
            },
            reply: Reply::Socket {
                outbox: reply.clone(),
                client_msg_id: client_msg_id.map(str::to_owned),
            },
        };
        self.inner
            .persister
            .submit(job)
            .await
            .map_err(|_| CommandError::StoreFailed)
    }

    /// Tells every other member that `author` is (or stopped) typing.
    pub async fn typing(&self, author: Author, is_typing: bool) -> Result<(), CommandError> {
        if !author.role.can_create() {
            return Err(CommandError::PermissionDenied);
        }
        let msg = ServerMessage::Typing {
            user_id: author.user,
            is_typing,
        };
        self.inner.broker.publish(author.project, msg).await;
        Ok(())
    }

    /// Queues a reaction (see [`Self::change`]), with no `client_msg_id`.
    pub async fn reaction_add(
        &self,
        author: Author,
        reaction: NewReaction,
        reply: &Outbox,
    ) -> Result<(), CommandError> {
        self.change(author, Command::React(reaction), None, reply)
            .await
    }

    /// The root a reply attaches to: the comment it answers, or that
    /// comment's own root (threads are one level deep). The comment answered
    /// must be of the same feedback item.
    pub async fn thread_root(
        &self,
        comment: &ValidComment,
    ) -> Result<Option<CommentId>, CommandError> {
        let raw = comment.inner();
        let Some(parent) = raw.parent_id else {
            return Ok(None);
        };
        match self.inner.store.comment_ref(parent).await {
            Ok(Some(at)) if at.feedback_id == raw.feedback_id => {
                Ok(Some(at.parent_id.unwrap_or(parent)))
            }
            Ok(_) => Err(DecodeError::InvalidComment.into()),
            Err(e) => {
                tracing::error!(error = %e, "parent comment lookup failed");
                Err(CommandError::StoreFailed)
            }
        }
    }

    /// Queues a change to a comment for the persister, which applies it,
    /// acknowledges it to `reply` (or says why not) and then broadcasts it.
    /// Roles are checked here; authorship, which needs the comment, when
    /// the change is written.
    pub async fn change(
        &self,
        author: Author,
        command: Command,
        client_msg_id: Option<&str>,
        reply: &Outbox,
    ) -> Result<(), CommandError> {
        let name = command.name();
        let invalid = command.invalid();
        let ack = command.acked(client_msg_id);
        let allowed = match &command {
            Command::React(_) | Command::Unreact(_) => author.role.can_create(),
            Command::Resolve(_) | Command::Reopen(_) => author.role.can_update(),
            // Authors edit and delete their own: whether this is theirs is
            // known once the comment is read.
            Command::Edit(_) | Command::Delete(_) => author.role.can_create(),
        };
        if !allowed {
            return Err(CommandError::PermissionDenied);
        }
        let key = IdempotencyKey::of_command(client_msg_id).map_err(|_| invalid.clone())?;
        let (comment, change) = match command {
            Command::Edit(edit) => {
                let id = edit.comment_id;
                let edit = ValidEdit::parse(edit).map_err(|_| invalid.clone())?;
                (id, CommentChange::Edit(edit))
            }
            Command::Delete(id) => (id, CommentChange::Delete),
            Command::Resolve(id) => (id, CommentChange::Resolve),
            Command::Reopen(id) => (id, CommentChange::Reopen),
            Command::React(r) => (
                r.comment_id,
                CommentChange::React(Emoji::parse(&r.emoji).map_err(|_| invalid.clone())?),
            ),
            Command::Unreact(r) => (
                r.comment_id,
                CommentChange::Unreact(Emoji::parse(&r.emoji).map_err(|_| invalid.clone())?),
            ),
        };
        let job = ChangeJob {
            request: ChangeRequest {
                project: author.project,
                actor: author.user,
                role: author.role,
                comment,
                change,
                key,
            },
            command: name,
            client_msg_id: client_msg_id.map(str::to_owned),
            ack,
            reply: reply.clone(),
        };
        self.inner
            .persister
            .submit_change(job)
            .await
            .map_err(|_| command_failed(name))
    }
}

/// A client command that changes a stored comment.
#[derive(Debug, Clone)]
pub enum Command {
    Edit(CommentEdit),
    Delete(CommentId),
    Resolve(CommentId),
    Reopen(CommentId),
    React(NewReaction),
    Unreact(NewReaction),
}

impl Command {
    /// The message `type` that carried it.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Edit(_) => "comment_edit",
            Command::Delete(_) => "comment_delete",
            Command::Resolve(_) => "comment_resolve",
            Command::Reopen(_) => "comment_reopen",
            Command::React(_) => "reaction_add",
            Command::Unreact(_) => "reaction_remove",
        }
    }

    /// Whether its sender gets an `ack` once it is committed: always, but
    /// for a `reaction_add` without `client_msg_id` — what clients before
    /// the event log send, and they were never acknowledged.
    pub fn acked(&self, client_msg_id: Option<&str>) -> bool {
        !matches!(self, Command::React(_)) || client_msg_id.is_some()
    }

    /// The product's wording for bad input to this command.
    fn invalid(&self) -> CommandError {
        match self {
            Command::React(_) | Command::Unreact(_) => DecodeError::InvalidReaction.into(),
            _ => DecodeError::InvalidComment.into(),
        }
    }
}

/// What the client is told when a command could not be queued.
fn command_failed(command: &str) -> CommandError {
    if failed_message(command) == REACTION_FAILED {
        CommandError::ReactionFailed
    } else {
        CommandError::ChangeFailed
    }
}
