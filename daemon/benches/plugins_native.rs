//! Each example plugin as a component, through the host calls a pipeline makes, beside the
//! same crate compiled natively and called directly, on the same 64k-row batch: what running
//! a plugin in wasm costs against running its logic in the host.
//!
//! - Transforms (`compute`, `filter`, `word_split`, `json_parse`): the component's time is
//!   `WasmTransform::call` (encode, copy in, the plugin's `process`, copy out, decode); the
//!   native time is the plugin's `Transform::process` alone. Their outputs must be equal.
//! - Aggregates (`weighted_avg`, `percentile`, `top_k`) over 100 groups: the component's time
//!   is one `update` from fresh states through the host (states encoded and returned); the
//!   native time is `Aggregate::update` on states in memory, nothing encoded.
//!
//! `./scripts/build-plugins && cargo bench -p weir --features native-plugins-bench --bench
//! plugins_native` (a plain binary, not a test; the feature links the plugin crates natively).

mod common;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{Field, Schema};
use common::rust_plugins;
use common::time;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;
use weir::engine::PluginCosts;
use weir::wasm::{AggregatePlugin, Limits, PluginHost, WasmTransform};
use weir_plugin_sdk::{Aggregate, Config, Transform};

const ROWS: usize = 64 * 1024;
const GROUPS: u32 = 100;
/// How long each measurement runs at least.
const BUDGET: Duration = Duration::from_secs(2);

/// A fixed pseudo-random sequence (a linear congruential generator's high bits).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 11
    }

    fn unit(&mut self) -> f64 {
        self.next() as f64 / (1u64 << 53) as f64
    }
}

/// Doubles in `0..scale`, every `null_every`th one null.
fn doubles(seed: u64, scale: f64, null_every: usize) -> ArrayRef {
    let mut x = Lcg(seed);
    Arc::new(Float64Array::from_iter((0..ROWS).map(|i| {
        let v = x.unit() * scale;
        (i % null_every != 0).then_some(v)
    })))
}

const WORDS: [&str; 16] = [
    "stream",
    "window",
    "Kafka",
    "sensor",
    "batch",
    "watermark",
    "state",
    "plugin",
    "row",
    "column",
    "event",
    "time",
    "spark",
    "weir",
    "arrow",
    "late",
];

/// Lines of one to twelve words, every 50th null.
fn lines() -> ArrayRef {
    let mut x = Lcg(3);
    Arc::new(StringArray::from_iter((0..ROWS).map(|i| {
        let n = 1 + x.next() % 12;
        let line: Vec<&str> = (0..n)
            .map(|_| WORDS[(x.next() % WORDS.len() as u64) as usize])
            .collect();
        (i % 50 != 0).then(|| line.join(" "))
    })))
}

/// JSON objects with a user, an amount, a count and a flag; every 40th not JSON.
fn jsons() -> ArrayRef {
    let mut x = Lcg(4);
    Arc::new(StringArray::from_iter_values((0..ROWS).map(|i| {
        if i % 40 == 0 {
            return "not json".to_string();
        }
        format!(
            r#"{{"user":"u{}","amount":{:.2},"n":{},"ok":true}}"#,
            x.next() % 1000,
            x.unit() * 500.0,
            x.next() % 100
        )
    })))
}

fn single_words() -> ArrayRef {
    let mut x = Lcg(5);
    Arc::new(StringArray::from_iter_values((0..ROWS).map(|_| {
        // Skewed: low indexes far more often, so the top entries are clear.
        let a = x.next() % WORDS.len() as u64;
        let b = x.next() % WORDS.len() as u64;
        WORDS[a.min(b) as usize]
    })))
}

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
        .collect();
    RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn ids() -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(0..ROWS as i64))
}

struct Row {
    plugin: &'static str,
    rows_out: usize,
    wasm: Duration,
    native: Duration,
}

fn transform<T: Transform>(
    host: &PluginHost,
    plugin: &'static str,
    config: serde_json::Value,
    input: &RecordBatch,
) -> Row {
    let component = host
        .load(plugin)
        .unwrap_or_else(|e| panic!("{plugin}: {e}"));
    let mut stage = WasmTransform::new(
        component,
        "bench",
        1,
        &config,
        &input.schema(),
        Limits::default(),
    )
    .unwrap_or_else(|e| panic!("{plugin}: {e}"));
    let mut native = T::new(&Config::from_json(&config.to_string()).unwrap_or_else(|e| {
        panic!("{plugin}: {e}");
    }))
    .unwrap_or_else(|e| panic!("{plugin}: {e}"));
    native
        .output_schema(&input.schema())
        .unwrap_or_else(|e| panic!("{plugin}: {e}"));

    let from_wasm = stage
        .call(input)
        .unwrap_or_else(|e| panic!("{plugin}: {e}"));
    let from_native = native
        .process(input.clone())
        .unwrap_or_else(|e| panic!("{plugin}: {e}"));
    assert_eq!(
        from_wasm.columns(),
        from_native.columns(),
        "{plugin}: the component and the native build disagree"
    );
    let wasm = time(BUDGET, 5, || {
        black_box(
            stage
                .call(black_box(input))
                .unwrap_or_else(|e| panic!("{e}")),
        );
    });
    let native = time(BUDGET, 5, || {
        black_box(
            native
                .process(black_box(input.clone()))
                .unwrap_or_else(|e| panic!("{e}")),
        );
    });
    Row {
        plugin,
        rows_out: from_wasm.num_rows(),
        wasm,
        native,
    }
}

