//! `tme`: the one binary. Parses the command line, sets up logging, and hands off to a
//! command. Errors end here: printed as one line that says what is wrong and how to fix it,
//! with exit code 1.

mod cli;
mod commands;
mod data_dir;
mod import;
mod serve;
mod units;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // anyhow's alternate form joins the context chain on one line.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to standard error: readable on a terminal, JSON otherwise (DESIGN §8). The filter
/// comes from `TME_LOG` (e.g. `TME_LOG=debug`), default `info`.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TME_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let json = match std::env::var("TME_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        _ => !std::io::stderr().is_terminal(),
    };
    if json {
        builder.json().with_current_span(true).init();
    } else {
        builder.init();
    }
}
