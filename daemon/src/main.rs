//! The `weir` binary: flags, logging, exit codes. Everything else is in the library.

mod cli;

use anyhow::Context;
use clap::Parser;
use cli::{Cli, Command};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// Batches allocate and free column buffers of megabytes each; glibc hands those back to the
/// kernel and faults them in again on the next batch, mimalloc keeps them for reuse.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn log_filter(flag: Option<&str>) -> EnvFilter {
    let filter = flag
        .map(str::to_string)
        .or_else(|| std::env::var("WEIR_LOG").ok())
        .unwrap_or_else(|| "info".to_string());
    EnvFilter::try_new(&filter).unwrap_or_else(|err| {
        eprintln!("weir: invalid log filter {filter:?} ({err}); using \"info\"");
        EnvFilter::new("info")
    })
}

/// Sets up logging to stderr; returns a way to change the filter later (the daemon's
/// `[log] level` is reloadable).
fn init_logging(
    flag: Option<&str>,
    format: weir::config::LogFormat,
) -> weir::app::daemon::SetLogFilter {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let (filter, handle) = tracing_subscriber::reload::Layer::new(log_filter(flag));
    // Colours only for a person at a terminal: under systemd stderr is the journal, where
    // escape codes would be stored as text (and NO_COLOR is the user's say).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let fmt = tracing_subscriber::fmt::layer()
        // stderr, lifting `weir run`'s progress bars (if any) off the screen for each line.
        .with_writer(|| weir::app::progress_bars::LogWriter)
        .with_ansi(ansi)
        .with_target(false);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        weir::config::LogFormat::Human => registry.with(fmt).init(),
        weir::config::LogFormat::Json => registry.with(fmt.json()).init(),
    }
    Box::new(move |level: &str| {
        let filter = EnvFilter::try_new(level).map_err(|err| err.to_string())?;
        handle.reload(filter).map_err(|err| err.to_string())
    })
}

/// The plugin host of a command: plugins from `dir`, compiled code cached in the state dir.
fn plugin_host(dir: PathBuf, state_dir: &Path) -> anyhow::Result<weir::wasm::PluginHost> {
    Ok(weir::wasm::PluginHost::new(
        dir,
        Some(&state_dir.join("plugin-cache")),
    )?)
}

/// `weir check`: the daemon's own prepare path, against nothing running: every file is parsed,
/// its plugins loaded, its chain type-checked and, when the state directory exists, its
/// stateful identity compared with its checkpoint (read only, so a running daemon is fine).
fn check(args: cli::CheckArgs) -> anyhow::Result<ExitCode> {
    use weir::assemble::{PrepareContext, prepare};
    use weir::topology::diff::{Action, diff};
    let dir = args
        .plugins_dir
        .clone()
        .unwrap_or_else(cli::default_plugins_dir);
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(cli::default_state_dir);
    let host = if dir.is_dir() {
        Some(plugin_host(dir.clone(), &state_dir)?)
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
    let store: Option<weir::state::SharedStore> = if state_dir.join("CURRENT").is_file() {
        match weir::state::RocksStore::open_read_only(&state_dir) {
            Ok(store) => Some(std::sync::Arc::new(store)),
            Err(err) => {
                eprintln!(
                    "weir check: cannot read the state directory {} ({err}); checkpoints are not checked",
                    state_dir.display()
                );
                None
            }
        }
    } else {
        None
    };
    let snapshot =
        weir::topology::folders::read_files(&args.files, host.as_ref().map(|_| dir.as_path()));
    let mut prepare_one = |plan| {
        let catalog = host.clone().map(weir::wasm::PluginCatalog::from_folder);
        prepare(
            plan,
            PrepareContext {
                plugins: catalog.as_ref(),
                store: store.as_ref(),
                limits: weir::wasm::Limits::default(),
            },
        )
    };
    let changes = diff(&Default::default(), &snapshot, &mut prepare_one);
    let mut errors = 0;
    for change in &changes {
        match &change.action {
            Action::Start(prepared) => println!(
                "{}: ok (pipeline `{}`)",
                change.file.display(),
                prepared.plan.name
            ),
            Action::Rejected { diagnostics } => {
                eprint!("{diagnostics}");
                errors += diagnostics.len();
            }
            Action::NeedsStateReset { message } => {
                eprintln!("{}: error: {message}", change.file.display());
                errors += 1;
            }
            _ => {}
        }
    }
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "weir check: {errors} error{}",
            if errors == 1 { "" } else { "s" }
        );
        ExitCode::from(1)
    })
}

