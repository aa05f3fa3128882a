//! Rows as the database returns them, and their conversion to wire types.

use vridge_protocol::{Comment, Feedback, Reaction, ReactionCount};

use crate::time::rfc3339;

/// Column list matching [`CommentRow`], shared by every comment query. A
/// macro, not a const, so queries stay `&'static str` literals (`concat!`):
/// sqlx refuses SQL built at run time unless it is audited.
macro_rules! comment_columns {
    () => {
        "id, project_id, feedback_id, user_id, text, title, section, security, video_timestamp, idempotency_key, created_at, prev_id, \
         parent_id, timestamp_end, edited_at, deleted_at, resolved_at, resolved_by, reply_count, reaction_counts"
    };
}
pub(crate) use comment_columns;

/// A comment as stored. Read by position (see its `FromRow`), so every
/// query that reads one selects [`comment_columns`] first.
#[derive(Debug)]
pub struct CommentRow {
    pub id: i64,
    pub project_id: i64,
    pub feedback_id: i64,
    pub user_id: i64,
    pub text: String,
    pub title: Option<String>,
    pub section: Option<String>,
    pub security: Option<String>,
    pub video_timestamp: Option<f64>,
    pub idempotency_key: String,
    pub created_at: i64,
    /// The previous comment of the project; NULL for the first.
    pub prev_id: Option<i64>,
    pub parent_id: Option<i64>,
    pub timestamp_end: Option<f64>,
    pub edited_at: Option<i64>,
    pub deleted_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub resolved_by: Option<i64>,
    pub reply_count: i64,
    /// Reactions by emoji, as JSON (see the migration); NULL when none.
    pub reaction_counts: Option<String>,
}

/// Columns read by position, in [`comment_columns`]'s order, not by name: a
/// history page of 50 comments is 1,000 columns, and finding each by its
/// name (a hash and a compare per column) was about 6 % of a page's server
/// CPU. Extra columns may follow (a flattened row's own). Debug builds,
/// which the tests run, check the names, so a query that selects the
/// columns in another order fails its tests instead of swapping fields.
impl<'r, R> sqlx::FromRow<'r, R> for CommentRow
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    f64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        #[cfg(debug_assertions)]
        check_comment_columns(row)?;
        Ok(Self {
            id: row.try_get(0)?,
            project_id: row.try_get(1)?,
            feedback_id: row.try_get(2)?,
            user_id: row.try_get(3)?,
            text: row.try_get(4)?,
            title: row.try_get(5)?,
            section: row.try_get(6)?,
            security: row.try_get(7)?,
            video_timestamp: row.try_get(8)?,
            idempotency_key: row.try_get(9)?,
            created_at: row.try_get(10)?,
            prev_id: row.try_get(11)?,
            parent_id: row.try_get(12)?,
            timestamp_end: row.try_get(13)?,
            edited_at: row.try_get(14)?,
            deleted_at: row.try_get(15)?,
            resolved_at: row.try_get(16)?,
            resolved_by: row.try_get(17)?,
            reply_count: row.try_get(18)?,
            reaction_counts: row.try_get(19)?,
        })
    }
}

/// That `row` starts with [`comment_columns`], in order.
#[cfg(debug_assertions)]
fn check_comment_columns<R: sqlx::Row>(row: &R) -> Result<(), sqlx::Error> {
    use sqlx::Column as _;
    let columns = row.columns();
    for (i, want) in comment_columns!().split(',').map(str::trim).enumerate() {
        let got = columns.get(i).map(|c| c.name());
        if got != Some(want) {
            return Err(sqlx::Error::ColumnNotFound(format!(
                "comment column {i} is {got:?}, expected {want}"
            )));
        }
    }
    Ok(())
}

impl CommentRow {
    /// The comment as history and `initial_state` show it: with its reply
    /// and reaction counts.
    pub fn into_wire(self) -> Comment {
        let reply_count = u32::try_from(self.reply_count).unwrap_or(u32::MAX);
        let reactions = self
            .reaction_counts
            .as_deref()
            .and_then(|json| serde_json::from_str::<Vec<ReactionCount>>(json).ok())
            .unwrap_or_default();
        Comment {
            reply_count,
            reactions,
            ..self.into_event()
        }
    }

