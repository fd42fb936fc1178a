//! Compiles uploads to native code, one at a time and at a lower CPU priority than the rest of
//! the host: on a thread of this process, or in a child process (`sluice compile-component`)
//! that stores its result in the compiled-component cache and exits.
//!
//! Compiling an interpreter-sized component (a Python or JavaScript runtime) allocates hundreds
//! of MiB inside cranelift; in this process most of that stays resident after the compile (the
//! allocator keeps it for reuse), so a host that had compiled a few such uploads held ~400 MiB
//! it would never use again. A child gives all of it back when it exits, and a crash inside the
//! compiler cannot take the host down.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use wasmtime::component::Component;
use wasmtime::{Engine, InstanceAllocationStrategy};

use super::cache::{self, ComponentCache};
use super::{Error, engine_config};

/// Where uploads are compiled.
#[derive(Debug, Clone, Default)]
pub enum Compiler {
    /// On a thread of this process (tests and the benchmark's in-process measurements).
    #[default]
    InProcess,
    /// In a child process running `PROGRAM compile-component`: the `sluice` binary itself.
    Child(PathBuf),
}

impl Compiler {
    /// A child process of this very binary, which must be `sluice` (the server and the
    /// benchmark; a test binary has no `compile-component` command). On Linux it runs
    /// `/proc/self/exe`, the running program's own file even when an upgrade has since replaced
    /// it on disk, so the child always compiles for this engine.
    pub fn this_binary() -> Compiler {
        let own = Path::new("/proc/self/exe");
        if cfg!(target_os = "linux") && own.exists() {
            return Compiler::Child(own.to_owned());
        }
        match std::env::current_exe() {
            Ok(program) => Compiler::Child(program),
            Err(error) => {
                tracing::warn!(%error, "cannot find this program's path; compiling uploads in this process");
                Compiler::InProcess
            }
        }
    }
}

/// How much lower than the rest of the host a compile runs (a `nice` increment): enough that
/// invocations and the API win the CPU whenever they want it.
const COMPILE_NICE: i32 = 10;

/// The child's exit status when the upload itself is invalid (its standard error says why),
/// as opposed to the compiler failing: `EX_DATAERR`, which nothing else in `sluice` exits with.
const EXIT_INVALID: i32 = 65;

/// Compiles `wasm` on a thread of its own at a lower CPU priority.
pub(super) fn in_thread(engine: &Engine, wasm: &[u8]) -> Result<Component, Error> {
    let started = Instant::now();
    let compiled = std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("sluice-compile".into())
            .spawn_scoped(scope, || {
                lower_this_threads_priority(COMPILE_NICE);
                Component::new(engine, wasm)
            })
            .map(|thread| thread.join())
    });
    let component = match compiled {
        Ok(Ok(result)) => result.map_err(|e| invalid(&format!("{e:#}")))?,
        Ok(Err(_panicked)) => return Err(Error::Engine("the compiler thread panicked".into())),
        Err(e) => {
            return Err(Error::Engine(format!(
                "cannot start a compiler thread: {e}"
            )));
        }
    };
    tracing::info!(bytes = wasm.len(), took = ?started.elapsed(), "compiled a component");
    Ok(component)
}

/// Compiles `wasm` in a child process running `program compile-component`, which stores the
/// result in `cache`; then loads it from there.
pub(super) fn in_child(
    program: &Path,
    engine: &Engine,
    cache: &ComponentCache,
    max_memory_bytes: u64,
    wasm: &[u8],
) -> Result<Component, Error> {
    let started = Instant::now();
    let cannot = |e: std::io::Error| {
        Error::Engine(format!(
            "cannot run the compiler process {}: {e}",
            program.display()
        ))
    };
    let mut child = Command::new(program)
        .arg("compile-component")
        .arg("--cache-dir")
        .arg(cache.dir())
        .arg("--max-memory-bytes")
        .arg(max_memory_bytes.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(cannot)?;
    // The child reads all of its input before it writes anything, so writing it all first
    // cannot deadlock. A child that dies early breaks the pipe: its status says why.
    let written = child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(wasm))
        .unwrap_or(Ok(()));
    let output = child.wait_with_output().map_err(cannot)?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stderr = stderr.trim();
    if output.status.code() == Some(EXIT_INVALID) {
        // The child printed the whole message of its `Error::Invalid`.
        return Err(Error::Invalid(stderr.to_owned()));
    }
    if !output.status.success() {
        return Err(Error::Engine(format!(
            "the compiler process failed ({}): {}",
            output.status,
            if stderr.is_empty() {
                "it said nothing"
            } else {
                stderr
            }
        )));
    }
    written.map_err(cannot)?;
    let component = cache.load(engine, &cache::digest(wasm)).ok_or_else(|| {
        Error::Engine(
            "the compiler process succeeded but left nothing this engine can load in the \
             compiled-component cache; check that the cache directory is writable and is not \
             shared with another version of Sluice"
                .into(),
        )
    })?;
    tracing::info!(bytes = wasm.len(), took = ?started.elapsed(), "compiled a component in a child process");
    Ok(component)
}

