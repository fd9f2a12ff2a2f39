//! `GET /pipelines/NAME/progress?last=N&after=ID`: a pipeline's recent batches as Spark's
//! `StreamingQueryProgress` JSON (the same field names, so that scripts written against Spark's
//! `query.recentProgress` read them unchanged), oldest first, with weir's own figures beside
//! them under `weir`.

use crate::engine::{BatchProgress, QueryIdentity};
use serde_json::{Map, Value, json};

/// Spark's timestamp text: RFC 3339 in UTC with milliseconds.
fn spark_time(ms: i64) -> Value {
    chrono::DateTime::from_timestamp_millis(ms).map_or(Value::Null, |t| {
        Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    })
}

/// Spark reports whole milliseconds.
fn whole_ms(ms: f64) -> Value {
    json!(ms.round() as i64)
}

/// One batch as Spark's `StreamingQueryProgress`.
pub fn spark_progress(p: &BatchProgress, query: &QueryIdentity) -> Value {
    let d = &p.duration_ms;
    let mut event_time = Map::new();
    let states = &p.state_operators;
    let min = states.iter().filter_map(|s| s.event_time_min_ms).min();
    let max = states.iter().filter_map(|s| s.event_time_max_ms).max();
    let avg = states.iter().find_map(|s| s.event_time_avg_ms);
    for (key, ms) in [
        ("min", min),
        ("max", max),
        ("avg", avg),
        ("watermark", p.watermark_ms),
    ] {
        if let Some(ms) = ms {
            event_time.insert(key.into(), spark_time(ms));
        }
    }
    let state_operators: Vec<Value> = states
        .iter()
        .map(|s| {
            json!({
                "operatorName": "stateStoreSave",
                "numRowsTotal": s.num_rows_total,
                "numRowsUpdated": s.num_rows_updated,
                "numRowsRemoved": s.num_rows_removed,
                "numRowsDroppedByWatermark": s.num_rows_dropped_by_watermark,
                "memoryUsedBytes": s.memory_used_bytes,
                "customMetrics": {
                    "numRowsInMemory": s.num_rows_in_memory,
                },
            })
        })
        .collect();
    json!({
        "id": query.id,
        "runId": query.run_id,
        "name": p.name,
        "timestamp": p.timestamp,
        "batchId": p.batch_id,
        "batchDuration": whole_ms(d.trigger_execution),
        "numInputRows": p.num_input_rows,
        "inputRowsPerSecond": p.input_rows_per_second,
        "processedRowsPerSecond": p.processed_rows_per_second,
        "durationMs": {
            "latestOffset": whole_ms(d.latest_offset),
            "walCommit": whole_ms(d.wal_commit),
            "getBatch": whole_ms(d.get_batch),
            "queryPlanning": 0,
            "addBatch": whole_ms(d.process + d.add_batch),
            "commitOffsets": whole_ms(d.commit_offsets),
            "triggerExecution": whole_ms(d.trigger_execution),
        },
        "eventTime": event_time,
        "stateOperators": state_operators,
        "sources": [{
            "description": query.source,
            "startOffset": p.start_offset,
            "endOffset": p.end_offset,
            "latestOffset": p.end_offset,
            "numInputRows": p.num_input_rows,
            "inputRowsPerSecond": p.input_rows_per_second,
            "processedRowsPerSecond": p.processed_rows_per_second,
            // Spark's source metrics are strings.
            "metrics": p.source_backlog.as_ref().map_or_else(|| json!({}), source_metrics),
        }],
        "sink": {
            "description": query.sinks.join(", "),
            "numOutputRows": p.num_output_rows,
            "metrics": {},
        },
        "weir": {
            "attempts": p.attempts,
            "numMalformedSkipped": p.num_malformed_skipped,
            "numMalformedDeadLettered": p.num_malformed_dead_lettered,
            "stateDiskBytes": p.state_disk_bytes,
            "knownEnd": p.source_known_end,
            "sinks": query.sinks,
            // Spark's addBatch covers transforms, aggregation and sinks; weir times them apart,
            // to the microsecond.
            "durationMs": {
                "latestOffset": d.latest_offset,
                "walCommit": d.wal_commit,
                "getBatch": d.get_batch,
                "process": d.process,
                "sinks": d.add_batch,
                "commitOffsets": d.commit_offsets,
                "triggerExecution": d.trigger_execution,
            },
        },
    })
}

