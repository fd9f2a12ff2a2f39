//! The read-only HTTP API, on a loopback address unless `allow_remote` says otherwise:
//! `GET /health` (the daemon answers), `GET /ready` (every pipeline has been started or
//! reported, and the daemon is not stopping), `GET /pipelines`, `GET /pipelines/NAME`. No verb
//! that changes anything is reachable here: those are the control socket's. Malformed or
//! oversized requests are refused by hyper with a 4xx and the daemon carries on.

use super::control::Handlers;
use super::protocol::Response;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What the HTTP handlers read.
#[derive(Clone, Debug)]
pub struct HttpState {
    /// The shared handlers (status from the registry).
    pub handlers: Handlers,
    /// True once start-up is over, false again when stopping.
    pub ready: Arc<AtomicBool>,
}

/// The routes.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/pipelines", get(pipelines))
        .route("/pipelines/{name}", get(pipeline))
        .with_state(state)
}

async fn health() -> &'static str {
    "ok\n"
}

async fn ready(State(state): State<HttpState>) -> impl IntoResponse {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn pipelines(State(state): State<HttpState>) -> impl IntoResponse {
    Json(state.handlers.registry().report())
}

async fn pipeline(State(state): State<HttpState>, Path(name): Path<String>) -> impl IntoResponse {
    let response: Response = state.handlers.status_of(&name);
    let status = if response.ok {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    (status, Json(response))
}

/// Binds `addr`; returns the listener and the address it got (port 0 picks one).
pub async fn bind(addr: SocketAddr) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Serves until the task is aborted.
pub async fn serve(listener: tokio::net::TcpListener, state: HttpState) {
    if let Err(err) = axum::serve(listener, router(state)).await {
        tracing::error!("the HTTP API stopped: {err}");
    }
}
