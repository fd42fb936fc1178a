//! Storage faults: a full disk, a file-size limit or a read-only database makes writes answer 503
//! `storage_unavailable` without taking the host down, and service resumes once the fault is
//! gone; a file that is not a Sluice database where `sluice.db` should be stops startup with a
//! clear message and is left exactly as it was.
//!
//! Tests that need root (mounting a tmpfs, `chattr +i`) are ignored by a plain `cargo test`, so
//! a run without the privilege reports them as ignored rather than passed; `scripts/test` runs
//! them when it runs as root (`cargo test -p sluice --test e2e storage:: -- --ignored`), and
//! there they fail if the privilege turns out to be missing. The file-size-limit test needs
//! none and always runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::durability::all_ids;
use crate::support::{DataDir, Server, assert_error};

/// A 64 KiB body: a few of these fill a small disk quickly.
fn big_body(n: usize) -> String {
    format!("{n:08}-{}", "x".repeat(64 * 1024 - 9))
}

/// Enqueues big messages until one is refused; returns the acknowledged ids and the refusal.
async fn fill(server: &Server, queue: &str, max: usize) -> (Vec<String>, (u16, Value)) {
    let mut acked = Vec::new();
    for n in 0..max {
        let (status, body) = server
            .post_raw(&format!("/v1/queues/{queue}/messages"), big_body(n))
            .await;
        if status != 201 && status != 200 {
            return (acked, (status, body));
        }
        acked.push(body["id"].as_str().unwrap().to_owned());
    }
    panic!("{max} messages of 64 KiB were all accepted: the storage never filled up");
}

async fn assert_alive(server: &Server) {
    let (status, body) = server.get("/healthz").await;
    assert_eq!(status, 200, "host still up: {body}");
}

