//! The `weir` binary: flags, logging, exit codes. Everything else is in the library.

mod cli;

use anyhow::Context;
use clap::Parser;
use cli::{Cli, Command};
use std::path::{Path, PathBuf};
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

/// Checks every stage of every plan against its input schema (plugins only when a plugins
/// folder is at hand).
fn check_plans(
    plans: &[weir::config::PipelinePlan],
    plugins: Option<&weir::wasm::PluginHost>,
    store: Option<&weir::state::SharedStore>,
) -> Result<(), weir::config::Diagnostics> {
    let mut errors = weir::config::Diagnostics::default();
    for plan in plans {
        if let Err(diagnostics) = weir::assemble::check_schemas(plan, plugins, store) {
            errors.extend(diagnostics);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Parses the files, then checks them with [`check_plans`].
fn load_and_check(
    files: &[std::path::PathBuf],
    plugins: Option<&weir::wasm::PluginHost>,
) -> Result<Vec<weir::config::PipelinePlan>, weir::config::Diagnostics> {
    let plans = weir::config::load_pipeline_files(files)?;
    check_plans(&plans, plugins, None)?;
    Ok(plans)
}

/// The plugin host of a command: plugins from `dir`, compiled code cached in the state dir.
fn plugin_host(dir: PathBuf, state_dir: &Path) -> anyhow::Result<weir::wasm::PluginHost> {
    Ok(weir::wasm::PluginHost::new(
        dir,
        Some(&state_dir.join("plugin-cache")),
    )?)
}

fn check(args: cli::CheckArgs) -> anyhow::Result<ExitCode> {
    let dir = args
        .plugins_dir
        .clone()
        .unwrap_or_else(cli::default_plugins_dir);
    let host = if dir.is_dir() {
        Some(plugin_host(dir, &cli::default_state_dir())?)
    } else {
        if args.plugins_dir.is_some() {
            eprintln!(
                "weir check: plugins folder {} does not exist",
                dir.display()
            );
            return Ok(ExitCode::from(1));
        }
        None
    };
    let files = &args.files;
    Ok(match load_and_check(files, host.as_ref()) {
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
    })
}

/// `weir plugins DIR`: a table of the plugins in a folder; exit 1 if any cannot be loaded.
fn plugins(args: cli::PluginsArgs) -> anyhow::Result<ExitCode> {
    let host = plugin_host(args.dir.clone(), &cli::default_state_dir())?;
    let listing = weir::wasm::list_plugins(&host, &args.dir)
        .with_context(|| format!("cannot list {}", args.dir.display()))?;
    println!(
        "{:<20} {:<10} {:<9} {:<8} {:>9}  DESCRIPTION",
        "NAME", "VERSION", "KIND", "CONTRACT", "SIZE"
    );
    let mut failed = 0;
    for entry in &listing {
        let file = entry
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        match &entry.plugin {
            Ok(p) => println!(
                "{:<20} {:<10} {:<9} {:<8} {:>9}  {}",
                file,
                p.info.version,
                p.kind.as_str(),
                p.contract,
                entry.size,
                p.info.description
            ),
            Err(err) => {
                failed += 1;
                println!(
                    "{file:<20} {:<10} {:<9} {:<8} {:>9}  error: {err}",
                    "-", "-", "-", entry.size
                );
            }
        }
    }
    if listing.is_empty() {
        eprintln!("weir plugins: no .wasm files in {}", args.dir.display());
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn run(args: cli::RunArgs) -> anyhow::Result<ExitCode> {
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(cli::default_state_dir);
    let plugins_dir = args
        .plugins_dir
        .clone()
        .unwrap_or_else(cli::default_plugins_dir);
    let nothing_started = |diagnostics: weir::config::Diagnostics| {
        eprint!("{diagnostics}");
        eprintln!(
            "weir run: nothing started; fix the errors above (`weir check` validates without running)"
        );
        ExitCode::from(1)
    };
    // Parse errors stop everything before anything (the state directory included) is touched.
    let plans = match weir::config::load_pipeline_files(&args.files) {
        Ok(plans) => plans,
        Err(diagnostics) => return Ok(nothing_started(diagnostics)),
    };
    let plugins = plugin_host(plugins_dir, &state_dir)?;
    // Checked against the store: a file source's inferred schema is the one its checkpoint kept.
    let store: weir::state::SharedStore =
        std::sync::Arc::new(weir::state::RocksStore::open(&state_dir)?);
    if let Err(diagnostics) = check_plans(&plans, Some(&plugins), Some(&store)) {
        return Ok(nothing_started(diagnostics));
    }
    let options = weir::app::RunOptions {
        state_dir,
        shutdown_deadline: args.shutdown_timeout,
        plugins,
        store,
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

fn state(command: cli::StateCommand) -> anyhow::Result<ExitCode> {
    use weir::state::{Checkpoint, RocksStore, SharedStore};
    let dir = match &command {
        cli::StateCommand::List(args) => args.state_dir.clone(),
        cli::StateCommand::Reset(args) => args.state_dir.clone(),
    }
    .unwrap_or_else(cli::default_state_dir);
    if !dir.exists() {
        eprintln!("weir: no state directory at {}", dir.display());
        return Ok(ExitCode::from(1));
    }
    let store: SharedStore = std::sync::Arc::new(RocksStore::open(&dir)?);
    match command {
        cli::StateCommand::List(_) => {
            for name in weir::state::pipelines(&store)? {
                let last = Checkpoint::new(store.clone(), &name).last_committed()?;
                match last {
                    Some(c) => println!("{name}\tlast committed batch {}", c.batch_id),
                    None => println!("{name}\tno batch committed"),
                }
            }
        }
        cli::StateCommand::Reset(args) => {
            let known = weir::state::pipelines(&store)?;
            for name in &args.pipelines {
                if !known.contains(name) {
                    eprintln!("weir: pipeline `{name}` has no state in {}", dir.display());
                    return Ok(ExitCode::from(1));
                }
            }
            for name in &args.pipelines {
                Checkpoint::new(store.clone(), name).reset()?;
                println!(
                    "reset pipeline `{name}`: checkpoint and state deleted (files it wrote stay; its next start writes new ones beside them)"
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_level.as_deref());
    let result = match cli.command {
        Command::Check(args) => check(args),
        Command::Run(args) => run(args),
        Command::Plugins(args) => plugins(args),
        Command::State(command) => state(command),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("weir: {err:#}");
            ExitCode::from(1)
        }
    }
}
