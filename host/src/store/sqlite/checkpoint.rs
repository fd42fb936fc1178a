//! Checkpoints the write-ahead log on a thread of its own. Left to itself, SQLite copies the
//! WAL back into the database file (and fsyncs it) inside whichever commit crossed its
//! threshold, so every request of that commit waits for the copy: a stall of milliseconds to
//! tens of milliseconds at the tail of enqueue and lease latency. Here the writer's commits
//! only signal; the copy runs beside them on another connection (a `PASSIVE` checkpoint never
//! blocks a writer), and durability is unchanged: a commit is on disk once its WAL frames are.

use std::ffi::c_int;
use std::path::Path;
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rusqlite::Connection;
use rusqlite::hooks::Wal;
use rusqlite::wal::CheckpointMode;

use super::{Error, Result, schema};

/// Frames in the WAL after a commit at which a checkpoint starts: SQLite's own threshold for
/// its automatic checkpoint (about 4 MiB of 4 KiB pages).
const CHECKPOINT_FRAMES: c_int = 1000;

/// The wake-up the commit hook sends; `None` once the checkpointer is stopping.
type Signal = Arc<Mutex<Option<SyncSender<()>>>>;

/// The checkpoint thread of one writer connection. Dropping it stops the thread (after the
/// checkpoint in progress, if any) and joins it; SQLite checkpoints once more when the last
/// connection closes.
pub struct Checkpointer {
    signal: Signal,
    thread: Option<JoinHandle<()>>,
}

/// Takes `writer`'s checkpoints off its commits: a thread with its own connection to `path`
/// checkpoints whenever a commit leaves the WAL at [`CHECKPOINT_FRAMES`] or more. Installing
/// the hook turns SQLite's automatic checkpoint off for `writer`.
pub fn spawn(writer: &mut Connection, path: &Path) -> Result<Checkpointer> {
    let conn = schema::open_checkpointer(path)?;
    let (sender, wake) = mpsc::sync_channel::<()>(1);
    let signal: Signal = Arc::new(Mutex::new(Some(sender)));
    let hook_signal = signal.clone();
    writer.wal_hook(Some(move |_: &mut Wal, frames: c_int| {
        if frames >= CHECKPOINT_FRAMES
            && let Some(sender) = hook_signal
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
        {
            // Full: a wake-up is already pending, and one checkpoint takes every frame so far.
            let _ = sender.try_send(());
        }
        Ok(())
    }))?;
    let thread = std::thread::Builder::new()
        .name("sluice-store-checkpoint".into())
        .spawn(move || {
            while wake.recv().is_ok() {
                if let Err(e) = conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE) {
                    // The next commit past the threshold tries again; meanwhile the WAL grows.
                    tracing::warn!(error = %e, "WAL checkpoint failed");
                }
            }
        })
        .map_err(|e| Error::Unavailable(format!("cannot start the checkpoint thread: {e}")))?;
    Ok(Checkpointer {
        signal,
        thread: Some(thread),
    })
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // Dropping the only sender ends the thread's wait.
        self.signal.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// Commits `n` transactions of one 3,000-byte row each: a WAL frame or more apiece.
    fn commit_rows(writer: &Connection, n: c_int) {
        for _ in 0..n {
            writer
                .execute("INSERT INTO filler VALUES (zeroblob(3000))", [])
                .expect("insert");
        }
    }

    fn db_bytes(path: &Path) -> u64 {
        std::fs::metadata(path).expect("database file").len()
    }

    #[test]
    fn commits_past_the_threshold_are_checkpointed_by_the_thread_not_the_writer() {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let (mut writer, path) = schema::open(dir.path()).expect("open");
        writer
            .execute_batch("CREATE TABLE filler (x BLOB)")
            .expect("table");
        let checkpointer = spawn(&mut writer, &path).expect("spawn");
        let before = db_bytes(&path);
        // Rows reach the database file only through a checkpoint.
        commit_rows(&writer, CHECKPOINT_FRAMES + 10);
        let deadline = Instant::now() + Duration::from_secs(10);
        while db_bytes(&path) < before + 1_000_000 && Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert!(
            db_bytes(&path) >= before + 1_000_000,
            "nothing was checkpointed into the database file"
        );

        // Stopped, nothing checkpoints any more: the writer's own commits never do.
        drop(checkpointer);
        let stopped = db_bytes(&path);
        commit_rows(&writer, 2 * CHECKPOINT_FRAMES);
        assert_eq!(db_bytes(&path), stopped, "a commit checkpointed inline");
    }
}
