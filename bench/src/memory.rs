//! Resident memory and thread counts read from `/proc`: of this process while a phase runs, and
//! of a `sluice serve` child.

use std::time::Duration;

/// Samples this process's thread count and resident memory every 100 ms until stopped; gives
/// the largest of each.
pub(crate) struct ThreadSampler {
    stop: tokio::sync::oneshot::Sender<()>,
    samples: tokio::task::JoinHandle<(u64, u64)>,
}

impl ThreadSampler {
    pub(crate) fn start() -> ThreadSampler {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let samples = tokio::spawn(async move {
            let (mut threads, mut rss) = (0, 0);
            let mut every = tokio::time::interval(Duration::from_millis(100));
            loop {
                tokio::select! {
                    _ = every.tick() => {
                        let (t, r) = threads_and_rss();
                        threads = threads.max(t);
                        rss = rss.max(r);
                    }
                    _ = &mut stopped => return (threads, rss),
                }
            }
        });
        ThreadSampler { stop, samples }
    }

    /// The largest thread count and resident bytes seen.
    pub(crate) async fn stop(self) -> (u64, u64) {
        let _ = self.stop.send(());
        self.samples.await.unwrap_or_default()
    }
}

/// `Threads:` and `VmRSS:` of /proc/self/status (bytes); zeros where it cannot be read.
fn threads_and_rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("Threads:"), field("VmRSS:") * 1024)
}

/// VmRSS of process `pid` in KiB, if it is still there.
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_kib(&status, "VmRSS:")
}

/// The KiB figure of field `name` (with its colon) in a `/proc/PID/status` text.
pub(crate) fn status_kib(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Resident memory of a process, in MiB.
pub(crate) struct Memory {
    pub(crate) rss: f64,
    pub(crate) anon: f64,
    pub(crate) file: f64,
    pub(crate) shmem: f64,
}
