//! The Atlas publish payload: one flat JSON array holding a sorted string
//! table followed by the measurements as indexes into it.
//!
//! ```
//! use spectator::{Id, Measurement};
//! use spectator::wire::encode_batch;
//!
//! let m = Measurement::new(Id::new("a", &[("x", "y"), ("statistic", "count")]), 1.0);
//! let common = [("nf.app".to_string(), "foo".to_string())];
//! let mut out = Vec::new();
//! encode_batch(&common, &[m], &mut out);
//! assert_eq!(
//!     String::from_utf8(out).unwrap(),
//!     r#"[8,"a","count","foo","name","nf.app","statistic","x","y",4,4,2,5,1,6,7,3,0,0,1]"#
//! );
//! ```
//!
//! Rules applied here:
//! - every name, key and value is [sanitised](crate::rules::sanitize) to `-._A-Za-z0-9~^`, so no
//!   string ever needs JSON escaping;
//! - per measurement the tags are the common tags (in the order given; a key given twice, or
//!   two keys that sanitise alike, keep the last value), then the id's tags
//!   (sorted by key), then `name` → metric name; a key present in both the common tags and the
//!   id is sent once with the id's value; a tag whose key is `name` is not sent (the metric name
//!   is);
//! - measurements whose value is NaN or infinite are left out;
//! - integral values of magnitude below 2^53 are written without a fraction (`1`, not `1.0`),
//!   others in the shortest form that reads back to the same `f64`.

use std::borrow::Cow;
use std::io::Write;

use rustc_hash::FxHashMap;

use crate::measurement::Measurement;
use crate::rules::sanitize;

/// Appends the JSON payload for `batch` to `out`.
///
/// `common_tags` are added to every measurement (sanitised here; an id's own tag of the same key
/// wins). Non-finite values are skipped; the caller decides the batch size.
pub fn encode_batch(common_tags: &[(String, String)], batch: &[Measurement], out: &mut Vec<u8>) {
    // One value per sanitised key (the last one given wins): two spellings of a key, or a key
    // given twice, must not send the same tag twice in a measurement.
    let mut common: Vec<(Cow<'_, str>, Cow<'_, str>)> = Vec::with_capacity(common_tags.len());
    for (k, v) in common_tags {
        let (k, v) = (sanitize(k), sanitize(v));
        if k == "name" {
            continue;
        }
        match common.iter_mut().find(|(ck, _)| *ck == k) {
            Some(slot) => slot.1 = v,
            None => common.push((k, v)),
        }
    }

    // Flat storage of every measurement's tag pairs; `spans` marks each one's slice.
    let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(batch.len() * (common.len() + 4));
    let mut spans: Vec<(usize, usize, &Measurement)> = Vec::with_capacity(batch.len());
    // Sanitised id strings that needed replacing live here; almost always empty.
    let owned = OwnedStrings::collect(batch);
    let mut scratch: Vec<(&str, &str)> = Vec::with_capacity(8);

    for (i, m) in batch.iter().enumerate() {
        if !m.value.is_finite() {
            continue;
        }
        scratch.clear();
        for (j, (k, v)) in m.id.tags().enumerate() {
            let k = owned.key(i, j).unwrap_or(k);
            let v = owned.value(i, j).unwrap_or(v);
            if k == "name" {
                continue;
            }
            match scratch.iter_mut().find(|(sk, _)| *sk == k) {
                Some(slot) => slot.1 = v,
                None => scratch.push((k, v)),
            }
        }
        let start = pairs.len();
        for (k, v) in &common {
            if !scratch.iter().any(|(sk, _)| *sk == &**k) {
                pairs.push((k, v));
            }
        }
        pairs.extend_from_slice(&scratch);
        pairs.push(("name", owned.name(i).unwrap_or(m.id.name())));
        spans.push((start, pairs.len(), m));
    }

    // The string table: unique strings sorted by bytes, then each one's index.
    let mut index: FxHashMap<&str, u32> = FxHashMap::default();
    index.reserve(pairs.len() / 2 + common.len() * 2 + 1);
    index.insert("name", 0);
    for (k, v) in &common {
        index.insert(k, 0);
        index.insert(v, 0);
    }
    for (k, v) in &pairs {
        index.insert(k, 0);
        index.insert(v, 0);
    }
    let mut table: Vec<&str> = index.keys().copied().collect();
    table.sort_unstable();
    for (i, s) in table.iter().enumerate() {
        if let Some(slot) = index.get_mut(s) {
            *slot = i as u32;
        }
    }

    out.reserve(table.iter().map(|s| s.len() + 3).sum::<usize>() + spans.len() * 48);
    out.push(b'[');
    write_uint(out, table.len() as u64);
    for s in &table {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
    for &(start, end, m) in &spans {
        out.push(b',');
        write_uint(out, (end - start) as u64);
        for (k, v) in &pairs[start..end] {
            out.push(b',');
            write_uint(out, u64::from(index.get(k).copied().unwrap_or(0)));
            out.push(b',');
            write_uint(out, u64::from(index.get(v).copied().unwrap_or(0)));
        }
        out.push(b',');
        write_uint(out, u64::from(m.op.code()));
        out.push(b',');
        write_f64(out, m.value);
    }
    out.push(b']');
}

/// Gzip-compresses `json` (the POST body) at level 5: within 0.5% of level 6's size for half
/// its CPU on typical payloads (BENCHMARKS.md has the measurements).
pub fn gzip(json: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(json.len() / 8 + 64),
        flate2::Compression::new(5),
    );
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(json);
    enc.finish().unwrap_or_default()
}

