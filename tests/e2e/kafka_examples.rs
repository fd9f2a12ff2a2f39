//! The Kafka examples in `config/examples/kafka/`, run as shipped against a real broker (only
//! `localhost:9092` is replaced by the test broker's address).

use crate::harness::{TestResult, Weir, repo_root};
use crate::kafka::{
    START_MS, WINDOW_MS, direct_windows, ms, produce_readings, reading, wait_until,
};
use crate::kafka_broker::Broker;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The example `name`, pointed at `broker`, written into `dir`.
fn example(broker: &Broker, dir: &Path, name: &str) -> std::io::Result<PathBuf> {
    let text = std::fs::read_to_string(repo_root().join("config/examples/kafka").join(name))?;
    assert!(text.contains("localhost:9092"), "{name} names its broker");
    let path = dir.join(name);
    std::fs::write(&path, text.replace("localhost:9092", &broker.bootstrap))?;
    Ok(path)
}

/// (window start ms, sensor) → average over readings `0..n`, for the windows that end at
/// least `margin_ms` before the newest reading's time.
fn direct_averages(n: i64, margin_ms: i64) -> BTreeMap<(i64, String), f64> {
    let newest = (0..n).map(|i| reading(i).0).max().unwrap_or(START_MS);
    direct_windows(n)
        .into_iter()
        .filter(|((start, _), _)| start + WINDOW_MS <= newest - margin_ms)
        .map(|(k, (count, sum))| (k, sum as f64 / count as f64))
        .collect()
}

/// (window start ms, sensor) → every average written to `topic` for it (read committed);
/// each record keyed by its sensor.
fn averages_in(broker: &Broker, topic: &str) -> BTreeMap<(i64, String), Vec<f64>> {
    let mut out: BTreeMap<(i64, String), Vec<f64>> = BTreeMap::new();
    for record in broker.read_all(topic) {
        let row: serde_json::Value = serde_json::from_str(&record.text()).unwrap_or_default();
        let sensor = row["sensor"].as_str().unwrap_or_default().to_string();
        assert_eq!(
            record.key.as_deref(),
            Some(sensor.as_bytes()),
            "keyed by sensor"
        );
        out.entry((
            ms(row["window"]["start"].as_str().unwrap_or_default()),
            sensor,
        ))
        .or_default()
        .push(row["avg(value)"].as_f64().unwrap_or(f64::NAN));
    }
    out
}

/// Waits until `topic` holds every window of readings `0..n` that ends a window before the
/// watermark (10 s behind the newest reading), then checks that each window there is written
/// once, with the average of all its readings.
fn assert_every_final_window_once(broker: &Broker, topic: &str, n: i64) {
    let expected = direct_averages(n, 10_000 + WINDOW_MS);
    wait_until(
        &format!("every final window in {topic}"),
        Duration::from_secs(90),
        || {
            let now = averages_in(broker, topic);
            expected.keys().all(|k| now.contains_key(k))
        },
    );
    let all = direct_averages(n, 0);
    for (window, values) in averages_in(broker, topic) {
        assert_eq!(values.len(), 1, "window {window:?} written {values:?}");
        let want = all.get(&window).copied().unwrap_or(f64::NAN);
        assert!(
            (values[0] - want).abs() < 1e-9,
            "window {window:?}: {} written, {want} expected",
            values[0]
        );
    }
}

#[test]
fn the_kafka_examples_run_as_shipped_averaging_windows_into_a_topic_once_each_and_printing_the_raw_records()
-> TestResult {
    const N: i64 = 3000;
    let broker = Broker::start();
    broker.create_topic("sensors", 3);
    broker.create_topic("sensor-averages", 1);
    let dir = tempfile::tempdir()?;
    let averages = example(&broker, dir.path(), "iot-windowed-avg-kafka.toml")?;
    let console = example(&broker, dir.path(), "kafka-console.toml")?;
    let weir = Weir::start(&[
        "run",
        "--state-dir",
        &dir.path().join("state").to_string_lossy(),
        &averages.to_string_lossy(),
        &console.to_string_lossy(),
    ]);
    // The console example starts at the latest offsets: its first batch, which records where
    // each partition starts, is committed to its consumer group before the readings are sent.
    wait_until(
        "the console example's first batch",
        Duration::from_secs(60),
        || {
            (0..3).all(|p| {
                broker
                    .committed("weir-kafka-console", "sensors", p)
                    .is_some()
            })
        },
    );
    produce_readings(&broker, "sensors", 3, 0, N);

    // Windows end 10 s (the watermark delay) behind the newest reading before they are final;
    // every window ending a window earlier than that must be there.
    assert_every_final_window_once(&broker, "sensor-averages", N);
    // The console example printed the records as Spark's raw columns.
    weir.wait_for_stdout("|sensors|", Duration::from_secs(30));
    let stdout = weir.stdout();
    for column in [
        "key",
        "value",
        "topic",
        "partition",
        "offset",
        "timestamp",
        "timestampType",
    ] {
        assert!(
            stdout.contains(column),
            "no `{column}` column in:\n{stdout}"
        );
    }
    // Binary values as Spark shows them: hex bytes; these begin `{"time"`.
    assert!(stdout.contains("|[7B 22 74 69 6D 65 22 "), "{stdout}");
    assert!(stdout.contains("|sensors|"), "{stdout}");
    Ok(())
}

#[test]
fn the_shared_example_runs_as_shipped_through_its_repartition_topic_averaging_every_final_window_once()
-> TestResult {
    const N: i64 = 3000;
    let broker = Broker::start();
    broker.create_topic("sensors", 3);
    broker.create_topic("sensor-averages-shared", 1);
    let dir = tempfile::tempdir()?;
    let shared = example(&broker, dir.path(), "iot-windowed-avg-shared.toml")?;
    let weir = Weir::start(&[
        "run",
        "--state-dir",
        &dir.path().join("state").to_string_lossy(),
        &shared.to_string_lossy(),
    ]);
    weir.wait_for(
        "the aggregation's group to give it the repartition topic's partitions",
        Duration::from_secs(60),
        |_, err| err.contains("group=iot-avg-iot-windowed-avg-shared-aggregate"),
    );
    produce_readings(&broker, "sensors", 3, 0, N);
    assert_every_final_window_once(&broker, "sensor-averages-shared", N);
    let repartitioned = broker.read_all("iot-avg-iot-windowed-avg-shared-repartition");
    assert_eq!(
        repartitioned.len(),
        N as usize,
        "the repartition topic holds each reading once"
    );
    Ok(())
}
