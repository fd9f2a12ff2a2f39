//! Kafka benchmark, against a real Kafka-protocol broker on loopback (Tansu, in memory, fetched
//! by `scripts/kafka-broker` and started here on a free port):
//!
//! 1. N JSON readings produced to a 3-partition topic (the producer's rate is printed);
//! 2. a plain librdkafka consumer reading them all (the limit for any Kafka source here);
//! 3. weir: `kafka (json) → 10 s windowed average per sensor → null` under `available_now`,
//!    through the real micro-batch loop, aggregation and RocksDB checkpoint;
//! 4. the same pipeline from `datagen` with the same columns;
//! 5. weir's Kafka sink: `datagen → kafka` (JSON values) at least once, and exactly once;
//! 6. `kafka (json) → null` alone, then run by 1 and 2 pipelines (each its own store, as
//!    separate daemons would be) sharing the topic's partitions through one consumer group;
//! 7. the windowed average on shared partitions into Kafka exactly once (a task per partition,
//!    its changelog written in the transactions), by 1 and 2 pipelines;
//! 8. the same on a 6-partition topic keyed by sensor, by 1 pipeline with `tasks_per_daemon`
//!    1 and 2 and by 2 and 3 pipelines, then not keyed, through the repartition topic;
//! 9. 4 tasks' restore of 256 MiB of state from their changelog, one at a time and 4 at a
//!    time; then the same state kept as standby copies (`[aggregate] standby = true`): how long
//!    the follower takes to catch up, and how long the hand-over of the 4 partitions takes
//!    when the group gives them to the daemon.
//!
//! Run: `cargo bench -p weir --bench kafka` (`WEIR_BENCH_KAFKA_ROWS=200000` for fewer rows;
//! `WEIR_BENCH_KAFKA_TASKS_ONLY=1` for section 8 alone, `WEIR_BENCH_KAFKA_RESTORE_ONLY=1` for
//! section 9 alone).
//! The numbers in BENCHMARKS.md come from this.

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir::assemble::{Environment, PrepareContext, open, prepare};
use weir::kafka::changelog::ChangelogTopic;
use weir::state::{RocksStore, SharedStore};

const PARTITIONS: i32 = 3;
const START_MS: i64 = 1_764_547_200_000;

struct Broker {
    child: Child,
    bin: PathBuf,
    bootstrap: String,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_broker() -> Broker {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = Command::new(repo.join("scripts/kafka-broker"))
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|err| panic!("scripts/kafka-broker: {err}"));
    assert!(output.status.success(), "scripts/kafka-broker failed");
    let bin = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim().to_string());
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|err| panic!("no free port: {err}"));
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(&bin)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|err| panic!("starting the broker: {err}"));
    let bootstrap = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(&bootstrap).is_err() {
        assert!(Instant::now() < deadline, "the broker did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    Broker {
        child,
        bin,
        bootstrap,
    }
}

fn create_topic(broker: &Broker, topic: &str, partitions: i32) {
    let status = Command::new(&broker.bin)
        .args([
            "topic",
            "create",
            "--broker",
            &format!("tcp://{}", broker.bootstrap),
            "--partitions",
            &partitions.to_string(),
            topic,
        ])
        .stdout(Stdio::null())
        .status();
    assert!(status.is_ok_and(|s| s.success()), "creating {topic}");
}

fn reading(i: u64) -> String {
    let t = START_MS + (i / 30) as i64 * 1000;
    let time = chrono::DateTime::from_timestamp_millis(t)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    format!(
        r#"{{"time":"{time}","sensor":"sensor_{}","value":{}}}"#,
        i % 3 + 1,
        (i * 7919) % 11
    )
}

/// The benchmark's producer: idempotent, batching 5 ms.
fn bench_producer(broker: &Broker) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .create()
        .unwrap_or_else(|err| panic!("producer: {err}"))
}

/// Sends `record`, polling while the producer's queue is full.
fn send_waiting<K, P>(producer: &BaseProducer, mut record: BaseRecord<'_, K, P>)
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    loop {
        match producer.send(record) {
            Ok(()) => break,
            Err((_, back)) => {
                producer.poll(Duration::from_millis(5));
                record = back;
            }
        }
    }
}