/// Which batches a progress request asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgressQuery {
    /// `last=N`: the newest N (of those after `after`).
    pub last: Option<usize>,
    /// `after=ID`: only batches with a larger id (what a page that has the rest asks for).
    pub after: Option<u64>,
}

impl ProgressQuery {
    /// Reads `last=N&after=ID` (both optional), or says what is wrong.
    pub fn parse(query: Option<&str>) -> Result<ProgressQuery, String> {
        let mut out = ProgressQuery::default();
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            match pair.split_once('=') {
                Some(("last", n)) => match n.parse::<usize>() {
                    Ok(n) => out.last = Some(n),
                    Err(_) => return Err(format!("last={n}: not a number of batches")),
                },
                Some(("after", id)) => match id.parse::<u64>() {
                    Ok(id) => out.after = Some(id),
                    Err(_) => return Err(format!("after={id}: not a batch id")),
                },
                _ => {
                    return Err(format!(
                        "unknown query parameter `{pair}` (expected last=N and/or after=ID)"
                    ));
                }
            }
        }
        Ok(out)
    }

    /// The batches of `recent` (oldest first) it asks for.
    pub fn select<'a>(&self, recent: &'a [BatchProgress]) -> &'a [BatchProgress] {
        let from = self
            .after
            .map_or(0, |after| recent.partition_point(|p| p.batch_id <= after));
        let chosen = &recent[from..];
        let skip = self.last.map_or(0, |n| chosen.len().saturating_sub(n));
        &chosen[skip..]
    }
}

