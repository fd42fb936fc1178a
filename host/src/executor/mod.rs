//! Runs handler components: the wasmtime engine, the compiled-component cache, per-invocation
//! limits (time, memory), a WASI context that grants nothing, outbound HTTP to the hosts the
//! function allows ([`outbound`]), key-value state in the buckets it lists (`kv`), and the
//! outbox import.
//!
//! One engine (cranelift, pooling allocator, epoch interruption driven by one ticker thread) is
//! shared by every function. [`Executor::prepare`] validates an upload against the `handler`
//! world (0.4.0, 0.3.0, 0.2.0 or 0.1.0, see [`world`]) and compiles it once per content and engine,
//! caching the result on disk; [`Executor::invoke`] runs one batch in a fresh store and
//! instance, asynchronously: the instance runs on a fiber of its own, so while it waits on the
//! network (or anything else the host does for it) it holds no thread, and a long computation
//! yields to the runtime at every [`YIELD_EVERY`].
//!
//! Time limits follow the wall clock, not a count of ticks: the ticker advances the epoch by the
//! ticks that are due by the clock (catching up when the machine made it wake late), and when a
//! store's epoch deadline arrives, a callback compares the real time with the invocation's
//! absolute deadline and either stops the guest or arms the deadline again for what is left.

mod bindings;
mod cache;
mod compile;
mod kv;
pub mod outbound;
mod sandbox;
mod surface;
#[cfg(test)]
mod tests;
mod world;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap,
    UpdateDeadline,
};

use crate::store::Message;
use cache::ComponentCache;
pub use compile::{Compiler, child_main as compile_child_main};
pub use outbound::{AllowList, OutboundLimits};
use sandbox::{Logs, State};
use world::World;

/// Why a component could not be prepared, or the executor could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The upload is not usable as a handler; the message says what is wrong and how to fix it.
    #[error("{0}")]
    Invalid(String),
    #[error("compiled-component cache at {path}: {source}")]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("wasmtime: {0}")]
    Engine(String),
}

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// Where compiled components are cached, keyed by content hash.
    pub cache_dir: PathBuf,
    /// The largest memory any instance may have; per-function limits are at most this.
    pub max_memory_bytes: u64,
    /// How many instances may run at once (the pooling allocator's size).
    pub max_instances: u32,
    /// Per pool slot, how much of an instance's dirtied linear memory (and tables) is reset in
    /// place and kept resident for the next instance, instead of being released and faulted in
    /// again page by page; [`KEEP_RESIDENT_BYTES`] unless measuring. 0 releases everything.
    pub keep_resident_bytes: u64,
    /// Where uploads are compiled: the server compiles in a child process.
    pub compiler: Compiler,
}

/// Default of [`ExecutorConfig::keep_resident_bytes`]. Interpreter-sized components (a Python
/// or JavaScript runtime, 10–20 MB) dirty a few MiB of their memory image even for a no-op:
/// released after every batch, those pages cost a copy-on-write fault each on the next instance
/// (about 1 ms for a no-op). Kept resident, only the pages a batch actually wrote are copied back
/// from the image (found with the kernel's PAGEMAP_SCAN), and the next instance runs on warm
/// pages. The price is up to this much anonymous memory per pool slot that has run such a
/// component; slots are reused by the same component first.
pub const KEEP_RESIDENT_BYTES: u64 = 4 << 20;

/// Per-function limits and grants.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Wall-clock limit of one invocation, instantiation included. The guest is stopped within
    /// [`EPOCH_TICK`] plus the machine's scheduling delay after it; limits below
    /// [`MIN_TIMEOUT`] are raised to it.
    pub timeout: Duration,
    /// Linear memory of the instance, all memories together; capped by
    /// [`ExecutorConfig::max_memory_bytes`].
    pub memory_bytes: u64,
    /// Environment variables the function may read; nothing else of the host's is visible.
    pub env: Vec<(String, String)>,
    /// Outbox messages per invocation: sends, publishes and replies together.
    pub max_sends: usize,
    /// Outbox bytes per invocation: bodies plus attribute names and values, all sends,
    /// publishes and replies together.
    pub max_send_bytes: usize,
    /// Captured stdout + stderr per invocation; the rest is dropped and the drop noted.
    pub max_log_bytes: usize,
    /// Where the handler may send HTTP requests, and how many, how large, how long.
    pub outbound: OutboundLimits,
    /// The key-value buckets the handler may open. The distinct keys it writes count toward
    /// `max_sends`, their keys and values toward `max_send_bytes` (apart from the outbox's).
    pub kv_buckets: HashSet<String>,
}