/// Produces `rows` readings round robin; returns (bytes of values, seconds). Each partition's
/// last record goes alone: Tansu 0.6.0 reports the high watermark as the last record batch's
/// first offset + 1.
fn produce(broker: &Broker, topic: &str, rows: u64) -> (u64, f64) {
    let producer = bench_producer(broker);
    let started = Instant::now();
    let mut bytes = 0u64;
    let lasts = rows.saturating_sub(PARTITIONS as u64);
    let send = |i: u64, bytes: &mut u64| {
        let value = reading(i);
        *bytes += value.len() as u64;
        let record: BaseRecord<'_, (), str> = BaseRecord::to(topic)
            .partition((i % PARTITIONS as u64) as i32)
            .payload(&value);
        send_waiting(&producer, record);
    };
    for i in 0..lasts {
        send(i, &mut bytes);
    }
    producer
        .flush(Duration::from_secs(120))
        .unwrap_or_else(|err| panic!("flush: {err}"));
    for i in lasts..rows {
        send(i, &mut bytes);
    }
    producer
        .flush(Duration::from_secs(120))
        .unwrap_or_else(|err| panic!("flush: {err}"));
    (bytes, started.elapsed().as_secs_f64())
}

/// A plain librdkafka consumer reading every record of `topic`: (records, seconds). `extra`
/// adds properties.
fn plain_consumer(broker: &Broker, topic: &str, extra: &[(&str, &str)]) -> (u64, f64) {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &broker.bootstrap)
        .set("group.id", "bench-plain")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    let consumer: BaseConsumer = config
        .create()
        .unwrap_or_else(|err| panic!("consumer: {err}"));
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        let _ = tpl.add_partition_offset(topic, p, Offset::Beginning);
    }
    let started = Instant::now();
    consumer
        .assign(&tpl)
        .unwrap_or_else(|err| panic!("assign: {err}"));
    let (mut records, mut ends) = (0u64, 0);
    while ends < PARTITIONS {
        match consumer.poll(Duration::from_secs(10)) {
            Some(Ok(_)) => records += 1,
            Some(Err(KafkaError::PartitionEOF(_))) => ends += 1,
            Some(Err(err)) => panic!("consume: {err}"),
            None => panic!("consume: nothing for 10 s"),
        }
    }
    (records, started.elapsed().as_secs_f64())
}

/// Runs one pipeline file's text to its end: (rows read, seconds).
fn run(toml: &str, store: &SharedStore, state_dir: &Path) -> (u64, f64) {
    let plan = weir::config::parse_pipeline(Path::new("/bench/p.toml"), toml)
        .unwrap_or_else(|err| panic!("{err}"));
    let ctx = PrepareContext {
        plugins: None,
        store: Some(store),
        limits: Default::default(),
    };
    let prepared = prepare(plan, ctx).unwrap_or_else(|err| panic!("{err}"));
    let env = Environment {
        store: store.clone(),
        state_dir: state_dir.to_path_buf(),
        label_console: false,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|err| panic!("runtime: {err}"));
    runtime.block_on(async move {
        let pipeline = open(&prepared, &env).unwrap_or_else(|err| panic!("{err}"));
        let started = Instant::now();
        let handle = pipeline.spawn();
        let monitor = handle.monitor.clone();
        let exit = handle.join().await;
        if let Some(failure) = exit.failure() {
            panic!("pipeline failed: {failure}");
        }
        let rows = monitor.recent().iter().map(|b| b.num_input_rows).sum();
        (rows, started.elapsed().as_secs_f64())
    })
}

