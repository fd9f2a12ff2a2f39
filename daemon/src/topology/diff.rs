//! The desired set of pipelines (what the folders say now) against the running set: what a
//! reload would do to each pipeline. Computing a diff changes nothing, which is what makes
//! `weir diff` a true dry run: it is the same function a reload applies.
//!
//! Per pipeline file the outcome is one of: unchanged (whitespace and comments change
//! nothing), start, stop, hot change (at a batch boundary, same checkpoint; in place when only
//! plugin versions changed), needs state reset (not applied: the old version keeps running),
//! rejected (not applied: the old version keeps running).

use super::folders::Snapshot;
use crate::assemble::{PrepareError, Prepared, StatefulIdentity};
use crate::config::{Diagnostic, Diagnostics, PipelinePlan, parse_pipeline, plan_changes};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A running pipeline, as the diff sees it.
#[derive(Debug, Clone)]
pub struct RunningVersion {
    /// The file it came from.
    pub file: PathBuf,
    /// Its plan.
    pub plan: PipelinePlan,
    /// The plugin versions it runs on (content hashes), by plugin name.
    pub plugin_versions: BTreeMap<String, String>,
    /// What its state is bound to.
    pub stateful: StatefulIdentity,
}

/// What a reload does to one pipeline.
#[derive(Debug, Clone)]
pub enum Action {
    /// Nothing: the file means the same and its plugins are the same. `notes` say what is
    /// worth knowing anyway (a plugin file it runs on was removed).
    Unchanged {
        /// Remarks for the status and the log.
        notes: Vec<String>,
    },
    /// A new pipeline starts.
    Start(Box<Prepared>),
    /// A pipeline whose file is gone stops; its state is kept.
    Stop,
    /// The new version replaces the running one at a batch boundary, on the same checkpoint.
    HotChange {
        /// The new version.
        prepared: Box<Prepared>,
        /// What changed, in the user's terms.
        changes: Vec<String>,
        /// Only plugin versions changed: the stages are swapped in place, the source keeps
        /// running. Otherwise the pipeline stops after its commit and the new version opens.
        in_place: bool,
    },
    /// Not applied: the new version needs the state reset; the old one keeps running.
    NeedsStateReset {
        /// Why, and how to proceed.
        message: String,
    },
    /// Not applied yet: plugins it uses are still compiling; the old version (if any) keeps
    /// running, and the daemon plans again when they are ready.
    Waiting {
        /// Which plugins, since when.
        message: String,
    },
    /// Not applied: the file has errors; the old version (if any) keeps running.
    Rejected {
        /// Every error, with file, line and column.
        diagnostics: Diagnostics,
    },
}

impl Action {
    /// A word for the kind of action, as `weir diff` and the log say it.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Unchanged { .. } => "unchanged",
            Action::Start(_) => "start",
            Action::Stop => "stop",
            Action::HotChange { .. } => "hot change",
            Action::NeedsStateReset { .. } => "needs state reset",
            Action::Waiting { .. } => "waiting",
            Action::Rejected { .. } => "rejected",
        }
    }

    /// Whether applying it changes anything running.
    pub fn applies(&self) -> bool {
        matches!(
            self,
            Action::Start(_) | Action::Stop | Action::HotChange { .. }
        )
    }
}

/// The outcome for one pipeline or file.
#[derive(Debug, Clone)]
pub struct Change {
    /// The pipeline, when it has a name (a file that does not parse may have none).
    pub name: Option<String>,
    /// The pipeline file (for a stop: the file the running version came from).
    pub file: PathBuf,
    /// What happens.
    pub action: Action,
}

