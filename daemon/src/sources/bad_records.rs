//! Malformed input, handled one way for every source that parses records (socket, file and
//! Kafka): `on_error = "fail"` stops the pipeline naming the record,
//! `"skip"` drops and counts it, `"dead_letter"` writes it with where it came from and why as a
//! JSON line under the state directory.
//!
//! Dead letters of one source read go to one file named after the read's range, written to a
//! temporary name and renamed, so a batch replayed after a crash (same range, same records)
//! leaves exactly one copy.

use super::SourceError;
use crate::config::OnError;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Malformed records one read dropped, for the batch's progress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MalformedCounts {
    /// Dropped (`on_error = "skip"`).
    pub skipped: u64,
    /// Written to the dead-letter folder (`on_error = "dead_letter"`).
    pub dead_lettered: u64,
}

impl MalformedCounts {
    /// Both counts together.
    pub fn total(&self) -> u64 {
        self.skipped + self.dead_lettered
    }
}

/// Where a malformed record came from; absent parts are left out of messages and dead letters.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct RecordLocation<'a> {
    /// The file it was read from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<&'a Path>,
    /// Its line in that file, from 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// Its first byte in that file, from 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub byte_offset: Option<u64>,
    /// The network peer that sent it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<&'a str>,
    /// The Kafka topic it was read from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<&'a str>,
    /// The Kafka partition it was read from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    /// Its position in the source's own log (socket: line number since the stream began;
    /// Kafka: the record's offset in its partition).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

impl std::fmt::Display for RecordLocation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut sep = "";
        if let Some(file) = self.file {
            write!(f, "{}", file.display())?;
            sep = " ";
        }
        if let Some(line) = self.line {
            write!(f, "{sep}line {line}")?;
            sep = " ";
        }
        if let Some(peer) = self.peer {
            write!(f, "{sep}from {peer}")?;
            sep = " ";
        }
        if let Some(topic) = self.topic {
            write!(f, "{sep}topic {topic}")?;
            sep = " ";
        }
        if let Some(partition) = self.partition {
            write!(f, "{sep}partition {partition}")?;
            sep = " ";
        }
        if let Some(offset) = self.offset {
            write!(f, "{sep}(offset {offset})")?;
        }
        Ok(())
    }
}

#[derive(Serialize)]
struct DeadLetter<'a> {
    source: &'static str,
    #[serde(flatten)]
    at: RecordLocation<'a>,
    reason: &'a str,
    raw: std::borrow::Cow<'a, str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    raw_is_lossy: bool,
}

/// Applies a source's `on_error` policy to the malformed records of one read at a time.
#[derive(Debug)]
pub struct BadRecords {
    policy: OnError,
    source: &'static str,
    dir: PathBuf,
    checkpoint_id: String,
    letters: Vec<u8>,
    counts: MalformedCounts,
    first: Option<String>,
}

/// Longest raw record kept in a dead letter or an error message.
const MAX_RAW_BYTES: usize = 64 * 1024;

impl BadRecords {
    /// `source` names the source type in dead letters; dead letters of the source's pipeline go
    /// to `<state_dir>/dead_letter/<pipeline>/`, in files named after the batch's range and the
    /// checkpoint id.
    pub fn new(policy: OnError, source: &'static str, ctx: &super::SourceContext) -> Self {
        BadRecords {
            policy,
            source,
            dir: dead_letter_dir(&ctx.state_dir, &ctx.pipeline),
            checkpoint_id: ctx.checkpoint_id.clone(),
            letters: Vec::new(),
            counts: MalformedCounts::default(),
            first: None,
        }
    }

    /// The policy.
    pub fn policy(&self) -> OnError {
        self.policy
    }

    /// An empty collector with the same policy, for a part of a read done on another thread;
    /// [`BadRecords::absorb`] merges it back in order.
    pub fn fork(&self) -> BadRecords {
        BadRecords {
            policy: self.policy,
            source: self.source,
            dir: self.dir.clone(),
            checkpoint_id: self.checkpoint_id.clone(),
            letters: Vec::new(),
            counts: MalformedCounts::default(),
            first: None,
        }
    }

    /// Appends what a fork collected (call in input order, so dead letters keep it).
    pub fn absorb(&mut self, other: BadRecords) {
        self.letters.extend_from_slice(&other.letters);
        self.counts.skipped += other.counts.skipped;
        self.counts.dead_lettered += other.counts.dead_lettered;
        if self.first.is_none() {
            self.first = other.first;
        }
    }

