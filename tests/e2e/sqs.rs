//! The SQS-compatible endpoint driven by real SQS clients against the real binary: boto3
//! (current, JSON protocol) running the issue's snippet and a wider scenario, botocore pinned
//! to a release that speaks the query protocol (checked against the XML), the last
//! query-protocol botocore and AWS CLI on empty results, and the AWS CLI.
//! The clients live in virtual environments that `scripts/sqs-clients` installs (run by
//! `scripts/test`); without them these tests fail, saying how to install them.

use std::path::PathBuf;

use crate::support::{ADMIN_TOKEN, DataDir, Server};

/// The virtual environment `name` made by `scripts/sqs-clients`.
fn venv(name: &str) -> PathBuf {
    let root = std::env::var_os("SLUICE_SQS_CLIENTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/sluice-py")
        });
    let dir = root.join(name);
    assert!(
        dir.join("bin/python").exists(),
        "the SQS client environment {} is missing: run `scripts/sqs-clients` (scripts/test \
         does) to install boto3, the query-protocol botocore and the AWS CLI",
        dir.display()
    );
    dir
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/sqs")
        .join(name)
}

/// A server with the SQS endpoint and an admin token's SQS key pair.
async fn start() -> (Server, DataDir, String, String) {
    let (server, dir) = Server::start_with(&["--sqs-listen", "127.0.0.1:0"]).await;
    let (key, secret) = server.sqs_key_pair().await;
    (server, dir, key, secret)
}

