//! The Kafka source and sink against a real Kafka-protocol broker (Tansu, started per test on
//! a free loopback port): the seed's windowed average from a topic, Spark's raw columns, the
//! sink's keys, values and headers, malformed records under each `on_error`, topics created
//! after the start, a broker that stops answering, and exactly-once through `kill -9`.

use crate::daemon_harness::parts;
use crate::harness::{TestResult, Weir, pipeline_file};
use crate::kafka_broker::{Broker, Record};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

pub(crate) const START_MS: i64 = 1_764_547_200_000; // 2025-12-01T00:00:00Z
pub(crate) const WINDOW_MS: i64 = 10_000;

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

pub(crate) fn ms(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text).map_or(i64::MIN, |t| t.timestamp_millis())
}

/// Reading `i` of the sensor data: (event time ms, sensor, value). Times wander back and forth
/// (out of order by up to 4 s) but never further back than the watermark delay used below.
pub(crate) fn reading(i: i64) -> (i64, String, i64) {
    let jitter = (i * 7919) % 4000;
    (
        START_MS + i * 50 + jitter,
        format!("sensor_{}", i % 3 + 1),
        (i * 31) % 101,
    )
}

fn reading_json(i: i64) -> String {
    let (t, sensor, value) = reading(i);
    format!(
        r#"{{"time": "{}", "sensor": "{sensor}", "value": {value}}}"#,
        rfc3339(t)
    )
}

/// Produces readings `from..to`, round robin over `partitions`.
pub(crate) fn produce_readings(broker: &Broker, topic: &str, partitions: i32, from: i64, to: i64) {
    let values: Vec<(i32, String)> = (from..to)
        .map(|i| ((i % i64::from(partitions)) as i32, reading_json(i)))
        .collect();
    let records: Vec<Record<'_>> = values
        .iter()
        .map(|(p, v)| (*p, None, v.as_bytes(), None))
        .collect();
    broker.produce(topic, &records);
}

/// (window start, sensor) → (count, sum) over readings `0..n`.
pub(crate) fn direct_windows(n: i64) -> BTreeMap<(i64, String), (i64, i64)> {
    let mut out: BTreeMap<(i64, String), (i64, i64)> = BTreeMap::new();
    for i in 0..n {
        let (t, sensor, value) = reading(i);
        let start = t - t.rem_euclid(WINDOW_MS);
        let entry = out.entry((start, sensor)).or_default();
        entry.0 += 1;
        entry.1 += value;
    }
    out
}

fn json_source(broker: &Broker, topic: &str, extra: &str) -> String {
    format!(
        r#"[source]
type = "kafka"
bootstrap_servers = "{}"
subscribe = ["{topic}"]
starting_offsets = "earliest"
format = "json"
{extra}

[[source.column]]
name = "time"
type = "timestamp"

[[source.column]]
name = "sensor"
type = "string"

[[source.column]]
name = "value"
type = "long"
"#,
        broker.bootstrap
    )
}

/// Starts `weir run --state-dir <dir>/state <file>`.
fn weir_run(dir: &Path, file: &Path) -> Weir {
    Weir::start(&[
        "run",
        "--state-dir",
        &dir.join("state").to_string_lossy(),
        &file.to_string_lossy(),
    ])
}

fn run_to_end(dir: &Path, file: &Path) -> Weir {
    let mut weir = weir_run(dir, file);
    let status = weir.wait_exit(Duration::from_secs(120));
    assert!(status.success(), "weir failed:\n{}", weir.stderr());
    weir
}

/// (window start, sensor) → (count, sum) from rows with `window`, `sensor`, `count`,
/// `sum(value)`.
fn windows_of(rows: &[serde_json::Value]) -> BTreeMap<(i64, String), (i64, i64)> {
    let mut out = BTreeMap::new();
    for row in rows {
        let start = ms(row["window"]["start"].as_str().unwrap_or_default());
        let sensor = row["sensor"].as_str().unwrap_or_default().to_string();
        let count = row["count"].as_i64().unwrap_or(-1);
        let sum = row["sum(value)"].as_i64().unwrap_or(-1);
        if out.insert((start, sensor.clone()), (count, sum)).is_some() {
            panic!("window {start} {sensor} written twice");
        }
    }
    out
}

