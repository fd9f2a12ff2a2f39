//! What `weir top` knows and how keys change it: the daemon's last status, rates measured
//! between polls, the sort order, the selected pipeline and the view. No terminal here, so the
//! tests drive it key by key.

use crate::topology::registry::{PipelineReport, StatusReport};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Rates are measured over the polls of this last stretch of time: long enough that a pipeline
/// whose trigger fires every few seconds does not flicker between zero and a spike.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);

/// A key `weir top` reacts to (the terminal's keys mapped by the event loop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// `q`, or Ctrl-C.
    Quit,
    /// Up arrow or `k`.
    Up,
    /// Down arrow or `j`.
    Down,
    /// Enter or right arrow: the selected pipeline's details.
    Open,
    /// Esc, left arrow or backspace: back to the table.
    Back,
    /// `s`: sort by the next column.
    NextSort,
    /// `r`: reverse the order.
    Reverse,
}

/// What the event loop does after a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing beyond drawing again.
    Redraw,
    /// Ask the daemon for this pipeline's details now.
    FetchDetails(String),
    /// Leave.
    Quit,
}

/// The columns the table can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// Pipeline name.
    Name,
    /// Rows read per second.
    InputRate,
    /// Rows written per second.
    OutputRate,
    /// The last batch's duration.
    BatchTime,
    /// The watermark's lag behind the wall clock.
    WatermarkLag,
    /// Errors recorded.
    Errors,
}

impl SortKey {
    /// Every key, in the order `s` walks through them.
    pub const ALL: [SortKey; 6] = [
        SortKey::Name,
        SortKey::InputRate,
        SortKey::OutputRate,
        SortKey::BatchTime,
        SortKey::WatermarkLag,
        SortKey::Errors,
    ];

    /// How the footer names it.
    pub fn label(self) -> &'static str {
        match self {
            SortKey::Name => "name",
            SortKey::InputRate => "in/s",
            SortKey::OutputRate => "out/s",
            SortKey::BatchTime => "batch time",
            SortKey::WatermarkLag => "watermark lag",
            SortKey::Errors => "errors",
        }
    }

    fn next(self) -> SortKey {
        let i = Self::ALL.iter().position(|k| *k == self).unwrap_or(0);
        Self::ALL[(i + 1) % Self::ALL.len()]
    }
}

/// One pipeline's row, with everything the table shows already worked out.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Pipeline name.
    pub name: String,
    /// The state column's text (`running`, `failed (why)`, ...).
    pub state: String,
    /// True when the pipeline is failed or restarting after a failure.
    pub troubled: bool,
    /// Rows read per second over the rate window; `None` until two polls saw it.
    pub input_rate: Option<f64>,
    /// Rows written per second over the rate window.
    pub output_rate: Option<f64>,
    /// The last batch's duration, ms.
    pub batch_ms: Option<f64>,
    /// The watermark's lag behind the wall clock, ms.
    pub watermark_lag_ms: Option<i64>,
    /// What the source found beyond the last batch, with its unit.
    pub backlog: Option<(u64, String)>,
    /// Aggregation groups and bytes in memory, as text.
    pub state_size: String,
    /// Errors recorded (the most recent ones are kept).
    pub errors: usize,
}

/// Totals seen at one poll.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    input_rows: u64,
    output_rows: u64,
}

/// Which screen is shown.
#[derive(Debug, Clone, PartialEq)]
pub enum View {
    /// Every pipeline.
    Table,
    /// One pipeline in full, scrolled down by `scroll` lines.
    Details {
        /// Its name.
        name: String,
        /// Lines scrolled past.
        scroll: u16,
    },
}

/// The state of `weir top`.
#[derive(Debug)]
pub struct Top {
    status: Option<StatusReport>,
    details: Option<PipelineReport>,
    samples: HashMap<String, VecDeque<Sample>>,
    /// Why the last poll failed, if it did (the last status stays shown).
    pub error: Option<String>,
    /// When the last status arrived, ms since the epoch.
    pub updated_ms: Option<i64>,
    /// The column the table is sorted by.
    pub sort: SortKey,
    /// Largest first (names: Z to A).
    pub descending: bool,
    /// The selected pipeline, by name, so that it stays selected when rows move.
    pub selected: Option<String>,
    /// The screen shown.
    pub view: View,
}

impl Default for Top {
    fn default() -> Self {
        Top {
            status: None,
            details: None,
            samples: HashMap::new(),
            error: None,
            updated_ms: None,
            sort: SortKey::Name,
            descending: false,
            selected: None,
            view: View::Table,
        }
    }
}

impl Top {
    /// Takes a status polled at `at` (monotonic) and `now_ms` (wall clock).
    pub fn on_status(&mut self, status: StatusReport, at: Instant, now_ms: i64) {
        for p in &status.pipelines {
            let samples = self.samples.entry(p.name.clone()).or_default();
            // Totals that went down belong to another daemon (restarted): start over.
            if samples.back().is_some_and(|s| {
                s.input_rows > p.input_rows_total || s.output_rows > p.output_rows_total
            }) {
                samples.clear();
            }
            samples.push_back(Sample {
                at,
                input_rows: p.input_rows_total,
                output_rows: p.output_rows_total,
            });
            while samples.len() > 2
                && samples
                    .front()
                    .is_some_and(|s| at.duration_since(s.at) > RATE_WINDOW)
            {
                samples.pop_front();
            }
        }
        self.samples
            .retain(|name, _| status.pipelines.iter().any(|p| &p.name == name));
        if self
            .selected
            .as_ref()
            .is_none_or(|name| !status.pipelines.iter().any(|p| &p.name == name))
        {
            self.selected = None;
        }
        self.status = Some(status);
        self.error = None;
        self.updated_ms = Some(now_ms);
        if self.selected.is_none() {
            self.selected = self.rows(now_ms).first().map(|r| r.name.clone());
        }
    }

