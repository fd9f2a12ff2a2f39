//! `weir daemon` and its one path for change: each kind of diff (unchanged, start, stop, hot
//! change, needs state reset, rejected), each checked by what the pipelines write and what the
//! daemon says; `weir diff` as a dry run.

use crate::daemon_harness::{
    Daemon, SOON, assert_no_gap_no_duplicate, counting_pipeline, find, values_written,
};
use crate::harness::TestResult;
use serde_json::Value;

fn generation(status: &Value, name: &str) -> u64 {
    find(status, name).map_or(0, |p| p["generation"].as_u64().unwrap_or(0))
}

#[test]
fn start_up_runs_every_valid_file_and_reports_an_invalid_one_at_its_line_and_column() -> TestResult
{
    let dir = tempfile::tempdir()?;
    crate::daemon_harness::folders(dir.path());
    let pipelines = dir.path().join("pipelines");
    std::fs::write(
        pipelines.join("a.toml"),
        counting_pipeline("a", "a", "100ms", ""),
    )?;
    std::fs::write(
        pipelines.join("b.toml"),
        counting_pipeline("b", "b", "100ms", ""),
    )?;
    std::fs::write(
        pipelines.join("bad.toml"),
        "name = \"bad\"\n\n[source]\ntype = \"rate\"\nrows_per_secnd = 10\n\n[[sink]]\ntype = \"null\"\n",
    )?;
    let daemon = Daemon::start(dir.path(), &[]);
    daemon.wait_batches("a", 2);
    daemon.wait_batches("b", 2);
    let status = daemon.status(None);
    let rejected = &status["rejected_files"][0];
    assert_eq!(rejected["name"], "bad", "{status:#}");
    let position = format!("{}:5:1", pipelines.join("bad.toml").display());
    assert_eq!(rejected["pending"]["position"], position.as_str());
    assert!(
        rejected["pending"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("unknown field `rows_per_secnd`"),
        "{status:#}"
    );
    assert_eq!(status["counts"]["running"], 2);
    assert_eq!(status["counts"]["rejected"], 1);
    // The table says the same at a glance.
    let table = String::from_utf8_lossy(&daemon.client(&["status"]).stdout).into_owned();
    assert!(table.contains(&format!("rejected ({position})")), "{table}");
    assert!(table.contains("2 running, 1 rejected"), "{table}");
    // The log has the whole error with its snippet.
    let log = daemon.weir.stderr();
    assert!(
        log.contains(&format!(
            "{position}: error: unknown field `rows_per_secnd`"
        )),
        "{log}"
    );
    Ok(())
}

#[test]
fn a_changed_sink_setting_takes_effect_at_a_batch_boundary_with_no_row_lost_or_doubled()
-> TestResult {
    // vectordotdev/vector#18933 (settings not reloaded) and #5795 (rows lost or doubled when a
    // sink changes under load).
    let dir = tempfile::tempdir()?;
    let daemon = Daemon::start(dir.path(), &[]);
    daemon.write_pipeline("p.toml", &counting_pipeline("p", "first", "20ms", ""));
    daemon.wait_batches("p", 5);
    daemon.write_pipeline("p.toml", &counting_pipeline("p", "second", "20ms", ""));
    let status = daemon.wait_status("the new version", SOON, |s| generation(s, "p") == 2);
    assert_eq!(
        find(&status, "p").map(|p| p["state"].clone()),
        Some("running".into())
    );
    daemon.wait_batches("p", 5);
    let stopped = daemon.client(&["stop", "p"]);
    assert!(
        stopped.status.success(),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );

    let (first, second) = (daemon.path("out/first"), daemon.path("out/second"));
    assert!(values_written(std::slice::from_ref(&second)).len() >= 50);
    let all = values_written(&[first.clone(), second.clone()]);
    assert_no_gap_no_duplicate(&all);
    // The old sink wrote only what came before the new one's first row.
    let first_max = values_written(&[first]).last().copied().unwrap_or(-1);
    let second_min = values_written(&[second]).first().copied().unwrap_or(-1);
    assert_eq!(second_min, first_max + 1);
    let applied = daemon.log_lines("reload: p (");
    assert_eq!(applied.len(), 2, "{applied:?}");
    assert!(
        applied[1].contains("hot change at a batch boundary: sink #1 (file) settings"),
        "{applied:?}"
    );
    Ok(())
}

#[test]
fn whitespace_and_comment_edits_change_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let daemon = Daemon::start(dir.path(), &[]);
    let text = counting_pipeline("p", "p", "20ms", "");
    daemon.write_pipeline("p.toml", &text);
    daemon.wait_batches("p", 3);
    daemon.write_pipeline(
        "p.toml",
        &format!(
            "# edited by hand\n\n{}\n# the end\n",
            text.replace(" = ", "   =   ")
        ),
    );
    // An explicit reload after the edit: nothing to apply.
    let reload = daemon.client(&["reload"]);
    assert!(
        reload.status.success(),
        "{}",
        String::from_utf8_lossy(&reload.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&reload.stdout),
        "reloaded: 0 applied, 0 not applied\n"
    );
    let status = daemon.wait_batches("p", 6);
    assert_eq!(generation(&status, "p"), 1, "the pipeline was not replaced");
    assert_eq!(daemon.log_lines("reload: p (").len(), 1, "only the start");
    assert!(daemon.client(&["stop", "p"]).status.success());
    assert_no_gap_no_duplicate(&values_written(&[daemon.path("out/p")]));
    Ok(())
}

