//! The aggregation operator against a model: random batches of out-of-order rows through
//! tumbling, sliding and session windows in every output mode, with restarts and failed attempts
//! between them, with groups held in memory or spilled after every commit, and with a batch's
//! chunks grouped apart first (as the lanes group them on several cores) or not, must emit
//! exactly what a plain row-at-a-time computation of Spark's semantics emits.

use super::tests::{Harness, chunk};
use crate::engine::Operator;
use crate::state::WriteSet;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type, TimestampMicrosecondType};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const SECOND_MS: i64 = 1000;
const DELAY_MS: i64 = 5 * SECOND_MS;
const SENSORS: [&str; 3] = ["a", "b", "c"];

/// (window start ms, window end ms, sensor, count, sum, avg, min, max)
type Row = (i64, i64, String, i64, i64, f64, i64, i64);

/// count, sum, min, max
type Acc = (i64, i64, i64, i64);

fn add(a: &mut Acc, value: i64) {
    *a = (a.0 + 1, a.1 + value, a.2.min(value), a.3.max(value));
}

fn output_row(start: i64, end: i64, sensor: &str, a: &Acc) -> Row {
    let avg = a.1 as f64 / a.0 as f64;
    (start, end, sensor.to_string(), a.0, a.1, avg, a.2, a.3)
}

#[derive(Debug, Clone, Copy)]
enum Failure {
    None,
    /// An attempt fails after reading part of the batch (a source or plugin error).
    DuringProcess,
    /// An attempt fails after the operator finished (a sink error).
    AfterFinish,
    /// The commit's write does not happen (the store refused it).
    AtCommit,
}

#[derive(Debug, Clone)]
struct Step {
    /// (seconds after the batch's base time, sensor, value)
    rows: Vec<(i64, usize, i64)>,
    failure: Failure,
    restart_after: bool,
}

fn step() -> impl Strategy<Value = Step> {
    let row = (-15i64..12, 0..SENSORS.len(), -20i64..20);
    let failure = prop_oneof![
        6 => Just(Failure::None),
        1 => Just(Failure::DuringProcess),
        1 => Just(Failure::AfterFinish),
        1 => Just(Failure::AtCommit),
    ];
    (
        proptest::collection::vec(row, 0..7),
        failure,
        proptest::bool::weighted(0.2),
    )
        .prop_map(|(rows, failure, restart_after)| Step {
            rows,
            failure,
            restart_after,
        })
}

/// Event times advance 6 s a batch, with rows up to 15 s early or 12 s ahead.
fn event_rows(index: usize, step: &Step) -> Vec<(i64, &'static str, i64)> {
    step.rows
        .iter()
        .map(|&(offset, sensor, value)| {
            ((6 * index as i64 + offset).max(0), SENSORS[sensor], value)
        })
        .collect()
}

/// Spark's semantics, a row at a time: rows in windows that ended by the previous batch's
/// watermark are dropped (per window); windows that end by this batch's watermark (max event
/// time of earlier batches minus the delay) are emitted in append mode and forgotten.
struct Model {
    size_ms: i64,
    slide_ms: i64,
    mode: &'static str,
    state: BTreeMap<(i64, String), Acc>,
    max_seen: Option<i64>,
    evicted_by: Option<i64>,
}

/// Session windows the same way: a row at `t` opens `[t, t + gap)` for its sensor and every
/// live session of that sensor it overlaps merges with it; a row whose own session would have
/// closed by the previous batch's watermark is dropped; sessions that end by this batch's
/// watermark close.
struct SessionModel {
    gap_ms: i64,
    mode: &'static str,
    /// Each sensor's live sessions: (start, end, aggregates).
    sessions: BTreeMap<String, Vec<(i64, i64, Acc)>>,
    max_seen: Option<i64>,
    evicted_by: Option<i64>,
}

