//! The command line: `serve` (default), `migrate`, `account create`, `account key`, `demo`,
//! `simulate`. Every command reads
//! the same configuration as the server.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use secrecy::ExposeSecret;

use crate::config::Settings;
use crate::startup::{Application, connect_storage};
use crate::telemetry;
use crate::time::{Clock, SystemClock};

#[derive(Parser)]
#[command(name = "switchboard", version, about = "Self-hostable call tracking")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API, the snippet and the telephony webhooks (the default).
    Serve(ServeArgs),
    /// Apply database migrations, then exit.
    Migrate,
    /// Manage accounts.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// Start a throwaway service on SQLite with a demo account, property and pools, and a month
    /// of simulated visits and calls played through the real paths.
    Demo(crate::demo::DemoArgs),
    /// Measure attribution accuracy: simulated visitors and calls against the real service on a
    /// simulated clock, compared with the truth (`--sweep` compares pool sizes).
    Simulate(crate::simulate::SimulateArgs),
    /// Print the embedded snippet's pinned path and SRI hash, and the tag for a key.
    Snippet {
        /// A property's public key, to print its tag.
        #[arg(long, default_value = "<public key>")]
        key: String,
    },
}

#[derive(Args, Default)]
struct ServeArgs {
    /// Apply pending migrations before serving (the default on SQLite).
    #[arg(long)]
    migrate: bool,
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Create an account and print its first API key (shown once; only its hash is stored).
    Create {
        #[arg(long)]
        name: String,
        /// Print `{"id","name","api_key"}` as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Manage an account's API keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Issue another API key (shown once; only its hash is stored).
    Create {
        #[arg(long)]
        account: String,
        /// What the key is for, to tell keys apart.
        #[arg(long)]
        name: Option<String>,
        /// Print `{"id","name","api_key"}` as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the account's keys (never the keys themselves).
    List {
        #[arg(long)]
        account: String,
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key: it is refused at once, on every instance.
    Revoke {
        #[arg(long)]
        account: String,
        /// The key's id (from `list`).
        id: String,
    },
}

pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // The simulator and the demo print a report; a log line per request would bury it.
    if matches!(cli.command, Some(Command::Simulate(_) | Command::Demo(_))) {
        telemetry::init_with_default(settings.log_format, "warn");
    } else {
        telemetry::init(settings.log_format);
    }
    let outcome = match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => serve(settings, args).await,
        Command::Migrate => migrate(settings).await,
        Command::Account {
            command: AccountCommand::Create { name, json },
        } => create_account(settings, &name, json).await,
        Command::Account {
            command: AccountCommand::Key { command },
        } => manage_keys(settings, command).await,
        Command::Demo(args) => crate::demo::run(settings, args).await,
        Command::Simulate(args) => crate::simulate::run_command(settings, args).await,
        Command::Snippet { key } => {
            let snippet = &crate::http::snippet::SNIPPET;
            println!("path:      {}", snippet.path());
            println!("integrity: {}", snippet.integrity);
            println!(
                "tag:       {}",
                snippet.tag(settings.public_url.as_str(), &key)
            );
            Ok(())
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "switchboard failed");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(mut settings: Settings, args: ServeArgs) -> anyhow::Result<()> {
    settings.migrate_on_start |= args.migrate;
    let app = Application::build(settings).await?;
    app.run_until_stopped().await?;
    Ok(())
}

async fn migrate(settings: Settings) -> anyhow::Result<()> {
    let storage = connect_storage(&settings).await?;
    let pending = storage.pending_migrations().await?;
    storage.migrate().await?;
    println!(
        "{}: {pending} migration(s) applied, schema up to date",
        settings.database_url_redacted()
    );
    Ok(())
}

async fn manage_keys(settings: Settings, command: KeyCommand) -> anyhow::Result<()> {
    let storage = connect_storage(&settings).await?;
    if settings.migrate_on_start {
        storage.migrate().await?;
    }
    let now = SystemClock.now_ms();
    let outcome = match command {
        KeyCommand::Create {
            account,
            name,
            json,
        } => {
            let name = name
                .map(|n| crate::domain::required_text("name", &n, 100))
                .transpose()?;
            let (info, key) = storage
                .create_api_key(&account, name.as_deref(), now)
                .await
                .map_err(|e| no_such_account(e, &account))?;
            let key = key.expose_secret();
            if json {
                println!(
                    "{}",
                    serde_json::json!({"id": info.id, "name": info.name, "api_key": key})
                );
            } else {
                println!("API key {} issued: {key}", info.id);
                println!("It is shown this once; only its hash is stored.");
            }
            Ok(())
        }
        KeyCommand::List { account, json } => {
            let keys = storage.list_api_keys(&account).await?;
            if json {
                println!("{}", serde_json::json!({ "keys": keys }));
            } else {
                for k in &keys {
                    let state = match (&k.revoked_at, &k.last_used_at) {
                        (Some(at), _) => format!("revoked {at}"),
                        (None, Some(at)) => format!("last used {at}"),
                        (None, None) => "never used".to_owned(),
                    };
                    println!(
                        "{}  {}...  {}  created {}  {state}",
                        k.id,
                        k.prefix,
                        k.name.as_deref().unwrap_or("-"),
                        k.created_at
                    );
                }
            }
            Ok(())
        }
        KeyCommand::Revoke { account, id } => {
            storage.revoke_api_key(&account, &id, now).await?;
            println!("API key {id} revoked.");
            Ok(())
        }
    };
    storage.close().await;
    outcome
}

fn no_such_account(e: crate::storage::StorageError, account: &str) -> anyhow::Error {
    match e {
        crate::storage::StorageError::NotFound => anyhow::anyhow!("no account {account}"),
        e => e.into(),
    }
}

async fn create_account(settings: Settings, name: &str, json: bool) -> anyhow::Result<()> {
    let name = crate::domain::required_text("name", name, 200)?;
    let storage = connect_storage(&settings).await?;
    if settings.migrate_on_start {
        storage.migrate().await?;
    }
    let created = storage.create_account(&name, SystemClock.now_ms()).await?;
    let key = created.api_key.expose_secret();
    if json {
        println!(
            "{}",
            serde_json::json!({"id": created.account.id, "name": created.account.name, "api_key": key})
        );
    } else {
        println!("Account created.");
        println!("  id:      {}", created.account.id);
        println!("  name:    {}", created.account.name);
        println!("  API key: {key}");
        println!(
            "The API key is shown this once; only its hash is stored. Keep it somewhere safe."
        );
    }
    storage.close().await;
    Ok(())
}
