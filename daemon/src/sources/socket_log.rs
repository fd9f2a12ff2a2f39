//! The socket source's durable log: every received line is written here (synced) before it can
//! join a batch, so a batch's range of line numbers always means the same lines, across
//! `kill -9` too. Lines arrive in bursts and are written as one chunk per burst (group commit:
//! one synced write per burst, not per line).
//!
//! Keys, under the pipeline's prefix: `S L <first line, u64 BE>` → a chunk of lines;
//! `S N` → the number of lines ever logged (kept apart from the chunks so that truncating the
//! log never resets line numbers).

use crate::state::{SharedStore, StoreError, WriteSet, pipeline_prefix, prefix_end};

const CHUNK: u8 = b'L';
const NEXT: u8 = b'N';
const VERSION: u8 = 1;

/// One connection's bytes received together: whole lines, each ending in `\n`.
#[derive(Debug)]
pub struct Segment {
    /// Who sent it (`address:port`).
    pub peer: std::sync::Arc<str>,
    /// When weir received it, µs since the epoch.
    pub received_us: i64,
    /// How many lines `bytes` holds.
    pub lines: u32,
    /// The lines, each terminated by `\n`.
    pub bytes: Vec<u8>,
}

/// Encodes segments into one chunk value.
#[derive(Debug, Default)]
pub struct ChunkBuilder {
    peers: Vec<std::sync::Arc<str>>,
    body: Vec<u8>,
    segments: u32,
    lines: u64,
}

impl ChunkBuilder {
    /// Adds a segment.
    pub fn push(&mut self, segment: &Segment) {
        let peer = match self.peers.iter().position(|p| **p == *segment.peer) {
            Some(i) => i,
            None => {
                self.peers.push(segment.peer.clone());
                self.peers.len() - 1
            }
        };
        self.body
            .extend_from_slice(&segment.received_us.to_be_bytes());
        self.body
            .extend_from_slice(&u16::try_from(peer).unwrap_or(u16::MAX).to_be_bytes());
        self.body.extend_from_slice(&segment.lines.to_be_bytes());
        self.body.extend_from_slice(
            &u32::try_from(segment.bytes.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        self.body.extend_from_slice(&segment.bytes);
        self.segments += 1;
        self.lines += u64::from(segment.lines);
    }

    /// Lines so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Bytes so far.
    pub fn len(&self) -> usize {
        self.body.len()
    }

    /// True when nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.segments == 0
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 64);
        out.push(VERSION);
        out.extend_from_slice(&(self.peers.len() as u16).to_be_bytes());
        for peer in &self.peers {
            let bytes = &peer.as_bytes()[..peer.len().min(u16::MAX as usize)];
            out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
            out.extend_from_slice(bytes);
        }
        out.extend_from_slice(&self.segments.to_be_bytes());
        out.extend_from_slice(&self.body);
        out
    }
}

/// A logged line, borrowed from its chunk.
#[derive(Debug)]
pub struct LoggedLine<'a> {
    /// Its number since the stream began.
    pub seq: u64,
    /// When weir received it, µs since the epoch.
    pub received_us: i64,
    /// Who sent it.
    pub peer: &'a str,
    /// The line without its `\n` (a `\r` before it is kept; the source strips it).
    pub bytes: &'a [u8],
}

/// A chunk that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("socket log chunk at line {first} is damaged: {reason}")]
pub struct CorruptChunk {
    first: u64,
    reason: &'static str,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    first: u64,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CorruptChunk> {
        if self.bytes.len() < n {
            return Err(CorruptChunk {
                first: self.first,
                reason: "truncated",
            });
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], CorruptChunk> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}