#[test]
fn a_removed_file_stops_its_pipeline_and_its_state_is_listed_as_orphaned_until_reset() -> TestResult
{
    let dir = tempfile::tempdir()?;
    let daemon = Daemon::start(dir.path(), &[]);
    daemon.write_pipeline("gone.toml", &counting_pipeline("gone", "gone", "20ms", ""));
    daemon.write_pipeline("kept.toml", &counting_pipeline("kept", "kept", "20ms", ""));
    daemon.wait_batches("gone", 3);
    std::fs::remove_file(daemon.path("pipelines/gone.toml"))?;
    daemon.wait_status("`gone` to stop", SOON, |s| find(s, "gone").is_none());
    assert_eq!(
        daemon
            .log_lines("gone.toml): stop (its checkpoint and state are kept)")
            .len(),
        1
    );
    let written = values_written(&[daemon.path("out/gone")]);
    assert_no_gap_no_duplicate(&written);

    let list = daemon.client(&["state", "list"]);
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    let gone = list
        .lines()
        .find(|l| l.starts_with("gone\t"))
        .unwrap_or_default();
    assert!(gone.contains("orphaned"), "{list}");
    let kept = list
        .lines()
        .find(|l| l.starts_with("kept\t"))
        .unwrap_or_default();
    assert!(!kept.is_empty() && !kept.contains("orphaned"), "{list}");

    let reset = daemon.client(&["state", "reset", "gone"]);
    assert!(
        reset.status.success(),
        "{}",
        String::from_utf8_lossy(&reset.stderr)
    );
    let list = daemon.client(&["state", "list"]);
    assert!(!String::from_utf8_lossy(&list.stdout).contains("gone"));
    Ok(())
}

#[test]
fn a_rejected_edit_leaves_the_old_version_running_and_a_fix_is_applied() -> TestResult {
    let dir = tempfile::tempdir()?;
    let daemon = Daemon::start(dir.path(), &[]);
    let good = counting_pipeline("p", "p", "20ms", "");
    daemon.write_pipeline("p.toml", &good);
    daemon.wait_batches("p", 3);
    daemon.write_pipeline(
        "p.toml",
        &good.replace("format = \"json\"", "format = \"jsn\""),
    );
    let file = daemon.path("pipelines/p.toml").display().to_string();
    let status = daemon.wait_status("the rejection", SOON, |s| {
        find(s, "p").is_some_and(|p| !p["pending"].is_null())
    });
    let p = find(&status, "p").cloned().unwrap_or_default();
    assert_eq!(p["state"], "running", "{p:#}");
    assert_eq!(p["pending"]["kind"], "rejected");
    assert_eq!(
        p["pending"]["position"],
        format!("{file}:11:10").as_str(),
        "{p:#}"
    );
    let before = p["batches"].as_u64().unwrap_or(0);
    daemon.wait_batches("p", before + 3);
    let details = String::from_utf8_lossy(&daemon.client(&["status", "p"]).stdout).into_owned();
    assert!(
        details.contains("not applied (rejected); the running version keeps running"),
        "{details}"
    );
    assert!(details.contains("unknown variant `jsn`"), "{details}");
    // Logged once, however many reloads see the same broken file; `weir reload` says it too.
    let reload = daemon.client(&["reload"]);
    let said = String::from_utf8_lossy(&reload.stdout).into_owned();
    assert!(said.contains("p.toml): rejected, not applied:"), "{said}");
    assert_eq!(reload.status.code(), Some(1), "{said}");
    assert_eq!(daemon.log_lines("p.toml): rejected, not applied").len(), 1);

    daemon.write_pipeline("p.toml", &good.replace("../out/p", "../out/p2"));
    let status = daemon.wait_status("the fix", SOON, |s| generation(s, "p") == 2);
    assert!(
        find(&status, "p").is_some_and(|p| p["pending"].is_null()),
        "{status:#}"
    );
    // Across the rejected edit and the fix, every row once: the old version went on writing
    // until the fixed one took over.
    daemon.wait_batches("p", 3);
    assert!(daemon.client(&["stop", "p"]).status.success());
    let (before, after) = (daemon.path("out/p"), daemon.path("out/p2"));
    assert!(!values_written(std::slice::from_ref(&after)).is_empty());
    assert_no_gap_no_duplicate(&values_written(&[before, after]));
    Ok(())
}