#[test]
fn kafka_json_windowed_counts_and_sums_under_available_now_equal_a_direct_computation() -> TestResult
{
    let broker = Broker::start();
    broker.create_topic("sensors", 3);
    const N: i64 = 6000;
    produce_readings(&broker, "sensors", 3, 0, N);

    let dir = tempfile::tempdir()?;
    let out = dir.path().join("out");
    let file = pipeline_file(
        dir.path(),
        "p.toml",
        &format!(
            r#"name = "kafka-windows"
trigger = "available_now"
output_mode = "complete"
{}
[aggregate]
group_by = ["sensor"]
window = {{ column = "time", size = "10s" }}
functions = [{{ fn = "count" }}, {{ fn = "sum", column = "value" }}]

[[sink]]
type = "file"
path = "{}"
format = "json"
"#,
            json_source(&broker, "sensors", "max_offsets_per_trigger = 1000"),
            out.display()
        ),
    );
    run_to_end(dir.path(), &file);
    let batches = parts(&out);
    // Batch 0 records where each partition starts; 6000 records at most 1000 a batch follow.
    assert!(batches.len() >= 7, "{} batches", batches.len());
    let (_, last) = batches.last().ok_or("no output")?;
    assert_eq!(windows_of(last), direct_windows(N));
    Ok(())
}

#[test]
fn raw_format_gives_sparks_columns_and_the_sink_writes_keys_and_values_back() -> TestResult {
    let broker = Broker::start();
    broker.create_topic("in", 2);
    broker.create_topic("out", 1);
    let records: Vec<Record<'_>> = vec![
        (0, Some(b"k0".as_slice()), b"v0".as_slice(), Some(START_MS)),
        (
            1,
            Some(b"k1".as_slice()),
            b"v1".as_slice(),
            Some(START_MS + 1),
        ),
        (0, None, b"v2".as_slice(), Some(START_MS + 2)),
    ];
    broker.produce("in", &records);
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("out");
    let file = pipeline_file(
        dir.path(),
        "p.toml",
        &format!(
            r#"name = "kafka-raw"
trigger = "available_now"

[source]
type = "kafka"
bootstrap_servers = "{0}"
assign = {{ in = [0, 1] }}
starting_offsets = "earliest"

[[sink]]
type = "file"
path = "{1}"
format = "json"

[[sink]]
type = "kafka"
bootstrap_servers = "{0}"
topic = "out"
key_column = "key"
value_column = "value"
timestamp_column = "timestamp"
"#,
            broker.bootstrap,
            out.display()
        ),
    );
    run_to_end(dir.path(), &file);
    let rows: Vec<serde_json::Value> = parts(&out).into_iter().flat_map(|(_, r)| r).collect();
    let mut seen: Vec<(String, i64, i64, i64, i64)> = rows
        .iter()
        .map(|r| {
            (
                r["topic"].as_str().unwrap_or_default().to_string(),
                r["partition"].as_i64().unwrap_or(-1),
                r["offset"].as_i64().unwrap_or(-1),
                ms(r["timestamp"].as_str().unwrap_or_default()),
                r["timestampType"].as_i64().unwrap_or(-9),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("in".to_string(), 0, 0, START_MS, 0),
            ("in".to_string(), 0, 1, START_MS + 2, 0),
            ("in".to_string(), 1, 0, START_MS + 1, 0),
        ]
    );
    let written = broker.read_all("out");
    let mut pairs: Vec<(Option<Vec<u8>>, String)> =
        written.iter().map(|c| (c.key.clone(), c.text())).collect();
    pairs.sort();
    assert_eq!(
        pairs,
        vec![
            (None, "v2".to_string()),
            (Some(b"k0".to_vec()), "v0".to_string()),
            (Some(b"k1".to_vec()), "v1".to_string()),
        ]
    );
    Ok(())
}

fn malformed_pipeline(broker: &Broker, on_error: &str, out: &Path) -> String {
    format!(
        r#"name = "kafka-malformed"
trigger = "available_now"
{}
[[sink]]
type = "file"
path = "{}"
format = "json"
"#,
        json_source(broker, "mixed", &format!("on_error = \"{on_error}\"")),
        out.display()
    )
}