/// `weir plugin new` / `weir plugin build`.
fn plugin(command: cli::PluginCommand) -> anyhow::Result<ExitCode> {
    match command {
        cli::PluginCommand::New(args) => {
            let sdk = args
                .sdk
                .clone()
                .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-sdk"));
            if args.lang == weir::develop::Language::Rust && !sdk.join("Cargo.toml").is_file() {
                eprintln!(
                    "weir: the Rust SDK is not at {} (weir was built elsewhere): pass --sdk DIR, the plugin-sdk folder of weir's sources",
                    sdk.display()
                );
                return Ok(ExitCode::from(1));
            }
            let sdk = std::fs::canonicalize(&sdk).unwrap_or(sdk);
            match weir::develop::new_plugin(&args.dir, &args.name, args.lang, args.kind, &sdk) {
                Ok(dir) => {
                    println!(
                        "made {} ({} {}); build it with: weir plugin build {}",
                        dir.display(),
                        args.lang.as_str(),
                        args.kind.as_str(),
                        dir.display()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(err) => {
                    eprintln!("weir: {err}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        cli::PluginCommand::Build(args) => {
            let out = args.out.clone().unwrap_or_else(cli::default_plugins_dir);
            let started = std::time::Instant::now();
            match weir::develop::build(&args.dir, &out) {
                Ok(built) => {
                    println!(
                        "built {} ({}{}), {} bytes, in {:.1} s",
                        built.path.display(),
                        built.language.as_str(),
                        built
                            .kind
                            .map_or(String::new(), |k| format!(" {}", k.as_str())),
                        built.size,
                        started.elapsed().as_secs_f64()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(err) => {
                    eprintln!("weir: {err}");
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
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
    // Parse errors stop everything before anything (the state directory included) is touched.
    if let Err(diagnostics) = weir::config::load_pipeline_files(&args.files) {
        eprint!("{diagnostics}");
        eprintln!(
            "weir run: nothing started; fix the errors above (`weir check` validates without running)"
        );
        return Ok(ExitCode::from(1));
    }
    let plugins = plugin_host(plugins_dir, &state_dir)?;
    let store: weir::state::SharedStore =
        std::sync::Arc::new(weir::state::RocksStore::open(&state_dir)?);
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
    let summary = runtime.block_on(weir::app::run(args.files, options));
    // A stuck batch's thread must not keep the process alive after the deadline.
    runtime.shutdown_background();
    let summary = summary?;
    match &summary {
        weir::app::RunSummary::NotStarted(errors) => {
            eprint!("{errors}");
            eprintln!(
                "weir run: nothing started; fix the errors above (`weir check` validates without running)"
            );
        }
        weir::app::RunSummary::Ran { exits, .. } => {
            for (name, state) in exits {
                if let weir::topology::registry::RunState::Failed { message, .. } = state {
                    eprintln!("weir: pipeline `{name}` failed: {message}");
                }
            }
        }
    }
    Ok(if summary.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Asks the daemon and prints its JSON answer's `result`, or its error (exit 1).
fn ask_daemon(
    socket: Option<PathBuf>,
    request: weir::admin::protocol::Request,
) -> Result<serde_json::Value, ExitCode> {
    let socket = socket.unwrap_or_else(weir::app::settings::client_control_socket);
    // A reload or a reset waits for pipelines to stop (bounded by their deadline) and for new
    // plugins to compile; status answers at once.
    let timeout = if request.mutates() || request == weir::admin::protocol::Request::Diff {
        std::time::Duration::from_secs(600)
    } else {
        std::time::Duration::from_secs(30)
    };
    match weir::admin::client::ask(&socket, &request, timeout) {
        Ok(response) if response.ok => Ok(response.result.unwrap_or(serde_json::Value::Null)),
        Ok(response) => {
            eprintln!("weir: {}", response.error.unwrap_or_default());
            Err(ExitCode::from(1))
        }
        Err(err) => {
            eprintln!("weir: {err}");
            Err(ExitCode::from(1))
        }
    }
}

fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

fn status(args: cli::StatusArgs) -> anyhow::Result<ExitCode> {
    use weir::admin::render;
    let now = chrono::Utc::now().timestamp_millis();
    let request = weir::admin::protocol::Request::Status {
        pipeline: args.pipeline.clone(),
    };
    let result = match ask_daemon(args.client.control_socket, request) {
        Ok(result) => result,
        Err(code) => return Ok(code),
    };
    if args.json {
        print_json(&result);
        return Ok(ExitCode::SUCCESS);
    }
    if args.pipeline.is_some() {
        let report: weir::topology::registry::PipelineReport = serde_json::from_value(result)
            .context("the daemon's answer does not read as a pipeline's status")?;
        print!("{}", render::pipeline_details(&report, now));
    } else {
        let report: weir::topology::registry::StatusReport = serde_json::from_value(result)
            .context("the daemon's answer does not read as a status")?;
        print!("{}", render::status_table(&report, now));
    }
    Ok(ExitCode::SUCCESS)
}

fn top(args: cli::TopArgs) -> anyhow::Result<ExitCode> {
    let socket = args
        .client
        .control_socket
        .unwrap_or_else(weir::app::settings::client_control_socket);
    match weir::top::run(&socket, args.interval) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(err) => {
            eprintln!("weir: {err}");
            Ok(ExitCode::from(1))
        }
    }
}

fn diff(args: cli::DiffArgs) -> anyhow::Result<ExitCode> {
    let result = match ask_daemon(
        args.client.control_socket,
        weir::admin::protocol::Request::Diff,
    ) {
        Ok(result) => result,
        Err(code) => return Ok(code),
    };
    if args.json {
        print_json(&result);
    } else {
        let lines: Vec<weir::admin::protocol::DiffLine> = serde_json::from_value(result)
            .context("the daemon's answer does not read as a diff")?;
        print!("{}", weir::admin::render::diff_text(&lines));
    }
    Ok(ExitCode::SUCCESS)
}

fn reload(args: cli::ClientArgs) -> anyhow::Result<ExitCode> {
    let result = match ask_daemon(args.control_socket, weir::admin::protocol::Request::Reload) {
        Ok(result) => result,
        Err(code) => return Ok(code),
    };
    let report: weir::topology::ReloadReport =
        serde_json::from_value(result).context("the daemon's answer does not read as a reload")?;
    for line in &report.lines {
        println!("{line}");
    }
    println!(
        "reloaded: {} applied, {} not applied",
        report.applied, report.rejected
    );
    Ok(if report.rejected == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn stop_or_start(args: cli::PipelineArgs, stop: bool) -> anyhow::Result<ExitCode> {
    use weir::admin::protocol::Request;
    let request = if stop {
        Request::Stop {
            pipeline: args.pipeline.clone(),
        }
    } else {
        Request::Start {
            pipeline: args.pipeline.clone(),
        }
    };
    let result = match ask_daemon(args.client.control_socket, request) {
        Ok(result) => result,
        Err(code) => return Ok(code),
    };
    if stop {
        let abandoned = result["abandoned_batch"].as_bool().unwrap_or(false);
        println!(
            "stopped `{}`{}",
            args.pipeline,
            if abandoned {
                " (its batch in flight did not finish within the deadline; it was abandoned and replays when the pipeline starts again)"
            } else {
                ""
            }
        );
    } else {
        println!("started `{}`", args.pipeline);
    }
    Ok(ExitCode::SUCCESS)
}

fn daemon(args: cli::DaemonArgs, log_level: Option<&str>) -> anyhow::Result<ExitCode> {
    use weir::config::{DaemonFile, HttpListen, LogFormat, RestartPolicy};
    let file = match &args.config {
        Some(path) => match weir::config::load_daemon_file(path) {
            Ok(file) => file,
            Err(diagnostics) => {
                eprint!("{diagnostics}");
                eprintln!("weir daemon: not started; fix the errors above");
                return Ok(ExitCode::from(1));
            }
        },
        None => DaemonFile::default(),
    };
    let flag_error = |message: String| {
        eprintln!("weir daemon: {message}");
        Ok(ExitCode::from(2))
    };
    let http = match args.http.as_deref().map(HttpListen::parse).transpose() {
        Ok(http) => http,
        Err(message) => return flag_error(format!("--http: {message}")),
    };
    let log_format = match args.log_format.as_deref() {
        None => None,
        Some("human") => Some(LogFormat::Human),
        Some("json") => Some(LogFormat::Json),
        Some(other) => {
            return flag_error(format!(
                "--log-format: unknown format \"{other}\", expected \"human\" or \"json\""
            ));
        }
    };
    let restart_policy = match args.restart.as_deref() {
        None => None,
        Some("on-failure") => Some(RestartPolicy::OnFailure),
        Some("never") => Some(RestartPolicy::Never),
        Some(other) => {
            return flag_error(format!(
                "--restart: unknown policy \"{other}\", expected \"on-failure\" or \"never\""
            ));
        }
    };
    let overrides = DaemonFile {
        file: None,
        pipelines_dir: args.pipelines_dir,
        plugins_dir: args.plugins_dir,
        state_dir: args.state_dir,
        control_socket: args.control_socket,
        http,
        allow_remote: args.allow_remote.then_some(true),
        shutdown_timeout: args.shutdown_timeout,
        rescan_interval: args.rescan_interval,
        watch_debounce: args.watch_debounce,
        log_level: log_level.map(str::to_string),
        log_format,
        plugin_memory_bytes: args
            .plugin_max_memory_mb
            .map(|mb| mb.saturating_mul(1 << 20)),
        plugin_timeout: args.plugin_timeout,
        restart_policy,
        restart_first_backoff: args.restart_first_backoff,
        restart_max_backoff: args.restart_max_backoff,
        progress_history: args.progress_history.map(|n| n as usize),
    };
    let settings = match weir::app::settings::resolve(file, overrides.clone()) {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("weir daemon: {message}");
            return Ok(ExitCode::from(1));
        }
    };
    let set_log_filter = init_logging(Some(&settings.log_level), settings.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("weir")
        .build()
        .context("cannot start the async runtime")?;
    let exit = runtime.block_on(weir::app::daemon::run(
        settings,
        overrides,
        Some(set_log_filter),
    ));
    // A stuck batch's thread must not keep the process alive after the deadline.
    runtime.shutdown_background();
    match exit {
        Ok(weir::app::daemon::DaemonExit::Clean) => Ok(ExitCode::SUCCESS),
        Ok(weir::app::daemon::DaemonExit::Interrupted) => Ok(ExitCode::from(1)),
        Err(err) => {
            tracing::error!("weir daemon cannot start: {err}");
            Ok(ExitCode::from(1))
        }
    }
}

fn state(command: cli::StateCommand) -> anyhow::Result<ExitCode> {
    use weir::admin::protocol::{Request, StateLine};
    use weir::state::{Checkpoint, RocksStore, SharedStore};
    let (dir, socket) = match &command {
        cli::StateCommand::List(args) => (args.state_dir.clone(), args.control_socket.clone()),
        cli::StateCommand::Reset(args) => (args.state_dir.clone(), args.control_socket.clone()),
    };
    // Without --state-dir, a running daemon (which holds the store) is asked.
    if dir.is_none() {
        let socket = socket.unwrap_or_else(weir::app::settings::client_control_socket);
        let request = match &command {
            cli::StateCommand::List(_) => Request::StateList,
            cli::StateCommand::Reset(args) => Request::StateReset {
                pipelines: args.pipelines.clone(),
                topics: args.topics,
            },
        };
        match weir::admin::client::ask(&socket, &request, std::time::Duration::from_secs(600)) {
            Ok(response) if response.ok => {
                let result = response.result.unwrap_or_default();
                match command {
                    cli::StateCommand::List(_) => {
                        let lines: Vec<StateLine> = serde_json::from_value(result)
                            .context("the daemon's answer does not read as a state list")?;
                        for line in lines {
                            println!(
                                "{}	{}{}",
                                line.pipeline,
                                match line.last_committed {
                                    Some(id) => format!("last committed batch {id}"),
                                    None => "no batch committed".into(),
                                },
                                if line.orphaned {
                                    "	orphaned (no pipeline file declares it; `weir state reset` deletes it)"
                                } else {
                                    ""
                                }
                            );
                        }
                    }
                    cli::StateCommand::Reset(_) => {
                        let lines: Vec<String> = serde_json::from_value(result).unwrap_or_default();
                        for line in lines {
                            println!("{line}");
                        }
                    }
                }
                return Ok(ExitCode::SUCCESS);
            }
            Ok(response) => {
                eprintln!("weir: {}", response.error.unwrap_or_default());
                return Ok(ExitCode::from(1));
            }
            Err(err) if err.is_not_running() => {
                if matches!(&command, cli::StateCommand::Reset(args) if args.topics) {
                    eprintln!(
                        "weir: --topics asks the running daemon, which knows the pipelines' broker; none answers at {}",
                        socket.display()
                    );
                    return Ok(ExitCode::from(1));
                }
            }
            Err(err) => {
                eprintln!("weir: {err}");
                return Ok(ExitCode::from(1));
            }
        }
    }
    let dir = dir.unwrap_or_else(cli::default_state_dir);
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
    let log_level = cli.log_level.as_deref();
    let result = match cli.command {
        // The daemon sets up logging from its settings (flags and config file).
        Command::Daemon(args) => daemon(*args, log_level),
        command => {
            let _ = init_logging(log_level, weir::config::LogFormat::Human);
            match command {
                Command::Check(args) => check(args),
                Command::Run(args) => run(args),
                Command::Plugins(args) => plugins(args),
                Command::Plugin(command) => plugin(command),
                Command::State(command) => state(command),
                Command::Status(args) => status(args),
                Command::Top(args) => top(args),
                Command::Diff(args) => diff(args),
                Command::Reload(args) => reload(args),
                Command::Stop(args) => stop_or_start(args, true),
                Command::Start(args) => stop_or_start(args, false),
                Command::Daemon(_) => unreachable_daemon(),
            }
        }
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("weir: {err:#}");
            ExitCode::from(1)
        }
    }
}

/// The daemon arm is taken above; this keeps the match exhaustive without a panic.
fn unreachable_daemon() -> anyhow::Result<ExitCode> {
    Ok(ExitCode::from(1))
}
