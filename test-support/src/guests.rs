//! The repository's own components (`examples/` and `tests/guests/`), built for wasm32-wasip2 by
//! one piece of code into one target directory for the unit tests, the end-to-end tests and
//! `sluice bench` alike, so each is compiled once however many of them run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Why the components could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot find the Sluice repository (examples/ and tests/guests/) to build components from; run from the repository"
    )]
    NoRepository,
    #[error("running cargo to build {workspace}: {source}")]
    Cargo {
        workspace: String,
        source: std::io::Error,
    },
    #[error(
        "building {workspace} for wasm32-wasip2 failed (is the target installed? `rustup target add wasm32-wasip2`):\n{stderr}"
    )]
    Failed { workspace: String, stderr: String },
}

/// The repository this binary was built from, or the current directory if that is one.
pub fn repo() -> Result<PathBuf, Error> {
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    [built_from, PathBuf::from(".")]
        .into_iter()
        .find(|c| {
            c.join("examples/Cargo.toml").is_file() && c.join("tests/guests/Cargo.toml").is_file()
        })
        .ok_or(Error::NoRepository)
}

/// Where the components are built: `SLUICE_GUEST_TARGET_DIR`, else `guests/` in the cargo
/// target directory (`CARGO_TARGET_DIR`, else the repository's `target/`). Never the target
/// directory itself: a running `cargo test` holds its lock.
pub fn target_dir(repo: &Path) -> PathBuf {
    if let Some(dir) = std::env::var_os("SLUICE_GUEST_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target"))
        .join("guests")
}

/// Builds `workspace` (`examples` or `tests/guests`) once per process into `target_dir` and
/// returns the directory holding its `.wasm` files.
pub fn build(workspace: &str, target_dir: Option<&Path>) -> Result<PathBuf, Error> {
    static BUILT: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
    let repo = repo()?;
    let target_dir = match target_dir {
        Some(dir) => dir.to_owned(),
        None => self::target_dir(&repo),
    };
    let out = target_dir.join("wasm32-wasip2").join("release");
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if built
        .iter()
        .any(|(w, t)| w == workspace && *t == target_dir)
    {
        return Ok(out);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
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
        // The host's build settings are not the guests'.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .map_err(|source| Error::Cargo {
            workspace: workspace.to_owned(),
            source,
        })?;
    if !output.status.success() {
        return Err(Error::Failed {
            workspace: workspace.to_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    built.push((workspace.to_owned(), target_dir));
    Ok(out)
}

/// Every source file under `path` (or `path` itself), for hashing what a build read: installed
/// packages (`node_modules`), caches (`__pycache__`, `*.pyc`) and built components (`*.wasm`)
/// are left out, so that neither installing nor building changes the hash.
pub fn collect_sources(path: &Path, files: &mut Vec<PathBuf>) {
    if path.is_file() {
        if path
            .extension()
            .is_none_or(|ext| ext != "wasm" && ext != "pyc")
        {
            files.push(path.to_owned());
        }
        return;
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name != "node_modules" && name != "__pycache__" {
            collect_sources(&entry.path(), files);
        }
    }
}
