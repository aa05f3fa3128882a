//! The REST writes that announce themselves to the project's sockets:
//! stored with their event in one transaction, then published, so REST
//! handlers never build events or reach the broker themselves.

use vridge_protocol::{Feedback, FeedbackId, ServerMessage, UserId};

use super::Hub;
use crate::store::{NewFeedback, StoreError};

impl Hub {
    /// Creates a feedback item; the project's sockets get
    /// `feedback_created`.
    pub async fn create_feedback(&self, new: &NewFeedback<'_>) -> Result<Feedback, StoreError> {
        let (feedback, event) = self.inner.store.create_feedback(new).await?;
        let msg = ServerMessage::FeedbackCreated {
            feedback: feedback.clone(),
            event: Some(event),
        };
        self.inner.broker.publish(new.project_id, msg).await;
        Ok(feedback)
    }

    /// Changes a feedback item's status and/or priority; the project's
    /// sockets get `status_changed`. `None` when there is no such item.
    pub async fn update_feedback(
        &self,
        feedback: FeedbackId,
        actor: UserId,
        status: Option<&str>,
        priority: Option<&str>,
    ) -> Result<Option<Feedback>, StoreError> {
        let store = &self.inner.store;
        let Some((item, event)) = store
            .update_feedback(feedback, actor, status, priority)
            .await?
        else {
            return Ok(None);
        };
        let msg = ServerMessage::StatusChanged {
            feedback_id: item.id,
            status: item.status.clone(),
            priority: item.priority.clone(),
            user_id: actor,
            event: Some(event),
        };
        self.inner.broker.publish(item.project_id, msg).await;
        Ok(Some(item))
    }
}