/// Calls `visit` with every line of an encoded chunk whose number is in `[from, to)`.
fn decode_chunk(
    first: u64,
    value: &[u8],
    from: u64,
    to: u64,
    visit: &mut dyn FnMut(LoggedLine<'_>),
) -> Result<(), CorruptChunk> {
    let mut cur = Cursor {
        bytes: value,
        first,
    };
    if cur.array::<1>()?[0] != VERSION {
        return Err(CorruptChunk {
            first,
            reason: "unknown version",
        });
    }
    let peers = u16::from_be_bytes(cur.array()?);
    let mut names = Vec::with_capacity(peers as usize);
    for _ in 0..peers {
        let len = u16::from_be_bytes(cur.array()?) as usize;
        names.push(std::str::from_utf8(cur.take(len)?).unwrap_or("?"));
    }
    let segments = u32::from_be_bytes(cur.array()?);
    let mut seq = first;
    for _ in 0..segments {
        if seq >= to {
            break;
        }
        let received_us = i64::from_be_bytes(cur.array()?);
        let peer = u16::from_be_bytes(cur.array()?) as usize;
        let lines = u64::from(u32::from_be_bytes(cur.array()?));
        let len = u32::from_be_bytes(cur.array()?) as usize;
        let bytes = cur.take(len)?;
        if seq + lines <= from {
            seq += lines;
            continue;
        }
        let peer = names.get(peer).copied().unwrap_or("?");
        for line in bytes
            .strip_suffix(b"\n")
            .unwrap_or(bytes)
            .split(|b| *b == b'\n')
        {
            if seq >= from && seq < to {
                visit(LoggedLine {
                    seq,
                    received_us,
                    peer,
                    bytes: line,
                });
            }
            seq += 1;
        }
    }
    Ok(())
}

/// One pipeline's socket log.
#[derive(Clone)]
pub struct SocketLog {
    store: SharedStore,
    prefix: Vec<u8>,
}

impl std::fmt::Debug for SocketLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SocketLog")
    }
}

/// Reading or writing the log failed.
#[derive(Debug, thiserror::Error)]
pub enum SocketLogError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A chunk is damaged.
    #[error(transparent)]
    Corrupt(#[from] CorruptChunk),
}

impl SocketLog {
    /// The log of `pipeline` in `store`.
    pub fn new(store: SharedStore, pipeline: &str) -> SocketLog {
        let mut prefix = pipeline_prefix(pipeline);
        prefix.push(b'S');
        SocketLog { store, prefix }
    }

    fn chunk_key(&self, first: u64) -> Vec<u8> {
        let mut key = self.prefix.clone();
        key.push(CHUNK);
        key.extend_from_slice(&first.to_be_bytes());
        key
    }

    fn next_key(&self) -> Vec<u8> {
        let mut key = self.prefix.clone();
        key.push(NEXT);
        key
    }

    /// How many lines were ever logged: the number the next line gets.
    pub fn next_seq(&self) -> Result<u64, StoreError> {
        Ok(self
            .store
            .get(&self.next_key())?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map_or(0, u64::from_be_bytes))
    }

    /// Durably appends a chunk whose first line is number `first`; returns its size in the log.
    pub fn append(&self, first: u64, chunk: &ChunkBuilder) -> Result<u64, StoreError> {
        let mut ws = WriteSet::default();
        let encoded = chunk.encode();
        let size = encoded.len() as u64;
        ws.put(self.chunk_key(first), encoded);
        ws.put(
            self.next_key(),
            (first + chunk.lines()).to_be_bytes().to_vec(),
        );
        self.store.write(ws, true)?;
        Ok(size)
    }

    /// The key of the chunk holding line `seq`, if it is still logged.
    fn chunk_holding(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let mut found = None;
        self.store.scan(
            &self.chunk_key(0),
            &self.chunk_key(seq.saturating_add(1)),
            true,
            &mut |key, _| {
                found = Some(key.to_vec());
                false
            },
        )?;
        Ok(found)
    }

