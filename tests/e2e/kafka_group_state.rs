//! A windowed aggregation on Kafka partitions shared through a consumer group, against the
//! test broker: each partition is a task whose window state moves with it through the
//! changelog topic, so as daemons come and go every window reaches the exactly-once output
//! once, with the count and sum one daemon alone would give.

use crate::daemon_harness::{Daemon, READY, http_get};
use crate::harness::{TestResult, Weir, pipeline_file, weir_bin};
use crate::kafka_broker::{Broker, Record};
use crate::kafka_group::{wait_for_assignments, wait_for_hand_overs};
use crate::netns::Namespaces;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

const TOPIC: &str = "sensor-readings";
const PARTITIONS: i64 = 6;
const SENSORS: i64 = 12;
const OUT_TOPIC: &str = "sensor-windows";
const GROUP: &str = "weir-sensor-windows";
const START_MS: i64 = 1_764_547_200_000;
const WINDOW_MS: i64 = 10_000;
/// Readings per phase: 40 s of event time.
const PHASE: i64 = 400;

/// Reading `i`: (partition, event time, sensor, value). Sensor `s` lives in partition
/// `s % 6`, and each partition's readings come in event-time order.
fn reading(i: i64) -> (i32, i64, String, i64) {
    let sensor = i % SENSORS;
    (
        (sensor % PARTITIONS) as i32,
        START_MS + i * 100,
        format!("s{sensor}"),
        (i * 31) % 101,
    )
}

fn produce(broker: &Broker, from: i64, to: i64) {
    produce_to(broker, TOPIC, (from..to).map(reading));
}

/// Writes `readings` (partition, event time, sensor, value) to `topic` as JSON.
pub(crate) fn produce_to(
    broker: &Broker,
    topic: &str,
    readings: impl Iterator<Item = (i32, i64, String, i64)>,
) {
    let values: Vec<(i32, String)> = readings
        .map(|(partition, t, sensor, value)| (partition, reading_json(t, &sensor, value)))
        .collect();
    let records: Vec<Record<'_>> = values
        .iter()
        .map(|(p, v)| (*p, None, v.as_bytes(), None))
        .collect();
    broker.produce(topic, &records);
}

