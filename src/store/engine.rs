//! The batched statements whose best form differs by engine: the locks and
//! event numbers of a write (a comment batch's own statement is in
//! [`comment_batch`](super::comment_batch)), and the newest comments of a
//! batch of connects.
//!
//! A persister batch touches many projects at once: their write-order
//! locks, their event numbers and the events themselves (other writes touch
//! one project). On PostgreSQL each is one statement of fixed text
//! over arrays (`unnest`), so it is prepared and planned once per
//! connection; built as `UNION ALL` of one arm per project its text would
//! change with the batch, and a fresh statement to parse and plan on every
//! flush showed in the fan-out's tail latency. SQLite has no arrays, but it
//! runs in-process, so there the `UNION ALL` forms stay.

use std::collections::HashMap;

use sqlx::{PgConnection, QueryBuilder, Sqlite, SqliteConnection};
use vridge_protocol::{ProjectId, Seq};

use super::StoreError;
use super::events::{NewEvent, number, per_project};
use super::rows::{CommentRow, comment_columns};

/// A comment row with its project's `last_seq`, read by the same statement.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct SeqCommentRow {
    #[sqlx(flatten)]
    pub comment: CommentRow,
    pub project_seq: i64,
}

/// The read every connecting socket's `initial_state` makes, batched: each
/// project's `limit` newest comments, each row with the project's
/// `last_seq` from the same statement (one snapshot). Projects without
/// comments yield no row.
pub(crate) trait NewestRead {
    async fn newest_with_seq(
        &mut self,
        projects: &[ProjectId],
        limit: u32,
    ) -> Result<Vec<SeqCommentRow>, sqlx::Error>;
}

impl NewestRead for PgConnection {
    async fn newest_with_seq(
        &mut self,
        projects: &[ProjectId],
        limit: u32,
    ) -> Result<Vec<SeqCommentRow>, sqlx::Error> {
        sqlx::query_as(concat!(
            "SELECT newest.*, p.last_seq AS project_seq FROM unnest($1::bigint[]) AS b(pid) \
             JOIN projects p ON p.id = b.pid \
             CROSS JOIN LATERAL (SELECT ",
            comment_columns!(),
            " FROM comments \
             WHERE comments.project_id = b.pid ORDER BY id DESC LIMIT $2) AS newest"
        ))
        .bind(projects)
        .bind(i64::from(limit))
        .fetch_all(self)
        .await
    }
}

impl NewestRead for SqliteConnection {
    async fn newest_with_seq(
        &mut self,
        projects: &[ProjectId],
        limit: u32,
    ) -> Result<Vec<SeqCommentRow>, sqlx::Error> {
        let mut query = QueryBuilder::new("");
        push_union_all(
            &mut query,
            projects.iter().enumerate(),
            |arm, (i, project)| {
                arm.push(concat!(
                "SELECT * FROM (SELECT ",
                comment_columns!(),
                " FROM comments WHERE project_id = "
            ))
            .push_bind(*project)
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(limit))
            .push(format_args!(") AS newest_{i} CROSS JOIN (SELECT last_seq AS project_seq FROM projects WHERE id = "))
            .push_bind(*project)
            .push(format_args!(") AS seq_{i}"));
            },
        );
        query.build_query_as().fetch_all(self).await
    }
}

/// The per-engine statements of a comment batch, on one connection (a
/// transaction's).
pub(crate) trait BatchStatements {
    /// Takes the write-order lock of every project (ascending, so two
    /// batches never deadlock); SQLite has one writer and needs none.
    async fn lock_projects(&mut self, projects: &[ProjectId]) -> Result<(), sqlx::Error>;

