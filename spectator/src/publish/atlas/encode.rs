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
    let mut strings = Strings::with_capacity(batch.len());
    let name = strings.intern("name");

    // One value per sanitised key (the last one given wins): two spellings of a key, or a key
    // given twice, must not send the same tag twice in a measurement. Values are interned
    // after that, so that a value replaced here is not in the table.
    let mut given: Vec<(u32, &str)> = Vec::with_capacity(common_tags.len());
    for (k, v) in common_tags {
        let k = strings.intern(k);
        if k == name {
            continue;
        }
        match given.iter_mut().find(|(ck, _)| *ck == k) {
            Some(slot) => slot.1 = v,
            None => given.push((k, v)),
        }
    }
    let common: Vec<(u32, u32)> = given
        .into_iter()
        .map(|(k, v)| (k, strings.intern(v)))
        .collect();

    // First pass: every measurement as string ids, `[T, k1, v1, .., kT, vT]` per finite
    // measurement; the ids become table indexes once every string is known.
    let mut codes: Vec<u32> = Vec::with_capacity(batch.len() * (2 * common.len() + 10));
    let mut scratch: Vec<(u32, &str)> = Vec::with_capacity(8);
    // Consecutive measurements mostly repeat the previous one's strings at the same place (a
    // timer's four statistics, the keys of one metric): comparing with those first skips
    // most hash lookups.
    let mut recent = Recent::default();
    for m in batch {
        if !m.value.is_finite() {
            continue;
        }
        scratch.clear();
        for (j, (k, v)) in m.id.tags().enumerate() {
            let k = recent.key(&mut strings, j, k);
            if k == name {
                continue;
            }
            match scratch.iter_mut().find(|(sk, _)| *sk == k) {
                Some(slot) => slot.1 = v,
                None => scratch.push((k, v)),
            }
        }
        let count_at = codes.len();
        codes.push(0);
        for &(k, v) in &common {
            if !scratch.iter().any(|(sk, _)| *sk == k) {
                codes.extend_from_slice(&[k, v]);
            }
        }
        for (j, &(k, v)) in scratch.iter().enumerate() {
            let v = recent.value(&mut strings, j, v);
            codes.extend_from_slice(&[k, v]);
        }
        let n = recent.name(&mut strings, m.id.name());
        codes.extend_from_slice(&[name, n]);
        codes[count_at] = ((codes.len() - count_at - 1) / 2) as u32;
    }

    // The string table sorted by bytes; each id's index written once, as `,<index>`.
    let table = strings.table;
    let mut order: Vec<u32> = (0..table.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| table[a as usize].cmp(&table[b as usize]));
    let mut rank = vec![0u32; table.len()];
    for (i, &id) in order.iter().enumerate() {
        rank[id as usize] = i as u32;
    }
    let mut digits: Vec<u8> = Vec::with_capacity(table.len() * 6);
    let mut at: Vec<u32> = Vec::with_capacity(table.len() + 1);
    for &r in &rank {
        at.push(digits.len() as u32);
        digits.push(b',');
        write_uint(&mut digits, u64::from(r));
    }
    at.push(digits.len() as u32);
    let index = |id: u32| &digits[at[id as usize] as usize..at[id as usize + 1] as usize];

    out.reserve(
        table.iter().map(|s| s.len() + 3).sum::<usize>()
            + (digits.len() / table.len().max(1) + 1) * codes.len()
            + batch.len() * 24,
    );
    out.push(b'[');
    write_uint(out, table.len() as u64);
    for &id in &order {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(table[id as usize].as_bytes());
        out.push(b'"');
    }
    let mut codes = codes.iter();
    for m in batch.iter().filter(|m| m.value.is_finite()) {
        let t = codes.next().copied().unwrap_or(0);
        out.push(b',');
        write_uint(out, u64::from(t));
        for &id in codes.by_ref().take(2 * t as usize) {
            out.extend_from_slice(index(id));
        }
        out.push(b',');
        write_uint(out, u64::from(m.op.code()));
        out.push(b',');
        write_f64(out, m.value);
    }
    out.push(b']');
}

/// Gzip-compresses `json` (the POST body) at level 2 of flate2's zlib-rs backend: on a
/// 100k-measurement payload, 60% of the CPU of level 4 for 23% more bytes, and half of level
/// 5 for 32% more (BENCHMARKS.md has the table). Compression was most of a publish's CPU.
pub fn gzip(json: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(json.len() / 6 + 64),
        flate2::Compression::new(GZIP_LEVEL),
    );
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(json);
    enc.finish().unwrap_or_default()
}