fn aggregate<T: Aggregate>(
    host: &PluginHost,
    plugin: &'static str,
    config: serde_json::Value,
    columns: Vec<ArrayRef>,
) -> Row {
    let component = host
        .load(plugin)
        .unwrap_or_else(|e| panic!("{plugin}: {e}"));
    let stage = AggregatePlugin::new(component, "bench", &config, Limits::default())
        .unwrap_or_else(|e| panic!("{plugin}: {e}"));
    let mut instance = stage.instance(Arc::new(PluginCosts::new(plugin, 0)));
    let native = T::new(&Config::from_json(&config.to_string()).unwrap_or_else(|e| {
        panic!("{plugin}: {e}");
    }))
    .unwrap_or_else(|e| panic!("{plugin}: {e}"));
    let groups: Vec<u32> = (0..ROWS as u32).map(|i| i % GROUPS).collect();
    let fresh = vec![Vec::new(); GROUPS as usize];
    let wasm = time(BUDGET, 5, || {
        black_box(
            instance
                .update(&fresh, &columns, &groups)
                .unwrap_or_else(|e| panic!("{e}")),
        );
    });
    let native_time = time(BUDGET, 5, || {
        let mut states: Vec<T::State> = (0..GROUPS).map(|_| T::State::default()).collect();
        native
            .update(&mut states, black_box(&columns), &groups)
            .unwrap_or_else(|e| panic!("{e}"));
        black_box(states);
    });
    Row {
        plugin,
        rows_out: GROUPS as usize,
        wasm,
        native: native_time,
    }
}

fn main() {
    let dir = rust_plugins();
    assert!(
        dir.join("compute.wasm").is_file(),
        "no {}: run ./scripts/build-plugins first",
        dir.join("compute.wasm").display()
    );
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let host = PluginHost::new(&dir, Some(cache.path())).unwrap_or_else(|e| panic!("{e}"));
    let numbers = batch(vec![
        ("value", doubles(1, 200.0, 10)),
        ("weight", doubles(2, 10.0, 20)),
    ]);
    // Plugin names on the command line pick which rows run (all when none is given); cargo
    // passes `--bench` itself.
    let chosen: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |name: &str| chosen.is_empty() || chosen.iter().any(|c| c == name);
    let runs: Vec<(&str, Box<dyn Fn() -> Row + '_>)> = vec![
        (
            "compute",
            Box::new(|| {
                transform::<weir_plugin_sdk::Mapped<compute::Compute>>(
                    &host,
                    "compute",
                    serde_json::json!({ "output": "vw", "left": "value", "op": "*", "right": "weight" }),
                    &numbers,
                )
            }),
        ),
        (
            "filter",
            Box::new(|| {
                transform::<weir_plugin_sdk::Filtered<filter::Comparison>>(
                    &host,
                    "filter",
                    serde_json::json!({ "column": "value", "op": ">=", "value": 100 }),
                    &numbers,
                )
            }),
        ),
        (
            "word_split",
            Box::new(|| {
                transform::<weir_plugin_sdk::FlatMapped<word_split::WordSplit>>(
                    &host,
                    "word_split",
                    serde_json::json!({ "column": "line", "output": "word" }),
                    &batch(vec![("id", ids()), ("line", lines())]),
                )
            }),
        ),
        (
            "json_parse",
            Box::new(|| {
                transform::<weir_plugin_sdk::Mapped<json_parse::JsonParse>>(
                    &host,
                    "json_parse",
                    serde_json::json!({
                        "column": "json",
                        "fields": ["user:string", "amount:double", "n:long", "ok:boolean"],
                    }),
                    &batch(vec![("id", ids()), ("json", jsons())]),
                )
            }),
        ),
        (
            "weighted_avg",
            Box::new(|| {
                aggregate::<weighted_avg::WeightedAvg>(
                    &host,
                    "weighted_avg",
                    serde_json::json!({}),
                    numbers.columns().to_vec(),
                )
            }),
        ),
        (
            "percentile",
            Box::new(|| {
                aggregate::<percentile::Percentile>(
                    &host,
                    "percentile",
                    serde_json::json!({ "percentile": "p95" }),
                    vec![numbers.column(0).clone()],
                )
            }),
        ),
        (
            "top_k",
            Box::new(|| {
                aggregate::<top_k::TopK>(
                    &host,
                    "top_k",
                    serde_json::json!({ "k": 3 }),
                    vec![single_words()],
                )
            }),
        ),
    ];
    let rows: Vec<Row> = runs
        .iter()
        .filter(|(name, _)| wanted(name))
        .map(|(_, run)| run())
        .collect();
    println!("{ROWS} rows a call; aggregates over {GROUPS} groups");
    println!("| plugin | rows out | component | native | component / native speed |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for row in &rows {
        let rate = |d: Duration| ROWS as f64 / d.as_secs_f64() / 1e6;
        println!(
            "| `{}` | {} | {:.1} M rows/s ({:.0} µs) | {:.1} M rows/s ({:.0} µs) | {:.0} % |",
            row.plugin,
            row.rows_out,
            rate(row.wasm),
            row.wasm.as_secs_f64() * 1e6,
            rate(row.native),
            row.native.as_secs_f64() * 1e6,
            100.0 * row.native.as_secs_f64() / row.wasm.as_secs_f64(),
        );
    }
}
