//! Where the benchmark's components come from: a directory given with `--components`, or the
//! repository's `examples/` and `tests/guests/` built with cargo for wasm32-wasip2, and the
//! Python and JavaScript no-ops of `tests/guests/{python,js}` built with `scripts/build-python`
//! and `scripts/build-js` (cached by a hash of their inputs: each build takes 10–30 s).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The components every phase uses, as bytes.
pub(crate) struct Components {
    pub(crate) sum: Vec<u8>,
    pub(crate) ok: Vec<u8>,
    pub(crate) trap: Vec<u8>,
    pub(crate) looping: Vec<u8>,
    pub(crate) oom: Vec<u8>,
    pub(crate) recurse: Vec<u8>,
    /// `examples/reply`: answers price quotes through the outbox (request-reply).
    pub(crate) reply: Vec<u8>,
    /// `examples/webhook`: POSTs each message to the URL in its `webhook-url` attribute.
    pub(crate) webhook: Vec<u8>,
    /// `examples/counter`: counts each customer's messages in bucket `counts`.
    pub(crate) counter: Vec<u8>,
}

/// The Python and JavaScript no-op handlers, for the `polyglot` phase.
pub(crate) struct Polyglot {
    pub(crate) python: Vec<u8>,
    pub(crate) js: Vec<u8>,
}

/// File names of the no-ops inside a components directory.
const POLYGLOT_FILES: [&str; 2] = ["noop_python.wasm", "noop_js.wasm"];

/// The no-ops from `dir` when it holds them, else built from the repository.
pub(crate) fn load_polyglot(
    dir: Option<&Path>,
    target_dir: Option<&Path>,
) -> anyhow::Result<Polyglot> {
    if let Some(dir) = dir
        && POLYGLOT_FILES.iter().all(|f| dir.join(f).is_file())
    {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).with_context(|| format!("reading component {}", path.display()))
        };
        return Ok(Polyglot {
            python: read(POLYGLOT_FILES[0])?,
            js: read(POLYGLOT_FILES[1])?,
        });
    }
    let repo = sluice_test_support::guests::repo()?;
    let out_dir = target_dir
        .map(Path::to_owned)
        .unwrap_or_else(|| repo.join("target").join("bench-wasm"))
        .join("polyglot");
    Ok(Polyglot {
        python: build_polyglot(
            &repo,
            &out_dir,
            "scripts/build-python",
            "tests/guests/python/noop.py",
            &["sdk/python/sluice_sdk"],
        )?,
        js: build_polyglot(
            &repo,
            &out_dir,
            "scripts/build-js",
            "tests/guests/js/noop.js",
            &["sdk/js/src", "sdk/js/build.mjs", "sdk/js/package-lock.json"],
        )?,
    })
}

/// Builds `source` with `script` into `out_dir`, unless a build of the same inputs is there.
fn build_polyglot(
    repo: &Path,
    out_dir: &Path,
    script: &str,
    source: &str,
    inputs: &[&str],
) -> anyhow::Result<Vec<u8>> {
    use sha2::{Digest, Sha256};

    let mut files = Vec::new();
    for input in inputs.iter().copied().chain([source, script, "wit"]) {
        sluice_test_support::guests::collect_sources(&repo.join(input), &mut files);
    }
    files.sort();
    let mut hash = Sha256::new();
    for file in &files {
        hash.update(
            file.strip_prefix(repo)
                .unwrap_or(file)
                .to_string_lossy()
                .as_bytes(),
        );
        hash.update(std::fs::read(file).with_context(|| format!("reading {}", file.display()))?);
    }
    let stem = Path::new(source)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("component");
    let language = if script.ends_with("python") {
        "python"
    } else {
        "js"
    };
    let out = out_dir.join(format!(
        "{stem}-{language}-{}.wasm",
        hex::encode(&hash.finalize()[..8])
    ));
    if !out.is_file() {
        std::fs::create_dir_all(out_dir)?;
        eprintln!("building {source} with {script} …");
        let partial = out.with_extension("partial");
        let status = Command::new(repo.join(script))
            .arg(repo.join(source))
            .arg("-o")
            .arg(&partial)
            .status()
            .with_context(|| format!("running {script}"))?;
        if !status.success() {
            bail!(
                "{script} {source} failed; install the toolchains as scripts/test does, or pass \
                 --components DIR holding {}",
                POLYGLOT_FILES.join(" and ")
            );
        }
        std::fs::rename(&partial, &out)?;
    }
    std::fs::read(&out).with_context(|| format!("reading {}", out.display()))
}

/// File names inside a components directory.
const FILES: [&str; 9] = [
    "sum.wasm",
    "guest_ok.wasm",
    "guest_trap.wasm",
    "guest_loop.wasm",
    "guest_oom.wasm",
    "guest_recurse.wasm",
    "reply.wasm",
    "webhook.wasm",
    "counter.wasm",
];

pub(crate) fn load(dir: Option<&Path>, target_dir: Option<&Path>) -> anyhow::Result<Components> {
    let dir = match dir {
        Some(dir) => dir.to_owned(),
        None => build(target_dir)?,
    };
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).with_context(|| format!("reading component {}", path.display()))
    };
    let [
        sum,
        ok,
        trap,
        looping,
        oom,
        recurse,
        reply,
        webhook,
        counter,
    ] = FILES;
    Ok(Components {
        sum: read(sum)?,
        ok: read(ok)?,
        trap: read(trap)?,
        looping: read(looping)?,
        oom: read(oom)?,
        recurse: read(recurse)?,
        reply: read(reply)?,
        webhook: read(webhook)?,
        counter: read(counter)?,
    })
}

/// Builds both guest workspaces (release, wasm32-wasip2) and returns their output directory.
fn build(target_dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    eprintln!("building examples and tests/guests for wasm32-wasip2 …");
    sluice_test_support::guests::build("examples", target_dir)?;
    Ok(sluice_test_support::guests::build(
        "tests/guests",
        target_dir,
    )?)
}
