//! Restoring beside the running tasks (`window::restore`), against the test broker and a real
//! RocksDB store: the gate that decides which partitions a shared aggregation's batches may
//! read holds back a partition whose changelog cannot yet reach the group's offset, without
//! making the batch wait for it, and lets it be read once its state is restored.

use crate::harness::TestResult;
use crate::kafka_broker::Broker;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir::kafka::PartitionGate;
use weir::kafka::changelog::{ChangelogRecord, ChangelogTopic, reached};
use weir::state::{RocksStore, SharedStore};
use weir::window::RestoreGate;

const INPUT: &str = "restore-readings";

/// Sends `records` in the producer's open transaction.
fn send(producer: &BaseProducer, topic: &str, records: &[ChangelogRecord]) -> TestResult {
    for r in records {
        let mut record: BaseRecord<'_, [u8], [u8]> =
            BaseRecord::to(topic).partition(r.partition).key(&r.key);
        if let Some(value) = &r.value {
            record = record.payload(value);
        }
        producer.send(record).map_err(|(err, _)| err)?;
    }
    producer.flush(Duration::from_secs(30))?;
    Ok(())
}

fn put(partition: i32, key: &str, value: &str) -> ChangelogRecord {
    ChangelogRecord {
        partition,
        key: key.as_bytes().to_vec(),
        value: Some(value.as_bytes().to_vec()),
    }
}

/// The changelog of `pipeline` (in a group of its name) on a 2-partition input, created.
fn changelog_of(broker: &Broker, pipeline: &str) -> Result<ChangelogTopic, String> {
    broker.create_topic(INPUT, 2);
    let changelog = ChangelogTopic {
        servers: broker.bootstrap.clone(),
        options: BTreeMap::new(),
        group: format!("{pipeline}-group"),
        pipeline: pipeline.into(),
        input: INPUT.into(),
        timeout: Duration::from_secs(10),
    };
    changelog.ensure()?;
    Ok(changelog)
}

/// A transaction of another writer, `id`, opened on `partition` of `topic` and left open (its
/// one record deletes a key no state has).
fn hold_open(
    broker: &Broker,
    id: &str,
    topic: &str,
    partition: i32,
) -> Result<BaseProducer, Box<dyn std::error::Error>> {
    let holder = broker.transactional_producer(id);
    holder.begin_transaction()?;
    send(
        &holder,
        topic,
        &[ChangelogRecord {
            partition,
            key: b"not-a-state-key".to_vec(),
            value: None,
        }],
    )?;
    Ok(holder)
}

