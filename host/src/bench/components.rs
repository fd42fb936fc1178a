//! Where the benchmark's components come from: a directory given with `--components`, or the
//! repository's `examples/` and `tests/guests/` built with cargo for wasm32-wasip2.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The components every phase uses, as bytes.
pub struct Components {
    pub sum: Vec<u8>,
    pub ok: Vec<u8>,
    pub trap: Vec<u8>,
    pub looping: Vec<u8>,
    pub oom: Vec<u8>,
    pub recurse: Vec<u8>,
}

/// File names inside a components directory.
const FILES: [&str; 6] = [
    "sum.wasm",
    "guest_ok.wasm",
    "guest_trap.wasm",
    "guest_loop.wasm",
    "guest_oom.wasm",
    "guest_recurse.wasm",
];

pub fn load(dir: Option<&Path>, target_dir: Option<&Path>) -> anyhow::Result<Components> {
    let dir = match dir {
        Some(dir) => dir.to_owned(),
        None => build(target_dir)?,
    };
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).with_context(|| format!("reading component {}", path.display()))
    };
    let [sum, ok, trap, looping, oom, recurse] = FILES;
    Ok(Components {
        sum: read(sum)?,
        ok: read(ok)?,
        trap: read(trap)?,
        looping: read(looping)?,
        oom: read(oom)?,
        recurse: read(recurse)?,
    })
}

/// The repository this binary was built from, or the current directory if that is one.
fn repo() -> anyhow::Result<PathBuf> {
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for candidate in [built_from, PathBuf::from(".")] {
        if candidate.join("examples/Cargo.toml").is_file()
            && candidate.join("tests/guests/Cargo.toml").is_file()
        {
            return Ok(candidate);
        }
    }
    bail!(
        "cannot find the Sluice repository (examples/ and tests/guests/) to build the benchmark's \
         components; run from the repository or pass --components DIR holding {}",
        FILES.join(", ")
    )
}

/// Builds both guest workspaces (release, wasm32-wasip2) and returns their output directory.
fn build(target_dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    let repo = repo()?;
    let target_dir = target_dir
        .map(Path::to_owned)
        .unwrap_or_else(|| repo.join("target").join("bench-wasm"));
    for workspace in ["examples", "tests/guests"] {
        eprintln!("building {workspace} for wasm32-wasip2 …");
        let status = Command::new("cargo")
            .args([
                "build",
                "--quiet",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
            ])
            .arg(repo.join(workspace).join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir)
            .status()
            .context("running cargo to build the benchmark's components")?;
        if !status.success() {
            bail!(
                "building {workspace} for wasm32-wasip2 failed (is the target installed? \
                 `rustup target add wasm32-wasip2`)"
            );
        }
    }
    Ok(target_dir.join("wasm32-wasip2").join("release"))
}
