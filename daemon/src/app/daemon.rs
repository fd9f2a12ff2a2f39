//! `weir daemon`: the long-running service. One loop owns the supervisor ([`Topology`]) and
//! reacts to signals (SIGHUP reloads; SIGTERM or SIGINT stop everything within the deadline; a
//! second one exits at once), to the folders' watcher (debounced), to a periodic rescan, and to
//! requests from the control socket. Every reload, whatever caused it, is the same
//! scan → plan → apply.
//!
//! The loop never blocks on a pipeline: long work (loading plugins, stopping a pipeline with a
//! stuck batch) is awaited while the systemd watchdog keeps being pinged, and status requests
//! are answered from the registry without the loop.

use super::settings::{DaemonSettings, resolve};
use super::systemd::Notifier;
use super::watch::FolderWatch;
use crate::admin::control::{self, ControlSocketError, Envelope, Handlers};
use crate::admin::http::{self, HttpState};
use crate::admin::metrics::Exposition;
use crate::admin::protocol::{DiffLine, Request, Response, StateLine};
use crate::assemble::Environment;
use crate::config::{DaemonFile, HttpListen, load_daemon_file};
use crate::state::{Checkpoint, RocksStore, SharedStore, StoreError};
use crate::topology::diff::Action;
use crate::topology::folders::{self, Snapshot};
use crate::topology::runner::{Knobs, RunnerSettings};
use crate::topology::{ReloadReport, Topology, TopologySettings};
use crate::wasm::{Background, DEFAULT_COMPILE_GRACE, PluginError, PluginHost};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval, MissedTickBehavior};

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The state store cannot be opened (another process holds it, a damaged directory).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The plugin engine cannot start.
    #[error("cannot start the plugin engine: {0}")]
    Plugins(#[from] PluginError),
    /// A folder cannot be made.
    #[error("cannot create the {what} folder {path}: {source}")]
    Folder {
        /// Which folder.
        what: &'static str,
        /// Where.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The control socket cannot be opened.
    #[error(transparent)]
    ControlSocket(#[from] ControlSocketError),
    /// The HTTP address cannot be bound.
    #[error("cannot listen for HTTP on {addr}: {source}")]
    Http {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Signal handlers cannot be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

/// How the daemon ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaemonExit {
    /// Every pipeline stopped (at a batch boundary, or with its batch abandoned at the
    /// deadline).
    Clean,
    /// A second stop signal cut the shutdown short; batches in flight replay on the next start.
    Interrupted,
}

/// What caused a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    Startup,
    Signal,
    Request,
    Files,
    Rescan,
    Compiled,
}

impl Cause {
    /// Asked for explicitly (systemd is told about these reloads even when nothing changes).
    fn explicit(self) -> bool {
        matches!(self, Cause::Signal | Cause::Request)
    }

    fn word(self) -> &'static str {
        match self {
            Cause::Startup => "start-up",
            Cause::Signal => "SIGHUP",
            Cause::Request => "weir reload",
            Cause::Files => "file change",
            Cause::Rescan => "periodic rescan",
            Cause::Compiled => "plugin compiled",
        }
    }
}

/// Keeps the watchdog fed (and, during start-up, the start timeout extended) while the loop
/// awaits something long.
struct Pulse {
    notifier: Notifier,
    interval: Interval,
    starting: bool,
}

impl Pulse {
    fn new(notifier: Notifier) -> Pulse {
        let period = notifier
            .watchdog_interval()
            .unwrap_or(Duration::from_secs(10))
            .min(Duration::from_secs(10));
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Pulse {
            notifier,
            interval,
            starting: true,
        }
    }

    fn beat(&self) {
        self.notifier.watchdog();
        if self.starting {
            // Loading many new plugins can take longer than systemd's start timeout.
            self.notifier.extend_timeout(Duration::from_secs(30));
        }
    }

    /// Awaits `work`, beating meanwhile.
    async fn during<T>(&mut self, work: impl Future<Output = T>) -> T {
        let mut work = std::pin::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return out,
                _ = self.interval.tick() => self.beat(),
            }
        }
    }
}

/// Changes the log filter of the running process (`[log] level` reloaded from `weir.toml`).
pub type SetLogFilter = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

struct Daemon {
    settings: DaemonSettings,
    /// What the flags set: they keep winning over the file when it is read again.
    overrides: DaemonFile,
    set_log_filter: Option<SetLogFilter>,
    topology: Topology,
    watch: FolderWatch,
    notifier: Notifier,
}