/// One check of a name: `Err` says why the outbox refuses it.
type NameCheck = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// Decides whether the outbox accepts a `send` to a queue and a `publish` to a topic (each must
/// exist). Checked when the handler calls, so it learns of a mistake at once.
#[derive(Clone)]
pub struct OutboxCheck {
    queue: NameCheck,
    topic: NameCheck,
    /// Where the handler's key-value reads go; without one, every bucket reads empty.
    state: Option<crate::store::Store>,
}

impl OutboxCheck {
    /// `queue` checks the destination of every send, `topic` that of every publish.
    pub fn new(
        queue: impl Fn(&str) -> Result<(), String> + Send + Sync + 'static,
        topic: impl Fn(&str) -> Result<(), String> + Send + Sync + 'static,
    ) -> OutboxCheck {
        OutboxCheck {
            queue: Arc::new(queue),
            topic: Arc::new(topic),
            state: None,
        }
    }

    /// The same check, with the handler's key-value reads going to `store`.
    pub fn reading_state(self, store: crate::store::Store) -> OutboxCheck {
        OutboxCheck {
            state: Some(store),
            ..self
        }
    }

    fn queue(&self, name: &str) -> Result<(), String> {
        (self.queue)(name)
    }

    fn topic(&self, name: &str) -> Result<(), String> {
        (self.topic)(name)
    }
}

impl std::fmt::Debug for OutboxCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxCheck").finish_non_exhaustive()
    }
}

/// A message the handler sent to a queue through the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub queue: String,
    pub body: Vec<u8>,
    pub attributes: Vec<(String, String)>,
    pub delay_ms: u32,
    /// `None`: the default priority. Checked to be in range when sent.
    pub priority: Option<u8>,
    /// Checked like an enqueue's group when sent.
    pub group: Option<String>,
}

/// A message the handler published to a topic through the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Publish {
    pub topic: String,
    pub body: Vec<u8>,
    pub attributes: Vec<(String, String)>,
}

/// The handler's answer to a message of its batch, for the producer waiting on it; at most one
/// per message. To be committed only if that message is acknowledged.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub message_id: String,
    pub body: Vec<u8>,
    pub attributes: Vec<(String, String)>,
}

/// What the handler asked for one failed message.
#[derive(Debug, Clone, PartialEq)]
pub enum Disposition {
    Retry(Option<u32>),
    DeadLetter(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ItemFailure {
    pub id: String,
    pub disposition: Disposition,
}

/// Why an invocation failed without returning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Trap,
    Panic,
    Timeout,
    OutOfMemory,
    StackOverflow,
}

/// How one invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `ok(failures)`: the listed messages failed, the rest are acknowledged.
    Ok(Vec<ItemFailure>),
    /// `err(reason)` returned by the handler.
    Error(String),
    /// The instance trapped, panicked, ran out of time or memory.
    Failed { kind: FailureKind, message: String },
}

/// The full record of one invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub outcome: Outcome,
    /// Captured stdout and stderr, interleaved, bounded by `Limits::max_log_bytes`.
    pub logs: String,
    /// Outbox sends, in order; to be committed only when `outcome` is `Ok`.
    pub sends: Vec<Outgoing>,
    /// Outbox publishes, in order; to be committed only when `outcome` is `Ok`.
    pub publishes: Vec<Publish>,
    /// Outbox replies, in order; each to be committed only when `outcome` is `Ok` and its
    /// message is acknowledged.
    pub replies: Vec<Reply>,
    /// Key-value writes, one per key; to be committed only when `outcome` is `Ok`.
    pub state: Vec<crate::store::StateWrite>,
    pub duration: Duration,
}

