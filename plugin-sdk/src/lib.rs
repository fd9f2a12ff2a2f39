//! `weir-plugin-sdk`: write weir transforms and aggregates as ordinary Rust over Arrow data, and
//! build them into WebAssembly components (`wasm32-wasip2`) that weir loads from its plugins
//! folder.
//!
//! A transform is a type implementing [`Transform`] registered with [`export_transform!`]
//! (or, faster, a [`Map`] with [`export_map!`] or a [`Filter`] with [`export_filter!`]: they
//! name the columns they read, and only those cross into the plugin); an aggregate is a type
//! implementing [`Aggregate`] registered with [`export_aggregate!`]. The
//! crate's README has a complete example and the build command.
//!
//! The contract with the host is `wit/plugin.wit` (version [`CONTRACT_VERSION`]); the
//! [`wire`] module is how Arrow data crosses it, shared with the host.
//!
//! Without the default `guest` feature only [`wire`] is built: that is what the host uses.

#![deny(missing_docs)]

pub mod wire;
#[cfg(test)]
mod wire_vectors;

#[cfg(feature = "guest")]
mod aggregate;
#[cfg(feature = "guest")]
#[doc(hidden)]
pub mod bindings;
#[cfg(feature = "guest")]
pub mod columns;
#[cfg(feature = "guest")]
mod error;
#[cfg(feature = "guest")]
mod narrow;
#[cfg(feature = "guest")]
pub mod rows;
#[cfg(feature = "guest")]
mod slot;
#[cfg(feature = "guest")]
mod transform;

#[cfg(feature = "guest")]
pub use aggregate::{Aggregate, Signature};
#[cfg(feature = "guest")]
pub use error::{Config, Error};
#[cfg(feature = "guest")]
pub use narrow::{Filter, Filtered, FlatMap, FlatMapOutput, FlatMapped, Map, Mapped, Plan};
#[cfg(feature = "guest")]
pub use transform::Transform;

/// The Arrow crates this SDK was built against; use these in a plugin so types match.
pub use {arrow_array, arrow_buffer, arrow_schema};

/// Arrow's selection kernels (`filter`, `take`, `concat`, `zip`), for flat-maps and filters.
pub use arrow_select;

/// Arrow's arithmetic and boolean kernels: `numeric::{add, sub, mul, div, rem}` (checked,
/// nulls propagated), `arity::{unary, binary}` (your own function over whole columns),
/// `boolean::{and, or, not}`, `aggregate::{sum, min, max}`.
#[cfg(feature = "guest")]
pub use arrow_arith;

/// Arrow's casts between types (`cast::cast`: numbers, strings, timestamps, ...) and value
/// formatting.
#[cfg(feature = "guest")]
pub use arrow_cast;

/// Arrow's comparison and sorting kernels: `cmp::{eq, neq, lt, lt_eq, gt, gt_eq}` against a
/// column or a `Scalar`, `sort::sort_to_indices`, `partition`.
#[cfg(feature = "guest")]
pub use arrow_ord;

/// Arrow's string kernels: `length::length`, `substring::substring`,
/// `concat_elements::concat_elements_utf8`, `like::{like, ilike, contains, starts_with,
/// ends_with}` against a column or a `Scalar`, `regexp::regexp_is_match`.
#[cfg(feature = "guest")]
pub use arrow_string;

/// The version of `wit/plugin.wit` this SDK implements (the WIT package version).
pub const CONTRACT_VERSION: &str = "1.2.0";

/// Glue the export macros expand to. Not part of the API.
#[cfg(feature = "guest")]
#[doc(hidden)]
pub mod __private {
    pub use crate::aggregate::{
        finish as aggregate_finish, init as aggregate_init, merge as aggregate_merge,
        update as aggregate_update,
    };
    pub use crate::bindings::aggregate as aggregate_bindings;
    pub use crate::bindings::aggregate::__export_aggregate_world;
    pub use crate::bindings::transform as transform_bindings;
    pub use crate::bindings::transform::__export_transform_world;
    pub use crate::narrow::{
        filter_init, filter_output_schema, filter_process, filter_reads, flat_map_init,
        flat_map_output_schema, flat_map_process, flat_map_reads, map_init, map_output_schema,
        map_process, map_reads,
    };
    pub use crate::transform::{
        init as transform_init, output_schema as transform_output_schema,
        process as transform_process,
    };

    /// A plain transform reads every column.
    pub fn transform_reads<T>() -> Option<Vec<u32>> {
        None
    }
}

/// Exports a [`Transform`] as this component's `transformer`. Invoke it once, at the crate
/// root of a `cdylib` crate. Name, version and description come from the plugin's
/// `Cargo.toml`.
///
/// ```text
/// weir_plugin_sdk::export_transform!(WordSplit);
/// ```
#[macro_export]
macro_rules! export_transform {
    ($plugin:ty) => {
        $crate::__export_transformer!(
            $plugin,
            transform_init,
            transform_output_schema,
            transform_process,
            transform_reads
        );
    };
}

/// Exports a [`Map`] as this component's `transformer`: the host sends it only the columns
/// its plan reads and takes back only those it writes. Invoke it once, at the crate root.
///
/// ```text
/// weir_plugin_sdk::export_map!(Compute);
/// ```
#[macro_export]
macro_rules! export_map {
    ($plugin:ty) => {
        $crate::__export_transformer!($plugin, map_init, map_output_schema, map_process, map_reads);
    };
}