/// Enqueue works again (within a deadline: the first write after the fault may still be
/// failing the transaction that hit it).
async fn resumes(server: &Server, queue: &str) -> String {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = server
            .post_raw(&format!("/v1/queues/{queue}/messages"), "after the fault")
            .await;
        if status == 201 || status == 200 {
            return body["id"].as_str().unwrap().to_owned();
        }
        assert!(
            Instant::now() < end,
            "enqueue did not recover after the fault was removed: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every acknowledged id is still stored.
async fn assert_kept(server: &Server, queue: &str, acked: &[String]) {
    let stored = all_ids(server, queue).await;
    let lost: Vec<_> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(lost.is_empty(), "acknowledged messages lost: {lost:?}");
}

/// A small tmpfs mounted for the life of the value.
struct Tmpfs {
    dir: DataDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = DataDir::new();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(Tmpfs { dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes zeros to `path` until the file system is full.
fn ballast(path: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
}

#[tokio::test]
#[ignore = "needs root (mount -t tmpfs): run with `cargo test -p sluice --test e2e storage:: -- --ignored` as root"]
async fn a_full_disk_answers_503_and_service_resumes_when_space_returns() {
    let tmpfs = Tmpfs::mount("16m")
        .unwrap_or_else(|reason| panic!("{reason} (this test needs root and CAP_SYS_ADMIN)"));
    let data = tmpfs.dir.path().join("data");
    let server = Server::start_in(&data).await;
    server.create_queue(json!({"name": "full"})).await;
    let (mut acked, _) = (
        server
            .enqueue_all(
                "full",
                (0..10).map(|i| json!({"body": format!("early {i}")})),
            )
            .await,
        (),
    );

    // Leave the disk (almost) no room, then write until the store refuses.
    let ballast_path = tmpfs.dir.path().join("ballast");
    ballast(&ballast_path);
    let (more, (status, body)) = fill(&server, "full", 400).await;
    acked.extend(more);
    assert_error(status, &body, 503, "storage_unavailable");
    println!(
        "full disk: refused with {status} after {} acknowledged enqueues: {body}",
        acked.len()
    );
    // Batches are refused the same way, and reads keep working.
    let (status, body) = server
        .post(
            "/v1/queues/full/messages/batch",
            json!({"messages": [{"body": big_body(0)}, {"body": big_body(1)}]}),
        )
        .await;
    assert_error(status, &body, 503, "storage_unavailable");
    assert_alive(&server).await;
    assert_kept(&server, "full", &acked).await;

    std::fs::remove_file(&ballast_path).unwrap();
    acked.push(resumes(&server, "full").await);
    assert_kept(&server, "full", &acked).await;
    drop(server);

    // Nothing acknowledged was lost across the fault and a restart.
    let server = Server::start_in(&data).await;
    assert_kept(&server, "full", &acked).await;
}

#[tokio::test]
async fn a_file_size_limit_answers_503_and_does_not_kill_the_host() {
    // RLIMIT_FSIZE (what `ulimit -f` and systemd's LimitFSIZE set) makes any write past the
    // limit fail with EFBIG, and sends SIGXFSZ, which kills a process that does not ignore it.
    // 8 MiB in the shell's 512-byte blocks.
    let dir = DataDir::new();
    let limit = (8 * 1024 * 1024 / 512).to_string();
    let script = format!("ulimit -f {limit} && exec \"$0\" \"$@\"");
    let wrapper = ["sh", "-c", script.as_str()];
    let mut server = Server::start_in_wrapped(dir.path(), &wrapper).await;
    server
        .create_queue(json!({"name": "limited", "max_message_bytes": 128 * 1024}))
        .await;
    let (acked, (status, body)) = fill(&server, "limited", 400).await;
    assert_error(status, &body, 503, "storage_unavailable");
    println!(
        "file size limit: refused with {status} after {} acknowledged enqueues: {body}",
        acked.len()
    );
    assert_alive(&server).await;

    // A file size limit does not go away by deleting rows (the WAL cannot be checkpointed into
    // a database file that may not grow), so service resumes when the operator raises the
    // limit and restarts: everything acknowledged is there, and writes work again.
    server.kill9();
    let server = Server::start_in(dir.path()).await;
    assert_kept(&server, "limited", &acked).await;
    resumes(&server, "limited").await;
}

/// `chattr` on the database files for the life of the value.
struct Immutable(Vec<PathBuf>);

impl Immutable {
    fn set(paths: Vec<PathBuf>) -> Result<Immutable, String> {
        let mut done = Immutable(Vec::new());
        for path in paths {
            let output = Command::new("chattr")
                .arg("+i")
                .arg(&path)
                .output()
                .map_err(|e| format!("cannot run chattr: {e}"))?;
            if !output.status.success() {
                return Err(format!(
                    "chattr +i {} failed: {}",
                    path.display(),
                    String::from_utf8_lossy(&output.stderr).trim()
                ));
            }
            done.0.push(path);
        }
        Ok(done)
    }

    fn clear(&mut self) {
        for path in self.0.drain(..) {
            let _ = Command::new("chattr").arg("-i").arg(&path).status();
        }
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        self.clear();
    }
}

#[tokio::test]
#[ignore = "needs root (chattr +i): run with `cargo test -p sluice --test e2e storage:: -- --ignored` as root"]
async fn a_read_only_database_answers_503_and_service_resumes_when_writable_again() {
    let (server, dir) = Server::start().await;
    server.create_queue(json!({"name": "ro"})).await;
    let mut acked = server
        .enqueue_all("ro", (0..10).map(|i| json!({"body": format!("m{i}")})))
        .await;

    // Root ignores permission bits, so make the files immutable: every write to them fails
    // with EPERM, as on a file system remounted read-only.
    let files = ["sluice.db", "sluice.db-wal"]
        .iter()
        .map(|f| dir.path().join(f))
        .filter(|p| p.exists())
        .collect();
    let mut immutable = Immutable::set(files).unwrap_or_else(|reason| {
        panic!("{reason} (this test needs CAP_LINUX_IMMUTABLE and a file system with chattr)")
    });
    let (status, body) = server.post_raw("/v1/queues/ro/messages", "refused").await;
    assert_error(status, &body, 503, "storage_unavailable");
    println!("read-only database: enqueue refused with {status}: {body}");
    assert_alive(&server).await;
    assert_kept(&server, "ro", &acked).await;

    immutable.clear();
    acked.push(resumes(&server, "ro").await);
    drop(server);
    let server = Server::start_in(dir.path()).await;
    assert_kept(&server, "ro", &acked).await;
}

/// Runs `sluice serve` on `dir`, expecting it to exit on its own; returns its status and stderr.
fn serve_expecting_exit(dir: &Path) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sluice");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sluice kept running on a data dir it should refuse");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status, stderr)
}

/// Puts `bytes` where the database should be, starts the server, and checks that it refused
/// to start, said why and what to do, and touched nothing.
fn assert_refused(what: &str, bytes: &[u8], reason: &str) {
    let dir = DataDir::new();
    let db = dir.path().join("sluice.db");
    std::fs::write(&db, bytes).unwrap();
    let (status, stderr) = serve_expecting_exit(dir.path());
    println!("{what}: exit {status}; stderr: {}", stderr.trim());
    assert!(!status.success(), "{what}: startup must fail");
    assert!(
        stderr.contains(&db.display().to_string()),
        "{what}: stderr names the file: {stderr}"
    );
    assert!(
        stderr.contains(reason),
        "{what}: stderr says what is wrong ({reason}): {stderr}"
    );
    assert!(
        stderr.contains("move it away"),
        "{what}: stderr says what to do: {stderr}"
    );
    assert_eq!(
        std::fs::read(&db).unwrap(),
        bytes,
        "{what}: file bytes unchanged"
    );
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["sluice.db"],
        "{what}: nothing else created in the data dir"
    );
}

#[test]
fn a_file_that_is_not_a_database_stops_startup_untouched() {
    let text: Vec<u8> = b"these are somebody's notes, not a database\n".repeat(200);
    assert_refused("text file", &text, "not a SQLite database");
}

#[test]
fn another_applications_sqlite_database_stops_startup_untouched() {
    let scratch = DataDir::new();
    let path = scratch.path().join("other.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL);
             INSERT INTO invoices (total) VALUES (12.5), (99.0);",
        )
        .unwrap();
    }
    let bytes = std::fs::read(&path).unwrap();
    assert_refused("foreign SQLite database", &bytes, "another application");
}

#[tokio::test]
async fn a_damaged_sluice_database_stops_startup_untouched() {
    // A real Sluice database, shut down cleanly, with its schema page overwritten (the header,
    // with our application id, intact).
    let (mut server, dir) = Server::start().await;
    server.create_queue(json!({"name": "q"})).await;
    assert!(server.terminate().success());
    let mut bytes = std::fs::read(dir.path().join("sluice.db")).unwrap();
    bytes[100..4096].fill(0xde);
    assert_refused("damaged Sluice database", &bytes, "damaged");
}
