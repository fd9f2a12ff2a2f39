//! How aggregation state sits in the store. Keys are
//! `pipeline prefix | 'a' | window end | window start | group key` with big-endian,
//! sign-flipped timestamps, so all windows that end by a watermark form one key range: expiry
//! and append-mode emission are a range delete, never a scan. The values are the
//! accumulators' states, each length-prefixed. `pipeline prefix | 'm'` holds [`Meta`].

use crate::state::{SharedStore, StoreError, prefix_end};
use serde::{Deserialize, Serialize};

const STATE: u8 = b'a';
const META: u8 = b'm';

/// The layout of the aggregation's stored state (keys and value encoding) this weir writes.
/// A weir refuses state in a newer format instead of misreading it; a change of layout bumps
/// it (and reads the older formats it knows).
pub const STATE_FORMAT: u32 = 1;

fn state_format_1() -> u32 {
    1
}

/// What the aggregation keeps besides its groups, committed with every batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The state format it was written in ([`STATE_FORMAT`]); state from before the field
    /// existed is format 1.
    #[serde(default = "state_format_1")]
    pub format: u32,
    /// Description of the stateful part this state was written by (group keys, window,
    /// functions); state written by another description is not reused.
    pub fingerprint: String,
    /// The eviction watermark of the last committed batch: rows whose window ended by it are
    /// late.
    pub last_eviction_ms: Option<i64>,
    /// Largest event time seen so far.
    pub max_event_time_ms: Option<i64>,
}

impl Default for Meta {
    fn default() -> Self {
        Meta {
            format: STATE_FORMAT,
            fingerprint: String::new(),
            last_eviction_ms: None,
            max_event_time_ms: None,
        }
    }
}

/// Order-preserving encoding of a signed timestamp.
pub fn encode_time(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

fn decode_time(bytes: &[u8]) -> Option<i64> {
    let array: [u8; 8] = bytes.try_into().ok()?;
    Some((u64::from_be_bytes(array) ^ (1 << 63)) as i64)
}

/// Key builder for one pipeline's aggregation state.
#[derive(Debug, Clone)]
pub struct StateKeys {
    prefix: Vec<u8>,
}

/// One stored group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredGroup {
    /// Window start (µs).
    pub start: i64,
    /// Window end (µs).
    pub end: i64,
    /// Row-format key bytes.
    pub key: Vec<u8>,
    /// Each accumulator's saved state.
    pub states: Vec<Vec<u8>>,
}

impl StateKeys {
    /// Keys under a pipeline's prefix (`state::pipeline_prefix`).
    pub fn new(pipeline_prefix: &[u8]) -> StateKeys {
        StateKeys {
            prefix: pipeline_prefix.to_vec(),
        }
    }

