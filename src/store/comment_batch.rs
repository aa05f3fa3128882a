//! The write of a batch's new comments, per engine, inside the caller's
//! transaction (which holds the batch's projects' write-order locks): each
//! comment not stored before is inserted, chained to its project's previous
//! comment (`prev_id`), counted on its thread's root (`reply_count`), and
//! recorded as its project's next event.
//!
//! On PostgreSQL all of it is one statement of fixed text over arrays. The
//! persister writes one batch at a time, so every round trip of a flush is
//! time each of its comments waits before delivery, and on a busy machine a
//! round trip also waits for the database's backend to be scheduled. With
//! the event log the flush had grown to four statements after the lock
//! (insert, predecessors, links, events; five with replies) and its time
//! from 1.6–1.8 to 3.0–3.4 ms, which the fan-out's median followed. One
//! statement also writes each comment row once, its link included, instead
//! of inserting it and then updating it.
//! SQLite runs in-process, where a statement costs no round trip, so there
//! the steps stay separate, simpler statements.

use std::collections::{BTreeMap, HashMap};

use sqlx::{PgConnection, QueryBuilder, SqliteConnection};
use vridge_protocol::{CommentId, ProjectId, UserId};

use super::StoreError;
use super::engine::{BatchStatements as _, push_union_all, sqlite_add_counts};
use super::events::{EventKind, NewEvent};
use super::rows::{CommentRow, comment_columns};
use crate::domain::{IdempotencyKey, ValidComment};

/// One comment to store. The feedback item's project has been checked, and
/// `parent` (for a reply) is a root comment of the same feedback item.
#[derive(Debug, Clone)]
pub struct CommentRequest {
    pub project_id: ProjectId,
    pub user_id: UserId,
    pub comment: ValidComment,
    pub key: IdempotencyKey,
    pub parent: Option<CommentId>,
}

/// A freshly stored comment and the number of the event that added it.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct NewCommentRow {
    #[sqlx(flatten)]
    pub comment: CommentRow,
    pub seq: i64,
}

pub(crate) trait InsertNewComments {
    /// Stores the first request of each (user, idempotency key) not stored
    /// before, in request order (ids increase with it), each linked to its
    /// project's previous comment, counted on its root when a reply, and
    /// numbered as one `comment` event of its project (numbers follow ids
    /// within a project). Returns the new rows, in no particular order;
    /// requests it left out are duplicates for the caller to look up.
    async fn insert_new_comments(
        &mut self,
        requests: &[CommentRequest],
        now: i64,
    ) -> Result<Vec<NewCommentRow>, StoreError>;
}

/// The PostgreSQL statement. Ids are drawn from the table's identity in
/// request order, after the caller's locks: every comment of the batch's
/// projects committed before has a smaller id and is visible to this
/// statement, so a project's newest id here is the first new comment's
/// predecessor, and the rest chain in id order. A request whose key another
/// transaction stored after this statement's snapshot is skipped by
/// `ON CONFLICT` after its id was drawn; `planned` tells the caller, which then re-reads
/// the links (see [`relink`]); only a key reused in another project, or a
/// writer that takes no lock, can get there. The counts, the `last_seq`
/// bumps and the events are driven by the rows actually inserted. The
/// `replies` CTE, which nothing reads, is run by PostgreSQL after the main
/// query, so a flush locks a project's row before a thread root's, as a
/// comment change does. PostgreSQL does not promise that order; were it
/// ever reversed, a deadlock it detects fails one transaction, whose
/// clients are told to retry. The explicit `nextval` needs `USAGE` on the
/// sequence (see README).
const PG_INSERT_NEW: &str = concat!(
    "WITH r AS (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], \
     $6::text[], $7::text[], $8::float8[], $9::text[], $10::bigint[], $11::float8[]) WITH ORDINALITY \
     AS r(project_id, feedback_id, user_id, text, title, section, security, video_timestamp, \
     idempotency_key, parent_id, timestamp_end, ord)), \
     fresh AS (SELECT DISTINCT ON (user_id, idempotency_key) * FROM r WHERE NOT EXISTS \
     (SELECT 1 FROM comments c WHERE c.user_id = r.user_id AND c.idempotency_key = r.idempotency_key) \
     ORDER BY user_id, idempotency_key, ord), \
     numbered AS (SELECT nextval(pg_get_serial_sequence('comments', 'id')) AS id, o.* \
     FROM (SELECT * FROM fresh ORDER BY ord) AS o), \
     linked AS (SELECT n.*, COALESCE(LAG(n.id) OVER (PARTITION BY n.project_id ORDER BY n.id), \
     (SELECT MAX(c.id) FROM comments c WHERE c.project_id = n.project_id)) AS prev_id FROM numbered n), \
     ins AS (INSERT INTO comments (id, project_id, feedback_id, user_id, text, title, section, security, \
     video_timestamp, idempotency_key, created_at, parent_id, timestamp_end, prev_id) OVERRIDING SYSTEM VALUE \
     SELECT id, project_id, feedback_id, user_id, text, title, section, security, video_timestamp, \
     idempotency_key, $12::bigint, parent_id, timestamp_end, prev_id FROM linked \
     ON CONFLICT (user_id, idempotency_key) DO NOTHING RETURNING ",
    comment_columns!(),
    "), \
     replies AS (UPDATE comments SET reply_count = reply_count + x.n \
     FROM (SELECT parent_id, COUNT(*) AS n FROM ins WHERE parent_id IS NOT NULL GROUP BY parent_id) AS x \
     WHERE comments.id = x.parent_id), \
     bumped AS (UPDATE projects SET last_seq = last_seq + x.n \
     FROM (SELECT project_id, COUNT(*) AS n FROM ins GROUP BY project_id) AS x \
     WHERE projects.id = x.project_id RETURNING projects.id, projects.last_seq, x.n), \
     events AS (INSERT INTO project_events (project_id, seq, kind, actor_id, created_at, comment_id, feedback_id) \
     SELECT ins.project_id, b.last_seq - b.n + ROW_NUMBER() OVER (PARTITION BY ins.project_id ORDER BY ins.id), \
     $13::text, ins.user_id, $12::bigint, ins.id, ins.feedback_id FROM ins JOIN bumped b ON b.id = ins.project_id \
     RETURNING comment_id, seq) \
     SELECT ins.*, events.seq, (SELECT COUNT(*) FROM linked) AS planned \
     FROM ins JOIN events ON events.comment_id = ins.id"
);