/// The granularity of time limits: one background thread advances the engine's epoch this often
/// (by the clock: a late wake-up advances it by every tick that is due).
pub const EPOCH_TICK: Duration = Duration::from_millis(5);
/// How long a guest computes before it yields its thread to the other tasks of the runtime (and
/// then carries on): the price of running instances on the runtime's workers instead of on
/// threads of their own. Checked at epoch ticks, so it holds to within [`EPOCH_TICK`].
pub const YIELD_EVERY: Duration = Duration::from_millis(10);
/// The shortest time limit Sluice accepts. A guest is stopped at the first tick after its
/// deadline, once its thread gets the CPU again: on a machine whose cores are all busy that
/// came to 5-36 ms late (measured on 2 cores under full load), and a limit is promised to hold
/// within 5% or 20 ms, whichever is larger. From 1 s up, 5% covers that lateness; shorter
/// limits could not be held to, so they are refused (AWS Lambda's shortest timeout is 1 s too).
pub const MIN_TIMEOUT: Duration = Duration::from_millis(1_000);
const WASM_PAGE: u64 = 64 * 1024;
/// Per-component shape the pool is sized for. A Rust `wasm32-wasip2` component has one memory,
/// two tables and a handful of core instances; one built with the preview1 adapter has two
/// memories. Components needing more are refused at instantiation with wasmtime's message.
const MEMORIES_PER_COMPONENT: u32 = 2;
const TABLES_PER_COMPONENT: u32 = 4;
const CORE_INSTANCES_PER_COMPONENT: u32 = 16;

/// The worlds a handler may target, as users see them in messages.
const WORLD: &str = "sluice:queue/handler@0.4.0 (or @0.3.0, @0.2.0, @0.1.0)";
/// How many unknown imports one refusal names; the rest are counted.
const FOREIGN_IMPORTS_NAMED: usize = 10;

/// A validated, compiled component ready to be instantiated.
#[derive(Clone)]
pub struct Handler {
    inner: Arc<HandlerInner>,
}

struct HandlerInner {
    world: World,
    digest: String,
    from_cache: bool,
}

impl Handler {
    /// Hex sha256 of the uploaded wasm.
    pub fn digest(&self) -> &str {
        &self.inner.digest
    }

    /// Whether `prepare` loaded the compiled code from the disk cache instead of compiling.
    pub fn from_cache(&self) -> bool {
        self.inner.from_cache
    }

    /// The world the component targets: `sluice:queue/handler@0.4.0`, `@0.3.0`, `@0.2.0` or `@0.1.0`.
    pub fn world(&self) -> &'static str {
        self.inner.world.name()
    }

    /// The component, as the executor's engine compiled it.
    pub fn component(&self) -> &wasmtime::component::Component {
        self.inner.world.component()
    }
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler")
            .field("digest", &self.inner.digest)
            .field("world", &self.inner.world.name())
            .field("from_cache", &self.inner.from_cache)
            .finish()
    }
}

/// The wasmtime engine and everything shared between invocations; cheap to clone.
#[derive(Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<State>,
    /// Every invocation's outbound HTTP goes through this client and its connection pool.
    http: outbound::Client,
    cache: ComponentCache,
    max_memory_bytes: u64,
    /// One permit per pool slot, so a burst waits for a slot instead of failing to instantiate.
    slots: Arc<Semaphore>,
    compiler: Compiler,
    /// Uploads compiled (not loaded from the cache) since start.
    compilations: AtomicU64,
    /// Held while compiling: one compile at a time, each on one thread at a lower priority
    /// (see [`compile`]).
    compiling: std::sync::Mutex<()>,
    /// Dropped with the last `Executor` clone, which disconnects and so stops the epoch ticker.
    _stop_ticker: mpsc::Sender<()>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("max_memory_bytes", &self.inner.max_memory_bytes)
            .finish_non_exhaustive()
    }
}

