//! `sluice token create|list|revoke`.

use clap::{Args, Subcommand};
use serde_json::json;

use super::client::segment;
use super::view::{self, Align, Table};
use super::{Remote, print_json};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; its secret is printed once.
    Create(CreateArgs),
    /// List tokens (never their secrets).
    List(ListArgs),
    /// Revoke a token by id.
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// admin, deploy, read, produce, produce:QUEUE, consume or consume:QUEUE (repeatable).
    #[arg(long = "scope", required = true)]
    scopes: Vec<String>,
    /// A name to recognise the token by.
    #[arg(long, default_value = "")]
    name: String,
    /// Also issue an SQS access key id and secret access key (for `sluice serve
    /// --sqs-listen`), with the same scopes.
    #[arg(long)]
    sqs: bool,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The token's id (from `sluice token list`).
    id: String,
    #[command(flatten)]
    remote: Remote,
}

pub async fn run(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create(args) => {
            let body = json!({ "name": args.name, "scopes": args.scopes, "sqs": args.sqs });
            let created = args.remote.client().post_json("/v1/tokens", &body).await?;
            if args.remote.json {
                print_json(&created);
                return Ok(());
            }
            eprintln!(
                "token {} created; the secret below is shown only once:",
                created["id"].as_str().unwrap_or("?")
            );
            println!("{}", created["token"].as_str().unwrap_or_default());
            if args.sqs {
                eprintln!("SQS credentials (the secret access key is shown only once too):");
                println!(
                    "AWS_ACCESS_KEY_ID={}",
                    created["sqs_access_key_id"].as_str().unwrap_or_default()
                );
                println!(
                    "AWS_SECRET_ACCESS_KEY={}",
                    created["sqs_secret_access_key"]
                        .as_str()
                        .unwrap_or_default()
                );
            }
        }
        TokenCommand::List(args) => {
            let list = args.remote.client().get("/v1/tokens").await?;
            if args.remote.json {
                print_json(&list);
                return Ok(());
            }
            let mut table = Table::new(&[
                ("ID", Align::Left),
                ("NAME", Align::Left),
                ("SCOPES", Align::Left),
                ("CREATED", Align::Left),
            ]);
            for token in list["tokens"].as_array().into_iter().flatten() {
                let scopes: Vec<String> = token["scopes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(view::text)
                    .collect();
                table.row(vec![
                    view::text(&token["id"]),
                    view::text(&token["name"]),
                    scopes.join(","),
                    view::time_of(&token["created_at_ms"]),
                ]);
            }
            print!("{}", table.render());
        }
        TokenCommand::Revoke(args) => {
            args.remote
                .client()
                .delete(&format!("/v1/tokens/{}", segment(&args.id)))
                .await?;
            println!("revoked token {}", args.id);
        }
    }
    Ok(())
}
