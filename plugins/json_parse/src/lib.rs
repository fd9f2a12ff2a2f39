//! `json_parse`: parses a JSON text column into typed columns. Each wanted field is
//! `"name:type"` (type `string`, `long`, `double` or `boolean`); a field that is missing, null or
//! of another type in a row is null there, and a row whose text is not a JSON object gets nulls
//! in every field (counted in the optional `errors` column). The text column is dropped unless
//! `keep = true`.
//!
//! ```toml
//! [[transform]]
//! plugin = "json_parse"
//! config = { column = "json", fields = ["user:string", "amount:double", "n:long"] }
//! ```

mod fields;

use fields::FieldValue;
use std::sync::Arc;
use weir_plugin_sdk::arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int64Builder, StringBuilder,
};
use weir_plugin_sdk::arrow_array::cast::AsArray;
use weir_plugin_sdk::arrow_array::{ArrayRef, RecordBatch};
use weir_plugin_sdk::arrow_schema::{DataType, Field, SchemaRef};
use weir_plugin_sdk::{Config, Error, Map, Plan};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    column: String,
    fields: Vec<String>,
    #[serde(default)]
    keep: bool,
    /// Name of an optional boolean column: true where the text was not a JSON object.
    #[serde(default)]
    errors: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    String,
    Long,
    Double,
    Boolean,
}

impl Kind {
    fn data_type(self) -> DataType {
        match self {
            Kind::String => DataType::Utf8,
            Kind::Long => DataType::Int64,
            Kind::Double => DataType::Float64,
            Kind::Boolean => DataType::Boolean,
        }
    }
}

enum Builder {
    String(StringBuilder),
    Long(Int64Builder),
    Double(Float64Builder),
    Boolean(BooleanBuilder),
}

impl Builder {
    fn new(kind: Kind, rows: usize) -> Builder {
        match kind {
            Kind::String => Builder::String(StringBuilder::with_capacity(rows, rows * 8)),
            Kind::Long => Builder::Long(Int64Builder::with_capacity(rows)),
            Kind::Double => Builder::Double(Float64Builder::with_capacity(rows)),
            Kind::Boolean => Builder::Boolean(BooleanBuilder::with_capacity(rows)),
        }
    }

    fn push(&mut self, value: Option<&FieldValue>) {
        match self {
            Builder::String(b) => match value {
                Some(FieldValue::Str(s)) => b.append_value(s),
                Some(FieldValue::Null) | None => b.append_null(),
                // A number or object where text was wanted: keep its JSON text.
                Some(FieldValue::Number(n)) => {
                    b.append_value(serde_json::Value::Number(n.clone()).to_string())
                }
                Some(FieldValue::Bool(v)) => b.append_value(if *v { "true" } else { "false" }),
                Some(FieldValue::Nested(v)) => b.append_value(v.to_string()),
            },
            Builder::Long(b) => b.append_option(match value {
                Some(FieldValue::Number(n)) => n.as_i64(),
                _ => None,
            }),
            Builder::Double(b) => b.append_option(match value {
                Some(FieldValue::Number(n)) => n.as_f64(),
                _ => None,
            }),
            Builder::Boolean(b) => b.append_option(match value {
                Some(FieldValue::Bool(v)) => Some(*v),
                _ => None,
            }),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Builder::String(mut b) => Arc::new(b.finish()),
            Builder::Long(mut b) => Arc::new(b.finish()),
            Builder::Double(mut b) => Arc::new(b.finish()),
            Builder::Boolean(mut b) => Arc::new(b.finish()),
        }
    }
}

/// The plugin.
pub struct JsonParse {
    settings: Settings,
    fields: Vec<(String, Kind)>,
    /// The distinct names of `fields` (a name may be asked for twice, as two types).
    names: Vec<String>,
    /// Each field's place in `names`.
    name_of_field: Vec<usize>,
}

impl Map for JsonParse {
    fn new(config: &Config) -> Result<Self, Error> {
        let settings: Settings = config.parse()?;
        let mut fields = Vec::new();
        for spec in &settings.fields {
            let (name, kind) = spec
                .split_once(':')
                .ok_or_else(|| Error::new(format!("field `{spec}` is not \"name:type\"")))?;
            let kind = match kind.trim() {
                "string" => Kind::String,
                "long" => Kind::Long,
                "double" => Kind::Double,
                "boolean" => Kind::Boolean,
                other => {
                    return Err(Error::new(format!(
                        "field `{name}`: type `{other}` is not string, long, double or boolean"
                    )));
                }
            };
            fields.push((name.trim().to_string(), kind));
        }
        if fields.is_empty() {
            return Err(Error::new(
                "`fields` is empty: name at least one field to extract",
            ));
        }
        let mut names: Vec<String> = Vec::new();
        let mut name_of_field = Vec::with_capacity(fields.len());
        for (name, _) in &fields {
            name_of_field.push(names.iter().position(|n| n == name).unwrap_or_else(|| {
                names.push(name.clone());
                names.len() - 1
            }));
        }
        Ok(JsonParse {
            settings,
            fields,
            names,
            name_of_field,
        })
    }