impl Executor {
    pub fn new(config: ExecutorConfig) -> Result<Executor, Error> {
        let engine_error = |e: wasmtime::Error| Error::Engine(format!("{e:#}"));
        let instances = config.max_instances.max(1);
        let max_memory = config
            .max_memory_bytes
            .max(WASM_PAGE)
            .next_multiple_of(WASM_PAGE);

        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(instances)
            .total_core_instances(instances.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
            .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
            .total_memories(instances.saturating_mul(MEMORIES_PER_COMPONENT))
            .max_memories_per_component(MEMORIES_PER_COMPONENT)
            .total_tables(instances.saturating_mul(TABLES_PER_COMPONENT))
            .max_tables_per_component(TABLES_PER_COMPONENT)
            .max_memory_size(usize::try_from(max_memory).unwrap_or(usize::MAX))
            // Every instance runs on a fiber stack of its own (async calls).
            .total_stacks(instances)
            .linear_memory_keep_resident(
                usize::try_from(config.keep_resident_bytes).unwrap_or(usize::MAX),
            )
            .table_keep_resident(
                usize::try_from(config.keep_resident_bytes / 16).unwrap_or(usize::MAX),
            )
            // Keeping pages resident pays only when the reset copies back just the pages the
            // instance wrote, found with the kernel's PAGEMAP_SCAN (Linux 6.7+). wasmtime leaves
            // it off by default: without it the whole kept region is copied back every time.
            .pagemap_scan(Enabled::Auto);
        // Memory protection keys stay off (wasmtime's default; the `memory-protection-keys`
        // feature is not even compiled in): they are experimental and the sizing below already
        // keeps the reservation small.

        let mut wasm = engine_config(max_memory);
        wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm).map_err(engine_error)?;

        let mut linker = Linker::<State>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_error)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(engine_error)?;
        // Every version of the outbox, side by side: 0.x versions are not semver-compatible,
        // so `sluice:queue/outbox@0.1.0`, `@0.2.0` and `@0.3.0` are different imports.
        bindings::v1::Handler::add_to_linker::<State, HasSelf<State>>(&mut linker, |state| state)
            .map_err(engine_error)?;
        bindings::v2::Handler::add_to_linker::<State, HasSelf<State>>(&mut linker, |state| state)
            .map_err(engine_error)?;
        // 0.3.0's world also imports `wasi:http`, linked above with the rest of WASI.
        bindings::v3::sluice::queue::outbox::add_to_linker::<State, HasSelf<State>>(
            &mut linker,
            |state| state,
        )
        .map_err(engine_error)?;
        // 0.4.0 adds `wasi:keyvalue`, on Sluice's store (see `kv`).
        bindings::v4::sluice::queue::outbox::add_to_linker::<State, HasSelf<State>>(
            &mut linker,
            |state| state,
        )
        .map_err(engine_error)?;
        {
            use bindings::v4::wasi::keyvalue::{atomics, batch, store};
            store::add_to_linker::<State, HasSelf<State>>(&mut linker, |state| state)
                .map_err(engine_error)?;
            atomics::add_to_linker::<State, HasSelf<State>>(&mut linker, |state| state)
                .map_err(engine_error)?;
            batch::add_to_linker::<State, HasSelf<State>>(&mut linker, |state| state)
                .map_err(engine_error)?;
        }
        let http = outbound::Client::new().map_err(Error::Engine)?;

        let cache = ComponentCache::open(&config.cache_dir, &engine)?;

        let (stop_ticker, stopped) = mpsc::channel::<()>();
        let ticking = engine.weak();
        std::thread::Builder::new()
            .name("sluice-epoch".into())
            .spawn(move || tick(&ticking, &stopped))
            .map_err(|e| Error::Engine(format!("starting the epoch ticker thread: {e}")))?;

