//! `socket`: lines of text from TCP, one row each (Spark's text socket source), made replayable.
//!
//! Network tasks (a connector in `connect` mode, an acceptor and one reader per producer in
//! `listen` mode) hand whole lines to one writer task, which appends each burst to the durable
//! [`SocketLog`] with one synced write. Only logged lines are visible to `latest_offset`, and
//! offsets are line numbers in that log, so a batch replayed after `kill -9` reads exactly the
//! lines it read before. The log is truncated once the batches that read it have committed.
//! The tasks end when the source is dropped.

use super::bad_records::{BadRecords, MalformedCounts, RecordLocation};
use super::socket_log::{ChunkBuilder, Segment, SocketLog};
use super::{
    CHUNK_ROWS, ReadLimit, Source, SourceContext, SourceError, SourceOffset, SourceTasks, Wakeup,
};
use crate::config::{SocketMode, SocketSpec};
use arrow::array::{ArrayRef, StringBuilder, TimestampMicrosecondBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, mpsc};

/// Bytes a writer burst may gather before it is written.
const MAX_BURST_BYTES: usize = 4 << 20;
/// Segments queued between the network tasks and the writer: past this, readers wait, and TCP
/// pushes back on the producers.
const QUEUE_SEGMENTS: usize = 256;
const READ_BUFFER: usize = 64 * 1024;
/// How long a connection may wait for room in `max_pending_bytes` before it is closed (so that
/// connections all holding incomplete lines cannot wait for each other forever).
const PENDING_WAIT: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The schema: `value` (string), plus `timestamp` with `include_timestamp`.
pub fn schema(spec: &SocketSpec) -> SchemaRef {
    let mut fields = vec![Field::new("value", DataType::Utf8, false)];
    if spec.include_timestamp {
        fields.push(Field::new(
            "timestamp",
            super::rate::timestamp_type(),
            false,
        ));
    }
    Arc::new(Schema::new(fields))
}

/// `{"lines": n}`: the first line a batch has not read.
fn parse_offset(value: &SourceOffset) -> Result<u64, SourceError> {
    value
        .get("lines")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| SourceError::BadOffset {
            offset: value.to_string(),
            reason: "expected {\"lines\": n}".into(),
        })
}

fn offset(lines: u64) -> SourceOffset {
    serde_json::json!({ "lines": lines })
}

/// What the network tasks and the source share.
#[derive(Debug)]
struct Shared {
    /// Lines durably logged: the newest offset a batch may end at.
    logged: AtomicU64,
    /// Rung after every logged burst.
    notify: Arc<Notify>,
    status: Mutex<String>,
    /// Why the writer stopped, if it did (the store failed).
    failed: Mutex<Option<String>>,
    /// Bytes of incomplete lines all connections may hold together (`max_pending_bytes`).
    pending: Arc<Semaphore>,
    /// The log's chunks not yet trimmed: first line → bytes.
    log_chunks: Mutex<BTreeMap<u64, u64>>,
    /// Their total.
    log_bytes: AtomicU64,
    /// Rung when the log is trimmed.
    log_room: Notify,
    /// The writer waits for room in the log (`max_log_bytes`).
    log_full: AtomicBool,
}

impl Shared {
    fn set_status(&self, status: String) {
        let mut s = self.status.lock().unwrap_or_else(|e| e.into_inner());
        if *s != status {
            tracing::info!("socket source: {status}");
        }
        *s = status;
    }
}

/// The socket source.
#[derive(Debug)]
pub struct SocketSource {
    spec: SocketSpec,
    schema: SchemaRef,
    log: SocketLog,
    shared: Arc<Shared>,
    bad: BadRecords,
    malformed: MalformedCounts,
    frozen: Option<u64>,
    /// Lines logged that the last `latest_offset` left for later batches.
    backlog: u64,
    /// Lines logged before this source started its network tasks: where a new stream begins.
    first_new_line: u64,
    trimmed_below: u64,
    tasks: SourceTasks,
    /// Where `listen` mode actually listens (port 0 resolved).
    pub local_addr: Option<std::net::SocketAddr>,
}

impl Drop for SocketSource {
    fn drop(&mut self) {
        self.tasks.abort();
    }
}