impl SessionModel {
    fn batch(&mut self, rows: &[(i64, &str, i64)]) -> Vec<Row> {
        let watermark = self
            .max_seen
            .map(|m| (m - DELAY_MS).max(self.evicted_by.unwrap_or(i64::MIN)));
        let mut touched: Vec<(String, i64)> = Vec::new();
        for &(seconds, sensor, value) in rows {
            let t = seconds * SECOND_MS;
            self.max_seen = Some(self.max_seen.map_or(t, |m| m.max(t)));
            if self.evicted_by.is_some_and(|wm| t + self.gap_ms <= wm) {
                continue;
            }
            let list = self.sessions.entry(sensor.to_string()).or_default();
            let (mut start, mut end) = (t, t + self.gap_ms);
            let mut acc: Acc = (0, 0, i64::MAX, i64::MIN);
            add(&mut acc, value);
            list.retain(|&(s, e, a)| {
                let overlaps = s < t + self.gap_ms && t < e;
                if overlaps {
                    (start, end) = (start.min(s), end.max(e));
                    acc = (acc.0 + a.0, acc.1 + a.1, acc.2.min(a.2), acc.3.max(a.3));
                }
                !overlaps
            });
            list.push((start, end, acc));
            touched.push((sensor.to_string(), t));
        }
        // A session was updated this batch when it holds one of this batch's rows (a
        // sensor's live sessions never overlap, so exactly one holds each).
        let dirty = |sensor: &str, s: i64, e: i64| {
            touched
                .iter()
                .any(|(k, t)| k == sensor && s <= *t && *t < e)
        };
        let closes = |e: i64| watermark.is_some_and(|wm| e <= wm);
        let mut out = Vec::new();
        for (sensor, list) in &self.sessions {
            for &(s, e, a) in list {
                let emit = match self.mode {
                    "append" => closes(e),
                    "update" => dirty(sensor, s, e),
                    _ => true,
                };
                if emit {
                    out.push(output_row(s, e, sensor, &a));
                }
            }
        }
        for list in self.sessions.values_mut() {
            list.retain(|&(_, e, _)| !closes(e));
        }
        if watermark.is_some() {
            self.evicted_by = watermark;
        }
        out
    }
}

impl Model {
    fn batch(&mut self, rows: &[(i64, &str, i64)]) -> Vec<Row> {
        let watermark = self
            .max_seen
            .map(|m| (m - DELAY_MS).max(self.evicted_by.unwrap_or(i64::MIN)));
        let mut dirty = BTreeSet::new();
        for &(seconds, sensor, value) in rows {
            let t = seconds * SECOND_MS;
            self.max_seen = Some(self.max_seen.map_or(t, |m| m.max(t)));
            let last_start = t - t.rem_euclid(self.slide_ms);
            let mut start = last_start;
            while start + self.size_ms > t {
                if self.evicted_by.is_none_or(|wm| start + self.size_ms > wm) {
                    let key = (start, sensor.to_string());
                    add(
                        self.state
                            .entry(key.clone())
                            .or_insert((0, 0, i64::MAX, i64::MIN)),
                        value,
                    );
                    dirty.insert(key);
                }
                start -= self.slide_ms;
            }
        }
        let closed: Vec<(i64, String)> = self
            .state
            .keys()
            .filter(|k| watermark.is_some_and(|wm| k.0 + self.size_ms <= wm))
            .cloned()
            .collect();
        let row = |k: &(i64, String), a: &Acc| output_row(k.0, k.0 + self.size_ms, &k.1, a);
        let out = match self.mode {
            "append" => closed.iter().map(|k| row(k, &self.state[k])).collect(),
            "update" => dirty.iter().map(|k| row(k, &self.state[k])).collect(),
            _ => self.state.iter().map(|(k, a)| row(k, a)).collect(),
        };
        for k in closed {
            self.state.remove(&k);
        }
        if watermark.is_some() {
            self.evicted_by = watermark;
        }
        out
    }
}

fn rows_of(batches: &[RecordBatch]) -> Result<Vec<Row>, TestCaseError> {
    let mut rows = Vec::new();
    for b in batches {
        let window = b.column(0).as_struct();
        let start = window.column(0).as_primitive::<TimestampMicrosecondType>();
        let end = window.column(1).as_primitive::<TimestampMicrosecondType>();
        let sensor = b.column(1).as_string::<i32>();
        let count = b.column(2).as_primitive::<Int64Type>();
        if b.num_columns() == 3 {
            // `count` alone: the other figures are left at zero, as `counts_only` has them.
            for r in 0..b.num_rows() {
                prop_assert!(!sensor.is_null(r));
                rows.push((
                    start.value(r) / 1000,
                    end.value(r) / 1000,
                    sensor.value(r).to_string(),
                    count.value(r),
                    0,
                    0.0,
                    0,
                    0,
                ));
            }
            continue;
        }
        let sum = b.column(3).as_primitive::<Int64Type>();
        let avg = b.column(4).as_primitive::<Float64Type>();
        // `count`, `sum` and `avg` alone: min and max are left at zero, as `adding_up_only`
        // has them.
        let min_max = (b.num_columns() == 7).then(|| {
            (
                b.column(5).as_primitive::<Int64Type>(),
                b.column(6).as_primitive::<Int64Type>(),
            )
        });
        for r in 0..b.num_rows() {
            prop_assert!(!sensor.is_null(r) && !avg.is_null(r));
            rows.push((
                start.value(r) / 1000,
                end.value(r) / 1000,
                sensor.value(r).to_string(),
                count.value(r),
                sum.value(r),
                avg.value(r),
                min_max.map_or(0, |(min, _)| min.value(r)),
                min_max.map_or(0, |(_, max)| max.value(r)),
            ));
        }
    }
    Ok(rows)
}

