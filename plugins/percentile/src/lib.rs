//! `percentile(value)`: an approximate percentile of a group's values, from a merging t-digest
//! (accurate to a fraction of a percent in rank, most accurate near the tails, where p95 and
//! p99 live). Nulls and NaNs are skipped; a group without values gives null.
//!
//! ```toml
//! config = { percentile = "p95" }      # or 0.95; "p50", "p99", "p99.9" ...
//! config = { percentile = "p99", compression = 200 }
//! ```

use serde::{Deserialize, Serialize};
use std::f64::consts::PI;
use std::sync::Arc;
use weir_plugin_sdk::arrow_array::cast::AsArray;
use weir_plugin_sdk::arrow_array::types::Float64Type;
use weir_plugin_sdk::arrow_array::{Array, ArrayRef, Float64Array};
use weir_plugin_sdk::arrow_schema::DataType;
use weir_plugin_sdk::{Aggregate, Config, Error, Signature};

#[derive(Deserialize)]
#[serde(untagged)]
enum Quantile {
    Number(f64),
    Named(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    percentile: Quantile,
    #[serde(default = "default_compression")]
    compression: f64,
}

fn default_compression() -> f64 {
    100.0
}

/// A t-digest: centroids (mean, weight) sorted by mean, plus the exact extremes.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Digest {
    centroids: Vec<(f64, f64)>,
    min: f64,
    max: f64,
}

impl Digest {
    fn total(&self) -> f64 {
        self.centroids.iter().map(|c| c.1).sum()
    }

    /// Folds `points` in and re-compresses so that each centroid spans at most one unit of the
    /// k1 scale function (small centroids at the tails, large ones in the middle).
    fn absorb(&mut self, mut points: Vec<(f64, f64)>, compression: f64) {
        if points.is_empty() {
            return;
        }
        let (lo, hi) = points
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
                (lo.min(p.0), hi.max(p.0))
            });
        if self.centroids.is_empty() {
            self.min = lo;
            self.max = hi;
        } else {
            self.min = self.min.min(lo);
            self.max = self.max.max(hi);
        }
        points.append(&mut self.centroids);
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total: f64 = points.iter().map(|p| p.1).sum();
        let k = |q: f64| compression / (2.0 * PI) * (2.0 * q.clamp(0.0, 1.0) - 1.0).asin();
        let mut out: Vec<(f64, f64)> = Vec::with_capacity(compression as usize * 2);
        let mut done = 0.0;
        let mut current = points[0];
        for &p in &points[1..] {
            let q0 = done / total;
            let q2 = (done + current.1 + p.1) / total;
            if k(q2) - k(q0) <= 1.0 {
                let w = current.1 + p.1;
                current = (current.0 + (p.0 - current.0) * p.1 / w, w);
            } else {
                done += current.1;
                out.push(current);
                current = p;
            }
        }
        out.push(current);
        self.centroids = out;
    }

    fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.total();
        if self.centroids.is_empty() || total <= 0.0 {
            return None;
        }
        let target = q * total;
        let mut before = 0.0;
        // Interpolate between centroid centres; the extremes anchor both ends.
        let mut prev = (self.min, 0.0);
        for &(mean, weight) in &self.centroids {
            let centre = before + weight / 2.0;
            if target <= centre {
                let span = centre - prev.1;
                let t = if span > 0.0 {
                    (target - prev.1) / span
                } else {
                    0.0
                };
                return Some(prev.0 + (mean - prev.0) * t.clamp(0.0, 1.0));
            }
            prev = (mean, centre);
            before += weight;
        }
        let span = total - prev.1;
        let t = if span > 0.0 {
            (target - prev.1) / span
        } else {
            1.0
        };
        Some(prev.0 + (self.max - prev.0) * t.clamp(0.0, 1.0))
    }
}

fn parse_quantile(q: Quantile) -> Result<f64, Error> {
    let value = match q {
        Quantile::Number(v) => v,
        Quantile::Named(name) => name
            .strip_prefix('p')
            .and_then(|n| n.parse::<f64>().ok())
            .map(|p| p / 100.0)
            .ok_or_else(|| {
                Error::new(format!("percentile `{name}` is not like \"p95\" or 0.95"))
            })?,
    };
    if !(0.0..=1.0).contains(&value) {
        return Err(Error::new(format!(
            "percentile {value} is outside 0..1 (p0..p100)"
        )));
    }
    Ok(value)
}

