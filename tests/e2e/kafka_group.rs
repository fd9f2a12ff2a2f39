//! Daemons sharing a Kafka topic's partitions through a consumer group (`group_id`), against
//! the test broker: partitions move as daemons come and go, and each moves at the offset its
//! last owner committed, so the daemons' outputs together hold every record once — in files
//! (offsets handed over by the member), and in a Kafka topic written exactly once (offsets
//! committed in the sink's transactions).

use crate::harness::{TestResult, Weir, pipeline_file};
use crate::kafka::{values_in, wait_until};
use crate::kafka_broker::{Broker, Record};
use std::path::Path;
use std::time::Duration;

const TOPIC: &str = "shared";
const PARTITIONS: i32 = 4;
/// The exactly-once output topic.
const OUT_TOPIC: &str = "shared-out";

/// Where the daemons write the lines.
#[derive(Clone, Copy)]
enum Output {
    /// Each daemon its own folder of JSON files.
    Files,
    /// One Kafka topic, `exactly_once = true`, read by a `read_committed` consumer.
    KafkaExactlyOnce,
}

/// `weir run` of the shared pipeline with its own state and output folders under `dir`.
fn member(broker: &Broker, dir: &Path, output: Output) -> Weir {
    let sink = match output {
        Output::Files => format!(
            "type = \"file\"\npath = \"{}\"\nformat = \"json\"",
            dir.join("out").display()
        ),
        Output::KafkaExactlyOnce => format!(
            "type = \"kafka\"\nbootstrap_servers = \"{}\"\ntopic = \"{OUT_TOPIC}\"\nexactly_once = true",
            broker.bootstrap
        ),
    };
    let file = pipeline_file(
        dir,
        "shared.toml",
        &format!(
            r#"name = "shared-lines"

[source]
type = "kafka"
bootstrap_servers = "{}"
subscribe = ["{TOPIC}"]
group_id = "weir-shared-lines"
starting_offsets = "earliest"
format = "text"

[source.options]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "500"

[[sink]]
{sink}
"#,
            broker.bootstrap,
        ),
    );
    Weir::start(&[
        "run",
        "--state-dir",
        &dir.join("state").to_string_lossy(),
        &file.to_string_lossy(),
    ])
}

/// Produces lines `from..to`, round robin over the partitions.
fn produce_lines(broker: &Broker, from: usize, to: usize) {
    let lines: Vec<(i32, String)> = (from..to)
        .map(|i| ((i % PARTITIONS as usize) as i32, format!("line-{i:04}")))
        .collect();
    let records: Vec<Record<'_>> = lines
        .iter()
        .map(|(p, v)| (*p, None, v.as_bytes(), None))
        .collect();
    broker.produce(TOPIC, &records);
}

/// Asserts that `written` holds lines `0..n` each exactly once, naming the doubled and the
/// missing ones.
fn assert_every_line_once(written: &[String], n: usize) {
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for line in written {
        *counts.entry(line.as_str()).or_default() += 1;
    }
    let doubled: Vec<&str> = counts
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(l, _)| *l)
        .collect();
    let expected: Vec<String> = (0..n).map(|i| format!("line-{i:04}")).collect();
    let missing: Vec<&String> = expected
        .iter()
        .filter(|l| !counts.contains_key(l.as_str()))
        .collect();
    assert!(
        doubled.is_empty() && missing.is_empty() && counts.len() == n,
        "every one of {n} lines once: written twice {doubled:?}, missing {missing:?}, {} lines in all",
        written.len()
    );
}

/// Every line either daemon wrote, sorted (a line written twice appears twice).
fn written(broker: &Broker, output: Output, a: &Path, b: &Path) -> Vec<String> {
    let mut all = match output {
        Output::Files => {
            let mut all = values_in(&a.join("out"));
            all.extend(values_in(&b.join("out")));
            all
        }
        Output::KafkaExactlyOnce => broker
            .read_all(OUT_TOPIC)
            .iter()
            .filter_map(|r| serde_json::from_slice::<serde_json::Value>(r.value.as_deref()?).ok())
            .filter_map(|row| Some(row["value"].as_str()?.to_string()))
            .collect(),
    };
    all.sort();
    all
}