/// The gzip level of POST bodies.
const GZIP_LEVEL: u32 = 2;

/// The batch's distinct sanitised strings, each with an id (its place in `table`).
struct Strings<'a> {
    /// Each string as given (sanitised or not) to its id.
    ids: FxHashMap<&'a str, u32>,
    /// Sanitised forms that differ from the string given, to their id: two strings that
    /// sanitise alike share one.
    changed: FxHashMap<String, u32>,
    /// The sanitised strings, by id, all distinct.
    table: Vec<Cow<'a, str>>,
}

impl<'a> Strings<'a> {
    fn with_capacity(measurements: usize) -> Strings<'a> {
        let mut ids = FxHashMap::default();
        ids.reserve(measurements / 2 + 16);
        Strings {
            ids,
            changed: FxHashMap::default(),
            table: Vec::with_capacity(measurements / 2 + 16),
        }
    }

    /// The id of `raw`'s sanitised form.
    fn intern(&mut self, raw: &'a str) -> u32 {
        match self.ids.get(raw) {
            Some(&id) => id,
            None => self.insert(raw),
        }
    }

    fn insert(&mut self, raw: &'a str) -> u32 {
        let id = match sanitize(raw) {
            Cow::Borrowed(s) => match self.changed.get(s) {
                Some(&id) => id,
                None => self.push(Cow::Borrowed(s)),
            },
            Cow::Owned(t) => match self.ids.get(t.as_str()).or_else(|| self.changed.get(&t)) {
                Some(&id) => id,
                None => {
                    let id = self.push(Cow::Owned(t.clone()));
                    self.changed.insert(t, id);
                    id
                }
            },
        };
        self.ids.insert(raw, id);
        id
    }

    fn push(&mut self, s: Cow<'a, str>) -> u32 {
        self.table.push(s);
        (self.table.len() - 1) as u32
    }
}

/// The previous measurement's strings and their ids, by place: the tag keys and values (by
/// position in the id) and the name.
#[derive(Default)]
struct Recent<'a> {
    keys: Vec<(&'a str, u32)>,
    values: Vec<(&'a str, u32)>,
    name: Option<(&'a str, u32)>,
}

impl<'a> Recent<'a> {
    fn key(&mut self, strings: &mut Strings<'a>, j: usize, s: &'a str) -> u32 {
        Self::at(&mut self.keys, strings, j, s)
    }

    fn value(&mut self, strings: &mut Strings<'a>, j: usize, s: &'a str) -> u32 {
        Self::at(&mut self.values, strings, j, s)
    }

    fn name(&mut self, strings: &mut Strings<'a>, s: &'a str) -> u32 {
        match self.name {
            Some((last, id)) if last == s => id,
            _ => {
                let id = strings.intern(s);
                self.name = Some((s, id));
                id
            }
        }
    }

    #[inline]
    fn at(slots: &mut Vec<(&'a str, u32)>, strings: &mut Strings<'a>, j: usize, s: &'a str) -> u32 {
        match slots.get_mut(j) {
            Some((last, id)) if *last == s => *id,
            Some(slot) => {
                let id = strings.intern(s);
                *slot = (s, id);
                id
            }
            None => {
                let id = strings.intern(s);
                slots.push((s, id));
                id
            }
        }
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
        // Finite by construction. The shortest form that reads back to the same f64, exactly
        // as serde_json writes it (it uses ryu too).
        out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
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
    fn strings_that_sanitise_alike_are_one_table_entry_in_either_order() {
        // "a b" is sanitised to "a_b": one string in the table, whichever comes first.
        let ms = || {
            [
                Measurement::new(Id::new("m", &[("k", "a b")]), 1.0),
                Measurement::new(Id::new("m", &[("k", "a_b")]), 2.0),
            ]
        };
        let want = r#"[4,"a_b","k","m","name",2,1,0,3,2,10,1,2,1,0,3,2,10,2]"#;
        assert_eq!(enc(&[], &ms()), want);
        let [a, b] = ms();
        assert_eq!(
            enc(&[], &[b, a]),
            r#"[4,"a_b","k","m","name",2,1,0,3,2,10,2,2,1,0,3,2,10,1]"#
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
            // JSON allows an exponent without its sign; Atlas and serde_json read it back.
            (1e20, "1e20"),
            (0.1, "0.1"),
            (-7.0, "-7"),
            (f64::MAX, "1.7976931348623157e308"),
            (-1.5e-7, "-1.5e-7"),
            (0.30000000000000004, "0.30000000000000004"),
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
