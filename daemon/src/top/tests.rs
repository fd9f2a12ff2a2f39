//! `weir top` driven key by key and drawn on ratatui's test backend.

use super::model::{Action, Key, SortKey, Top, View};
use super::view;
use crate::engine::Durations;
use crate::topology::registry::StatusReport;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde_json::json;
use std::time::{Duration, Instant};

const NOW_MS: i64 = 1_764_547_200_000;

/// A pipeline as the daemon's status JSON has it, with its totals so far.
fn pipeline(name: &str, input_total: u64, output_total: u64, batch_ms: f64) -> serde_json::Value {
    json!({
        "name": name,
        "file": format!("/etc/weir/pipelines/{name}.toml"),
        "state": "running",
        "engine": null,
        "source_status": null,
        "batches": 3,
        "last_batch": {
            "name": name,
            "batch_id": 2,
            "timestamp": "2025-12-01T00:00:00Z",
            "num_input_rows": 10,
            "input_rows_per_second": 10.0,
            "processed_rows_per_second": 100.0,
            "num_output_rows": 5,
            "duration_ms": Durations { trigger_execution: batch_ms, ..Durations::default() },
            "start_offset": null,
            "end_offset": null,
            "watermark_ms": NOW_MS - 65_000,
            "attempts": 1,
            "num_malformed_skipped": 0,
            "num_malformed_dead_lettered": 0,
            "state_operators": [],
            "source_backlog": {"amount": 4, "unit": "files"},
        },
        "input_rows_total": input_total,
        "output_rows_total": output_total,
        "plugins": [],
        "generation": 1,
        "restarts": 0,
        "pending": null,
        "notes": [],
        "errors": [],
    })
}

fn failed(name: &str, errors: usize) -> serde_json::Value {
    let mut p = pipeline(name, 0, 0, 1.0);
    p["state"] = json!("failed");
    p["message"] = json!("the plugin trapped");
    p["class"] = json!("user");
    p["last_batch"] = json!(null);
    p["errors"] = json!(
        (0..errors)
            .map(|i| json!({"at_ms": NOW_MS - i as i64, "message": "the plugin trapped"}))
            .collect::<Vec<_>>()
    );
    p
}

fn status(pipelines: Vec<serde_json::Value>) -> StatusReport {
    let value = json!({
        "pipelines": pipelines,
        "rejected_files": [],
        "plugins": [],
        "counts": {"running": 2, "restarting": 0, "failed": 1, "finished": 0, "stopped": 0, "rejected": 0},
    });
    match serde_json::from_value(value) {
        Ok(status) => status,
        Err(err) => panic!("the fixture does not read as a status: {err}"),
    }
}

/// Two polls two seconds apart: `busy` read 2000 rows and wrote 1000 in between, `quiet` 20
/// and 2; `broken` failed with three errors.
fn polled_twice() -> Top {
    let mut top = Top::default();
    let start = Instant::now();
    top.on_status(
        status(vec![
            pipeline("quiet", 100, 50, 2.0),
            pipeline("busy", 5_000, 2_000, 40.0),
            failed("broken", 3),
        ]),
        start,
        NOW_MS - 2_000,
    );
    top.on_status(
        status(vec![
            pipeline("quiet", 120, 52, 2.0),
            pipeline("busy", 7_000, 3_000, 40.0),
            failed("broken", 3),
        ]),
        start + Duration::from_secs(2),
        NOW_MS,
    );
    top
}

fn screen(top: &Top, width: u16, height: u16) -> Vec<String> {
    let mut terminal = match Terminal::new(TestBackend::new(width, height)) {
        Ok(terminal) => terminal,
        Err(err) => panic!("no test terminal: {err}"),
    };
    if let Err(err) = terminal.draw(|frame| view::draw(frame, top, NOW_MS)) {
        panic!("drawing failed: {err}");
    }
    let buffer = terminal.backend().buffer();
    (0..height)
        .map(|y| {
            (0..width)
                .map(|x| buffer[(x, y)].symbol())
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect()
}

fn line_of<'a>(lines: &'a [String], name: &str) -> &'a str {
    match lines.iter().find(|l| l.starts_with(name)) {
        Some(line) => line,
        None => panic!("no line for {name} in\n{}", lines.join("\n")),
    }
}