/// Waits until `weir` has logged `count` rebalances that moved partitions from it to another
/// member.
pub(crate) fn wait_for_hand_overs(weir: &Weir, count: usize) {
    weir.wait_for(
        &format!("{count} hand-over(s) to another member"),
        Duration::from_secs(60),
        |_, err| err.matches("to another member").count() >= count,
    );
}

/// Waits until `weir` has logged `count` rebalances that gave it partitions.
pub(crate) fn wait_for_assignments(weir: &Weir, count: usize) {
    weir.wait_for(
        &format!("{count} assignment(s) from the consumer group"),
        Duration::from_secs(60),
        |_, err| err.matches("consumer group gave this daemon").count() >= count,
    );
}

#[test]
fn daemons_sharing_a_group_split_the_partitions_and_hand_them_over_as_they_come_and_go_writing_every_record_once_to_files()
-> TestResult {
    daemons_come_and_go(Output::Files)
}

#[test]
fn daemons_sharing_a_group_write_every_record_once_to_an_exactly_once_kafka_sink_as_they_come_and_go()
-> TestResult {
    daemons_come_and_go(Output::KafkaExactlyOnce)
}

/// A alone, then B joins, B stops, B comes back; between each step lines are produced and the
/// daemons' output together must hold every line once.
fn daemons_come_and_go(output: Output) -> TestResult {
    let broker = Broker::start();
    broker.create_topic(TOPIC, PARTITIONS as u32);
    broker.create_topic(OUT_TOPIC, 1);
    let a_dir = tempfile::tempdir()?;
    let b_dir = tempfile::tempdir()?;
    let (a, b) = (a_dir.path(), b_dir.path());

    // A alone reads every partition.
    let weir_a = member(&broker, a, output);
    wait_for_assignments(&weir_a, 1);
    produce_lines(&broker, 0, 100);
    wait_until(
        "A reads the first 100 lines",
        Duration::from_secs(60),
        || written(&broker, output, a, b).len() >= 100,
    );

    // B joins: the group moves some partitions from A to B.
    let mut weir_b = member(&broker, b, output);
    wait_for_assignments(&weir_b, 1);
    wait_for_hand_overs(&weir_a, 1);
    produce_lines(&broker, 100, 300);
    wait_until("A and B read 300 lines", Duration::from_secs(60), || {
        written(&broker, output, a, b).len() >= 300
    });
    assert_every_line_once(&written(&broker, output, a, b), 300);
    // Files say who wrote what: B wrote a share (the output topic does not say).
    let b_lines = values_in(&b.join("out"));
    if let Output::Files = output {
        assert!(
            !b_lines.is_empty() && b_lines.len() < 200,
            "B reads a share of the partitions: {} of the 200 lines after it joined",
            b_lines.len()
        );
    }

    // B stops: its partitions go back to A at B's offsets.
    weir_b.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(
        weir_b.wait_exit(Duration::from_secs(60)).success(),
        "{}",
        weir_b.stderr()
    );
    wait_for_assignments(&weir_a, 2);
    produce_lines(&broker, 300, 400);
    wait_until(
        "A reads the next 100 lines",
        Duration::from_secs(60),
        || written(&broker, output, a, b).len() >= 400,
    );
    assert_every_line_once(&written(&broker, output, a, b), 400);

    // B comes back with offsets in its checkpoint for partitions A has read on since: it goes
    // on from the group's offsets, not from its own.
    let weir_b = member(&broker, b, output);
    wait_for_assignments(&weir_b, 1);
    wait_for_hand_overs(&weir_a, 2);
    produce_lines(&broker, 400, 600);
    wait_until("A and B read 600 lines", Duration::from_secs(60), || {
        written(&broker, output, a, b).len() >= 600
    });
    assert_every_line_once(&written(&broker, output, a, b), 600);
    if let Output::Files = output {
        assert!(
            values_in(&b.join("out")).len() > b_lines.len(),
            "B read again after it came back"
        );
    }
    drop(weir_b);
    drop(weir_a);
    Ok(())
}

