//! Upgrading a store that holds data: a database written by the schema
//! before the event log (migrations 1–3) is migrated by the server on
//! connect, on both engines, without losing or changing a row. On SQLite
//! the upgrade rebuilds the feedback table (SQLite cannot widen a CHECK
//! constraint), which must keep every id, every comment's link to its
//! feedback item, and the id sequence.

mod common;

use common::services::TestDatabase;
use sqlx::Connection;
use sqlx::migrate::Migrator;
use vridge_realtime::domain::Role;
use vridge_realtime::store::{NewFeedback, Store};

/// The schema before the event log.
const BEFORE_LOG: i64 = 3;

/// Rows written with the old schema: two users, a project, two feedback
/// items (the second resolved), three comments and a reaction.
const OLD_ROWS: &str = "
INSERT INTO users (email, username, password_hash, created_at) VALUES
    ('o@old.test', 'o', NULL, 1), ('e@old.test', 'e', NULL, 1);
INSERT INTO projects (name, description, owner_id, created_at, updated_at) VALUES ('Old', '', 1, 1, 1);
INSERT INTO project_members (project_id, user_id, role, created_at) VALUES (1, 1, 'owner', 1), (1, 2, 'editor', 1);
INSERT INTO feedback (project_id, title, status, priority, created_by, created_at, updated_at) VALUES
    (1, 'Intro', 'open', 'low', 1, 1, 1), (1, 'Outro', 'resolved', 'high', 1, 2, 2);
INSERT INTO comments (project_id, feedback_id, user_id, text, idempotency_key, created_at, prev_id) VALUES
    (1, 2, 2, 'first', 'k1', 3, NULL), (1, 2, 1, 'second', 'k2', 4, 1), (1, 1, 2, 'third', 'k3', 5, 2);
INSERT INTO reactions (comment_id, user_id, emoji, created_at) VALUES (2, 2, 'x', 6);
";

/// Writes the old schema and rows on a connection of either engine.
macro_rules! old_schema {
    ($conn:ty, $url:expr, $migrations:expr) => {{
        let migrator = Migrator::new(std::path::Path::new($migrations))
            .await
            .expect("migrations");
        let mut conn = <$conn>::connect($url).await.expect("connect");
        migrator
            .run_to(BEFORE_LOG, &mut conn)
            .await
            .expect("old schema");
        sqlx::raw_sql(OLD_ROWS)
            .execute(&mut conn)
            .await
            .expect("old rows");
        conn.close().await.expect("close");
    }};
}

async fn every_row_survives_the_upgrade(store: &Store) {
    let (project, owner, editor) = (1, 1, 2);
    assert_eq!(
        store.member_role(project, editor).await.unwrap(),
        Some(Role::Editor)
    );
    let intro = store.feedback_by_id(1).await.unwrap().expect("feedback 1");
    let outro = store.feedback_by_id(2).await.unwrap().expect("feedback 2");
    assert_eq!(
        (intro.title.as_str(), intro.status.as_str()),
        ("Intro", "open")
    );
    assert_eq!(
        (
            outro.title.as_str(),
            outro.status.as_str(),
            outro.priority.as_str()
        ),
        ("Outro", "resolved", "high")
    );
    let comments = store.comments_since(project, 0, 10).await.unwrap();
    let rows: Vec<(i64, i64, &str, Option<i64>)> = comments
        .iter()
        .map(|c| (c.id, c.feedback_id, c.text.as_str(), c.prev_id))
        .collect();
    assert_eq!(
        rows,
        vec![
            (1, 2, "first", None),
            (2, 2, "second", Some(1)),
            (3, 1, "third", Some(2))
        ]
    );
    let (counted, _) = store.comments_since_with_seq(project, 0, 10).await.unwrap();
    let reactions: Vec<(&str, u32)> = counted[1]
        .reactions
        .iter()
        .map(|r| (r.emoji.as_str(), r.count))
        .collect();
    assert_eq!(
        reactions,
        vec![("x", 1)],
        "counts of older reactions are kept on the row"
    );
    // The log starts empty at the upgrade; new writes are its first events
    // and take fresh ids after the old ones; the new status is accepted.
    assert_eq!(store.last_seq(project).await.unwrap(), Some(0));
    let (created, event) = store
        .create_feedback(&NewFeedback {
            project_id: project,
            created_by: owner,
            title: "Credits",
            priority: "medium",
            timestamp: None,
            video_url: None,
        })
        .await
        .unwrap();
    assert_eq!((created.id, event.seq), (3, 1));
    let (closed, _) = store
        .update_feedback(2, editor, Some("closed"), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(closed.status, "closed");
}

#[tokio::test]
async fn a_sqlite_store_from_before_the_log_is_upgraded_with_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
    old_schema!(sqlx::SqliteConnection, &url, "migrations/sqlite");
    let store = Store::connect(&url, 2)
        .await
        .expect("the server upgrades the store");
    every_row_survives_the_upgrade(&store).await;
    // The rebuilt table is still the one comments refer to.
    let Store::Sqlite(pool) = &store else {
        unreachable!()
    };
    let broken: Vec<(String, i64, String, i64)> = sqlx::query_as("PRAGMA foreign_key_check")
        .fetch_all(pool)
        .await
        .unwrap();
    assert!(broken.is_empty(), "foreign keys broken: {broken:?}");
    let enforced: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(
        enforced, 1,
        "foreign keys are enforced again after the upgrade"
    );
}

#[tokio::test]
async fn a_postgres_store_from_before_the_log_is_upgraded_with_every_row() {
    let db = TestDatabase::create().await;
    old_schema!(sqlx::PgConnection, &db.url, "migrations/postgres");
    let store = Store::connect(&db.url, 2)
        .await
        .expect("the server upgrades the store");
    every_row_survives_the_upgrade(&store).await;
}
