//! The daemon's control surface. The control socket ([`control`]) serves every verb of the
//! CLI to whoever may open it (its file permissions decide); the HTTP listener ([`http`])
//! serves the read-only subset on a loopback address. Both answer from the same handlers:
//! status straight from the registry (so it answers while a reload is busy), everything else
//! through the daemon's loop.

pub mod client;
pub mod control;
pub mod http;
pub mod metrics;
pub mod progress;
pub mod protocol;
pub mod render;
pub mod web;
