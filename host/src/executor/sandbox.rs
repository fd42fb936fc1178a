//! What one invocation's store holds: a WASI context that grants nothing but the function's own
//! environment variables, the `wasi:http` context whose hooks apply the function's outbound
//! allow-list and limits, the memory limiter, the captured logs and the outbox buffer, which
//! takes the sends, publishes and replies of every version of the world.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Result};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings::{v1, v2, v3, v4};
use super::kv::Kv;
use super::outbound::{self, Hooks};
use super::{Limits, OutboxCheck, Outgoing, Publish, Reply};

/// Tables may grow to this many elements; real handlers use a few hundred.
const MAX_TABLE_ELEMENTS: usize = 100_000;
/// How much of the end of stderr is kept aside to recognise a panic message, whatever the log
/// limit cut off.
const STDERR_TAIL_BYTES: usize = 4096;

/// The data of one invocation's `Store`.
pub(super) struct State {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    outbound: Hooks,
    pub(super) table: ResourceTable,
    pub(super) memory: MemoryLimiter,
    pub(super) outbox: Outbox,
    pub(super) kv: Kv,
}

impl State {
    /// `batch` holds the ids of the messages the handler may reply to; `deadline` is when the
    /// invocation's time is up, which also ends its outbound requests.
    pub(super) fn new(
        limits: &Limits,
        memory_bytes: usize,
        logs: &Logs,
        check: OutboxCheck,
        batch: HashSet<String>,
        client: &outbound::Client,
        deadline: Option<Instant>,
    ) -> State {
        // A fresh builder grants nothing: no preopened directories, no arguments, no inherited
        // environment, stdin empty. The network switches are explicit so a future default can't
        // open them, and no socket address check is installed, so every address is refused.
        let wasi = WasiCtxBuilder::new()
            .envs(&limits.env)
            .stdout(logs.pipe(Stream::Stdout))
            .stderr(logs.pipe(Stream::Stderr))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        State {
            wasi,
            http: WasiHttpCtx::new(),
            outbound: Hooks::new(
                client.clone(),
                limits.outbound.clone(),
                logs.clone(),
                deadline,
            ),
            table: ResourceTable::new(),
            memory: MemoryLimiter {
                limit: memory_bytes,
                used: 0,
                refused: None,
            },
            kv: Kv::new(
                limits.kv_buckets.clone(),
                check.state.clone(),
                limits.max_sends,
                limits.max_send_bytes,
            ),
            outbox: Outbox::new(limits.max_sends, limits.max_send_bytes, check, batch),
        }
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

/// Caps the linear memory of all instances in one store, together.
pub(super) struct MemoryLimiter {
    pub(super) limit: usize,
    used: usize,
    /// The total size a refused growth asked for: set once the guest hit the limit.
    pub(super) refused: Option<usize>,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool> {
        let wanted = self.used.saturating_add(desired - current);
        if wanted > self.limit {
            // Refuse rather than trap: `memory.grow` returns -1 as the spec allows, and a guest
            // that copes with allocation failure may carry on. Most abort, and the trap that
            // follows is reported as running out of memory.
            self.refused = Some(self.refused.unwrap_or(0).max(wanted));
            return Ok(false);
        }
        self.used = wanted;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// Messages sent, published and replied through `sluice:queue/outbox` during one invocation,
/// all counted together toward the invocation's limits.
pub(super) struct Outbox {
    pub(super) sends: Vec<Outgoing>,
    pub(super) publishes: Vec<Publish>,
    pub(super) replies: Vec<Reply>,
    bytes: usize,
    max_messages: usize,
    max_bytes: usize,
    check: OutboxCheck,
    /// The ids of the batch's messages not replied to yet.
    unanswered: HashSet<String>,
    /// The ids of the batch's messages replied to.
    answered: HashSet<String>,
}

impl Outbox {
    fn new(
        max_messages: usize,
        max_bytes: usize,
        check: OutboxCheck,
        batch: HashSet<String>,
    ) -> Outbox {
        Outbox {
            sends: Vec::new(),
            publishes: Vec::new(),
            replies: Vec::new(),
            bytes: 0,
            max_messages,
            max_bytes,
            check,
            unanswered: batch,
            answered: HashSet::new(),
        }
    }

    /// Whether one more message of `body` and `attributes` fits in the invocation's limits;
    /// its size if so.
    fn fits(&self, body: &[u8], attributes: &[(String, String)]) -> Result<usize, String> {
        let messages = self.sends.len() + self.publishes.len() + self.replies.len();
        if messages >= self.max_messages {
            return Err(format!(
                "outbox limit reached: at most {} messages per invocation, sends, publishes and \
                 replies together (the function's `max_sends`)",
                self.max_messages
            ));
        }
        let size = crate::store::message_size(body, attributes);
        if self.bytes + size > self.max_bytes {
            return Err(format!(
                "outbox limit reached: at most {} bytes of messages per invocation, sends, \
                 publishes and replies together (`max_send_bytes`; {} already used, this one \
                 is {size})",
                self.max_bytes, self.bytes
            ));
        }
        Ok(size)
    }

    fn send(&mut self, msg: Outgoing) -> Result<(), String> {
        let size = self.fits(&msg.body, &msg.attributes)?;
        // The store's own rules for an enqueue's priority and group, checked now so the handler
        // learns of a mistake from `send` instead of from a settle that fails.
        crate::store::validate_message(&crate::store::NewMessage {
            priority: msg.priority.unwrap_or(crate::store::DEFAULT_PRIORITY),
            group: msg.group.clone(),
            ..crate::store::NewMessage::default()
        })
        .map_err(|e| e.to_string())?;
        self.check.queue(&msg.queue)?;
        self.bytes += size;
        self.sends.push(msg);
        Ok(())
    }

    fn publish(&mut self, msg: Publish) -> Result<(), String> {
        let size = self.fits(&msg.body, &msg.attributes)?;
        self.check.topic(&msg.topic)?;
        self.bytes += size;
        self.publishes.push(msg);
        Ok(())
    }

    fn reply(&mut self, msg: Reply) -> Result<(), String> {
        if !self.unanswered.contains(&msg.message_id) {
            return Err(if self.answered.contains(&msg.message_id) {
                format!(
                    "message `{}` already has a reply in this invocation; a message gets at most one",
                    msg.message_id
                )
            } else {
                format!(
                    "message `{}` is not in this batch; reply to a message of the batch being handled",
                    msg.message_id
                )
            });
        }
        let size = self.fits(&msg.body, &msg.attributes)?;
        self.unanswered.remove(&msg.message_id);
        self.answered.insert(msg.message_id.clone());
        self.bytes += size;
        self.replies.push(msg);
        Ok(())
    }
}

impl v1::sluice::queue::types::Host for State {}

impl v1::sluice::queue::outbox::Host for State {
    fn send(&mut self, msg: v1::sluice::queue::types::Outgoing) -> Result<(), String> {
        self.outbox.send(Outgoing {
            queue: msg.queue,
            body: msg.body,
            attributes: msg.attributes,
            delay_ms: msg.delay_ms,
            priority: None,
            group: None,
        })
    }
}

/// The outbox of the worlds with priorities, groups, publishes and replies (0.2.0 and later).
macro_rules! outbox_host {
    ($version:ident) => {
        impl $version::sluice::queue::types::Host for State {}

        impl $version::sluice::queue::outbox::Host for State {
            fn send(
                &mut self,
                msg: $version::sluice::queue::types::Outgoing,
            ) -> Result<(), String> {
                self.outbox.send(Outgoing {
                    queue: msg.queue,
                    body: msg.body,
                    attributes: msg.attributes,
                    delay_ms: msg.delay_ms,
                    priority: msg.priority,
                    group: msg.group,
                })
            }

            fn publish(
                &mut self,
                topic: String,
                body: Vec<u8>,
                attributes: Vec<(String, String)>,
            ) -> Result<(), String> {
                self.outbox.publish(Publish {
                    topic,
                    body,
                    attributes,
                })
            }

            fn reply(
                &mut self,
                message_id: String,
                body: Vec<u8>,
                attributes: Vec<(String, String)>,
            ) -> Result<(), String> {
                self.outbox.reply(Reply {
                    message_id,
                    body,
                    attributes,
                })
            }
        }
    };
}
outbox_host!(v2);
outbox_host!(v3);
outbox_host!(v4);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stream {
    Stdout,
    Stderr,
    /// Lines the host adds itself (see [`Logs::note`]).
    Host,
}

/// stdout and stderr of one invocation, interleaved, bounded; each write is also emitted to the
/// host's tracing (under the caller's span, which names the function).
#[derive(Clone)]
pub(super) struct Logs(Arc<Mutex<LogBuffer>>);

struct LogBuffer {
    text: Vec<u8>,
    max: usize,
    dropped: usize,
    stderr_tail: Vec<u8>,
}

impl Logs {
    pub(super) fn new(max: usize) -> Logs {
        Logs(Arc::new(Mutex::new(LogBuffer {
            text: Vec::new(),
            max,
            dropped: 0,
            stderr_tail: Vec::new(),
        })))
    }

    fn pipe(&self, stream: Stream) -> LogPipe {
        LogPipe {
            logs: self.clone(),
            stream,
        }
    }

    fn write(&self, stream: Stream, bytes: &[u8]) {
        let mut buf = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let room = buf.max - buf.text.len().min(buf.max);
        let kept = &bytes[..bytes.len().min(room)];
        buf.text.extend_from_slice(kept);
        buf.dropped += bytes.len() - kept.len();
        if stream == Stream::Stderr {
            buf.stderr_tail.extend_from_slice(bytes);
            let excess = buf.stderr_tail.len().saturating_sub(STDERR_TAIL_BYTES);
            buf.stderr_tail.drain(..excess);
        }
        if !kept.is_empty() {
            let text = String::from_utf8_lossy(kept);
            let text = text.trim_end_matches('\n');
            match stream {
                Stream::Stdout => {
                    tracing::debug!(target: "sluice::guest", stream = "stdout", "{text}")
                }
                Stream::Stderr => {
                    tracing::info!(target: "sluice::guest", stream = "stderr", "{text}")
                }
                // Traced where it is made.
                Stream::Host => {}
            }
        }
    }

    /// A line from the host about the invocation (an outbound request, say), in order with
    /// what the handler printed and under the same limit.
    pub(super) fn note(&self, line: &str) {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        self.write(Stream::Host, &bytes);
    }

    /// The end of stderr (kept even when the log limit dropped it from the logs).
    pub(super) fn stderr_tail(&self) -> String {
        let buf = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        String::from_utf8_lossy(&buf.stderr_tail).into_owned()
    }

    /// The captured text, with a note at the end when the limit cut some of it.
    pub(super) fn finish(&self) -> String {
        let buf = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut text = String::from_utf8_lossy(&buf.text).into_owned();
        if buf.dropped > 0 {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&format!(
                "[sluice: log truncated, {} more bytes dropped (limit {} bytes)]\n",
                buf.dropped, buf.max
            ));
        }
        text
    }
}

/// One of the guest's output streams, feeding [`Logs`]. Writes never fail and never block: past
/// the limit they are counted and dropped, so a chatty handler is not broken by its logging.
#[derive(Clone)]
struct LogPipe {
    logs: Logs,
    stream: Stream,
}

impl IsTerminal for LogPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for LogPipe {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.logs.write(self.stream, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogPipe {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for LogPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.logs.write(self.stream, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
