//! The plugins one version of a pipeline uses, pinned: a pipeline is checked against the
//! plugin files as they are when it is prepared, and runs (and restarts) on exactly those
//! versions, whatever happens to the files afterwards. A changed or removed `.wasm` reaches a
//! running pipeline only through a new prepare, i.e. a reload.

use super::error::PluginError;
use super::host::PluginHost;
use super::plugin::Plugin;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Resolves plugin names for one version of a pipeline.
#[derive(Clone)]
pub struct PluginCatalog {
    host: PluginHost,
    pinned: Arc<Mutex<BTreeMap<String, Arc<Plugin>>>>,
    /// Whether names that are not pinned yet may still be loaded from the folder.
    open: bool,
}

impl std::fmt::Debug for PluginCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginCatalog")
            .field("pinned", &self.versions())
            .field("open", &self.open)
            .finish()
    }
}

impl PluginCatalog {
    /// A catalog that loads from the host's plugins folder and pins what it loads.
    pub fn from_folder(host: PluginHost) -> PluginCatalog {
        PluginCatalog {
            host,
            pinned: Arc::new(Mutex::new(BTreeMap::new())),
            open: true,
        }
    }

    /// The plugin called `name`: the pinned version, or (while the catalog is open) the file's
    /// current content, which is pinned from then on.
    pub fn get(&self, name: &str) -> Result<Arc<Plugin>, PluginError> {
        if let Some(plugin) = self.pinned().get(name) {
            return Ok(plugin.clone());
        }
        if !self.open {
            return Err(PluginError::NotFound {
                name: name.to_string(),
                path: self.host.path_of(name),
            });
        }
        let plugin = self.host.load(name)?;
        self.pinned().insert(name.to_string(), plugin.clone());
        Ok(plugin)
    }

    /// A copy that serves only what is pinned now: what a prepared pipeline opens with.
    pub fn frozen(&self) -> PluginCatalog {
        let pinned = self.pinned().clone();
        PluginCatalog {
            host: self.host.clone(),
            pinned: Arc::new(Mutex::new(pinned)),
            open: false,
        }
    }

    /// The pinned plugins, by name.
    pub fn plugins(&self) -> BTreeMap<String, Arc<Plugin>> {
        self.pinned().clone()
    }

    /// The pinned set (its map is always whole, so a panic elsewhere while it was held does not
    /// make it unusable).
    fn pinned(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<Plugin>>> {
        self.pinned.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Each pinned plugin's content hash, by name: the plugin versions a pipeline runs on.
    pub fn versions(&self) -> BTreeMap<String, String> {
        self.plugins()
            .into_iter()
            .map(|(name, plugin)| (name, plugin.sha256.clone()))
            .collect()
    }

    /// The host it loads from.
    pub fn host(&self) -> &PluginHost {
        &self.host
    }
}