/// Runs `members` copies of one pipeline at once, each with a store and state folder of its
/// own under `root` (as separate daemons), to their end: (rows read by all, seconds from the
/// start to the last end — the group's join included).
fn run_members(members: usize, toml: &str, root: &Path) -> (u64, f64) {
    let (runtime, pipelines) = prepare_members(members, toml, root);
    runtime.block_on(async move {
        let started = Instant::now();
        let mut handles = Vec::new();
        for (prepared, env) in &pipelines {
            let pipeline = open(prepared, env).unwrap_or_else(|err| panic!("{err}"));
            handles.push(pipeline.spawn());
        }
        let monitors: Vec<_> = handles.iter().map(|h| h.monitor.clone()).collect();
        for handle in handles {
            if let Some(failure) = handle.join().await.failure() {
                panic!("pipeline failed: {failure}");
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        let rows = monitors
            .iter()
            .flat_map(|m| m.recent())
            .map(|b| b.num_input_rows)
            .sum();
        (rows, seconds)
    })
}

const COLUMNS: &str = r#"
[[source.column]]
name = "time"
type = "timestamp"
{time}

[[source.column]]
name = "sensor"
type = "string"
{sensor}

[[source.column]]
name = "value"
type = "long"
{value}
"#;

const AGGREGATE: &str = r#"
[aggregate]
group_by = ["sensor"]
window = { column = "time", size = "10s" }
watermark = "10s"
functions = [{ fn = "avg", column = "value" }]
"#;

fn datagen_source(name: &str, rows: u64) -> String {
    format!(
        "name = \"{name}\"\ntrigger = \"available_now\"\n[source]\ntype = \"datagen\"\nrows_per_second = 1000000000\nrows = {rows}\nmax_rows_per_batch = 100000\nstart_timestamp = {START_MS}\n{}",
        COLUMNS
            .replace("{time}", "expr = \"now\"")
            .replace(
                "{sensor}",
                "values = [\"sensor_1\", \"sensor_2\", \"sensor_3\"]"
            )
            .replace("{value}", "min = 0\nmax = 10\nrandom = true")
    )
}

fn main() {
    let rows: u64 = std::env::var("WEIR_BENCH_KAFKA_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let broker = start_broker();
    if std::env::var_os("WEIR_BENCH_KAFKA_TASKS_ONLY").is_some() {
        tasks_bench(&broker, rows);
        return;
    }
    if std::env::var_os("WEIR_BENCH_KAFKA_RESTORE_ONLY").is_some() {
        restore_bench(&broker);
        return;
    }
    create_topic(&broker, "readings", PARTITIONS);
    let (bytes, secs) = produce(&broker, "readings", rows);
    println!(
        "produce (librdkafka, idempotent, linger 5 ms): {:.0} k records/s, {:.1} MB/s ({rows} records, {:.1} MB of JSON values)",
        rows as f64 / secs / 1e3,
        bytes as f64 / secs / 1e6,
        bytes as f64 / 1e6
    );

    let (read, secs) = plain_consumer(&broker, "readings", &[]);
    assert_eq!(read, rows, "the plain consumer read every record");
    println!(
        "plain librdkafka consumer: {:.2} M records/s, {:.0} MB/s",
        rows as f64 / secs / 1e6,
        bytes as f64 / secs / 1e6
    );

    let state = tempfile::tempdir().unwrap_or_else(|err| panic!("tempdir: {err}"));
    let store: SharedStore = Arc::new(
        RocksStore::open(&state.path().join("db")).unwrap_or_else(|err| panic!("rocksdb: {err}")),
    );
    let kafka_toml = format!(
        "name = \"bench-kafka\"\ntrigger = \"available_now\"\n[source]\ntype = \"kafka\"\nbootstrap_servers = \"{}\"\nsubscribe = [\"readings\"]\nstarting_offsets = \"earliest\"\nmax_offsets_per_trigger = 300000\nformat = \"json\"\ncommit_offsets = false\n{}{AGGREGATE}\n[[sink]]\ntype = \"null\"\n",
        broker.bootstrap,
        COLUMNS
            .replace("{time}", "")
            .replace("{sensor}", "")
            .replace("{value}", "")
    );
    let (read, secs) = run(&kafka_toml, &store, state.path());
    assert_eq!(read, rows, "weir read every record");
    println!(
        "weir kafka (json) -> windowed avg -> null: {:.2} M rows/s, {:.0} MB/s",
        rows as f64 / secs / 1e6,
        bytes as f64 / secs / 1e6
    );
    // The same with librdkafka's own fetch defaults (1 s fetch queue backoff, 500 ms long
    // poll), which weir's source overrides.
    let librdkafka_defaults = kafka_toml.replace(
        "commit_offsets = false\n",
        "commit_offsets = false\n[source.options]\n\"fetch.queue.backoff.ms\" = \"1000\"\n\"fetch.wait.max.ms\" = \"500\"\n",
    ).replace("bench-kafka", "bench-kafka-librdkafka-defaults");
    let (read, secs) = run(&librdkafka_defaults, &store, state.path());
    assert_eq!(read, rows, "weir read every record");
    println!(
        "  the same with librdkafka's fetch defaults: {:.2} M rows/s, {:.0} MB/s",
        rows as f64 / secs / 1e6,
        bytes as f64 / secs / 1e6
    );

    // The source alone: Spark's raw columns, nothing decoded, no aggregation.
    let raw_toml = format!(
        "name = \"bench-kafka-raw\"\ntrigger = \"available_now\"\n[source]\ntype = \"kafka\"\nbootstrap_servers = \"{}\"\nsubscribe = [\"readings\"]\nstarting_offsets = \"earliest\"\nmax_offsets_per_trigger = 300000\ncommit_offsets = false\n[[sink]]\ntype = \"null\"\n",
        broker.bootstrap
    );
    let (read, secs) = run(&raw_toml, &store, state.path());
    assert_eq!(read, rows, "weir read every record");
    println!(
        "weir kafka (raw) -> null: {:.2} M rows/s, {:.0} MB/s",
        rows as f64 / secs / 1e6,
        bytes as f64 / secs / 1e6
    );

    let datagen_toml = format!(
        "{}{AGGREGATE}\n[[sink]]\ntype = \"null\"\n",
        datagen_source("bench-datagen", rows)
    );
    let (read, secs) = run(&datagen_toml, &store, state.path());
    assert_eq!(read, rows);
    println!(
        "weir datagen -> windowed avg -> null (same columns): {:.2} M rows/s",
        rows as f64 / secs / 1e6
    );

    // The plain consumer with the properties weir's source sets.
    let (read, secs) = plain_consumer(
        &broker,
        "readings",
        &[
            ("isolation.level", "read_committed"),
            ("auto.offset.reset", "error"),
            ("enable.auto.offset.store", "false"),
            ("fetch.queue.backoff.ms", "10"),
            ("fetch.wait.max.ms", "50"),
        ],
    );
    assert_eq!(read, rows);
    println!(
        "plain librdkafka consumer with weir's properties: {:.2} M records/s",
        rows as f64 / secs / 1e6
    );

    // The plain consumer again, after weir: the broker's own speed varies between reads.
    let (read, secs) = plain_consumer(&broker, "readings", &[]);
    assert_eq!(read, rows);
    println!(
        "plain librdkafka consumer, again: {:.2} M records/s, {:.0} MB/s",
        rows as f64 / secs / 1e6,
        bytes as f64 / secs / 1e6
    );

    // The source decoding JSON alone, then shared through a consumer group by 1, 2 and 3
    // pipelines with stores of their own (the partitions: see PARTITIONS).
    let plain_json = format!(
        "name = \"bench-json\"\ntrigger = \"available_now\"\n[source]\ntype = \"kafka\"\nbootstrap_servers = \"{}\"\nsubscribe = [\"readings\"]\nstarting_offsets = \"earliest\"\nmax_offsets_per_trigger = 300000\nformat = \"json\"\ncommit_offsets = false\n{}\n[[sink]]\ntype = \"null\"\n",
        broker.bootstrap,
        COLUMNS
            .replace("{time}", "")
            .replace("{sensor}", "")
            .replace("{value}", "")
    );
    let (read, secs) = run(&plain_json, &store, state.path());
    assert_eq!(read, rows, "weir read every record");
    println!(
        "weir kafka (json) -> null, no group: {:.2} M rows/s",
        rows as f64 / secs / 1e6
    );
    // Three members are not run: Tansu 0.6.0 sometimes gives the partitions of two members
    // that leave at once to nobody (the one left keeps its own and is not rebalanced; seen with
    // confluent-kafka alone too), so the run whose last member is left waiting never ends.
    for members in 1..=2 {
        let shared = plain_json
            .replace("commit_offsets = false\n", &format!("group_id = \"bench-shared-{members}\"\n"))
            .replace(
                "[[sink]]",
                "[source.options]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"500\"\n\n[[sink]]",
            );
        let root = state.path().join(format!("shared-{members}"));
        let (read, secs) = run_members(members, &shared, &root);
        assert_eq!(read, rows, "{members} members read every record once");
        println!(
            "weir kafka (json) -> null shared by {members} pipeline(s) in one consumer group: {:.2} M rows/s ({secs:.1} s, the group's join included)",
            rows as f64 / secs / 1e6
        );
    }

    // A windowed aggregation on shared partitions: one task per partition, its state
    // changes written to the changelog in each batch's transaction with the output.
    for members in 1..=2 {
        let out = format!("bench-agg-shared-{members}-out");
        create_topic(&broker, &out, 1);
        let shared = format!(
            "name = \"bench-agg-shared\"\ntrigger = \"available_now\"\n[source]\ntype = \"kafka\"\nbootstrap_servers = \"{servers}\"\nsubscribe = [\"readings\"]\nstarting_offsets = \"earliest\"\nmax_offsets_per_trigger = 300000\nformat = \"json\"\ngroup_id = \"bench-agg-shared-{members}\"\npartitioned_by = [\"sensor\"]\n[source.options]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"500\"\n{}{AGGREGATE}\n[[sink]]\ntype = \"kafka\"\nbootstrap_servers = \"{servers}\"\ntopic = \"{out}\"\nexactly_once = true\n",
            COLUMNS
                .replace("{time}", "")
                .replace("{sensor}", "")
                .replace("{value}", ""),
            servers = broker.bootstrap,
        );
        let root = state.path().join(format!("agg-shared-{members}"));
        let (read, secs) = run_members(members, &shared, &root);
        assert_eq!(read, rows, "{members} members read every record once");
        println!(
            "weir kafka (json) -> windowed avg per partition's task -> kafka (exactly once, changelog in the transaction) shared by {members} pipeline(s): {:.2} M rows/s ({secs:.1} s, the group's join included)",
            rows as f64 / secs / 1e6
        );
    }

    tasks_bench(&broker, rows);
    restore_bench(&broker);

    let sink_rows = rows.min(500_000);
    for (name, exactly_once) in [("bench-sink", false), ("bench-sink-eo", true)] {
        let topic = format!("{name}-out");
        create_topic(&broker, &topic, 1);
        let toml = format!(
            "{}\n[[sink]]\ntype = \"kafka\"\nbootstrap_servers = \"{}\"\ntopic = \"{topic}\"\nexactly_once = {exactly_once}\n",
            datagen_source(name, sink_rows),
            broker.bootstrap
        );
        let (written, secs) = run(&toml, &store, state.path());
        assert_eq!(written, sink_rows);
        println!(
            "weir datagen -> kafka sink (json values, exactly_once = {exactly_once}): {:.0} k records/s",
            sink_rows as f64 / secs / 1e3
        );
    }
}

/// The windowed average on a 6-partition topic shared through a consumer group, as tasks:
/// one pipeline with `tasks_per_daemon` 1 and 2, then 2 and 3 pipelines (each its own store,
/// as separate daemons would be) with one task at a time each; then the same input through the
/// repartition topic (not keyed by sensor), by 1 and 2 pipelines.
fn tasks_bench(broker: &Broker, rows: u64) {
    const TOPIC: &str = "readings-by-sensor";
    const TOPIC_PARTITIONS: u64 = 6;
    create_topic(broker, TOPIC, TOPIC_PARTITIONS as i32);
    // Twelve sensors, sensor s in partition s % 6, as a producer keyed by sensor puts them.
    // The last six records (one per partition) go alone, after a flush: see `produce`.
    let producer = bench_producer(broker);
    let lasts = rows.saturating_sub(TOPIC_PARTITIONS);
    for i in 0..rows {
        if i == lasts {
            producer
                .flush(Duration::from_secs(120))
                .unwrap_or_else(|err| panic!("flush: {err}"));
        }
        let t = START_MS + (i / 120) as i64 * 1000;
        let time = chrono::DateTime::from_timestamp_millis(t)
            .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default();
        let sensor = i % 12;
        let value = format!(
            r#"{{"time":"{time}","sensor":"sensor_{sensor}","value":{}}}"#,
            (i * 7919) % 11
        );
        let record: BaseRecord<'_, (), str> = BaseRecord::to(TOPIC)
            .partition((sensor % TOPIC_PARTITIONS) as i32)
            .payload(&value);
        send_waiting(&producer, record);
    }
    producer
        .flush(Duration::from_secs(120))
        .unwrap_or_else(|err| panic!("flush: {err}"));
    let state = tempfile::tempdir().unwrap_or_else(|err| panic!("tempdir: {err}"));
    let columns = COLUMNS
        .replace("{time}", "")
        .replace("{sensor}", "")
        .replace("{value}", "");
    let file = |run: &str, keyed: bool, tasks: usize| {
        let out = format!("bench-{run}-out");
        create_topic(broker, &out, 1);
        format!(
            "name = \"bench-{run}\"\n[parallelism]\ntasks_per_daemon = {tasks}\n[source]\ntype = \"kafka\"\nbootstrap_servers = \"{servers}\"\nsubscribe = [\"{TOPIC}\"]\nstarting_offsets = \"earliest\"\nmax_offsets_per_trigger = 300000\nformat = \"json\"\ngroup_id = \"bench-{run}\"\n{partitioned_by}[source.options]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"500\"\n{columns}{AGGREGATE}\n[[sink]]\ntype = \"kafka\"\nbootstrap_servers = \"{servers}\"\ntopic = \"{out}\"\nexactly_once = true\n",
            servers = broker.bootstrap,
            partitioned_by = if keyed {
                "partitioned_by = [\"sensor\"]\n"
            } else {
                ""
            },
        )
    };
    for (members, tasks) in [(1, 1), (1, 2), (2, 1), (3, 1)] {
        let run = format!("tasks-{members}x{tasks}");
        let r = run_until_read(
            members,
            &file(&run, true, tasks),
            &state.path().join(&run),
            rows,
        );
        assert_eq!(r.rows, rows, "every record aggregated once");
        println!(
            "weir kafka (json, 6 partitions) -> windowed avg, a task per partition -> kafka (exactly once) by {members} pipeline(s), tasks_per_daemon = {tasks}: {:.2} M rows/s ({:.1} s, the group's join included; the batches spent {:.2} s reading, {:.2} s in the aggregation)",
            rows as f64 / r.seconds / 1e6,
            r.seconds,
            r.reading,
            r.operators
        );
    }
    // The same with a sliding window (60 s every second: each row counts in 60 windows), an
    // aggregation heavy enough for a second task to matter.
    for tasks in [1, 2] {
        let run = format!("sliding-1x{tasks}");
        let sliding =
            file(&run, true, tasks).replace("size = \"10s\" }", "size = \"60s\", slide = \"1s\" }");
        assert!(sliding.contains("slide"), "the window is replaced");
        let r = run_until_read(1, &sliding, &state.path().join(&run), rows);
        assert_eq!(r.rows, rows, "every record aggregated once");
        println!(
            "  the same with a 60 s window sliding every second, 1 pipeline, tasks_per_daemon = {tasks}: {:.2} M rows/s ({:.1} s; the batches spent {:.2} s reading, {:.2} s in the aggregation)",
            rows as f64 / r.seconds / 1e6,
            r.seconds,
            r.reading,
            r.operators
        );
    }
    for members in 1..=2 {
        let run = format!("repartition-{members}");
        let r = run_until_read(
            members,
            &file(&run, false, 2),
            &state.path().join(&run),
            rows,
        );
        assert_eq!(r.rows, rows, "every record aggregated once");
        println!(
            "  the same through the repartition topic (tasks_per_daemon = 2) by {members} pipeline(s): {:.2} M rows/s ({:.1} s)",
            rows as f64 / r.seconds / 1e6,
            r.seconds
        );
    }
}

/// Runs `members` pipelines of `toml` (each its own store under `root`) until their
/// aggregations have taken `rows` rows in all, then stops them. Stopped from
/// outside rather than ending by themselves, so no member waits on the group for the
/// partitions of members that left (Tansu 0.6.0 sometimes never rebalances them).
fn run_until_read(members: usize, toml: &str, root: &Path, rows: u64) -> Run {
    let (runtime, pipelines) = prepare_members(members, toml, root);
    runtime.block_on(async move {
        let started = Instant::now();
        let mut handles = Vec::new();
        for (prepared, env) in &pipelines {
            let pipeline = open(prepared, env).unwrap_or_else(|err| panic!("{err}"));
            handles.push(pipeline.spawn());
        }
        let read = || -> u64 {
            handles
                .iter()
                .map(|h| h.monitor.metrics().input_rows.get())
                .sum()
        };
        let deadline = Instant::now() + Duration::from_secs(600);
        while read() < rows {
            if let Some(failed) = handles.iter().find(|h| h.is_finished()) {
                panic!("pipeline {} ended before the input was read", failed.name);
            }
            assert!(
                Instant::now() < deadline,
                "{} of {rows} rows in 600 s",
                read()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let seconds = started.elapsed().as_secs_f64();
        let total = read();
        let batches: Vec<_> = handles.iter().flat_map(|h| h.monitor.recent()).collect();
        for mut handle in handles {
            handle.stop_within(Duration::from_secs(60)).await;
        }
        Run {
            rows: total,
            seconds,
            reading: batches.iter().map(|b| b.duration_ms.get_batch).sum::<f64>() / 1e3,
            operators: batches.iter().map(|b| b.duration_ms.process).sum::<f64>() / 1e3,
        }
    })
}

/// What [`run_until_read`] measured: rows, wall seconds, and the seconds the batches spent
/// reading and in their operators (summed over the pipelines).
struct Run {
    rows: u64,
    seconds: f64,
    reading: f64,
    operators: f64,
}

/// A runtime and `members` prepared copies of `toml`, each with a store of its own under `root`
/// (as separate daemons would have).
fn prepare_members(
    members: usize,
    toml: &str,
    root: &Path,
) -> (
    tokio::runtime::Runtime,
    Vec<(weir::assemble::Prepared, Environment)>,
) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|err| panic!("runtime: {err}"));
    let mut pipelines = Vec::new();
    for member in 0..members {
        let dir = root.join(format!("member-{member}"));
        let store: SharedStore = Arc::new(
            RocksStore::open(&dir.join("db")).unwrap_or_else(|err| panic!("rocksdb: {err}")),
        );
        let plan = weir::config::parse_pipeline(Path::new("/bench/p.toml"), toml)
            .unwrap_or_else(|err| panic!("{err}"));
        let ctx = PrepareContext {
            plugins: None,
            store: Some(&store),
            limits: Default::default(),
        };
        let prepared = prepare(plan, ctx).unwrap_or_else(|err| panic!("{err}"));
        let env = Environment {
            store: store.clone(),
            state_dir: dir,
            label_console: false,
        };
        pipelines.push((prepared, env));
    }
    (runtime, pipelines)
}

/// Restores the state of 4 tasks, `RESTORE_KEYS` keys of 1 KiB each, from their changelog
/// partitions, the way a daemon does when the group gives it partitions: one task at a time,
/// then 4 at a time; prints the time per GiB of each.
fn restore_bench(broker: &Broker) {
    const RESTORE_KEYS: u64 = 64 * 1024;
    const TASKS: i32 = 4;
    const VALUE: usize = 1024;
    let topic = ChangelogTopic {
        servers: broker.bootstrap.clone(),
        options: Default::default(),
        group: "bench".into(),
        pipeline: "restore".into(),
        input: "readings".into(),
        timeout: Duration::from_secs(30),
    };
    create_topic(broker, &topic.name(), TASKS);
    let producer = bench_producer(broker);
    let name = topic.name();
    let value = vec![7u8; VALUE];
    let send = |partition: i32, key: &[u8], value: &[u8]| {
        let record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&name)
            .partition(partition)
            .key(key)
            .payload(value);
        send_waiting(&producer, record);
    };
    for partition in 0..TASKS {
        for i in 0..RESTORE_KEYS {
            let key = [b"a".as_slice(), &i.to_be_bytes()].concat();
            send(partition, &key, &value);
        }
    }
    producer
        .flush(Duration::from_secs(120))
        .unwrap_or_else(|err| panic!("flush: {err}"));
    // The records saying which input offset each state reaches, each alone (Tansu's high
    // watermark: see `produce`).
    for partition in 0..TASKS {
        let reached = weir::kafka::changelog::reached(partition, 1_000);
        send(
            partition,
            &reached.key,
            reached.value.as_deref().unwrap_or_default(),
        );
        producer
            .flush(Duration::from_secs(120))
            .unwrap_or_else(|err| panic!("flush: {err}"));
    }
    let wanted: Vec<(i32, Option<i64>)> = (0..TASKS).map(|p| (p, Some(1_000))).collect();
    let gib = (TASKS as usize * RESTORE_KEYS as usize * (VALUE + 9)) as f64 / (1u64 << 30) as f64;
    for threads in [1, 4] {
        let started = Instant::now();
        let restored = topic.restore_many(&wanted, threads, Duration::from_secs(300), &|_| {});
        let secs = started.elapsed().as_secs_f64();
        for (_, _, state) in restored {
            let state = state.unwrap_or_else(|err| panic!("restore: {err}"));
            assert_eq!(state.len() as u64, RESTORE_KEYS, "every key restored");
        }
        println!(
            "restore of {TASKS} tasks' state from their changelog ({RESTORE_KEYS} keys of 1 KiB each, {:.0} MiB in all), {threads} at a time: {secs:.1} s, {:.1} s per GiB",
            gib * 1024.0,
            secs / gib
        );
    }
    standby_bench(topic, TASKS, RESTORE_KEYS, gib);
}

/// The same state followed as standby copies into a real store: the follower's catch-up from
/// the changelog's start (in the background, while the daemon runs other partitions), then the
/// hand-over when the group gives the daemon the 4 partitions (the copies read from RocksDB).
fn standby_bench(topic: ChangelogTopic, tasks: i32, keys: u64, gib: f64) {
    use std::collections::BTreeMap;
    use weir::kafka::PartitionGate;
    use weir::window::{RestoreGate, standby_prefix};
    let dir = tempfile::tempdir().unwrap_or_else(|err| panic!("temp dir: {err}"));
    let store: SharedStore =
        Arc::new(RocksStore::open(dir.path()).unwrap_or_else(|err| panic!("store: {err}")));
    let started = Instant::now();
    let gate = RestoreGate::with_standby("restore", topic, store.clone());
    let caught_up = || {
        (0..tasks).all(|p| {
            let key = [standby_prefix("restore", p).as_slice(), b"o"].concat();
            store.get(&key).ok().flatten().as_deref() == Some(&1_000i64.to_be_bytes()[..])
        })
    };
    let deadline = Instant::now() + Duration::from_secs(600);
    while !caught_up() {
        assert!(
            Instant::now() < deadline,
            "standby copies caught up within 600 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let follow = started.elapsed().as_secs_f64();
    println!(
        "standby copies of the same {tasks} partitions, followed from the changelog's start into RocksDB (in the background): {follow:.1} s, {:.1} s per GiB",
        follow / gib
    );
    let owned: BTreeMap<i32, u64> = (0..tasks).map(|p| (p, 1)).collect();
    // The copies are read on the gate's thread; the batches ask until they are released.
    let started = Instant::now();
    let mut asked = 0;
    while !gate
        .held(&owned, &mut |partitions: &[i32]| {
            Ok(partitions.iter().map(|p| (*p, 1_000)).collect())
        })
        .is_empty()
    {
        asked += 1;
        assert!(Instant::now() < deadline, "copies handed over");
        std::thread::sleep(Duration::from_millis(1));
    }
    let handed = started.elapsed().as_secs_f64();
    assert!(
        asked > 0,
        "the copies are read beside the batches, not in them"
    );
    for p in 0..tasks {
        let restored = gate
            .take(p, 1, Some(1_000))
            .unwrap_or_else(|| panic!("partition {p}'s copy"));
        assert_eq!(restored.state.len() as u64, keys, "every key in the copy");
    }
    println!(
        "hand-over of the {tasks} partitions from their standby copies (read from RocksDB beside the batches): {handed:.2} s, {:.1} s per GiB",
        handed / gib
    );
}