/// Strings of the batch that sanitising changed, by (measurement, tag) position.
///
/// Ids almost always hold valid characters already, so this is usually empty and the encoder
/// borrows everything from the ids.
struct OwnedStrings {
    names: FxHashMap<usize, String>,
    keys: FxHashMap<(usize, usize), String>,
    values: FxHashMap<(usize, usize), String>,
}

impl OwnedStrings {
    fn collect(batch: &[Measurement]) -> OwnedStrings {
        let mut o = OwnedStrings {
            names: FxHashMap::default(),
            keys: FxHashMap::default(),
            values: FxHashMap::default(),
        };
        for (i, m) in batch.iter().enumerate() {
            if let Cow::Owned(s) = sanitize(m.id.name()) {
                o.names.insert(i, s);
            }
            for (j, (k, v)) in m.id.tags().enumerate() {
                if let Cow::Owned(s) = sanitize(k) {
                    o.keys.insert((i, j), s);
                }
                if let Cow::Owned(s) = sanitize(v) {
                    o.values.insert((i, j), s);
                }
            }
        }
        o
    }

    fn name(&self, i: usize) -> Option<&str> {
        if self.names.is_empty() {
            return None;
        }
        self.names.get(&i).map(String::as_str)
    }

    fn key(&self, i: usize, j: usize) -> Option<&str> {
        if self.keys.is_empty() {
            return None;
        }
        self.keys.get(&(i, j)).map(String::as_str)
    }

    fn value(&self, i: usize, j: usize) -> Option<&str> {
        if self.values.is_empty() {
            return None;
        }
        self.values.get(&(i, j)).map(String::as_str)
    }
}

