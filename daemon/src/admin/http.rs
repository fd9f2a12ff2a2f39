//! The read-only HTTP API, on a loopback address unless `allow_remote` says otherwise:
//! `GET /health` (the daemon answers), `GET /ready` (every pipeline has been started or
//! reported, and the daemon is not stopping), `GET /pipelines`, `GET /pipelines/NAME`,
//! `GET /pipelines/NAME/progress?last=N` (recent batches as Spark's `StreamingQueryProgress`,
//! see [`super::progress`]), `GET /metrics` (Prometheus or OpenMetrics text, see
//! [`super::metrics`]), and the live page at `/` ([`super::web`]). No verb
//! that changes anything is reachable here: those are the control socket's. Malformed or
//! oversized requests are refused by hyper with a 4xx and the daemon carries on.

use super::control::Handlers;
use super::metrics::{Exposition, Format};
use super::protocol::Response;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
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
    /// What `/metrics` serves.
    pub metrics: Arc<Exposition>,
}

/// The routes.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/pipelines", get(pipelines))
        .route("/pipelines/{name}", get(pipeline))
        .route("/pipelines/{name}/progress", get(progress))
        .route("/metrics", get(metrics))
        .merge(super::web::routes())
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

async fn progress(
    State(state): State<HttpState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> axum::response::Response {
    let wanted = match super::progress::ProgressQuery::parse(query.as_deref()) {
        Ok(wanted) => wanted,
        Err(message) => return (StatusCode::BAD_REQUEST, message + "\n").into_response(),
    };
    let Some(entry) = state.handlers.registry().get(&name) else {
        return (
            StatusCode::NOT_FOUND,
            format!("no pipeline named `{name}`\n"),
        )
            .into_response();
    };
    let Some(monitor) = entry.snapshot().monitor else {
        return Json(Vec::<serde_json::Value>::new()).into_response();
    };
    let identity = monitor.identity();
    let recent = monitor.recent();
    let batches: Vec<serde_json::Value> = wanted
        .select(&recent)
        .iter()
        .map(|p| super::progress::spark_progress(p, &identity))
        .collect();
    Json(batches).into_response()
}

async fn metrics(State(state): State<HttpState>, headers: HeaderMap) -> impl IntoResponse {
    let format = Format::from_accept(
        headers
            .get(header::ACCEPT)
            .and_then(|value| value.to_str().ok()),
    );
    match state.metrics.render(format) {
        Ok(text) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, format.content_type())],
            text,
        ),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "the metrics could not be encoded (a bug in weir)\n".to_string(),
        ),
    }
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