        Ok(Executor {
            inner: Arc::new(Inner {
                engine,
                linker,
                http,
                cache,
                max_memory_bytes: max_memory,
                slots: Arc::new(Semaphore::new(instances as usize)),
                compiler: config.compiler,
                compilations: AtomicU64::new(0),
                compiling: std::sync::Mutex::new(()),
                _stop_ticker: stop_ticker,
            }),
        })
    }

    /// Compiles `wasm`, one compile at a time and each on one thread (`parallel_compilation`
    /// is off) at a lower CPU priority: compiling an interpreter-sized component takes seconds
    /// of CPU, and running triggers must keep theirs meanwhile. A child process leaves the
    /// result in the cache; a compile in this process leaves it to the caller to store.
    fn compile(&self, wasm: &[u8]) -> Result<Component, Error> {
        let _one_at_a_time = self
            .inner
            .compiling
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let engine = &self.inner.engine;
        match &self.inner.compiler {
            Compiler::InProcess => compile::in_thread(engine, wasm),
            Compiler::Child(program) => {
                let cache = &self.inner.cache;
                compile::in_child(program, engine, cache, self.inner.max_memory_bytes, wasm)
            }
        }
    }

    /// Validates `wasm` as a handler component and compiles it (or loads it from the cache).
    pub fn prepare(&self, wasm: &[u8]) -> Result<Handler, Error> {
        check_header(wasm)?;
        // Refuse what could never link before paying for a compile, which for a large
        // component takes seconds.
        self.check_surface(wasm)?;
        let engine = &self.inner.engine;
        let digest = cache::digest(wasm);
        let (component, from_cache) = match self.inner.cache.load(engine, &digest) {
            Some(component) => (component, true),
            None => {
                self.inner.compilations.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("sluice_component_compilations_total").increment(1);
                (self.compile(wasm)?, false)
            }
        };
        let cached = from_cache || matches!(self.inner.compiler, Compiler::Child(_));
        let linked = self.link(&component);
        if linked.is_err() && !from_cache && cached {
            // Only a component that passed every check stays in the cache.
            self.inner.cache.remove(&digest);
        }
        let mut world = linked?;
        if !cached {
            match self.inner.cache.store(&digest, &component) {
                // Run from the cache file rather than from what the compiler left in anonymous
                // memory: its code and memory image are then file-backed pages, shared with the
                // page cache and evictable, instead of tens of MiB of heap per large component.
                Ok(()) => match self.inner.cache.load(engine, &digest) {
                    Some(mapped) => world = self.link(&mapped)?,
                    None => tracing::warn!(
                        "the compiled component could not be reloaded from the cache; running it from memory"
                    ),
                },
                Err(error) => tracing::warn!(
                    "the compiled component was not cached and will be compiled again after a restart: {error}"
                ),
            }
        }
        Ok(Handler {
            inner: Arc::new(HandlerInner {
                world,
                digest,
                from_cache,
            }),
        })
    }

    /// How many uploads this executor has compiled (cache loads and refusals before compiling
    /// are not counted); also exported as `sluice_component_compilations_total`.
    pub fn compilations(&self) -> u64 {
        self.inner.compilations.load(Ordering::Relaxed)
    }

    /// Checks the component's imports and exports from its type information, without
    /// compiling its code: `handle` must be an exported function, and the imports (names and
    /// types) must be ones the linker provides. The type of `handle` is left to
    /// [`Executor::link`], after compiling.
    fn check_surface(&self, wasm: &[u8]) -> Result<(), Error> {
        let surface = surface::read(wasm)
            .map_err(|e| Error::Invalid(format!("not a valid WebAssembly component: {e}")))?;
        match surface
            .exports
            .iter()
            .find(|export| export.name == "handle")
        {
            Some(export) if export.kind == surface::Kind::Func => {}
            Some(export) => return Err(handle_of_wrong_kind(export.kind.describe())),
            None => {
                return Err(no_handle(
                    surface.exports.iter().map(|export| export.name.as_str()),
                ));
            }
        }
        if surface.imports.len() == surface.imports_after_leading {
            return Ok(());
        }
        // Only the imports and their types: no code, so this compiles in a moment. If it does
        // not compile, the upload is invalid and compiling it will say why, quickly too, since
        // validation comes before code generation.
        let Ok(imports) = Component::new(&self.inner.engine, surface.imports_only(wasm)) else {
            return Ok(());
        };
        match self.inner.linker.instantiate_pre(&imports) {
            Ok(_) => Ok(()),
            Err(e) => Err(foreign_imports(
                surface.imports.iter().map(|import| import.name.as_str()),
                &e,
            )),
        }
    }

    /// Checks the component against the `handler` worlds and the host's imports.
    fn link(&self, component: &Component) -> Result<World, Error> {
        let engine = &self.inner.engine;
        let ty = component.component_type();
        match ty.get_export(engine, "handle").map(|export| export.ty) {
            Some(ComponentItem::ComponentFunc(_)) => {}
            Some(other) => return Err(handle_of_wrong_kind(item_kind(&other))),
            None => {
                let exports: Vec<String> = ty
                    .exports(engine)
                    .map(|(name, _)| name.to_owned())
                    .collect();
                return Err(no_handle(exports.iter().map(String::as_str)));
            }
        }
        let pre = self
            .inner
            .linker
            .instantiate_pre(component)
            .map_err(|e| foreign_imports(ty.imports(engine).map(|(name, _)| name), &e))?;
        World::of(pre)
    }

    /// The engine every handler is compiled for and runs in (its configuration is the host's:
    /// pooling allocator, epoch interruption, async calls).
    pub fn engine(&self) -> &wasmtime::Engine {
        &self.inner.engine
    }

    /// Runs `batch` in a fresh instance of `handler`.
    pub async fn invoke(
        &self,
        handler: &Handler,
        limits: &Limits,
        batch: Vec<Message>,
        check: OutboxCheck,
    ) -> Invocation {
        let _permit = self.inner.slots.acquire().await;
        self.inner.run(handler, limits, batch, check).await
    }
}