impl Daemon {
    fn watched_dirs(&self, snapshot: &Snapshot) -> Vec<std::path::PathBuf> {
        let mut dirs = vec![
            self.settings.pipelines_dir.clone(),
            self.settings.plugins_dir.clone(),
        ];
        dirs.extend(folders::symlink_target_dirs(snapshot));
        dirs
    }

    async fn scan(&mut self) -> Snapshot {
        let (pipelines, plugins) = (
            self.settings.pipelines_dir.clone(),
            self.settings.plugins_dir.clone(),
        );
        let snapshot =
            tokio::task::spawn_blocking(move || folders::scan(&pipelines, Some(&plugins)))
                .await
                .unwrap_or_default();
        let dirs = self.watched_dirs(&snapshot);
        self.watch.watch(&dirs);
        snapshot
    }

    /// Reads `weir.toml` again (on SIGHUP and `weir reload`) and applies what can change
    /// while running; says what it did, or why the file was not taken.
    fn reread_config(&mut self, report: &mut ReloadReport) {
        let Some(path) = self.settings.config_file.clone() else {
            return;
        };
        let file = match load_daemon_file(&path) {
            Ok(file) => file,
            Err(diagnostics) => {
                tracing::warn!(
                    "{} not reloaded, the running settings stay:\n{}",
                    path.display(),
                    diagnostics.to_string().trim_end()
                );
                report.lines.push(format!(
                    "{}: rejected, not applied: {}",
                    path.display(),
                    diagnostics
                        .iter()
                        .next()
                        .map(|d| format!("{}: {}", d.position(), d.message))
                        .unwrap_or_default()
                ));
                report.rejected += 1;
                return;
            }
        };
        let new = match resolve(file, self.overrides.clone()) {
            Ok(new) => new,
            Err(message) => {
                tracing::warn!(
                    "{} not reloaded, the running settings stay: {message}",
                    path.display()
                );
                report.lines.push(format!(
                    "{}: rejected, not applied: {message}",
                    path.display()
                ));
                report.rejected += 1;
                return;
            }
        };
        let old = &self.settings;
        let mut changed = Vec::new();
        let mut needs_restart = Vec::new();
        if new.log_level != old.log_level {
            match self.set_log_filter.as_ref().map(|set| set(&new.log_level)) {
                Some(Ok(())) | None => changed.push(format!("log level {}", new.log_level)),
                Some(Err(err)) => {
                    tracing::warn!("log level \"{}\" not applied: {err}", new.log_level)
                }
            }
        }
        for (differs, what) in [
            (
                new.shutdown_timeout != old.shutdown_timeout,
                "shutdown_timeout",
            ),
            (new.restart != old.restart, "[restart]"),
            (
                new.plugin_limits != old.plugin_limits,
                "[plugin_limits] (for pipelines started from now on)",
            ),
            (
                new.rescan_interval != old.rescan_interval,
                "rescan_interval",
            ),
            (new.watch_debounce != old.watch_debounce, "watch_debounce"),
            (
                new.progress_history != old.progress_history,
                "progress_history (for pipelines started from now on)",
            ),
        ] {
            if differs {
                changed.push(what.to_string());
            }
        }
        for (differs, what) in [
            (new.pipelines_dir != old.pipelines_dir, "pipelines_dir"),
            (new.plugins_dir != old.plugins_dir, "plugins_dir"),
            (new.state_dir != old.state_dir, "state_dir"),
            (new.control_socket != old.control_socket, "control_socket"),
            (new.http != old.http, "http"),
            (new.log_format != old.log_format, "[log] format"),
        ] {
            if differs {
                needs_restart.push(what);
            }
        }
        if !needs_restart.is_empty() {
            let line = format!(
                "{}: {} changed; that takes effect when the daemon restarts (the running values stay)",
                path.display(),
                needs_restart.join(", ")
            );
            tracing::warn!("{line}");
            report.lines.push(line);
        }
        if !changed.is_empty() {
            let line = format!("{}: applied {}", path.display(), changed.join(", "));
            tracing::info!("{line}");
            report.lines.push(line);
        }
        self.topology.set_knobs(
            Knobs {
                stop_deadline: new.shutdown_timeout,
                restart: new.restart,
                progress_history: new.progress_history,
            },
            new.plugin_limits,
        );
        // What needs a restart keeps its running value.
        let mut kept = new;
        kept.pipelines_dir = self.settings.pipelines_dir.clone();
        kept.plugins_dir = self.settings.plugins_dir.clone();
        kept.state_dir = self.settings.state_dir.clone();
        kept.control_socket = self.settings.control_socket.clone();
        kept.http = self.settings.http;
        kept.log_format = self.settings.log_format;
        self.settings = kept;
    }