    /// The comment as an event carries it: without counts, which a client
    /// keeps from the events themselves (a replayed event never counts a
    /// reaction twice).
    pub fn into_event(self) -> Comment {
        Comment {
            id: self.id,
            project_id: self.project_id,
            feedback_id: self.feedback_id,
            user_id: self.user_id,
            text: self.text,
            title: self.title,
            section: self.section,
            security: self.security,
            timestamp: self.video_timestamp,
            created: rfc3339(self.created_at),
            prev_id: self.prev_id,
            parent_id: self.parent_id,
            timestamp_end: self.timestamp_end,
            edited_at: self.edited_at.map(rfc3339),
            deleted_at: self.deleted_at.map(rfc3339),
            resolved_at: self.resolved_at.map(rfc3339),
            resolved_by: self.resolved_by,
            reply_count: 0,
            reactions: Vec::new(),
        }
    }
}

/// Column list matching [`FeedbackRow`] (see [`comment_columns`]).
macro_rules! feedback_columns {
    () => {
        "id, project_id, title, status, priority, video_timestamp, video_url, created_by, created_at"
    };
}
pub(crate) use feedback_columns;

#[derive(Debug, sqlx::FromRow)]
pub struct FeedbackRow {
    pub id: i64,
    pub project_id: i64,
    pub title: String,
    pub status: String,
    pub priority: String,
    pub video_timestamp: Option<f64>,
    pub video_url: Option<String>,
    pub created_by: i64,
    pub created_at: i64,
}

impl FeedbackRow {
    pub fn into_wire(self) -> Feedback {
        Feedback {
            id: self.id,
            project_id: self.project_id,
            title: self.title,
            status: self.status,
            priority: self.priority,
            timestamp: self.video_timestamp,
            video_url: self.video_url,
            created_by: self.created_by,
            created: rfc3339(self.created_at),
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
pub struct ReactionRow {
    pub comment_id: i64,
    pub user_id: i64,
    pub emoji: String,
    pub created_at: i64,
}

impl ReactionRow {
    pub fn into_wire(self) -> Reaction {
        Reaction {
            comment_id: self.comment_id,
            user_id: self.user_id,
            emoji: self.emoji,
            created: rfc3339(self.created_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use sqlx::{Connection as _, SqliteConnection};

    use super::CommentRow;

    /// A row of every comment column, `title` and `section` in the given
    /// order, and a flattened row's extra column after them.
    fn select(title_then_section: bool) -> String {
        let middle = if title_then_section {
            "NULL AS title, NULL AS section"
        } else {
            "NULL AS section, NULL AS title"
        };
        format!(
            "SELECT 1 AS id, 2 AS project_id, 3 AS feedback_id, 4 AS user_id, 'hi' AS text, {middle}, \
             NULL AS security, 1.5 AS video_timestamp, 'k' AS idempotency_key, 5 AS created_at, \
             NULL AS prev_id, NULL AS parent_id, NULL AS timestamp_end, NULL AS edited_at, \
             NULL AS deleted_at, NULL AS resolved_at, NULL AS resolved_by, 7 AS reply_count, \
             NULL AS reaction_counts, 9 AS project_seq"
        )
    }

    #[tokio::test]
    async fn comment_rows_are_read_by_position_and_their_order_is_checked() {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        let row: CommentRow = sqlx::query_as(sqlx::AssertSqlSafe(select(true)))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(
            (row.id, row.user_id, row.text.as_str(), row.reply_count),
            (1, 4, "hi", 7)
        );
        assert_eq!(row.video_timestamp, Some(1.5));
        let swapped = sqlx::query_as::<_, CommentRow>(sqlx::AssertSqlSafe(select(false)))
            .fetch_one(&mut conn)
            .await;
        assert!(
            matches!(swapped, Err(sqlx::Error::ColumnNotFound(_))),
            "{swapped:?}"
        );
    }
}
