//! The store: every read and write of durable state, on SQLite (embedded
//! default) or PostgreSQL (production), chosen by the database URL.
//!
//! Queries are written once, with `$n` placeholders that both engines accept,
//! and run on whichever pool is configured through [`on_pool!`]; runtime
//! `query_as` with `FromRow` rows is used because sqlx's compile-time macros
//! cannot serve two databases from one crate.

mod accounts;
mod batched;
mod bulk;
mod changes;
mod coalesce;
mod comment_batch;
mod comments;
mod engine;
mod events;
mod feedback;
mod projects;
mod refresh_tokens;
mod rows;
mod users;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::pool::PoolOptions;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection as _, Database, Pool, Transaction};

pub use accounts::{NewFeedback, NewUser, Project, User};
pub use batched::BatchedReads;
pub use bulk::{BulkProject, ProvisionedProject};
pub use changes::{ChangeError, ChangeOutcome, ChangeRequest, CommentChange};
pub use comment_batch::CommentRequest;
pub use comments::{CommentRef, CommentVersion, Newest, StoredComment};
pub use events::EventPage;
pub use feedback::FeedbackStats;
pub use projects::{AddMember, Member, ProjectChanges, ProjectSummary, StatusFilter};
pub use refresh_tokens::RefreshUse;

/// Most keys one batched read puts in one statement: SQLite caps a compound
/// SELECT at 500 terms and a statement at 32,766 bound parameters; 200 stays
/// well inside both and still turns a reconnect storm's thousands of reads
/// into tens of queries.
pub const MAX_BATCHED_KEYS: usize = 200;

/// A pooled connection idle at least this long is pinged before it is
/// handed out; one used more recently is handed out as it is.
///
/// sqlx pings every connection when it is released, so one that broke
/// during a query never goes back to the pool; by default it pings again on
/// every acquire, which put a round trip before every query and
/// transaction — before each of the persister's flushes (written one at a
/// time, so comments waited on it) and each REST request's reads. What the
/// second ping still catches is a connection cut while it sat unused (a
/// database restart, a proxy's idle timeout), so only connections that sat
/// unused for a while are tested.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// Begins a transaction on a connection that answers.
///
/// A connection used within the last [`PING_IF_IDLE_FOR`] is handed out
/// untested, so one whose database side went away meanwhile (a terminated
/// backend, a restarted proxy) fails the first thing sent on it: BEGIN.
/// Nothing was written then, so the transaction is begun again on the next
/// connection (the pool closes the failed one: its release test fails), up
/// to the pool's size. Every write transaction starts here, so a cut
/// connection never fails a persister flush (a batch of comments) or any
/// other write. An unreachable database fails the acquire itself, which is
/// not retried here.
pub(crate) async fn begin<DB: Database>(
    pool: &Pool<DB>,
) -> Result<Transaction<'static, DB>, sqlx::Error> {
    let mut attempts = pool.options().get_max_connections();
    loop {
        match pool.begin().await {
            Err(e) if attempts > 0 && lost_connection(&e) => {
                tracing::info!(error = %e, "a pooled connection was lost; beginning on another");
                attempts -= 1;
            }
            other => return other,
        }
    }
}

/// Whether `e` says the connection is gone, not that the statement failed:
/// an IO or protocol error, or PostgreSQL's connection-exception (08) and
/// operator-intervention (57P01–57P03: terminated, shutting down) codes.
fn lost_connection(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P0")),
        _ => false,
    }
}

/// `options` with the acquire-time ping of [`PING_IF_IDLE_FOR`].
fn ping_when_idle<DB: Database>(options: PoolOptions<DB>) -> PoolOptions<DB> {
    options
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IF_IDLE_FOR {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// Runs `$body` with `$pool` bound to whichever pool the store holds. The body
/// is compiled once per engine, so one query text serves both.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            $crate::store::Store::Sqlite($pool) => $body,
            $crate::store::Store::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// A connection pool to one of the two engines. Cloning is cheap (the pools
/// are reference-counted).
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL (expected sqlite:// or postgres://)")]
    UnsupportedUrl,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("a row with this key already exists")]
    Conflict,
    #[error("not found")]
    NotFound,
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    /// A batched read failed; every request of its batch is told so.
    #[error("batched read: {0}")]
    Batch(Arc<StoreError>),
    /// The task answering batched reads has ended (the server is stopping).
    #[error("the batched reader has stopped")]
    ReaderStopped,
}

impl StoreError {
    /// Maps unique-constraint violations to [`StoreError::Conflict`].
    pub(crate) fn from_write(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
            _ => StoreError::Database(err),
        }
    }

    /// True when the database refused the data itself (a data exception or
    /// a constraint, SQLSTATE classes 22 and 23 on PostgreSQL) rather than
    /// being unreachable or failing as a whole: retrying the other rows of a
    /// batch without the offending one can then succeed.
    pub fn is_refused_data(&self) -> bool {
        let StoreError::Database(sqlx::Error::Database(db)) = self else {
            return false;
        };
        !matches!(db.kind(), sqlx::error::ErrorKind::Other)
            || db
                .code()
                .is_some_and(|c| c.starts_with("22") || c.starts_with("23"))
    }
}

impl Store {
    /// Connects to `url` and applies the embedded migrations of its engine.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let store = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: an acknowledged comment survives a power cut, not only
                // a crash; batching amortizes the extra fsync.
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(5));
            let pool = ping_when_idle(SqlitePoolOptions::new())
                .max_connections(max_connections.max(1))
                .connect_with(options)
                .await?;
            Store::Sqlite(pool)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url)?;
            let pool = ping_when_idle(PgPoolOptions::new())
                .max_connections(max_connections.max(1))
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options)
                .await?;
            Store::Postgres(pool)
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await?,
            Store::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Which engine this is, for logs and metrics.
    pub fn engine(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }
}
