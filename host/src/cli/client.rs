//! The HTTP client the CLI's subcommands share: the server address, the token, and turning the
//! API's JSON errors into readable messages.

use anyhow::{Context, bail};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;

pub struct Client {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl Client {
    pub fn new(server: &str, token: Option<String>) -> Client {
        Client {
            base: server.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            token,
        }
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends the request and returns the JSON body (null for 204), or the API's error message.
    pub async fn send(&self, request: RequestBuilder) -> anyhow::Result<Value> {
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the sluice server at {}", self.base))?;
        read(response).await
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.request(Method::GET, path)).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.request(Method::POST, path).json(body)).await
    }

    pub async fn patch_json(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.request(Method::PATCH, path).json(body))
            .await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.request(Method::DELETE, path)).await
    }

    /// Sends the request and returns its headers and body as they are (a key's value), or
    /// the API's error.
    pub async fn send_raw(
        &self,
        request: RequestBuilder,
    ) -> anyhow::Result<(reqwest::header::HeaderMap, Vec<u8>)> {
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the sluice server at {}", self.base))?;
        if !response.status().is_success() {
            read(response).await?;
            bail!("the server refused the request");
        }
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .context("reading the server's answer")?;
        Ok((headers, body.to_vec()))
    }

    /// Sends the request and reads its answer as server-sent events.
    pub async fn events(&self, request: RequestBuilder) -> anyhow::Result<Events> {
        let response = request
            .header("accept", "text/event-stream")
            .send()
            .await
            .with_context(|| format!("cannot reach the sluice server at {}", self.base))?;
        if !response.status().is_success() {
            read(response).await?;
            bail!("the server did not answer with an event stream");
        }
        Ok(Events {
            response,
            buffer: String::new(),
        })
    }
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub name: String,
    pub data: String,
}

/// A `text/event-stream` answer, read one event at a time as it arrives.
pub struct Events {
    response: Response,
    buffer: String,
}

impl Events {
    /// The next event; `None` when the server ends the stream.
    pub async fn next(&mut self) -> anyhow::Result<Option<Event>> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse_event(&block) {
                    return Ok(Some(event));
                }
                continue;
            }
            match self
                .response
                .chunk()
                .await
                .context("reading the event stream")?
            {
                Some(chunk) => self
                    .buffer
                    .push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n")),
                None => return Ok(None),
            }
        }
    }
}

/// Parses one event block (`event:`, `data:` lines); comments and keep-alives give `None`.
fn parse_event(block: &str) -> Option<Event> {
    let mut name = String::from("message");
    let mut data: Vec<&str> = Vec::new();
    for line in block.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => name = value.to_owned(),
            "data" => data.push(value),
            _ => {}
        }
    }
    (!data.is_empty()).then(|| Event {
        name,
        data: data.join("\n"),
    })
}

async fn read(response: Response) -> anyhow::Result<Value> {
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .context("reading the server's answer")?;
    if status.is_success() {
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        return serde_json::from_slice(&bytes).context("the server's answer is not JSON");
    }
    let message = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
    bail!("{status}: {message}")
}

/// Percent-encodes one path segment (queue and function names are plain, but be safe).
pub fn segment(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_parse_with_their_names_and_keep_alives_are_skipped() {
        assert_eq!(
            parse_event("event: invocation\nid: 3\ndata: {\"a\":1}\n\n"),
            Some(Event {
                name: "invocation".into(),
                data: "{\"a\":1}".into()
            })
        );
        assert_eq!(parse_event(":\n\n"), None);
        assert_eq!(parse_event("data: a\ndata: b\n\n").unwrap().data, "a\nb");
    }
}
