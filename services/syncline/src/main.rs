//! `syncline`: run the whole suite (`up`), one service (`serve`), or mint a dev token.

mod manifest_cli;
mod sync_cli;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use syncline_config::ServiceName;

/// Syncline: customer-facing CRM integrations (Salesforce, HubSpot) as a suite of gRPC
/// services.
#[derive(Debug, Parser)]
#[command(name = "syncline", version, about, long_about = None)]
struct Cli {
    /// TOML configuration file; `SYNCLINE_*` environment variables override it
    /// (e.g. SYNCLINE_STORAGE__DATABASE_URL=postgres://…).
    #[arg(long, short, global = true, env = "SYNCLINE_CONFIG_FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run all six services in this process on the embedded default (SQLite files in the
    /// data directory), each on its own port, and print where each listens.
    Up,
    /// Run one service, for a distributed deployment (needs `internal_auth.secret`).
    Serve {
        /// gateway, auth-vault, schema-discovery, mapping, sync-engine or conflict-resolver.
        service: String,
    },
    /// Print a development JWT for a project and tenant, signed with the `syncline up`
    /// development secret (or the configured HS256 secret).
    Token {
        /// Project id claim.
        #[arg(long, default_value = "demo")]
        project: String,
        /// Tenant id claim.
        #[arg(long, default_value = "demo-tenant")]
        tenant: String,
        /// Subject claim.
        #[arg(long, default_value = "dev")]
        subject: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
    /// Validate or deploy an integration manifest (YAML).
    Manifest {
        #[command(subcommand)]
        command: manifest_cli::ManifestCommand,
    },
    /// Start a sync run of a connection through the gateway (or join its active run) and
    /// show its progress until it ends; exits 1 when it fails, 2 when it needs attention.
    Sync(sync_cli::SyncArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Manifest commands need no configuration (and `SYNCLINE_TOKEN` is not a config key).
    if let Command::Manifest { command } = cli.command {
        if !manifest_cli::run(command).await? {
            std::process::exit(1);
        }
        return Ok(());
    }
    // With a token, sync needs no configuration either.
    let command = match cli.command {
        Command::Sync(args) if args.token.is_some() => {
            let token = args.token.clone().unwrap_or_default();
            let run = sync_cli::run(args, &token).await?;
            std::process::exit(sync_cli::exit_code(&run));
        }
        command => command,
    };
    let mut config = syncline_config::load_from_process(cli.config.as_deref())?;
    match command {
        Command::Up => up(config).await,
        Command::Serve { service } => {
            let name = ServiceName::parse(&service).with_context(|| {
                format!(
                    "unknown service `{service}`; expected one of: {}",
                    ServiceName::ALL.map(ServiceName::as_str).join(", ")
                )
            })?;
            syncline_service_kit::standalone::run(
                name,
                config,
                move |config, listener, shutdown| async move {
                    syncline::start_one(name, &config, listener, shutdown).await
                },
            )
            .await
        }
        Command::Token {
            project,
            tenant,
            subject,
            ttl,
        } => {
            syncline::dev_auth::ensure_dev_jwt(&mut config)
                .context("failed to read the development secret")?;
            let token = syncline::dev_auth::mint_token(
                &config,
                &project,
                &tenant,
                &subject,
                Duration::from_secs(ttl),
            )?;
            println!("{token}");
            Ok(())
        }
        Command::Manifest { .. } => Ok(()),
        Command::Sync(args) => {
            syncline::dev_auth::ensure_dev_jwt(&mut config)
                .context("failed to read the development secret")?;
            let token = syncline::dev_auth::mint_token(
                &config,
                &args.project,
                &args.tenant,
                "cli",
                Duration::from_secs(3600),
            )?;
            let run = sync_cli::run(args, &token).await?;
            std::process::exit(sync_cli::exit_code(&run));
        }
    }
}

async fn up(mut config: syncline_config::SynclineConfig) -> anyhow::Result<()> {
    let _telemetry = syncline_telemetry::init(&config.telemetry, "syncline")
        .context("failed to start telemetry")?;
    let dev_jwt = syncline::dev_auth::ensure_dev_jwt(&mut config)
        .context("failed to create the development secret")?;
    let shutdown = syncline_service_kit::standalone::shutdown_on_signal();
    let sandboxes = if config.sandbox.enabled {
        Some(syncline::sandboxes::start(&config.sandbox).await?)
    } else {
        None
    };
    let suite = syncline::start_suite(config, shutdown).await?;
    println!(
        "syncline is up (data in {})",
        suite.config().data_dir.display()
    );
    for (service, addr) in suite.listening() {
        println!("  {:<18} grpc://{addr}", service.as_str());
    }
    println!("  {:<18} {}/healthz", "gateway http", suite.gateway_url());
    if let Some(sandboxes) = &sandboxes {
        println!("\nCRM sandboxes (local, seeded demo data):");
        for line in sandboxes.describe() {
            println!("{line}");
        }
    }
    if dev_jwt {
        let token = syncline::dev_auth::mint_token(
            suite.config(),
            "demo",
            "demo-tenant",
            "dev",
            Duration::from_secs(3600),
        )?;
        println!("\ndevelopment token (project demo, tenant demo-tenant, 1 hour):\n{token}");
        println!("more with: syncline token --project P --tenant T");
    }
    println!("\nstop with Ctrl-C");
    for (service, error) in suite.stopped().await {
        tracing::error!(%service, %error, "service stopped with an error");
    }
    if let Some(sandboxes) = sandboxes {
        sandboxes.shutdown().await;
    }
    Ok(())
}