    /// Starts a read: counts and pending dead letters start from zero.
    pub fn begin(&mut self) {
        self.letters.clear();
        self.counts = MalformedCounts::default();
        self.first = None;
    }

    /// Handles one malformed record: an error under `fail`, counted otherwise.
    pub fn record(
        &mut self,
        at: RecordLocation<'_>,
        reason: &str,
        raw: &[u8],
    ) -> Result<(), SourceError> {
        let raw = &raw[..raw.len().min(MAX_RAW_BYTES)];
        match self.policy {
            OnError::Fail => {
                return Err(SourceError::Malformed {
                    location: at.to_string(),
                    reason: reason.to_string(),
                    hint: "set on_error = \"skip\" or \"dead_letter\" to go on past malformed records",
                });
            }
            OnError::Skip => self.counts.skipped += 1,
            OnError::DeadLetter => {
                let text = String::from_utf8_lossy(raw);
                let letter = DeadLetter {
                    source: self.source,
                    at,
                    reason,
                    raw_is_lossy: matches!(text, std::borrow::Cow::Owned(_)),
                    raw: text,
                };
                // Plain structs of strings and numbers always serialise.
                let _ = serde_json::to_writer(&mut self.letters, &letter);
                self.letters.push(b'\n');
                self.counts.dead_lettered += 1;
            }
        }
        if self.first.is_none() {
            self.first = Some(format!("{at}: {reason}"));
        }
        Ok(())
    }

    /// Ends a read: writes its dead letters (once per `range`) and returns its counts.
    pub fn finish(&mut self, range: &str) -> Result<MalformedCounts, SourceError> {
        if !self.letters.is_empty() {
            let path = self
                .dir
                .join(format!("{range}-{}.jsonl", self.checkpoint_id));
            if !path.exists() {
                write_atomically(&self.dir, &path, &self.letters)?;
            }
        }
        if let Some(first) = &self.first {
            let action = match self.policy {
                OnError::DeadLetter => format!("written to {}", self.dir.display()),
                _ => "skipped".to_string(),
            };
            tracing::warn!(
                "{} malformed record(s) {action}; the first: {first}",
                self.counts.total()
            );
        }
        self.letters.clear();
        Ok(self.counts)
    }
}

/// Where the dead letters of a pipeline go.
pub fn dead_letter_dir(state_dir: &Path, pipeline: &str) -> PathBuf {
    state_dir.join("dead_letter").join(pipeline)
}

fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), SourceError> {
    let io = |what: &Path| {
        let what = what.display().to_string();
        move |source| SourceError::Io {
            what: format!("cannot write dead letters to {what}"),
            source,
        }
    };
    crate::durable::create_dir_all(dir).map_err(io(dir))?;
    let tmp = path.with_extension("jsonl.tmp");
    let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    file.write_all(bytes).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: u64) -> RecordLocation<'static> {
        RecordLocation {
            file: Some(Path::new("/in/a.csv")),
            line: Some(line),
            ..RecordLocation::default()
        }
    }

    #[test]
    fn fail_names_the_record_and_the_reason() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let mut bad = BadRecords::new(
            OnError::Fail,
            "file",
            &super::super::SourceContext::for_test(dir.path())?,
        );
        bad.begin();
        let err = bad.record(at(3), "expected 3 fields, found 2", b"1,2");
        let text = err.map_err(|e| e.to_string()).err().unwrap_or_default();
        assert!(
            text.contains("/in/a.csv line 3") && text.contains("expected 3 fields"),
            "{text}"
        );
        Ok(())
    }

    #[test]
    fn dead_letters_are_written_once_per_range() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let mut bad = BadRecords::new(
            OnError::DeadLetter,
            "file",
            &super::super::SourceContext::for_test(dir.path())?,
        );
        for round in 0..2 {
            bad.begin();
            bad.record(at(2), "bad int", b"x,\xff")?;
            bad.record(at(5), "bad int", b"y")?;
            let counts = bad.finish("files-1-2")?;
            assert_eq!(counts.dead_lettered, 2, "round {round}");
        }
        let text = std::fs::read_to_string(
            dead_letter_dir(dir.path(), "p").join("files-1-2-c0ffee00.jsonl"),
        )?;
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?;
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["file"], "/in/a.csv");
        assert_eq!(lines[0]["line"], 2);
        assert_eq!(lines[0]["raw"], "x,\u{fffd}");
        assert_eq!(lines[0]["raw_is_lossy"], true);
        assert_eq!(lines[1]["raw"], "y");
        assert!(lines[1].get("raw_is_lossy").is_none());
        Ok(())
    }
}