/// A row of [`PG_INSERT_NEW`].
#[derive(Debug, sqlx::FromRow)]
struct PlannedRow {
    #[sqlx(flatten)]
    new: NewCommentRow,
    /// How many rows the statement meant to insert.
    planned: i64,
}

impl InsertNewComments for PgConnection {
    async fn insert_new_comments(
        &mut self,
        requests: &[CommentRequest],
        now: i64,
    ) -> Result<Vec<NewCommentRow>, StoreError> {
        // One array per column, in request order.
        fn column<'a, T>(
            requests: &'a [CommentRequest],
            field: impl Fn(&'a CommentRequest) -> T,
        ) -> Vec<T> {
            requests.iter().map(field).collect()
        }
        let rows: Vec<PlannedRow> = sqlx::query_as(PG_INSERT_NEW)
            .bind(column(requests, |r| r.project_id))
            .bind(column(requests, |r| r.comment.inner().feedback_id))
            .bind(column(requests, |r| r.user_id))
            .bind(column(requests, |r| r.comment.inner().text.as_str()))
            .bind(column(requests, |r| r.comment.inner().title.as_deref()))
            .bind(column(requests, |r| r.comment.inner().section.as_deref()))
            .bind(column(requests, |r| r.comment.inner().security.as_deref()))
            .bind(column(requests, |r| r.comment.inner().timestamp))
            .bind(column(requests, |r| r.key.as_str()))
            .bind(column(requests, |r| r.parent))
            .bind(column(requests, |r| r.comment.inner().timestamp_end))
            .bind(now)
            .bind(EventKind::CommentAdded.as_str())
            .fetch_all(&mut *self)
            .await
            .map_err(StoreError::from_write)?;
        let planned = rows.first().map_or(0, |r| r.planned);
        let mut rows: Vec<NewCommentRow> = rows.into_iter().map(|r| r.new).collect();
        if i64::try_from(rows.len()).unwrap_or(i64::MAX) < planned {
            relink(self, &mut rows).await?;
        }
        Ok(rows)
    }
}

