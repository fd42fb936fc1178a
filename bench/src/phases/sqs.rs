//! The `sqs` phase: a backlog drained through the SQS endpoint by the bench's own SQS client,
//! ReceiveMessage (10) then DeleteMessageBatch (10) per round, every request signed with
//! Signature Version 4 by AWS's own signer and shaped as boto3 sends them (JSON protocol, the
//! same headers signed).

use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::{Context, ensure};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use sluice::store::NewMessage;
use sluice_test_support::sigv4::Signer;

use crate::host::Bench;
use crate::load::{body, success_text};
use crate::report::Report;

/// The SQS endpoint of the bench's host and a key pair with every scope.
#[derive(Clone)]
pub(crate) struct SqsClient {
    pub(crate) url: String,
    pub(crate) host: String,
    pub(crate) signer: Signer,
    pub(crate) http: reqwest::Client,
}

/// The JSON protocol's content type.
const AMZ_JSON: &str = "application/x-amz-json-1.0";

impl SqsClient {
    /// One JSON-protocol call, signed by AWS's own signer with the headers boto3 signs.
    async fn call(&self, op: &str, body: &Value, now_ms: u64) -> anyhow::Result<Value> {
        let body = serde_json::to_vec(body)?;
        let target = format!("AmazonSQS.{op}");
        let headers = [
            ("content-type", AMZ_JSON),
            ("host", self.host.as_str()),
            ("x-amz-target", target.as_str()),
        ];
        let at = UNIX_EPOCH + Duration::from_millis(now_ms);
        let signed = self
            .signer
            .sign("POST", &self.url, &headers, &body, at)
            .map_err(anyhow::Error::msg)?;
        let mut request = self
            .http
            .post(&self.url)
            .header("content-type", AMZ_JSON)
            .header("x-amz-target", target);
        for (name, value) in signed {
            request = request.header(name, value);
        }
        let response = request.body(body).send().await?;
        let text = success_text(response, op).await?;
        Ok(serde_json::from_str(&text)?)
    }
}

/// Drains `--messages` through the SQS endpoint with `--sqs-clients` concurrent consumers.
pub(crate) async fn run(host: &Bench, report: &mut Report) -> anyhow::Result<()> {
    let (store, sqs, args) = (&host.store, &host.sqs, &host.args);
    let clients = args.sqs_clients;
    let queue = "bench-sqs";
    let created = sqs
        .call("CreateQueue", &json!({"QueueName": queue}), store.now_ms())
        .await?;
    let url = created["QueueUrl"]
        .as_str()
        .context("CreateQueue answered no QueueUrl")?
        .to_owned();
    let mut seq = 0;
    while seq < args.messages {
        let chunk: Vec<NewMessage> = (seq..args.messages.min(seq + 1000))
            .map(|s| NewMessage {
                body: body(s, args.body_bytes).into_bytes(),
                ..NewMessage::default()
            })
            .collect();
        seq += chunk.len() as u64;
        store.enqueue(queue, chunk).await?;
    }
    let began = Instant::now();
    let mut consumers = JoinSet::new();
    for _ in 0..clients {
        let (sqs, url, store) = (sqs.clone(), url.clone(), store.clone());
        consumers.spawn(async move {
            let mut done = 0u64;
            loop {
                let received = sqs
                    .call(
                        "ReceiveMessage",
                        &json!({"QueueUrl": url, "MaxNumberOfMessages": 10}),
                        store.now_ms(),
                    )
                    .await?;
                let Some(messages) = received["Messages"].as_array().filter(|m| !m.is_empty())
                else {
                    return anyhow::Ok(done);
                };
                let entries: Vec<Value> = messages
                    .iter()
                    .enumerate()
                    .map(|(i, m)| json!({"Id": i.to_string(), "ReceiptHandle": m["ReceiptHandle"]}))
                    .collect();
                let deleted = sqs
                    .call(
                        "DeleteMessageBatch",
                        &json!({"QueueUrl": url, "Entries": entries}),
                        store.now_ms(),
                    )
                    .await?;
                let failed = deleted["Failed"].as_array().map_or(0, Vec::len);
                ensure!(failed == 0, "DeleteMessageBatch failed entries: {deleted}");
                done += messages.len() as u64;
            }
        });
    }
    let mut received = 0;
    while let Some(done) = consumers.join_next().await {
        received += done??;
    }
    let elapsed = began.elapsed().max(Duration::from_micros(1));
    ensure!(
        received == args.messages,
        "the SQS consumers received {received} of {} messages",
        args.messages
    );
    report.target(
        "sqs.receive_delete_batch_msgs_per_s",
        received as f64 / elapsed.as_secs_f64(),
        "msg/s",
        ">=",
        30_000.0,
    );
    store.purge(queue).await?;
    Ok(())
}
