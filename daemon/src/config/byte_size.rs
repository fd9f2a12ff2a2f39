//! Sizes written the human way (`65536`, `"64KiB"`, `"256 MB"`, `"1g"`) for byte limits.

use serde::{Deserialize, Deserializer};

/// A number of bytes from the pipeline file: an integer, or a string with a unit (`B`, `KB`,
/// `MB`, `GB` are powers of 1000; `KiB`, `MiB`, `GiB` and the single letters `k`, `m`, `g` are
/// powers of 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

/// Parses `"64 MiB"` and friends.
pub fn parse_byte_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| {
        format!("invalid size \"{text}\"; expected e.g. 65536, \"64KiB\" or \"256MB\"")
    })?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000 * 1000,
        "gb" => 1000 * 1000 * 1000,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit \"{other}\" in \"{text}\"; use B, KB, MB, GB, KiB, MiB or GiB"
            ));
        }
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("size \"{text}\" is too large"))
}

impl std::fmt::Display for ByteSize {
    /// In the largest binary unit that keeps a whole number before the point: `512 B`,
    /// `4.0 KiB`, `1.5 GiB`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
        if self.0 < 1024 {
            return write!(f, "{} B", self.0);
        }
        let mut value = self.0 as f64 / 1024.0;
        let mut unit = 0;
        while value >= 1024.0 && unit + 1 < UNITS.len() {
            value /= 1024.0;
            unit += 1;
        }
        write!(f, "{value:.1} {}", UNITS[unit])
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a size in bytes, e.g. 65536, \"64KiB\" or \"256MB\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ByteSize, E> {
                parse_byte_size(v).map(ByteSize).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::{ByteSize, parse_byte_size};

    #[test]
    fn units_are_decimal_or_binary_as_written() {
        for (text, bytes) in [
            ("65536", 65536),
            ("64KiB", 65536),
            ("64 kib", 65536),
            ("1k", 1024),
            ("256MB", 256_000_000),
            ("1 GiB", 1 << 30),
            ("7b", 7),
        ] {
            assert_eq!(parse_byte_size(text), Ok(bytes), "{text}");
        }
        assert!(parse_byte_size("12 parsecs").is_err());
        assert!(parse_byte_size("MB").is_err());
        assert!(parse_byte_size("99999999999999999999GB").is_err());
    }

    #[test]
    fn sizes_display_in_the_largest_whole_binary_unit() {
        for (bytes, text) in [
            (512, "512 B"),
            (4096, "4.0 KiB"),
            (1536 << 20, "1.5 GiB"),
            (u64::MAX, "16777216.0 TiB"),
        ] {
            assert_eq!(ByteSize(bytes).to_string(), text);
        }
    }
}
