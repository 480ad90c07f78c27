//! `rotor`: the server and the command-line client.
//!
//! Exit codes: 0 success; 1 the operation failed (the server refused it, or it could
//! not be reached, or the server could not start); 2 the command line was wrong.
//! `rotor run` exits with its command's exit code instead (128+N when signal N ended
//! it), once the command has started.

mod admin;
mod agent;
mod cli;
mod commands;
mod events;
mod operator;
mod output;
mod replicate;
mod rotation;
mod server;

use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = <cli::Cli as clap::Parser>::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            cli::Command::Server(args) => server::run(*args).await,
            cli::Command::Secret(cmd) => commands::secret(&cli.global, cmd).await,
            cli::Command::Password(args) => commands::password(&cli.global, args).await,
            cli::Command::Principal(cmd) => admin::principal(&cli.global, cmd).await,
            cli::Command::Token(cmd) => admin::token(&cli.global, cmd).await,
            cli::Command::AccessKey(cmd) => admin::access_key(&cli.global, cmd).await,
            cli::Command::Policy(cmd) => admin::policy(&cli.global, cmd).await,
            cli::Command::Audit(cmd) => admin::audit(cmd),
            cli::Command::Rotator(cmd) => rotation::rotator(&cli.global, cmd).await,
            cli::Command::Rotation(cmd) => rotation::rotation(&cli.global, cmd).await,
            cli::Command::Replicate(cmd) => replicate::replicate(&cli.global, cmd).await,
            cli::Command::Rotate { name, version_id } => {
                rotation::rotate(&cli.global, &name, version_id.as_deref()).await
            }
            cli::Command::Watch(args) => events::watch(&cli.global, args).await,
            cli::Command::Webhook(cmd) => events::webhook(&cli.global, cmd).await,
            cli::Command::Agent(args) => agent::agent(&cli.global, args).await,
            cli::Command::Run(args) => agent::run(&cli.global, args).await,
            cli::Command::Consumers(args) => agent::consumers(&cli.global, args).await,
            cli::Command::Status => rotation::status(&cli.global).await,
            cli::Command::Operator(cmd) => operator::operator(cmd).await,
        }
    })
}