    /// Takes one pipeline's details (for the details view).
    pub fn on_details(&mut self, report: PipelineReport) {
        self.details = Some(report);
    }

    /// Notes that the daemon could not be asked; what was shown stays.
    pub fn on_error(&mut self, error: String) {
        self.error = Some(error);
    }

    /// The last status, if any arrived.
    pub fn status(&self) -> Option<&StatusReport> {
        self.status.as_ref()
    }

    /// The details of the pipeline the details view shows, once they arrived.
    pub fn details(&self) -> Option<&PipelineReport> {
        match &self.view {
            View::Details { name, .. } => self.details.as_ref().filter(|d| &d.name == name),
            View::Table => None,
        }
    }

    fn rates(&self, name: &str) -> (Option<f64>, Option<f64>) {
        let Some(samples) = self.samples.get(name) else {
            return (None, None);
        };
        let (Some(first), Some(last)) = (samples.front(), samples.back()) else {
            return (None, None);
        };
        let seconds = last.at.duration_since(first.at).as_secs_f64();
        if seconds <= 0.0 {
            return (None, None);
        }
        (
            Some(last.input_rows.saturating_sub(first.input_rows) as f64 / seconds),
            Some(last.output_rows.saturating_sub(first.output_rows) as f64 / seconds),
        )
    }

    /// The table's rows, in the chosen order.
    pub fn rows(&self, now_ms: i64) -> Vec<Row> {
        let Some(status) = &self.status else {
            return Vec::new();
        };
        let mut rows: Vec<Row> = status
            .pipelines
            .iter()
            .map(|p| {
                let last = p.last_batch.as_ref();
                let (input_rate, output_rate) = self.rates(&p.name);
                Row {
                    name: p.name.clone(),
                    state: crate::admin::render::state_text(p, now_ms),
                    troubled: matches!(
                        p.run,
                        crate::topology::registry::RunState::Failed { .. }
                            | crate::topology::registry::RunState::Restarting { .. }
                    ),
                    input_rate,
                    output_rate,
                    batch_ms: last.map(|b| b.duration_ms.trigger_execution),
                    watermark_lag_ms: last.and_then(|b| b.watermark_ms).map(|w| now_ms - w),
                    backlog: last
                        .and_then(|b| b.source_backlog.as_ref())
                        .map(|b| (b.amount, b.unit.clone())),
                    state_size: crate::admin::render::state_size(last),
                    errors: p.errors.len(),
                }
            })
            .collect();
        // Rows without a figure go last whichever the direction; ties keep name order.
        let figure = |row: &Row| -> Option<f64> {
            match self.sort {
                SortKey::Name => Some(0.0),
                SortKey::InputRate => row.input_rate,
                SortKey::OutputRate => row.output_rate,
                SortKey::BatchTime => row.batch_ms,
                SortKey::WatermarkLag => row.watermark_lag_ms.map(|ms| ms as f64),
                SortKey::Errors => Some(row.errors as f64),
            }
        };
        rows.sort_by(|a, b| {
            let by_figure = match (figure(a), figure(b)) {
                (Some(x), Some(y)) => {
                    let order = x.total_cmp(&y);
                    if self.descending {
                        order.reverse()
                    } else {
                        order
                    }
                }
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            };
            let by_name = if self.sort == SortKey::Name && self.descending {
                b.name.cmp(&a.name)
            } else {
                a.name.cmp(&b.name)
            };
            by_figure.then(by_name)
        });
        rows
    }

    /// The selected row's index among `rows`.
    pub fn selected_index(&self, rows: &[Row]) -> Option<usize> {
        let name = self.selected.as_ref()?;
        rows.iter().position(|r| &r.name == name)
    }

    /// Applies a key.
    pub fn on_key(&mut self, key: Key, now_ms: i64) -> Action {
        match (&mut self.view, key) {
            (_, Key::Quit) => Action::Quit,
            (View::Details { scroll, .. }, Key::Up) => {
                *scroll = scroll.saturating_sub(1);
                Action::Redraw
            }
            (View::Details { scroll, .. }, Key::Down) => {
                *scroll = scroll.saturating_add(1);
                Action::Redraw
            }
            (View::Details { .. }, Key::Back) => {
                self.view = View::Table;
                Action::Redraw
            }
            (View::Details { .. }, _) => Action::Redraw,
            (View::Table, Key::Up | Key::Down) => {
                let rows = self.rows(now_ms);
                if rows.is_empty() {
                    return Action::Redraw;
                }
                let at = self.selected_index(&rows);
                let next = match (at, key) {
                    (None, _) => 0,
                    (Some(i), Key::Up) => i.saturating_sub(1),
                    (Some(i), _) => (i + 1).min(rows.len() - 1),
                };
                self.selected = Some(rows[next].name.clone());
                Action::Redraw
            }
            (View::Table, Key::Open) => match self.selected.clone() {
                Some(name) => {
                    self.view = View::Details {
                        name: name.clone(),
                        scroll: 0,
                    };
                    Action::FetchDetails(name)
                }
                None => Action::Redraw,
            },
            (View::Table, Key::NextSort) => {
                self.sort = self.sort.next();
                // Names read A to Z; figures largest first, the busiest or worst on top.
                self.descending = self.sort != SortKey::Name;
                Action::Redraw
            }
            (View::Table, Key::Reverse) => {
                self.descending = !self.descending;
                Action::Redraw
            }
            (View::Table, Key::Back) => Action::Redraw,
        }
    }
}