/// Sets the links of `rows` again from what was stored: a row the
/// statement meant to insert, and did not, may have been taken as a
/// successor's predecessor. Rare (a retry of the same key through another
/// node at the same moment), so a second statement is fine.
async fn relink(conn: &mut PgConnection, rows: &mut [NewCommentRow]) -> Result<(), StoreError> {
    let ids: Vec<i64> = rows.iter().map(|r| r.comment.id).collect();
    let links: HashMap<i64, Option<i64>> = sqlx::query_as::<_, (i64, Option<i64>)>(
        "UPDATE comments c SET prev_id = (SELECT MAX(p.id) FROM comments p \
         WHERE p.project_id = c.project_id AND p.id < c.id) WHERE c.id = ANY($1) RETURNING c.id, c.prev_id",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?
    .into_iter()
    .collect();
    for row in rows {
        row.comment.prev_id = links.get(&row.comment.id).copied().flatten();
    }
    Ok(())
}

impl InsertNewComments for SqliteConnection {
    /// One multi-row INSERT (`ON CONFLICT … DO NOTHING` leaves out the
    /// duplicates), then the links, the reply counts and the events, each a
    /// statement. The predecessor read follows the write so that it runs
    /// under SQLite's write lock (a read before the first write would see a
    /// snapshot another writer may since have moved past).
    async fn insert_new_comments(
        &mut self,
        requests: &[CommentRequest],
        now: i64,
    ) -> Result<Vec<NewCommentRow>, StoreError> {
        let mut insert = QueryBuilder::new(
            "INSERT INTO comments (project_id, feedback_id, user_id, text, title, section, security, \
             video_timestamp, idempotency_key, created_at, parent_id, timestamp_end) ",
        );
        insert.push_values(requests, |mut row, r| {
            let c = r.comment.inner();
            row.push_bind(r.project_id)
                .push_bind(c.feedback_id)
                .push_bind(r.user_id)
                .push_bind(c.text.as_str())
                .push_bind(c.title.as_deref())
                .push_bind(c.section.as_deref())
                .push_bind(c.security.as_deref())
                .push_bind(c.timestamp)
                .push_bind(r.key.as_str())
                .push_bind(now)
                .push_bind(r.parent)
                .push_bind(c.timestamp_end);
        });
        insert.push(" ON CONFLICT (user_id, idempotency_key) DO NOTHING RETURNING ");
        insert.push(comment_columns!());
        let mut inserted: Vec<CommentRow> = insert
            .build_query_as()
            .fetch_all(&mut *self)
            .await
            .map_err(StoreError::from_write)?;
        if inserted.is_empty() {
            return Ok(Vec::new());
        }
        let newest_before = sqlite_newest_before(self, &first_new_ids(&inserted)).await?;
        link_to_predecessors(&mut inserted, &newest_before);
        let mut link = QueryBuilder::new("UPDATE comments SET prev_id = CASE id");
        for row in &inserted {
            link.push(" WHEN ");
            link.push_bind(row.id);
            link.push(" THEN ");
            link.push_bind(row.prev_id);
        }
        link.push(" END WHERE id IN (");
        let mut ids = link.separated(", ");
        for row in &inserted {
            ids.push_bind(row.id);
        }
        link.push(")");
        link.build().execute(&mut *self).await?;

        let mut replies: BTreeMap<CommentId, i64> = BTreeMap::new();
        for row in &inserted {
            if let Some(parent) = row.parent_id {
                *replies.entry(parent).or_default() += 1;
            }
        }
        if !replies.is_empty() {
            let counts: Vec<(i64, i64)> = replies.into_iter().collect();
            sqlite_add_counts("comments", "reply_count", &counts)
                .build()
                .execute(&mut *self)
                .await?;
        }

        // Numbered in id order within each project (ids and numbers then
        // agree on the order).
        inserted.sort_unstable_by_key(|r| r.id);
        let events: Vec<NewEvent<'_>> = inserted
            .iter()
            .map(|r| NewEvent {
                project: r.project_id,
                kind: EventKind::CommentAdded,
                actor: r.user_id,
                comment: Some(r.id),
                feedback: Some(r.feedback_id),
                detail: None,
                key: None,
            })
            .collect();
        let seqs = self.append(&events, now).await?;
        Ok(inserted
            .into_iter()
            .zip(seqs)
            .map(|(comment, seq)| NewCommentRow { comment, seq })
            .collect())
    }
}

/// Each project's newest comment below the given id (`None`: none), one
/// `UNION ALL` arm per project.
async fn sqlite_newest_before(
    conn: &mut SqliteConnection,
    firsts: &[(ProjectId, CommentId)],
) -> Result<HashMap<ProjectId, Option<CommentId>>, sqlx::Error> {
    let mut query = QueryBuilder::new("");
    push_union_all(&mut query, firsts, |arm, (project, first)| {
        arm.push("SELECT ")
            .push_bind(*project)
            .push(" AS pid, (SELECT MAX(id) FROM comments WHERE project_id = ")
            .push_bind(*project)
            .push(" AND id < ")
            .push_bind(*first)
            .push(") AS newest");
    });
    let rows: Vec<(i64, Option<i64>)> = query.build_query_as().fetch_all(conn).await?;
    Ok(rows.into_iter().collect())
}

/// The smallest freshly inserted id of each project, in project order.
fn first_new_ids(inserted: &[CommentRow]) -> Vec<(ProjectId, CommentId)> {
    let mut first: HashMap<ProjectId, CommentId> = HashMap::new();
    for row in inserted {
        let id = first.entry(row.project_id).or_insert(row.id);
        *id = (*id).min(row.id);
    }
    let mut first: Vec<_> = first.into_iter().collect();
    first.sort_unstable();
    first
}

/// Sets `prev_id` of freshly inserted rows: each project's new rows chain,
/// in id order, from the project's newest id before the insert. Duplicates
/// are not among `inserted`, so they never become links.
fn link_to_predecessors(
    inserted: &mut [CommentRow],
    newest_before: &HashMap<ProjectId, Option<CommentId>>,
) {
    let mut order: Vec<usize> = (0..inserted.len()).collect();
    order.sort_unstable_by_key(|i| inserted[*i].id);
    let mut previous = newest_before.clone();
    for i in order {
        let row = &mut inserted[i];
        let prev = previous.entry(row.project_id).or_insert(None);
        row.prev_id = *prev;
        *prev = Some(row.id);
    }
}