/// Exports a [`Filter`] as this component's `transformer`: the host sends it only the columns
/// it reads and takes back one bit a row. Invoke it once, at the crate root.
///
/// ```text
/// weir_plugin_sdk::export_filter!(Filter);
/// ```
#[macro_export]
macro_rules! export_filter {
    ($plugin:ty) => {
        $crate::__export_transformer!(
            $plugin,
            filter_init,
            filter_output_schema,
            filter_process,
            filter_reads
        );
    };
}

/// Exports a [`FlatMap`] as this component's `transformer`: the host sends it only the
/// columns it reads, takes back the input row of each output row and the columns it wrote, and
/// repeats the other columns itself. Invoke it once, at the crate root.
///
/// ```text
/// weir_plugin_sdk::export_flat_map!(WordSplit);
/// ```
#[macro_export]
macro_rules! export_flat_map {
    ($plugin:ty) => {
        $crate::__export_transformer!(
            $plugin,
            flat_map_init,
            flat_map_output_schema,
            flat_map_process,
            flat_map_reads
        );
    };
}

/// The `transformer` export of the four macros above, given the glue functions of one kind.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_transformer {
    ($plugin:ty, $init:ident, $output_schema:ident, $process:ident, $reads:ident) => {
        #[doc(hidden)]
        #[allow(dead_code)]
        struct __WeirTransformExport;

        impl $crate::__private::transform_bindings::exports::weir::plugin::transformer::Guest
            for __WeirTransformExport
        {
            fn info() -> $crate::__private::transform_bindings::exports::weir::plugin::transformer::PluginInfo {
                $crate::__private::transform_bindings::exports::weir::plugin::transformer::PluginInfo {
                    name: env!("CARGO_PKG_NAME").to_string(),
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    description: env!("CARGO_PKG_DESCRIPTION").to_string(),
                }
            }
            fn init(config: String) -> Result<(), String> {
                $crate::__private::$init::<$plugin>(&config)
            }
            fn output_schema(input: Vec<u8>) -> Result<Vec<u8>, String> {
                $crate::__private::$output_schema::<$plugin>(&input)
            }
            fn process(rows: u32, columns: Vec<Vec<u8>>) -> Result<(u32, Vec<Vec<u8>>), String> {
                $crate::__private::$process::<$plugin>(rows, columns)
            }
            fn reads() -> Option<Vec<u32>> {
                $crate::__private::$reads::<$plugin>()
            }
        }

        // Only a component exports the world: compiled natively (the plugin's own tests, a
        // benchmark against the native build), several plugins can then link into one binary.
        #[cfg(target_family = "wasm")]
        $crate::__private::__export_transform_world!(
            __WeirTransformExport with_types_in $crate::__private::transform_bindings
        );
    };
}

/// Exports an [`Aggregate`] as this component's `aggregator`. Invoke it once, at the crate
/// root of a `cdylib` crate.
///
/// ```text
/// weir_plugin_sdk::export_aggregate!(WeightedAvg);
/// ```
#[macro_export]
macro_rules! export_aggregate {
    ($plugin:ty) => {
        #[doc(hidden)]
        #[allow(dead_code)]
        struct __WeirAggregateExport;

        impl $crate::__private::aggregate_bindings::exports::weir::plugin::aggregator::Guest
            for __WeirAggregateExport
        {
            fn info() -> $crate::__private::aggregate_bindings::exports::weir::plugin::aggregator::PluginInfo {
                $crate::__private::aggregate_bindings::exports::weir::plugin::aggregator::PluginInfo {
                    name: env!("CARGO_PKG_NAME").to_string(),
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    description: env!("CARGO_PKG_DESCRIPTION").to_string(),
                }
            }
            fn init(
                config: String,
            ) -> Result<
                $crate::__private::aggregate_bindings::exports::weir::plugin::aggregator::Signature,
                String,
            > {
                let (inputs, output) = $crate::__private::aggregate_init::<$plugin>(&config)?;
                Ok(
                    $crate::__private::aggregate_bindings::exports::weir::plugin::aggregator::Signature {
                        inputs,
                        output,
                    },
                )
            }
            fn update(
                states: Vec<Vec<u8>>,
                rows: u32,
                columns: Vec<Vec<u8>>,
                group_of_row: Vec<u32>,
            ) -> Result<Vec<Vec<u8>>, String> {
                $crate::__private::aggregate_update::<$plugin>(states, rows, columns, group_of_row)
            }
            fn merge(left: Vec<Vec<u8>>, right: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, String> {
                $crate::__private::aggregate_merge::<$plugin>(left, right)
            }
            fn finish(states: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, String> {
                $crate::__private::aggregate_finish::<$plugin>(states)
            }
            fn state_version() -> u32 {
                <$plugin as $crate::Aggregate>::STATE_VERSION
            }
        }

        // Only a component exports the world: compiled natively (the plugin's own tests, a
        // benchmark against the native build), several plugins can then link into one binary.
        #[cfg(target_family = "wasm")]
        $crate::__private::__export_aggregate_world!(
            __WeirAggregateExport with_types_in $crate::__private::aggregate_bindings
        );
    };
}