#[test]
fn malformed_json_records_fail_the_pipeline_or_are_skipped_or_dead_lettered_with_topic_partition_and_offset()
-> TestResult {
    let broker = Broker::start();
    broker.create_topic("mixed", 1);
    let good = reading_json(1);
    let records: Vec<Record<'_>> = vec![
        (0, None, good.as_bytes(), None),
        (0, None, b"{\"time\": ".as_slice(), None),
        (0, None, good.as_bytes(), None),
        (
            0,
            None,
            b"{\"time\": \"x\", \"sensor\": \"s\", \"value\": \"not a number\"}".as_slice(),
            None,
        ),
        (0, None, good.as_bytes(), None),
    ];
    broker.produce("mixed", &records);

    // fail: the pipeline stops, naming the first bad record.
    let dir = tempfile::tempdir()?;
    let file = pipeline_file(
        dir.path(),
        "p.toml",
        &malformed_pipeline(&broker, "fail", &dir.path().join("out")),
    );
    let mut weir = weir_run(dir.path(), &file);
    let status = weir.wait_exit(Duration::from_secs(60));
    assert!(!status.success());
    assert!(
        weir.stderr().contains("topic mixed partition 0 (offset 1)"),
        "{}",
        weir.stderr()
    );

    // skip: the three good rows, two counted as skipped.
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("out");
    let file = pipeline_file(
        dir.path(),
        "p.toml",
        &malformed_pipeline(&broker, "skip", &out),
    );
    let weir = run_to_end(dir.path(), &file);
    let rows: usize = parts(&out).iter().map(|(_, r)| r.len()).sum();
    assert_eq!(rows, 3);
    assert!(
        weir.stderr().contains("2 malformed record(s) skipped"),
        "{}",
        weir.stderr()
    );

    // dead_letter: the same rows, and both bad records written with where they came from.
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("out");
    let file = pipeline_file(
        dir.path(),
        "p.toml",
        &malformed_pipeline(&broker, "dead_letter", &out),
    );
    run_to_end(dir.path(), &file);
    let rows: usize = parts(&out).iter().map(|(_, r)| r.len()).sum();
    assert_eq!(rows, 3);
    let letters_dir = dir.path().join("state/dead_letter/kafka-malformed");
    let mut letters = Vec::new();
    for entry in std::fs::read_dir(&letters_dir)? {
        for line in std::fs::read_to_string(entry?.path())?.lines() {
            letters.push(serde_json::from_str::<serde_json::Value>(line)?);
        }
    }
    let mut located: Vec<(String, i64, i64, String)> = letters
        .iter()
        .map(|l| {
            (
                l["topic"].as_str().unwrap_or_default().to_string(),
                l["partition"].as_i64().unwrap_or(-1),
                l["offset"].as_i64().unwrap_or(-1),
                l["source"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    located.sort();
    assert_eq!(
        located,
        vec![
            ("mixed".to_string(), 0, 1, "kafka".to_string()),
            ("mixed".to_string(), 0, 3, "kafka".to_string()),
        ]
    );
    assert_eq!(letters[0]["raw"].as_str(), Some("{\"time\": "));
    Ok(())
}

#[test]
fn csv_values_with_a_custom_delimiter_decode_one_record_each_and_values_holding_no_or_two_records_are_dead_lettered()
-> TestResult {
    let broker = Broker::start();
    broker.create_topic("csv", 1);
    let values: [&[u8]; 6] = [
        b"2025-12-01T00:00:01Z;sensor_1;5",
        // Quoted: a delimiter and a line break inside a field are data.
        b"2025-12-01T00:00:02Z;'sensor;2\nnorth';7\n",
        b"2025-12-01T00:00:03Z;sensor_3;8\n2025-12-01T00:00:04Z;sensor_3;9",
        b"2025-12-01T00:00:05Z;sensor_1",
        b"2025-12-01T00:00:06Z;sensor_1;many",
        b"2025-12-01T00:00:07Z;sensor_2;11",
    ];
    let records: Vec<Record<'_>> = values.iter().map(|v| (0, None, *v, None)).collect();
    broker.produce("csv", &records);

    let dir = tempfile::tempdir()?;
    let out = dir.path().join("out");
    let file = pipeline_file(
        dir.path(),
        "p.toml",
        &format!(
            r#"name = "kafka-csv"
trigger = "available_now"

[source]
type = "kafka"
bootstrap_servers = "{}"
subscribe = ["csv"]
starting_offsets = "earliest"
format = "csv"
delimiter = ";"
quote = "'"
include_timestamp = true
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

[[sink]]
type = "file"
path = "{}"
format = "json"
"#,
            broker.bootstrap,
            out.display()
        ),
    );
    run_to_end(dir.path(), &file);
    let mut rows: Vec<(String, i64, bool)> = parts(&out)
        .into_iter()
        .flat_map(|(_, rows)| rows)
        .map(|r| {
            (
                r["sensor"].as_str().unwrap_or_default().to_string(),
                r["value"].as_i64().unwrap_or(-1),
                r["timestamp"].is_string(),
            )
        })
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        vec![
            ("sensor;2\nnorth".to_string(), 7, true),
            ("sensor_1".to_string(), 5, true),
            ("sensor_2".to_string(), 11, true),
        ]
    );
    let letters_dir = dir.path().join("state/dead_letter/kafka-csv");
    let mut offsets = Vec::new();
    for entry in std::fs::read_dir(&letters_dir)? {
        for line in std::fs::read_to_string(entry?.path())?.lines() {
            let letter: serde_json::Value = serde_json::from_str(line)?;
            offsets.push(letter["offset"].as_i64().unwrap_or(-1));
        }
    }
    offsets.sort();
    assert_eq!(offsets, vec![2, 3, 4]);
    Ok(())
}

/// Waits until `done()` holds, or panics naming `what`.
pub(crate) fn wait_until(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !done() {
        assert!(Instant::now() < end, "{what}: not within {deadline:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn values_in(out: &Path) -> Vec<String> {
    let mut v: Vec<String> = parts(out)
        .into_iter()
        .flat_map(|(_, rows)| rows)
        .map(|r| r["value"].as_str().unwrap_or_default().to_string())
        .collect();
    v.sort();
    v
}

/// Starts `weir run` on a pipeline reading `topics` (a subscribe line) from the earliest
/// offsets as text, into JSON files in `<dir>/out`.
fn run_text_lines(broker: &Broker, dir: &Path, topics: &str) -> Weir {
    let file = pipeline_file(
        dir,
        "p.toml",
        &format!(
            r#"name = "kafka-lines"

[source]
type = "kafka"
bootstrap_servers = "{}"
{topics}
starting_offsets = "earliest"
format = "text"

[[sink]]
type = "file"
path = "{}"
format = "json"
"#,
            broker.bootstrap,
            dir.join("out").display()
        ),
    );
    weir_run(dir, &file)
}

#[test]
fn subscribe_pattern_reads_topics_created_after_the_pipeline_started() -> TestResult {
    let broker = Broker::start();
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("out");
    let weir = run_text_lines(&broker, dir.path(), "subscribe_pattern = \"events-.*\"");
    broker.create_topic("events-a", 2);
    broker.create_topic("other", 1);
    broker.produce("other", &[(0, None, b"not mine".as_slice(), None)]);
    broker.produce(
        "events-a",
        &[
            (0, None, b"a1".as_slice(), None),
            (1, None, b"a2".as_slice(), None),
        ],
    );
    wait_until("events-a read", Duration::from_secs(30), || {
        values_in(&out).len() == 2
    });
    broker.create_topic("events-b", 1);
    broker.produce("events-b", &[(0, None, b"b1".as_slice(), None)]);
    wait_until("events-b read", Duration::from_secs(30), || {
        values_in(&out).len() == 3
    });
    assert_eq!(values_in(&out), vec!["a1", "a2", "b1"]);
    drop(weir);
    Ok(())
}

#[test]
fn a_broker_that_stops_answering_is_waited_for_and_the_pipeline_resumes_without_loss_or_duplicates_committing_its_offsets_to_the_group()
-> TestResult {
    let broker = Broker::start();
    broker.create_topic("lines", 1);
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("out");
    let weir = run_text_lines(&broker, dir.path(), "subscribe = [\"lines\"]");
    let first: Vec<String> = (0..100).map(|i| format!("line-{i:04}")).collect();
    let records: Vec<Record<'_>> = first
        .iter()
        .map(|v| (0, None, v.as_bytes(), None))
        .collect();
    broker.produce("lines", &records);
    wait_until("the first lines", Duration::from_secs(30), || {
        values_in(&out).len() == 100
    });

    broker.pause();
    weir.wait_for("waiting for broker", Duration::from_secs(60), |_, err| {
        err.contains("waiting for broker")
    });
    broker.resume();
    let second: Vec<String> = (100..200).map(|i| format!("line-{i:04}")).collect();
    let records: Vec<Record<'_>> = second
        .iter()
        .map(|v| (0, None, v.as_bytes(), None))
        .collect();
    broker.produce("lines", &records);
    wait_until(
        "the lines after the outage",
        Duration::from_secs(60),
        || values_in(&out).len() >= 200,
    );
    let expected: Vec<String> = (0..200).map(|i| format!("line-{i:04}")).collect();
    assert_eq!(values_in(&out), expected);
    // Lag tools see the pipeline: its group (weir-<pipeline>) has committed the end offset.
    wait_until(
        "the group's committed offset",
        Duration::from_secs(30),
        || broker.committed("weir-kafka-lines", "lines", 0) == Some(200),
    );
    drop(weir);
    Ok(())
}

/// A small deterministic generator for kill moments.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

#[test]
fn kafka_to_windowed_counts_survives_twenty_kill_9s_with_the_file_sink_exactly_once_and_every_window_in_kafka()
-> TestResult {
    let broker = Broker::start();
    broker.create_topic("readings", 3);
    broker.create_topic("windows", 1);
    const N: i64 = 12_000;
    produce_readings(&broker, "readings", 3, 0, N);

    let dir = tempfile::tempdir()?;
    let out = dir.path().join("out");
    let file = pipeline_file(
        dir.path(),
        "p.toml",
        &format!(
            r#"name = "kafka-exactly-once"
output_mode = "append"
{}
[aggregate]
group_by = ["sensor"]
window = {{ column = "time", size = "10s" }}
watermark = "5s"
functions = [{{ fn = "count" }}, {{ fn = "sum", column = "value" }}]

[[sink]]
type = "kafka"
bootstrap_servers = "{}"
topic = "windows"
key_column = "sensor"
exactly_once = true

[[sink]]
type = "file"
path = "{}"
format = "json"
"#,
            json_source(&broker, "readings", "max_offsets_per_trigger = 300"),
            broker.bootstrap,
            out.display()
        ),
    );
    let state = dir.path().join("state");
    let args = [
        "run".to_string(),
        "--state-dir".into(),
        state.to_string_lossy().into_owned(),
        file.to_string_lossy().into_owned(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut moments = Lcg(20261203);
    for _ in 0..20 {
        let weir = Weir::start(&args);
        // The kill lands anywhere: before the first batch, inside a Kafka transaction, between
        // Kafka's commit and weir's.
        std::thread::sleep(Duration::from_millis(300 + moments.below(900)));
        weir.kill9();
    }
    // Every window the final watermark closes: event times reach START + N * 50 ms.
    let last_time = (0..N).map(|i| reading(i).0).max().unwrap_or(0);
    let watermark = last_time - 5_000;
    let expected: BTreeMap<(i64, String), (i64, i64)> = direct_windows(N)
        .into_iter()
        .filter(|((start, _), _)| start + WINDOW_MS <= watermark)
        .collect();
    let weir = Weir::start(&args);
    wait_until(
        "every closed window in the file sink",
        Duration::from_secs(120),
        || {
            let rows: Vec<serde_json::Value> =
                parts(&out).into_iter().flat_map(|(_, r)| r).collect();
            rows.len() >= expected.len()
        },
    );
    drop(weir);

    let file_rows: Vec<serde_json::Value> = parts(&out).into_iter().flat_map(|(_, r)| r).collect();
    assert_eq!(windows_of(&file_rows), expected);
    // The Kafka sink ran with exactly_once. Every window is there with its right value; this
    // broker may show a window twice, because Tansu 0.6.0 lets read_committed consumers see
    // the records of a transaction that a killed weir left open (a new producer with the same
    // transactional.id fences the old one but does not abort its transaction, which Kafka
    // does). That a batch Kafka committed is not written again is checked, without kills, by
    // `an_exactly_once_sink_restarted_after_kafkas_commit_does_not_write_that_batch_again`.
    let mut in_kafka: BTreeMap<(i64, String), Vec<(i64, i64)>> = BTreeMap::new();
    for record in broker.read_all("windows") {
        let row: serde_json::Value = serde_json::from_str(&record.text())?;
        let start = ms(row["window"]["start"].as_str().unwrap_or_default());
        let sensor = row["sensor"].as_str().unwrap_or_default().to_string();
        let value = (
            row["count"].as_i64().unwrap_or(-1),
            row["sum(value)"].as_i64().unwrap_or(-1),
        );
        in_kafka.entry((start, sensor)).or_default().push(value);
    }
    for (window, value) in &expected {
        let copies = in_kafka.get(window).cloned().unwrap_or_default();
        assert!(!copies.is_empty(), "window {window:?} missing from Kafka");
        assert!(
            copies.iter().all(|c| c == value),
            "window {window:?}: {copies:?}, expected {value:?}"
        );
    }
    assert!(
        in_kafka.keys().all(|w| expected.contains_key(w)),
        "Kafka holds a window that is not closed yet"
    );
    Ok(())
}

#[test]
fn an_exactly_once_sink_restarted_after_kafkas_commit_does_not_write_that_batch_again() -> TestResult
{
    use arrow::array::StringArray;
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;
    use std::sync::Arc;
    use weir::config::{KafkaDestination, KafkaSinkSpec, KafkaValue};
    use weir::sinks::{KafkaSink, Sink};

    let broker = Broker::start();
    broker.create_topic("out", 1);
    let spec = KafkaSinkSpec {
        bootstrap_servers: broker.bootstrap.clone(),
        destination: KafkaDestination::Topic("out".into()),
        key_column: None,
        value: KafkaValue::Column("v".into()),
        headers_column: None,
        timestamp_column: None,
        exactly_once: true,
        transactional_id: None,
        compression: None,
        options: Default::default(),
        key_columns: Vec::new(),
        create_topic_like: None,
        column_locations: Default::default(),
    };
    let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Utf8, false)]));
    let rows = |values: &[&str]| -> Result<Vec<RecordBatch>, arrow::error::ArrowError> {
        Ok(vec![RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(values.to_vec()))],
        )?])
    };
    let texts = || -> Vec<String> { broker.read_all("out").iter().map(|c| c.text()).collect() };

    let mut first = KafkaSink::new(spec.clone(), "p", 1, "c0ffee00", None);
    first.write_batch(0, &schema, &rows(&["a1", "a2"])?)?;
    first.write_batch(1, &schema, &rows(&["b1"])?)?;
    // weir stops after Kafka committed batch 1 and before its own commit: batch 1 is replayed
    // by a new process, with a new producer.
    drop(first);
    let mut second = KafkaSink::new(spec.clone(), "p", 1, "c0ffee00", None);
    second.write_batch(1, &schema, &rows(&["b1"])?)?;
    second.write_batch(2, &schema, &rows(&["c1"])?)?;
    // An empty batch commits a transaction too, so its replay is recognised as well.
    second.write_batch(3, &schema, &[])?;
    second.write_batch(3, &schema, &[])?;
    assert_eq!(texts(), vec!["a1", "a2", "b1", "c1"]);

    // After `weir state reset` (a new checkpoint id) batch ids start from 0 again: written.
    let mut third = KafkaSink::new(spec, "p", 1, "0badcafe", None);
    third.write_batch(0, &schema, &rows(&["after reset"])?)?;
    assert_eq!(texts(), vec!["a1", "a2", "b1", "c1", "after reset"]);
    Ok(())
}