/// A reading as the producers write it: `{"time": ..., "sensor": ..., "value": ...}`.
pub(crate) fn reading_json(time_ms: i64, sensor: &str, value: i64) -> String {
    let time = chrono::DateTime::from_timestamp_millis(time_ms)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default();
    format!(r#"{{"time": "{time}", "sensor": "{sensor}", "value": {value}}}"#)
}

/// (window start, sensor) → (count, sum) of readings `0..n`, for the windows whose end the
/// watermark of their partition (its latest event time less 1 s) has passed.
fn expected(n: i64) -> BTreeMap<(i64, String), (i64, i64)> {
    let mut latest = BTreeMap::<i32, i64>::new();
    let mut windows = BTreeMap::<(i32, i64, String), (i64, i64)>::new();
    for i in 0..n {
        let (partition, t, sensor, value) = reading(i);
        latest.insert(partition, t);
        let start = t - (t - START_MS).rem_euclid(WINDOW_MS);
        let w = windows.entry((partition, start, sensor)).or_default();
        w.0 += 1;
        w.1 += value;
    }
    windows
        .into_iter()
        .filter(|((p, start, _), _)| {
            start + WINDOW_MS <= latest.get(p).copied().unwrap_or(0) - 1000
        })
        .map(|((_, start, sensor), v)| ((start, sensor), v))
        .collect()
}

/// Every window in the output topic (read committed), with every value it was written with.
fn written(broker: &Broker) -> BTreeMap<(i64, String), Vec<(i64, i64)>> {
    windows_in(broker, OUT_TOPIC)
}

/// Every window in `topic` (read committed): (window start, sensor) → each (count, sum) it
/// was written with.
pub(crate) fn windows_in(broker: &Broker, topic: &str) -> BTreeMap<(i64, String), Vec<(i64, i64)>> {
    let mut out = BTreeMap::<(i64, String), Vec<(i64, i64)>>::new();
    for record in broker.read_all(topic) {
        let Ok(row) = serde_json::from_str::<serde_json::Value>(&record.text()) else {
            continue;
        };
        let start = crate::kafka::ms(row["window"]["start"].as_str().unwrap_or_default());
        let sensor = row["sensor"].as_str().unwrap_or_default().to_string();
        out.entry((start, sensor)).or_default().push((
            row["count"].as_i64().unwrap_or(-1),
            row["sum(value)"].as_i64().unwrap_or(-1),
        ));
    }
    out
}

fn assert_every_window_once(broker: &Broker, n: i64) {
    let expected = expected(n);
    let got = written(broker);
    let wrong: Vec<_> = expected
        .iter()
        .filter(|(w, v)| got.get(*w) != Some(&vec![**v]))
        .map(|(w, v)| (w.clone(), *v, got.get(w).cloned().unwrap_or_default()))
        .collect();
    let extra: Vec<_> = got.keys().filter(|w| !expected.contains_key(*w)).collect();
    assert!(
        wrong.is_empty() && extra.is_empty(),
        "each of {} closed windows once with its count and sum: wrong (window, expected, written) {wrong:?}; not closed yet but written {extra:?}",
        expected.len()
    );
}

/// The state keys a daemon's log says it restored from the changelog.
fn restored_keys(log: &str) -> u64 {
    log.lines()
        .filter_map(|line| {
            let rest = line
                .split("from changelog weir-sensor-windows-sensor-windows-changelog (")
                .nth(1)?;
            rest.split(" keys").next()?.parse::<u64>().ok()
        })
        .sum()
}

/// `weir run` of the shared aggregation with its own state folder under `dir`.
fn member(broker: &Broker, dir: &Path) -> Weir {
    member_in(broker, dir, None)
}

/// The same, in network namespace `n` of `net` when given.
fn member_in(broker: &Broker, dir: &Path, net: Option<(&Namespaces, usize)>) -> Weir {
    let file = pipeline_file(dir, "windows.toml", &pipeline(broker));
    let state = dir.join("state").to_string_lossy().into_owned();
    let file = file.to_string_lossy().into_owned();
    let run = ["run", "--state-dir", state.as_str(), file.as_str()];
    match net {
        None => Weir::start(&run),
        Some((net, n)) => {
            let mut args = net.exec(n);
            args.push(weir_bin().to_string());
            args.extend(run.iter().map(|a| a.to_string()));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            Weir::start_program("ip", &args, None, |_| {})
        }
    }
}

/// The shared aggregation's pipeline file.
fn pipeline(broker: &Broker) -> String {
    windows_pipeline(
        broker,
        &SharedWindows {
            name: "sensor-windows",
            topic: TOPIC,
            group: GROUP,
            out: OUT_TOPIC,
            // Each sensor's readings are in one partition: the tasks aggregate the partitions
            // as they are.
            source_extra: "partitioned_by = [\"sensor\"]\n",
            watermark: "1s",
        },
    )
}

/// What differs between the shared windowed aggregations the tests run.
pub(crate) struct SharedWindows<'a> {
    pub name: &'a str,
    pub topic: &'a str,
    pub group: &'a str,
    pub out: &'a str,
    /// Lines added to `[source]`.
    pub source_extra: &'a str,
    pub watermark: &'a str,
}

/// A 10 s windowed count and sum of each sensor's readings, read as JSON from `topic` in the
/// consumer group `group`, written to `out` exactly once.
pub(crate) fn windows_pipeline(broker: &Broker, w: &SharedWindows<'_>) -> String {
    format!(
        r#"name = "{name}"
output_mode = "append"

[source]
type = "kafka"
bootstrap_servers = "{servers}"
subscribe = ["{topic}"]
group_id = "{group}"
starting_offsets = "earliest"
format = "json"
{source_extra}
[source.options]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "500"

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
window = {{ column = "time", size = "10s" }}
watermark = "{watermark}"
functions = [{{ fn = "count" }}, {{ fn = "sum", column = "value" }}]

[[sink]]
type = "kafka"
bootstrap_servers = "{servers}"
topic = "{out}"
key_column = "sensor"
exactly_once = true
"#,
        name = w.name,
        topic = w.topic,
        group = w.group,
        out = w.out,
        source_extra = w.source_extra,
        watermark = w.watermark,
        servers = broker.bootstrap,
    )
}