fn io_error(what: String) -> impl FnOnce(std::io::Error) -> SourceError {
    move |source| SourceError::Io { what, source }
}

impl SocketSource {
    /// Opens the log and starts the network tasks; must run inside a tokio runtime.
    pub fn open(spec: SocketSpec, ctx: &SourceContext) -> Result<SocketSource, SourceError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|err| SourceError::Io {
            what: "the socket source needs the async runtime (a bug)".into(),
            source: std::io::Error::other(err),
        })?;
        let log = SocketLog::new(ctx.store.clone(), &ctx.pipeline);
        let next = log.next_seq()?;
        let chunks = log.chunk_sizes()?;
        let shared = Arc::new(Shared {
            logged: AtomicU64::new(next),
            notify: Arc::new(Notify::new()),
            status: Mutex::new(String::new()),
            failed: Mutex::new(None),
            pending: Arc::new(Semaphore::new(
                usize::try_from(spec.max_pending_bytes)
                    .unwrap_or(usize::MAX)
                    .min(Semaphore::MAX_PERMITS),
            )),
            log_bytes: AtomicU64::new(chunks.values().sum()),
            log_chunks: Mutex::new(chunks),
            log_room: Notify::new(),
            log_full: AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::channel(QUEUE_SEGMENTS);
        let tasks = SourceTasks::default();
        tasks.push(runtime.spawn(writer(
            rx,
            log.clone(),
            shared.clone(),
            next,
            spec.max_log_bytes,
        )));
        let mut local_addr = None;
        match &spec.mode {
            SocketMode::Connect { host, port } => {
                shared.set_status(format!("waiting for peer {host}:{port}"));
                tasks.push(runtime.spawn(connector(
                    host.clone(),
                    *port,
                    tx,
                    shared.clone(),
                    spec.max_line_bytes,
                )));
            }
            SocketMode::Listen { bind } => {
                let listener = std::net::TcpListener::bind(bind.as_str())
                    .and_then(|l| l.set_nonblocking(true).map(|()| l))
                    .map_err(io_error(format!("cannot listen on {bind}")))?;
                let addr = listener
                    .local_addr()
                    .map_err(io_error(format!("cannot listen on {bind}")))?;
                let listener = {
                    let _guard = runtime.enter();
                    TcpListener::from_std(listener)
                        .map_err(io_error(format!("cannot listen on {bind}")))?
                };
                tracing::info!(pipeline = %ctx.pipeline, "socket source listening on {addr}");
                local_addr = Some(addr);
                shared.set_status(format!("waiting for peer: listening on {addr}"));
                tasks.push(runtime.spawn(acceptor(
                    listener,
                    addr,
                    tx,
                    shared.clone(),
                    spec.max_line_bytes,
                    spec.max_connections,
                )));
            }
        }
        Ok(SocketSource {
            bad: BadRecords::new(spec.on_error, "socket", ctx),
            schema: schema(&spec),
            spec,
            log,
            shared,
            malformed: MalformedCounts::default(),
            frozen: None,
            backlog: 0,
            first_new_line: next,
            trimmed_below: 0,
            tasks,
            local_addr,
        })
    }

    fn check_writer(&self) -> Result<(), SourceError> {
        let failed = self
            .shared
            .failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match failed {
            Some(reason) => Err(SourceError::Io {
                what: "the socket source cannot log received lines".into(),
                source: std::io::Error::other(reason),
            }),
            None => Ok(()),
        }
    }

    /// Lines below `start` belong to committed batches: drop them from the log once.
    fn trim(&mut self, start: u64) -> Result<(), SourceError> {
        if start > self.trimmed_below {
            let kept_from = self.log.truncate_before(start)?;
            self.trimmed_below = start;
            {
                let mut chunks = self
                    .shared
                    .log_chunks
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                // Chunks from `kept_from` on are still logged; without one, those from `start`
                // (appended while trimming) are.
                let kept = chunks.split_off(&kept_from.unwrap_or(start));
                let freed: u64 = chunks.values().sum();
                *chunks = kept;
                self.shared.log_bytes.fetch_sub(freed, Ordering::AcqRel);
                self.shared.log_room.notify_waiters();
            }
        }
        Ok(())
    }
}