/// The `(partition, offset)` of every row a raw-format run wrote to `out`, sorted.
fn offsets_read(out: &Path) -> Vec<(i64, i64)> {
    let mut read: Vec<(i64, i64)> = parts(out)
        .into_iter()
        .flat_map(|(_, rows)| rows)
        .map(|r| {
            (
                r["partition"].as_i64().unwrap_or(-1),
                r["offset"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    read.sort();
    read
}

#[test]
fn per_partition_starting_offsets_and_latest_choose_the_first_record_read() -> TestResult {
    let broker = Broker::start();
    broker.create_topic("positions", 2);
    let records: Vec<Record<'_>> = (0..10)
        .flat_map(|_| (0..2).map(|p| (p, None, b"x".as_slice(), None)))
        .collect();
    broker.produce("positions", &records);
    let run = |name: &str, start: &str| -> Result<Vec<(i64, i64)>, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let out = dir.path().join("out");
        let file = pipeline_file(
            dir.path(),
            "p.toml",
            &format!(
                r#"name = "{name}"
trigger = "available_now"

[source]
type = "kafka"
bootstrap_servers = "{}"
subscribe = ["positions"]
{start}

[[sink]]
type = "file"
path = "{}"
format = "json"
"#,
                broker.bootstrap,
                out.display()
            ),
        );
        run_to_end(dir.path(), &file);
        Ok(offsets_read(&out))
    };
    // (starting_timestamp is not checked here: Tansu 0.6.0 answers every ListOffsets by
    // timestamp with offset 0.)
    // Partition 0 from offset 8, partition 1 from the earliest.
    let by_offset = run(
        "by-offset",
        "starting_offsets = { positions = { \"0\" = 8, \"1\" = -2 } }",
    )?;
    let expected: Vec<(i64, i64)> = [(0, 8), (0, 9)]
        .into_iter()
        .chain((0..10).map(|i| (1, i)))
        .collect();
    assert_eq!(by_offset, expected);
    // Latest (the default): nothing that was there before the start.
    assert_eq!(run("latest", "")?, Vec::<(i64, i64)>::new());
    Ok(())
}

#[test]
fn include_headers_gives_sparks_headers_column_and_the_kafka_sinks_headers_column_writes_them_back()
-> TestResult {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{BaseRecord, Producer};
    let broker = Broker::start();
    broker.create_topic("with-headers", 1);
    broker.create_topic("headers-back", 1);
    let producer = broker.producer();
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "trace",
            value: Some("abc"),
        })
        .insert(Header {
            key: "empty",
            value: None::<&str>,
        });
    let record: BaseRecord<'_, (), str> = BaseRecord::to("with-headers")
        .partition(0)
        .payload("v")
        .headers(headers);
    if let Err((err, _)) = producer.send(record) {
        return Err(err.into());
    }
    producer.flush(Duration::from_secs(30))?;
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("out");
    let file = pipeline_file(
        dir.path(),
        "p.toml",
        &format!(
            r#"name = "kafka-headers"
trigger = "available_now"

[source]
type = "kafka"
bootstrap_servers = "{0}"
subscribe = ["with-headers"]
starting_offsets = "earliest"
include_headers = true

[[sink]]
type = "file"
path = "{1}"
format = "json"

[[sink]]
type = "kafka"
bootstrap_servers = "{0}"
topic = "headers-back"
value_column = "value"
headers_column = "headers"
"#,
            broker.bootstrap,
            out.display()
        ),
    );
    run_to_end(dir.path(), &file);
    let rows: Vec<serde_json::Value> = parts(&out).into_iter().flat_map(|(_, r)| r).collect();
    assert_eq!(rows.len(), 1);
    let headers = rows[0]["headers"]
        .as_array()
        .ok_or("headers is not a list")?;
    let keys: Vec<&str> = headers.iter().filter_map(|h| h["key"].as_str()).collect();
    assert_eq!(keys, vec!["trace", "empty"]);
    // Binary values are written as hex by Arrow's JSON writer; a missing value is left out.
    assert_eq!(headers[0]["value"].as_str(), Some("616263"));
    assert!(
        headers[1]
            .get("value")
            .is_none_or(serde_json::Value::is_null)
    );
    // The Kafka sink writes Spark's headers column back as the records' headers.
    let back = broker.read_all("headers-back");
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].text(), "v");
    assert_eq!(
        back[0].headers,
        vec![
            ("trace".to_string(), Some(b"abc".to_vec())),
            ("empty".to_string(), None),
        ]
    );
    Ok(())
}

