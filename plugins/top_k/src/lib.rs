//! `top_k(value)`: the `k` most frequent strings of a group, most frequent first (ties in
//! alphabetical order), as a list. Counts are kept in a space-saving sketch of `capacity`
//! entries, so a state stays small however many distinct values pass; with at most `capacity`
//! distinct values per group the answer is exact.
//!
//! ```toml
//! config = { k = 3, capacity = 100 }
//! ```

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use weir_plugin_sdk::arrow_array::builder::{ListBuilder, StringBuilder};
use weir_plugin_sdk::arrow_array::cast::AsArray;
use weir_plugin_sdk::arrow_array::{Array, ArrayRef};
use weir_plugin_sdk::arrow_schema::{DataType, Field};
use weir_plugin_sdk::{Aggregate, Config, Error, Signature};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default = "default_k")]
    k: usize,
    #[serde(default)]
    capacity: Option<usize>,
}

fn default_k() -> usize {
    10
}

/// A group's sketch: (value, count) pairs, at most `capacity` of them.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sketch {
    counts: Vec<(String, u64)>,
}

/// The plugin.
pub struct TopK {
    k: usize,
    capacity: usize,
}

impl TopK {
    /// Keeps the `capacity` largest counts.
    fn trim(&self, counts: &mut Vec<(String, u64)>) {
        if counts.len() > self.capacity {
            counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            counts.truncate(self.capacity);
        }
    }
}

impl Aggregate for TopK {
    type State = Sketch;

    fn new(config: &Config) -> Result<Self, Error> {
        let s: Settings = config.parse()?;
        if s.k == 0 {
            return Err(Error::new("k must be at least 1"));
        }
        let capacity = s.capacity.unwrap_or((s.k * 20).max(100));
        if capacity < s.k {
            return Err(Error::new("capacity must be at least k"));
        }
        Ok(TopK { k: s.k, capacity })
    }

    fn signature(&self) -> Signature {
        Signature {
            inputs: vec![DataType::Utf8],
            output: DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        }
    }

    fn update(
        &self,
        states: &mut [Sketch],
        input: &[ArrayRef],
        group_of_row: &[u32],
    ) -> Result<(), Error> {
        let values = input[0].as_string::<i32>();
        // Index each touched group's sketch once per batch rather than searching per row.
        let mut index: HashMap<u32, HashMap<String, usize>> = HashMap::new();
        for (row, group) in group_of_row.iter().enumerate() {
            if values.is_null(row) {
                continue;
            }
            let value = values.value(row);
            let sketch = &mut states[*group as usize];
            let positions = index.entry(*group).or_insert_with(|| {
                sketch
                    .counts
                    .iter()
                    .enumerate()
                    .map(|(i, (v, _))| (v.clone(), i))
                    .collect()
            });
            match positions.get(value) {
                Some(&i) => sketch.counts[i].1 += 1,
                None if sketch.counts.len() < self.capacity => {
                    positions.insert(value.to_string(), sketch.counts.len());
                    sketch.counts.push((value.to_string(), 1));
                }
                None => {
                    // Space-saving: the new value takes over the smallest counter, plus one.
                    let (i, _) = sketch
                        .counts
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, (_, c))| *c)
                        .unwrap_or((0, &(String::new(), 0)));
                    positions.remove(&sketch.counts[i].0);
                    sketch.counts[i].0 = value.to_string();
                    sketch.counts[i].1 += 1;
                    positions.insert(value.to_string(), i);
                }
            }
        }
        Ok(())
    }

    fn merge(&self, state: &mut Sketch, other: Sketch) -> Result<(), Error> {
        let mut sums: HashMap<String, u64> = state.counts.drain(..).collect();
        for (value, count) in other.counts {
            *sums.entry(value).or_insert(0) += count;
        }
        state.counts = sums.into_iter().collect();
        self.trim(&mut state.counts);
        Ok(())
    }

    fn finish(&self, states: Vec<Sketch>) -> Result<ArrayRef, Error> {
        let mut out = ListBuilder::new(StringBuilder::new());
        for mut sketch in states {
            sketch
                .counts
                .sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            for (value, _) in sketch.counts.iter().take(self.k) {
                out.values().append_value(value);
            }
            out.append(true);
        }
        Ok(Arc::new(out.finish()))
    }
}

weir_plugin_sdk::export_aggregate!(TopK);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_plugin_sdk::arrow_array::StringArray;

    #[test]
    fn finds_the_most_frequent_values_per_group() {
        let agg = TopK::new(&Config::from_json(r#"{"k":2}"#).unwrap()).unwrap();
        let mut states = vec![Sketch::default(); 2];
        let values: ArrayRef = Arc::new(StringArray::from(vec![
            Some("a"),
            Some("b"),
            Some("b"),
            None,
            Some("c"),
            Some("c"),
            Some("c"),
            Some("z"),
        ]));
        agg.update(&mut states, &[values], &[0, 0, 0, 0, 0, 0, 0, 1])
            .unwrap();
        let out = agg.finish(states).unwrap();
        let list = out.as_list::<i32>();
        let first: Vec<String> = list
            .value(0)
            .as_string::<i32>()
            .iter()
            .flatten()
            .map(String::from)
            .collect();
        assert_eq!(first, ["c", "b"]);
        assert_eq!(list.value(1).len(), 1);
    }

    #[test]
    fn a_full_sketch_gives_the_rarest_counter_to_the_new_value() {
        let agg = TopK::new(&Config::from_json(r#"{"k":1,"capacity":2}"#).unwrap()).unwrap();
        let mut states = vec![Sketch::default()];
        let values: ArrayRef = Arc::new(StringArray::from(vec!["a", "a", "a", "b", "c", "a"]));
        agg.update(&mut states, &[values], &[0; 6]).unwrap();
        assert_eq!(states[0].counts.len(), 2);
        assert!(states[0].counts.contains(&("a".to_string(), 4)));
        // Space-saving: "c" took over the smallest counter ("b", 1) and counts on from it.
        assert!(!states[0].counts.iter().any(|(k, _)| k == "b"));
        assert!(states[0].counts.contains(&("c".to_string(), 2)));
    }
}
