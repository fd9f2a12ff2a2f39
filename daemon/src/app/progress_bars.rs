//! `weir run`'s progress bars: one per pipeline whose run has a known end (an `available_now`
//! run over files, a generator with `rows`), drawn on stderr with indicatif while the run lasts:
//! files or rows done against the total, rows read and the rate. Drawn only for a person at a
//! terminal (stdout and stderr both terminals) and when no console sink prints its tables there;
//! otherwise nothing extra is written.
//!
//! Log lines go through [`LogWriter`], which lifts the bars off the screen while a line is
//! written, so the two never overwrite each other.

use crate::topology::registry::Registry;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

/// The bars on screen, once `weir run` has put some there (for [`LogWriter`]).
static ON_SCREEN: OnceLock<MultiProgress> = OnceLock::new();

/// Whether bars belong on this terminal: stdout and stderr are both terminals, and no console
/// sink prints its tables there.
pub fn wanted(console_sinks: bool) -> bool {
    !console_sinks && std::io::stdout().is_terminal() && std::io::stderr().is_terminal()
}

/// The bars of one `weir run`.
#[derive(Debug)]
pub struct ProgressBars {
    multi: MultiProgress,
    bars: HashMap<String, ProgressBar>,
}

fn style(unit: &str, name_width: usize) -> ProgressStyle {
    // Files are few: exact counts. Rows are many: 1.2M/5.0M.
    let counts = if unit == "files" {
        "{pos}/{len} files"
    } else {
        "{human_pos}/{human_len} rows"
    };
    // Names padded to the longest, so that the bars line up.
    let template =
        format!("{{prefix:<{name_width}.bold}} [{{bar:30}}] {counts} {{percent:>3}}% {{msg}}");
    ProgressStyle::with_template(&template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

fn human(n: f64) -> String {
    crate::admin::render::human_count(n)
}

impl ProgressBars {
    /// Bars drawn on stderr.
    pub fn on_stderr() -> ProgressBars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let _ = ON_SCREEN.set(multi.clone());
        ProgressBars {
            multi,
            bars: HashMap::new(),
        }
    }

    /// Brings every bar up to date with the pipelines' last batches; a pipeline whose run has
    /// no known end gets no bar.
    pub fn update(&mut self, registry: &Registry) {
        let entries = registry.entries();
        let name_width = entries.iter().map(|e| e.name.len()).max().unwrap_or(0);
        for entry in entries {
            let state = entry.snapshot();
            let Some(last) = state.monitor.as_ref().and_then(|m| m.last()) else {
                continue;
            };
            let Some(end) = last.source_known_end else {
                continue;
            };
            let bar = self.bars.entry(entry.name.clone()).or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::new(end.total));
                bar.set_style(style(&end.unit, name_width));
                bar.set_prefix(entry.name.clone());
                bar
            });
            bar.set_length(end.total);
            bar.set_position(end.done.min(end.total));
            bar.set_message(format!(
                "· {} rows read, {} rows/s",
                human(state.metrics.input_rows.get() as f64),
                human(last.input_rows_per_second)
            ));
            if matches!(
                state.run,
                crate::topology::registry::RunState::Finished
                    | crate::topology::registry::RunState::Failed { .. }
                    | crate::topology::registry::RunState::Stopped { .. }
            ) {
                bar.finish();
            }
        }
    }

    /// Leaves the bars on screen as they are, drawn one last time.
    pub fn finish(&self) {
        for bar in self.bars.values() {
            bar.finish();
        }
    }
}

/// stderr for the log, lifting `weir run`'s bars off the screen while a line is written.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match ON_SCREEN.get() {
            Some(multi) => multi.suspend(|| std::io::stderr().write(buf)),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