impl Inner {
    /// One invocation, start to finish. Ends by the time limit whatever the guest is doing:
    /// computing (the epoch deadline interrupts it) or waiting on the host (the wait is
    /// dropped, and with it the store and every request it had in flight).
    async fn run(
        &self,
        handler: &Handler,
        limits: &Limits,
        batch: Vec<Message>,
        check: OutboxCheck,
    ) -> Invocation {
        let start = Instant::now();
        let memory_limit = limits.memory_bytes.min(self.max_memory_bytes);
        let logs = Logs::new(limits.max_log_bytes);
        let world = &handler.inner.world;
        // Only a world that can reply needs to know which ids it may reply to.
        let ids: HashSet<String> = match world.replies() {
            true => batch.iter().map(|m| m.id.clone()).collect(),
            false => HashSet::new(),
        };
        // A limit past the end of the clock's range is no limit.
        let deadline = start.checked_add(limits.timeout.max(MIN_TIMEOUT));
        let state = State::new(
            limits,
            usize::try_from(memory_limit).unwrap_or(usize::MAX),
            &logs,
            check,
            ids,
            &self.http,
            deadline,
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.memory);
        // The deadline is an instant, not a number of ticks: when the epoch deadline arrives
        // the clock decides, so ticks that came late (or early) never move the limit. Until
        // then the guest yields every `YIELD_EVERY` of computing.
        store.set_epoch_deadline(ticks_until(start + YIELD_EVERY, start));
        store.epoch_deadline_callback(move |_| {
            let now = Instant::now();
            Ok(match deadline {
                Some(deadline) if now >= deadline => UpdateDeadline::Interrupt,
                Some(deadline) => {
                    UpdateDeadline::Yield(ticks_until(deadline.min(now + YIELD_EVERY), now))
                }
                None => UpdateDeadline::Yield(ticks_until(now + YIELD_EVERY, now)),
            })
        });

        let call = world.call(batch.into_iter());
        let answer = match deadline {
            Some(deadline) => {
                tokio::time::timeout_at(deadline.into(), call.run(&mut store))
                    .await
                    // Waiting on the host past the deadline: the same as computing past it.
                    .unwrap_or_else(|_| Err(wasmtime::Error::from(Trap::Interrupt)))
            }
            None => call.run(&mut store).await,
        };
        let outcome = match answer {
            Ok(Ok(failures)) => Outcome::Ok(failures),
            Ok(Err(reason)) => Outcome::Error(reason),
            Err(error) => {
                let (kind, message) = classify(
                    &error,
                    store.data().memory.refused,
                    memory_limit,
                    limits.timeout,
                    &logs,
                );
                Outcome::Failed { kind, message }
            }
        };
        let outbox = &mut store.data_mut().outbox;
        let sends = std::mem::take(&mut outbox.sends);
        let publishes = std::mem::take(&mut outbox.publishes);
        let replies = std::mem::take(&mut outbox.replies);
        let state = store.data_mut().kv.take_writes();
        drop(store);
        let duration = start.elapsed();
        match &outcome {
            Outcome::Failed { kind, message } => {
                tracing::info!(?kind, ?duration, "handler failed: {message}")
            }
            Outcome::Error(reason) => {
                tracing::debug!(?duration, "handler returned an error: {reason}")
            }
            Outcome::Ok(failures) => {
                tracing::debug!(?duration, failures = failures.len(), "handler returned ok")
            }
        }
        Invocation {
            outcome,
            logs: logs.finish(),
            sends,
            publishes,
            replies,
            state,
            duration,
        }
    }
}

/// The engine settings that decide what compiled code looks like: the host's engine and the
/// compiler process (see [`compile`]) both start from these, so what one compiles the other
/// loads. Instance allocation is left to the caller.
fn engine_config(max_memory_bytes: u64) -> Config {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .strategy(wasmtime::Strategy::Cranelift)
        .epoch_interruption(true)
        // Each slot reserves only what an instance may use (plus the default guard region)
        // instead of 4 GiB: with `max_instances` × 2 memories, a 4 GiB reservation each
        // would reserve terabytes of address space. The price is explicit bounds checks.
        .memory_reservation(max_memory_bytes)
        .memory_reservation_for_growth(0)
        // Instantiation maps the component's data segments copy-on-write instead of copying.
        .memory_init_cow(true)
        // One thread per compile (see `Executor::compile`): a compile never takes every
        // core from running triggers.
        .parallel_compilation(false);
    config
}