    async fn reload(&mut self, cause: Cause) -> ReloadReport {
        let registry = self.topology.registry();
        registry.set_reloading(Some(cause.word()));
        let report = self.reload_now(cause).await;
        registry.set_reloading(None);
        report
    }

    async fn reload_now(&mut self, cause: Cause) -> ReloadReport {
        let mut config_report = ReloadReport::default();
        if cause.explicit() {
            self.reread_config(&mut config_report);
        }
        let snapshot = self.scan().await;
        for error in &snapshot.folder_errors {
            tracing::warn!("reload ({}): {error}", cause.word());
        }
        let plan = self.topology.plan(snapshot).await;
        let announce = cause.explicit() || (cause != Cause::Startup && plan.applies_anything());
        if announce {
            self.notifier.reloading();
        }
        let mut report = self.topology.apply(plan).await;
        report.lines.splice(0..0, config_report.lines);
        report.rejected += config_report.rejected;
        if announce {
            self.notifier.ready();
        }
        let registry = self.topology.registry();
        registry.record_reload(report.applied, report.rejected);
        let counts = registry.counts();
        if announce || cause == Cause::Startup {
            tracing::info!(
                "reload ({}) done: {} applied, {} not applied; {counts}",
                cause.word(),
                report.applied,
                report.rejected
            );
        }
        self.notifier.status(&counts.to_string());
        report
    }

    async fn diff(&mut self) -> Vec<DiffLine> {
        let snapshot = self.scan().await;
        let plan = self.topology.plan(snapshot).await;
        plan.changes
            .iter()
            .map(|change| DiffLine {
                pipeline: change.name.clone(),
                file: change.file.display().to_string(),
                kind: change.action.kind().into(),
                summary: change.summary(),
                details: match &change.action {
                    Action::Rejected { diagnostics } => Some(diagnostics.to_string()),
                    Action::NeedsStateReset { message } | Action::Waiting { message } => {
                        Some(message.clone())
                    }
                    _ => None,
                },
            })
            .collect()
    }

    fn state_list(&self) -> Result<Vec<StateLine>, String> {
        let store = self.topology.store().clone();
        let names = crate::state::pipelines(&store).map_err(|e| e.to_string())?;
        let known = self.topology.names();
        let rejected: Vec<String> = self
            .topology
            .registry()
            .rejected()
            .into_iter()
            .filter_map(|r| r.name)
            .collect();
        names
            .into_iter()
            .map(|name| {
                let last = Checkpoint::new(store.clone(), &name)
                    .last_committed()
                    .map_err(|e| e.to_string())?;
                Ok(StateLine {
                    orphaned: !known.contains(&name) && !rejected.contains(&name),
                    last_committed: last.map(|c| c.batch_id),
                    pipeline: name,
                })
            })
            .collect()
    }

    async fn state_reset(&mut self, names: Vec<String>, topics: bool) -> Response {
        let store = self.topology.store().clone();
        let with_state = match crate::state::pipelines(&store) {
            Ok(names) => names,
            Err(err) => return Response::error(err.to_string()),
        };
        let known = self.topology.names();
        if let Some(unknown) = names
            .iter()
            .find(|n| !with_state.contains(n) && !known.contains(n))
        {
            return Response::error(format!(
                "pipeline `{unknown}` has no state in {}",
                self.settings.state_dir.display()
            ));
        }
        let running = self.topology.running_versions();
        let mut lines = Vec::new();
        for name in &names {
            let shared = match running
                .get(name)
                .map(|v| crate::assemble::shared_kafka_state(&v.plan))
            {
                Some(Some(shared)) => Some(shared),
                _ if topics => {
                    return Response::error(format!(
                        "pipeline `{name}` runs no aggregation on partitions shared through a consumer group here: --topics has nothing to delete"
                    ));
                }
                _ => None,
            };
            let stopped = self.topology.forget(name).await;
            if let Err(err) = Checkpoint::new(store.clone(), name).reset() {
                return Response::error(format!("cannot reset `{name}`: {err}"));
            }
            tracing::info!(pipeline = %name, "checkpoint and state reset on request");
            lines.push(format!(
                "reset pipeline `{name}`: {}checkpoint and state deleted (files it wrote stay; its next run writes new ones beside them)",
                if stopped { "stopped, " } else { "" }
            ));
            if let (true, Some(shared)) = (topics, shared) {
                let deleted = tokio::task::spawn_blocking(move || shared.delete()).await;
                match deleted {
                    Ok(Ok(said)) => {
                        tracing::info!(pipeline = %name, "{said}");
                        lines.push(format!("reset pipeline `{name}`: {said}"));
                    }
                    Ok(Err(err)) => {
                        return Response::error(format!("reset pipeline `{name}`: {err}"));
                    }
                    Err(err) => return Response::error(format!("reset pipeline `{name}`: {err}")),
                }
            }
        }
        // Files of reset pipelines start afresh.
        let report = self.reload(Cause::Request).await;
        lines.extend(report.lines);
        Response::ok(lines)
    }

