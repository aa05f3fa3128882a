//! `provision` writes the same rows on both engines: password-less users, the
//! first member of each project its owner and the others editors, one
//! feedback item per project. PostgreSQL comes from `TEST_DATABASE_URL`
//! (default: the standard local URL); each run uses a fresh database and the
//! test fails, never skips, when PostgreSQL is unreachable.

use std::time::Duration;

use vridge_realtime::auth::JwtKeys;
use vridge_realtime::provision::{ProvisionSpec, provision};
use vridge_realtime::store::Store;

fn spec() -> ProvisionSpec {
    ProvisionSpec {
        projects: 3,
        members: 4,
        token_ttl: Duration::from_secs(60),
    }
}

/// (users without a password, owner memberships, editor memberships, feedback items).
async fn census(store: &Store) -> (i64, i64, i64, i64) {
    macro_rules! count {
        ($pool:expr, $sql:literal) => {
            sqlx::query_scalar::<_, i64>($sql)
                .fetch_one($pool)
                .await
                .unwrap()
        };
    }
    match store {
        Store::Sqlite(p) => (
            count!(p, "SELECT COUNT(*) FROM users WHERE password_hash IS NULL"),
            count!(
                p,
                "SELECT COUNT(*) FROM project_members WHERE role = 'owner'"
            ),
            count!(
                p,
                "SELECT COUNT(*) FROM project_members WHERE role = 'editor'"
            ),
            count!(p, "SELECT COUNT(*) FROM feedback"),
        ),
        Store::Postgres(p) => (
            count!(p, "SELECT COUNT(*) FROM users WHERE password_hash IS NULL"),
            count!(
                p,
                "SELECT COUNT(*) FROM project_members WHERE role = 'owner'"
            ),
            count!(
                p,
                "SELECT COUNT(*) FROM project_members WHERE role = 'editor'"
            ),
            count!(p, "SELECT COUNT(*) FROM feedback"),
        ),
    }
}

async fn check(store: &Store) {
    let keys = JwtKeys::hs256(&[9u8; 32], Duration::from_secs(60));
    let users = provision(store, &keys, spec()).await.unwrap();
    assert_eq!(users.len(), 12);
    assert_eq!(census(store).await, (12, 3, 9, 3));
    // Owners come first, and every token names its user.
    for (i, user) in users.iter().enumerate() {
        assert_eq!(keys.verify_access(&user.token), Ok(user.user_id));
        let role = store
            .member_role(user.project_id, user.user_id)
            .await
            .unwrap();
        let expected = if i % 4 == 0 { "owner" } else { "editor" };
        assert_eq!(
            role.map(|r| r.as_str().to_owned()).as_deref(),
            Some(expected)
        );
    }
}

#[tokio::test]
async fn provisions_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("p.db").display());
    let store = Store::connect(&url, 2).await.unwrap();
    check(&store).await;
    store.close().await;
}

#[tokio::test]
async fn provisions_on_postgres() {
    let admin_url = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let admin = sqlx::PgPool::connect(&admin_url)
        .await
        .expect("PostgreSQL at TEST_DATABASE_URL must be reachable");
    let name = format!(
        "vridge_provision_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url.as_str(), |(b, _)| b);
    let store = Store::connect(&format!("{base}/{name}"), 2).await.unwrap();
    check(&store).await;
    store.close().await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
}