#[test]
fn a_daemon_killed_with_kill_9_loses_no_line_its_partitions_go_to_the_other_after_the_session_timeout()
-> TestResult {
    let broker = Broker::start();
    broker.create_topic(TOPIC, PARTITIONS as u32);
    let a_dir = tempfile::tempdir()?;
    let b_dir = tempfile::tempdir()?;
    let (a, b) = (a_dir.path(), b_dir.path());
    let weir_a = member(&broker, a, Output::Files);
    wait_for_assignments(&weir_a, 1);
    let weir_b = member(&broker, b, Output::Files);
    wait_for_assignments(&weir_b, 1);
    wait_for_hand_overs(&weir_a, 1);
    produce_lines(&broker, 0, 200);
    wait_until("A and B read 200 lines", Duration::from_secs(60), || {
        written(&broker, Output::Files, a, b).len() >= 200
    });

    // B dies without a word: after the session timeout (6 s) the group gives its partitions to
    // A, which goes on from B's last committed offsets.
    weir_b.kill9();
    produce_lines(&broker, 200, 400);
    wait_for_assignments(&weir_a, 2);
    let every: Vec<String> = (0..400).map(|i| format!("line-{i:04}")).collect();
    wait_until(
        "every one of 400 lines, at least once",
        Duration::from_secs(60),
        || {
            let seen = written(&broker, Output::Files, a, b);
            every.iter().all(|line| seen.binary_search(line).is_ok())
        },
    );
    drop(weir_a);
    Ok(())
}

#[test]
fn two_daemons_sharing_a_group_say_the_topic_is_missing_then_each_show_in_weir_status_and_metrics_the_partitions_it_reads_together_all_of_them()
-> TestResult {
    use crate::daemon_harness::{Daemon, READY};
    let broker = Broker::start();
    let pipeline = format!(
        r#"name = "shared-status"

[source]
type = "kafka"
bootstrap_servers = "{}"
subscribe = ["{TOPIC}"]
group_id = "weir-shared-status"
format = "text"

[source.options]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "500"

[[sink]]
type = "null"
"#,
        broker.bootstrap
    );
    let roots = [tempfile::tempdir()?, tempfile::tempdir()?];
    let daemons: Vec<Daemon> = roots
        .iter()
        .map(|root| {
            let daemon = Daemon::start(root.path(), &[]);
            daemon.write_pipeline("shared-status.toml", &pipeline);
            daemon
        })
        .collect();
    for daemon in &daemons {
        daemon.wait_status("the missing topic", READY, |s| {
            s.to_string().contains(
                "consumer group weir-shared-status: none of the topics the source subscribes to exists yet",
            )
        });
    }
    broker.create_topic(TOPIC, PARTITIONS as u32);
    // Each daemon's status line: `consumer group G: reads shared/0, shared/2 (2 of 4 partitions)`.
    let mut read_by = Vec::new();
    for daemon in &daemons {
        let status = daemon.wait_status("its half of the partitions", READY, |s| {
            s.to_string().contains("(2 of 4 partitions)")
        });
        let line = status.to_string();
        let start = line
            .find("consumer group weir-shared-status: reads ")
            .map_or(0, |i| i + "consumer group weir-shared-status: reads ".len());
        let end = line[start..].find(" (").map_or(start, |i| start + i);
        read_by.push(line[start..end].to_string());
    }
    let mut all: Vec<&str> = read_by.iter().flat_map(|l| l.split(", ")).collect();
    all.sort();
    assert_eq!(
        all,
        ["shared/0", "shared/1", "shared/2", "shared/3"],
        "the daemons' status lines: {read_by:?}"
    );

    // /metrics has a lag series for each partition a daemon reads, once a batch has read its
    // half (a batch that only registers where new partitions start has no backlog yet).
    produce_lines(&broker, 0, 8);
    let mut scraped = Vec::new();
    for (daemon, reads) in daemons.iter().zip(&read_by) {
        let addr = daemon.http.clone().unwrap_or_default();
        let mut wanted: Vec<String> = reads.split(", ").map(str::to_string).collect();
        wanted.sort();
        let mut seen = Vec::new();
        wait_until(
            "a backlog series per partition read",
            Duration::from_secs(60),
            || {
                let (_, body) = crate::daemon_harness::http_get(&addr, "/metrics");
                seen = body
                    .lines()
                    .filter(|l| {
                        l.starts_with("weir_pipeline_source_partition_backlog{")
                            && l.contains("pipeline=\"shared-status\"")
                    })
                    .filter_map(|l| l.split("partition=\"").nth(1)?.split('"').next())
                    .map(str::to_string)
                    .collect();
                seen.sort();
                seen == wanted
            },
        );
        scraped.extend(seen);
    }
    scraped.sort();
    assert_eq!(scraped, ["shared/0", "shared/1", "shared/2", "shared/3"]);
    Ok(())
}