#[test]
fn rates_are_the_rows_between_two_polls_per_second_of_the_time_between_them() {
    let top = polled_twice();
    let rows = top.rows(NOW_MS);
    let busy = rows.iter().find(|r| r.name == "busy");
    assert_eq!(busy.and_then(|r| r.input_rate), Some(1000.0));
    assert_eq!(busy.and_then(|r| r.output_rate), Some(500.0));
    let quiet = rows.iter().find(|r| r.name == "quiet");
    assert_eq!(quiet.and_then(|r| r.input_rate), Some(10.0));
    assert_eq!(quiet.and_then(|r| r.output_rate), Some(1.0));
}

#[test]
fn one_poll_shows_no_rate_and_totals_that_went_down_start_the_rates_over() {
    let mut top = Top::default();
    let start = Instant::now();
    top.on_status(status(vec![pipeline("p", 500, 5, 1.0)]), start, NOW_MS);
    assert_eq!(top.rows(NOW_MS)[0].input_rate, None);
    // The daemon restarted: its totals begin again.
    top.on_status(
        status(vec![pipeline("p", 10, 1, 1.0)]),
        start + Duration::from_secs(1),
        NOW_MS,
    );
    assert_eq!(top.rows(NOW_MS)[0].input_rate, None);
    top.on_status(
        status(vec![pipeline("p", 30, 1, 1.0)]),
        start + Duration::from_secs(2),
        NOW_MS,
    );
    assert_eq!(top.rows(NOW_MS)[0].input_rate, Some(20.0));
}

#[test]
fn the_table_shows_one_row_per_pipeline_with_its_rates_batch_time_lag_backlog_and_errors() {
    let lines = screen(&polled_twice(), 130, 10);
    assert!(lines[0].starts_with("weir top — "), "{lines:?}");
    let header = &lines[1];
    for column in [
        "NAME▲", "STATE", "IN/S", "OUT/S", "BATCH", "WM LAG", "BACKLOG", "ERRORS",
    ] {
        assert!(header.contains(column), "{column} missing from {header}");
    }
    let busy: Vec<&str> = line_of(&lines, "busy").split_whitespace().collect();
    assert_eq!(
        busy,
        [
            "busy", "running", "1.0k", "500", "40.0", "ms", "1m05s", "4", "files", "-", "0"
        ]
    );
    let broken = line_of(&lines, "broken");
    assert!(broken.contains("failed (the plugin trapped)"), "{broken}");
    assert!(broken.trim_end().ends_with(" 3"), "{broken}");
    assert!(lines.iter().any(|l| l.starts_with("q quit")), "{lines:?}");
}

#[test]
fn s_sorts_by_the_next_column_largest_first_and_r_reverses() {
    let mut top = polled_twice();
    let names =
        |top: &Top| -> Vec<String> { top.rows(NOW_MS).into_iter().map(|r| r.name).collect() };
    assert_eq!(names(&top), ["broken", "busy", "quiet"]);
    assert_eq!(top.on_key(Key::NextSort, NOW_MS), Action::Redraw);
    assert_eq!(top.sort, SortKey::InputRate);
    assert_eq!(names(&top), ["busy", "quiet", "broken"]);
    top.on_key(Key::Reverse, NOW_MS);
    assert_eq!(names(&top), ["broken", "quiet", "busy"]);
    // A pipeline seen by one poll only has no rate yet: last in either direction.
    top.on_status(
        status(vec![
            pipeline("quiet", 140, 54, 2.0),
            pipeline("busy", 9_000, 4_000, 40.0),
            failed("broken", 3),
            pipeline("fresh", 10, 10, 1.0),
        ]),
        Instant::now() + Duration::from_secs(4),
        NOW_MS,
    );
    assert_eq!(names(&top), ["broken", "quiet", "busy", "fresh"]);
    top.on_key(Key::Reverse, NOW_MS);
    assert_eq!(names(&top), ["busy", "quiet", "broken", "fresh"]);
    for _ in 0..4 {
        top.on_key(Key::NextSort, NOW_MS);
    }
    assert_eq!(top.sort, SortKey::Errors);
    assert_eq!(names(&top), ["broken", "busy", "fresh", "quiet"]);
    let lines = screen(&top, 130, 10);
    assert!(lines[1].contains("ERRORS▼"), "{}", lines[1]);
    assert!(
        lines.iter().any(|l| l.contains("s sort (by errors)")),
        "{lines:?}"
    );
}

