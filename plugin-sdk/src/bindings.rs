//! The guest bindings generated from `wit/plugin.wit`, one module per world. Plugins do not use
//! them directly; the export macros wire a plugin type to them.
//!
//! Both worlds are generated here, but a plugin links only the one its export macro references,
//! so a transform component exports only `transformer` and an aggregate only `aggregator`.

/// The `transform` world.
#[allow(missing_docs, clippy::all)]
pub mod transform {
    wit_bindgen::generate!({
        path: "wit",
        world: "transform",
        pub_export_macro: true,
        export_macro_name: "__export_transform_world",
        default_bindings_module: "weir_plugin_sdk::__private::transform_bindings",
    });
}

/// The `aggregate` world.
#[allow(missing_docs, clippy::all)]
pub mod aggregate {
    wit_bindgen::generate!({
        path: "wit",
        world: "aggregate",
        pub_export_macro: true,
        export_macro_name: "__export_aggregate_world",
        default_bindings_module: "weir_plugin_sdk::__private::aggregate_bindings",
    });
}
