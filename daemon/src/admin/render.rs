//! `weir status` and `weir diff` for people: a table readable at a glance, and one pipeline's
//! details. `--json` prints the API's own JSON instead.

use super::protocol::DiffLine;
use crate::engine::{BatchProgress, PipelineStatus};
use crate::topology::registry::{PipelineReport, RunState, StatusReport};

pub(crate) fn human_count(n: f64) -> String {
    let (value, unit) = if n >= 1e9 {
        (n / 1e9, "G")
    } else if n >= 1e6 {
        (n / 1e6, "M")
    } else if n >= 1e3 {
        (n / 1e3, "k")
    } else {
        return format!("{n:.0}");
    };
    format!("{value:.1}{unit}")
}

pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

pub(crate) fn human_duration_ms(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

fn cut(text: &str, width: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() <= width {
        line.to_string()
    } else {
        let mut out: String = line.chars().take(width.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// The engine's status of a run, in a word or a few.
fn engine_text(status: &PipelineStatus) -> String {
    match status {
        PipelineStatus::Starting => "starting".into(),
        PipelineStatus::Waiting => "waiting".into(),
        PipelineStatus::Running => "running".into(),
        PipelineStatus::Retrying(why) => format!("retrying ({})", cut(why, 40)),
        PipelineStatus::Stopped => "stopped".into(),
        PipelineStatus::Abandoned => "stopped (batch abandoned, replays)".into(),
        PipelineStatus::Finished => "finished".into(),
        PipelineStatus::Failed(why) => format!("failed ({})", cut(why, 50)),
    }
}

/// The STATE column: running / failed (why) / rejected (file:line) / restarting in 12 s /
/// stopped, plus a note when a newer version of the file was not applied.
pub fn state_text(report: &PipelineReport, now_ms: i64) -> String {
    let mut text = match &report.run {
        RunState::Starting => "starting".to_string(),
        RunState::Running => match &report.engine {
            Some(PipelineStatus::Retrying(why)) => format!("retrying ({})", cut(why, 40)),
            Some(PipelineStatus::Starting) => "starting".into(),
            _ => "running".into(),
        },
        RunState::Restarting { at_ms, reason, .. } => format!(
            "restarting in {} ({})",
            human_duration_ms(at_ms - now_ms + 999),
            cut(reason, 40)
        ),
        RunState::Failed { message, .. } => format!("failed ({})", cut(message, 50)),
        RunState::Finished => "finished".into(),
        RunState::Stopped {
            abandoned_batch, ..
        } => {
            if *abandoned_batch {
                "stopped (batch abandoned, replays)".into()
            } else {
                "stopped".into()
            }
        }
    };
    if let Some(pending) = &report.pending {
        let what = if pending.kind == "needs_state_reset" {
            "new version needs state reset".to_string()
        } else if pending.kind == crate::topology::PENDING_COMPILING {
            "new version waits for its plugins to compile".to_string()
        } else {
            match &pending.position {
                Some(position) => format!("new version rejected ({position})"),
                None => "new version rejected".into(),
            }
        };
        text.push_str(&format!("; {what}"));
    }
    text
}

fn watermark_text(batch: Option<&BatchProgress>, now_ms: i64) -> String {
    match batch.and_then(|b| b.watermark_ms) {
        Some(ms) => {
            let at = chrono::DateTime::from_timestamp_millis(ms)
                .map(|t| t.format("%H:%M:%S").to_string())
                .unwrap_or_default();
            format!("{at} (-{})", human_duration_ms(now_ms - ms))
        }
        None => "-".into(),
    }
}

pub(crate) fn state_size(batch: Option<&BatchProgress>) -> String {
    match batch {
        Some(b) if !b.state_operators.is_empty() => {
            let groups: u64 = b.state_operators.iter().map(|s| s.num_rows_total).sum();
            let bytes: u64 = b.state_operators.iter().map(|s| s.memory_used_bytes).sum();
            format!("{} / {}", human_count(groups as f64), human_bytes(bytes))
        }
        _ => "-".into(),
    }
}

fn plugins_text(report: &PipelineReport) -> String {
    if report.plugins.is_empty() {
        return "-".into();
    }
    report
        .plugins
        .iter()
        .map(|p| format!("{} {}", p.name, p.version))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `weir status` table.
pub fn status_table(status: &StatusReport, now_ms: i64) -> String {
    let header = [
        "NAME",
        "STATE",
        "BATCHES",
        "IN/S",
        "PROCESSED/S",
        "WATERMARK (LAG)",
        "STATE GROUPS/BYTES",
        "LAST BATCH",
        "PLUGINS",
    ];
    let mut rows: Vec<Vec<String>> = Vec::new();
    for p in &status.pipelines {
        let last = p.last_batch.as_ref();
        rows.push(vec![
            p.name.clone(),
            state_text(p, now_ms),
            p.batches.to_string(),
            last.map_or("-".into(), |b| human_count(b.input_rows_per_second)),
            last.map_or("-".into(), |b| human_count(b.processed_rows_per_second)),
            watermark_text(last, now_ms),
            state_size(last),
            last.map_or("-".into(), |b| {
                format!("{:.1} ms", b.duration_ms.trigger_execution)
            }),
            plugins_text(p),
        ]);
    }
    for r in &status.rejected_files {
        let name = r.name.clone().unwrap_or_else(|| {
            r.file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        let why = if r.pending.kind == "needs_state_reset" {
            "needs state reset".to_string()
        } else if r.pending.kind == crate::topology::PENDING_COMPILING {
            "waiting for its plugins to compile".to_string()
        } else {
            match &r.pending.position {
                Some(position) => format!("rejected ({position})"),
                None => format!("rejected ({})", r.file.display()),
            }
        };
        let mut row = vec![name, why];
        row.extend(std::iter::repeat_n("-".to_string(), header.len() - 2));
        rows.push(row);
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<String>, out: &mut String| {
        let last = cells.len() - 1;
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push('\n');
    };
    line(header.iter().map(|h| h.to_string()).collect(), &mut out);
    for row in rows {
        line(row, &mut out);
    }
    if status.pipelines.is_empty() && status.rejected_files.is_empty() {
        out.push_str("(no pipelines)\n");
    }
    let broken: Vec<&str> = status
        .plugins
        .iter()
        .filter(|p| p.error.is_some())
        .map(|p| p.name.as_str())
        .collect();
    out.push_str(&format!("\n{}", status.counts));
    if let Some(cause) = &status.reloading {
        out.push_str(&format!("; reloading ({cause})"));
    }
    if !broken.is_empty() {
        out.push_str(&format!(
            "; plugins that do not load: {} (`weir status NAME` or the log say why)",
            broken.join(", ")
        ));
    }
    let compiling: Vec<String> = status
        .plugins
        .iter()
        .filter_map(|p| {
            let since = p.compiling_since_ms?;
            Some(format!(
                "{} ({:.1} MB, {})",
                p.name,
                p.size as f64 / 1e6,
                human_duration_ms(now_ms - since)
            ))
        })
        .collect();
    if !compiling.is_empty() {
        out.push_str(&format!(
            "; plugins compiling: {} (what uses them starts when they are ready)",
            compiling.join(", ")
        ));
    }
    out.push('\n');
    out
}

/// `weir status NAME`: one pipeline in full.
pub fn pipeline_details(p: &PipelineReport, now_ms: i64) -> String {
    let mut out = String::new();
    let last = p.last_batch.as_ref();
    out.push_str(&format!("pipeline   {}\n", p.name));
    out.push_str(&format!("file       {}\n", p.file.display()));
    out.push_str(&format!("state      {}\n", state_text(p, now_ms)));
    if let Some(status) = &p.source_status {
        out.push_str(&format!("source     {status}\n"));
    }
    if !p.tasks.is_empty() {
        let tasks: Vec<String> = p
            .tasks
            .iter()
            .map(|t| {
                let mut text = format!(
                    "{} {} groups, {}",
                    t.partition,
                    t.groups,
                    human_bytes(t.memory_bytes)
                );
                if let Some(ms) = t.watermark_ms {
                    let at = chrono::DateTime::from_timestamp_millis(ms)
                        .map(|t| t.format("%H:%M:%S").to_string())
                        .unwrap_or_default();
                    text.push_str(&format!(", watermark {at}"));
                }
                if t.idle {
                    text.push_str(" (idle: follows the others)");
                }
                text
            })
            .collect();
        out.push_str(&format!("tasks      {}\n", tasks.join("; ")));
    }
    if let Some(f) = &p.feeder {
        let mut line = format!("fed by     `{}`: {}", f.name, engine_text(&f.engine));
        if let Some(status) = &f.source_status {
            line.push_str(&format!("; {status}"));
        }
        line.push_str(&format!("; {} batch(es) committed", f.batches));
        if let Some(b) = &f.last_batch {
            line.push_str(&format!(
                ", the last #{} with {} rows",
                b.batch_id, b.num_input_rows
            ));
        }
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(&format!(
        "version    {} (versions applied since the daemon started), {} restart(s) after failures\n",
        p.generation, p.restarts
    ));
    out.push_str(&format!("batches    {} committed by this run\n", p.batches));
    if let Some(b) = last {
        out.push_str(&format!(
            "last batch #{} at {}: {} rows in, {} out, {:.1} ms; {} rows/s in, {} rows/s processed\n",
            b.batch_id,
            b.timestamp,
            b.num_input_rows,
            b.num_output_rows,
            b.duration_ms.trigger_execution,
            human_count(b.input_rows_per_second),
            human_count(b.processed_rows_per_second)
        ));
    }
    if let Some(backlog) = last.and_then(|b| b.source_backlog.as_ref()) {
        out.push_str(&format!(
            "backlog    {} {} found beyond the last batch\n",
            human_count(backlog.amount as f64),
            backlog.unit
        ));
    }
    if let Some(end) = last.and_then(|b| b.source_known_end.as_ref()) {
        out.push_str(&format!(
            "run        {} of {} {} ({:.0}%), then it finishes\n",
            end.done,
            end.total,
            end.unit,
            end.done as f64 * 100.0 / end.total.max(1) as f64
        ));
    }
    out.push_str(&format!("watermark  {}\n", watermark_text(last, now_ms)));
    out.push_str(&format!(
        "state      {} (groups / bytes in memory)\n",
        state_size(last)
    ));
    if let Some(bytes) = last.and_then(|b| b.state_disk_bytes) {
        out.push_str(&format!(
            "on disk    {} (checkpoint, state and source logs in the store's files)\n",
            human_bytes(bytes)
        ));
    }
    if p.plugins.is_empty() {
        out.push_str("plugins    none\n");
    } else {
        for plugin in &p.plugins {
            out.push_str(&format!(
                "plugin     {} {} sha256:{}\n",
                plugin.name,
                plugin.version,
                plugin.sha256.get(..12).unwrap_or(&plugin.sha256)
            ));
        }
    }
    if !p.plugin_costs.is_empty() {
        out.push_str(
            "\nplugin costs:\n  STAGE         PLUGIN        CALLS    ROWS IN   ROWS OUT  MEAN CALL  CPU       MEMORY PEAK / LIMIT  FAILURES\n",
        );
        for c in &p.plugin_costs {
            let mean = if c.calls > 0 {
                format!("{:.1} ms", c.call_seconds * 1000.0 / c.calls as f64)
            } else {
                "-".into()
            };
            let failures = if c.failures.is_empty() {
                "none".to_string()
            } else {
                c.failures
                    .iter()
                    .map(|(kind, n)| format!("{n} {}", kind.replace('_', " ")))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            out.push_str(&format!(
                "  {:<12}  {:<12}  {:<7}  {:<8}  {:<8}  {:<9}  {:<8}  {:<19}  {failures}\n",
                c.stage,
                c.plugin,
                human_count(c.calls as f64),
                human_count(c.rows_in as f64),
                human_count(c.rows_out as f64),
                mean,
                format!("{:.2} s", c.cpu_seconds),
                format!(
                    "{} / {}",
                    human_bytes(c.memory_high_water_bytes),
                    human_bytes(c.memory_limit_bytes)
                ),
            ));
        }
    }
    for note in &p.notes {
        out.push_str(&format!("note       {note}\n"));
    }
    if let Some(pending) = &p.pending {
        out.push_str(&format!(
            "\nnot applied ({}); the running version keeps running:\n{}\n",
            pending.kind.replace('_', " "),
            pending.message.trim_end()
        ));
    }
    if !p.errors.is_empty() {
        out.push_str("\nlast errors:\n");
        for e in &p.errors {
            let at = chrono::DateTime::from_timestamp_millis(e.at_ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default();
            out.push_str(&format!("  {at}  {}\n", e.message));
        }
    }
    if let Some(recent) = &p.recent
        && !recent.is_empty()
    {
        out.push_str("\nrecent batches:\n  BATCH  ROWS IN  ROWS OUT  DURATION   WATERMARK\n");
        for b in recent.iter().rev().take(10) {
            out.push_str(&format!(
                "  {:<5}  {:<7}  {:<8}  {:<9}  {}\n",
                b.batch_id,
                b.num_input_rows,
                b.num_output_rows,
                format!("{:.1} ms", b.duration_ms.trigger_execution),
                b.watermark_ms
                    .and_then(chrono::DateTime::from_timestamp_millis)
                    .map(|t| t.format("%H:%M:%S").to_string())
                    .unwrap_or_else(|| "-".into())
            ));
        }
    }
    out
}

/// `weir diff`: one line per file, then the full errors of what would not be applied.
pub fn diff_text(lines: &[DiffLine]) -> String {
    let mut out = String::new();
    for line in lines {
        out.push_str(&line.summary);
        out.push('\n');
    }
    for line in lines {
        if let Some(details) = &line.details {
            out.push('\n');
            out.push_str(details.trim_end());
            out.push('\n');
        }
    }
    if lines.is_empty() {
        out.push_str("no pipeline files\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::registry::{Counts, Pending};

    fn report(run: RunState) -> PipelineReport {
        PipelineReport {
            name: "p".into(),
            file: "/p.toml".into(),
            run,
            engine: None,
            source_status: None,
            batches: 0,
            last_batch: None,
            input_rows_total: 0,
            output_rows_total: 0,
            plugins: Vec::new(),
            generation: 1,
            restarts: 0,
            pending: None,
            notes: Vec::new(),
            errors: Vec::new(),
            recent: None,
            plugin_costs: Vec::new(),
            feeder: None,
            tasks: Vec::new(),
        }
    }

    #[test]
    fn pipeline_details_list_each_task_with_its_groups_memory_watermark_and_idleness() {
        let mut p = report(RunState::Running);
        p.tasks = vec![
            crate::engine::TaskFigures {
                partition: "in/0".into(),
                groups: 12,
                memory_bytes: 2048,
                watermark_ms: Some(1_764_547_230_000),
                idle: false,
            },
            crate::engine::TaskFigures {
                partition: "in/3".into(),
                groups: 0,
                memory_bytes: 0,
                watermark_ms: None,
                idle: true,
            },
        ];
        let text = pipeline_details(&p, 0);
        assert!(
            text.contains(&format!(
                "tasks      in/0 12 groups, {}, watermark 00:00:30; in/3 0 groups, {} (idle: follows the others)\n",
                human_bytes(2048),
                human_bytes(0)
            )),
            "{text}"
        );
    }

    #[test]
    fn pipeline_details_say_what_the_pipeline_feeding_it_does() {
        let mut p = report(RunState::Running);
        p.feeder = Some(crate::topology::registry::FeederReport {
            name: "p/repartition".into(),
            engine: PipelineStatus::Waiting,
            source_status: Some("consumer group g: reads 3 of 6 partitions".into()),
            batches: 4,
            last_batch: None,
        });
        let text = pipeline_details(&p, 0);
        assert!(
            text.contains("fed by     `p/repartition`: waiting; consumer group g: reads 3 of 6 partitions; 4 batch(es) committed\n"),
            "{text}"
        );
    }

    #[test]
    fn pipeline_details_show_each_plugin_stages_costs() {
        let mut p = report(RunState::Running);
        p.plugin_costs.push(crate::engine::PluginCostReport {
            stage: "transform #1".into(),
            plugin: "memory_hog".into(),
            calls: 4,
            rows_in: 400,
            rows_out: 400,
            call_seconds: 0.2,
            cpu_seconds: 0.18,
            instances: 1,
            memory_high_water_bytes: 65 << 20,
            memory_limit_bytes: 256 << 20,
            failures: [("deadline".to_string(), 2)].into_iter().collect(),
        });
        let text = pipeline_details(&p, 0);
        let line = text
            .lines()
            .find(|l| l.contains("memory_hog"))
            .unwrap_or_default();
        assert!(line.contains("transform #1"), "{text}");
        assert!(line.contains("50.0 ms"), "{text}");
        assert!(line.contains("0.18 s"), "{text}");
        assert!(line.contains("65.0 MiB / 256.0 MiB"), "{text}");
        assert!(line.ends_with("2 deadline"), "{text}");
    }

    #[test]
    fn the_state_column_says_what_happens_and_why() {
        assert_eq!(state_text(&report(RunState::Running), 0), "running");
        assert_eq!(
            state_text(
                &report(RunState::Restarting {
                    at_ms: 12_000,
                    attempt: 2,
                    reason: "sink #1 (file): disk full".into()
                }),
                0
            ),
            "restarting in 12s (sink #1 (file): disk full)"
        );
        let mut rejected = report(RunState::Running);
        rejected.pending = Some(Pending {
            kind: "rejected".into(),
            position: Some("/p.toml:3:7".into()),
            message: "…".into(),
        });
        assert_eq!(
            state_text(&rejected, 0),
            "running; new version rejected (/p.toml:3:7)"
        );
    }

    #[test]
    fn the_table_lines_up_and_ends_with_the_counts() {
        let status = StatusReport {
            pipelines: vec![report(RunState::Running)],
            rejected_files: Vec::new(),
            plugins: Vec::new(),
            counts: Counts {
                running: 1,
                ..Counts::default()
            },
            reloading: None,
        };
        let table = status_table(&status, 0);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("NAME  STATE    BATCHES"), "{table}");
        assert!(lines[1].starts_with("p     running  0      "), "{table}");
        assert_eq!(lines.last(), Some(&"1 running"));
    }
}
