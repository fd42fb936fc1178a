//! Key-value state through the real binary: buckets and keys over the HTTP API (an operator's
//! write commits at once; `read` tokens read, only `admin`/`deploy` change), and a function's
//! version keeping the buckets it may open.

use serde_json::json;

use crate::support::{Server, assert_error, client_with, example};

/// Buckets are created, changed and listed; keys are written, read with their version, listed
/// by prefix a page at a time, and deleted; deleting the bucket takes its keys along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buckets_and_keys_over_the_api() {
    let (server, _dir) = Server::start().await;
    let (status, bucket) = server
        .put_json("/v1/kv/seen", json!({"ttl_ms": 3_600_000}))
        .await;
    assert_eq!(
        (status, bucket["ttl_ms"].as_u64()),
        (200, Some(3_600_000)),
        "{bucket}"
    );
    let (status, _) = server.put_json("/v1/kv/counts", json!({})).await;
    assert_eq!(status, 200);
    let (status, list) = server.get("/v1/kv").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = (list["buckets"].as_array().unwrap().iter())
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["counts", "seen"]);

    let http = client_with(Some(crate::support::ADMIN_TOKEN));
    for (key, value) in [("count:a", "1"), ("count:b", "22"), ("other", "x")] {
        let answer = http
            .put(server.url(&format!("/v1/kv/counts/keys/{key}")))
            .body(value)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 204);
    }
    let answer = http
        .get(server.url("/v1/kv/counts/keys/count:b"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let version: u64 = answer.headers()["sluice-kv-version"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(version > 0);
    assert_eq!(answer.bytes().await.unwrap().as_ref(), b"22");

    let (status, page) = server.get("/v1/kv/counts/keys?prefix=count:&limit=1").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["keys"], json!(["count:a"]));
    let cursor = page["cursor"].as_str().unwrap().to_owned();
    let (_, page) = server
        .get(&format!("/v1/kv/counts/keys?prefix=count:&cursor={cursor}"))
        .await;
    assert_eq!(
        (page["keys"].clone(), page["cursor"].clone()),
        (json!(["count:b"]), json!(null))
    );

    let (status, _) = server.delete("/v1/kv/counts/keys/count:a").await;
    assert_eq!(status, 204);
    let (status, body) = server.get("/v1/kv/counts/keys/count:a").await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = server.get("/v1/kv/nope/keys/k").await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = server.put_json("/v1/kv/bad name", json!({})).await;
    assert_error(status, &body, 400, "bad_request");

    let (status, _) = server.delete("/v1/kv/counts").await;
    assert_eq!(status, 204);
    let (status, body) = server.get("/v1/kv/counts/keys").await;
    assert_error(status, &body, 404, "not_found");
}

/// `read` lists and reads; changing buckets or keys takes `admin` or `deploy`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_needs_read_and_changing_needs_deploy() {
    let (server, _dir) = Server::start().await;
    server.put_json("/v1/kv/b", json!({})).await;
    let mut tokens = Vec::new();
    for scope in ["read", "deploy"] {
        let (status, created) = server
            .post("/v1/tokens", json!({"name": scope, "scopes": [scope]}))
            .await;
        assert_eq!(status, 201, "{created}");
        tokens.push(client_with(created["token"].as_str()));
    }
    let (reader, deployer) = (&tokens[0], &tokens[1]);
    let put = |client: &reqwest::Client| client.put(server.url("/v1/kv/b/keys/k")).body("v").send();
    assert_eq!(put(reader).await.unwrap().status(), 403);
    assert_eq!(put(deployer).await.unwrap().status(), 204);
    let read = reader
        .get(server.url("/v1/kv/b/keys/k"))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let listed = reader.get(server.url("/v1/kv")).send().await.unwrap();
    assert_eq!(listed.status(), 200);
    let deleted = reader.delete(server.url("/v1/kv/b")).send().await.unwrap();
    assert_eq!(deleted.status(), 403);
}

/// The buckets a function may open are kept with its version (`kv_bucket` may repeat).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_keeps_the_buckets_it_may_open() {
    let (server, _dir) = Server::start().await;
    let (status, function) = server
        .put_wasm(
            "/v1/functions/f?kv_bucket=counts&kv_bucket=seen",
            example("sum"),
        )
        .await;
    assert_eq!(status, 201, "{function}");
    assert_eq!(
        function["versions"][0]["config"]["kv_buckets"],
        json!(["counts", "seen"])
    );
    let (status, body) = server
        .put_wasm("/v1/functions/g?kv_bucket=no%20spaces", example("sum"))
        .await;
    assert_error(status, &body, 400, "bad_request");
}