#[test]
fn a_daemon_whose_broker_is_not_there_yet_shows_waiting_for_broker_runs_the_rest_and_reads_once_it_starts()
-> TestResult {
    use crate::daemon_harness::{Daemon, SOON, counting_pipeline, find};
    let root = tempfile::tempdir()?;
    let daemon = Daemon::start(root.path(), &[]);
    let port = Broker::free_port();
    daemon.write_pipeline(
        "ticks.toml",
        &counting_pipeline("ticks", "ticks", "200ms", ""),
    );
    daemon.write_pipeline(
        "from-kafka.toml",
        &format!(
            r#"name = "from-kafka"

[source]
type = "kafka"
bootstrap_servers = "127.0.0.1:{port}"
subscribe = ["late"]
starting_offsets = "earliest"
format = "text"

[[sink]]
type = "file"
path = "../out/from-kafka"
format = "json"
"#
        ),
    );
    let waiting = format!("waiting for broker 127.0.0.1:{port}");
    daemon.wait_status("the Kafka pipeline waiting for its broker", SOON, |s| {
        s.to_string().contains(&waiting)
    });
    // The other pipeline goes on meanwhile.
    let before = daemon.wait_batches("ticks", 1);
    let ticks = find(&before, "ticks").map_or(0, |p| p["batches"].as_u64().unwrap_or(0));
    daemon.wait_batches("ticks", ticks + 2);

    let broker = Broker::start_on(port);
    broker.create_topic("late", 1);
    broker.produce("late", &[(0, None, b"hello".as_slice(), None)]);
    let out = daemon.path("out/from-kafka");
    wait_until(
        "the record from the broker that came",
        Duration::from_secs(60),
        || values_in(&out) == vec!["hello".to_string()],
    );
    daemon.wait_status("the waiting status gone", SOON, |s| {
        !s.to_string().contains(&waiting)
    });
    Ok(())
}