#[test]
fn the_selection_follows_its_pipeline_when_the_order_changes_and_stops_at_the_ends() {
    let mut top = polled_twice();
    assert_eq!(top.selected.as_deref(), Some("broken"));
    top.on_key(Key::Up, NOW_MS);
    assert_eq!(top.selected.as_deref(), Some("broken"));
    top.on_key(Key::Down, NOW_MS);
    assert_eq!(top.selected.as_deref(), Some("busy"));
    top.on_key(Key::NextSort, NOW_MS);
    assert_eq!(top.selected.as_deref(), Some("busy"));
    let rows = top.rows(NOW_MS);
    assert_eq!(top.selected_index(&rows), Some(0));
    top.on_key(Key::Down, NOW_MS);
    top.on_key(Key::Down, NOW_MS);
    top.on_key(Key::Down, NOW_MS);
    assert_eq!(top.selected.as_deref(), Some("broken"));
}

#[test]
fn enter_opens_the_selected_pipelines_details_and_esc_goes_back_to_the_table() {
    let mut top = polled_twice();
    top.on_key(Key::Down, NOW_MS);
    assert_eq!(
        top.on_key(Key::Open, NOW_MS),
        Action::FetchDetails("busy".into())
    );
    let waiting = screen(&top, 100, 12);
    assert!(
        waiting
            .iter()
            .any(|l| l.contains("asking the daemon about busy")),
        "{waiting:?}"
    );
    let details = match serde_json::from_value(pipeline("busy", 7_000, 3_000, 40.0)) {
        Ok(report) => report,
        Err(err) => panic!("{err}"),
    };
    top.on_details(details);
    let lines = screen(&top, 100, 12);
    assert!(
        lines.iter().any(|l| l.starts_with("pipeline   busy")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("file       /etc/weir/pipelines/busy.toml")),
        "{lines:?}"
    );
    top.on_key(Key::Down, NOW_MS);
    assert_eq!(
        top.view,
        View::Details {
            name: "busy".into(),
            scroll: 1
        }
    );
    let scrolled = screen(&top, 100, 12);
    assert!(scrolled[1].starts_with("file "), "{scrolled:?}");
    top.on_key(Key::Back, NOW_MS);
    assert_eq!(top.view, View::Table);
    assert_eq!(top.on_key(Key::Quit, NOW_MS), Action::Quit);
}

#[test]
fn a_daemon_that_stops_answering_is_named_in_the_footer_and_the_last_figures_stay() {
    let mut top = polled_twice();
    top.on_error("no weir daemon is listening on /run/weir/control.sock".into());
    let lines = screen(&top, 130, 10);
    assert!(line_of(&lines, "busy").contains("1.0k"), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l
                .starts_with("no weir daemon is listening on /run/weir/control.sock (retrying)")),
        "{lines:?}"
    );
}

#[test]
fn no_pipelines_says_so_instead_of_an_empty_table() {
    let mut top = Top::default();
    top.on_status(status(vec![]), Instant::now(), NOW_MS);
    let lines = screen(&top, 80, 6);
    assert!(lines.iter().any(|l| l == "(no pipelines)"), "{lines:?}");
}
