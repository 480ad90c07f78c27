//! `rotor agent`, `rotor run` and `rotor consumers`: the command lines of
//! [`rotor_agent`], which keeps applications' secrets current without the
//! application polling, and the list of the versions each consumer reported.
//!
//! `rotor agent` and `rotor run` log to stderr (filter: `ROTOR_LOG`, default `info`).

use crate::cli::Global;
use crate::commands::client;
use clap::Args;
use rotor_agent::config::AgentConfig;
use rotor_agent::{Agent, EnvVar, RunOptions};
use rotor_api::consumers::ConsumerList;
use std::os::unix::process::ExitStatusExt as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// `rotor agent`.
#[derive(Args, Debug)]
pub struct AgentArgs {
    /// The agent's configuration (TOML): server, vaults, templates
    #[arg(long)]
    pub config: PathBuf,
    /// Render every template once and exit: 0 when all were rendered, 1 otherwise
    /// (for init containers)
    #[arg(long)]
    pub once: bool,
    /// How this agent reports itself to the server [default: consumer_id from the
    /// file, else HOSTNAME:PID]
    #[arg(long)]
    pub consumer_id: Option<String>,
}

/// `rotor run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Set variable NAME to the value of reference REF, e.g.
    /// DB_PASSWORD={vault://rotor/%2Fapp%2Fdb/password} (repeatable)
    #[arg(long = "env", value_name = "NAME=REF", required = true, value_parser = str::parse::<EnvVar>)]
    pub env: Vec<EnvVar>,
    /// On a change, send CMD this signal (HUP, USR1, ...) instead of restarting it
    #[arg(long, value_parser = rotor_agent::signal_name)]
    pub signal: Option<String>,
    /// Take the server and the vaults from an agent configuration file (its templates
    /// are ignored); otherwise only vault `rotor`, this server, is known
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// How this process reports itself to the server [default: HOSTNAME:PID]
    #[arg(long)]
    pub consumer_id: Option<String>,
    /// Seconds CMD has to exit after SIGTERM on a restart, before SIGKILL
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub stop_timeout: u64,
    /// The command and its arguments, after --
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// `rotor consumers`.
#[derive(Args, Debug)]
pub struct ConsumersArgs {
    /// Secret name or ARN
    pub name: String,
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ROTOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// `rotor agent`: with `--once`, exit code 1 when a template could not be rendered.
pub async fn agent(global: &Global, args: AgentArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    let config = AgentConfig::load(&args.config)?;
    let client = config.client(&global.addr, global.token.as_deref())?;
    let mut agent = Agent::new(&config, client, args.consumer_id)?;
    if args.once {
        let failed = agent.render_once().await;
        return Ok(if failed == 0 {
            ExitCode::SUCCESS
        } else {
            eprintln!("error: {failed} template(s) could not be rendered");
            ExitCode::from(1)
        });
    }
    agent.run().await?;
    Ok(ExitCode::SUCCESS)
}

/// `rotor run`: exits with CMD's exit code once CMD has started.
pub async fn run(global: &Global, args: RunArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    let config = match &args.config {
        Some(path) => AgentConfig::load(path)?,
        None => AgentConfig::default(),
    };
    let client = config.client(&global.addr, global.token.as_deref())?;
    let options = RunOptions {
        env: args.env,
        signal: args.signal,
        consumer_id: args.consumer_id,
        stop_timeout: Duration::from_secs(args.stop_timeout),
        command: args.command,
    };
    let status = rotor_agent::run(&config, client, options).await?;
    Ok(exit_code(status))
}

/// CMD's exit status as `rotor run`'s exit code: its code, or 128+N when signal N
/// ended it.
fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(code as u8),
        (None, Some(signal)) => ExitCode::from((128 + signal) as u8),
        (None, None) => ExitCode::from(1),
    }
}

/// `rotor consumers SECRET`.
pub async fn consumers(global: &Global, args: ConsumersArgs) -> anyhow::Result<ExitCode> {
    let doc = client(global)?.consumers(&args.name).await?;
    crate::admin::finish(global, &doc, print_consumers)
}

fn print_consumers(doc: &ConsumerList) {
    println!(
        "Consumers of {} (AWSCURRENT is {})",
        doc.name,
        doc.current_version.as_deref().unwrap_or("-")
    );
    let all = || {
        doc.versions
            .iter()
            .flat_map(|v| v.live.iter().chain(&v.gone))
    };
    if all().next().is_none() {
        println!("none has reported a version or read it");
        return;
    }
    let width = all()
        .map(|c| c.consumer.chars().count())
        .max()
        .unwrap_or(0)
        .max("CONSUMER".len());
    for v in &doc.versions {
        if v.live.is_empty() && v.gone.is_empty() {
            continue;
        }
        let stages = if v.stages.is_empty() {
            "no labels".to_string()
        } else {
            v.stages.join(", ")
        };
        let current = doc.current_version.as_deref() == Some(v.version_id.as_str());
        let lag = if current || v.live.is_empty() {
            ""
        } else {
            "  LAGGING"
        };
        println!();
        println!("Version {} ({stages}){lag}", v.version_id);
        println!(
            "  {:<width$}  {:<5}  {:<10}  {:<15}  {:<24}  UNTIL",
            "CONSUMER", "STATE", "KIND", "HOST", "LAST SEEN"
        );
        for (state, c) in v
            .live
            .iter()
            .map(|c| ("live", c))
            .chain(v.gone.iter().map(|c| ("gone", c)))
        {
            let name = match &c.through {
                Some(replica) => format!("{} (via {replica})", c.consumer),
                None => c.consumer.clone(),
            };
            println!(
                "  {:<width$}  {:<5}  {:<10}  {:<15}  {:<24}  {}",
                name,
                state,
                c.kind,
                c.host.as_deref().unwrap_or("-"),
                c.last_seen.to_string(),
                c.live_until,
            );
        }
    }
}