/// Waits until the output holds as many windows as readings `0..n` close; names what is
/// there and what the daemons said if it does not.
fn wait_for_windows(broker: &Broker, what: &str, n: i64, daemons: &[&Weir]) {
    let want = expected(n).len();
    let end = Instant::now() + Duration::from_secs(90);
    loop {
        let got = written(broker).values().map(Vec::len).sum::<usize>();
        if got >= want {
            return;
        }
        if Instant::now() >= end {
            let said: Vec<String> = daemons.iter().map(|d| d.stderr()).collect();
            panic!(
                "{what}: {got} of {want} windows within 90 s; the daemons said:\n{}",
                said.join("\n-----\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn daemons_sharing_a_windowed_aggregation_move_each_partitions_open_windows_with_it_and_write_every_window_once_with_one_daemons_counts()
-> TestResult {
    let broker = Broker::start();
    broker.create_topic(TOPIC, PARTITIONS as u32);
    broker.create_topic(OUT_TOPIC, 1);
    let a_dir = tempfile::tempdir()?;
    let b_dir = tempfile::tempdir()?;
    let (a, b) = (a_dir.path(), b_dir.path());

    // A alone: three windows close, the fourth is open in A's state.
    let weir_a = member(&broker, a);
    wait_for_assignments(&weir_a, 1);
    produce(&broker, 0, PHASE);
    wait_for_windows(
        &broker,
        "A closes the first three windows",
        PHASE,
        &[&weir_a],
    );
    assert_every_window_once(&broker, PHASE);

    // B joins and takes partitions whose open window A has counted part of: B restores it
    // from the changelog and the window closes with every reading counted once.
    let mut weir_b = member(&broker, b);
    wait_for_assignments(&weir_b, 1);
    wait_for_hand_overs(&weir_a, 1);
    produce(&broker, PHASE, 2 * PHASE);
    wait_for_windows(
        &broker,
        "A and B close seven windows",
        2 * PHASE,
        &[&weir_a, &weir_b],
    );
    assert_every_window_once(&broker, 2 * PHASE);
    weir_b.wait_for(
        "B restored its partitions' open windows from the changelog",
        Duration::from_secs(10),
        |_, err| restored_keys(err) > 0,
    );

    // B stops: A takes its partitions back with the windows B had open.
    weir_b.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(
        weir_b.wait_exit(Duration::from_secs(60)).success(),
        "{}",
        weir_b.stderr()
    );
    wait_for_assignments(&weir_a, 2);
    produce(&broker, 2 * PHASE, 3 * PHASE);
    wait_for_windows(&broker, "A closes eleven windows", 3 * PHASE, &[&weir_a]);
    assert_every_window_once(&broker, 3 * PHASE);

    // B comes back with state in its store that A has moved past: it restores from the
    // changelog, not from its own copy.
    let weir_b = member(&broker, b);
    wait_for_assignments(&weir_b, 1);
    wait_for_hand_overs(&weir_a, 2);
    produce(&broker, 3 * PHASE, 4 * PHASE);
    wait_for_windows(
        &broker,
        "A and B close fifteen windows",
        4 * PHASE,
        &[&weir_a, &weir_b],
    );
    assert_every_window_once(&broker, 4 * PHASE);
    drop(weir_b);
    drop(weir_a);
    Ok(())
}

/// A daemon's `/metrics` value of `family` for the shared pipeline (0 when absent).
fn metric(daemon: &Daemon, family: &str) -> f64 {
    pipeline_metric(daemon, "sensor-windows", family)
}

/// A daemon's `/metrics` value of `family` for `pipeline` (0 when absent).
pub(crate) fn pipeline_metric(daemon: &Daemon, pipeline: &str, family: &str) -> f64 {
    let (_, body) = http_get(&daemon.http.clone().unwrap_or_default(), "/metrics");
    let label = format!("pipeline=\"{pipeline}\"");
    body.lines()
        .find(|l| l.starts_with(family) && l.contains(&label))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// `weir daemon` on `root`, running the pipeline file `file`.
fn daemon_running(root: &Path, file: &str) -> Daemon {
    let daemon = Daemon::start(root, &[]);
    daemon.write_pipeline("windows.toml", file);
    daemon
}

/// Creates the topics, starts daemons A and B on `roots` running `file`, waits until they
/// share the partitions half and half, and has them close five windows with a window open on
/// every partition.
fn two_daemons_with_open_windows(
    broker: &Broker,
    roots: [&Path; 2],
    file: &str,
) -> (Daemon, Daemon) {
    broker.create_topic(TOPIC, PARTITIONS as u32);
    broker.create_topic(OUT_TOPIC, 1);
    let a = daemon_running(roots[0], file);
    let b = daemon_running(roots[1], file);
    for daemon in [&a, &b] {
        daemon.wait_status("half of the partitions", READY, |s| {
            s.to_string().contains("(3 of 6 partitions)")
        });
    }
    produce(broker, 0, PHASE + PHASE / 2);
    wait_for_windows(
        broker,
        "A and B close five windows",
        PHASE + PHASE / 2,
        &[&a.weir, &b.weir],
    );
    assert_every_window_once(broker, PHASE + PHASE / 2);
    (a, b)
}

/// Waits until `b`, started again, has its share back, and has A and B close fifteen windows,
/// each once.
fn b_back_with_its_share(broker: &Broker, a: &Daemon, b: Daemon) -> Daemon {
    b.wait_status("its share again", READY, |s| {
        s.to_string().contains("(3 of 6 partitions)")
    });
    produce(broker, 3 * PHASE, 4 * PHASE);
    wait_for_windows(
        broker,
        "A and B close fifteen windows",
        4 * PHASE,
        &[&a.weir, &b.weir],
    );
    assert_every_window_once(broker, 4 * PHASE);
    b
}

#[test]
fn a_daemon_killed_with_kill_9_leaves_its_open_windows_to_the_other_which_restores_them_from_the_changelog_and_every_window_is_written_once_with_its_counts()
-> TestResult {
    let broker = Broker::start();
    let roots = [tempfile::tempdir()?, tempfile::tempdir()?];
    let file = pipeline(&broker);
    let start = |root: &Path| daemon_running(root, &file);
    let (a, b) = two_daemons_with_open_windows(&broker, [roots[0].path(), roots[1].path()], &file);
    assert_eq!(
        metric(&a, "weir_pipeline_state_restored_keys_total"),
        0.0,
        "A has restored nothing yet (the group had no offsets when it started)"
    );
    assert_eq!(metric(&a, "weir_pipeline_state_restores_total"), 0.0);

    // B dies between batches with a window open on each of its partitions; after the session
    // timeout A takes them and restores those windows from the changelog.
    b.weir.kill9();
    produce(&broker, PHASE + PHASE / 2, 3 * PHASE);
    wait_for_windows(&broker, "A closes eleven windows", 3 * PHASE, &[&a.weir]);
    assert_every_window_once(&broker, 3 * PHASE);
    assert!(
        metric(&a, "weir_pipeline_state_restored_keys_total") > 0.0,
        "A's /metrics count the keys it restored"
    );
    assert!(
        metric(&a, "weir_pipeline_state_restores_total") >= 3.0,
        "A counts a restore for each of B's three partitions (none before: the group had no offsets)"
    );
    assert!(metric(&a, "weir_pipeline_state_restore_seconds_total") > 0.0);
    let log = a.weir.stderr();
    assert!(
        log.contains(
            "from changelog weir-sensor-windows-sensor-windows-changelog while the other tasks run"
        ),
        "A restored B's partitions beside its own tasks:\n{log}"
    );

    // B starts again on its folder and takes back a share, restoring it from the changelog.
    let b = b_back_with_its_share(&broker, &a, start(roots[1].path()));
    assert!(metric(&b, "weir_pipeline_state_restored_keys_total") > 0.0);
    Ok(())
}

#[test]
fn with_standby_a_daemon_given_the_partitions_of_one_killed_with_kill_9_opens_them_on_its_warm_copy_without_reading_the_changelog_and_every_window_is_written_once()
-> TestResult {
    let broker = Broker::start();
    let roots = [tempfile::tempdir()?, tempfile::tempdir()?];
    let file = pipeline(&broker).replace("[aggregate]\n", "[aggregate]\nstandby = true\n");
    let start = |root: &Path| daemon_running(root, &file);
    let (a, b) = two_daemons_with_open_windows(&broker, [roots[0].path(), roots[1].path()], &file);

    // B dies with a window open on each of its partitions; A has followed their changelog all
    // along and opens them on its own copy.
    b.weir.kill9();
    produce(&broker, PHASE + PHASE / 2, 3 * PHASE);
    wait_for_windows(&broker, "A closes eleven windows", 3 * PHASE, &[&a.weir]);
    assert_every_window_once(&broker, 3 * PHASE);
    let log = a.weir.stderr();
    assert_eq!(
        log.matches("takes its state from this daemon's standby copy")
            .count(),
        3,
        "each of B's partitions opens on A's standby copy:\n{log}"
    );
    assert_eq!(metric(&a, "weir_pipeline_state_standby_opens_total"), 3.0);
    assert_eq!(
        metric(&a, "weir_pipeline_state_restores_total"),
        0.0,
        "nothing read from the changelog's start"
    );
    assert_eq!(restored_keys(&log), 0, "{log}");

    // B starts again on its folder and takes back a share: every window still once.
    b_back_with_its_share(&broker, &a, start(roots[1].path()));
    Ok(())
}

#[test]
fn a_daemon_restarted_on_its_folder_goes_on_from_its_own_up_to_date_state_without_reading_the_changelog_and_every_window_is_written_once()
-> TestResult {
    let broker = Broker::start();
    broker.create_topic(TOPIC, PARTITIONS as u32);
    broker.create_topic(OUT_TOPIC, 1);
    let dir = tempfile::tempdir()?;
    let mut weir = member(&broker, dir.path());
    wait_for_assignments(&weir, 1);
    produce(&broker, 0, PHASE);
    wait_for_windows(&broker, "the first three windows", PHASE, &[&weir]);
    weir.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(
        weir.wait_exit(Duration::from_secs(60)).success(),
        "{}",
        weir.stderr()
    );

    // Started again, it is the group's only member: each partition comes back at the offset
    // its own last commit reached, with the open windows in its own store.
    let weir = member(&broker, dir.path());
    wait_for_assignments(&weir, 1);
    produce(&broker, PHASE, 2 * PHASE);
    wait_for_windows(&broker, "seven windows", 2 * PHASE, &[&weir]);
    assert_every_window_once(&broker, 2 * PHASE);
    let log = weir.stderr();
    assert_eq!(
        log.matches("this daemon's copy of the state is up to date")
            .count(),
        PARTITIONS as usize,
        "each partition's task goes on from the daemon's own store:\n{log}"
    );
    assert_eq!(
        restored_keys(&log),
        0,
        "nothing read from the changelog:\n{log}"
    );
    Ok(())
}

/// Waits until the last change of partitions `weir` logged leaves it reading `count`.
fn wait_for_share(weir: &Weir, count: usize) {
    let said = format!("it reads {count} partition(s)");
    weir.wait_for(&said, Duration::from_secs(60), |_, err| {
        err.lines()
            .rfind(|l| l.contains("partition(s)"))
            .is_some_and(|l| l.contains(&said))
    });
}

#[test]
fn three_daemons_on_six_partitions_then_a_fourth_joining_mid_run_each_in_a_network_namespace_of_its_own_where_the_machine_allows_write_every_window_once_with_one_daemons_counts()
-> TestResult {
    // Each daemon in a network namespace of its own (its own loopback and address), the broker
    // on the host's address on their bridge; where the machine does not allow that, all on
    // 127.0.0.1.
    let net = Namespaces::create(4);
    let broker = match &net {
        Some(net) => Broker::start_at(&net.host, Broker::free_port()),
        None => {
            eprintln!("no network namespaces here: the daemons share 127.0.0.1");
            Broker::start()
        }
    };
    let at = |n: usize| net.as_ref().map(|net| (net, n));
    broker.create_topic(TOPIC, PARTITIONS as u32);
    broker.create_topic(OUT_TOPIC, 1);
    let dirs = [
        tempfile::tempdir()?,
        tempfile::tempdir()?,
        tempfile::tempdir()?,
        tempfile::tempdir()?,
    ];
    let a = member_in(&broker, dirs[0].path(), at(0));
    wait_for_assignments(&a, 1);
    let b = member_in(&broker, dirs[1].path(), at(1));
    wait_for_assignments(&b, 1);
    let c = member_in(&broker, dirs[2].path(), at(2));
    for daemon in [&a, &b, &c] {
        wait_for_share(daemon, 2);
    }
    produce(&broker, 0, PHASE + PHASE / 2);
    wait_for_windows(
        &broker,
        "three daemons close five windows",
        PHASE + PHASE / 2,
        &[&a, &b, &c],
    );
    assert_every_window_once(&broker, PHASE + PHASE / 2);

    // A fourth joins while a window is open on every partition: the partitions it takes bring
    // their open windows from the changelog.
    let d = member_in(&broker, dirs[3].path(), at(3));
    wait_for_assignments(&d, 1);
    // (Read once each has logged: `ip netns exec` enters the namespace, then runs weir.)
    if net.is_some() {
        let stack = |pid: u32| std::fs::read_link(format!("/proc/{pid}/ns/net")).ok();
        let mut stacks: Vec<_> = [&a, &b, &c, &d].iter().map(|w| stack(w.pid())).collect();
        stacks.push(stack(std::process::id()));
        let distinct: std::collections::BTreeSet<_> = stacks.iter().flatten().collect();
        assert_eq!(
            distinct.len(),
            5,
            "each daemon has a network stack of its own, none the test's: {stacks:?}"
        );
    }
    produce(&broker, PHASE + PHASE / 2, 3 * PHASE);
    wait_for_windows(
        &broker,
        "four daemons close eleven windows",
        3 * PHASE,
        &[&a, &b, &c, &d],
    );
    assert_every_window_once(&broker, 3 * PHASE);
    let log = d.stderr();
    assert!(
        restored_keys(&log) > 0,
        "the fourth restored open windows from the changelog:\n{log}"
    );
    Ok(())
}

#[test]
fn a_shared_aggregation_on_a_group_whose_offsets_were_committed_without_a_changelog_warns_and_starts_its_tasks_empty_there()
-> TestResult {
    let broker = Broker::start();
    broker.create_topic(TOPIC, PARTITIONS as u32);
    broker.create_topic(OUT_TOPIC, 1);
    // The group's offsets are moved by a pipeline that keeps no state (or whose changelog was
    // deleted): readings 0..400 are behind them.
    produce(&broker, 0, PHASE);
    let first = tempfile::tempdir()?;
    let stateless = pipeline(&broker)
        .split("[aggregate]")
        .next()
        .unwrap_or_default()
        .to_string()
        + "[[sink]]\ntype = \"null\"\n";
    let file = pipeline_file(first.path(), "lines.toml", &stateless);
    let mut weir = Weir::start(&[
        "run",
        "--state-dir",
        &first.path().join("state").to_string_lossy(),
        &file.to_string_lossy(),
    ]);
    let mut behind = BTreeMap::<i32, i64>::new();
    for i in 0..PHASE {
        *behind.entry(reading(i).0).or_default() += 1;
    }
    let end = Instant::now() + Duration::from_secs(60);
    while behind
        .iter()
        .any(|(p, n)| broker.committed(GROUP, TOPIC, *p).is_none_or(|o| o < *n))
    {
        assert!(
            Instant::now() < end,
            "the group's offsets moved:\n{}",
            weir.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    weir.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(
        weir.wait_exit(Duration::from_secs(60)).success(),
        "{}",
        weir.stderr()
    );

    // Readings 400.. start at 40 s: the windows from 40 s on hold only them, and close.
    produce(&broker, PHASE, 2 * PHASE);
    let second = tempfile::tempdir()?;
    let weir = member(&broker, second.path());
    weir.wait_for(
        "a warning for each partition",
        Duration::from_secs(60),
        |_, err| err.matches("holds no state for input offset").count() >= PARTITIONS as usize,
    );
    let want = expected(2 * PHASE);
    let later: Vec<&(i64, String)> = want
        .keys()
        .filter(|(start, _)| *start >= START_MS + 40_000)
        .collect();
    let end = Instant::now() + Duration::from_secs(90);
    while !later.iter().all(|w| written(&broker).contains_key(*w)) {
        assert!(
            Instant::now() < end,
            "the windows from 40 s on within 90 s:\n{}",
            weir.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let got = written(&broker);
    for w in later {
        assert_eq!(got.get(w), Some(&vec![want[w]]), "window {w:?}");
    }
    assert!(
        got.keys().all(|(start, _)| *start >= START_MS + 40_000),
        "nothing of the readings behind the group's offsets is aggregated"
    );
    Ok(())
}

#[test]
fn with_idle_timeout_a_partition_that_stops_sending_closes_its_open_windows_with_their_counts_once_the_other_partitions_move_on()
-> TestResult {
    let broker = Broker::start();
    broker.create_topic(TOPIC, PARTITIONS as u32);
    broker.create_topic(OUT_TOPIC, 1);
    let dir = tempfile::tempdir()?;
    let text = pipeline(&broker).replace(
        "watermark = \"1s\"\n",
        "watermark = \"1s\"\nidle_timeout = \"2s\"\n",
    );
    let file = pipeline_file(dir.path(), "windows.toml", &text);
    let weir = Weir::start(&[
        "run",
        "--state-dir",
        &dir.path().join("state").to_string_lossy(),
        &file.to_string_lossy(),
    ]);
    wait_for_assignments(&weir, 1);
    produce(&broker, 0, PHASE);
    wait_for_windows(&broker, "the first three windows", PHASE, &[&weir]);

    // Partition 5 (sensors s5 and s11) sends nothing more, so by its own clock their windows
    // from 30 s stay open; the other partitions go on, a reading at a time.
    let idle: Vec<(i64, String)> = ["s5", "s11"]
        .iter()
        .map(|s| (START_MS + 30_000, s.to_string()))
        .collect();
    let mut want = BTreeMap::<(i64, String), (i64, i64)>::new();
    for i in 0..PHASE {
        let (_, t, sensor, value) = reading(i);
        let key = (t - (t - START_MS).rem_euclid(WINDOW_MS), sensor);
        if idle.contains(&key) {
            let w = want.entry(key).or_default();
            w.0 += 1;
            w.1 += value;
        }
    }
    assert_eq!(want.len(), 2);
    let mut i = PHASE;
    let end = Instant::now() + Duration::from_secs(60);
    while !idle.iter().all(|w| written(&broker).contains_key(w)) {
        assert!(
            Instant::now() < end,
            "partition 5's open windows closed within 60 s:\n{}",
            weir.stderr()
        );
        while reading(i).0 == 5 {
            i += 1;
        }
        produce(&broker, i, i + 1);
        i += 1;
        // Paces the input, a reading every 100 ms (10 s of event time a second).
        std::thread::sleep(Duration::from_millis(100));
    }
    let got = written(&broker);
    for w in &idle {
        assert_eq!(
            got.get(w),
            Some(&vec![want[w]]),
            "window {w:?}: once, with all its readings"
        );
    }
    assert!(
        got.values().all(|v| v.len() == 1),
        "no window written twice: {got:?}"
    );
    Ok(())
}
