//! A loaded plugin: a compiled component whose contract version and kind have been checked,
//! pre-linked against the sandbox so instantiating it is cheap, with its name, version and
//! description read from the component itself.

use super::CONTRACT_VERSION;
use super::error::{CallFailure, PluginError};
use super::host::{HostInner, Limits, PluginHost};
use super::instance::Live;
use super::log::LogTags;
use super::sandbox::StoreData;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, ComponentExportIndex, InstancePre, Val};

/// Which world a plugin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    /// `weir:plugin/transformer`: a stage between source and sinks.
    Transform,
    /// `weir:plugin/aggregator`: a user-defined aggregate function.
    Aggregate,
}

impl PluginKind {
    /// `transform` or `aggregate`.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Transform => "transform",
            PluginKind::Aggregate => "aggregate",
        }
    }

    fn interface(self) -> &'static str {
        match self {
            PluginKind::Transform => "transformer",
            PluginKind::Aggregate => "aggregator",
        }
    }
}

/// Who a plugin says it is (from its `Cargo.toml`, embedded by the SDK).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    /// Package name.
    pub name: String,
    /// Package version.
    pub version: String,
    /// Package description.
    pub description: String,
}

/// A compiled, checked plugin component, ready to instantiate.
pub struct Plugin {
    /// File name without `.wasm`: what pipelines call it.
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// Size of the file, bytes.
    pub size: u64,
    /// SHA-256 of the file's bytes (hex): the plugin's version as the daemon sees it.
    pub sha256: String,
    /// Transform or aggregate.
    pub kind: PluginKind,
    /// The contract version it was built for.
    pub contract: String,
    /// What it says about itself.
    pub info: PluginInfo,
    /// How long compiling (or reading the compile cache) took.
    pub compile_time: Duration,
    pub(crate) host: Arc<HostInner>,
    pub(crate) pre: InstancePre<StoreData>,
    interface: ComponentExportIndex,
    component: Component,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("contract", &self.contract)
            .finish()
    }
}

/// Core modules and components share the magic number and differ in the version/layer field.
fn check_header(path: &Path, bytes: &[u8]) -> Result<(), PluginError> {
    const MAGIC: &[u8] = b"\0asm";
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(PluginError::NotWasm {
            path: path.to_path_buf(),
        });
    }
    match &bytes[4..8] {
        [1, 0, 0, 0] => Err(PluginError::CoreModule {
            path: path.to_path_buf(),
        }),
        // Component binary format: version 0x0d, layer 1.
        [_, _, 1, 0] => Ok(()),
        _ => Err(PluginError::NotWasm {
            path: path.to_path_buf(),
        }),
    }
}

