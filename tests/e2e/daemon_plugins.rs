//! Plugins under the daemon: a `.wasm` replaced under load is swapped in at a batch boundary
//! (every batch entirely old or entirely new, no row lost or repeated, state kept); a broken
//! one changes nothing; a removed one leaves its pipelines on the loaded version.

use crate::daemon_harness::{
    Daemon, SOON, assert_no_gap_no_duplicate, built_plugins, counting_pipeline, find, parts,
    values_written,
};
use crate::harness::TestResult;
use std::path::PathBuf;

/// A daemon running pipeline `scaled` on plugin `scale` (= `scale_by_2`), three batches in.
fn scaled_daemon(dir: &std::path::Path) -> Daemon {
    let daemon = Daemon::start(dir, &[]);
    daemon.install_plugin(&fixture("scale_by_2"), "scale");
    daemon.write_pipeline(
        "scaled.toml",
        &counting_pipeline("scaled", "scaled", "20ms", SCALE),
    );
    daemon.wait_batches("scaled", 3);
    daemon
}

fn fixture(name: &str) -> PathBuf {
    built_plugins()
        .join("fixtures")
        .join(format!("{name}.wasm"))
}

const SCALE: &str = "[[transform]]\nplugin = \"scale\"\n";

const SCALE_COUNTS: &str = r#"name = "scale-counts"
output_mode = "update"
trigger = { processing_time = "20ms" }

[source]
type = "rate_micro_batch"
rows_per_batch = 10

[[transform]]
plugin = "scale"

[aggregate]
group_by = []
functions = [{ fn = "count" }, { fn = "sum", column = "value" }]

[[sink]]
type = "file"
path = "../out/scale-counts"
format = "json"
"#;

#[test]
fn a_plugin_replaced_under_load_is_swapped_at_a_batch_boundary_with_rows_and_state_kept()
-> TestResult {
    let dir = tempfile::tempdir()?;
    let daemon = Daemon::start(dir.path(), &[]);
    daemon.install_plugin(&fixture("scale_by_2"), "scale");
    daemon.write_pipeline(
        "scaled.toml",
        &counting_pipeline("scaled", "scaled", "20ms", SCALE),
    );
    daemon.write_pipeline("scale-counts.toml", SCALE_COUNTS);
    daemon.wait_batches("scaled", 5);
    daemon.wait_batches("scale-counts", 5);
    let before = daemon.status(None);
    let batches_before = find(&before, "scaled").map_or(0, |p| p["batches"].as_u64().unwrap_or(0));

    daemon.install_plugin(&fixture("scale_by_3"), "scale");
    let status = daemon.wait_status("the swap", SOON, |s| {
        ["scaled", "scale-counts"]
            .iter()
            .all(|n| find(s, n).is_some_and(|p| p["generation"] == 2))
    });
    // In place: the same run goes on (its batch count did not start over).
    let p = find(&status, "scaled").cloned().unwrap_or_default();
    assert!(
        p["batches"].as_u64().unwrap_or(0) >= batches_before,
        "{p:#}"
    );
    let swapped = daemon.log_lines("reload: scaled (");
    assert!(
        swapped
            .iter()
            .any(|l| l.contains("hot change in place: plugin `scale`")),
        "{swapped:?}"
    );
    daemon.wait_batches("scaled", batches_before + 5);
    let stop = daemon.client(&["stop", "scaled"]);
    assert!(stop.status.success());
    daemon.client(&["stop", "scale-counts"]);

    // Every batch entirely on one version: 2 before the swap, 3 after, never mixed.
    let out = parts(&daemon.path("out/scaled"));
    let mut factors = Vec::new();
    for (batch, rows) in &out {
        let f: Vec<i64> = rows.iter().filter_map(|r| r["factor"].as_i64()).collect();
        assert!(
            !f.is_empty() && f.iter().all(|x| *x == f[0]),
            "batch {batch} mixes versions: {f:?}"
        );
        for row in rows {
            assert_eq!(
                row["scaled"].as_i64(),
                row["value"].as_i64().map(|v| v * f[0])
            );
        }
        factors.push(f[0]);
    }
    let switch = factors
        .iter()
        .position(|f| *f == 3)
        .unwrap_or(factors.len());
    assert!(switch > 0 && switch < factors.len(), "{factors:?}");
    assert!(factors[switch..].iter().all(|f| *f == 3), "{factors:?}");
    assert_no_gap_no_duplicate(&values_written(&[daemon.path("out/scaled")]));

    // The aggregation's state went on across the swap: the last count is every row.
    let counts = parts(&daemon.path("out/scale-counts"));
    let (last_batch, rows) = counts.last().cloned().unwrap_or_default();
    let count = rows.first().and_then(|r| r["count"].as_i64()).unwrap_or(-1);
    assert_eq!(count, (last_batch as i64 + 1) * 10, "{rows:?}");
    Ok(())
}