const COUNTS: &str = r#"name = "counts"
output_mode = "update"
trigger = { processing_time = "20ms" }

[source]
type = "rate_micro_batch"
rows_per_batch = 10

[aggregate]
group_by = []
functions = [{ fn = "count" }]

[[sink]]
type = "file"
path = "../out/counts"
format = "json"
"#;

#[test]
fn a_changed_aggregation_is_not_applied_and_a_state_reset_starts_it_afresh_with_its_new_columns()
-> TestResult {
    let dir = tempfile::tempdir()?;
    let daemon = Daemon::start(dir.path(), &[]);
    daemon.write_pipeline("counts.toml", COUNTS);
    daemon.wait_batches("counts", 3);
    daemon.write_pipeline(
        "counts.toml",
        &COUNTS.replace(
            "{ fn = \"count\" }",
            "{ fn = \"count\" }, { fn = \"sum\", column = \"value\" }",
        ),
    );
    let status = daemon.wait_status("the refusal", SOON, |s| {
        find(s, "counts").is_some_and(|p| p["pending"]["kind"] == "needs_state_reset")
    });
    let p = find(&status, "counts").cloned().unwrap_or_default();
    assert_eq!(p["state"], "running");
    assert_eq!(p["generation"], 1);
    let message = p["pending"]["message"].as_str().unwrap_or_default();
    assert!(
        message
            .contains("the [aggregate] of pipeline `counts` changed since its state was written"),
        "{message}"
    );
    assert!(message.contains("weir state reset counts"), "{message}");
    assert!(
        message.contains("the running version keeps running"),
        "{message}"
    );
    // The old version goes on counting every row once.
    let batches = p["batches"].as_u64().unwrap_or(0);
    daemon.wait_batches("counts", batches + 3);
    let (last_batch, rows) = crate::daemon_harness::parts(&daemon.path("out/counts"))
        .last()
        .cloned()
        .unwrap_or_default();
    let count = rows.first().and_then(|r| r["count"].as_i64()).unwrap_or(-1);
    assert_eq!(count, (last_batch as i64 + 1) * 10, "{rows:?}");

    let reset = daemon.client(&["state", "reset", "counts"]);
    let said = String::from_utf8_lossy(&reset.stdout).into_owned();
    assert!(
        reset.status.success(),
        "{}",
        String::from_utf8_lossy(&reset.stderr)
    );
    assert!(
        said.contains("reset pipeline `counts`: stopped, checkpoint and state deleted"),
        "{said}"
    );
    let status = daemon.wait_batches("counts", 2);
    let p = find(&status, "counts").cloned().unwrap_or_default();
    assert!(p["pending"].is_null(), "{p:#}");
    // The new version started afresh: its batch 0 counts the stream's first 10 rows (values
    // 0 to 9) and has the new sum column. (The old version's batch 0 is there too, without.)
    let fresh: Vec<Value> = crate::daemon_harness::parts(&daemon.path("out/counts"))
        .into_iter()
        .filter(|(batch, _)| *batch == 0)
        .flat_map(|(_, rows)| rows)
        .filter(|row| row.as_object().is_some_and(|o| o.len() == 2))
        .collect();
    assert_eq!(fresh.len(), 1, "{fresh:?}");
    assert_eq!(fresh[0]["count"], 10, "{fresh:?}");
    let sum = fresh[0]
        .as_object()
        .and_then(|o| o.iter().find(|(k, _)| k.starts_with("sum")))
        .map(|(_, v)| v.clone());
    assert_eq!(sum, Some(serde_json::json!(45)), "{fresh:?}");
    Ok(())
}

