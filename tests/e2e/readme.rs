//! The README is a walkthrough that runs: every `sh` block marked `<!-- walkthrough -->` runs, in
//! the order written, in one bash (`set -euo pipefail`, so variables carry from block to block),
//! against a fresh `sluice serve` with the binary under test first on `PATH`, failing on the
//! first command that fails.
//!
//! What the test changes, and only this: the server's address (`localhost:7070` and
//! `127.0.0.1:7070` become the test server's), `curl` fails on an HTTP error status (a function
//! wrapping it with `--fail-with-body`), and the examples' build directory is the one the other
//! tests build into (`CARGO_TARGET_DIR` for the README's `cargo build`; `examples/target/` in
//! paths, and in the example chain's manifest, which is copied). The blocks run in a temporary
//! directory that links `examples` to the repository's, so files they write stay out of it.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::support::{ADMIN_TOKEN, Server, examples_dir, repo};

/// A `sh` block of the README, with the line its fence opens on.
struct Block {
    line: usize,
    text: String,
}

/// The blocks marked to run, in order. Every `sh` block must be marked one way or the other, so
/// a new block is a decision, not an accident.
fn walkthrough(readme: &str) -> Vec<Block> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim_end() != "```sh" {
            i += 1;
            continue;
        }
        let marker = i.checked_sub(1).map(|j| lines[j].trim()).unwrap_or("");
        let runs = marker == "<!-- walkthrough -->";
        assert!(
            runs || marker.starts_with("<!-- not run: "),
            "README.md:{}: mark the sh block `<!-- walkthrough -->` or `<!-- not run: why -->`",
            i + 1
        );
        let start = i;
        let end = (i + 1..lines.len())
            .find(|&j| lines[j].trim_end() == "```")
            .unwrap_or_else(|| panic!("README.md:{}: unclosed block", start + 1));
        if runs {
            blocks.push(Block {
                line: start + 1,
                text: lines[start + 1..end].join("\n"),
            });
        }
        i = end + 1;
    }
    blocks
}

#[test]
fn every_sh_block_is_marked_and_the_walkthrough_covers_the_quickstart() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let blocks = walkthrough(&readme);
    let all: String = blocks.iter().map(|b| b.text.as_str()).collect();
    for command in [
        "sluice deploy",
        "sluice apply examples/chain/sluice.toml",
        "sluice functions untrigger",
        "/messages/receive",
        "sluice topic subscribe",
        "--wait-reply",
        "sluice schedule put",
    ] {
        assert!(all.contains(command), "the walkthrough lost `{command}`");
    }
}

#[tokio::test]
async fn the_readme_walkthrough_runs_in_order_on_a_fresh_server() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let (server, _data) = Server::start().await;
    let work = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(repo().join("examples"), work.path().join("examples")).unwrap();

    // The components as the other tests build them; the README's `cargo build` then finds
    // them fresh in the same target directory.
    let built = examples_dir();
    let target_dir = built.parent().and_then(Path::parent).unwrap().to_owned();
    let chain = std::fs::read_to_string(repo().join("examples/chain/sluice.toml")).unwrap();
    let chain = chain.replace(
        "../target/wasm32-wasip2/release/",
        &format!("{}/", built.display()),
    );
    let chain_path = work.path().join("chain.toml");
    std::fs::write(&chain_path, chain).unwrap();

    let mut script = String::from(
        "set -euo pipefail\n\
         curl() { command curl --fail-with-body \"$@\"; }\n\
         set -x\n",
    );
    for block in walkthrough(&readme) {
        let text = block
            .text
            .replace("localhost:7070", server.addr())
            .replace("127.0.0.1:7070", server.addr())
            .replace("examples/chain/sluice.toml", chain_path.to_str().unwrap())
            .replace(
                "examples/target/wasm32-wasip2/release/",
                &format!("{}/", built.display()),
            );
        script.push_str(&format!(": README.md line {}\n{text}\n", block.line));
    }

    let sluice = Path::new(env!("CARGO_BIN_EXE_sluice"));
    let path = std::env::join_paths(std::iter::once(sluice.parent().unwrap().to_owned()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let stdout = std::fs::File::create(work.path().join("stdout")).unwrap();
    let stderr = std::fs::File::create(work.path().join("stderr")).unwrap();
    let mut child = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(work.path())
        .env("PATH", path)
        .env("SLUICE_SERVER", &server.url)
        .env("SLUICE_TOKEN", ADMIN_TOKEN)
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .expect("bash");
    let status = tokio::time::timeout(Duration::from_secs(120), child.wait()).await;
    let stdout = std::fs::read_to_string(work.path().join("stdout")).unwrap_or_default();
    let stderr = std::fs::read_to_string(work.path().join("stderr")).unwrap_or_default();
    let status = status.unwrap_or_else(|_| {
        panic!("the walkthrough took over 2 minutes; its trace:\n{stderr}\nits output:\n{stdout}")
    });
    assert!(
        status.expect("wait for bash").success(),
        "the README walkthrough failed at the last command of this trace (`: README.md line N` \
         opens each block):\n{stderr}\nits output:\n{stdout}"
    );
    // What the blocks say they do, done: the quote came back through the queue, and the
    // chain's functions were deployed by the manifest.
    assert!(stdout.contains("\"total_cents\":750"), "{stdout}");
    let (_, functions) = server.get("/v1/functions").await;
    let names: Vec<&str> = functions["functions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    for name in ["log", "router", "enrich", "notify", "quote"] {
        assert!(names.contains(&name), "{name} not deployed: {names:?}");
    }
}

/// Every metric the host registers (`metrics::counter!`, `gauge!`, `histogram!` with a literal
/// name) has a row in docs/metrics.md, and the page names no metric the host does not have.
#[test]
fn every_metric_is_documented() {
    fn sources(dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut files = Vec::new();
    sources(&repo().join("host/src"), &mut files);
    let mut registered = std::collections::BTreeSet::new();
    for file in &files {
        for kind in ["counter!(", "gauge!(", "histogram!("] {
            for (at, _) in file.match_indices(kind) {
                let rest = file[at + kind.len()..].trim_start();
                if let Some(name) = rest.strip_prefix('"').and_then(|r| r.split('"').next()) {
                    registered.insert(name.to_owned());
                }
            }
        }
    }
    assert!(registered.len() > 10, "{registered:?}");
    let page = std::fs::read_to_string(repo().join("docs/metrics.md")).unwrap();
    let documented: std::collections::BTreeSet<String> = page
        .lines()
        .filter_map(|line| line.strip_prefix("| `")?.split('`').next())
        .map(str::to_owned)
        .collect();
    assert_eq!(
        registered, documented,
        "docs/metrics.md against the host's metrics"
    );
}