/// The plugin.
pub struct Percentile {
    q: f64,
    compression: f64,
}

impl Aggregate for Percentile {
    type State = Digest;

    fn new(config: &Config) -> Result<Self, Error> {
        let s: Settings = config.parse()?;
        if !(10.0..=10_000.0).contains(&s.compression) {
            return Err(Error::new("compression must be between 10 and 10000"));
        }
        Ok(Percentile {
            q: parse_quantile(s.percentile)?,
            compression: s.compression,
        })
    }

    fn signature(&self) -> Signature {
        Signature {
            inputs: vec![DataType::Float64],
            output: DataType::Float64,
        }
    }

    fn update(
        &self,
        states: &mut [Digest],
        input: &[ArrayRef],
        group_of_row: &[u32],
    ) -> Result<(), Error> {
        let values = input[0].as_primitive::<Float64Type>();
        let mut pending: Vec<Vec<(f64, f64)>> = vec![Vec::new(); states.len()];
        for (row, group) in group_of_row.iter().enumerate() {
            if values.is_valid(row) && !values.value(row).is_nan() {
                pending[*group as usize].push((values.value(row), 1.0));
            }
        }
        for (state, points) in states.iter_mut().zip(pending) {
            state.absorb(points, self.compression);
        }
        Ok(())
    }

    fn merge(&self, state: &mut Digest, other: Digest) -> Result<(), Error> {
        if other.centroids.is_empty() {
            return Ok(());
        }
        let (min, max) = (other.min, other.max);
        state.absorb(other.centroids, self.compression);
        state.min = state.min.min(min);
        state.max = state.max.max(max);
        Ok(())
    }

    fn finish(&self, states: Vec<Digest>) -> Result<ArrayRef, Error> {
        Ok(Arc::new(Float64Array::from_iter(
            states.iter().map(|d| d.quantile(self.q)),
        )))
    }
}

weir_plugin_sdk::export_aggregate!(Percentile);

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(sorted: &[f64], q: f64) -> f64 {
        sorted[((sorted.len() - 1) as f64 * q).round() as usize]
    }

    #[test]
    fn percentiles_are_close_to_exact_ones_across_merges() {
        // A skewed, deterministic sample: 20k values of x^3 for x in a shuffled grid.
        let values: Vec<f64> = (0..20_000u64)
            .map(|i| ((i * 7919) % 20_000) as f64)
            .map(|x| (x / 100.0).powi(3))
            .collect();
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        for (name, q) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)] {
            let agg = Percentile::new(
                &Config::from_json(&format!(r#"{{"percentile":"{name}"}}"#)).unwrap(),
            )
            .unwrap();
            // Two partial digests over halves of the data, in batches, then merged.
            let mut parts = vec![Digest::default(); 2];
            for (i, chunk) in values.chunks(1000).enumerate() {
                let array: ArrayRef = Arc::new(Float64Array::from(chunk.to_vec()));
                let groups = vec![(i % 2) as u32; chunk.len()];
                agg.update(&mut parts, &[array], &groups).unwrap();
            }
            let mut merged = parts[0].clone();
            agg.merge(&mut merged, parts[1].clone()).unwrap();
            let got = agg
                .finish(vec![merged])
                .unwrap()
                .as_primitive::<Float64Type>()
                .value(0);
            let want = exact(&sorted, q);
            // Compare ranks: the estimate must sit within half a percent of the wanted rank.
            let rank = sorted.partition_point(|v| *v < got) as f64 / sorted.len() as f64;
            assert!(
                (rank - q).abs() < 0.005,
                "{name}: got {got} (rank {rank}), exact {want}"
            );
        }
    }

    #[test]
    fn parses_named_and_numeric_percentiles() {
        let q = parse_quantile(Quantile::Named("p99.9".into())).unwrap();
        assert!((q - 0.999).abs() < 1e-12, "{q}");
        assert_eq!(parse_quantile(Quantile::Number(0.5)).unwrap(), 0.5);
        assert!(parse_quantile(Quantile::Named("95".into())).is_err());
        assert!(parse_quantile(Quantile::Number(1.5)).is_err());
    }
}