fn parse_version(text: &str) -> Option<(u64, u64)> {
    let mut parts = text.split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Whether this host can run a plugin built for contract `found`.
pub(crate) fn contract_compatible(found: &str) -> bool {
    match (parse_version(found), parse_version(CONTRACT_VERSION)) {
        (Some((major, minor)), Some((host_major, host_minor))) => {
            major == host_major && minor <= host_minor
        }
        _ => false,
    }
}

impl Plugin {
    /// The first 12 hex digits of the content hash: enough to tell versions apart in messages.
    pub fn short_hash(&self) -> &str {
        self.sha256.get(..12).unwrap_or(&self.sha256)
    }

    pub(crate) fn load(
        host: &PluginHost,
        path: &Path,
        bytes: &[u8],
        sha256: String,
    ) -> Result<Plugin, PluginError> {
        let inner = host.inner.clone();
        check_header(path, bytes)?;
        let started = Instant::now();
        let component =
            Component::new(&inner.engine, bytes).map_err(|err| PluginError::Invalid {
                path: path.to_path_buf(),
                message: format!("{err:#}"),
            })?;
        let compile_time = started.elapsed();

        let ty = component.component_type();
        let mut found = None;
        let mut exports = Vec::new();
        for (name, _) in ty.exports(&inner.engine) {
            exports.push(name.to_string());
            let Some(rest) = name.strip_prefix("weir:plugin/") else {
                continue;
            };
            let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
            let kind = match interface {
                "transformer" => PluginKind::Transform,
                "aggregator" => PluginKind::Aggregate,
                _ => continue,
            };
            found = Some((kind, version.to_string(), name.to_string()));
        }
        let Some((kind, contract, export)) = found else {
            return Err(PluginError::NotAPlugin {
                path: path.to_path_buf(),
                exports: if exports.is_empty() {
                    "none".into()
                } else {
                    exports.join(", ")
                },
            });
        };
        if !contract_compatible(&contract) {
            return Err(PluginError::Contract {
                path: path.to_path_buf(),
                found: if contract.is_empty() {
                    "(unversioned)".into()
                } else {
                    contract
                },
                host: CONTRACT_VERSION,
                host_major: CONTRACT_VERSION
                    .split('.')
                    .next()
                    .unwrap_or("1")
                    .to_string(),
            });
        }
        for (import, _) in ty.imports(&inner.engine) {
            if !import.starts_with("wasi:") {
                return Err(PluginError::Import {
                    path: path.to_path_buf(),
                    import: import.to_string(),
                });
            }
        }
        let pre = inner
            .linker
            .instantiate_pre(&component)
            .map_err(|err| PluginError::Invalid {
                path: path.to_path_buf(),
                message: format!("{err:#}"),
            })?;
        let interface = component
            .get_export_index(None, export.as_str())
            .ok_or_else(|| PluginError::NotAPlugin {
                path: path.to_path_buf(),
                exports: exports.join(", "),
            })?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut plugin = Plugin {
            name,
            path: path.to_path_buf(),
            size: bytes.len() as u64,
            sha256,
            kind,
            contract,
            info: PluginInfo {
                name: String::new(),
                version: String::new(),
                description: String::new(),
            },
            compile_time,
            host: inner,
            pre,
            interface,
            component,
        };
        plugin.info = plugin.read_info().map_err(|failure| PluginError::Call {
            plugin: plugin.name.clone(),
            failure,
        })?;
        Ok(plugin)
    }

    /// The index of one of the plugin interface's functions.
    pub(crate) fn func(&self, name: &str) -> Result<ComponentExportIndex, CallFailure> {
        self.component
            .get_export_index(Some(&self.interface), name)
            .ok_or_else(|| {
                CallFailure::Instantiate(format!(
                    "the component has no function `{name}` in `weir:plugin/{}`",
                    self.kind.interface()
                ))
            })
    }

    /// A fresh sandboxed instance.
    pub(crate) fn instantiate(&self, limits: &Limits, pipeline: &str) -> Result<Live, CallFailure> {
        Live::new(
            self,
            limits,
            &LogTags {
                pipeline: pipeline.to_string(),
                plugin: self.name.clone(),
            },
        )
    }

    fn read_info(&self) -> Result<PluginInfo, CallFailure> {
        let mut live = self.instantiate(&Limits::default(), "-")?;
        let info = self.func("info")?;
        let mut results = [Val::Bool(false)];
        live.call_dynamic(&info, &[], &mut results)?;
        let field = |name: &str| match &results[0] {
            Val::Record(fields) => fields.iter().find_map(|(n, v)| match v {
                Val::String(s) if n == name => Some(s.clone()),
                _ => None,
            }),
            _ => None,
        };
        match (field("name"), field("version"), field("description")) {
            (Some(name), Some(version), Some(description)) => Ok(PluginInfo {
                name,
                version,
                description,
            }),
            _ => Err(CallFailure::Instantiate(
                "`info` did not return a plugin-info record".into(),
            )),
        }
    }

    /// Fails unless the plugin is of `kind`.
    pub(crate) fn expect_kind(&self, kind: PluginKind) -> Result<(), PluginError> {
        if self.kind == kind {
            Ok(())
        } else {
            Err(PluginError::WrongKind {
                plugin: self.name.clone(),
                found: self.kind.as_str(),
                wanted: kind.as_str(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_tell_junk_core_modules_and_components_apart() {
        let p = Path::new("x.wasm");
        assert!(matches!(
            check_header(p, b"hello world"),
            Err(PluginError::NotWasm { .. })
        ));
        assert!(matches!(
            check_header(p, b"\0asm"),
            Err(PluginError::NotWasm { .. })
        ));
        assert!(matches!(
            check_header(p, b"\0asm\x01\0\0\0"),
            Err(PluginError::CoreModule { .. })
        ));
        assert!(check_header(p, b"\0asm\x0d\0\x01\0").is_ok());
    }

    #[test]
    fn same_major_and_no_newer_minor_is_compatible() {
        assert!(contract_compatible(CONTRACT_VERSION));
        assert!(contract_compatible("1.0.7"));
        assert!(contract_compatible("1.1.0"));
        assert!(contract_compatible("1.2.0"));
        assert!(!contract_compatible("1.3.0"));
        assert!(!contract_compatible("2.0.0"));
        assert!(!contract_compatible("0.9.0"));
        assert!(!contract_compatible(""));
    }
}
