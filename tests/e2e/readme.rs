//! The READMEs are walkthroughs that run: in `README.md` and in each example's, every `sh` block
//! marked `<!-- walkthrough -->` runs, in the order written, in one bash (`set -euo pipefail`,
//! so variables carry from block to block), against a fresh `sluice serve` with the binary under
//! test first on `PATH`, failing on the first command that fails.
//!
//! What the test changes, and only this: the server's address (`localhost:7070` and
//! `127.0.0.1:7070` become the test server's), `curl` fails on an HTTP error status (a function
//! wrapping it with `--fail-with-body`) unless it shows the status line (`-i`), and in an
//! example's README it asks again for up to 20 s (a read right after a send waits for the batch
//! to commit, as a reader would), and the examples' build directory is the one the other tests
//! build into (`CARGO_TARGET_DIR` for the README's `cargo build`; `examples/target/` in paths,
//! and in the examples' manifests, which are copied). The blocks run in a temporary directory
//! that links `examples` to the repository's, so files they write stay out of it.

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
fn walkthrough(file: &str, readme: &str) -> Vec<Block> {
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
            "{file}:{}: mark the sh block `<!-- walkthrough -->` or `<!-- not run: why -->`",
            i + 1
        );
        let start = i;
        let end = (i + 1..lines.len())
            .find(|&j| lines[j].trim_end() == "```")
            .unwrap_or_else(|| panic!("{file}:{}: unclosed block", start + 1));
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
    let blocks = walkthrough("README.md", &readme);
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

/// Runs the walkthrough of `file` (a path from the repository's root) against a fresh server;
/// returns the server and what the blocks printed.
async fn run_walkthrough(file: &str) -> (Server, crate::support::DataDir, String) {
    let readme = std::fs::read_to_string(repo().join(file)).unwrap();
    let (server, data) = Server::start().await;
    let work = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(repo().join("examples"), work.path().join("examples")).unwrap();

    // The components as the other tests build them; the README's `cargo build` then finds
    // them fresh in the same target directory. The examples' manifests name them relative to
    // themselves, so a copy names them where they are.
    let built = examples_dir();
    let target_dir = built.parent().and_then(Path::parent).unwrap().to_owned();
    let mut manifests = Vec::new();
    for example in ["chain", "patterns"] {
        let manifest = format!("examples/{example}/sluice.toml");
        let text = std::fs::read_to_string(repo().join(&manifest)).unwrap();
        let text = text.replace(
            "../target/wasm32-wasip2/release/",
            &format!("{}/", built.display()),
        );
        let copy = work.path().join(format!("{example}.toml"));
        std::fs::write(&copy, text).unwrap();
        manifests.push((manifest, copy));
    }

    // A read right after a send may come before the batch commits: in an example's README,
    // where such reads are the point, curl asks again as a reader would.
    let retry = if file == "README.md" {
        ""
    } else {
        " --retry 20 --retry-delay 1 --retry-all-errors"
    };
    let mut script = format!(
        "set -euo pipefail\n\
         curl() {{\n\
           case \" $* \" in\n\
             *\" -i \"*|*\" -si \"*|*\" --include \"*) command curl \"$@\" ;;\n\
             *) command curl --fail-with-body{retry} \"$@\" ;;\n\
           esac\n\
         }}\n\
         set -x\n"
    );
    for block in walkthrough(file, &readme) {
        let mut text = block
            .text
            .replace("localhost:7070", server.addr())
            .replace("127.0.0.1:7070", server.addr())
            .replace(
                "examples/target/wasm32-wasip2/release/",
                &format!("{}/", built.display()),
            );
        for (manifest, copy) in &manifests {
            text = text.replace(manifest.as_str(), copy.to_str().unwrap());
        }
        script.push_str(&format!(": {file} line {}\n{text}\n", block.line));
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
        panic!(
            "the walkthrough of {file} took over 2 minutes; its trace:\n{stderr}\nits output:\n{stdout}"
        )
    });
    assert!(
        status.expect("wait for bash").success(),
        "the walkthrough of {file} failed at the last command of this trace (`: {file} line N` \
         opens each block):\n{stderr}\nits output:\n{stdout}"
    );
    (server, data, stdout)
}

/// The names of the functions deployed on `server`.
async fn deployed(server: &Server) -> Vec<String> {
    let (_, functions) = server.get("/v1/functions").await;
    functions["functions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["name"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn the_readme_walkthrough_runs_in_order_on_a_fresh_server() {
    let (server, _data, stdout) = run_walkthrough("README.md").await;
    // What the blocks say they do, done: the quote came back through the queue, and the
    // chain's functions were deployed by the manifest.
    assert!(stdout.contains("\"total_cents\":750"), "{stdout}");
    let names = deployed(&server).await;
    for name in ["log", "router", "enrich", "notify", "quote"] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} not deployed: {names:?}"
        );
    }
}

/// Every example's README: its blocks marked, and its walkthrough run on a fresh server of its
/// own, with what it says it does checked.
#[tokio::test]
async fn every_example_readme_runs_as_written() {
    let mut readmes: Vec<String> = std::fs::read_dir(repo().join("examples"))
        .unwrap()
        .map(|entry| entry.unwrap().path().join("README.md"))
        .filter(|path| path.exists())
        .map(|path| path.strip_prefix(repo()).unwrap().display().to_string())
        .collect();
    readmes.push("examples/README.md".to_owned());
    readmes.sort();
    // What each walkthrough must leave behind: functions deployed, and text it printed.
    let expected: &[(&str, &[&str], &[&str])] = &[
        (
            "examples/chain/README.md",
            &["router", "enrich", "notify"],
            &[],
        ),
        ("examples/counter/README.md", &["counter"], &["seen:"]),
        (
            "examples/patterns/README.md",
            &["audit-log", "shipments-log", "reports-log"],
            &[],
        ),
        (
            "examples/reply/README.md",
            &["quote"],
            &["total_cents", "504", "reply_timeout"],
        ),
        ("examples/webhook/README.md", &["webhook"], &[]),
    ];
    let mut ran = Vec::new();
    for file in &readmes {
        let readme = std::fs::read_to_string(repo().join(file)).unwrap();
        if walkthrough(file, &readme).is_empty() {
            continue;
        }
        let (server, _data, stdout) = run_walkthrough(file).await;
        let (_, functions, printed) = expected
            .iter()
            .find(|(name, _, _)| name == file)
            .unwrap_or_else(|| panic!("{file} runs a walkthrough: say here what it must leave"));
        let names = deployed(&server).await;
        for name in *functions {
            assert!(
                names.iter().any(|n| n == name),
                "{file}: {name} not deployed: {names:?}"
            );
        }
        for text in *printed {
            assert!(
                stdout.contains(text),
                "{file}: `{text}` not printed:\n{stdout}"
            );
        }
        ran.push(file.as_str());
    }
    let want: Vec<&str> = expected.iter().map(|(name, _, _)| *name).collect();
    assert_eq!(ran, want, "the examples whose READMEs ran");
}

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