/// The source's `metrics` in Spark's progress: the backlog, and for a source with partitions
/// (Kafka) Spark's own `minOffsetsBehindLatest`, `maxOffsetsBehindLatest` and
/// `avgOffsetsBehindLatest` over them.
fn source_metrics(b: &crate::sources::Backlog) -> Value {
    let mut metrics = json!({"backlog": b.amount.to_string(), "backlogUnit": b.unit});
    let behind = b.parts.iter().map(|p| p.amount);
    if let (Some(min), Some(max)) = (behind.clone().min(), behind.clone().max()) {
        let avg = behind.map(|a| a as f64).sum::<f64>() / b.parts.len() as f64;
        metrics["minOffsetsBehindLatest"] = json!(min.to_string());
        metrics["maxOffsetsBehindLatest"] = json!(max.to_string());
        metrics["avgOffsetsBehindLatest"] = json!(format!("{avg:?}"));
    }
    metrics
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Durations, StateOperatorProgress};

    #[test]
    fn a_batch_reads_as_spark_with_its_field_names_and_iso_times() {
        let progress = BatchProgress {
            name: "iot".into(),
            batch_id: 7,
            timestamp: "2025-12-01T00:00:10.000Z".into(),
            num_input_rows: 30,
            input_rows_per_second: 3.0,
            processed_rows_per_second: 300.0,
            num_output_rows: 4,
            duration_ms: Durations {
                get_batch: 2.4,
                process: 1.2,
                add_batch: 0.5,
                trigger_execution: 9.6,
                ..Durations::default()
            },
            start_offset: json!({"files": 1}),
            end_offset: json!({"files": 2}),
            watermark_ms: Some(1_764_547_205_000),
            attempts: 1,
            num_malformed_skipped: 0,
            num_malformed_dead_lettered: 2,
            state_operators: vec![StateOperatorProgress {
                num_rows_total: 5,
                event_time_max_ms: Some(1_764_547_210_000),
                ..StateOperatorProgress::default()
            }],
            source_backlog: Some(crate::sources::Backlog {
                amount: 3,
                unit: "files".into(),
                parts: Vec::new(),
            }),
            state_disk_bytes: Some(4096),
            source_known_end: None,
        };
        let query = QueryIdentity {
            id: "c0ffee".into(),
            run_id: "r".into(),
            source: "file".into(),
            sinks: vec!["console".into(), "file".into()],
        };
        let v = spark_progress(&progress, &query);
        assert_eq!(v["batchId"], 7);
        assert_eq!(v["numInputRows"], 30);
        assert_eq!(v["durationMs"]["triggerExecution"], 10);
        assert_eq!(v["durationMs"]["addBatch"], 2);
        assert_eq!(v["eventTime"]["watermark"], "2025-12-01T00:00:05.000Z");
        assert_eq!(v["eventTime"]["max"], "2025-12-01T00:00:10.000Z");
        assert!(v["eventTime"].get("min").is_none());
        assert_eq!(v["stateOperators"][0]["numRowsTotal"], 5);
        assert_eq!(v["sources"][0]["endOffset"]["files"], 2);
        assert_eq!(v["sink"]["numOutputRows"], 4);
        assert_eq!(v["sink"]["description"], "console, file");
        assert_eq!(v["weir"]["numMalformedDeadLettered"], 2);
        assert_eq!(v["weir"]["stateDiskBytes"], 4096);
        assert_eq!(v["sources"][0]["metrics"]["backlog"], "3");
        assert_eq!(v["sources"][0]["metrics"]["backlogUnit"], "files");
        assert!(
            v["sources"][0]["metrics"]
                .get("maxOffsetsBehindLatest")
                .is_none()
        );
    }

    #[test]
    fn a_kafka_backlog_gives_sparks_min_max_and_average_offsets_behind_latest() {
        let parts = [("t/0", 1), ("t/1", 4), ("t/2", 0)]
            .map(|(part, amount)| crate::sources::PartBacklog {
                part: part.into(),
                amount,
            })
            .to_vec();
        let metrics = super::source_metrics(&crate::sources::Backlog {
            amount: 5,
            unit: "records".into(),
            parts,
        });
        assert_eq!(metrics["backlog"], "5");
        assert_eq!(metrics["minOffsetsBehindLatest"], "0");
        assert_eq!(metrics["maxOffsetsBehindLatest"], "4");
        assert_eq!(metrics["avgOffsetsBehindLatest"], "1.6666666666666667");
    }

    #[test]
    fn the_query_takes_the_last_n_after_an_id_and_names_what_it_does_not_understand() {
        assert_eq!(ProgressQuery::parse(None), Ok(ProgressQuery::default()));
        let q = ProgressQuery::parse(Some("last=2&after=5"));
        let both = ProgressQuery {
            last: Some(2),
            after: Some(5),
        };
        assert_eq!(q, Ok(both));
        assert!(ProgressQuery::parse(Some("last=x")).is_err_and(|e| e.contains("not a number")));
        assert!(
            ProgressQuery::parse(Some("first=1")).is_err_and(|e| e.contains("expected last=N"))
        );
        let batches: Vec<BatchProgress> = (3..10)
            .map(|batch_id| BatchProgress {
                name: "p".into(),
                batch_id,
                timestamp: String::new(),
                num_input_rows: 0,
                input_rows_per_second: 0.0,
                processed_rows_per_second: 0.0,
                num_output_rows: 0,
                duration_ms: Durations::default(),
                start_offset: Value::Null,
                end_offset: Value::Null,
                watermark_ms: None,
                attempts: 1,
                num_malformed_skipped: 0,
                num_malformed_dead_lettered: 0,
                state_operators: Vec::new(),
                source_backlog: None,
                state_disk_bytes: None,
                source_known_end: None,
            })
            .collect();
        let ids = |last, after| -> Vec<u64> {
            ProgressQuery { last, after }
                .select(&batches)
                .iter()
                .map(|b| b.batch_id)
                .collect()
        };
        assert_eq!(ids(Some(2), None), vec![8, 9]);
        assert_eq!(ids(None, Some(6)), vec![7, 8, 9]);
        assert_eq!(ids(Some(1), Some(6)), vec![9]);
        assert_eq!(ids(None, Some(9)), Vec::<u64>::new());
    }
}