fn write_uint(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Largest magnitude below which every integral f64 is exactly an i64 we can print as such.
const EXACT_INT: f64 = 9_007_199_254_740_992.0; // 2^53

fn write_f64(out: &mut Vec<u8>, v: f64) {
    if v.fract() == 0.0 && v.abs() < EXACT_INT {
        if v < 0.0 {
            out.push(b'-');
        }
        write_uint(out, v.abs() as u64);
    } else {
        // Finite by construction; serde_json writes the shortest round-tripping form.
        let _ = serde_json::to_writer(&mut *out, &v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Id;
    use crate::measurement::{Measurement, Op};

    fn enc(common: &[(&str, &str)], ms: &[Measurement]) -> String {
        let common: Vec<(String, String)> = common
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut out = Vec::new();
        encode_batch(&common, ms, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn spec_example_byte_for_byte() {
        let m = Measurement::new(Id::new("a", &[("x", "y"), ("statistic", "count")]), 1.0);
        assert_eq!(
            enc(&[("nf.app", "foo")], &[m]),
            r#"[8,"a","count","foo","name","nf.app","statistic","x","y",4,4,2,5,1,6,7,3,0,0,1]"#
        );
    }

    #[test]
    fn common_key_given_twice_is_sent_once_with_the_last_value() {
        // Found by fuzzing: `a b` and `a_b` are one key on the wire, as is a key given twice
        // (RegistryBuilder::common_tags called twice); each was sent twice in a measurement.
        let m = Measurement::new(Id::new("m", &[]), 1.0);
        assert_eq!(
            enc(&[("a b", "1"), ("a_b", "2"), ("c", "3"), ("c", "4")], &[m]),
            r#"[6,"2","4","a_b","c","m","name",3,2,0,3,1,5,4,10,1]"#
        );
    }

    #[test]
    fn id_tag_wins_over_common_tag_and_is_sent_once() {
        let m = Measurement::new(Id::new("m", &[("nf.app", "mine")]), 2.5);
        assert_eq!(m.op, Op::Max);
        assert_eq!(
            enc(&[("nf.app", "foo"), ("nf.stack", "s")], &[m]),
            r#"[7,"foo","m","mine","name","nf.app","nf.stack","s",3,5,6,4,2,3,1,10,2.5]"#
        );
    }

    #[test]
    fn sanitises_names_keys_values() {
        let m = Measurement::new(Id::new("a b", &[("k/1", "v é")]), 3.0);
        assert_eq!(
            enc(&[("c t", "x:y")], &[m]),
            r#"[6,"a_b","c_t","k_1","name","v__","x_y",3,1,5,2,4,3,0,10,3]"#
        );
    }

    #[test]
    fn skips_non_finite_values() {
        let ms = [
            Measurement::new(Id::new("n", &[]), f64::NAN),
            Measurement::new(Id::new("i", &[]), f64::INFINITY),
            Measurement::new(Id::new("ok", &[]), -0.25),
        ];
        assert_eq!(enc(&[], &ms), r#"[2,"name","ok",1,0,1,10,-0.25]"#);
    }

    #[test]
    fn empty_batch_is_an_empty_table() {
        assert_eq!(enc(&[], &[]), "[1,\"name\"]");
    }

    #[test]
    fn numbers() {
        let cases = [
            (0.0, "0"),
            (-0.0, "0"),
            (1e15, "1000000000000000"),
            (1e20, "1e+20"),
            (0.1, "0.1"),
            (-7.0, "-7"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
        ];
        for (v, s) in cases {
            let mut out = Vec::new();
            write_f64(&mut out, v);
            let got = String::from_utf8(out).unwrap();
            assert_eq!(got, s, "{v}");
            assert_eq!(got.parse::<f64>().unwrap(), v);
        }
    }

    #[test]
    fn tag_named_name_is_replaced_by_metric_name() {
        let m = Measurement::new(Id::new("real", &[("name", "fake")]), 1.0);
        assert_eq!(enc(&[], &[m]), r#"[2,"name","real",1,0,1,10,1]"#);
    }

    #[test]
    fn payload_is_valid_json_and_gzip_round_trips() {
        let ms: Vec<Measurement> = (0..50)
            .map(|i| {
                Measurement::new(
                    Id::new("x.y", &[("i", &i.to_string()), ("statistic", "count")]),
                    i as f64 / 3.0,
                )
            })
            .collect();
        let mut out = Vec::new();
        encode_batch(&[("nf.app".into(), "a".into())], &ms, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(v.is_array());
        let gz = gzip(&out);
        let mut dec = flate2::read::GzDecoder::new(&gz[..]);
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut dec, &mut back).unwrap();
        assert_eq!(back, out);
    }
}
