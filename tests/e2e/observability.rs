//! `GET /metrics` of a running daemon, read with a real Prometheus text-format parser.

use crate::daemon_harness::{Daemon, SOON, find, http_get, http_raw};
use crate::harness::TestResult;
use prometheus_parse::{Scrape, Value};

const START_S: i64 = 1_764_547_200; // 2025-12-01T00:00:00Z

fn reading(t_s: i64, sensor: u32) -> String {
    let time = chrono::DateTime::from_timestamp(t_s, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    format!("{{\"time\": \"{time}\", \"sensor\": \"s{sensor}\", \"value\": 1}}\n")
}

/// The value of the series `name` whose labels include `labels`.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(k).is_some_and(|l| l == *v))
        })
        .map(|s| match &s.value {
            Value::Counter(x) | Value::Gauge(x) | Value::Untyped(x) => *x,
            Value::Histogram(h) => h.last().map_or(f64::NAN, |b| b.count),
            Value::Summary(_) => f64::NAN,
        })
}

fn scrape(addr: &str) -> Result<Scrape, std::io::Error> {
    let (code, body) = http_get(addr, "/metrics");
    assert_eq!(code, 200, "{body}");
    Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
}

/// Rows of good JSON the known run sends, late rows it makes, lines it plants that are not
/// JSON.
const SENT: u64 = 100 + 20 + 12;
const LATE: u64 = 12;
const PLANTED: u64 = 3;

/// A daemon running pipeline `iot` over three files, one per batch, until it has read them all;
/// returns it and the status it showed then.
fn known_run(root: &std::path::Path) -> Result<(Daemon, serde_json::Value), std::io::Error> {
    let input = root.join("in");
    std::fs::create_dir_all(&input)?;
    // One file per batch. The first moves the watermark to START + 94 s; the second's batch
    // evicts the windows that ended by then (and brings 3 lines that are not JSON); the third
    // brings 12 rows of [START + 10 s, START + 20 s), a window already evicted: late (Spark too
    // drops rows behind the watermark the previous batch evicted with).
    let mut first = String::new();
    for i in 0..100 {
        first.push_str(&reading(START_S + i, (i % 3) as u32));
    }
    let mut second = String::new();
    for planted in [
        "{\"time\": ",
        "not json",
        "{\"time\": \"2025-12-01T00:02:00Z\", \"value\": }",
    ] {
        second.push_str(planted);
        second.push('\n');
    }
    for i in 0..20 {
        second.push_str(&reading(START_S + 100 + i, 2));
    }
    let mut third = String::new();
    for i in 0..12 {
        third.push_str(&reading(START_S + 10 + i % 10, 1));
    }
    std::fs::write(input.join("a.json"), first)?;
    std::fs::write(input.join("b.json"), second)?;
    std::fs::write(input.join("c.json"), third)?;

    let daemon = Daemon::start(root, &[]);
    daemon.write_pipeline(
        "iot.toml",
        r#"name = "iot"
output_mode = "update"
trigger = { processing_time = "100ms" }

[source]
type = "file"
path = "../in"
format = "json"
max_files_per_trigger = 1
on_error = "dead_letter"

[[source.column]]
name = "time"
type = "timestamp"

[[source.column]]
name = "sensor"
type = "string"

[[source.column]]
name = "value"
type = "long"

[aggregate]
group_by = ["sensor"]
window = { column = "time", size = "10s" }
watermark = "5s"
functions = [{ fn = "count" }]

[[sink]]
type = "null"
"#,
    );
    let status = daemon.wait_status("both files read", SOON, |status| {
        find(status, "iot")
            .is_some_and(|p| p["last_batch"]["end_offset"]["files"].as_u64() == Some(3))
    });
    Ok((daemon, status))
}