impl Change {
    /// One line for `weir diff` and the log: `name (file): kind: details`.
    pub fn summary(&self) -> String {
        let who = match &self.name {
            Some(name) => format!("{name} ({})", self.file.display()),
            None => self.file.display().to_string(),
        };
        match &self.action {
            Action::Unchanged { notes } if notes.is_empty() => format!("{who}: unchanged"),
            Action::Unchanged { notes } => format!("{who}: unchanged ({})", notes.join("; ")),
            Action::Start(_) => format!("{who}: start"),
            Action::Stop => format!("{who}: stop (its checkpoint and state are kept)"),
            Action::HotChange {
                changes, in_place, ..
            } => format!(
                "{who}: hot change{}: {}",
                if *in_place {
                    " in place"
                } else {
                    " at a batch boundary"
                },
                changes.join(", ")
            ),
            Action::NeedsStateReset { message } => format!(
                "{who}: needs state reset, not applied: {}",
                message.lines().next().unwrap_or_default()
            ),
            Action::Waiting { message } => format!(
                "{who}: waiting, not applied yet: {}",
                message.lines().skip(1).collect::<Vec<_>>().join("; ")
            ),
            Action::Rejected { diagnostics } => {
                let first = diagnostics
                    .iter()
                    .next()
                    .map(|d| format!("{}: {}", d.position(), d.message))
                    .unwrap_or_default();
                let more = diagnostics.len().saturating_sub(1);
                format!(
                    "{who}: rejected, not applied: {first}{}",
                    if more > 0 {
                        format!(" (and {more} more)")
                    } else {
                        String::new()
                    }
                )
            }
        }
    }
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// How the plugins a running version uses differ from the folder: (changes, notes).
fn plugin_changes(running: &RunningVersion, snapshot: &Snapshot) -> (Vec<String>, Vec<String>) {
    let mut changes = Vec::new();
    let mut notes = Vec::new();
    for (name, hash) in &running.plugin_versions {
        match snapshot.plugins.get(name) {
            Some(file) if &file.sha256 != hash => changes.push(format!(
                "plugin `{name}` {} → {}",
                short(hash),
                short(&file.sha256)
            )),
            Some(_) => {}
            None => notes.push(format!(
                "plugin `{name}.wasm` was removed; running on the loaded version {}",
                short(hash)
            )),
        }
    }
    (changes, notes)
}

/// Classifies every pipeline file of `snapshot` against `running`. `prepare` is called only
/// for files that differ from what runs (or do not run); it must not change anything.
pub fn diff(
    running: &BTreeMap<String, RunningVersion>,
    snapshot: &Snapshot,
    prepare: &mut dyn FnMut(PipelinePlan) -> Result<Prepared, PrepareError>,
) -> Vec<Change> {
    let mut changes = Vec::new();
    // Parse every file first: names are checked for uniqueness across files.
    let mut parsed: Vec<(PathBuf, Result<PipelinePlan, Diagnostics>)> = snapshot
        .pipelines
        .iter()
        .map(|file| (file.path.clone(), parse_pipeline(&file.path, &file.text)))
        .collect();
    for (path, err) in &snapshot.unreadable {
        if path.extension().is_some_and(|e| e == "toml") {
            parsed.push((
                path.clone(),
                Err(Diagnostics::from(Diagnostic::whole_file(
                    path,
                    format!("cannot read pipeline file: {err}"),
                ))),
            ));
        }
    }
    let mut claims: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for (path, plan) in &parsed {
        if let Ok(plan) = plan {
            claims
                .entry(plan.name.clone())
                .or_default()
                .push(path.clone());
        }
    }
    for (path, plan) in &mut parsed {
        let Ok(p) = plan else { continue };
        let Some(files) = claims.get(&p.name).filter(|f| f.len() > 1) else {
            continue;
        };
        let others: Vec<String> = files
            .iter()
            .filter(|f| *f != path)
            .map(|f| f.display().to_string())
            .collect();
        let diagnostic = Diagnostic::located(
            path,
            p.name_location.clone(),
            format!(
                "pipeline name `{}` is also claimed by {}",
                p.name,
                others.join(", ")
            ),
        )
        .with_hint("the name identifies the pipeline's checkpoint and state, so it must be unique; neither file is applied until one is renamed");
        *plan = Err(Diagnostics::from(diagnostic));
    }

    let mut claimed: Vec<String> = Vec::new();
    for (path, plan) in parsed {
        let plan = match plan {
            Ok(plan) => plan,
            Err(diagnostics) => {
                // A file that no longer parses keeps the pipeline it started running.
                let started_here = running
                    .iter()
                    .find(|(_, r)| r.file == path)
                    .map(|(name, _)| name.clone());
                if let Some(name) = &started_here {
                    claimed.push(name.clone());
                }
                let name = started_here.or_else(|| name_of(&snapshot.pipelines, &path));
                changes.push(Change {
                    name,
                    file: path,
                    action: Action::Rejected { diagnostics },
                });
                continue;
            }
        };
        let name = plan.name.clone();
        claimed.push(name.clone());
        let action = match running.get(&name) {
            Some(current) => {
                let mut what = plan_changes(&current.plan, &plan);
                let in_place = what.is_empty();
                let (plugins, notes) = plugin_changes(current, snapshot);
                what.extend(plugins);
                if what.is_empty() {
                    Action::Unchanged { notes }
                } else {
                    match prepare(plan) {
                        Ok(prepared) if prepared.stateful != current.stateful => {
                            Action::NeedsStateReset {
                                message: state_change_message(&name, current, &prepared),
                            }
                        }
                        Ok(prepared) => Action::HotChange {
                            prepared: Box::new(prepared),
                            changes: what,
                            in_place,
                        },
                        Err(PrepareError::NeedsStateReset(message)) => Action::NeedsStateReset {
                            message: format!(
                                "{message}\n(the running version keeps running on its state until then)"
                            ),
                        },
                        Err(PrepareError::Invalid(diagnostics)) => Action::Rejected { diagnostics },
                        Err(err @ PrepareError::WaitingForPlugins(_)) => Action::Waiting {
                            message: format!(
                                "{err}\n(the running version keeps running until then)"
                            ),
                        },
                    }
                }
            }
            None => match prepare(plan) {
                Ok(prepared) => Action::Start(Box::new(prepared)),
                Err(PrepareError::NeedsStateReset(message)) => Action::NeedsStateReset { message },
                Err(PrepareError::Invalid(diagnostics)) => Action::Rejected { diagnostics },
                Err(err @ PrepareError::WaitingForPlugins(_)) => Action::Waiting {
                    message: err.to_string(),
                },
            },
        };
        changes.push(Change {
            name: Some(name),
            file: path,
            action,
        });
    }
    for (name, current) in running {
        if !claimed.contains(name) {
            changes.push(Change {
                name: Some(name.clone()),
                file: current.file.clone(),
                action: Action::Stop,
            });
        }
    }
    changes
}

/// The `name = "..."` of a file that does not validate, when a lenient read finds one: so a
/// rejected new file is listed under the pipeline it is meant to be.
fn name_of(files: &[super::folders::PipelineText], path: &PathBuf) -> Option<String> {
    let text = &files.iter().find(|f| &f.path == path)?.text;
    let table: toml::Table = toml::from_str(text).ok()?;
    table.get("name")?.as_str().map(str::to_string)
}

fn state_change_message(name: &str, current: &RunningVersion, new: &Prepared) -> String {
    let (old, now) = (&current.stateful, &new.stateful);
    let what = if old.source != now.source {
        format!(
            "its source changed from `{}` to `{}`",
            old.source, now.source
        )
    } else {
        format!(
            "its aggregation changed\n  running: {}\n  new:     {}",
            old.aggregate.as_deref().unwrap_or("(none)"),
            now.aggregate.as_deref().unwrap_or("(none)")
        )
    };
    format!(
        "{what}; the running version keeps running on its state. To run the new version from scratch, delete the old checkpoint and state with `weir state reset {name}` (or give the pipeline a new name to keep the old state)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assemble::{PrepareContext, prepare};
    use crate::topology::folders::{PipelineText, PluginFile};
    use crate::wasm::Limits;
    use std::path::Path;

    fn pipeline(name: &str, extra: &str) -> String {
        format!(
            "name = \"{name}\"\n{extra}\n[source]\ntype = \"rate\"\n\n[[sink]]\ntype = \"null\"\n"
        )
    }

    fn snapshot(files: &[(&str, String)]) -> Snapshot {
        Snapshot {
            pipelines: files
                .iter()
                .map(|(path, text)| PipelineText {
                    path: PathBuf::from(path),
                    text: text.clone(),
                })
                .collect(),
            ..Snapshot::default()
        }
    }

    /// Prepares with no plugins folder and no store: enough for plugin-free pipelines.
    fn prepare_without_plugins(plan: PipelinePlan) -> Result<Prepared, PrepareError> {
        prepare(
            plan,
            PrepareContext {
                plugins: None,
                store: None,
                limits: Limits::default(),
            },
        )
    }

    fn run(
        running: &BTreeMap<String, RunningVersion>,
        snapshot: &Snapshot,
    ) -> Vec<(Option<String>, String, &'static str)> {
        let mut out: Vec<_> = diff(running, snapshot, &mut prepare_without_plugins)
            .into_iter()
            .map(|c| (c.name, c.file.display().to_string(), c.action.kind()))
            .collect();
        out.sort();
        out
    }

    fn running_from(files: &[(&str, String)]) -> BTreeMap<String, RunningVersion> {
        files
            .iter()
            .filter_map(|(path, text)| {
                let plan = parse_pipeline(Path::new(path), text).ok()?;
                Some((
                    plan.name.clone(),
                    RunningVersion {
                        file: PathBuf::from(path),
                        stateful: StatefulIdentity {
                            source: plan.source.kind(),
                            aggregate: None,
                        },
                        plan,
                        plugin_versions: BTreeMap::new(),
                    },
                ))
            })
            .collect()
    }

    #[test]
    fn from_nothing_every_valid_file_starts_and_an_invalid_one_is_rejected() {
        let files = [
            ("/d/a.toml", pipeline("a", "")),
            (
                "/d/b.toml",
                "name = \"b\"\n[source]\ntype = \"nope\"\n".to_string(),
            ),
        ];
        assert_eq!(
            run(&BTreeMap::new(), &snapshot(&files)),
            [
                (Some("a".into()), "/d/a.toml".into(), "start"),
                (Some("b".into()), "/d/b.toml".into(), "rejected"),
            ]
        );
    }

    #[test]
    fn each_kind_of_change_against_a_running_set() {
        let before = [
            ("/d/same.toml", pipeline("same", "")),
            ("/d/edited.toml", pipeline("edited", "")),
            ("/d/broken.toml", pipeline("broken", "")),
            ("/d/gone.toml", pipeline("gone", "")),
            ("/d/stateful.toml", pipeline("stateful", "")),
        ];
        let mut after = vec![
            (
                "/d/same.toml",
                format!("# a comment\n\n{}", pipeline("same", "")),
            ),
            (
                "/d/edited.toml",
                pipeline("edited", "trigger = { processing_time = \"1s\" }"),
            ),
            ("/d/broken.toml", "name = \"broken\"\n[source\n".to_string()),
            (
                "/d/stateful.toml",
                pipeline("stateful", "").replace(
                    "type = \"rate\"",
                    "type = \"rate_micro_batch\"\nrows_per_batch = 1",
                ),
            ),
            ("/d/new.toml", pipeline("new", "")),
        ];
        after.sort();
        assert_eq!(
            run(&running_from(&before), &snapshot(&after)),
            [
                (Some("broken".into()), "/d/broken.toml".into(), "rejected"),
                (Some("edited".into()), "/d/edited.toml".into(), "hot change"),
                (Some("gone".into()), "/d/gone.toml".into(), "stop"),
                (Some("new".into()), "/d/new.toml".into(), "start"),
                (Some("same".into()), "/d/same.toml".into(), "unchanged"),
                (
                    Some("stateful".into()),
                    "/d/stateful.toml".into(),
                    "needs state reset"
                ),
            ]
        );
    }

    #[test]
    fn two_files_claiming_one_name_are_both_rejected_naming_each_other() {
        let files = [
            ("/d/one.toml", pipeline("p", "")),
            ("/d/two.toml", pipeline("p", "")),
        ];
        let changes = diff(&BTreeMap::new(), &snapshot(&files), &mut |_| {
            panic!("nothing is prepared")
        });
        assert_eq!(changes.len(), 2);
        for change in &changes {
            let Action::Rejected { diagnostics } = &change.action else {
                panic!("{change:?}")
            };
            let other = if change.file.ends_with("one.toml") {
                "/d/two.toml"
            } else {
                "/d/one.toml"
            };
            let text = diagnostics.to_string();
            assert!(
                text.contains(&format!("pipeline name `p` is also claimed by {other}")),
                "{text}"
            );
        }
    }

    #[test]
    fn a_changed_plugin_is_an_in_place_change_and_a_removed_one_a_note() {
        let text = pipeline("p", "");
        let mut running = running_from(&[("/d/p.toml", text.clone())]);
        if let Some(r) = running.get_mut("p") {
            r.plugin_versions.insert("compute".into(), "a".repeat(64));
        }
        let mut snap = snapshot(&[("/d/p.toml", text)]);
        snap.plugins.insert(
            "compute".into(),
            PluginFile {
                path: "/plugins/compute.wasm".into(),
                sha256: "b".repeat(64),
            },
        );
        let changes = diff(&running, &snap, &mut prepare_without_plugins);
        let Action::HotChange {
            changes: what,
            in_place,
            ..
        } = &changes[0].action
        else {
            panic!("{:?}", changes[0])
        };
        assert!(in_place);
        assert_eq!(what, &["plugin `compute` aaaaaaaaaaaa → bbbbbbbbbbbb"]);
        snap.plugins.clear();
        let changes = diff(&running, &snap, &mut |_| panic!("nothing is prepared"));
        assert_eq!(
            changes[0].summary(),
            "p (/d/p.toml): unchanged (plugin `compute.wasm` was removed; running on the loaded version aaaaaaaaaaaa)"
        );
    }
}
