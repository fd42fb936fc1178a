//! The `sluice` command line: `sluice serve` runs the host; every other subcommand is a client
//! of its HTTP API. The binary (`bin/`) parses these beside `sluice bench`.

mod apply;
mod client;
mod functions;
mod kv;
mod queues;
mod schedules;
mod tokens;
mod topics;
mod view;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::config::{ApiLimits, Config, ConnectionLimits};
use crate::functions::LogRetention;
use client::Client;

/// Where the server is, for client subcommands.
#[derive(Debug, Args, Clone)]
pub struct Remote {
    /// The sluice server's URL.
    #[arg(long, env = "SLUICE_SERVER", default_value = "http://127.0.0.1:7070")]
    pub server: String,
    /// Bearer token for the API.
    #[arg(long, env = "SLUICE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the API's answer as JSON instead of a view for people.
    #[arg(long)]
    pub json: bool,
}

impl Remote {
    fn client(&self) -> Client {
        Client::new(&self.server, self.token.clone())
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the host: queues, functions and the HTTP API.
    Serve(ServeArgs),
    /// Create, inspect and manage queues.
    #[command(subcommand)]
    Queue(queues::QueueCommand),
    /// Enqueue a message (BODY, or standard input), or many from a JSON-lines file.
    Send(queues::SendArgs),
    /// Print a handler's reply to a message (request-reply; kept for an hour).
    Reply(queues::ReplyArgs),
    /// Look at a queue's next messages without leasing them.
    Peek(queues::PeekArgs),
    /// Lease messages as a pull consumer and print them with their receipts (and ack them
    /// with `--ack`).
    Receive(queues::ReceiveArgs),
    /// Upload a component as a new version of a function.
    Deploy(functions::DeployArgs),
    /// List, show, roll back and delete functions.
    #[command(subcommand)]
    Functions(functions::FunctionsCommand),
    /// Run a function's active version on a batch, committing nothing.
    Invoke(functions::InvokeArgs),
    /// Show a function's recent invocations with their captured output.
    Logs(functions::LogsArgs),
    /// Create or update queues, functions and triggers from a manifest (sluice.toml).
    Apply(apply::ApplyArgs),
    /// Create, list and revoke API tokens.
    #[command(subcommand)]
    Token(tokens::TokenCommand),
    /// Enqueue messages on a cron schedule: put, list, show and delete schedules.
    #[command(subcommand)]
    Schedule(schedules::ScheduleCommand),
    /// Publish-subscribe: create topics, subscribe queues (with filters, replaying history).
    #[command(subcommand)]
    Topic(topics::TopicCommand),
    /// Publish a message to a topic (BODY, or standard input).
    Publish(topics::PublishArgs),
    /// Key-value buckets handlers keep state in: create, list, show and delete buckets; get,
    /// set, unset and list their keys.
    #[command(subcommand)]
    Kv(kv::KvCommand),
    /// Compile the component on standard input into the compiled-component cache (run by
    /// `sluice serve` for each upload, in a child process).
    #[command(hide = true)]
    CompileComponent(CompileComponentArgs),
}

#[derive(Debug, Args)]
pub struct CompileComponentArgs {
    /// The compiled-component cache directory.
    #[arg(long)]
    pub cache_dir: PathBuf,
    /// The host engine's largest instance memory, which compiled code depends on.
    #[arg(long)]
    pub max_memory_bytes: u64,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Directory for the SQLite database and components (without --database) and the
    /// compiled-component cache.
    #[arg(long, env = "SLUICE_DATA_DIR", default_value = "./sluice-data")]
    pub data_dir: PathBuf,
    /// PostgreSQL URL (postgres://USER@HOST:PORT/DB) shared by several hosts; without it,
    /// SQLite in --data-dir.
    #[arg(long, env = "SLUICE_DATABASE_URL", hide_env_values = true)]
    pub database: Option<String>,
    /// Address to listen on.
    #[arg(long, env = "SLUICE_LISTEN", default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,
    /// Also serve the SQS-compatible endpoint (JSON and query protocols, AWS Signature
    /// Version 4 with keys from `sluice token create --sqs`) on this address.
    #[arg(long, env = "SLUICE_SQS_LISTEN")]
    pub sqs_listen: Option<SocketAddr>,
    /// Accept this secret as an admin token (kept across restarts while it is set).
    #[arg(long, env = "SLUICE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Largest request body for message routes, in bytes.
    #[arg(long, env = "SLUICE_MAX_BODY_BYTES", default_value_t = ApiLimits::default().max_body_bytes)]
    pub max_body_bytes: usize,
    /// Largest component upload, in bytes.
    #[arg(long, env = "SLUICE_MAX_FUNCTION_BYTES", default_value_t = ApiLimits::default().max_function_bytes)]
    pub max_function_bytes: usize,
    /// Most messages in one batch enqueue.
    #[arg(long, env = "SLUICE_MAX_BATCH_MESSAGES", default_value_t = ApiLimits::default().max_batch_messages)]
    pub max_batch_messages: usize,
    /// Most attributes per message.
    #[arg(long, env = "SLUICE_MAX_ATTRIBUTES", default_value_t = ApiLimits::default().max_attributes)]
    pub max_attributes: usize,
    /// Keep each invocation in the log this long.
    #[arg(long, env = "SLUICE_INVOCATION_RETENTION", default_value = "7days", value_parser = parse_duration)]
    pub invocation_retention: Duration,
    /// Keep at most this many invocations per function (the oldest go first).
    #[arg(long, env = "SLUICE_INVOCATIONS_PER_FUNCTION", default_value_t = LogRetention::default().max_per_function)]
    pub invocations_per_function: u64,
    /// Keep at most this many bytes of captured output and errors per function (the oldest
    /// invocations go first; the newest is always kept).
    #[arg(long, env = "SLUICE_INVOCATION_BYTES_PER_FUNCTION", default_value_t = LogRetention::default().max_bytes_per_function)]
    pub invocation_bytes_per_function: u64,
    /// Sample every queue's stats this often for the console's charts (the last hour is kept).
    #[arg(long, env = "SLUICE_SERIES_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub series_interval: Duration,
    /// Request body bytes all requests together may have buffered; beyond it new bodies get 503
    /// with Retry-After. At least the largest of --max-body-bytes and --max-function-bytes.
    #[arg(long, env = "SLUICE_MAX_BUFFERED_BODY_BYTES", default_value_t = ApiLimits::default().max_buffered_body_bytes)]
    pub max_buffered_body_bytes: usize,
    /// How long a request body may take to arrive (408 beyond).
    #[arg(long, env = "SLUICE_BODY_READ_TIMEOUT", value_parser = parse_duration, default_value = "60s")]
    pub body_read_timeout: Duration,
    /// Connections served at once; lowered to fit the open-file limit. Past it, connections
    /// waiting for a request are closed to make room, and when every one is busy new ones get
    /// 503 (`/healthz` and `/readyz` still answer).
    #[arg(long, env = "SLUICE_MAX_CONNECTIONS", default_value_t = ConnectionLimits::default().max_connections)]
    pub max_connections: usize,
    /// How long a request's head may take to arrive once its first byte has.
    #[arg(long, env = "SLUICE_HEADER_READ_TIMEOUT", value_parser = parse_duration, default_value = "10s")]
    pub header_read_timeout: Duration,
    /// How long a connection may sit without a request (before its first, or between
    /// keep-alive requests) before it is closed.
    #[arg(long, env = "SLUICE_IDLE_TIMEOUT", value_parser = parse_duration, default_value = "60s")]
    pub idle_timeout: Duration,
    /// Largest request head (request line and headers), in bytes (431 beyond).
    #[arg(long, env = "SLUICE_MAX_HEADER_BYTES", default_value_t = ConnectionLimits::default().max_header_bytes)]
    pub max_header_bytes: usize,
    /// Longest request target (path and query), in bytes (414 beyond).
    #[arg(long, env = "SLUICE_MAX_URI_BYTES", default_value_t = ApiLimits::default().max_uri_bytes)]
    pub max_uri_bytes: usize,
}

impl ServeArgs {
    pub fn config(&self) -> Config {
        let mut config = Config::new(self.data_dir.clone(), self.listen);
        config.admin_token = self.admin_token.clone();
        config.sqs_listen = self.sqs_listen;
        config.database = self.database.clone();
        config.limits = ApiLimits {
            max_body_bytes: self.max_body_bytes,
            max_function_bytes: self.max_function_bytes,
            max_batch_messages: self.max_batch_messages,
            max_attributes: self.max_attributes,
            max_buffered_body_bytes: self.max_buffered_body_bytes,
            body_read_timeout: self.body_read_timeout,
            max_uri_bytes: self.max_uri_bytes,
            ..ApiLimits::default()
        };
        config.series_interval = self.series_interval;
        config.compiler = crate::executor::Compiler::this_binary();
        config.invocations = LogRetention {
            max_age: self.invocation_retention,
            max_per_function: self.invocations_per_function,
            max_bytes_per_function: self.invocation_bytes_per_function,
        };
        config.connections = ConnectionLimits {
            max_connections: self.max_connections,
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            max_header_bytes: self.max_header_bytes,
        };
        config
    }
}

/// Runs a client subcommand (everything but `serve`).
pub async fn run_client(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(_) => unreachable!("serve is run by main"),
        Command::CompileComponent(_) => unreachable!("compile-component is run by main"),
        Command::Queue(command) => queues::run(command).await,
        Command::Send(args) => queues::send(args).await,
        Command::Reply(args) => queues::reply(args).await,
        Command::Peek(args) => queues::peek(args).await,
        Command::Receive(args) => queues::receive(args).await,
        Command::Deploy(args) => functions::deploy(args).await,
        Command::Functions(command) => functions::run(command).await,
        Command::Invoke(args) => functions::invoke(args).await,
        Command::Logs(args) => functions::logs(args).await,
        Command::Apply(args) => apply::apply(args).await,
        Command::Token(command) => tokens::run(command).await,
        Command::Schedule(command) => schedules::run(command).await,
        Command::Topic(command) => topics::run(command).await,
        Command::Publish(args) => topics::publish(args).await,
        Command::Kv(command) => kv::run(command).await,
    }
}

/// Parses durations like `250ms`, `30s`, `5m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration like 250ms, 30s or 5m: {e}"))
}

/// Parses `KEY=VALUE`.
pub fn parse_pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{text}` is not KEY=VALUE"))
}

fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}