/// The epoch ticker: advances the engine's epoch by one for every [`EPOCH_TICK`] of wall time,
/// until `stopped` disconnects or the engine is gone. It sleeps until the next tick is due by
/// the clock and, when it wakes late (a busy machine), adds every tick that came due meanwhile,
/// so the epoch never falls behind the clock by more than one late wake-up.
fn tick(engine: &wasmtime::EngineWeak, stopped: &mpsc::Receiver<()>) {
    let origin = Instant::now();
    let tick_nanos = EPOCH_TICK.as_nanos() as u64;
    // Ticks since `origin`; at 5 ms a tick, u64 nanoseconds last for centuries.
    let mut ticks: u64 = 0;
    loop {
        let next = origin + Duration::from_nanos((ticks + 1) * tick_nanos);
        match stopped.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let Some(engine) = engine.upgrade() else {
            return;
        };
        let due = origin.elapsed().as_nanos() as u64 / tick_nanos;
        while ticks < due {
            engine.increment_epoch();
            ticks += 1;
        }
    }
}

/// Epoch ticks from `now` until `deadline`, rounded up and at least one: when they have passed,
/// the deadline callback looks at the clock again. A tick may come at once after `now`, so this
/// can fire up to one tick early, never late; the callback then re-arms for what is left.
fn ticks_until(deadline: Instant, now: Instant) -> u64 {
    let left = deadline.saturating_duration_since(now);
    let ticks = left.as_nanos().div_ceil(EPOCH_TICK.as_nanos());
    u64::try_from(ticks).unwrap_or(u64::MAX).max(1)
}

/// Names why an invocation failed, from the error wasmtime returned and what the host saw.
fn classify(
    error: &wasmtime::Error,
    memory_refused: Option<usize>,
    memory_limit: u64,
    timeout: Duration,
    logs: &Logs,
) -> (FailureKind, String) {
    let trap = error.downcast_ref::<Trap>().copied();
    match trap {
        Some(Trap::Interrupt) => {
            return (
                FailureKind::Timeout,
                format!("the handler exceeded its time limit of {timeout:?}"),
            );
        }
        Some(Trap::StackOverflow) => {
            return (
                FailureKind::StackOverflow,
                format!(
                    "the handler overflowed its call stack ({}), most likely unbounded recursion",
                    Trap::StackOverflow
                ),
            );
        }
        _ => {}
    }
    // A refused growth is what made the guest fail, whichever way it then failed: Rust aborts
    // with `unreachable`, C may dereference null, instantiation may fail outright.
    if let Some(wanted) = memory_refused {
        return (
            FailureKind::OutOfMemory,
            format!(
                "the handler ran out of memory: its limit is {} ({memory_limit} bytes) and it tried to grow to {wanted} bytes",
                mib(memory_limit)
            ),
        );
    }
    if trap == Some(Trap::UnreachableCodeReached) {
        let stderr = logs.stderr_tail();
        if let Some(at) = stderr.rfind("panicked at") {
            // Rust's panic report, minus its hint about RUST_BACKTRACE, which a handler can't use.
            let panic: Vec<&str> = stderr[at..]
                .lines()
                .map(str::trim)
                .filter(|line| {
                    !line.is_empty() && !line.starts_with("note: run with `RUST_BACKTRACE")
                })
                .collect();
            let panic = panic.join(" ");
            return (FailureKind::Panic, format!("the handler {panic}"));
        }
    }
    let message = match trap {
        Some(trap) => {
            let place = error
                .downcast_ref::<wasmtime::WasmBacktrace>()
                .and_then(|bt| {
                    bt.frames()
                        .iter()
                        .find_map(|frame| frame.func_name().map(str::to_owned))
                })
                .map(|name| format!(" in `{name}`"))
                .unwrap_or_default();
            format!("the handler trapped{place}: {trap}")
        }
        None => format!("the handler could not run: {error:#}"),
    };
    (FailureKind::Trap, message)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Tells apart the uploads that are not components at all, before wasmtime sees them.
fn check_header(wasm: &[u8]) -> Result<(), Error> {
    const MAGIC: &[u8] = b"\0asm";
    const CORE_MODULE: [u8; 4] = [0x01, 0x00, 0x00, 0x00];
    const COMPONENT: [u8; 4] = [0x0d, 0x00, 0x01, 0x00];
    if !wasm.starts_with(MAGIC) {
        let found = if wasm.is_empty() {
            "the upload is empty".to_owned()
        } else if wasm.trim_ascii_start().starts_with(b"(") {
            "it looks like WebAssembly text (.wat); upload the binary component instead".to_owned()
        } else {
            format!(
                "it starts with {} instead of the magic bytes `\\0asm`",
                hex::encode(&wasm[..wasm.len().min(4)])
            )
        };
        return Err(Error::Invalid(format!("not a WebAssembly binary: {found}")));
    }
    match wasm.get(4..8) {
        Some(version) if version == COMPONENT => Ok(()),
        Some(version) if version == CORE_MODULE => Err(Error::Invalid(
            "this is a core WebAssembly module, not a component; build with `cargo build --target wasm32-wasip2` \
             (Rust) or wrap it with `wasm-tools component new`"
                .to_owned(),
        )),
        Some(version) => Err(Error::Invalid(format!(
            "not a WebAssembly component: unsupported version/layer {} (a component has 0d000100)",
            hex::encode(version)
        ))),
        None => Err(Error::Invalid("not a WebAssembly binary: it ends right after the magic bytes".to_owned())),
    }
}

/// The refusal of a component that does not export `handle`; `exports` are what it does export.
fn no_handle<'a>(exports: impl Iterator<Item = &'a str>) -> Error {
    let exports: Vec<String> = exports.map(|name| format!("`{name}`")).collect();
    let exports = if exports.is_empty() {
        "nothing".to_owned()
    } else {
        exports.join(", ")
    };
    Error::Invalid(format!(
        "the component does not export the `handle` function of world {WORLD} (it exports {exports}); \
         build it against the `handler` world of Sluice's WIT package"
    ))
}

