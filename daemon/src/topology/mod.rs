//! The supervisor: the running set of pipelines, keyed by name, and the one path by which it
//! changes. Start-up, file events, SIGHUP, the periodic rescan and `weir reload` all read the
//! folders ([`folders::scan`]), compute a diff against what runs ([`Topology::plan`], which
//! changes nothing) and apply it ([`Topology::apply`]). Start-up is a reload from an empty
//! running set. `weir diff` is a plan that is not applied.
//!
//! This is the only module that starts, swaps and stops pipelines.

pub mod diff;
pub mod folders;
pub mod registry;
pub mod runner;

use crate::assemble::{Environment, PrepareContext, prepare};
use crate::state::SharedStore;
use crate::wasm::{Limits, PluginCatalog, PluginError, PluginHost};
use diff::{Action, Change, RunningVersion};
use folders::Snapshot;
use registry::{Pending, PluginFileStatus, Registry, RejectedFile};
use runner::{Applied, Command, RunnerHandle, RunnerSettings, StopReason};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::oneshot;

/// A diff ready to apply, with what the plugins folder holds.
#[derive(Debug)]
pub struct ReloadPlan {
    /// One entry per pipeline file or running pipeline.
    pub changes: Vec<Change>,
    /// The plugins folder, each file loaded (compiled) or with why it cannot be.
    pub plugins: Vec<PluginFileStatus>,
}

impl ReloadPlan {
    /// Whether applying it changes anything running.
    pub fn applies_anything(&self) -> bool {
        self.changes.iter().any(|c| c.action.applies())
    }
}

/// What applying a plan did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReloadReport {
    /// One line per pipeline or file that is not unchanged.
    pub lines: Vec<String>,
    /// Pipelines started, replaced or stopped.
    pub applied: usize,
    /// Files or versions not applied (rejected, needing a state reset, failing to start).
    pub rejected: usize,
    /// Files or versions not applied yet: their plugins are still compiling.
    pub waiting: usize,
}

/// Settings of the supervisor.
#[derive(Debug, Clone)]
pub struct TopologySettings {
    /// What runners share.
    pub runner: RunnerSettings,
    /// Plugin limits for stages that set none.
    pub limits: Limits,
}

/// The running set.
pub struct Topology {
    host: PluginHost,
    store: SharedStore,
    settings: TopologySettings,
    runners: BTreeMap<String, RunnerHandle>,
    registry: Arc<Registry>,
}

impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topology")
            .field("pipelines", &self.runners.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The kind of a pending version that waits for its plugins to compile.
pub const PENDING_COMPILING: &str = "waiting_for_plugins";

fn pending_of(kind: &str, message: String, position: Option<String>) -> Pending {
    Pending {
        kind: kind.into(),
        position,
        message,
    }
}

impl Topology {
    /// An empty running set.
    pub fn new(host: PluginHost, store: SharedStore, settings: TopologySettings) -> Topology {
        Topology {
            host,
            store,
            settings,
            runners: BTreeMap::new(),
            registry: Arc::new(Registry::default()),
        }
    }

    /// The shared status.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }

    /// The store.
    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    /// Where pipelines open (console labels can change between runs).
    pub fn set_environment(&mut self, env: Environment) {
        self.settings.runner.env = env;
    }

    /// Changes the settings a reload of the daemon's config may change: the stop deadline and
    /// restart policy (for every pipeline at once) and the default plugin limits (for
    /// pipelines prepared from now on).
    pub fn set_knobs(&mut self, knobs: runner::Knobs, limits: Limits) {
        self.settings.runner.set_knobs(knobs);
        self.settings.limits = limits;
    }

    /// The names of the pipelines the supervisor holds.
    pub fn names(&self) -> Vec<String> {
        self.runners.keys().cloned().collect()
    }

    /// What runs, as the diff sees it.
    pub fn running_versions(&self) -> BTreeMap<String, RunningVersion> {
        self.runners
            .iter()
            .map(|(name, runner)| {
                let prepared = &runner.prepared;
                (
                    name.clone(),
                    RunningVersion {
                        file: runner.entry.snapshot().file,
                        plan: prepared.plan.clone(),
                        plugin_versions: prepared.plugin_versions(),
                        stateful: prepared.stateful.clone(),
                    },
                )
            })
            .collect()
    }

    /// Computes what applying `snapshot` would do, changing nothing. Plugins are loaded
    /// (compiled, or read from the compile cache) and files type-checked on a blocking thread.
    pub async fn plan(&self, snapshot: Snapshot) -> ReloadPlan {
        let running = self.running_versions();
        let host = self.host.clone();
        let store = self.store.clone();
        let limits = self.settings.limits;
        let planned = tokio::task::spawn_blocking(move || {
            let plugins = plugin_statuses(&host, &snapshot);
            let mut prepare_one = |plan| {
                // A catalog per pipeline: each pins the versions it was checked with.
                let catalog = PluginCatalog::from_folder(host.clone());
                prepare(
                    plan,
                    PrepareContext {
                        plugins: Some(&catalog),
                        store: Some(&store),
                        limits,
                    },
                )
            };
            let changes = diff::diff(&running, &snapshot, &mut prepare_one);
            ReloadPlan { changes, plugins }
        })
        .await;
        planned.unwrap_or_else(|err| ReloadPlan {
            changes: vec![Change {
                name: None,
                file: "(reload)".into(),
                action: Action::Rejected {
                    diagnostics: crate::config::Diagnostics::from(
                        crate::config::Diagnostic::whole_file(
                            std::path::Path::new("(reload)"),
                            format!(
                                "internal error (a bug in weir): the reload failed: {}",
                                crate::engine::panic_message(err)
                            ),
                        ),
                    ),
                },
            }],
            plugins: self.registry.plugins(),
        })
    }

    /// Applies a plan: stops first (so a port or a name is free), then replacements, then
    /// starts. Changes to different pipelines proceed in parallel.
    pub async fn apply(&mut self, plan: ReloadPlan) -> ReloadReport {
        let mut report = ReloadReport::default();
        self.report_plugins(plan.plugins);
        let mut stops = Vec::new();
        let mut replaces = Vec::new();
        let mut starts = Vec::new();
        let mut rejected_files = Vec::new();
        for change in plan.changes {
            let summary = change.summary();
            match change.action {
                Action::Unchanged { notes } => {
                    if let Some(runner) = change.name.as_ref().and_then(|n| self.runners.get(n)) {
                        let file = change.file.clone();
                        runner.entry.update(|s| {
                            s.notes = notes;
                            s.pending = None;
                            s.file = file;
                        });
                    }
                }
                Action::Stop => {
                    let Some(name) = change.name else { continue };
                    if let Some(runner) = self.runners.remove(&name) {
                        let (ack, done) = oneshot::channel();
                        let _ = runner.commands.send(Command::Stop {
                            reason: StopReason::Removed,
                            ack,
                        });
                        stops.push((name, summary, runner, done));
                    }
                }
                Action::HotChange {
                    prepared, in_place, ..
                } => {
                    let Some(name) = change.name else { continue };
                    let prepared = Arc::new(*prepared);
                    if let Some(runner) = self.runners.get_mut(&name) {
                        let (ack, done) = oneshot::channel();
                        let _ = runner.commands.send(Command::Replace {
                            prepared: prepared.clone(),
                            in_place,
                            ack,
                        });
                        let old = std::mem::replace(&mut runner.prepared, prepared);
                        replaces.push((name, summary, old, done));
                    }
                }
                Action::Start(prepared) => starts.push((Arc::new(*prepared), summary)),
                Action::NeedsStateReset { .. }
                | Action::Rejected { .. }
                | Action::Waiting { .. } => {
                    let pending = match change.action {
                        Action::Waiting { message } => pending_of(PENDING_COMPILING, message, None),
                        Action::Rejected { diagnostics } => pending_of(
                            "rejected",
                            diagnostics.to_string(),
                            diagnostics.iter().next().map(|d| d.position()),
                        ),
                        Action::NeedsStateReset { message } => {
                            pending_of("needs_state_reset", message, None)
                        }
                        _ => continue,
                    };
                    self.not_applied(
                        change.name,
                        change.file,
                        pending,
                        &summary,
                        &mut rejected_files,
                        &mut report,
                    );
                }
            }
        }
        for (name, summary, runner, done) in stops {
            let abandoned = done.await.unwrap_or(false);
            let _ = runner.task.await;
            self.registry.remove(&name);
            tracing::info!("reload: {summary}{}", abandoned_note(abandoned));
            report.lines.push(summary);
            report.applied += 1;
        }
        for (name, summary, old, done) in replaces {
            match done.await {
                Ok(Ok(applied)) => {
                    let how = match applied {
                        Applied::InPlace => String::new(),
                        Applied::Restarted { abandoned } => abandoned_note(abandoned).to_string(),
                        Applied::Replaced => {
                            " (it was not running; the new version is in place)".into()
                        }
                    };
                    tracing::info!("reload: {summary}{how}");
                    report.lines.push(summary);
                    report.applied += 1;
                }
                Ok(Err(message)) => {
                    tracing::error!(pipeline = %name, "reload: {summary}: not applied: {message}");
                    if let Some(runner) = self.runners.get_mut(&name) {
                        // The runner rolled back to the previous version.
                        runner.prepared = old;
                        runner.entry.update(|s| {
                            s.pending = Some(pending_of("rejected", message.clone(), None))
                        });
                    }
                    report
                        .lines
                        .push(format!("{summary}: not applied: {message}"));
                    report.rejected += 1;
                }
                Err(_) => {
                    tracing::error!(pipeline = %name, "reload: the pipeline's runner ended unexpectedly (a bug in weir)");
                }
            }
        }
        let mut starting = Vec::new();
        for (prepared, summary) in starts {
            let name = prepared.plan.name.clone();
            let entry = self
                .registry
                .insert(&name, runner::new_entry_state(&prepared));
            let (started, done) = oneshot::channel();
            let handle =
                runner::spawn(prepared, entry, self.settings.runner.clone(), true, started);
            self.runners.insert(name, handle);
            tracing::info!("reload: {summary}");
            report.lines.push(summary);
            report.applied += 1;
            starting.push(done);
        }
        // Pipelines open in parallel; the reload is over once each has started (or failed to).
        for done in starting {
            let _ = done.await;
        }
        self.registry.set_rejected(rejected_files);
        report
    }

    /// Records a change that is not applied, logging it once per distinct message.
    fn not_applied(
        &self,
        name: Option<String>,
        file: std::path::PathBuf,
        pending: Pending,
        summary: &str,
        rejected_files: &mut Vec<RejectedFile>,
        report: &mut ReloadReport,
    ) {
        report.lines.push(summary.to_string());
        let waiting = pending.kind == PENDING_COMPILING;
        if waiting {
            report.waiting += 1;
        } else {
            report.rejected += 1;
        }
        // The error belongs to the running pipeline only if it is about the file that pipeline
        // runs from; another file claiming its name is a rejected file of its own.
        let running = name
            .as_ref()
            .and_then(|n| self.runners.get(n))
            .filter(|runner| runner.entry.snapshot().file == file);
        let already_known = match running {
            Some(runner) => runner.entry.snapshot().pending.as_ref() == Some(&pending),
            None => self
                .registry
                .rejected()
                .iter()
                .any(|r| r.file == file && r.pending == pending),
        };
        if !already_known && waiting {
            tracing::info!("reload: {summary}");
        } else if !already_known {
            tracing::warn!(
                "reload: {summary}{}\n{}",
                if running.is_some() {
                    " (the running version keeps running)"
                } else {
                    ""
                },
                pending.message.trim_end()
            );
        }
        match running {
            Some(runner) => runner.entry.update(|s| s.pending = Some(pending)),
            None => rejected_files.push(RejectedFile {
                name,
                file,
                pending,
            }),
        }
    }

    fn report_plugins(&self, plugins: Vec<PluginFileStatus>) {
        let before = self.registry.plugins();
        for plugin in &plugins {
            if before.contains(plugin) {
                continue;
            }
            if let Some(since) = plugin.compiling_since_ms {
                // Logged once per content: the next status of the same file is "loaded".
                if !before
                    .iter()
                    .any(|b| b.sha256 == plugin.sha256 && b.compiling_since_ms.is_some())
                {
                    tracing::info!(
                        plugin = %plugin.name,
                        "plugin {}.wasm is compiling ({:.1} MB, {:.0} s so far) on a thread of its own; pipelines that use it start when it is ready, the others go on",
                        plugin.name,
                        plugin.size as f64 / 1e6,
                        (crate::sources::now_ms() - since) as f64 / 1000.0
                    );
                }
                continue;
            }
            match &plugin.error {
                Some(error) => tracing::warn!(
                    plugin = %plugin.name,
                    "plugin {}.wasm cannot be loaded (nothing running changes): {error}",
                    plugin.name
                ),
                None => tracing::info!(
                    plugin = %plugin.name,
                    "plugin {}.wasm loaded: {} {} (sha256 {}; {:.1} MB, compiled or read from the compile cache in {:.2} s)",
                    plugin.name,
                    plugin.kind.as_deref().unwrap_or("?"),
                    plugin.version.as_deref().unwrap_or("?"),
                    plugin.sha256.get(..12).unwrap_or(&plugin.sha256),
                    plugin.size as f64 / 1e6,
                    plugin.compile_ms.unwrap_or(0) as f64 / 1000.0
                ),
            }
        }
        self.registry.set_plugins(plugins);
    }

    async fn ask<T>(
        &self,
        name: &str,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, String> {
        let runner = self
            .runners
            .get(name)
            .ok_or_else(|| format!("no pipeline named `{name}` is known to the daemon"))?;
        let (ack, answer) = oneshot::channel();
        runner
            .commands
            .send(command(ack))
            .map_err(|_| format!("pipeline `{name}` is not supervised any more (a bug in weir)"))?;
        answer
            .await
            .map_err(|_| format!("pipeline `{name}` did not answer (a bug in weir)"))
    }

    /// `weir stop NAME`: stops it at a batch boundary; it stays stopped until `weir start`
    /// (reloads keep it stopped). Returns whether a batch was abandoned.
    pub async fn stop(&self, name: &str) -> Result<bool, String> {
        self.ask(name, |ack| Command::Stop {
            reason: StopReason::Request,
            ack,
        })
        .await
    }

    /// `weir start NAME`: starts a stopped or failed pipeline.
    pub async fn start(&self, name: &str) -> Result<(), String> {
        self.ask(name, |ack| Command::Start { ack }).await?
    }

    /// Stops `name` and forgets it, so that a following reload starts its file afresh (after
    /// its state was reset).
    pub async fn forget(&mut self, name: &str) -> bool {
        let Some(runner) = self.runners.remove(name) else {
            return false;
        };
        let (ack, done) = oneshot::channel();
        let _ = runner.commands.send(Command::Stop {
            reason: StopReason::Removed,
            ack,
        });
        let _ = done.await;
        let _ = runner.task.await;
        self.registry.remove(name);
        true
    }

    /// Stops every pipeline in parallel, each within the stop deadline. Returns the names of
    /// those whose batch in flight was abandoned.
    pub async fn shutdown(&mut self) -> Vec<String> {
        let mut waiting = Vec::new();
        for (name, runner) in std::mem::take(&mut self.runners) {
            let (ack, done) = oneshot::channel();
            let _ = runner.commands.send(Command::Stop {
                reason: StopReason::Shutdown,
                ack,
            });
            waiting.push((name, runner, done));
        }
        let mut abandoned = Vec::new();
        for (name, runner, done) in waiting {
            if done.await.unwrap_or(false) {
                abandoned.push(name);
            }
            let _ = runner.task.await;
        }
        abandoned
    }
}

fn abandoned_note(abandoned: bool) -> &'static str {
    if abandoned {
        " (the old version's batch in flight did not finish within the deadline; it was abandoned uncommitted and replays on the new version)"
    } else {
        ""
    }
}

/// Loads every plugin file (compiling new contents in the background of the reload) to tell
/// which load and which do not.
fn plugin_statuses(host: &PluginHost, snapshot: &Snapshot) -> Vec<PluginFileStatus> {
    snapshot
        .plugins
        .iter()
        .map(|(name, file)| match host.load_file(&file.path) {
            Ok(plugin) => PluginFileStatus {
                name: name.clone(),
                sha256: plugin.sha256.clone(),
                kind: Some(plugin.kind.as_str().to_string()),
                version: Some(plugin.info.version.clone()),
                error: None,
                size: plugin.size,
                compile_ms: Some(plugin.compile_time.as_millis() as u64),
                compiling_since_ms: None,
            },
            Err(PluginError::Compiling { size, elapsed, .. }) => PluginFileStatus {
                name: name.clone(),
                sha256: file.sha256.clone(),
                kind: None,
                version: None,
                error: None,
                size,
                compile_ms: None,
                compiling_since_ms: Some(crate::sources::now_ms() - elapsed.as_millis() as i64),
            },
            Err(err) => PluginFileStatus {
                name: name.clone(),
                sha256: file.sha256.clone(),
                kind: None,
                version: None,
                error: Some(err.to_string()),
                size: 0,
                compile_ms: None,
                compiling_since_ms: None,
            },
        })
        .collect()
}
