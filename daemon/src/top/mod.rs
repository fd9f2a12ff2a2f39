//! `weir top`: a live terminal view of the running daemon, like `vector top`. It polls the
//! control socket's status (one request per refresh, the same answer `weir status --json`
//! prints), works out rates from the totals between polls, and draws with ratatui.
//!
//! `model` holds the state and what keys do to it, `view` draws it; this file owns the
//! terminal and the loop.

pub mod model;
pub mod view;

use crate::admin::client::ask;
use crate::admin::protocol::Request;
use crate::topology::registry::{PipelineReport, StatusReport};
use model::{Action, Key, Top, View};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

/// Why `weir top` could not run.
#[derive(Debug, thiserror::Error)]
pub enum TopError {
    /// Standard output is a pipe or a file.
    #[error("weir top draws on a terminal; for scripts use `weir status` or `weir status --json`")]
    NotATerminal,
    /// The terminal could not be set up, read or drawn on.
    #[error("the terminal failed: {0}")]
    Terminal(#[from] std::io::Error),
}

/// How long one question to the daemon may take before the screen says it does not answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

fn key_of(code: KeyCode, modifiers: KeyModifiers) -> Option<Key> {
    match code {
        KeyCode::Char('c') if modifiers.contains(KeyModifiers::CONTROL) => Some(Key::Quit),
        KeyCode::Char('q') | KeyCode::Char('Q') => Some(Key::Quit),
        KeyCode::Up | KeyCode::Char('k') => Some(Key::Up),
        KeyCode::Down | KeyCode::Char('j') => Some(Key::Down),
        KeyCode::Enter | KeyCode::Right => Some(Key::Open),
        KeyCode::Esc | KeyCode::Left | KeyCode::Backspace => Some(Key::Back),
        KeyCode::Char('s') => Some(Key::NextSort),
        KeyCode::Char('r') => Some(Key::Reverse),
        _ => None,
    }
}

/// Asks the daemon for the status of every pipeline, or of one, as `T`.
fn ask_status<T: serde::de::DeserializeOwned>(
    socket: &Path,
    pipeline: Option<&str>,
) -> Result<T, String> {
    let request = Request::Status {
        pipeline: pipeline.map(str::to_string),
    };
    let response = ask(socket, &request, ASK_TIMEOUT).map_err(|e| e.to_string())?;
    match (response.ok, response.result) {
        (true, Some(result)) => serde_json::from_value(result)
            .map_err(|e| format!("the daemon's status does not read as one: {e}")),
        _ => Err(response.error.unwrap_or_else(|| "no status".into())),
    }
}

/// Brings the details view up to date with the pipeline it shows.
fn fetch_details(top: &mut Top, socket: &Path, name: &str) {
    match ask_status::<PipelineReport>(socket, Some(name)) {
        Ok(report) => top.on_details(report),
        Err(error) => top.on_error(error),
    }
}

fn refresh(top: &mut Top, socket: &Path) {
    match ask_status::<StatusReport>(socket, None) {
        Ok(status) => top.on_status(status, Instant::now(), crate::sources::now_ms()),
        Err(error) => top.on_error(error),
    }
    if let View::Details { name, .. } = &top.view {
        let name = name.clone();
        fetch_details(top, socket, &name);
    }
}

/// Runs `weir top` against the daemon on `socket`, refreshing every `interval`, until `q`.
pub fn run(socket: &Path, interval: Duration) -> Result<(), TopError> {
    if !std::io::stdout().is_terminal() {
        return Err(TopError::NotATerminal);
    }
    // Raw mode and the alternate screen; ratatui's panic hook puts the terminal back too.
    let mut terminal = ratatui::try_init()?;
    let outcome = run_loop(&mut terminal, socket, interval);
    ratatui::try_restore()?;
    outcome
}

fn run_loop(
    terminal: &mut ratatui::DefaultTerminal,
    socket: &Path,
    interval: Duration,
) -> Result<(), TopError> {
    let mut top = Top::default();
    let mut next_poll = Instant::now();
    loop {
        if Instant::now() >= next_poll {
            refresh(&mut top, socket);
            next_poll = Instant::now() + interval;
        }
        let now_ms = crate::sources::now_ms();
        terminal.draw(|frame| view::draw(frame, &top, now_ms))?;
        let wait = next_poll.saturating_duration_since(Instant::now());
        if !event::poll(wait)? {
            continue;
        }
        let Event::Key(press) = event::read()? else {
            // A resize: drawn again at the top of the loop.
            continue;
        };
        if press.kind != KeyEventKind::Press {
            continue;
        }
        let Some(key) = key_of(press.code, press.modifiers) else {
            continue;
        };
        match top.on_key(key, now_ms) {
            Action::Quit => return Ok(()),
            Action::FetchDetails(name) => fetch_details(&mut top, socket, &name),
            Action::Redraw => {}
        }
    }
}

#[cfg(test)]
mod tests;