#[test]
fn min_offsets_per_trigger_holds_a_small_batch_back_until_max_trigger_delay_has_passed()
-> TestResult {
    let broker = Broker::start();
    broker.create_topic("trickle", 1);
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("out");
    let file = pipeline_file(
        dir.path(),
        "p.toml",
        &format!(
            r#"name = "kafka-min-offsets"

[source]
type = "kafka"
bootstrap_servers = "{}"
subscribe = ["trickle"]
starting_offsets = "earliest"
format = "text"
min_offsets_per_trigger = 10
max_trigger_delay = "10s"

[[sink]]
type = "file"
path = "{}"
format = "json"
"#,
            broker.bootstrap,
            out.display()
        ),
    );
    let weir = weir_run(dir.path(), &file);
    // The pipeline has started (its batch 0 only records where the partition starts).
    weir.wait_for("the start", Duration::from_secs(30), |_, err| {
        err.contains("starting with a fresh checkpoint")
    });
    let produced = Instant::now();
    let records: Vec<Record<'_>> = (0..5).map(|_| (0, None, b"x".as_slice(), None)).collect();
    broker.produce("trickle", &records);
    wait_until("the five records", Duration::from_secs(60), || {
        values_in(&out).len() == 5
    });
    // Five is fewer than ten: the batch waited for the delay, counted from the first look
    // after batch 0 — just before the records were produced.
    let waited = produced.elapsed();
    assert!(waited >= Duration::from_secs(8), "read after {waited:?}");
    // Ten or more go at once.
    let produced = Instant::now();
    let records: Vec<Record<'_>> = (0..12).map(|_| (0, None, b"y".as_slice(), None)).collect();
    broker.produce("trickle", &records);
    wait_until("the twelve records", Duration::from_secs(30), || {
        values_in(&out).len() == 17
    });
    assert!(
        produced.elapsed() < Duration::from_secs(8),
        "twelve records waited {:?}",
        produced.elapsed()
    );
    drop(weir);
    Ok(())
}