impl Source for SocketSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn initial_offset(&mut self) -> Result<SourceOffset, SourceError> {
        // A new checkpoint starts with the lines that arrive from now on — counted from before
        // the network tasks started, so lines that arrive before the first batch are kept.
        Ok(offset(self.first_new_line))
    }

    fn latest_offset(
        &mut self,
        start: &SourceOffset,
        limit: ReadLimit,
    ) -> Result<SourceOffset, SourceError> {
        self.check_writer()?;
        let start = parse_offset(start)?;
        self.trim(start)?;
        let logged = self
            .frozen
            .unwrap_or_else(|| self.shared.logged.load(Ordering::Acquire));
        let available = logged.max(start);
        let mut end = available;
        if let (ReadLimit::SourceLimits, Some(max)) = (limit, self.spec.max_rows_per_batch) {
            end = end.min(start.saturating_add(max));
        }
        self.backlog = available - end;
        Ok(offset(end))
    }

    fn read(
        &mut self,
        start: &SourceOffset,
        end: &SourceOffset,
    ) -> Result<Vec<RecordBatch>, SourceError> {
        let (start, end) = (parse_offset(start)?, parse_offset(end)?);
        self.trim(start)?;
        self.bad.begin();
        let rows = usize::try_from(end.saturating_sub(start))
            .unwrap_or(usize::MAX)
            .min(CHUNK_ROWS);
        let mut values = StringBuilder::with_capacity(rows, rows * 32);
        let mut times = TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC");
        let mut batches = Vec::new();
        let mut failure = None;
        let include_timestamp = self.spec.include_timestamp;
        let schema = self.schema.clone();
        let bad = &mut self.bad;
        let mut flush = |values: &mut StringBuilder,
                         times: &mut TimestampMicrosecondBuilder|
         -> Result<(), SourceError> {
            let mut columns: Vec<ArrayRef> = vec![Arc::new(values.finish())];
            if include_timestamp {
                columns.push(Arc::new(times.finish()));
            }
            batches.push(RecordBatch::try_new(schema.clone(), columns)?);
            Ok(())
        };
        let mut pending = 0usize;
        let mut chunk_failure = None;
        self.log
            .read(start, end, &mut |line| {
                if failure.is_some() || chunk_failure.is_some() {
                    return;
                }
                let bytes = line.bytes.strip_suffix(b"\r").unwrap_or(line.bytes);
                match std::str::from_utf8(bytes) {
                    Ok(text) => {
                        values.append_value(text);
                        if include_timestamp {
                            times.append_value(line.received_us);
                        }
                        pending += 1;
                        if pending == CHUNK_ROWS {
                            pending = 0;
                            if let Err(err) = flush(&mut values, &mut times) {
                                chunk_failure = Some(err);
                            }
                        }
                    }
                    Err(err) => {
                        let at = RecordLocation {
                            peer: Some(line.peer),
                            offset: Some(line.seq),
                            ..RecordLocation::default()
                        };
                        let reason = format!("line is not valid UTF-8 ({err})");
                        if let Err(err) = bad.record(at, &reason, bytes) {
                            failure = Some(err);
                        }
                    }
                }
            })
            .map_err(|err| match err {
                super::socket_log::SocketLogError::Store(err) => SourceError::Store(err),
                corrupt => SourceError::Config(corrupt.to_string()),
            })?;
        if let Some(err) = failure.or(chunk_failure) {
            return Err(err);
        }
        if pending > 0 {
            flush(&mut values, &mut times)?;
        }
        self.malformed = self.bad.finish(&format!("lines-{start:020}-{end:020}"))?;
        Ok(batches)
    }

    fn wakeup(&self, _at: &SourceOffset) -> Wakeup {
        Wakeup::Notified(self.shared.notify.clone())
    }

    fn prepare_available_now(&mut self) {
        self.frozen = Some(self.shared.logged.load(Ordering::Acquire));
    }

    fn committed(&mut self, end: &SourceOffset) -> Result<(), SourceError> {
        let end = parse_offset(end)?;
        self.trim(end)
    }

    fn malformed(&self) -> MalformedCounts {
        self.malformed
    }

    fn backlog(&self) -> Option<super::Backlog> {
        Some(super::Backlog {
            amount: self.backlog,
            unit: "lines".into(),
            parts: Vec::new(),
        })
    }

    fn status(&self) -> Option<String> {
        let status = self
            .shared
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Some(if self.shared.log_full.load(Ordering::Acquire) {
            format!(
                "{status}; not reading from producers: the line log holds max_log_bytes ({}) of lines whose batches have not committed",
                self.spec.max_log_bytes
            )
        } else {
            status
        })
    }

    fn tasks(&self) -> Option<SourceTasks> {
        Some(self.tasks.clone())
    }
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Appends bursts of segments to the log: one synced write per burst, then wakes the pipeline.
async fn writer(
    mut rx: mpsc::Receiver<Segment>,
    log: SocketLog,
    shared: Arc<Shared>,
    mut next: u64,
    max_log_bytes: u64,
) {
    loop {
        // A full log is not written to: the queue fills, readers wait, TCP pushes back.
        while shared.log_bytes.load(Ordering::Acquire) >= max_log_bytes {
            shared.log_full.store(true, Ordering::Release);
            let room = shared.log_room.notified();
            tokio::select! {
                () = room => {}
                // Trims ring `log_room`; the nap only guards against a missed ring.
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        shared.log_full.store(false, Ordering::Release);
        let Some(first) = rx.recv().await else { return };
        let mut chunk = ChunkBuilder::default();
        chunk.push(&first);
        while chunk.len() < MAX_BURST_BYTES {
            match rx.try_recv() {
                Ok(segment) => chunk.push(&segment),
                Err(_) => break,
            }
        }
        let lines = chunk.lines();
        let log = log.clone();
        let first_line = next;
        let written = tokio::task::spawn_blocking(move || log.append(first_line, &chunk)).await;
        match written {
            Ok(Ok(size)) => {
                shared
                    .log_chunks
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(first_line, size);
                shared.log_bytes.fetch_add(size, Ordering::AcqRel);
                next += lines;
                shared.logged.store(next, Ordering::Release);
                shared.notify.notify_one();
            }
            Ok(Err(err)) => {
                tracing::error!("socket source: cannot log received lines: {err}");
                *shared.failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(err.to_string());
                shared.notify.notify_one();
                return;
            }
            Err(err) => {
                *shared.failed.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(format!("the log writer died (a bug): {err}"));
                shared.notify.notify_one();
                return;
            }
        }
    }
}

/// Why a connection ended.
enum Closed {
    /// The peer closed it.
    Eof,
    /// A line was too long.
    LineTooLong(usize),
    /// The connections together held `max_pending_bytes` of incomplete lines for too long.
    PendingFull,
    /// A network error.
    Io(std::io::Error),
    /// The source is gone.
    Stopped,
}

/// Permits of `max_pending_bytes` a connection holds (one per byte its buffer may hold);
/// given back when dropped.
struct Held {
    budget: Arc<Semaphore>,
    bytes: usize,
}

impl Held {
    /// Holds at least `bytes`, waiting (reading pauses, TCP pushes back) at most
    /// [`PENDING_WAIT`]; false if the budget stayed full that long.
    async fn at_least(&mut self, bytes: usize) -> Option<bool> {
        if self.bytes >= bytes {
            return Some(true);
        }
        let need = u32::try_from(bytes - self.bytes).unwrap_or(u32::MAX);
        match tokio::time::timeout(PENDING_WAIT, self.budget.acquire_many(need)).await {
            Ok(Ok(permit)) => {
                permit.forget();
                self.bytes += need as usize;
                Some(true)
            }
            Ok(Err(_)) => None,
            Err(_) => Some(false),
        }
    }

    /// Gives back what is held beyond `bytes`.
    fn at_most(&mut self, bytes: usize) {
        if self.bytes > bytes {
            self.budget.add_permits(self.bytes - bytes);
            self.bytes = bytes;
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.at_most(0);
    }
}

/// What a connection holding `pending` bytes of an incomplete line holds of the budget: those,
/// rounded up to whole read buffers, plus room for one more read. Rounded, so that a stream of
/// short lines neither takes nor gives back anything read after read.
fn budget_for(pending: usize) -> usize {
    pending.div_ceil(READ_BUFFER) * READ_BUFFER + READ_BUFFER
}

/// Reads lines from one connection into segments until it ends. The bytes of an incomplete
/// line count against the budget shared by all connections (`max_pending_bytes`).
async fn read_lines(
    stream: &mut TcpStream,
    peer: Arc<str>,
    tx: &mpsc::Sender<Segment>,
    max_line: usize,
    budget: Arc<Semaphore>,
) -> Closed {
    let mut held = Held { budget, bytes: 0 };
    let mut buf: Vec<u8> = Vec::with_capacity(READ_BUFFER);
    // Bytes of `buf` already known to hold no `\n`.
    let mut scanned = 0;
    loop {
        // Room for what the next read may add, before reading it.
        match held.at_least(budget_for(buf.len())).await {
            Some(true) => {}
            Some(false) => return Closed::PendingFull,
            None => return Closed::Stopped,
        }
        if buf.capacity() - buf.len() < READ_BUFFER / 4 {
            buf.reserve(READ_BUFFER);
        }
        let n = match (&mut *stream)
            .take(READ_BUFFER as u64)
            .read_buf(&mut buf)
            .await
        {
            Ok(n) => n,
            Err(err) => return Closed::Io(err),
        };
        let received_us = now_us();
        if n == 0 {
            if buf.is_empty() {
                return Closed::Eof;
            }
            // As Spark's reader does, a last line without a line break still counts.
            if buf.len() > max_line {
                return Closed::LineTooLong(buf.len());
            }
            buf.push(b'\n');
            let segment = Segment {
                peer,
                received_us,
                lines: 1,
                bytes: buf,
            };
            return match tx.send(segment).await {
                Ok(()) => Closed::Eof,
                Err(_) => Closed::Stopped,
            };
        }
        let Some(last) = buf[scanned..]
            .iter()
            .rposition(|b| *b == b'\n')
            .map(|i| scanned + i)
        else {
            scanned = buf.len();
            if buf.len() > max_line {
                return Closed::LineTooLong(buf.len());
            }
            continue;
        };
        let mut lines = 0u32;
        let mut line_start = 0;
        let mut too_long = None;
        for (i, b) in buf[..=last].iter().enumerate() {
            if *b == b'\n' {
                let len = i - line_start;
                if len > max_line {
                    too_long = Some(len);
                    break;
                }
                lines += 1;
                line_start = i + 1;
            }
        }
        let rest = buf.split_off(line_start);
        if lines > 0 {
            let segment = Segment {
                peer: peer.clone(),
                received_us,
                lines,
                bytes: buf,
            };
            if tx.send(segment).await.is_err() {
                return Closed::Stopped;
            }
        }
        if let Some(len) = too_long {
            return Closed::LineTooLong(len);
        }
        buf = rest;
        // Complete lines have left for the log: only the incomplete rest counts now.
        held.at_most(budget_for(buf.len()));
        scanned = 0;
        let tail_start = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        if buf.len() - tail_start > max_line {
            return Closed::LineTooLong(buf.len() - tail_start);
        }
    }
}

/// Runs one connection to its end and says why it ended, to the log and to the peer.
async fn serve(
    mut stream: TcpStream,
    peer: Arc<str>,
    tx: mpsc::Sender<Segment>,
    max_line: usize,
    budget: Arc<Semaphore>,
) -> bool {
    match read_lines(&mut stream, peer.clone(), &tx, max_line, budget).await {
        Closed::Eof => {
            tracing::info!("socket source: {peer} closed the connection");
            true
        }
        Closed::LineTooLong(len) => {
            let message = format!(
                "weir: line of more than {max_line} bytes (max_line_bytes) after {len} bytes; closing this connection (earlier lines were kept)\n"
            );
            tracing::error!("socket source: {peer}: {}", message.trim_end());
            let _ = stream.write_all(message.as_bytes()).await;
            let _ = stream.shutdown().await;
            true
        }
        Closed::PendingFull => {
            let message = format!(
                "weir: the connections together hold max_pending_bytes of incomplete lines and none completed one for {}s; closing this connection (its complete lines were kept)\n",
                PENDING_WAIT.as_secs()
            );
            tracing::warn!("socket source: {peer}: {}", message.trim_end());
            let _ = stream.write_all(message.as_bytes()).await;
            let _ = stream.shutdown().await;
            true
        }
        Closed::Io(err) => {
            tracing::warn!("socket source: connection with {peer} failed: {err}");
            true
        }
        Closed::Stopped => false,
    }
}

async fn connector(
    host: String,
    port: u16,
    tx: mpsc::Sender<Segment>,
    shared: Arc<Shared>,
    max_line: usize,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        match TcpStream::connect((host.as_str(), port)).await {
            Ok(stream) => {
                backoff = FIRST_BACKOFF;
                let peer: Arc<str> = stream
                    .peer_addr()
                    .map_or_else(|_| format!("{host}:{port}"), |a| a.to_string())
                    .into();
                shared.set_status(format!("connected to {host}:{port}"));
                if !serve(stream, peer, tx.clone(), max_line, shared.pending.clone()).await {
                    return;
                }
                shared.set_status(format!(
                    "waiting for peer {host}:{port}: the connection closed; reconnecting"
                ));
            }
            Err(err) => {
                shared.set_status(format!("waiting for peer {host}:{port}: {err}"));
            }
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Tells a producer beyond `max_connections` why it is turned away, and closes.
async fn refuse(mut stream: TcpStream, max_connections: usize) {
    let message = format!(
        "weir: too many producers connected (max_connections = {max_connections}); try again later\n"
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(message.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

async fn acceptor(
    listener: TcpListener,
    addr: std::net::SocketAddr,
    tx: mpsc::Sender<Segment>,
    shared: Arc<Shared>,
    max_line: usize,
    max_connections: usize,
) {
    // Owned here, so aborting the acceptor ends every connection with it.
    let mut connections = tokio::task::JoinSet::new();
    let mut refusals = tokio::task::JoinSet::new();
    let connected = Arc::new(AtomicUsize::new(0));
    // Refusals are logged at most every 10 s, with how many there were.
    let mut refused_since_log = 0u64;
    let mut last_refusal_log: Option<tokio::time::Instant> = None;
    let status = |n: usize| {
        if n == 0 {
            format!("waiting for peer: listening on {addr}, no producer connected")
        } else {
            format!("listening on {addr}, {n} producer(s) connected")
        }
    };
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) if connected.load(Ordering::Acquire) >= max_connections => {
                    refused_since_log += 1;
                    if last_refusal_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                        tracing::warn!(
                            "socket source: refused {refused_since_log} connection(s) (the last from {peer}): {max_connections} producers are connected already (max_connections)"
                        );
                        refused_since_log = 0;
                        last_refusal_log = Some(tokio::time::Instant::now());
                    }
                    refusals.spawn(refuse(stream, max_connections));
                }
                Ok((stream, peer)) => {
                    let n = connected.fetch_add(1, Ordering::AcqRel) + 1;
                    shared.set_status(status(n));
                    let (tx, shared, connected) = (tx.clone(), shared.clone(), connected.clone());
                    connections.spawn(async move {
                        let budget = shared.pending.clone();
                        serve(stream, peer.to_string().into(), tx, max_line, budget).await;
                        let n = connected.fetch_sub(1, Ordering::AcqRel) - 1;
                        shared.set_status(if n == 0 {
                            format!("waiting for peer: listening on {addr}, no producer connected")
                        } else {
                            format!("listening on {addr}, {n} producer(s) connected")
                        });
                    });
                }
                Err(err) => {
                    tracing::warn!("socket source: accepting on {addr} failed: {err}");
                    tokio::time::sleep(FIRST_BACKOFF).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            Some(_) = refusals.join_next(), if !refusals.is_empty() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OnError;
    use crate::state::{RocksStore, SharedStore};
    use arrow::array::AsArray;

    fn ctx(dir: &std::path::Path, store: SharedStore) -> SourceContext {
        SourceContext {
            pipeline: "p".into(),
            checkpoint_id: "c0ffee00".into(),
            store,
            state_dir: dir.to_path_buf(),
        }
    }

    fn spec(mode: SocketMode, on_error: OnError) -> SocketSpec {
        SocketSpec {
            mode,
            include_timestamp: true,
            max_line_bytes: 1024,
            max_rows_per_batch: None,
            on_error,
            max_connections: 100,
            max_pending_bytes: 1 << 20,
            max_log_bytes: 1 << 30,
        }
    }

    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// On a single-threaded runtime nothing runs between `close` returning and the `bind`
    /// below: only a close that waits for the acceptor to be gone frees the port in time.
    #[tokio::test(flavor = "current_thread")]
    async fn closing_the_tasks_frees_the_listening_port_before_close_returns()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store: SharedStore = std::sync::Arc::new(RocksStore::open(&dir.path().join("db"))?);
        let listen = SocketMode::Listen {
            bind: "127.0.0.1:0".into(),
        };
        let source = SocketSource::open(spec(listen, OnError::Fail), &ctx(dir.path(), store))?;
        let addr = source.local_addr.ok_or("no address")?;
        // The acceptor takes the listener when it first runs.
        tokio::task::yield_now().await;
        let tasks = source.tasks().ok_or("no tasks")?;
        tasks.close().await;
        drop(source);
        std::net::TcpListener::bind(addr)?;
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connect_mode_says_it_is_waiting_for_its_peer() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let store: SharedStore = Arc::new(RocksStore::open(&dir.path().join("db"))?);
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let source = SocketSource::open(
            spec(
                SocketMode::Connect {
                    host: "127.0.0.1".into(),
                    port,
                },
                OnError::Fail,
            ),
            &ctx(dir.path(), store),
        )?;
        until("a refused connection in the status", || {
            source
                .status()
                .is_some_and(|s| s.starts_with(&format!("waiting for peer 127.0.0.1:{port}: ")))
        })
        .await;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let (_peer, _) = listener.accept().await?;
        until("the connected status", || {
            source.status() == Some(format!("connected to 127.0.0.1:{port}"))
        })
        .await;
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_pipeline_monitor_shows_waiting_for_peer() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let store: SharedStore = Arc::new(RocksStore::open(&dir.path().join("db"))?);
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mode = SocketMode::Connect {
            host: "127.0.0.1".into(),
            port,
        };
        let source =
            SocketSource::open(spec(mode, OnError::Fail), &ctx(dir.path(), store.clone()))?;
        let pipeline = crate::engine::Pipeline::new(
            "p",
            crate::config::Trigger::BackToBack,
            Box::new(source),
            Vec::new(),
            vec![("null", Box::new(crate::sinks::NullSink))],
            crate::state::Checkpoint::new(store, "p"),
        );
        let handle = pipeline.spawn();
        let monitor = handle.monitor.clone();
        until("the monitor's source status", || {
            monitor
                .source_status()
                .is_some_and(|s| s.contains(&format!("waiting for peer 127.0.0.1:{port}")))
        })
        .await;
        handle.stop();
        handle.join().await;
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn logged_lines_replay_identically_and_bad_utf8_follows_on_error()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store: SharedStore = Arc::new(RocksStore::open(&dir.path().join("db"))?);
        let listen = SocketMode::Listen {
            bind: "127.0.0.1:0".into(),
        };
        let mut source = SocketSource::open(
            spec(listen.clone(), OnError::Skip),
            &ctx(dir.path(), store.clone()),
        )?;
        let addr = source.local_addr.ok_or("no address")?;
        let start = source.initial_offset()?;
        let mut peer = tokio::net::TcpStream::connect(addr).await?;
        peer.write_all(b"a\nb\xff\nc\r\n").await?;
        peer.shutdown().await?;
        until("three logged lines", || {
            source
                .latest_offset(&start, ReadLimit::SourceLimits)
                .is_ok_and(|o| o == offset(3))
        })
        .await;
        let end = offset(3);
        let first = source.read(&start, &end)?;
        assert_eq!(source.malformed().skipped, 1);
        let values: Vec<&str> = first[0]
            .column(0)
            .as_string::<i32>()
            .iter()
            .flatten()
            .collect();
        assert_eq!(values, ["a", "c"]);
        drop(source);

        // A new source on the same store (a restart) reads the same range the same way.
        let mut again = SocketSource::open(spec(listen, OnError::Skip), &ctx(dir.path(), store))?;
        assert_eq!(
            again.initial_offset()?,
            offset(3),
            "a new stream starts after the log"
        );
        assert_eq!(again.read(&start, &end)?, first);
        Ok(())
    }
}