    /// Reads the text column alone; writes the fields (and the errors column); drops the
    /// text unless `keep` (or a field takes its name, and so its place).
    fn plan(&mut self, input: &SchemaRef) -> Result<Plan, Error> {
        let column = &self.settings.column;
        let field = input
            .field_with_name(column)
            .map_err(|_| Error::new(format!("the input has no column `{column}`")))?;
        if field.data_type() != &DataType::Utf8 {
            return Err(Error::new(format!(
                "column `{column}` is {}, not a string",
                field.data_type()
            )));
        }
        let mut writes: Vec<Field> = self
            .fields
            .iter()
            .map(|(name, kind)| Field::new(name, kind.data_type(), true))
            .collect();
        if let Some(errors) = &self.settings.errors {
            writes.push(Field::new(errors, DataType::Boolean, false));
        }
        let replaced = writes.iter().any(|f| f.name() == column);
        Ok(Plan {
            reads: vec![column.clone()],
            writes,
            drops: if self.settings.keep || replaced {
                Vec::new()
            } else {
                vec![column.clone()]
            },
        })
    }

    fn map(&mut self, batch: &RecordBatch) -> Result<Vec<ArrayRef>, Error> {
        let index = batch.schema().index_of(&self.settings.column)?;
        let texts = batch.column(index).as_string::<i32>();
        let rows = batch.num_rows();
        let mut builders: Vec<Builder> = self
            .fields
            .iter()
            .map(|(_, kind)| Builder::new(*kind, rows))
            .collect();
        let mut errors = BooleanBuilder::with_capacity(rows);
        let mut slots: Vec<Option<FieldValue>> = self.names.iter().map(|_| None).collect();
        for text in texts.iter() {
            let object = match text {
                Some(text) => fields::read(text, &self.names, &mut slots),
                None => {
                    slots.iter_mut().for_each(|slot| *slot = None);
                    false
                }
            };
            errors.append_value(text.is_some() && !object);
            for (&name, builder) in self.name_of_field.iter().zip(builders.iter_mut()) {
                builder.push(slots.get(name).and_then(Option::as_ref));
            }
        }
        let mut columns: Vec<ArrayRef> = builders.into_iter().map(Builder::finish).collect();
        if self.settings.errors.is_some() {
            columns.push(Arc::new(errors.finish()));
        }
        Ok(columns)
    }
}

weir_plugin_sdk::export_map!(JsonParse);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_plugin_sdk::arrow_array::types::{Float64Type, Int64Type};
    use weir_plugin_sdk::arrow_array::{Array, StringArray};
    use weir_plugin_sdk::{Mapped, Transform};

    #[test]
    fn extracts_typed_fields_with_nulls_for_missing_and_bad_rows() {
        let config = Config::from_json(
            r#"{"column":"json","fields":["user:string","amount:double","n:long"],"errors":"bad"}"#,
        )
        .unwrap();
        let mut plugin = Mapped::<JsonParse>::new(&config).unwrap();
        let input = RecordBatch::try_from_iter([(
            "json",
            Arc::new(StringArray::from(vec![
                Some(r#"{"user":"ann","amount":2.5,"n":3}"#),
                Some(r#"{"user":7,"amount":"x"}"#),
                Some("not json"),
                None,
            ])) as ArrayRef,
        )])
        .unwrap();
        plugin.output_schema(&input.schema()).unwrap();
        let out = plugin.process(input).unwrap();
        assert_eq!(out.num_columns(), 4);
        let user = out.column(0).as_string::<i32>();
        assert_eq!(
            (user.value(0), user.value(1), user.is_null(2)),
            ("ann", "7", true)
        );
        let amount = out.column(1).as_primitive::<Float64Type>();
        assert_eq!((amount.value(0), amount.is_null(1)), (2.5, true));
        let n = out.column(2).as_primitive::<Int64Type>();
        assert_eq!((n.value(0), n.is_null(1)), (3, true));
        let bad: Vec<bool> = out.column(3).as_boolean().iter().flatten().collect();
        assert_eq!(bad, [false, false, true, false]);
    }

    #[test]
    fn rejects_unknown_types() {
        let config = Config::from_json(r#"{"column":"j","fields":["a:date"]}"#).unwrap();
        assert!(Mapped::<JsonParse>::new(&config).is_err());
    }
}