/// The child's side (`sluice compile-component`): reads a component from standard input,
/// compiles it for an engine configured as the host's, stores it in the cache at `cache_dir`,
/// and exits: 0 when stored, [`EXIT_INVALID`] when the upload is invalid, 1 otherwise; standard
/// error says why.
pub fn child_main(cache_dir: &Path, max_memory_bytes: u64) -> i32 {
    let mut wasm = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut wasm) {
        eprintln!("reading the component from standard input: {e}");
        return 1;
    }
    match compile_into_cache(cache_dir, max_memory_bytes, &wasm) {
        Ok(()) => 0,
        Err(Error::Invalid(reason)) => {
            eprintln!("{reason}");
            EXIT_INVALID
        }
        Err(other) => {
            eprintln!("{other}");
            1
        }
    }
}

/// Compiles `wasm` at a lower priority and stores it in the cache at `cache_dir`, for an engine
/// whose compiled artifacts load in an executor with the same `max_memory_bytes`. The
/// allocation strategy is not part of that compatibility, and this engine never instantiates,
/// so it reserves no instance pool.
fn compile_into_cache(cache_dir: &Path, max_memory_bytes: u64, wasm: &[u8]) -> Result<(), Error> {
    lower_this_threads_priority(COMPILE_NICE);
    let mut config = engine_config(max_memory_bytes);
    config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
    let engine = Engine::new(&config).map_err(|e| Error::Engine(format!("{e:#}")))?;
    let cache = ComponentCache::open(cache_dir, &engine)?;
    let compiled = engine
        .precompile_component(wasm)
        .map_err(|e| invalid(&format!("{e:#}")))?;
    cache.store_bytes(&cache::digest(wasm), &compiled)
}

fn invalid(reason: &str) -> Error {
    Error::Invalid(format!("not a valid WebAssembly component: {reason}"))
}

/// Lowers the calling thread's CPU priority by `nice` (Linux keeps a nice value per thread;
/// raising it needs no privilege). Best effort: elsewhere, or if refused, nothing changes.
fn lower_this_threads_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid has no preconditions; setpriority only reads its arguments and
        // changes this thread's nice value.
        #[allow(unsafe_code)]
        let changed = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice)
        };
        if changed != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower the compiler thread's priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the child stores is what the host's executor loads: same cache file name (engine
    /// fingerprint) and an artifact its engine accepts, although the child's engine has no
    /// instance pool.
    #[test]
    fn the_childs_compilation_loads_in_the_host() {
        let wasm = crate::executor::tests::guest("ok");
        let dir = tempfile::TempDir::new().unwrap();
        let max_memory = 64 * 1024 * 1024;
        compile_into_cache(dir.path(), max_memory, &wasm).unwrap();
        let executor = crate::executor::Executor::new(crate::executor::ExecutorConfig {
            cache_dir: dir.path().to_owned(),
            max_memory_bytes: max_memory,
            max_instances: 2,
            keep_resident_bytes: 0,
            compiler: Compiler::InProcess,
        })
        .unwrap();
        let handler = executor.prepare(&wasm).unwrap();
        assert!(handler.from_cache());
        assert_eq!(executor.compilations(), 0);
    }

    #[test]
    fn an_invalid_upload_is_invalid_in_the_child_too() {
        let dir = tempfile::TempDir::new().unwrap();
        let err =
            compile_into_cache(dir.path(), 64 << 20, b"\0asm\x0d\0\x01\0garbage").unwrap_err();
        assert!(
            matches!(&err, Error::Invalid(m) if m.starts_with("not a valid WebAssembly component")),
            "{err}"
        );
    }
}