    /// Numbers `events` (bumping their projects' `last_seq`) and writes
    /// them; returns their numbers, in order.
    async fn append(&mut self, events: &[NewEvent<'_>], now: i64) -> Result<Vec<Seq>, StoreError>;
}

impl BatchStatements for PgConnection {
    async fn lock_projects(&mut self, projects: &[ProjectId]) -> Result<(), sqlx::Error> {
        // The locks are taken as the sorted rows are produced.
        sqlx::query(
            "SELECT pg_advisory_xact_lock(pid) FROM \
             (SELECT pid FROM unnest($1::bigint[]) AS batch(pid) ORDER BY pid) AS sorted",
        )
        .bind(projects)
        .execute(self)
        .await?;
        Ok(())
    }

    /// One statement: the bump and the insert as a data-modifying CTE, the
    /// numbers assigned in the events' order within each project (as
    /// [`number`] assigns them, which recovers them from each project's
    /// newest number).
    async fn append(&mut self, events: &[NewEvent<'_>], now: i64) -> Result<Vec<Seq>, StoreError> {
        let project: Vec<i64> = events.iter().map(|e| e.project).collect();
        let kind: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        let actor: Vec<i64> = events.iter().map(|e| e.actor).collect();
        let comment: Vec<Option<i64>> = events.iter().map(|e| e.comment).collect();
        let feedback: Vec<Option<i64>> = events.iter().map(|e| e.feedback).collect();
        let detail: Vec<Option<&str>> = events.iter().map(|e| e.detail).collect();
        let key: Vec<Option<&str>> = events.iter().map(|e| e.key).collect();
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "WITH e AS (SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], \
             $5::bigint[], $6::text[], $8::text[]) WITH ORDINALITY AS e(p, k, a, c, f, d, i, ord)), \
             b AS (UPDATE projects SET last_seq = last_seq + n.n \
             FROM (SELECT p, COUNT(*) AS n FROM e GROUP BY p) AS n WHERE projects.id = n.p \
             RETURNING projects.id, projects.last_seq, n.n) \
             INSERT INTO project_events (project_id, seq, kind, actor_id, created_at, comment_id, \
             feedback_id, detail, idempotency_key) \
             SELECT e.p, b.last_seq - b.n + ROW_NUMBER() OVER (PARTITION BY e.p ORDER BY e.ord), \
             e.k, e.a, $7, e.c, e.f, e.d, e.i FROM e JOIN b ON b.id = e.p \
             RETURNING project_id, seq",
        )
        .bind(project)
        .bind(kind)
        .bind(actor)
        .bind(comment)
        .bind(feedback)
        .bind(detail)
        .bind(now)
        .bind(key)
        .fetch_all(self)
        .await
        .map_err(StoreError::from_write)?;
        let mut last: HashMap<ProjectId, Seq> = HashMap::new();
        for (project, seq) in rows {
            let newest = last.entry(project).or_insert(seq);
            *newest = (*newest).max(seq);
        }
        number(events, &per_project(events), &last)
    }
}

impl BatchStatements for SqliteConnection {
    async fn lock_projects(&mut self, _projects: &[ProjectId]) -> Result<(), sqlx::Error> {
        Ok(())
    }

    /// The bump, then the insert: two statements, in-process.
    async fn append(&mut self, events: &[NewEvent<'_>], now: i64) -> Result<Vec<Seq>, StoreError> {
        let counts = per_project(events);
        let last = sqlite_bump_seqs(self, &counts).await?;
        let seqs = number(events, &counts, &last)?;
        sqlite_insert_events(self, events, &seqs, now)
            .await
            .map_err(StoreError::from_write)?;
        Ok(seqs)
    }
}

/// Adds `n` to each project's `last_seq`; returns the new values.
async fn sqlite_bump_seqs(
    conn: &mut SqliteConnection,
    counts: &[(ProjectId, i64)],
) -> Result<HashMap<ProjectId, Seq>, sqlx::Error> {
    let mut bump = sqlite_add_counts("projects", "last_seq", counts);
    bump.push(" RETURNING id, last_seq");
    let rows: Vec<(i64, i64)> = bump.build_query_as().fetch_all(conn).await?;
    Ok(rows.into_iter().collect())
}

/// Pushes one arm per item, joined by `UNION ALL`: SQLite's form of one
/// statement over many keys (it has no arrays).
pub(super) fn push_union_all<T>(
    query: &mut QueryBuilder<Sqlite>,
    items: impl IntoIterator<Item = T>,
    mut arm: impl FnMut(&mut QueryBuilder<Sqlite>, T),
) {
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            query.push(" UNION ALL ");
        }
        arm(query, item);
    }
}

/// `UPDATE table SET column = column + n` for each `(id, n)` of `counts`
/// (not empty), in one statement: SQLite has no arrays, so the pairs are
/// one `UNION ALL` arm each. `table` and `column` are the caller's
/// constants, never input.
pub(super) fn sqlite_add_counts(
    table: &'static str,
    column: &'static str,
    counts: &[(i64, i64)],
) -> QueryBuilder<Sqlite> {
    let mut update = QueryBuilder::new(format!(
        "UPDATE {table} SET {column} = {column} + bumps.n FROM ("
    ));
    push_union_all(&mut update, counts, |arm, (id, n)| {
        arm.push("SELECT ")
            .push_bind(*id)
            .push(" AS id, ")
            .push_bind(*n)
            .push(" AS n");
    });
    update.push(format!(") AS bumps WHERE {table}.id = bumps.id"));
    update
}

/// Writes the events, numbered `seqs`, at `now`.
async fn sqlite_insert_events(
    conn: &mut SqliteConnection,
    events: &[NewEvent<'_>],
    seqs: &[Seq],
    now: i64,
) -> Result<(), sqlx::Error> {
    let mut insert = QueryBuilder::new(
        "INSERT INTO project_events (project_id, seq, kind, actor_id, created_at, comment_id, \
             feedback_id, detail, idempotency_key) ",
    );
    insert.push_values(events.iter().zip(seqs), |mut row, (e, seq)| {
        row.push_bind(e.project)
            .push_bind(*seq)
            .push_bind(e.kind.as_str())
            .push_bind(e.actor)
            .push_bind(now)
            .push_bind(e.comment)
            .push_bind(e.feedback)
            .push_bind(e.detail)
            .push_bind(e.key);
    });
    insert.build().execute(conn).await?;
    Ok(())
}

/// Appends `$events` (a `&[NewEvent]`, not empty, of any projects) to their
/// projects' logs inside the transaction `$tx`, and evaluates to their
/// [`EventMeta`]s in order; a project's events are numbered in slice order.
/// One statement on PostgreSQL, two on SQLite, whatever the number of
/// projects (see [`BatchStatements::append`]): the `last_seq` bumps and the
/// events. A project that
/// does not exist fails the call with [`StoreError::NotFound`].
///
/// The UPDATE takes the row lock of every project it bumps. A transaction
/// bumping several projects (a comment batch) takes them in no particular
/// order, which is deadlock-free only because every such transaction first
/// takes the projects' advisory locks in ascending order
/// ([`Store::insert_comments`]); every other writer bumps one project.
///
/// A macro rather than a function because the body is compiled once per
/// engine inside [`on_pool!`], like every query of the store.
macro_rules! append_events {
    ($tx:expr, $events:expr, $now:expr) => {{
        use $crate::store::engine::BatchStatements as _;
        let events: &[$crate::store::events::NewEvent<'_>] = $events;
        let seqs = (&mut *$tx).append(events, $now).await?;
        events
            .iter()
            .zip(seqs)
            .map(|(e, seq)| $crate::store::events::meta(seq, e.actor, $crate::time::rfc3339($now)))
            .collect::<Vec<_>>()
    }};
}
pub(crate) use append_events;