    /// The key of a group.
    pub fn group(&self, end: i64, start: i64, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + 17 + key.len());
        k.extend_from_slice(&self.prefix);
        k.push(STATE);
        k.extend_from_slice(&encode_time(end));
        k.extend_from_slice(&encode_time(start));
        k.extend_from_slice(key);
        k
    }

    /// `[from, to)` covering every group whose window ends at or before `watermark`.
    pub fn ended_by(&self, watermark: i64) -> (Vec<u8>, Vec<u8>) {
        let mut from = self.prefix.clone();
        from.push(STATE);
        let mut to = from.clone();
        to.extend_from_slice(&encode_time(watermark.saturating_add(1)));
        (from, to)
    }

    /// `[from, to)` covering all groups.
    pub fn all(&self) -> (Vec<u8>, Vec<u8>) {
        let mut from = self.prefix.clone();
        from.push(STATE);
        let to = prefix_end(&from);
        (from, to)
    }

    /// The metadata key.
    pub fn meta(&self) -> Vec<u8> {
        let mut k = self.prefix.clone();
        k.push(META);
        k
    }

    /// Visits every stored group, latest window end first (the windows rows are likeliest to
    /// reach next), without holding them all.
    pub fn for_each_latest_first(
        &self,
        store: &SharedStore,
        visit: &mut dyn FnMut(StoredGroup) -> Result<(), String>,
    ) -> Result<(), String> {
        let (from, to) = self.all();
        self.visit_range(store, from, to, true, visit)
    }

    /// Reads the stored groups whose window ended by `watermark`.
    pub fn load_ended_by(
        &self,
        store: &SharedStore,
        watermark: i64,
    ) -> Result<Vec<StoredGroup>, String> {
        let (from, to) = self.ended_by(watermark);
        self.load_range(store, from, to)
    }

    /// The states of one stored group, if it is stored.
    pub fn load_group(
        &self,
        store: &SharedStore,
        end: i64,
        start: i64,
        key: &[u8],
    ) -> Result<Option<Vec<Vec<u8>>>, String> {
        let stored = store
            .get(&self.group(end, start, key))
            .map_err(|e| e.to_string())?;
        match stored {
            None => Ok(None),
            Some(value) => decode_states(&value)
                .map(Some)
                .ok_or_else(|| "stored aggregation state is damaged".to_string()),
        }
    }

    fn load_range(
        &self,
        store: &SharedStore,
        from: Vec<u8>,
        to: Vec<u8>,
    ) -> Result<Vec<StoredGroup>, String> {
        let mut groups = Vec::new();
        self.visit_range(store, from, to, false, &mut |group| {
            groups.push(group);
            Ok(())
        })?;
        Ok(groups)
    }

    fn visit_range(
        &self,
        store: &SharedStore,
        from: Vec<u8>,
        to: Vec<u8>,
        reverse: bool,
        visit: &mut dyn FnMut(StoredGroup) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut failed = None;
        let skip = from.len();
        store
            .scan(&from, &to, reverse, &mut |key, value| {
                let result = match decode_group(&key[skip..], value) {
                    Some(group) => visit(group),
                    None => Err(format!(
                        "stored aggregation state is damaged at key {:?}",
                        String::from_utf8_lossy(key)
                    )),
                };
                failed = result.err();
                failed.is_none()
            })
            .map_err(|e: StoreError| e.to_string())?;
        failed.map_or(Ok(()), Err)
    }

    /// Reads the metadata.
    pub fn load_meta(&self, store: &SharedStore) -> Result<Option<Meta>, String> {
        match store.get(&self.meta()).map_err(|e| e.to_string())? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("stored aggregation metadata is damaged: {e}")),
        }
    }
}

/// Concatenates accumulator states, each prefixed with its length.
pub fn encode_states(states: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(states.iter().map(|s| s.len() + 4).sum());
    for s in states {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s);
    }
    out
}

fn decode_states(value: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut states = Vec::new();
    let mut at = 0;
    while at < value.len() {
        let len = u32::from_le_bytes(value.get(at..at + 4)?.try_into().ok()?) as usize;
        states.push(value.get(at + 4..at + 4 + len)?.to_vec());
        at += 4 + len;
    }
    Some(states)
}

fn decode_group(key: &[u8], value: &[u8]) -> Option<StoredGroup> {
    let end = decode_time(key.get(0..8)?)?;
    let start = decode_time(key.get(8..16)?)?;
    Some(StoredGroup {
        start,
        end,
        key: key.get(16..)?.to_vec(),
        states: decode_states(value)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_encoding_preserves_order_across_zero() {
        let times = [i64::MIN, -5_000_000, -1, 0, 1, 10_000_000, i64::MAX];
        let encoded: Vec<[u8; 8]> = times.iter().map(|t| encode_time(*t)).collect();
        assert!(encoded.windows(2).all(|w| w[0] < w[1]));
        for t in times {
            assert_eq!(decode_time(&encode_time(t)), Some(t));
        }
    }

    #[test]
    fn the_ended_by_range_holds_exactly_the_windows_ending_by_the_watermark() {
        let keys = StateKeys::new(b"p\0x\0");
        let (from, to) = keys.ended_by(10);
        for (end, inside) in [
            (-3, true),
            (9, true),
            (10, true),
            (11, false),
            (i64::MAX, false),
        ] {
            let k = keys.group(end, end - 5, b"\x01key");
            assert_eq!(k >= from && k < to, inside, "window ending at {end}");
        }
    }
}
