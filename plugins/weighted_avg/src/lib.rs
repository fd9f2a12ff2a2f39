//! `weighted_avg(value, weight)`: `sum(value × weight) / sum(weight)` over the rows of a group
//! whose value and weight are both non-null; null for a group without any (or with zero total
//! weight). Both arguments are doubles.

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use weir_plugin_sdk::arrow_array::cast::AsArray;
use weir_plugin_sdk::arrow_array::types::Float64Type;
use weir_plugin_sdk::arrow_array::{Array, ArrayRef, Float64Array};
use weir_plugin_sdk::arrow_schema::DataType;
use weir_plugin_sdk::{Aggregate, Config, Error, Signature};

/// A group's running sums.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sums {
    weighted: f64,
    weight: f64,
}

/// The plugin.
pub struct WeightedAvg;

impl Aggregate for WeightedAvg {
    type State = Sums;

    fn new(config: &Config) -> Result<Self, Error> {
        match config.value().as_object() {
            Some(table) if !table.is_empty() => Err(Error::new("weighted_avg takes no config")),
            _ => Ok(WeightedAvg),
        }
    }

    fn signature(&self) -> Signature {
        Signature {
            inputs: vec![DataType::Float64, DataType::Float64],
            output: DataType::Float64,
        }
    }

    fn update(
        &self,
        states: &mut [Sums],
        input: &[ArrayRef],
        group_of_row: &[u32],
    ) -> Result<(), Error> {
        let values = input[0].as_primitive::<Float64Type>();
        let weights = input[1].as_primitive::<Float64Type>();
        if values.null_count() == 0 && weights.null_count() == 0 {
            // The common case, without a null check per row.
            let rows = group_of_row
                .iter()
                .zip(values.values())
                .zip(weights.values());
            for ((group, v), w) in rows {
                if let Some(state) = states.get_mut(*group as usize) {
                    state.weighted += v * w;
                    state.weight += w;
                }
            }
            return Ok(());
        }
        for (row, group) in group_of_row.iter().enumerate() {
            if values.is_null(row) || weights.is_null(row) {
                continue;
            }
            let (v, w) = (values.value(row), weights.value(row));
            let state = &mut states[*group as usize];
            state.weighted += v * w;
            state.weight += w;
        }
        Ok(())
    }

    fn merge(&self, state: &mut Sums, other: Sums) -> Result<(), Error> {
        state.weighted += other.weighted;
        state.weight += other.weight;
        Ok(())
    }

    fn finish(&self, states: Vec<Sums>) -> Result<ArrayRef, Error> {
        Ok(Arc::new(Float64Array::from_iter(states.iter().map(|s| {
            (s.weight != 0.0).then(|| s.weighted / s.weight)
        }))))
    }
}

weir_plugin_sdk::export_aggregate!(WeightedAvg);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_by_weight_skipping_nulls() {
        let agg = WeightedAvg::new(&Config::from_json("{}").unwrap()).unwrap();
        let mut states = vec![Sums::default(); 3];
        let values: ArrayRef = Arc::new(Float64Array::from(vec![
            Some(1.0),
            Some(3.0),
            None,
            Some(10.0),
        ]));
        let weights: ArrayRef = Arc::new(Float64Array::from(vec![1.0, 3.0, 5.0, 2.0]));
        agg.update(&mut states, &[values, weights], &[0, 0, 0, 1])
            .unwrap();
        let mut merged = states[0];
        agg.merge(&mut merged, states[1]).unwrap();
        let out = agg
            .finish(vec![states[0], states[1], states[2], merged])
            .unwrap();
        let out = out.as_primitive::<Float64Type>();
        assert_eq!(out.value(0), 2.5);
        assert_eq!(out.value(1), 10.0);
        assert!(out.is_null(2));
        assert_eq!(out.value(3), (1.0 + 9.0 + 20.0) / 6.0);
    }
}
