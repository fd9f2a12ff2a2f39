//! The one error type a plugin returns, and the `config` table it is built from.

use std::fmt;

/// A plugin's error: a message for the pipeline's operator. The host reports it naming the
/// plugin and the pipeline, fails the batch and retries it on a fresh instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl Error {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Error {
        Error(message.into())
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(value: String) -> Self {
        Error(value)
    }
}

impl From<&str> for Error {
    fn from(value: &str) -> Self {
        Error(value.to_string())
    }
}

impl From<arrow_schema::ArrowError> for Error {
    fn from(value: arrow_schema::ArrowError) -> Self {
        Error(value.to_string())
    }
}

impl From<crate::wire::WireError> for Error {
    fn from(value: crate::wire::WireError) -> Self {
        Error(value.to_string())
    }
}

/// The stage's `config = { ... }` table from the pipeline file.
#[derive(Debug, Clone, PartialEq)]
pub struct Config(serde_json::Value);

impl Config {
    /// Parses the JSON text the host passes to `init`.
    pub fn from_json(text: &str) -> Result<Config, Error> {
        serde_json::from_str(text)
            .map(Config)
            .map_err(|err| Error::new(format!("config is not valid JSON: {err}")))
    }

    /// Deserializes the whole table into the plugin's own config type. Use
    /// `#[serde(deny_unknown_fields)]` on it so a misspelt key is an error at load.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_value(self.0.clone()).map_err(|err| Error::new(format!("config: {err}")))
    }

    /// The table as JSON.
    pub fn value(&self) -> &serde_json::Value {
        &self.0
    }
}