#[test]
fn a_partition_whose_changelog_is_held_up_by_an_open_transaction_is_held_back_without_the_batch_waiting_and_read_once_its_state_is_restored()
-> TestResult {
    let broker = Broker::start();
    let changelog = changelog_of(&broker, "restore")?;
    let topic = changelog.name();

    // Partition 1's task reached input offset 5 with `a`, then offset 10 with `b` too; between
    // the two, another writer opened a transaction on the partition and holds it open, so a
    // read_committed reader sees the changelog only up to offset 5.
    let writer = broker.transactional_producer("restore-writer");
    writer.begin_transaction()?;
    send(&writer, &topic, &[put(1, "a", "1"), reached(1, 5)])?;
    writer.commit_transaction(Duration::from_secs(30))?;
    let holder = hold_open(&broker, "restore-holder", &topic, 1)?;
    writer.begin_transaction()?;
    send(&writer, &topic, &[put(1, "b", "2"), reached(1, 10)])?;
    writer.commit_transaction(Duration::from_secs(30))?;

    let dir = tempfile::tempdir()?;
    let store: SharedStore = Arc::new(RocksStore::open(dir.path())?);
    let gate = RestoreGate::new("restore", changelog, store);
    // The group gives this daemon both partitions; it has committed offset 10 for partition 1
    // and nothing for partition 0 (which therefore has no state to restore).
    let owned = BTreeMap::from([(0, 1u64), (1, 1u64)]);
    let mut asked = Vec::new();
    let held = |asked: &mut Vec<Vec<i32>>| {
        let started = Instant::now();
        let held = gate.held(&owned, &mut |partitions: &[i32]| {
            asked.push(partitions.to_vec());
            Ok(partitions
                .iter()
                .filter(|p| **p == 1)
                .map(|p| (*p, 10))
                .collect())
        });
        (held, started.elapsed())
    };

    let (first, took) = held(&mut asked);
    assert_eq!(
        first,
        BTreeSet::from([1]),
        "partition 1 waits for its state"
    );
    assert!(
        took < Duration::from_secs(5),
        "deciding took {took:?}: the restore runs beside the batch, not in it"
    );
    assert_eq!(asked, vec![vec![0, 1]], "the group's offsets asked once");
    // However often the next batches ask, partition 1 stays held while the transaction is
    // open (the reader cannot see offset 10 in the changelog), and its task has no state to
    // open on; partition 0 is never held.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let (now, took) = held(&mut asked);
        assert_eq!(now, BTreeSet::from([1]));
        assert!(took < Duration::from_secs(5), "deciding took {took:?}");
        assert!(gate.is_held(1, 1) && !gate.is_held(0, 1));
        assert!(gate.take(1, 1, Some(10)).is_none());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(asked.len(), 1, "no partition arrived again: {asked:?}");

    // The transaction ends; the restore reaches offset 10 and the partition is released, its
    // state handed over once, for the offset the group committed.
    holder.commit_transaction(Duration::from_secs(30))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (now, _) = held(&mut asked);
        if now.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "partition 1 still held 60 s after the transaction ended"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(gate.take(1, 1, Some(9)).is_none(), "not for another offset");
    let restored = gate
        .take(1, 1, Some(10))
        .ok_or("partition 1's restored state")?;
    assert_eq!(restored.until, 10);
    assert_eq!(
        restored.state,
        BTreeMap::from([
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"2".to_vec())
        ])
    );
    assert!(gate.take(1, 1, Some(10)).is_none(), "handed over once");

    // Given again under another tenure, the partition is decided afresh.
    let owned_again = BTreeMap::from([(1, 2u64)]);
    let again = gate.held(&owned_again, &mut |partitions: &[i32]| {
        Ok(partitions.iter().map(|p| (*p, 10)).collect())
    });
    assert_eq!(
        again,
        BTreeSet::from([1]),
        "restored again for the new tenure"
    );
    Ok(())
}

#[test]
fn a_changelog_whose_only_records_an_open_transaction_hides_is_waited_for_not_taken_for_empty()
-> TestResult {
    let broker = Broker::start();
    let changelog = changelog_of(&broker, "empty")?;
    let topic = changelog.name();
    // A transaction opened before anything else on partition 0 hides every record after it,
    // the state that goes with offset 5 among them.
    let holder = hold_open(&broker, "empty-holder", &topic, 0)?;
    let writer = broker.transactional_producer("empty-writer");
    writer.begin_transaction()?;
    send(&writer, &topic, &[put(0, "a", "1"), reached(0, 5)])?;
    writer.commit_transaction(Duration::from_secs(30))?;

    let dir = tempfile::tempdir()?;
    let store: SharedStore = Arc::new(RocksStore::open(dir.path())?);
    let gate = RestoreGate::new("empty", changelog, store);
    let owned = BTreeMap::from([(0, 1u64)]);
    let held = || {
        gate.held(&owned, &mut |partitions: &[i32]| {
            Ok(partitions.iter().map(|p| (*p, 5)).collect())
        })
    };
    // Three times the grace after which a changelog with nothing to read counts as empty: the
    // partition is still held, nothing handed over.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert_eq!(
            held(),
            BTreeSet::from([0]),
            "held while the transaction is open"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    holder.commit_transaction(Duration::from_secs(30))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !held().is_empty() {
        assert!(
            Instant::now() < deadline,
            "released once the transaction ended"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let restored = gate.take(0, 1, Some(5)).ok_or("partition 0's state")?;
    assert_eq!(
        restored.state,
        BTreeMap::from([(b"a".to_vec(), b"1".to_vec())])
    );
    Ok(())
}
