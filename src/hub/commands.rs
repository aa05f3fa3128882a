//! The client commands a socket sends, checked and routed: roles first,
//! then the input, then ownership; durable writes go to the persister
//! (acknowledged there after commit), typing straight to the broker.

use vridge_protocol::{DecodeError, NewComment, NewReaction, ProjectId, ServerMessage, UserId};

use super::Hub;
use super::persister::{PersistJob, REACTION_FAILED, ReactionJob, Reply, STORE_FAILED};
use crate::domain::{Emoji, IdempotencyKey, Role, ValidComment};
use crate::outbound::Outbox;
use crate::store::CommentRequest;

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
        let job = PersistJob {
            request: CommentRequest {
                project_id: author.project,
                user_id: author.user,
                comment,
                key,
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

    /// Queues a reaction for the persister, which checks its comment belongs
    /// to the project, stores it and broadcasts it (errors go to `reply`).
    pub async fn reaction_add(
        &self,
        author: Author,
        reaction: NewReaction,
        reply: &Outbox,
    ) -> Result<(), CommandError> {
        if !author.role.can_create() {
            return Err(CommandError::PermissionDenied);
        }
        let Ok(emoji) = Emoji::parse(&reaction.emoji) else {
            return Err(DecodeError::InvalidReaction.into());
        };
        let job = ReactionJob {
            project: author.project,
            user: author.user,
            comment: reaction.comment_id,
            emoji,
            reply: reply.clone(),
        };
        self.inner
            .persister
            .submit_reaction(job)
            .await
            .map_err(|_| CommandError::ReactionFailed)
    }
}
