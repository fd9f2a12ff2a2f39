//! Reading only the wanted fields of one JSON object: no map of the whole object is built, and
//! strings without escapes are borrowed from the text, so a row costs no allocation unless a
//! value has escapes or nests. Every value is still parsed (an unwanted field's too), so what
//! is valid JSON, and each value read, is exactly what parsing into a `serde_json::Value`
//! gives; a key that repeats keeps its last value, as a `Value`'s map does.

use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};
use std::borrow::Cow;
use std::fmt;

/// One field's value.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<'a> {
    Null,
    Bool(bool),
    Number(Number),
    Str(Cow<'a, str>),
    /// An object or an array.
    Nested(Value),
}

impl<'de> Deserialize<'de> for FieldValue<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FieldVisitor)
    }
}

struct FieldVisitor;

impl<'de> Visitor<'de> for FieldVisitor {
    type Value = FieldValue<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(FieldValue::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(FieldValue::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(FieldValue::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        // As `Value` has it: a double that is no JSON number is null.
        Ok(Number::from_f64(v).map_or(FieldValue::Null, FieldValue::Number))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(FieldValue::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(FieldValue::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(FieldValue::Str(Cow::Owned(v)))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(FieldValue::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(FieldValue::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        FieldValue::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Value::deserialize(SeqAccessDeserializer::new(seq)).map(FieldValue::Nested)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Value::deserialize(MapAccessDeserializer::new(map)).map(FieldValue::Nested)
    }
}

/// A key: the index of the wanted name it is, if any.
struct Key<'n>(&'n [String]);

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|name| name == v))
    }
}

/// An object, its wanted fields into `slots`.
struct Object<'s, 'n, 'de> {
    names: &'n [String],
    slots: &'s mut [Option<FieldValue<'de>>],
}

impl<'de> Visitor<'de> for Object<'_, '_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(Key(self.names))? {
            let value: FieldValue<'de> = map.next_value()?;
            if let Some(slot) = key.and_then(|i| self.slots.get_mut(i)) {
                *slot = Some(value);
            }
        }
        Ok(())
    }
}

/// Reads the fields `names` of the JSON object `text` into `slots` (one per name; a field the
/// object lacks is `None`). False, with every slot `None`, when `text` is not a JSON object.
pub fn read<'a>(text: &'a str, names: &[String], slots: &mut [Option<FieldValue<'a>>]) -> bool {
    slots.iter_mut().for_each(|slot| *slot = None);
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let object = Object {
        names,
        slots: &mut *slots,
    };
    let ok = deserializer.deserialize_map(object).is_ok() && deserializer.end().is_ok();
    if !ok {
        slots.iter_mut().for_each(|slot| *slot = None);
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_value(field: &FieldValue) -> Value {
        match field {
            FieldValue::Null => Value::Null,
            FieldValue::Bool(b) => Value::Bool(*b),
            FieldValue::Number(n) => Value::Number(n.clone()),
            FieldValue::Str(s) => Value::String(s.to_string()),
            FieldValue::Nested(v) => v.clone(),
        }
    }

    #[test]
    fn every_field_read_is_what_a_parsed_value_holds() {
        let names: Vec<String> = ["a", "b", "user", "n"].map(String::from).to_vec();
        let texts = [
            r#"{"a":1,"b":"x"}"#,
            r#"{"a":1,"a":2.5}"#,
            r#"{"us\u0065r":"esc\"aped","n":18446744073709551615}"#,
            r#"{"a":[1,{"b":2}],"b":{"c":null}}"#,
            r#"{"a":-9223372036854775808,"b":1e300,"n":0.0}"#,
            r#"{"other":1e400,"a":1}"#,
            r#"{"a":1} trailing"#,
            r#"{"a":1,}"#,
            r#"[1,2]"#,
            "null",
            "17",
            r#""text""#,
            "",
            " { \"a\" : true , \"b\" : false } ",
            r#"{"a":"\ud83d\ude00","b":"\u0000"}"#,
            r#"{"a":{"deep":[[[[[]]]]]}}"#,
        ];
        let mut slots: Vec<Option<FieldValue>> = names.iter().map(|_| None).collect();
        for text in texts {
            let ok = read(text, &names, &mut slots);
            let parsed = serde_json::from_str::<Value>(text).ok();
            let object = parsed.as_ref().and_then(Value::as_object);
            assert_eq!(ok, object.is_some(), "{text}");
            for (name, slot) in names.iter().zip(&slots) {
                assert_eq!(
                    slot.as_ref().map(as_value),
                    object.and_then(|o| o.get(name)).cloned(),
                    "{text}: {name}"
                );
            }
        }
    }

    #[test]
    fn strings_without_escapes_are_borrowed_from_the_text() {
        let names = vec!["a".to_string(), "b".to_string()];
        let mut slots: Vec<Option<FieldValue>> = vec![None, None];
        assert!(read(r#"{"a":"plain","b":"esc\n"}"#, &names, &mut slots));
        assert!(matches!(
            slots[0],
            Some(FieldValue::Str(Cow::Borrowed("plain")))
        ));
        assert!(matches!(&slots[1], Some(FieldValue::Str(Cow::Owned(s))) if s == "esc\n"));
    }
}