fn handle_of_wrong_kind(kind: &str) -> Error {
    Error::Invalid(format!(
        "the component exports `handle`, but as {kind} rather than the function of world {WORLD}"
    ))
}

/// The refusal of a component whose imports the linker refused (`linker` says why).
/// Imports outside the namespaces Sluice provides at all are named, up to a few; others (a WASI
/// or outbox import of the wrong version or shape) are named by wasmtime's own words.
fn foreign_imports<'a>(imports: impl Iterator<Item = &'a str>, linker: &wasmtime::Error) -> Error {
    let foreign: Vec<String> = imports
        .filter(|name| !name.starts_with("wasi:") && !name.starts_with("sluice:queue/"))
        .map(|name| format!("`{name}`"))
        .collect();
    let what = match foreign.len() {
        0 => "something Sluice does not provide".to_owned(),
        n if n <= FOREIGN_IMPORTS_NAMED => {
            format!("{}, which Sluice does not provide", foreign.join(", "))
        }
        n => format!(
            "{} and {} more, which Sluice does not provide",
            foreign[..FOREIGN_IMPORTS_NAMED].join(", "),
            n - FOREIGN_IMPORTS_NAMED
        ),
    };
    Error::Invalid(format!(
        "the component imports {what}. Handlers may import only WASI 0.2 (wasi:cli, wasi:io, \
         wasi:clocks, wasi:random, wasi:filesystem, wasi:sockets, all of which deny access; \
         wasi:http/outgoing-handler, to the hosts the function allows; wasi:keyvalue@0.2.0-draft2 \
         store, atomics and batch, on the buckets the function lists) and \
         sluice:queue/outbox@0.4.0 (or @0.3.0, @0.2.0, @0.1.0). (wasmtime: {linker:#})"
    ))
}

fn item_kind(item: &ComponentItem) -> &'static str {
    match item {
        ComponentItem::ComponentFunc(_) => "a function",
        ComponentItem::CoreFunc(_) => "a core function",
        ComponentItem::Module(_) => "a core module",
        ComponentItem::Component(_) => "a component",
        ComponentItem::ComponentInstance(_) => "an instance",
        ComponentItem::Type(_) => "a type",
        ComponentItem::Resource(_) => "a resource",
    }
}