    /// Visits lines `[from, to)` in order.
    pub fn read(
        &self,
        from: u64,
        to: u64,
        visit: &mut dyn FnMut(LoggedLine<'_>),
    ) -> Result<(), SocketLogError> {
        if from >= to {
            return Ok(());
        }
        let start = self
            .chunk_holding(from)?
            .unwrap_or_else(|| self.chunk_key(0));
        let mut chunks = Vec::new();
        self.store
            .scan(&start, &self.chunk_key(to), false, &mut |key, value| {
                chunks.push((key.to_vec(), value.to_vec()));
                true
            })?;
        let at = self.prefix.len() + 1;
        for (key, value) in chunks {
            let first = key
                .get(at..at + 8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(0, u64::from_be_bytes);
            decode_chunk(first, &value, from, to, visit)?;
        }
        Ok(())
    }

    /// Drops every chunk that holds only lines before `seq` (their batches have committed).
    /// Returns the first line of the oldest chunk kept, if any is.
    pub fn truncate_before(&self, seq: u64) -> Result<Option<u64>, StoreError> {
        let mut ws = WriteSet::default();
        if seq >= self.next_seq()? {
            // Every line logged so far is below `seq`: no chunk is needed any more. (A chunk
            // appended meanwhile starts at `seq` or later and is not in the range.)
            ws.delete_range(self.chunk_key(0), self.chunk_key(seq));
            self.store.write(ws, false)?;
            return Ok(None);
        }
        let Some(holding) = self.chunk_holding(seq)? else {
            return Ok(None);
        };
        let first = self.first_line_of(&holding);
        ws.delete_range(self.chunk_key(0), holding);
        // Not synced: a truncation lost in a crash is redone after the next commit.
        self.store.write(ws, false)?;
        Ok(Some(first))
    }

    fn first_line_of(&self, key: &[u8]) -> u64 {
        let at = self.prefix.len() + 1;
        key.get(at..at + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(0, u64::from_be_bytes)
    }

    /// Each logged chunk's size in bytes, by its first line (read once at start, to know how
    /// full the log is).
    pub fn chunk_sizes(&self) -> Result<std::collections::BTreeMap<u64, u64>, StoreError> {
        let mut sizes = std::collections::BTreeMap::new();
        let from = self.chunk_key(0);
        self.store.scan(
            &from,
            &prefix_end(&from[..from.len() - 8]),
            false,
            &mut |key, value| {
                sizes.insert(self.first_line_of(key), value.len() as u64);
                true
            },
        )?;
        Ok(sizes)
    }

    /// Number of chunks still logged (for tests and the status).
    pub fn chunks(&self) -> Result<usize, StoreError> {
        let mut n = 0;
        let from = self.chunk_key(0);
        self.store.scan(
            &from,
            &prefix_end(&from[..from.len() - 8]),
            false,
            &mut |_, _| {
                n += 1;
                true
            },
        )?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::RocksStore;
    use std::sync::Arc;

    fn segment(peer: &str, lines: &[&str]) -> Segment {
        let mut bytes = Vec::new();
        for line in lines {
            bytes.extend_from_slice(line.as_bytes());
            bytes.push(b'\n');
        }
        Segment {
            peer: peer.into(),
            received_us: 7,
            lines: lines.len() as u32,
            bytes,
        }
    }

    fn lines(
        log: &SocketLog,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, String, String)>, SocketLogError> {
        let mut out = Vec::new();
        log.read(from, to, &mut |l| {
            out.push((
                l.seq,
                l.peer.to_string(),
                String::from_utf8_lossy(l.bytes).into_owned(),
            ))
        })?;
        Ok(out)
    }

    #[test]
    fn ranges_read_the_same_lines_and_truncation_keeps_numbering()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store: SharedStore = Arc::new(RocksStore::open(dir.path())?);
        let log = SocketLog::new(store.clone(), "p");
        assert_eq!(log.next_seq()?, 0);
        let mut chunk = ChunkBuilder::default();
        chunk.push(&segment("a:1", &["zero", "one"]));
        chunk.push(&segment("b:2", &["two", "", "four"]));
        log.append(0, &chunk)?;
        let mut chunk = ChunkBuilder::default();
        chunk.push(&segment("a:1", &["five", "six"]));
        log.append(5, &chunk)?;
        assert_eq!(log.next_seq()?, 7);

        let all = lines(&log, 0, 7)?;
        let texts: Vec<_> = all.iter().map(|l| l.2.as_str()).collect();
        assert_eq!(texts, ["zero", "one", "two", "", "four", "five", "six"]);
        assert_eq!(all[2].1, "b:2");
        let middle = lines(&log, 3, 6)?;
        assert_eq!(
            middle.iter().map(|l| l.0).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );

        log.truncate_before(4)?;
        assert_eq!(log.chunks()?, 2, "chunk 0 still holds line 4");
        log.truncate_before(5)?;
        assert_eq!(log.chunks()?, 1);
        assert_eq!(lines(&log, 5, 7)?.len(), 2);
        // Once every logged line is committed, no chunk is kept (a full log could otherwise
        // wait forever for room a kept chunk holds), and numbering goes on.
        log.truncate_before(7)?;
        assert_eq!(log.chunks()?, 0);
        assert_eq!(log.next_seq()?, 7);
        let mut chunk = ChunkBuilder::default();
        chunk.push(&segment("a:1", &["seven"]));
        log.append(7, &chunk)?;
        assert_eq!(lines(&log, 7, 8)?.len(), 1);
        // Other pipelines' logs are separate.
        assert_eq!(SocketLog::new(store, "p2").next_seq()?, 0);
        Ok(())
    }
}