fn same(mut got: Vec<Row>, mut want: Vec<Row>) -> Result<(), TestCaseError> {
    let order = |a: &Row, b: &Row| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2));
    got.sort_by(order);
    want.sort_by(order);
    let strip = |rows: &[Row]| -> Vec<(i64, i64, String, i64, i64, i64, i64)> {
        rows.iter()
            .map(|r| (r.0, r.1, r.2.clone(), r.3, r.4, r.6, r.7))
            .collect()
    };
    prop_assert_eq!(strip(&got), strip(&want));
    for (g, w) in got.iter().zip(&want) {
        prop_assert!(
            (g.5 - w.5).abs() <= 1e-9 * w.5.abs().max(1.0),
            "avg {} vs {}",
            g.5,
            w.5
        );
    }
    Ok(())
}

fn fail_an_attempt(
    h: &mut Harness,
    rows: &[(i64, &str, i64)],
    failure: Failure,
) -> Result<(), TestCaseError> {
    let fail = |e: Box<dyn std::error::Error>| TestCaseError::fail(e.to_string());
    let ctx = h.context();
    match failure {
        Failure::None => return Ok(()),
        Failure::DuringProcess => {
            let half = &rows[..rows.len() / 2];
            h.op.process(chunk(half), &ctx)
                .map_err(|e| fail(e.into()))?;
        }
        Failure::AfterFinish | Failure::AtCommit => {
            h.op.process(chunk(rows), &ctx)
                .map_err(|e| fail(e.into()))?;
            h.op.finish_batch(&ctx).map_err(|e| fail(e.into()))?;
            if let Failure::AtCommit = failure {
                let mut discarded = WriteSet::default();
                h.op.prepare_commit(&mut discarded)
                    .map_err(|e| fail(e.into()))?;
            }
        }
    }
    h.op.abort_batch();
    Ok(())
}

/// What the model of a window kind says each batch emits.
trait Expected {
    fn batch(&mut self, rows: &[(i64, &str, i64)]) -> Vec<Row>;
}

impl Expected for Model {
    fn batch(&mut self, rows: &[(i64, &str, i64)]) -> Vec<Row> {
        Model::batch(self, rows)
    }
}

impl Expected for SessionModel {
    fn batch(&mut self, rows: &[(i64, &str, i64)]) -> Vec<Row> {
        SessionModel::batch(self, rows)
    }
}

fn windows(size_ms: i64, slide_ms: i64, mode: &'static str) -> Model {
    Model {
        size_ms,
        slide_ms,
        mode,
        state: BTreeMap::new(),
        max_seen: None,
        evicted_by: None,
    }
}

fn sessions(gap_ms: i64, mode: &'static str) -> SessionModel {
    SessionModel {
        gap_ms,
        mode,
        sessions: BTreeMap::new(),
        max_seen: None,
        evicted_by: None,
    }
}

/// The model's rows with only the count kept (the others zero).
fn counts_only(rows: Vec<Row>) -> Vec<Row> {
    rows.into_iter()
        .map(|r| (r.0, r.1, r.2, r.3, 0, 0.0, 0, 0))
        .collect()
}

fn adding_up_only(rows: Vec<Row>) -> Vec<Row> {
    rows.into_iter()
        .map(|r| (r.0, r.1, r.2, r.3, r.4, r.5, 0, 0))
        .collect()
}

/// Which functions an aggregation computes: the lanes fold a chunk per cell (partial
/// aggregation) only when every function's state adds up.
#[derive(Debug, Clone, Copy)]
enum Functions {
    /// count, sum, avg, min, max: min and max take the per-row path.
    AllFive,
    /// The count of rows alone.
    CountAlone,
    /// count, sum and avg: every state adds up.
    AddingUp,
}

