//! A windowed aggregation on Kafka partitions shared through a consumer group, whose input is
//! *not* partitioned by the grouping column: every sensor's readings are spread over all six
//! partitions. The daemons write the input through the repartition topic keyed by sensor, and
//! aggregate that, one task per partition; as daemons are killed and come back, every window
//! reaches the exactly-once output once, with the count and sum of all its readings.

use crate::daemon_harness::{Daemon, READY, find, http_get};
use crate::harness::{TestResult, Weir, pipeline_file};
use crate::kafka_broker::Broker;
use crate::kafka_group_state::{
    SharedWindows, pipeline_metric, produce_to, windows_in, windows_pipeline,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

const TOPIC: &str = "readings";
const PARTITIONS: i64 = 6;
const SENSORS: i64 = 12;
const OUT_TOPIC: &str = "reading-windows";
const GROUP: &str = "weir-reading-windows";
const PIPELINE: &str = "reading-windows";
const START_MS: i64 = 1_764_547_200_000;
const WINDOW_MS: i64 = 10_000;
/// Readings per phase: 40 s of event time.
const PHASE: i64 = 400;
/// Past every reading's window: one reading per sensor at this time closes them all.
const FLUSH_MS: i64 = START_MS + 3_600_000;

/// Reading `i`: (partition, event time, sensor, value). The sensors take turns, and each run
/// of twelve readings goes to the next partition, so every sensor's readings are in every
/// partition.
fn reading(i: i64) -> (i32, i64, String, i64) {
    (
        ((i / SENSORS) % PARTITIONS) as i32,
        START_MS + i * 100,
        format!("s{}", i % SENSORS),
        (i * 31) % 101,
    )
}

fn produce(broker: &Broker, from: i64, to: i64) {
    produce_to(broker, TOPIC, (from..to).map(reading));
}

/// One reading per sensor an hour later (in partition 0): every sensor's task sees its event
/// time pass every earlier window's end plus the watermark's delay.
fn produce_flush(broker: &Broker) {
    produce_to(
        broker,
        TOPIC,
        (0..SENSORS).map(|s| (0, FLUSH_MS, format!("s{s}"), 0)),
    );
}

/// (window start, sensor) → (count, sum) of readings `0..n`: what one daemon alone writes once
/// every window has closed (the watermark's delay is longer than the whole run, so no reading
/// is late whatever order the repartition topic holds them in).
fn expected(n: i64) -> BTreeMap<(i64, String), (i64, i64)> {
    let mut windows = BTreeMap::<(i64, String), (i64, i64)>::new();
    for i in 0..n {
        let (_, t, sensor, value) = reading(i);
        let start = t - (t - START_MS).rem_euclid(WINDOW_MS);
        let w = windows.entry((start, sensor)).or_default();
        w.0 += 1;
        w.1 += value;
    }
    windows
}

/// Every window in the output topic (read committed), with every value it was written with.
fn written(broker: &Broker) -> BTreeMap<(i64, String), Vec<(i64, i64)>> {
    windows_in(broker, OUT_TOPIC)
}

fn metric(daemon: &Daemon, family: &str) -> f64 {
    pipeline_metric(daemon, PIPELINE, family)
}

/// Waits until the daemons' aggregations have taken `rows` rows from the repartition topic in
/// all (their `weir_pipeline_input_rows_total`, which counts committed batches only).
fn wait_for_rows(what: &str, rows: f64, daemons: &[&Daemon]) {
    let end = Instant::now() + Duration::from_secs(90);
    loop {
        let got: f64 = daemons
            .iter()
            .map(|d| metric(d, "weir_pipeline_input_rows_total"))
            .sum();
        if got >= rows {
            return;
        }
        if Instant::now() >= end {
            let said: Vec<String> = daemons.iter().map(|d| d.weir.stderr()).collect();
            panic!(
                "{what}: {got} of {rows} rows aggregated within 90 s; the daemons said:\n{}",
                said.join("\n-----\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `daemon`'s status says it aggregates `share` of the repartition topic's six
/// partitions and its writer writes `share` of the input's six.
fn wait_for_share(daemon: &Daemon, share: &str) {
    let said = format!("({share} of 6 partitions)");
    daemon.wait_status(&format!("{share} of each topic's partitions"), READY, |s| {
        find(s, PIPELINE).is_some_and(|p| {
            let aggregates = p["source_status"].as_str().unwrap_or_default();
            let writes = p["feeder"]["source_status"].as_str().unwrap_or_default();
            aggregates.contains(&format!("consumer group {GROUP}-{PIPELINE}-aggregate: "))
                && aggregates.contains(&said)
                && writes.contains(&format!("consumer group {GROUP}: "))
                && writes.contains(&said)
        })
    });
}

fn start(broker: &Broker, root: &Path) -> Daemon {
    let daemon = Daemon::start(root, &[]);
    daemon.write_pipeline("windows.toml", &pipeline_text(broker));
    daemon
}

fn pipeline_text(broker: &Broker) -> String {
    windows_pipeline(
        broker,
        &SharedWindows {
            name: PIPELINE,
            topic: TOPIC,
            group: GROUP,
            out: OUT_TOPIC,
            source_extra: "",
            // Longer than the whole run: no reading is late, whatever order the repartition
            // topic holds them in.
            watermark: "10m",
        },
    )
}

#[test]
fn an_aggregation_whose_groups_are_spread_over_the_partitions_goes_through_the_repartition_topic_shown_in_status_and_across_a_kill_9_and_a_restart_writes_every_window_once_with_all_its_readings()
-> TestResult {
    let broker = Broker::start();
    broker.create_topic(TOPIC, PARTITIONS as u32);
    broker.create_topic(OUT_TOPIC, 1);
    let roots = [tempfile::tempdir()?, tempfile::tempdir()?];
    let a = start(&broker, roots[0].path());
    let b = start(&broker, roots[1].path());
    for daemon in [&a, &b] {
        wait_for_share(daemon, "3");
    }
    produce(&broker, 0, PHASE + PHASE / 2);
    wait_for_rows(
        "A and B aggregate the first 60 s of readings",
        (PHASE + PHASE / 2) as f64,
        &[&a, &b],
    );
    let repartitioned = broker.read_all(&format!("{GROUP}-{PIPELINE}-repartition"));
    assert_eq!(
        repartitioned.len(),
        (PHASE + PHASE / 2) as usize,
        "the repartition topic holds each reading once (read committed)"
    );

    // B dies with a window open for each of its sensors; A takes its partitions of both topics
    // and restores those windows from the changelog.
    b.weir.kill9();
    produce(&broker, PHASE + PHASE / 2, 3 * PHASE);
    wait_for_share(&a, "6");

    // B starts again on its folder and takes back a share, restoring it from the changelog.
    let b = start(&broker, roots[1].path());
    for daemon in [&a, &b] {
        wait_for_share(daemon, "3");
    }
    produce(&broker, 3 * PHASE, 4 * PHASE);
    produce_flush(&broker);

    let want = expected(4 * PHASE);
    let end = Instant::now() + Duration::from_secs(90);
    while written(&broker).len() < want.len() {
        assert!(
            Instant::now() < end,
            "{} of {} windows within 90 s; the daemons said:\n{}\n-----\n{}",
            written(&broker).len(),
            want.len(),
            a.weir.stderr(),
            b.weir.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let got = written(&broker);
    let wrong: Vec<_> = want
        .iter()
        .filter(|(w, v)| got.get(*w) != Some(&vec![**v]))
        .map(|(w, v)| (w.clone(), *v, got.get(w).cloned().unwrap_or_default()))
        .collect();
    let extra: Vec<_> = got.keys().filter(|w| !want.contains_key(*w)).collect();
    assert!(
        wrong.is_empty() && extra.is_empty(),
        "each of {} windows once with the count and sum of all its readings: wrong (window, expected, written) {wrong:?}; not expected {extra:?}",
        want.len()
    );
    assert!(
        metric(&a, "weir_pipeline_state_restored_keys_total") > 0.0,
        "A restored B's open windows from the changelog"
    );
    assert!(
        metric(&b, "weir_pipeline_state_restored_keys_total") > 0.0,
        "B, started again, restored its share from the changelog"
    );
    // Each daemon shows its tasks: three partitions of the repartition topic, with their state.
    let topic = format!("{GROUP}-{PIPELINE}-repartition/");
    for daemon in [&a, &b] {
        let (_, body) = http_get(&daemon.http.clone().unwrap_or_default(), "/metrics");
        let series: Vec<&str> = body
            .lines()
            .filter(|l| l.starts_with("weir_pipeline_task_state_groups{"))
            .collect();
        assert_eq!(series.len(), 3, "{body}");
        assert!(series.iter().all(|l| l.contains(&topic)), "{series:?}");
        let status = daemon.status(Some(PIPELINE));
        let tasks = status["tasks"].as_array().cloned().unwrap_or_default();
        assert_eq!(tasks.len(), 3, "{status:#}");
        assert!(
            tasks.iter().any(|t| t["groups"].as_u64().unwrap_or(0) > 0),
            "{status:#}"
        );
        let text = daemon.client(&["status", PIPELINE]);
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(
            text.contains(&format!("tasks      {topic}"))
                && text.contains(&format!("fed by     `{PIPELINE}/repartition`: ")),
            "{text}"
        );
    }
    Ok(())
}

#[test]
fn under_available_now_the_aggregation_through_the_repartition_topic_ends_with_every_window_once()
-> TestResult {
    let broker = Broker::start();
    broker.create_topic(TOPIC, PARTITIONS as u32);
    broker.create_topic(OUT_TOPIC, 1);
    produce(&broker, 0, 2 * PHASE);
    produce_flush(&broker);
    let dir = tempfile::tempdir()?;
    let text = pipeline_text(&broker).replace(
        "output_mode = \"append\"\n",
        "output_mode = \"append\"\ntrigger = \"available_now\"\n",
    );
    let file = pipeline_file(dir.path(), "windows.toml", &text);
    let mut weir = Weir::start(&[
        "run",
        "--state-dir",
        &dir.path().join("state").to_string_lossy(),
        &file.to_string_lossy(),
    ]);
    let exit = weir.wait_exit(Duration::from_secs(120));
    assert!(exit.success(), "{}", weir.stderr());
    let want = expected(2 * PHASE);
    let got = written(&broker);
    let wrong: Vec<_> = want
        .iter()
        .filter(|(w, v)| got.get(*w) != Some(&vec![**v]))
        .collect();
    assert!(
        wrong.is_empty() && got.len() == want.len(),
        "each of {} windows once with all its readings: wrong {wrong:?}; written {}:\n{}",
        want.len(),
        got.len(),
        weir.stderr()
    );
    Ok(())
}

#[test]
fn weir_state_reset_with_topics_deletes_the_internal_topics_and_the_groups_offsets_and_the_pipeline_aggregates_the_input_again_from_the_start()
-> TestResult {
    let broker = Broker::start();
    broker.create_topic(TOPIC, PARTITIONS as u32);
    broker.create_topic(OUT_TOPIC, 1);
    let root = tempfile::tempdir()?;
    let daemon = start(&broker, root.path());
    produce(&broker, 0, PHASE);
    produce_flush(&broker);
    let want = expected(PHASE);
    let copies = |n: usize| {
        let got = written(&broker);
        want.iter().all(|(w, v)| got.get(w) == Some(&vec![*v; n]))
    };
    let end = Instant::now() + Duration::from_secs(90);
    while !copies(1) {
        assert!(
            Instant::now() < end,
            "every window once:\n{}",
            daemon.weir.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let out = daemon.client(&["state", "reset", PIPELINE, "--topics"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let changelog = format!("{GROUP}-{PIPELINE}-changelog");
    let repartition = format!("{GROUP}-{PIPELINE}-repartition");
    assert!(
        said.contains(&format!(
            "deleted topics {changelog}, {repartition} and the committed offsets of consumer groups {GROUP}, {GROUP}-{PIPELINE}-aggregate"
        )),
        "{said}"
    );
    // Started afresh, the pipeline reads the input from its starting offsets (earliest) and
    // writes every window again, with the same values.
    let end = Instant::now() + Duration::from_secs(90);
    while !copies(2) {
        assert!(
            Instant::now() < end,
            "every window a second time, the same:\n{:?}\n{}",
            written(&broker),
            daemon.weir.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
