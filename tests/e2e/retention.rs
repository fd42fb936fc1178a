//! Retention is the running host's job, on both backends: with nothing asking it to, a host
//! forgets what it keeps for a time once that time has passed. Queue messages past their
//! queue's retention, dedup ids past their window, topic history past its topic's retention
//! and invocations past the log's age are gone from the database itself (counted there, not
//! through the API, whose reads hide what has expired). Replies, kept an hour, are proved by
//! the store's conformance test of the same running sweep, on a clock it advances.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use sluice_test_support::testdb::TestDatabase;

use crate::support::{DataDir, Server, guest, wait_for};

/// The database a host writes to, read behind its back.
enum Database {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Database {
    async fn rows(&self, table: &str) -> u64 {
        let sql = format!("SELECT count(*) FROM {table}");
        match self {
            Database::Sqlite(path) => {
                let db = rusqlite::Connection::open_with_flags(
                    path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                )
                .expect("open the host's database read-only");
                db.query_row(&sql, [], |r| r.get::<_, i64>(0))
                    .expect("count") as u64
            }
            Database::Postgres(url) => {
                let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .expect("connect");
                tokio::spawn(connection);
                let row = client.query_one(&sql, &[]).await.expect("count");
                row.get::<_, i64>(0) as u64
            }
        }
    }
}

const TABLES: [&str; 4] = ["messages", "dedup", "topic_messages", "invocations"];

/// The tables of [`TABLES`] that still hold rows, with how many.
async fn kept(db: &Database) -> Vec<(&'static str, u64)> {
    let mut kept = Vec::new();
    for table in TABLES {
        let rows = db.rows(table).await;
        if rows > 0 {
            kept.push((table, rows));
        }
    }
    kept
}

/// Leaves one row in each of [`TABLES`], all with a retention of three seconds, then waits for
/// the host to forget every one of them.
async fn forgets_everything_past_its_retention(server: &Server, db: &Database) {
    // Compiling the component takes a while: first, so that the rest happens well within the
    // retentions and is counted before any sweep may take it.
    server.deploy("ok", guest("ok"), "").await;
    let (status, answer) = server
        .post(
            "/v1/queues",
            json!({"name": "brief", "retention_ms": 3000, "dedup_window_ms": 3000}),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    let (status, answer) = server
        .post(
            "/v1/queues/brief/messages/batch",
            json!({"messages": [{"body": "never consumed", "dedup_id": "once"}]}),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    let (status, answer) = server
        .post("/v1/topics", json!({"name": "news", "retention_ms": 3000}))
        .await;
    assert_eq!(status, 201, "{answer}");
    let (status, answer) = server
        .post(
            "/v1/topics/news/messages/batch",
            json!({"messages": [{"body": "old news"}]}),
        )
        .await;
    assert!(status < 300, "{status} {answer}");
    let (status, answer) = server
        .post(
            "/v1/functions/ok/invoke",
            json!({"messages": [{"body": "x"}]}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    for table in TABLES {
        assert_eq!(db.rows(table).await, 1, "{table}");
    }

    let forgotten = wait_for(Duration::from_secs(30), || async {
        kept(db).await.is_empty()
    })
    .await;
    assert!(forgotten, "kept past their retention: {:?}", kept(db).await);
    let stats = server.stats("brief").await;
    assert_eq!(stats["expired_total"], 1, "{stats}");
}

#[tokio::test]
async fn a_running_host_on_sqlite_applies_every_retention() {
    let dir = DataDir::new();
    let server = Server::start_in_with(dir.path(), &[], &["--invocation-retention", "3s"]).await;
    let db = Database::Sqlite(dir.path().join("sluice.db"));
    forgets_everything_past_its_retention(&server, &db).await;
}

#[tokio::test]
async fn a_running_host_on_postgres_applies_every_retention() {
    let pg = TestDatabase::create().await;
    let dir = DataDir::new();
    let server = Server::start_in_with(
        dir.path(),
        &[],
        &["--database", &pg.url, "--invocation-retention", "3s"],
    )
    .await;
    let db = Database::Postgres(pg.url.clone());
    forgets_everything_past_its_retention(&server, &db).await;
}