#[test]
fn two_files_claiming_one_name_are_both_rejected_naming_both_paths() -> TestResult {
    let dir = tempfile::tempdir()?;
    let daemon = Daemon::start(dir.path(), &[]);
    daemon.write_pipeline("one.toml", &counting_pipeline("same", "one", "50ms", ""));
    daemon.wait_batches("same", 1);
    daemon.write_pipeline("two.toml", &counting_pipeline("same", "two", "50ms", ""));
    let one = daemon.path("pipelines/one.toml").display().to_string();
    let two = daemon.path("pipelines/two.toml").display().to_string();
    let status = daemon.wait_status("both rejected", SOON, |s| {
        find(s, "same").is_some_and(|p| !p["pending"].is_null())
            && s["rejected_files"].as_array().is_some_and(|r| r.len() == 1)
    });
    // The running version (from one.toml) keeps running; both files carry the error.
    let running = find(&status, "same").cloned().unwrap_or_default();
    assert_eq!(running["state"], "running");
    let message = running["pending"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("is also claimed by {two}")),
        "{message}"
    );
    let other = status["rejected_files"][0]["pending"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        other.contains(&format!("is also claimed by {one}")),
        "{other}"
    );
    assert!(values_written(&[daemon.path("out/two")]).is_empty());
    Ok(())
}

#[test]
fn weir_diff_names_every_kind_of_change_and_applies_none_until_weir_reload() -> TestResult {
    let dir = tempfile::tempdir()?;
    // No file events and no rescans: only `weir reload` applies anything.
    let daemon = Daemon::start(
        dir.path(),
        &["--watch-debounce", "1h", "--rescan-interval", "1h"],
    );
    for name in ["same", "edited", "gone", "broken", "counts"] {
        let text = if name == "counts" {
            COUNTS.to_string()
        } else {
            counting_pipeline(name, name, "50ms", "")
        };
        daemon.write_pipeline(&format!("{name}.toml"), &text);
    }
    let reload = daemon.client(&["reload"]);
    assert!(
        reload.status.success(),
        "{}",
        String::from_utf8_lossy(&reload.stderr)
    );
    daemon.wait_batches("counts", 1);

    daemon.write_pipeline(
        "edited.toml",
        &counting_pipeline("edited", "edited", "50ms", "")
            .replace("rows_per_batch = 10", "rows_per_batch = 20"),
    );
    std::fs::remove_file(daemon.path("pipelines/gone.toml"))?;
    daemon.write_pipeline(
        "broken.toml",
        "name = \"broken\"\n[source]\ntype = \"rate\"\n[[sink]]\ntype = \"nope\"\n",
    );
    daemon.write_pipeline(
        "counts.toml",
        &COUNTS.replace(
            "{ fn = \"count\" }",
            "{ fn = \"count\" }, { fn = \"max\", column = \"value\" }",
        ),
    );
    daemon.write_pipeline("new.toml", &counting_pipeline("new", "new", "50ms", ""));

    let diff = daemon.client(&["diff"]);
    assert!(
        diff.status.success(),
        "{}",
        String::from_utf8_lossy(&diff.stderr)
    );
    let text = String::from_utf8_lossy(&diff.stdout).into_owned();
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name} (")))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line("same").ends_with(": unchanged"), "{text}");
    assert!(
        line("edited")
            .ends_with(": hot change at a batch boundary: source (rate_micro_batch) settings"),
        "{text}"
    );
    assert!(
        line("gone").ends_with(": stop (its checkpoint and state are kept)"),
        "{text}"
    );
    assert!(
        line("broken").contains(": rejected, not applied:"),
        "{text}"
    );
    assert!(line("broken").contains("broken.toml:5:8:"), "{text}");
    assert!(
        line("counts").contains(
            ": needs state reset, not applied: the [aggregate] of pipeline `counts` changed"
        ),
        "{text}"
    );
    assert!(line("new").ends_with(": start"), "{text}");
    // The dry run changed nothing.
    let status = daemon.status(None);
    assert!(find(&status, "new").is_none() && find(&status, "gone").is_some());
    assert_eq!(generation(&status, "edited"), 1);
    assert!(find(&status, "broken").is_some_and(|p| p["pending"].is_null()));

    let reload = daemon.client(&["reload"]);
    let said = String::from_utf8_lossy(&reload.stdout).into_owned();
    assert_eq!(
        reload.status.code(),
        Some(1),
        "something was not applied: {said}"
    );
    assert!(
        said.ends_with("reloaded: 3 applied, 2 not applied\n"),
        "{said}"
    );
    let status = daemon.status(None);
    assert!(find(&status, "new").is_some() && find(&status, "gone").is_none());
    assert_eq!(generation(&status, "edited"), 2);
    Ok(())
}
