//! The Kafka source's offsets: `{"topic": {"0": 42, "1": 17}}`, Spark's JSON form — for each
//! partition, the offset of the next record to read. A batch reads `[start, end)` of every
//! partition in `end`; a partition absent from `start` is new, and its first batch only records
//! where it starts (so the range stays the same on replay, whatever "earliest" means later).

use crate::sources::{SourceError, SourceOffset};
use std::collections::BTreeMap;

/// Next offset to read, per topic and partition.
pub type PartitionOffsets = BTreeMap<String, BTreeMap<i32, i64>>;

/// Reads an offset from the offsets log.
pub fn parse(value: &SourceOffset) -> Result<PartitionOffsets, SourceError> {
    serde_json::from_value(value.clone()).map_err(|err| SourceError::BadOffset {
        offset: value.to_string(),
        reason: format!("expected {{\"topic\": {{\"partition\": offset}}}}: {err}"),
    })
}

/// The offset's JSON form.
pub fn to_json(offsets: &PartitionOffsets) -> SourceOffset {
    // Maps of strings to maps of integers always serialise.
    serde_json::to_value(offsets).unwrap_or_default()
}

/// The offset of `topic`/`partition`, if known.
pub fn get(offsets: &PartitionOffsets, topic: &str, partition: i32) -> Option<i64> {
    offsets.get(topic)?.get(&partition).copied()
}

/// Records between `start` and `end` over every partition (new partitions count nothing).
pub fn records_between(start: &PartitionOffsets, end: &PartitionOffsets) -> u64 {
    let mut total = 0u64;
    for (topic, partitions) in end {
        for (partition, until) in partitions {
            if let Some(from) = get(start, topic, *partition) {
                total = total.saturating_add(until.saturating_sub(from).max(0) as u64);
            }
        }
    }
    total
}

/// Records between `start` and `end` in each partition both know, as `topic/partition`.
pub fn records_by_partition(
    start: &PartitionOffsets,
    end: &PartitionOffsets,
) -> Vec<crate::sources::PartBacklog> {
    let mut out = Vec::new();
    for (topic, partitions) in end {
        for (partition, until) in partitions {
            if let Some(from) = get(start, topic, *partition) {
                out.push(crate::sources::PartBacklog {
                    part: format!("{topic}/{partition}"),
                    amount: until.saturating_sub(from).max(0) as u64,
                });
            }
        }
    }
    out
}

/// Caps `latest` so that at most about `limit` records are read after `start`, each partition
/// getting a share in proportion to its backlog — Spark's `rateLimit`: a share below one record
/// rounds up, others round down, so every partition with a backlog moves.
pub fn rate_limit(
    start: &PartitionOffsets,
    latest: &PartitionOffsets,
    limit: u64,
) -> PartitionOffsets {
    let total = records_between(start, latest);
    if total <= limit {
        return latest.clone();
    }
    let mut capped = latest.clone();
    for (topic, partitions) in capped.iter_mut() {
        for (partition, end) in partitions.iter_mut() {
            let Some(begin) = get(start, topic, *partition) else {
                continue;
            };
            let size = (*end - begin).max(0);
            if size == 0 {
                continue;
            }
            let share = limit as f64 * (size as f64 / total as f64);
            let share = if share < 1.0 {
                share.ceil()
            } else {
                share.floor()
            } as i64;
            *end = (begin.saturating_add(share)).min(*end);
        }
    }
    capped
}

/// `offsets` with no partition beyond `cap` (for `available_now`): partitions `cap` does not
/// know are left out, and known ones end at most where `cap` ends.
pub fn cap_at(offsets: &PartitionOffsets, cap: &PartitionOffsets) -> PartitionOffsets {
    let mut out = PartitionOffsets::new();
    for (topic, partitions) in offsets {
        for (partition, offset) in partitions {
            if let Some(limit) = get(cap, topic, *partition) {
                out.entry(topic.clone())
                    .or_default()
                    .insert(*partition, (*offset).min(limit));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(items: &[(&str, i32, i64)]) -> PartitionOffsets {
        let mut out = PartitionOffsets::new();
        for (topic, partition, offset) in items {
            out.entry(topic.to_string())
                .or_default()
                .insert(*partition, *offset);
        }
        out
    }

    #[test]
    fn offsets_round_trip_through_spark_json_and_foreign_json_is_a_bad_offset() {
        let o = offsets(&[("t", 0, 42), ("t", 1, 7), ("u", 0, 0)]);
        let json = to_json(&o);
        assert_eq!(json.to_string(), r#"{"t":{"0":42,"1":7},"u":{"0":0}}"#);
        assert_eq!(parse(&json).ok(), Some(o));
        assert!(matches!(
            parse(&serde_json::json!({"rows": 1})),
            Err(SourceError::BadOffset { .. })
        ));
    }

    #[test]
    fn rate_limit_shares_the_limit_in_proportion_to_each_partitions_backlog() {
        let start = offsets(&[("t", 0, 0), ("t", 1, 100), ("t", 2, 5)]);
        let latest = offsets(&[("t", 0, 300), ("t", 1, 200), ("t", 2, 6), ("t", 3, 9)]);
        // Backlogs 300, 100, 1 (partition 3 is new: it only records where it starts).
        let capped = rate_limit(&start, &latest, 100);
        // 100 * 300/401 = 74.8 -> 74; 100 * 100/401 = 24.9 -> 24; 100 * 1/401 < 1 -> 1.
        assert_eq!(
            capped,
            offsets(&[("t", 0, 74), ("t", 1, 124), ("t", 2, 6), ("t", 3, 9)])
        );
        assert_eq!(records_between(&start, &capped), 99);
        assert_eq!(rate_limit(&start, &latest, 10_000), latest);
    }

    #[test]
    fn cap_at_leaves_out_partitions_the_cap_does_not_know() {
        let now = offsets(&[("t", 0, 50), ("t", 1, 10), ("u", 0, 3)]);
        let cap = offsets(&[("t", 0, 40), ("t", 1, 20)]);
        assert_eq!(cap_at(&now, &cap), offsets(&[("t", 0, 40), ("t", 1, 10)]));
    }
}
