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

#[test]
fn metrics_count_the_rows_sent_the_late_rows_made_and_the_malformed_records_planted_and_a_histogram_counts_every_batch()
-> TestResult {
    let root = tempfile::tempdir()?;
    let input = root.path().join("in");
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
    let sent = 100 + 12 + 20;

    let daemon = Daemon::start(root.path(), &[]);
    let addr = daemon.http.clone().ok_or("no HTTP address")?;
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
    let batches = find(&status, "iot")
        .and_then(|p| p["batches"].as_u64())
        .unwrap_or(0) as f64;

    let scrape = scrape(&addr)?;
    let iot = [("pipeline", "iot")];
    assert_eq!(
        value(&scrape, "weir_pipeline_input_rows_total", &iot),
        Some(sent as f64)
    );
    assert_eq!(
        value(&scrape, "weir_pipeline_late_rows_dropped_total", &iot),
        Some(12.0)
    );
    assert_eq!(
        value(
            &scrape,
            "weir_pipeline_malformed_records_total",
            &[("pipeline", "iot"), ("action", "dead_lettered")]
        ),
        Some(3.0)
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