#[test]
fn metrics_count_the_rows_sent_the_late_rows_made_and_the_malformed_records_planted_and_a_histogram_counts_every_batch()
-> TestResult {
    let root = tempfile::tempdir()?;
    let (daemon, status) = known_run(root.path())?;
    let addr = daemon.http.clone().ok_or("no HTTP address")?;
    let batches = find(&status, "iot")
        .and_then(|p| p["batches"].as_u64())
        .unwrap_or(0) as f64;
    let scrape = scrape(&addr)?;
    let iot = [("pipeline", "iot")];
    assert_eq!(
        value(&scrape, "weir_pipeline_input_rows_total", &iot),
        Some(SENT as f64)
    );
    assert_eq!(
        value(&scrape, "weir_pipeline_late_rows_dropped_total", &iot),
        Some(LATE as f64)
    );
    assert_eq!(
        value(
            &scrape,
            "weir_pipeline_malformed_records_total",
            &[("pipeline", "iot"), ("action", "dead_lettered")]
        ),
        Some(PLANTED as f64)
    );
    assert_eq!(
        value(
            &scrape,
            "weir_pipeline_malformed_records_total",
            &[("pipeline", "iot"), ("action", "skipped")]
        ),
        Some(0.0)
    );
    let counted = value(&scrape, "weir_pipeline_batches_total", &iot);
    assert!(
        counted.is_some_and(|n| n >= 2.0 && n >= batches),
        "{counted:?} vs {batches}"
    );
    assert_eq!(
        value(&scrape, "weir_pipeline_batch_duration_seconds", &iot),
        counted,
        "the histogram counts every batch"
    );
    for phase in ["plan", "read", "process", "sinks", "commit"] {
        assert_eq!(
            value(
                &scrape,
                "weir_pipeline_phase_duration_seconds",
                &[("pipeline", "iot"), ("phase", phase)]
            ),
            counted,
            "phase {phase}"
        );
    }
    assert_eq!(
        value(
            &scrape,
            "weir_pipeline_state",
            &[("pipeline", "iot"), ("state", "running")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&scrape, "weir_pipelines", &[("state", "running")]),
        Some(1.0)
    );
    assert!(
        value(&scrape, "weir_pipeline_watermark_lag_seconds", &iot).is_some_and(|lag| lag > 0.0)
    );
    assert!(value(&scrape, "weir_reloads_total", &[]).is_some_and(|n| n >= 1.0));
    assert_eq!(
        value(
            &scrape,
            "weir_pipeline_source_backlog",
            &[("pipeline", "iot"), ("unit", "files")]
        ),
        Some(0.0)
    );

    // OpenMetrics when asked for, ending in `# EOF`.
    let (code, body) = http_raw(
        &addr,
        format!(
            "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAccept: application/openmetrics-text; version=1.0.0\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(code, 200);
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
    assert!(
        body.contains("# TYPE weir_pipeline_input_rows counter"),
        "{body}"
    );
    Ok(())
}

#[test]
fn state_bytes_on_disk_are_measured_once_the_store_has_flushed_them_as_a_restart_does() -> TestResult
{
    let root = tempfile::tempdir()?;
    let (daemon, _) = known_run(root.path())?;
    drop(daemon);
    // Reopening the store replays its write-ahead log into files; the next batch measures them.
    let mut fourth = String::new();
    for i in 0..5 {
        fourth.push_str(&reading(START_S + 200 + i, 0));
    }
    std::fs::write(root.path().join("in").join("d.json"), fourth)?;
    let daemon = Daemon::start(root.path(), &[]);
    daemon.wait_status("the fourth file read", SOON, |status| {
        find(status, "iot")
            .is_some_and(|p| p["last_batch"]["end_offset"]["files"].as_u64() == Some(4))
    });
    let addr = daemon.http.clone().ok_or("no HTTP address")?;
    let on_disk = value(
        &scrape(&addr)?,
        "weir_pipeline_state_disk_bytes",
        &[("pipeline", "iot")],
    );
    assert!(on_disk.is_some_and(|b| b > 0.0), "{on_disk:?}");
    let text = daemon.client(&["status", "iot"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("on disk") && l.contains("B (checkpoint, state")),
        "{text}"
    );
    Ok(())
}

/// A monitoring script as Spark users write it against `query.recentProgress` (a list of
/// `StreamingQueryProgress` dicts), reading only Spark's documented field names. It prints the
/// batches, input rows, late rows and output rows it saw, and the last watermark.
const SPARK_SCRIPT: &str = r#"
import json, sys
progress = json.load(sys.stdin)
batches = 0
input_rows = 0
late = 0
output_rows = 0
watermark = None
for p in progress:
    batches += 1
    input_rows += p["numInputRows"]
    assert p["inputRowsPerSecond"] >= 0 and p["processedRowsPerSecond"] >= 0
    assert p["durationMs"]["triggerExecution"] >= 0
    for op in p["stateOperators"]:
        late += op["numRowsDroppedByWatermark"]
        assert op["numRowsTotal"] >= 0 and op["memoryUsedBytes"] >= 0
    source = p["sources"][0]
    assert source["numInputRows"] == p["numInputRows"]
    assert "endOffset" in source and "startOffset" in source
    output_rows += p["sink"]["numOutputRows"]
    watermark = p["eventTime"].get("watermark", watermark)
    assert p["id"] and p["runId"] and p["name"] == "iot" and p["timestamp"]
print(batches, input_rows, late, output_rows, watermark)
"#;

#[test]
fn the_progress_api_is_read_unchanged_by_a_script_written_against_sparks_field_names() -> TestResult
{
    let root = tempfile::tempdir()?;
    let (daemon, status) = known_run(root.path())?;
    let addr = daemon.http.clone().ok_or("no HTTP address")?;
    let batches = find(&status, "iot")
        .and_then(|p| p["batches"].as_u64())
        .unwrap_or(0);
    let (code, body) = http_get(&addr, "/pipelines/iot/progress");
    assert_eq!(code, 200, "{body}");
    let mut script = std::process::Command::new("python3")
        .args(["-c", SPARK_SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = script.stdin.take() {
        use std::io::Write;
        stdin.write_all(body.as_bytes())?;
    }
    let out = script.wait_with_output()?;
    assert!(
        out.status.success(),
        "the Spark script failed on:\n{body}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let fields: Vec<&str> = printed.split(' ').collect();
    assert!(
        fields[0].parse::<u64>().is_ok_and(|n| n >= batches),
        "{printed} vs {batches} batches"
    );
    assert_eq!(fields[1], SENT.to_string(), "{printed}");
    assert_eq!(fields[2], LATE.to_string(), "{printed}");
    // The watermark after the second file: its newest row (START + 119 s) less 5 s.
    assert_eq!(
        fields.get(4),
        Some(&"2025-12-01T00:01:54.000Z"),
        "{printed}"
    );

    // Each batch that read a file saw the files still waiting behind it.
    let all: serde_json::Value = serde_json::from_str(&body)?;
    let backlogs: Vec<(String, String)> = all
        .as_array()
        .ok_or("not a list")?
        .iter()
        .filter(|p| p["numInputRows"].as_u64() > Some(0))
        .map(|p| {
            let m = &p["sources"][0]["metrics"];
            (
                m["backlog"].as_str().unwrap_or("-").to_string(),
                m["backlogUnit"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect();
    let files = |n: &str| (n.to_string(), "files".to_string());
    assert_eq!(backlogs, vec![files("2"), files("1"), files("0")]);

    // ?last=N keeps the newest N; the history is bounded by progress_history.
    let (code, body) = http_get(&addr, "/pipelines/iot/progress?last=1");
    assert_eq!(code, 200);
    let last: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(last.as_array().map(Vec::len), Some(1));
    assert_eq!(http_get(&addr, "/pipelines/iot/progress?last=x").0, 400);
    assert_eq!(http_get(&addr, "/pipelines/nope/progress").0, 404);
    Ok(())
}

/// A pipeline of 100-row batches through plugin `plugin`, every 100 ms.
fn plugin_pipeline(name: &str, plugin: &str, extra: &str) -> String {
    format!(
        r#"name = "{name}"
trigger = {{ processing_time = "100ms" }}

[source]
type = "rate_micro_batch"
rows_per_batch = 100

[[transform]]
plugin = "{plugin}"
{extra}

[[sink]]
type = "null"
"#
    )
}

#[test]
fn plugin_costs_show_a_memory_high_water_mark_near_what_it_allocated_and_one_deadline_expiry_per_call_of_a_loop()
-> TestResult {
    const HELD_MIB: f64 = 64.0;
    let root = tempfile::tempdir()?;
    let daemon = Daemon::start(root.path(), &[]);
    let addr = daemon.http.clone().ok_or("no HTTP address")?;
    let fixtures = crate::daemon_harness::built_plugins().join("fixtures");
    daemon.install_plugin(&fixtures.join("memory_hog.wasm"), "memory_hog");
    daemon.install_plugin(&fixtures.join("endless_loop.wasm"), "endless_loop");
    daemon.write_pipeline(
        "hog.toml",
        &plugin_pipeline(
            "hog",
            "memory_hog",
            &format!("config = {{ mib = {HELD_MIB} }}\nmax_memory_mb = 256"),
        ),
    );
    daemon.write_pipeline(
        "loops.toml",
        &plugin_pipeline("loops", "endless_loop", "timeout = \"200ms\""),
    );
    daemon.wait_batches("hog", 3);
    // Counters are read in one scrape while calls may end between two of them, so wait for a
    // scrape between calls of both pipelines: the loop called at least twice with as many
    // deadline expiries as calls (two per call, or none, never get there), and the hog's calls,
    // rows and call durations counted alike (100 rows a call).
    let loops = [("pipeline", "loops"), ("plugin", "endless_loop")];
    let hog = [
        ("pipeline", "hog"),
        ("stage", "transform #1"),
        ("plugin", "memory_hog"),
    ];
    let hog_rows = [("pipeline", "hog"), ("direction", "in")];
    let end = std::time::Instant::now() + SOON;
    let scrape = loop {
        let scrape = scrape(&addr)?;
        let calls = value(&scrape, "weir_plugin_calls_total", &loops);
        let expired = value(
            &scrape,
            "weir_plugin_failures_total",
            &[("pipeline", "loops"), ("kind", "deadline")],
        );
        let hog_calls = value(&scrape, "weir_plugin_calls_total", &hog);
        let hog_in = value(&scrape, "weir_plugin_rows_total", &hog_rows);
        let hog_timed = value(&scrape, "weir_plugin_call_duration_seconds", &hog);
        let hog_between_calls = hog_in == hog_calls.map(|c| 100.0 * c) && hog_timed == hog_calls;
        if calls.is_some_and(|n| n >= 2.0) && expired == calls && hog_between_calls {
            break scrape;
        }
        assert!(
            std::time::Instant::now() < end,
            "loop: calls {calls:?}, deadline expiries {expired:?}; hog: calls {hog_calls:?}, rows in {hog_in:?}, timed calls {hog_timed:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };

    let high_water = value(&scrape, "weir_plugin_memory_high_water_bytes", &hog)
        .ok_or("no memory high-water mark")?;
    let held = HELD_MIB * 1024.0 * 1024.0;
    eprintln!("high-water mark: {} MiB", high_water / 1024.0 / 1024.0);
    assert!(
        (high_water - held).abs() <= held * 0.1,
        "high-water mark {} MiB for {HELD_MIB} MiB held",
        high_water / 1024.0 / 1024.0
    );
    assert_eq!(
        value(&scrape, "weir_plugin_memory_limit_bytes", &hog),
        Some(256.0 * 1024.0 * 1024.0)
    );
    let hog_calls = value(&scrape, "weir_plugin_calls_total", &hog).unwrap_or(0.0);
    assert!(hog_calls >= 3.0, "{hog_calls} calls");
    assert_eq!(
        value(
            &scrape,
            "weir_plugin_rows_total",
            &[("pipeline", "hog"), ("direction", "in")]
        ),
        Some(100.0 * hog_calls)
    );
    assert_eq!(
        value(&scrape, "weir_plugin_call_duration_seconds", &hog),
        Some(hog_calls),
        "the call histogram counts every call"
    );
    assert!(value(&scrape, "weir_plugin_cpu_seconds_total", &hog).is_some_and(|s| s > 0.0));

    // `weir status hog` shows the same costs.
    let status = daemon.status(Some("hog"));
    let costs = &status["plugin_costs"][0];
    assert_eq!(costs["plugin"], "memory_hog", "{status:#}");
    assert!(
        costs["memory_high_water_bytes"]
            .as_f64()
            .is_some_and(|b| (b - held).abs() <= held * 0.1),
        "{status:#}"
    );
    let text = daemon.client(&["status", "hog"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("plugin costs:") && text.contains("memory_hog"),
        "{text}"
    );

    assert_eq!(
        value(
            &scrape,
            "weir_plugin_failures_total",
            &[("pipeline", "loops"), ("kind", "trap")]
        ),
        Some(0.0)
    );
    Ok(())
}

/// Runs headless Chromium on `url` (external hosts unreachable: the page must need nothing
/// from outside the machine) and returns the DOM after `budget_ms` of the page's time.
fn chromium_dom(url: &str, budget_ms: u32, profile: &std::path::Path, extra: &[&str]) -> String {
    let budget = format!("--virtual-time-budget={budget_ms}");
    let profile = format!("--user-data-dir={}", profile.display());
    let mut args = vec![
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--window-size=1200,900",
        &budget,
        &profile,
    ];
    args.extend_from_slice(extra);
    args.push(url);
    let out = std::process::Command::new("chromium")
        .args(&args)
        .output()
        .unwrap_or_else(|err| panic!("cannot run chromium (./scripts/setup installs it): {err}"));
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of the first attribute `name="…"` in `dom` after `from`.
fn attribute_after<'a>(dom: &'a str, from: &str, name: &str) -> Option<&'a str> {
    let rest = &dom[dom.find(from)?..];
    let key = format!("{name}=\"");
    let rest = &rest[rest.find(&key)? + key.len()..];
    rest.split('"').next()
}

/// The text of the first element with `attribute` in `dom` after `from`.
fn cell<'a>(dom: &'a str, from: &str, attribute: &str) -> Option<&'a str> {
    let start = dom.find(from)?;
    let rest = &dom[start..];
    let at = rest.find(attribute)?;
    let rest = &rest[at..];
    let open_end = rest.find('>')?;
    let rest = &rest[open_end + 1..];
    Some(&rest[..rest.find('<')?])
}

#[test]
fn the_live_page_in_headless_chromium_charts_every_pipeline_and_shows_the_numbers_of_the_api()
-> TestResult {
    let root = tempfile::tempdir()?;
    let daemon = Daemon::start(root.path(), &[]);
    let addr = daemon.http.clone().ok_or("no HTTP address")?;
    // One pipeline that has finished (its numbers no longer move) and one that keeps going.
    daemon.write_pipeline(
        "done.toml",
        r#"name = "done"
trigger = "available_now"

[source]
type = "datagen"
rows = 700
rows_per_second = 1000000
max_rows_per_batch = 100

[[source.column]]
name = "id"
type = "long"

[[sink]]
type = "null"
"#,
    );
    daemon.write_pipeline(
        "ticks.toml",
        r#"name = "ticks"
trigger = { processing_time = "100ms" }

[source]
type = "datagen"
rows_per_second = 200

[[source.column]]
name = "time"
type = "timestamp"
expr = "now"

[[source.column]]
name = "sensor"
type = "string"
values = ["a", "b", "c"]

[aggregate]
group_by = ["sensor"]
window = { column = "time", size = "1s" }
watermark = "500ms"
functions = [{ fn = "count" }]

[[sink]]
type = "null"
"#,
    );
    let status = daemon.wait_status("done finished, ticks running", SOON, |s| {
        find(s, "done").is_some_and(|p| p["state"] == "finished")
            && find(s, "ticks").is_some_and(|p| p["batches"].as_u64() >= Some(3))
    });
    let done = find(&status, "done").ok_or("no pipeline done")?;
    let batches = done["batches"].as_u64().ok_or("no batches")?;
    let last_rows = done["last_batch"]["num_input_rows"]
        .as_u64()
        .ok_or("no last batch")?;

    let profile = root.path().join("chromium");
    let url = format!("http://{addr}/");
    let dom = chromium_dom(&url, 4000, &profile, &["--dump-dom"]);
    let row = "data-pipeline=\"done\"";
    assert_eq!(
        cell(&dom, row, "data-field=\"batches\""),
        Some(batches.to_string().as_str()),
        "{dom}"
    );
    assert_eq!(
        cell(&dom, row, "data-field=\"rows-in\""),
        Some(last_rows.to_string().as_str())
    );
    assert_eq!(cell(&dom, row, "data-field=\"state\""), Some("finished"));
    assert!(dom.contains("data-pipeline=\"ticks\""), "{dom}");
    // Every pipeline's charts received its batches; the aggregating one's watermark lag and
    // state size too.
    for (pipeline, charts) in [
        ("done", &["rates", "duration"][..]),
        ("ticks", &["rates", "duration", "lag", "state"][..]),
    ] {
        let card = dom
            .find(&format!("class=\"card\" data-pipeline=\"{pipeline}\""))
            .ok_or("no card")?;
        let card = &dom[card..];
        for chart in charts {
            let points = attribute_after(card, &format!("data-chart=\"{chart}\""), "data-points")
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            assert!(points > 0, "{pipeline}/{chart}: no points");
        }
    }
    // It refreshes itself: several updates within the page's time, without a reload.
    let refreshes = attribute_after(&dom, "<body", "data-refreshes")
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    assert!(refreshes >= 2, "{refreshes} refreshes");

    // A pipeline's own page shows its recent batches.
    let page = chromium_dom(
        &format!("http://{addr}/#/pipeline/done"),
        3000,
        &profile,
        &["--dump-dom"],
    );
    assert!(page.contains("id=\"recent-batches\""), "{page}");

    // What the first load transfers: the page's files, the status and each pipeline's first
    // progress request (the page asks for the last 60 batches, then only newer ones).
    let mut loaded = 0;
    for path in [
        "/",
        "/ui/app.js",
        "/ui/style.css",
        "/ui/uPlot.iife.min.js",
        "/ui/uPlot.min.css",
        "/pipelines",
        "/pipelines/done/progress?last=60",
        "/pipelines/ticks/progress?last=60",
    ] {
        let (code, body) = http_get(&addr, path);
        assert_eq!(code, 200, "{path}");
        loaded += body.len();
    }
    eprintln!("first load: {loaded} bytes");
    assert!(loaded < 200 * 1024, "{loaded} bytes on first load");
    let (_, later) = http_get(&addr, "/pipelines/ticks/progress?after=1000000");
    assert_eq!(later.trim(), "[]");

    // The screenshot, kept as the test's artifact.
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("weir-page.png");
    let _ = std::fs::remove_file(&shot);
    chromium_dom(
        &url,
        4000,
        &profile,
        &[&format!("--screenshot={}", shot.display())],
    );
    let png = std::fs::read(&shot)?;
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    Ok(())
}

#[test]
fn aggregate_plugins_costs_count_the_rows_they_were_handed_per_plugin() -> TestResult {
    let root = tempfile::tempdir()?;
    let daemon = Daemon::start(root.path(), &[]);
    let addr = daemon.http.clone().ok_or("no HTTP address")?;
    let plugins = crate::daemon_harness::built_plugins();
    daemon.install_plugin(&plugins.join("weighted_avg.wasm"), "weighted_avg");
    daemon.write_pipeline(
        "weighted.toml",
        r#"name = "weighted"
output_mode = "update"
trigger = "available_now"

[source]
type = "datagen"
rows_per_second = 1000000
rows = 3000
max_rows_per_batch = 1000
start_timestamp = 0

[[source.column]]
name = "time"
type = "timestamp"
expr = "now"

[[source.column]]
name = "sensor"
type = "string"
values = ["a", "b", "c"]

[[source.column]]
name = "value"
type = "double"
values = [2.0]

[[source.column]]
name = "weight"
type = "double"
values = [1.0]

[aggregate]
group_by = ["sensor"]
window = { column = "time", size = "10s" }
functions = [{ plugin = "weighted_avg", columns = ["value", "weight"] }]

[[sink]]
type = "null"
"#,
    );
    daemon.wait_status("weighted finished", SOON, |s| {
        find(s, "weighted").is_some_and(|p| p["state"] == "finished")
    });
    let scrape = scrape(&addr)?;
    let labels = [
        ("pipeline", "weighted"),
        ("stage", "aggregate"),
        ("plugin", "weighted_avg"),
    ];
    assert_eq!(
        value(
            &scrape,
            "weir_plugin_rows_total",
            &[labels[0], labels[1], labels[2], ("direction", "in")]
        ),
        Some(3000.0)
    );
    let calls = value(&scrape, "weir_plugin_calls_total", &labels).unwrap_or(0.0);
    assert!(calls >= 3.0, "{calls} calls for three batches");
    assert!(
        value(&scrape, "weir_plugin_memory_high_water_bytes", &labels).is_some_and(|b| b > 0.0)
    );
    Ok(())
}