    async fn request(&mut self, request: Request) -> Response {
        match request {
            Request::Reload => Response::ok(self.reload(Cause::Request).await),
            Request::Diff => Response::ok(self.diff().await),
            Request::Stop { pipeline } => match self.topology.stop(&pipeline).await {
                Ok(abandoned) => {
                    tracing::info!(pipeline = %pipeline, "stopped on request");
                    Response::ok(serde_json::json!({ "abandoned_batch": abandoned }))
                }
                Err(err) => Response::error(err),
            },
            Request::Start { pipeline } => match self.topology.start(&pipeline).await {
                Ok(()) => {
                    tracing::info!(pipeline = %pipeline, "started on request");
                    Response::ok(serde_json::json!({}))
                }
                Err(err) => Response::error(err),
            },
            Request::StateList => match self.state_list() {
                Ok(lines) => Response::ok(lines),
                Err(err) => Response::error(err),
            },
            Request::StateReset { pipelines, topics } => self.state_reset(pipelines, topics).await,
            // Answered by the handlers themselves; here only for completeness.
            Request::Status { .. } => Response::error("status is answered by the control socket"),
        }
    }
}

fn signals() -> Result<(Signal, Signal, Signal), DaemonError> {
    let make = |kind| signal(kind).map_err(DaemonError::Signals);
    Ok((
        make(SignalKind::hangup())?,
        make(SignalKind::terminate())?,
        make(SignalKind::interrupt())?,
    ))
}

