//! The `weir` binary: flags, logging, exit codes. Everything else is in the library.

mod cli;

use anyhow::Context;
use clap::Parser;
use cli::{Cli, Command};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn init_logging(flag: Option<&str>) {
    let filter = flag
        .map(str::to_string)
        .or_else(|| std::env::var("WEIR_LOG").ok())
        .unwrap_or_else(|| "info".to_string());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|err| {
        eprintln!("weir: invalid log filter {filter:?} ({err}); using \"info\"");
        EnvFilter::new("info")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// Parses the files and checks every stage against its input schema.
fn load_and_check(
    files: &[std::path::PathBuf],
) -> Result<Vec<weir::config::PipelinePlan>, weir::config::Diagnostics> {
    let plans = weir::config::load_pipeline_files(files)?;
    let mut errors = weir::config::Diagnostics::default();
    for plan in &plans {
        if let Err(diagnostics) = weir::assemble::check_schemas(plan, None) {
            errors.extend(diagnostics);
        }
    }
    if errors.is_empty() { Ok(plans) } else { Err(errors) }
}

fn check(files: &[std::path::PathBuf]) -> ExitCode {
    match load_and_check(files) {
        Ok(plans) => {
            for plan in plans {
                println!("{}: ok (pipeline `{}`)", plan.file.display(), plan.name);
            }
            ExitCode::SUCCESS
        }
        Err(diagnostics) => {
            eprint!("{diagnostics}");
            let n = diagnostics.len();
            eprintln!("weir check: {n} error{}", if n == 1 { "" } else { "s" });
            ExitCode::from(1)
        }
    }
}

fn run(args: cli::RunArgs) -> anyhow::Result<ExitCode> {
    let plans = match load_and_check(&args.files) {
        Ok(plans) => plans,
        Err(diagnostics) => {
            eprint!("{diagnostics}");
            eprintln!(
                "weir run: nothing started; fix the errors above (`weir check` validates without running)"
            );
            return Ok(ExitCode::from(1));
        }
    };
    let options = weir::app::RunOptions {
        state_dir: args.state_dir.unwrap_or_else(cli::default_state_dir),
        shutdown_deadline: args.shutdown_timeout,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("weir")
        .build()
        .context("cannot start the async runtime")?;
    let summary = runtime.block_on(weir::app::run(plans, options))?;
    for (name, exit) in &summary.exits {
        if let weir::engine::PipelineExit::Failed(message) = exit {
            eprintln!("weir: pipeline `{name}` failed: {message}");
        }
    }
    Ok(if summary.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_level.as_deref());
    let result = match cli.command {
        Command::Check(args) => Ok(check(&args.files)),
        Command::Run(args) => run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("weir: {err:#}");
            ExitCode::from(1)
        }
    }
}