fn run(
    window: &str,
    mut model: impl Expected,
    mode: &'static str,
    spilling: bool,
    prepared: bool,
    steps: &[Step],
) -> Result<(), TestCaseError> {
    run_functions(
        window,
        &mut model,
        mode,
        spilling,
        prepared,
        steps,
        Functions::AllFive,
    )
}

fn run_functions(
    window: &str,
    model: &mut impl Expected,
    mode: &'static str,
    spilling: bool,
    prepared: bool,
    steps: &[Step],
    functions: Functions,
) -> Result<(), TestCaseError> {
    let list = match functions {
        Functions::CountAlone => "{ fn = \"count\" }",
        Functions::AddingUp => {
            "{ fn = \"count\" }, { fn = \"sum\", column = \"value\" }, { fn = \"avg\", column = \"value\" }"
        }
        Functions::AllFive => {
            "{ fn = \"count\" }, { fn = \"sum\", column = \"value\" }, { fn = \"avg\", column = \"value\" }, { fn = \"min\", column = \"value\" }, { fn = \"max\", column = \"value\" }"
        }
    };
    let aggregate = format!(
        "group_by = [\"sensor\"]\nwindow = {{ column = \"time\", {window} }}\nwatermark = \"5s\"\nfunctions = [{list}]"
    );
    let fail = |e: Box<dyn std::error::Error>| TestCaseError::fail(e.to_string());
    let mut h = if spilling {
        Harness::spilling(&aggregate, mode)
    } else {
        Harness::new(&aggregate, mode)
    }
    .map_err(fail)?;
    h.prepare_apart = prepared;
    for (i, step) in steps.iter().enumerate() {
        let rows = event_rows(i, step);
        fail_an_attempt(&mut h, &rows, step.failure)?;
        // Chunks of three rows: a batch of several chunks, grouped apart (as on the lanes)
        // when `prepared`.
        let chunks: Vec<&[(i64, &str, i64)]> = rows.chunks(3).collect();
        let out = h.batch_output(&chunks).map_err(fail)?;
        let want = model.batch(&rows);
        let want = match functions {
            Functions::AllFive => want,
            Functions::CountAlone => counts_only(want),
            Functions::AddingUp => adding_up_only(want),
        };
        same(rows_of(&out)?, want)?;
        if step.restart_after {
            h.restart(&aggregate, mode).map_err(fail)?;
        }
    }
    Ok(())
}

fn mode() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("append"), Just("update"), Just("complete")]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn tumbling_windows_match_the_model(mode in mode(), spilling in any::<bool>(), prepared in any::<bool>(), steps in proptest::collection::vec(step(), 1..12)) {
        run("size = \"10s\"", windows(10_000, 10_000, mode), mode, spilling, prepared, &steps)?;
    }

    #[test]
    fn sliding_windows_match_the_model(mode in mode(), spilling in any::<bool>(), prepared in any::<bool>(), steps in proptest::collection::vec(step(), 1..12)) {
        run("size = \"10s\", slide = \"5s\"", windows(10_000, 5_000, mode), mode, spilling, prepared, &steps)?;
    }

    #[test]
    fn a_count_of_rows_alone_in_tumbling_or_sliding_windows_matches_the_model(mode in mode(), sliding in any::<bool>(), spilling in any::<bool>(), prepared in any::<bool>(), steps in proptest::collection::vec(step(), 1..12)) {
        let (window, mut model) = if sliding {
            ("size = \"10s\", slide = \"5s\"", windows(10_000, 5_000, mode))
        } else {
            ("size = \"10s\"", windows(10_000, 10_000, mode))
        };
        run_functions(window, &mut model, mode, spilling, prepared, &steps, Functions::CountAlone)?;
    }

    #[test]
    fn count_sum_and_avg_folded_per_cell_in_tumbling_or_sliding_windows_match_the_model(mode in mode(), sliding in any::<bool>(), spilling in any::<bool>(), prepared in any::<bool>(), steps in proptest::collection::vec(step(), 1..12)) {
        let (window, mut model) = if sliding {
            ("size = \"10s\", slide = \"5s\"", windows(10_000, 5_000, mode))
        } else {
            ("size = \"10s\"", windows(10_000, 10_000, mode))
        };
        run_functions(window, &mut model, mode, spilling, prepared, &steps, Functions::AddingUp)?;
    }

    #[test]
    fn session_windows_match_the_model(mode in mode(), spilling in any::<bool>(), steps in proptest::collection::vec(step(), 1..12)) {
        run("gap = \"3s\"", sessions(3_000, mode), mode, spilling, false, &steps)?;
    }
}
