//! Writing plugins: `weir plugin new` makes a plugin folder from a template (`scaffold.rs`),
//! `weir plugin build` turns a folder into `NAME.wasm` with the language's own tool
//! (`build.rs`: cargo for Rust, componentize-py for Python, rolldown then componentize-js for
//! JavaScript). The Python and JavaScript SDKs and the WIT contract are compiled into weir
//! (`python_sdk.rs`, `js_sdk.rs`), so a plugin builds against the very contract the daemon
//! speaks, with nothing to install but the language's component tool.

mod build;
mod js_sdk;
mod python_sdk;
mod scaffold;

pub use build::{Built, build};
pub use scaffold::new_plugin;

use std::path::{Path, PathBuf};

/// A plugin's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Language {
    /// Rust, with the `weir-plugin-sdk` crate; built with cargo for `wasm32-wasip2`.
    Rust,
    /// Python, with the `weir_plugin` package; built with componentize-py.
    Python,
    /// JavaScript, with the `weir-plugin` package; built with componentize-js.
    Js,
}

impl Language {
    /// Its name in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Rust => "Rust",
            Language::Python => "Python",
            Language::Js => "JavaScript",
        }
    }
}

/// What a plugin is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// A stage between source and sinks (`[[transform]]`).
    Transform,
    /// A user-defined aggregate function (`[aggregate] functions = [{ plugin = ... }]`).
    Aggregate,
}

impl Kind {
    /// Its name, as `weir plugins` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Transform => "transform",
            Kind::Aggregate => "aggregate",
        }
    }
}

/// Why a plugin could not be made or built.
#[derive(Debug, thiserror::Error)]
pub enum DevelopError {
    /// The name cannot be a plugin's.
    #[error(
        "`{0}` cannot name a plugin: use lowercase letters, digits and `_`, starting with a letter (it is the .wasm file's name and the pipelines' `plugin = \"...\"`)"
    )]
    BadName(String),
    /// The folder is already there.
    #[error("{0} already exists; choose another name or remove it")]
    Exists(PathBuf),
    /// The folder holds no plugin weir knows how to build.
    #[error(
        "{0} holds no plugin: a Rust plugin has a Cargo.toml, a Python plugin a plugin.py, a JavaScript plugin a plugin.js (`weir plugin new` makes any of them)"
    )]
    NotAPlugin(PathBuf),
    /// A tool the build needs is not installed.
    #[error("{tool} was not found ({why}); {install}")]
    MissingTool {
        /// The tool.
        tool: &'static str,
        /// Where weir looked.
        why: String,
        /// How to get it.
        install: &'static str,
    },
    /// A step of the build failed; its output says why.
    #[error("{step} failed:\n{output}")]
    StepFailed {
        /// What was run.
        step: String,
        /// What it printed.
        output: String,
    },
    /// Reading or writing files failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DevelopError + '_ {
    move |source| DevelopError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The language of the plugin in `dir`, from the files it holds.
pub fn detect(dir: &Path) -> Result<Language, DevelopError> {
    if dir.join("Cargo.toml").is_file() {
        Ok(Language::Rust)
    } else if dir.join("plugin.py").is_file() {
        Ok(Language::Python)
    } else if dir.join("plugin.js").is_file() {
        Ok(Language::Js)
    } else {
        Err(DevelopError::NotAPlugin(dir.to_path_buf()))
    }
}

/// Whether `name` can name a plugin: `[a-z][a-z0-9_]*`.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests;
