//! Durable enqueue: an enqueue answered 2xx survives SIGKILL at any moment.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;
use tokio::sync::Mutex;

use crate::support::Server;

/// Every id the queue holds, paging through peek by id.
pub async fn all_ids(server: &Server, queue: &str) -> HashSet<String> {
    all_messages(server, queue)
        .await
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Every message the queue holds, in id order.
pub async fn all_messages(server: &Server, queue: &str) -> Vec<serde_json::Value> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(after) => format!("/v1/queues/{queue}/messages?limit=1000&after={after}"),
            None => format!("/v1/queues/{queue}/messages?limit=1000"),
        };
        let (status, page) = server.get(&path).await;
        assert_eq!(status, 200, "{page}");
        let messages = page["messages"].as_array().unwrap();
        if messages.is_empty() {
            return all;
        }
        after = messages
            .last()
            .map(|m| m["id"].as_str().unwrap().to_owned());
        all.extend(messages.iter().cloned());
    }
}

#[tokio::test]
async fn acknowledged_enqueues_survive_sigkill() {
    let (mut server, dir) = Server::start().await;
    server.create_queue(json!({"name": "durable"})).await;

    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for client in 0..16 {
        let url = server.url("/v1/queues/durable");
        let http = server.http.clone();
        let acked = acked.clone();
        let stop = stop.clone();
        clients.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && n < 5_000 {
                n += 1;
                // Half the clients send single messages, half send batches of 20.
                let result = if client % 2 == 0 {
                    http.post(format!("{url}/messages"))
                        .body(format!("c{client}-{n}"))
                        .send()
                        .await
                } else {
                    let messages: Vec<_> = (0..20)
                        .map(|i| json!({"body": format!("c{client}-{n}-{i}")}))
                        .collect();
                    http.post(format!("{url}/messages/batch"))
                        .json(&json!({ "messages": messages }))
                        .send()
                        .await
                };
                let Ok(response) = result else { break };
                if !response.status().is_success() {
                    break;
                }
                let Ok(answer) = response.json::<serde_json::Value>().await else {
                    break;
                };
                let mut acked = acked.lock().await;
                if let Some(id) = answer["id"].as_str() {
                    acked.push(id.to_owned());
                } else if let Some(ids) = answer["ids"].as_array() {
                    acked.extend(ids.iter().map(|id| id.as_str().unwrap().to_owned()));
                }
            }
        }));
    }

    // Kill once a few thousand messages are acknowledged, in the middle of the load.
    let enough = crate::support::wait_for(std::time::Duration::from_secs(60), || async {
        acked.lock().await.len() >= 3_000
    })
    .await;
    assert!(enough, "producers made no progress");
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let acked = acked.lock().await.clone();

    let server = Server::start_in(dir.path()).await;
    let stored = all_ids(&server, "durable").await;
    let lost: Vec<_> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    println!(
        "durability: {} enqueues acknowledged before SIGKILL, {} messages on disk after restart, {} lost",
        acked.len(),
        stored.len(),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "{} acknowledged messages lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert!(stored.len() >= acked.len());
}
