//! A plugin's stdout and stderr, turned into weir log lines tagged with pipeline, plugin and
//! stream, and rate-limited so a chatty plugin cannot flood the log (or slow the batch).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Lines per stream per second that reach the log; the rest are counted and reported.
const LINES_PER_SECOND: u32 = 20;
/// Longer lines are cut (and an unterminated line is flushed at this size).
const MAX_LINE: usize = 2048;

/// Who is speaking, for the log.
#[derive(Debug, Clone)]
pub(crate) struct LogTags {
    pub pipeline: String,
    pub plugin: String,
}

struct State {
    tags: LogTags,
    stream: &'static str,
    partial: Vec<u8>,
    window: Instant,
    lines_in_window: u32,
    suppressed: u64,
    last_line: Option<String>,
}

impl State {
    /// Logs `line` (written at `now`) unless this second's allowance is spent.
    fn emit(&mut self, line: &[u8], now: Instant) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches(['\r', '\n']);
        self.last_line = Some(text.chars().take(300).collect());
        if now.duration_since(self.window) >= Duration::from_secs(1) {
            if self.suppressed > 0 {
                tracing::warn!(
                    pipeline = %self.tags.pipeline,
                    plugin = %self.tags.plugin,
                    stream = self.stream,
                    "{} more lines from the plugin were not logged (more than {LINES_PER_SECOND} per second)",
                    self.suppressed
                );
            }
            self.window = now;
            self.lines_in_window = 0;
            self.suppressed = 0;
        }
        if self.lines_in_window >= LINES_PER_SECOND {
            self.suppressed += 1;
            return;
        }
        self.lines_in_window += 1;
        tracing::info!(
            pipeline = %self.tags.pipeline,
            plugin = %self.tags.plugin,
            stream = self.stream,
            "{text}"
        );
    }

    fn write(&mut self, mut bytes: &[u8], now: Instant) {
        while let Some(end) = bytes.iter().position(|b| *b == b'\n') {
            let (line, rest) = bytes.split_at(end + 1);
            if self.partial.is_empty() {
                self.emit(&line[..line.len().min(MAX_LINE)], now);
            } else {
                let room = MAX_LINE.saturating_sub(self.partial.len());
                self.partial
                    .extend_from_slice(&line[..line.len().min(room)]);
                let whole = std::mem::take(&mut self.partial);
                self.emit(&whole, now);
            }
            bytes = rest;
        }
        let room = MAX_LINE.saturating_sub(self.partial.len());
        self.partial
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
        if self.partial.len() >= MAX_LINE {
            let whole = std::mem::take(&mut self.partial);
            self.emit(&whole, now);
        }
    }
}

/// One of a plugin's output streams.
#[derive(Clone)]
pub(crate) struct LogPipe(Arc<Mutex<State>>);

impl LogPipe {
    pub fn new(tags: LogTags, stream: &'static str) -> LogPipe {
        LogPipe(Arc::new(Mutex::new(State {
            tags,
            stream,
            partial: Vec::new(),
            window: Instant::now(),
            lines_in_window: 0,
            suppressed: 0,
            last_line: None,
        })))
    }

    fn write(&self, bytes: &[u8]) {
        if let Ok(mut state) = self.0.lock() {
            state.write(bytes, Instant::now());
        }
    }

    /// The last line written, for failure messages (a panic message, typically).
    pub fn last_line(&self) -> Option<String> {
        let mut state = self.0.lock().ok()?;
        if !state.partial.is_empty() {
            let whole = std::mem::take(&mut state.partial);
            state.emit(&whole, Instant::now());
        }
        state.last_line.clone()
    }
}

impl IsTerminal for LogPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogPipe {
    async fn ready(&mut self) {}
}

impl OutputStream for LogPipe {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        LogPipe::write(self, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for LogPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        LogPipe::write(&self, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipe() -> LogPipe {
        LogPipe::new(
            LogTags {
                pipeline: "p".into(),
                plugin: "x".into(),
            },
            "stdout",
        )
    }

    #[test]
    fn splits_lines_across_writes_and_logs_at_most_20_lines_a_second() {
        let p = pipe();
        p.write(b"hel");
        p.write(b"lo\nwor");
        assert_eq!(p.last_line().as_deref(), Some("wor"));
        let Ok(mut state) = p.0.lock() else {
            panic!("poisoned")
        };
        let t0 = state.window;
        for i in 0..100 {
            state.write(format!("line {i}\n").as_bytes(), t0);
        }
        // "hello" and "wor" plus 18 of the 100 lines were logged in this second.
        assert_eq!(
            (state.lines_in_window, state.suppressed),
            (LINES_PER_SECOND, 82)
        );
        state.write(b"still the same second\n", t0 + Duration::from_millis(999));
        assert_eq!(
            (state.lines_in_window, state.suppressed),
            (LINES_PER_SECOND, 83)
        );
        // A second later the count of what was left out is reported and a new second begins.
        state.write(b"next second\n", t0 + Duration::from_secs(1));
        assert_eq!((state.lines_in_window, state.suppressed), (1, 0));
        assert_eq!(state.last_line.as_deref(), Some("next second"));
    }

    #[test]
    fn cuts_overlong_lines() {
        let p = pipe();
        p.write(&vec![b'a'; MAX_LINE * 3]);
        let partial = p.0.lock().map(|s| s.partial.len()).unwrap_or(usize::MAX);
        assert_eq!(partial, 0);
        assert_eq!(p.last_line().map(|l| l.len()), Some(300));
    }
}