fn ensure_dir(what: &'static str, path: &std::path::Path) -> Result<(), DaemonError> {
    if path.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(path).map_err(|source| DaemonError::Folder {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// Runs the daemon until a stop signal. `overrides` are the settings given as flags (they
/// keep winning when `weir.toml` is read again); `set_log_filter` changes the log level.
pub async fn run(
    settings: DaemonSettings,
    overrides: DaemonFile,
    set_log_filter: Option<SetLogFilter>,
) -> Result<DaemonExit, DaemonError> {
    let (mut sighup, mut sigterm, mut sigint) = signals()?;
    ensure_dir("pipelines", &settings.pipelines_dir)?;
    ensure_dir("plugins", &settings.plugins_dir)?;
    let store: SharedStore = Arc::new(RocksStore::open(&settings.state_dir)?);
    let host = PluginHost::new(
        settings.plugins_dir.clone(),
        Some(&settings.state_dir.join("plugin-cache")),
    )?;
    // A large plugin's first compile (a Python one takes ~15 s) holds up only the pipelines
    // that use it: they wait, the others start, and its end plans everything again.
    let (compiled_tx, mut compiled) = mpsc::unbounded_channel::<()>();
    host.compile_in_background(Some(Background {
        grace: DEFAULT_COMPILE_GRACE,
        on_done: Arc::new(move || {
            let _ = compiled_tx.send(());
        }),
    }));
    let topology = Topology::new(
        host,
        store.clone(),
        TopologySettings {
            runner: RunnerSettings::new(
                Environment {
                    store,
                    state_dir: settings.state_dir.clone(),
                    label_console: true,
                },
                Knobs {
                    stop_deadline: settings.shutdown_timeout,
                    restart: settings.restart,
                    progress_history: settings.progress_history,
                },
            ),
            limits: settings.plugin_limits,
        },
    );
    let registry = topology.registry();
    let (requests_tx, mut requests) = mpsc::channel::<Envelope>(64);
    let handlers = Handlers::new(registry.clone(), requests_tx);
    let control_listener = control::bind(&settings.control_socket).await?;
    let control_task = tokio::spawn(control::serve(control_listener, handlers.clone()));
    let ready = Arc::new(AtomicBool::new(false));
    let http_task = match settings.http {
        HttpListen::Off => None,
        HttpListen::At(addr) => {
            let (listener, local) = http::bind(addr)
                .await
                .map_err(|source| DaemonError::Http { addr, source })?;
            tracing::info!("HTTP API on http://{local}");
            Some(tokio::spawn(http::serve(
                listener,
                HttpState {
                    metrics: Arc::new(Exposition::new(handlers.registry().clone())),
                    handlers,
                    ready: ready.clone(),
                },
            )))
        }
    };
    tracing::info!(
        pipelines_dir = %settings.pipelines_dir.display(),
        plugins_dir = %settings.plugins_dir.display(),
        state_dir = %settings.state_dir.display(),
        control_socket = %settings.control_socket.display(),
        "weir daemon starting"
    );
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let notifier = Notifier::from_env();
    let mut pulse = Pulse::new(notifier.clone());
    let mut daemon = Daemon {
        watch: FolderWatch::new(events_tx),
        settings,
        overrides,
        set_log_filter,
        topology,
        notifier: notifier.clone(),
    };

    pulse.during(daemon.reload(Cause::Startup)).await;
    pulse.starting = false;
    ready.store(true, Ordering::Release);
    notifier.ready();
    tracing::info!("weir daemon ready");

    let changed = registry.changed();
    let mut rescan = tokio::time::interval(daemon.settings.rescan_interval);
    rescan.set_missed_tick_behavior(MissedTickBehavior::Delay);
    rescan.reset();
    let mut debounce = super::watch::Debounce::new();
    let mut rescan_every = daemon.settings.rescan_interval;
    loop {
        // A reloaded weir.toml may have changed the rescan period.
        if daemon.settings.rescan_interval != rescan_every {
            rescan_every = daemon.settings.rescan_interval;
            rescan = tokio::time::interval_at(Instant::now() + rescan_every, rescan_every);
            rescan.set_missed_tick_behavior(MissedTickBehavior::Delay);
        }
        tokio::select! {
            _ = sighup.recv() => {
                tracing::info!("SIGHUP: reloading");
                pulse.during(daemon.reload(Cause::Signal)).await;
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            Some(()) = events.recv() => {
                while events.try_recv().is_ok() {}
                debounce.poke(daemon.settings.watch_debounce);
            }
            () = debounce.due() => {
                pulse.during(daemon.reload(Cause::Files)).await;
            }
            Some(()) = compiled.recv() => {
                while compiled.try_recv().is_ok() {}
                pulse.during(daemon.reload(Cause::Compiled)).await;
            }
            _ = rescan.tick() => {
                pulse.during(daemon.reload(Cause::Rescan)).await;
            }
            Some((request, reply)) = requests.recv() => {
                let response = pulse.during(daemon.request(request)).await;
                let _ = reply.send(response);
            }
            () = changed.notified() => {
                notifier.status(&registry.counts().to_string());
            }
            _ = pulse.interval.tick() => pulse.beat(),
        }
    }

    ready.store(false, Ordering::Release);
    notifier.stopping();
    tracing::info!(
        "stopping: finishing batches in flight (deadline {:?})",
        daemon.settings.shutdown_timeout
    );
    // Requests that arrive now are refused.
    requests.close();
    let exit = tokio::select! {
        abandoned = pulse.during(daemon.topology.shutdown()) => {
            if !abandoned.is_empty() {
                tracing::warn!(
                    "stopped with abandoned batches: {} (they replay on the next start)",
                    abandoned.join(", ")
                );
            }
            DaemonExit::Clean
        }
        _ = sigterm.recv() => DaemonExit::Interrupted,
        _ = sigint.recv() => DaemonExit::Interrupted,
    };
    if exit == DaemonExit::Interrupted {
        tracing::warn!(
            "second stop signal: exiting without waiting (batches in flight replay on the next start)"
        );
    }
    control_task.abort();
    if let Some(task) = http_task {
        task.abort();
    }
    let _ = std::fs::remove_file(&daemon.settings.control_socket);
    if exit == DaemonExit::Clean {
        tracing::info!("weir daemon stopped");
    }
    Ok(exit)
}
