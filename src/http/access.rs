//! Who may do what to a project. A user who is not a member of a project is
//! answered 404, exactly as for a project that does not exist, so that
//! project ids cannot be probed; a member whose role does not allow an
//! action is answered 403.

use vridge_protocol::{FeedbackId, ProjectId, UserId};

use super::ApiState;
use super::error::ApiError;
use crate::domain::Role;

pub const NO_PROJECT: &str = "project not found";
pub const NO_FEEDBACK: &str = "feedback item not found";

/// What a member's role must allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Create,
    Update,
    Manage,
}

impl Need {
    fn allows(self, role: Role) -> bool {
        match self {
            Need::Read => true,
            Need::Create => role.can_create(),
            Need::Update => role.can_update(),
            Need::Manage => role.can_manage(),
        }
    }
}

/// The user's role in the project, if it allows `need`.
pub async fn require(
    app: &ApiState,
    project: ProjectId,
    user: UserId,
    need: Need,
) -> Result<Role, ApiError> {
    let role = app
        .reads
        .member_role(project, user)
        .await?
        .ok_or(ApiError::NotFound(NO_PROJECT))?;
    if !need.allows(role) {
        return Err(ApiError::Forbidden(
            "your role in this project does not allow this",
        ));
    }
    Ok(role)
}

/// The project of a feedback item the user may act on with `need`.
pub async fn require_feedback(
    app: &ApiState,
    feedback: FeedbackId,
    user: UserId,
    need: Need,
) -> Result<(ProjectId, Role), ApiError> {
    let project = app
        .hub
        .feedback_project(feedback)
        .await?
        .ok_or(ApiError::NotFound(NO_FEEDBACK))?;
    let role = match require(app, project, user, need).await {
        Err(ApiError::NotFound(_)) => return Err(ApiError::NotFound(NO_FEEDBACK)),
        other => other?,
    };
    Ok((project, role))
}