#[test]
fn a_topic_deleted_and_made_again_fails_the_pipeline_unless_fail_on_data_loss_is_off() -> TestResult
{
    let broker = Broker::start();
    broker.create_topic("remade", 1);
    let five: Vec<Record<'_>> = (0..5).map(|_| (0, None, b"old".as_slice(), None)).collect();
    broker.produce("remade", &five);
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("out");
    let pipeline = |fail_on_data_loss: bool| {
        format!(
            r#"name = "kafka-remade"
trigger = "available_now"

[source]
type = "kafka"
bootstrap_servers = "{}"
subscribe = ["remade"]
starting_offsets = "earliest"
format = "text"
fail_on_data_loss = {fail_on_data_loss}

[[sink]]
type = "file"
path = "{}"
format = "json"
"#,
            broker.bootstrap,
            out.display()
        )
    };
    let file = pipeline_file(dir.path(), "p.toml", &pipeline(true));
    run_to_end(dir.path(), &file);
    assert_eq!(values_in(&out).len(), 5);

    // The topic is deleted and made again with fewer records than the pipeline has read.
    broker.delete_topic("remade");
    broker.create_topic("remade", 1);
    let two: Vec<Record<'_>> = (0..2).map(|_| (0, None, b"new".as_slice(), None)).collect();
    broker.produce("remade", &two);
    let mut weir = weir_run(dir.path(), &file);
    assert!(!weir.wait_exit(Duration::from_secs(60)).success());
    assert!(
        weir.stderr()
            .contains("data loss: remade partition 0 ends at offset 2, before offset 5"),
        "{}",
        weir.stderr()
    );

    // With fail_on_data_loss = false it warns and goes on from where the topic ends now.
    let file = pipeline_file(dir.path(), "p.toml", &pipeline(false));
    let weir = run_to_end(dir.path(), &file);
    assert!(
        weir.stderr().contains("going on from offset 2"),
        "{}",
        weir.stderr()
    );
    let more: Vec<Record<'_>> = (0..3)
        .map(|_| (0, None, b"newer".as_slice(), None))
        .collect();
    broker.produce("remade", &more);
    run_to_end(dir.path(), &file);
    let mut values = values_in(&out);
    values.dedup();
    assert_eq!(values, vec!["newer", "old"]);
    assert_eq!(values_in(&out).len(), 8);
    Ok(())
}