/// Runs `program args` with the endpoint and credentials in its environment; fails the test
/// with its output unless it succeeds.
async fn run(server: &Server, key: &str, secret: &str, program: PathBuf, args: &[&str]) -> String {
    // The program's own directory first on PATH: a venv's `python` and `aws`.
    let dir = program.parent().map(PathBuf::from).unwrap_or_default();
    let path = std::env::join_paths(std::iter::once(dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .expect("PATH");
    let output = tokio::process::Command::new(&program)
        .args(args)
        .env("PATH", path)
        .env("SQS_ENDPOINT", server.sqs_url.as_deref().unwrap())
        .env("KEY_ID", key)
        .env("SECRET", secret)
        .env("SLUICE_URL", &server.url)
        .env("SLUICE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .current_dir(script(""))
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{} {args:?} failed ({}):\n{stdout}\n{}",
        program.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
async fn boto3_runs_the_issues_snippet_unchanged() {
    let (server, _dir, key, secret) = start().await;
    let python = venv("boto3").join("bin/python");
    let out = run(&server, &key, &secret, python, &["snippet.py"]).await;
    assert!(out.contains("snippet ok"), "{out}");
    // The queue it made is an ordinary Sluice queue, now empty.
    let stats = server.stats("orders").await;
    assert_eq!(stats["visible"], 0);
    assert_eq!(stats["acked_total"], 1);
}

#[tokio::test]
async fn boto3_wider_scenario() {
    let (server, _dir, key, secret) = start().await;
    let python = venv("boto3").join("bin/python");
    run(
        &server,
        &key,
        &secret,
        python,
        &[
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "scenario.py",
        ],
    )
    .await;
}

#[tokio::test]
async fn query_protocol_botocore_checked_against_the_xml() {
    let (server, _dir, key, secret) = start().await;
    let python = venv("boto3-query").join("bin/python");
    run(
        &server,
        &key,
        &secret,
        python,
        &["-m", "pytest", "-q", "-p", "no:cacheprovider", "query.py"],
    )
    .await;
}

/// Issue 28's attribute details through boto3: AWSTraceHeader, `Custom.*`, 1 MiB limits,
/// InvalidAttributeValue, BatchRequestTooLong, SQS's wording, any account, UUID message ids.
#[tokio::test]
async fn boto3_fidelity_details() {
    let (server, _dir, key, secret) = start().await;
    let python = venv("boto3").join("bin/python");
    run(
        &server,
        &key,
        &secret,
        python,
        &[
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "fidelity.py",
        ],
    )
    .await;
}

/// Tags, dead-letter sources, permissions and the policy through both protocols: current
/// boto3 (JSON) and botocore 1.31.50 (query), one server, the same script.
#[tokio::test]
async fn queue_management_through_both_protocols() {
    let (server, _dir, key, secret) = start().await;
    for client in ["boto3", "boto3-query"] {
        let python = venv(client).join("bin/python");
        run(
            &server,
            &key,
            &secret,
            python,
            &[
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "management.py",
            ],
        )
        .await;
    }
}

/// FIFO queues through boto3: ordering per group across a retry, dedup by id and by content,
/// `SequenceNumber` increasing; `MessageGroupId` on a standard queue as a fair-queue tenant.
#[tokio::test]
async fn boto3_fifo_queues() {
    let (server, _dir, key, secret) = start().await;
    let python = venv("boto3").join("bin/python");
    run(
        &server,
        &key,
        &secret,
        python,
        &["-m", "pytest", "-q", "-p", "no:cacheprovider", "fifo.py"],
    )
    .await;
}

/// The AWS SDK for JavaScript v3: @aws-sdk/client-sqs 3.441.0 (query protocol) and a current
/// release (JSON), on empty results and a round trip. Installed by `scripts/test` from
/// `tests/sqs/js/package-lock.json`.
#[tokio::test]
async fn aws_sdk_for_javascript_old_and_current() {
    let modules = script("js/node_modules");
    assert!(
        modules.join("client-sqs-3441").exists(),
        "the JavaScript SQS clients are missing: run `npm install --prefix tests/sqs/js` \
         (scripts/test does)"
    );
    let (server, _dir, key, secret) = start().await;
    let node = which("node");
    let out = run(&server, &key, &secret, node, &["js/empty.mjs"]).await;
    assert!(out.contains("js ok"), "{out}");
}

/// sqs-consumer's `handleMessageBatch` over 1,000 messages: none lost, none handled twice.
#[tokio::test]
async fn sqs_consumer_handles_a_thousand_messages_once_each() {
    assert!(
        script("js/node_modules/sqs-consumer").exists(),
        "sqs-consumer is missing: run `npm install --prefix tests/sqs/js` (scripts/test does)"
    );
    let (server, _dir, key, secret) = start().await;
    let out = run(&server, &key, &secret, which("node"), &["js/consumer.mjs"]).await;
    assert!(out.contains("sqs-consumer ok: 1000 messages"), "{out}");
}

/// A Celery worker (kombu's SQS transport) runs 200 tasks once each, on current botocore and
/// on botocore 1.31.56 (query protocol), whose worker died on its first empty poll before
/// empty results kept their Result element.
#[tokio::test]
async fn celery_workers_on_current_and_query_protocol_botocore() {
    let (server, _dir, key, secret) = start().await;
    for client in ["celery", "celery-query"] {
        let python = venv(client).join("bin/python");
        let out = run(&server, &key, &secret, python, &["celery_run.py"]).await;
        assert!(out.contains("celery ok: 200 tasks"), "{client}: {out}");
    }
}

/// `program` found on PATH.
fn which(program: &str) -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("{program} is not on PATH"))
}

/// botocore 1.31.56 and the AWS CLI 1.29.56, the last query-protocol releases: an empty
/// receive, an empty list of queues and empty attributes parse (the Result element is there).
#[tokio::test]
async fn last_query_protocol_releases_parse_empty_results() {
    let (server, _dir, key, secret) = start().await;
    let python = venv("query-last").join("bin/python");
    run(
        &server,
        &key,
        &secret,
        python,
        &["-m", "pytest", "-q", "-p", "no:cacheprovider", "empty.py"],
    )
    .await;
}

#[tokio::test]
async fn the_aws_cli_as_a_third_client() {
    let (server, _dir, key, secret) = start().await;
    // bash, with the CLI's venv first on PATH (`run` puts the program's directory there).
    let bash = venv("awscli").join("bin/python");
    let out = run(
        &server,
        &key,
        &secret,
        bash,
        &[
            "-c",
            "import os,sys; os.execvp('bash', ['bash', 'awscli.sh'])",
        ],
    )
    .await;
    assert!(out.contains("awscli ok"), "{out}");
}
