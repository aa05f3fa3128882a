//! How many comments per second the persister's multi-row insert stores,
//! by flush size: `Store::insert_comments` with batches of 1 (batching off,
//! `--persist-batch 1`), 64 and 256 (the default), on SQLite (a temp file,
//! synchronous=FULL as in production) and on PostgreSQL when the server at
//! `TEST_DATABASE_URL` answers (a fresh database, dropped afterwards).
//!
//! Run: `cargo bench --bench persister`. Throughput is reported in
//! comments (elements) per second.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sqlx::Connection;
use tokio::runtime::Runtime;
use vridge_protocol::NewComment;
use vridge_realtime::domain::{IdempotencyKey, ValidComment};
use vridge_realtime::store::{CommentRequest, NewFeedback, NewUser, Store};

/// Comments stored per measured iteration, whatever the batch size.
const COMMENTS_PER_ITER: usize = 256;
const BATCH_SIZES: [usize; 3] = [1, 64, 256];

struct Target {
    store: Store,
    project: i64,
    user: i64,
    feedback: i64,
}

async fn seed(store: Store) -> Target {
    let email = format!("bench-{}@bench.local", uuid::Uuid::new_v4().simple());
    let user = store
        .create_user(&NewUser {
            email: &email,
            username: "bench",
            password_hash: None,
        })
        .await
        .expect("user");
    let project = store
        .create_project(user.id, "bench", "")
        .await
        .expect("project");
    let feedback = store
        .create_feedback(&NewFeedback {
            project_id: project.id,
            created_by: user.id,
            title: "bench",
            priority: "medium",
            timestamp: None,
            video_url: None,
        })
        .await
        .expect("feedback");
    Target {
        store,
        project: project.id,
        user: user.id,
        feedback: feedback.0.id,
    }
}

fn requests(t: &Target, n: usize) -> Vec<CommentRequest> {
    (0..n)
        .map(|i| CommentRequest {
            project_id: t.project,
            user_id: t.user,
            comment: ValidComment::parse(NewComment {
                feedback_id: t.feedback,
                text: format!("a review comment of ordinary length, number {i}"),
                title: None,
                section: Some("intro".into()),
                security: None,
                timestamp: Some(12.5),
                ..Default::default()
            })
            .expect("valid"),
            key: IdempotencyKey::from_client(None).expect("key"),
            parent: None,
        })
        .collect()
}

fn bench_engine(c: &mut Criterion, rt: &Runtime, engine: &str, target: &Target) {
    let mut group = c.benchmark_group(format!("persister/{engine}"));
    group.throughput(Throughput::Elements(COMMENTS_PER_ITER as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    for batch in BATCH_SIZES {
        group.bench_with_input(BenchmarkId::new("batch", batch), &batch, |b, &batch| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let all = requests(target, COMMENTS_PER_ITER);
                    let started = Instant::now();
                    rt.block_on(async {
                        for chunk in all.chunks(batch) {
                            target.store.insert_comments(chunk).await.expect("insert");
                        }
                    });
                    total += started.elapsed();
                }
                total
            });
        });
    }
    group.finish();
}

fn persister(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let sqlite = rt.block_on(async { seed(Store::connect(&url, 4).await.expect("sqlite")).await });
    bench_engine(c, &rt, "sqlite", &sqlite);

    let admin_url = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("vridge_bench_{}", uuid::Uuid::new_v4().simple());
    let created = rt.block_on(async {
        let mut admin = sqlx::PgConnection::connect(&admin_url).await.ok()?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .ok()?;
        Some(())
    });
    let Some(()) = created else {
        eprintln!("PostgreSQL at TEST_DATABASE_URL unreachable: PostgreSQL not measured");
        return;
    };
    let pg_url = match admin_url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => format!("{admin_url}/{name}"),
    };
    let postgres =
        rt.block_on(async { seed(Store::connect(&pg_url, 4).await.expect("postgres")).await });
    bench_engine(c, &rt, "postgres", &postgres);
    rt.block_on(async {
        postgres.store.close().await;
        if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut admin)
            .await;
        }
    });
}

criterion_group!(benches, persister);
criterion_main!(benches);