#[test]
fn each_batch_held_back_by_max_offsets_per_trigger_records_the_records_still_behind_it()
-> TestResult {
    let broker = Broker::start();
    broker.create_topic("behind", 1);
    let values: Vec<String> = (0..3000).map(|i| i.to_string()).collect();
    let records: Vec<Record<'_>> = values
        .iter()
        .map(|v| (0, None, v.as_bytes(), None))
        .collect();
    broker.produce("behind", &records);
    let dir = tempfile::tempdir()?;
    let file = pipeline_file(
        dir.path(),
        "p.toml",
        &format!(
            r#"name = "kafka-behind"
trigger = "available_now"

[source]
type = "kafka"
bootstrap_servers = "{}"
subscribe = ["behind"]
starting_offsets = "earliest"
max_offsets_per_trigger = 1000

[[sink]]
type = "null"
"#,
            broker.bootstrap
        ),
    );
    // The backlog is in each batch's progress, which the log shows at debug level.
    let mut weir = Weir::start_with(
        &[
            "run",
            "--state-dir",
            &dir.path().join("state").to_string_lossy(),
            &file.to_string_lossy(),
        ],
        None,
        |cmd| {
            cmd.env("WEIR_LOG", "debug");
        },
    );
    let status = weir.wait_exit(Duration::from_secs(120));
    assert!(status.success(), "{}", weir.stderr());
    let log = weir.stderr();
    let backlogs: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("batch committed") && !l.contains(" rows=0 "))
        .filter_map(|l| l.split("source_backlog=").nth(1)?.split_whitespace().next())
        .collect();
    assert_eq!(
        backlogs,
        vec!["Some(2000)", "Some(1000)", "Some(0)"],
        "{log}"
    );
    Ok(())
}