#[test]
fn a_broken_plugin_dropped_in_changes_nothing_and_is_reported() -> TestResult {
    let dir = tempfile::tempdir()?;
    let daemon = scaled_daemon(dir.path());
    daemon.install_plugin(&fixture("corrupt"), "scale");
    let status = daemon.wait_status("the refusal", SOON, |s| {
        s["plugins"].as_array().is_some_and(|p| {
            p.iter()
                .any(|p| p["name"] == "scale" && !p["error"].is_null())
        }) && find(s, "scaled").is_some_and(|p| !p["pending"].is_null())
    });
    let p = find(&status, "scaled").cloned().unwrap_or_default();
    assert_eq!(p["state"], "running");
    assert_eq!(p["generation"], 1);
    let message = p["pending"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("scale.wasm is not a valid WebAssembly component"),
        "{message}"
    );
    let batches = p["batches"].as_u64().unwrap_or(0);
    daemon.wait_batches("scaled", batches + 3);
    assert!(
        parts(&daemon.path("out/scaled"))
            .iter()
            .all(|(_, rows)| rows.iter().all(|r| r["factor"] == 2)),
        "every batch ran on the loaded version"
    );
    assert_eq!(
        daemon
            .log_lines("plugin scale.wasm cannot be loaded (nothing running changes)")
            .len(),
        1
    );
    Ok(())
}

#[test]
fn a_removed_plugin_leaves_its_pipelines_on_the_loaded_version_and_says_so() -> TestResult {
    let dir = tempfile::tempdir()?;
    let daemon = scaled_daemon(dir.path());
    std::fs::remove_file(daemon.path("plugins/scale.wasm"))?;
    let status = daemon.wait_status("the note", SOON, |s| {
        find(s, "scaled").is_some_and(|p| {
            p["notes"].as_array().is_some_and(|n| {
                n.iter()
                    .any(|n| n.as_str().unwrap_or_default().contains("was removed"))
            })
        })
    });
    let p = find(&status, "scaled").cloned().unwrap_or_default();
    assert_eq!(p["state"], "running");
    assert!(p["pending"].is_null(), "{p:#}");
    let note = p["notes"][0].as_str().unwrap_or_default();
    assert!(
        note.starts_with("plugin `scale.wasm` was removed; running on the loaded version "),
        "{note}"
    );
    let batches = p["batches"].as_u64().unwrap_or(0);
    daemon.wait_batches("scaled", batches + 3);
    Ok(())
}

const COUNTED: &str = r#"name = "counted"
output_mode = "update"
trigger = { processing_time = "20ms" }

[source]
type = "rate_micro_batch"
rows_per_batch = 10

[aggregate]
group_by = []
functions = [{ plugin = "row_count", column = "value", as = "rows" }]

[[sink]]
type = "file"
path = "../out/counted"
format = "json"
"#;

/// The plugin file with a custom section appended: another content hash, the same code.
fn rebuilt(from: &std::path::Path, dir: &std::path::Path) -> std::io::Result<PathBuf> {
    let mut bytes = std::fs::read(from)?;
    // Custom section (id 0): size, name length, name, payload.
    let (name, payload) = (b"weir-test", b"rebuilt");
    bytes.push(0);
    bytes.push((1 + name.len() + payload.len()) as u8);
    bytes.push(name.len() as u8);
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(payload);
    let path = dir.join("row_count_rebuilt.wasm");
    std::fs::write(&path, bytes)?;
    Ok(path)
}

fn rows_counted(daemon: &Daemon) -> (u64, i64) {
    let (batch, rows) = parts(&daemon.path("out/counted"))
        .last()
        .cloned()
        .unwrap_or_default();
    (
        batch,
        rows.first().and_then(|r| r["rows"].as_i64()).unwrap_or(-1),
    )
}

#[test]
fn an_aggregate_plugin_keeps_its_state_across_an_upgrade_and_one_with_a_new_state_version_waits_for_a_reset()
-> TestResult {
    let dir = tempfile::tempdir()?;
    let daemon = Daemon::start(dir.path(), &[]);
    daemon.install_plugin(&fixture("row_count_v1"), "row_count");
    daemon.write_pipeline("counted.toml", COUNTED);
    daemon.wait_batches("counted", 3);

    // A new build with the same state version: swapped in place, the count goes on.
    daemon.install_plugin(&rebuilt(&fixture("row_count_v1"), dir.path())?, "row_count");
    let status = daemon.wait_status("the in-place swap", SOON, |s| {
        find(s, "counted").is_some_and(|p| p["generation"] == 2)
    });
    let batches = find(&status, "counted").map_or(0, |p| p["batches"].as_u64().unwrap_or(0));
    daemon.wait_batches("counted", batches + 3);
    let (batch, rows) = rows_counted(&daemon);
    assert_eq!(
        rows,
        (batch as i64 + 1) * 10,
        "the state went on across the swap"
    );
    assert!(
        daemon
            .log_lines("reload: counted (")
            .iter()
            .any(|l| l.contains("hot change in place: plugin `row_count`")),
        "{}",
        daemon.weir.stderr()
    );

    // A version that reads states differently is refused; the old one keeps counting.
    daemon.install_plugin(&fixture("row_count_v2"), "row_count");
    let status = daemon.wait_status("the refusal", SOON, |s| {
        find(s, "counted").is_some_and(|p| p["pending"]["kind"] == "needs_state_reset")
    });
    let p = find(&status, "counted").cloned().unwrap_or_default();
    assert_eq!(p["generation"], 2);
    let message = p["pending"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("state v1") && message.contains("state v2"),
        "{message}"
    );
    assert!(message.contains("weir state reset counted"), "{message}");
    let batches = p["batches"].as_u64().unwrap_or(0);
    daemon.wait_batches("counted", batches + 3);
    let (batch, rows) = rows_counted(&daemon);
    assert_eq!(rows, (batch as i64 + 1) * 10);
    Ok(())
}
