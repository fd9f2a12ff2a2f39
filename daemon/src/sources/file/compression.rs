//! Compressed csv, json and text files: gzip and zstd, recognised by extension or named in the
//! pipeline. A file is decompressed whole, once its compressed bytes (the ones logged for the
//! batch) are read, so everything downstream sees plain text.

use crate::config::Compression;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// How one file is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Not compressed.
    Plain,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Codec::Plain => "plain",
            Codec::Gzip => "gzip",
            Codec::Zstd => "zstd",
        })
    }
}

/// The codec of `path` under the pipeline's `compression` setting.
pub fn codec(setting: Compression, path: &Path) -> Codec {
    match setting {
        Compression::None => Codec::Plain,
        Compression::Gzip => Codec::Gzip,
        Compression::Zstd => Codec::Zstd,
        Compression::Auto => match path.extension().and_then(|e| e.to_str()) {
            Some("gz" | "gzip") => Codec::Gzip,
            Some("zst" | "zstd") => Codec::Zstd,
            _ => Codec::Plain,
        },
    }
}

/// A reader of the plain contents of `input`.
pub fn decoder<'a>(codec: Codec, input: impl Read + 'a) -> std::io::Result<Box<dyn BufRead + 'a>> {
    Ok(match codec {
        Codec::Plain => Box::new(BufReader::new(input)),
        // Concatenated members (`cat a.gz b.gz`) are one stream, as gzip -d reads them.
        Codec::Gzip => Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(input))),
        Codec::Zstd => Box::new(BufReader::new(zstd::stream::read::Decoder::new(input)?)),
    })
}

/// The plain contents of a whole file's bytes, at most `limit` of them; the error says why they
/// cannot be decoded, or that they are more than the limit (a decompression bomb must not take
/// the process's memory).
pub fn decompress(codec: Codec, bytes: Vec<u8>, limit: u64) -> Result<Vec<u8>, String> {
    if codec == Codec::Plain {
        return Ok(bytes);
    }
    // Text compresses several times over; start with room for that.
    let room = bytes
        .len()
        .saturating_mul(4)
        .min(usize::try_from(limit).unwrap_or(usize::MAX));
    let mut plain = Vec::with_capacity(room);
    decoder(codec, bytes.as_slice())
        .and_then(|reader| reader.take(limit.saturating_add(1)).read_to_end(&mut plain))
        .map_err(|e| e.to_string())?;
    if plain.len() as u64 > limit {
        return Err(format!(
            "it decompresses to more than max_decompressed_size ({})",
            crate::config::ByteSize(limit)
        ));
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let _ = encoder.write_all(data);
        encoder.finish().unwrap_or_default()
    }

    #[test]
    fn codecs_follow_the_setting_then_the_extension() {
        let auto = Compression::Auto;
        assert_eq!(codec(auto, Path::new("a/b.csv.gz")), Codec::Gzip);
        assert_eq!(codec(auto, Path::new("b.json.zst")), Codec::Zstd);
        assert_eq!(codec(auto, Path::new("b.csv")), Codec::Plain);
        assert_eq!(codec(Compression::None, Path::new("b.gz")), Codec::Plain);
        assert_eq!(codec(Compression::Zstd, Path::new("b.csv")), Codec::Zstd);
    }

    #[test]
    fn gzip_members_and_zstd_decompress_and_garbage_is_an_error() {
        let text = "id,name\n1,ünï\n2,\n".repeat(100);
        let mut two_members = gzip(&text.as_bytes()[..700]);
        two_members.extend(gzip(&text.as_bytes()[700..]));
        let limit = text.len() as u64;
        assert_eq!(
            decompress(Codec::Gzip, two_members, limit).map(String::from_utf8),
            Ok(Ok(text.clone()))
        );
        let zst = zstd::encode_all(text.as_bytes(), 3).unwrap_or_default();
        assert_eq!(
            decompress(Codec::Zstd, zst, limit).map(String::from_utf8),
            Ok(Ok(text.clone()))
        );
        let mut cut = gzip(text.as_bytes());
        cut.truncate(cut.len() / 2);
        assert!(
            decompress(Codec::Gzip, cut, limit).is_err(),
            "a truncated stream"
        );
        assert!(decompress(Codec::Zstd, b"not zstd".to_vec(), limit).is_err());
        assert_eq!(
            decompress(Codec::Plain, b"as is".to_vec(), 1),
            Ok(b"as is".to_vec()),
            "plain files are bounded by their size"
        );
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        // 64 MiB of zeros compress to ~64 KiB.
        let bomb = gzip(&vec![0u8; 64 << 20]);
        assert!(bomb.len() < 1 << 20);
        let err = decompress(Codec::Gzip, bomb, 1 << 20)
            .err()
            .unwrap_or_default();
        assert_eq!(
            err,
            "it decompresses to more than max_decompressed_size (1.0 MiB)"
        );
    }
}
