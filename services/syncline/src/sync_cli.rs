//! `syncline sync CONNECTION`: starts a sync run through the gateway (or joins the
//! connection's active run), polls it and draws its progress on stderr: one bar per object,
//! records read against the CRM's estimate, with the object's issue under it (fields schema
//! drift made the run leave out). Exits 0 when the run SUCCEEDED, 1 when it FAILED
//! or was CANCELLED, 2 when it paused for something only a person can fix (NEEDS_REAUTH, a
//! pause through the API); a run paused by the API budget resumes by itself and is waited
//! for.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use syncline_proto::common::v1::ErrorReason;
use syncline_proto::sync::v1::sync_service_client::SyncServiceClient;
use syncline_proto::sync::v1::{
    GetSyncRunRequest, StartSyncRunRequest, SyncMode, SyncRun, SyncRunState,
};
use tonic::transport::Channel;

/// What to read.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Mode {
    /// Changes since the last checkpoint of each object.
    Incremental,
    /// Every record again.
    Backfill,
}

/// `syncline sync` arguments.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The connection to read.
    pub connection_id: String,
    /// Incremental (default) or backfill.
    #[arg(long, value_enum, default_value = "incremental")]
    pub mode: Mode,
    /// Model objects to read (repeatable); default: every mapped object.
    #[arg(long = "object")]
    pub objects: Vec<String>,
    /// The gateway's gRPC address.
    #[arg(long, default_value = "http://127.0.0.1:7400")]
    pub gateway: String,
    /// A JWT for the tenant; without one, a development token is minted for
    /// `--project`/`--tenant` like `syncline token` does.
    #[arg(long, env = "SYNCLINE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Project of the development token.
    #[arg(long, default_value = "demo")]
    pub project: String,
    /// Tenant of the development token.
    #[arg(long, default_value = "demo-tenant")]
    pub tenant: String,
    /// How often to ask for progress, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub poll_ms: u64,
}

/// How the command ended, as its exit status.
pub fn exit_code(run: &SyncRun) -> i32 {
    match run.state() {
        SyncRunState::Succeeded => 0,
        SyncRunState::Paused => 2,
        _ => 1,
    }
}

fn request<T>(token: &str, message: T) -> anyhow::Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}")
            .parse()
            .context("the token is not a valid header value")?,
    );
    Ok(request)
}

fn describe(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    let mut text = format!("{:?}: {}", status.code(), status.message());
    if let Some(bad) = status.get_error_details().bad_request() {
        for v in &bad.field_violations {
            text.push_str(&format!("\n  {}: {}", v.field, v.description));
        }
    }
    text
}

/// Starts (or joins) the run and follows it to an end; returns the last state seen.
pub async fn run(args: SyncArgs, token: &str) -> anyhow::Result<SyncRun> {
    let channel = tonic::transport::Endpoint::from_shared(args.gateway.clone())
        .with_context(|| format!("`{}` is not a gateway url", args.gateway))?
        .connect()
        .await
        .with_context(|| format!("failed to reach the gateway at {}", args.gateway))?;
    let mut client = SyncServiceClient::new(channel);
    let mode = match args.mode {
        Mode::Incremental => SyncMode::Incremental,
        Mode::Backfill => SyncMode::Backfill,
    };
    let started = client
        .start_sync_run(request(
            token,
            StartSyncRunRequest {
                connection_id: args.connection_id.clone(),
                mode: mode as i32,
                objects: args.objects.clone(),
            },
        )?)
        .await
        .map_err(|s| anyhow::anyhow!("the run did not start: {}", describe(&s)))?
        .into_inner();
    let mut run = started.sync_run.unwrap_or_default();
    eprintln!(
        "{} sync run {} of connection {} (trace {})",
        if started.created {
            "started"
        } else {
            "joined the active"
        },
        run.id,
        run.connection_id,
        if run.trace_id.is_empty() {
            "-"
        } else {
            &run.trace_id
        },
    );
    follow(
        &mut client,
        token,
        &mut run,
        Duration::from_millis(args.poll_ms),
    )
    .await?;
    Ok(run)
}

async fn follow(
    client: &mut SyncServiceClient<Channel>,
    token: &str,
    run: &mut SyncRun,
    poll: Duration,
) -> anyhow::Result<()> {
    let mut bars = Bars::new(std::io::stderr().is_terminal());
    loop {
        bars.draw(run);
        match run.state() {
            SyncRunState::Succeeded | SyncRunState::Failed | SyncRunState::Cancelled => break,
            SyncRunState::Paused if run.error_reason() != ErrorReason::QuotaExhausted => break,
            _ => {}
        }
        tokio::time::sleep(poll).await;
        *run = client
            .get_sync_run(request(
                token,
                GetSyncRunRequest {
                    sync_run_id: run.id.clone(),
                },
            )?)
            .await
            .map_err(|s| anyhow::anyhow!("failed to read the run: {}", describe(&s)))?
            .into_inner()
            .sync_run
            .unwrap_or_default();
    }
    let stats = run.stats.unwrap_or_default();
    eprintln!(
        "{}: {} read, {} changes published, {} unchanged, {} provider calls",
        run.state()
            .as_str_name()
            .trim_start_matches("SYNC_RUN_STATE_")
            .to_lowercase(),
        stats.records_read,
        stats.changes_published,
        stats.records_unchanged,
        stats.provider_calls
    );
    if !run.error_message.is_empty() {
        eprintln!(
            "{}: {}",
            run.error_reason()
                .as_str_name()
                .trim_start_matches("ERROR_REASON_"),
            run.error_message
        );
    }
    Ok(())
}

/// One bar per object, redrawn in place on a terminal; elsewhere a new block is printed
/// only when something changed.
struct Bars {
    terminal: bool,
    drawn: usize,
    last: String,
}

const WIDTH: usize = 30;

/// `[#####.....] read/total object` for one object (`?` when the CRM gave no estimate).
pub fn bar(object: &str, read: i64, total: i64, done: bool) -> String {
    let total = if done { total.max(read) } else { total };
    let filled = if total > 0 {
        usize::try_from((read.min(total) * i64::try_from(WIDTH).unwrap_or(30)) / total).unwrap_or(0)
    } else {
        0
    };
    let total_text = if total > 0 {
        total.to_string()
    } else {
        "?".into()
    };
    format!(
        "[{}{}] {read}/{total_text} {object}{}",
        "#".repeat(filled),
        ".".repeat(WIDTH - filled),
        if done { " done" } else { "" }
    )
}

impl Bars {
    fn new(terminal: bool) -> Self {
        Self {
            terminal,
            drawn: 0,
            last: String::new(),
        }
    }

    fn draw(&mut self, run: &SyncRun) {
        let state = run
            .state()
            .as_str_name()
            .trim_start_matches("SYNC_RUN_STATE_")
            .to_lowercase();
        let mut lines = vec![format!("run {}: {state}", run.id)];
        for p in &run.progress {
            let read = p.stats.map_or(0, |s| s.records_read);
            lines.push(format!(
                "  {}",
                bar(&p.object, read, p.estimated_total, p.done)
            ));
            if !p.issue.is_empty() {
                lines.push(format!("    {}", p.issue));
            }
        }
        let text = lines.join("\n");
        if text == self.last {
            return;
        }
        let mut err = std::io::stderr().lock();
        if self.terminal && self.drawn > 0 {
            // Back to the first line of the previous drawing, clearing as we go.
            let _ = write!(err, "\x1b[{}A\x1b[J", self.drawn);
        }
        let _ = writeln!(err, "{text}");
        let _ = err.flush();
        self.drawn = lines.len();
        self.last = text;
    }
}
