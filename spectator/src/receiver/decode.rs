//! Decoding a publish body: gzip (bounded), then the Atlas publish payload.

use std::collections::BTreeMap;
use std::io::Read;

use super::ReceivedMeasurement;

/// Why a gzip body could not be inflated.
#[derive(Debug)]
pub(super) struct GunzipError {
    /// It inflates past the cap (answered 413), rather than being broken (400).
    pub(super) too_large: bool,
    pub(super) message: String,
}

/// Gunzips `body`, refusing to inflate past `max` bytes (a small body can inflate to gigabytes).
pub(super) fn gunzip(body: &[u8], max: usize) -> Result<Vec<u8>, GunzipError> {
    let mut out = Vec::new();
    // One byte more than allowed tells "exactly at the cap" from "past it".
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::GzDecoder::new(body)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| GunzipError {
            too_large: false,
            message: format!("bad gzip body: {e}"),
        })?;
    if out.len() > max {
        return Err(GunzipError {
            too_large: true,
            message: format!("gzip body inflates past {max} bytes"),
        });
    }
    Ok(out)
}

/// Decodes a publish payload the way the Atlas aggregator reads it: a string table
/// (`[n, s0, .., s(n-1)]`) then, per measurement, a tag count, that many key and value indices
/// into the table, an op and a value.
///
/// ```
/// use spectator::receiver::decode_payload;
/// let ms = decode_payload(
///     br#"[8,"a","count","foo","name","nf.app","statistic","x","y",4,4,2,5,1,6,7,3,0,0,1]"#,
/// ).unwrap();
/// assert_eq!(ms.len(), 1);
/// assert_eq!(ms[0].name(), "a");
/// assert_eq!(ms[0].tags["nf.app"], "foo");
/// assert_eq!((ms[0].op, ms[0].value), (0, 1.0));
/// ```
pub fn decode_payload(json: &[u8]) -> Result<Vec<ReceivedMeasurement>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| format!("bad JSON: {e}"))?;
    let arr = v.as_array().ok_or("payload is not a JSON array")?;
    let mut it = arr.iter();
    let uint = |x: Option<&serde_json::Value>, what: &str| -> Result<u64, String> {
        x.and_then(serde_json::Value::as_u64)
            .ok_or_else(|| format!("expected {what} (an unsigned integer)"))
    };
    let n = usize::try_from(uint(it.next(), "the string table size")?).unwrap_or(usize::MAX);
    let mut table = Vec::with_capacity(n.min(arr.len()));
    for _ in 0..n {
        let s = it
            .next()
            .and_then(serde_json::Value::as_str)
            .ok_or("string table shorter than announced")?;
        table.push(s.to_string());
    }
    let lookup = |i: u64| -> Result<String, String> {
        usize::try_from(i)
            .ok()
            .and_then(|i| table.get(i))
            .cloned()
            .ok_or_else(|| format!("string index {i} out of range"))
    };
    let mut out = Vec::new();
    while let Some(t) = it.next() {
        let t = uint(Some(t), "a tag count")?;
        let mut tags = BTreeMap::new();
        for _ in 0..t {
            let k = lookup(uint(it.next(), "a key index")?)?;
            let v = lookup(uint(it.next(), "a value index")?)?;
            if tags.insert(k.clone(), v).is_some() {
                return Err(format!("tag {k:?} sent twice in one measurement"));
            }
        }
        let op = uint(it.next(), "an op")?;
        let value = it
            .next()
            .and_then(serde_json::Value::as_f64)
            .ok_or("expected a value (a number)")?;
        out.push(ReceivedMeasurement { tags, op, value });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn decode_errors_are_messages() {
        assert!(decode_payload(b"{}").is_err());
        assert!(decode_payload(b"[2,\"a\"]").is_err());
        assert!(decode_payload(b"[1,\"a\",1,0,5,0,1]").is_err());
        assert!(decode_payload(b"[1,\"a\",1,0,0]").is_err());
        assert!(decode_payload(b"[1,\"a\",1,0,0,99999999999999999999,0,1]").is_err());
        assert_eq!(decode_payload(b"[1,\"name\"]").unwrap(), vec![]);
    }

    #[test]
    fn values_decode_exactly() {
        // Found by a property test: serde_json's default float parsing is off by one ulp
        // here; the `float_roundtrip` feature (enabled by `receiver`) parses it exactly.
        let v = 943972.4019973897_f64;
        let json = format!(
            "[2,\"name\",\"nm\",1,0,1,0,{}]",
            serde_json::to_string(&v).unwrap()
        );
        assert_eq!(decode_payload(json.as_bytes()).unwrap()[0].value, v);
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn gunzip_is_bounded() {
        let data = vec![b'x'; 1000];
        let z = gzip(&data);
        assert_eq!(gunzip(&z, 1000).unwrap(), data);
        let err = gunzip(&z, 999).unwrap_err();
        assert!(
            err.too_large && err.message.contains("inflates past 999"),
            "{err:?}"
        );
        let err = gunzip(&z[..z.len() / 2], 1000).unwrap_err();
        assert!(
            !err.too_large && err.message.starts_with("bad gzip body"),
            "{err:?}"
        );
        assert!(gunzip(b"not gzip", 1000).is_err());
    }
}
