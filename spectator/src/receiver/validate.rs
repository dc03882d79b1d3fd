//! Atlas's publish validation, measurement by measurement, and the answer to a whole request.
//!
//! The rules come from [`crate::rules`], the one statement of them in this crate.

use crate::rules;

use super::http::Answer;
use super::{ReceivedMeasurement, ReceivedRequest};

/// What the aggregator's rules say about one measurement.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Violations the aggregator always rejects for: missing name, characters outside
    /// `-._A-Za-z0-9^~`, `atlas.*` keys, more than 20 user tags, an op other than 0 or 10.
    pub rejected: Vec<String>,
    /// Length-rule violations (name 2..=255, keys 2..=60, values 1..=120), rejected only by a
    /// [strict](super::Aggregator::set_strict_lengths) aggregator.
    pub lengths: Vec<String>,
}

impl Verdict {
    /// Whether an aggregator accepts the measurement (`strict_lengths`: enforcing lengths too).
    pub fn accepted(&self, strict_lengths: bool) -> bool {
        self.rejected.is_empty() && (!strict_lengths || self.lengths.is_empty())
    }
}

/// Checks one decoded measurement against the aggregator's rules, as a request is validated.
///
/// ```
/// use spectator::testing::aggregator::{check_measurement, decode_payload};
/// let ms = decode_payload(br#"[4,"name","ok.name","x","y",2,2,3,0,1,0,1]"#).unwrap();
/// let verdict = check_measurement(&ms[0]);
/// assert!(verdict.rejected.is_empty());
/// assert_eq!(verdict.lengths.len(), 1); // key "x" is shorter than 2
/// assert!(verdict.accepted(false) && !verdict.accepted(true));
/// ```
pub fn check_measurement(m: &ReceivedMeasurement) -> Verdict {
    let mut v = Verdict::default();
    match m.tags.get("name") {
        None => v.rejected.push("missing name".to_string()),
        Some(n) if !rules::name_len_ok(n.chars().count()) => v.lengths.push(format!(
            "name {n:?} is not {}..={} characters",
            rules::NAME_MIN,
            rules::NAME_MAX
        )),
        Some(_) => {}
    }
    let mut user_tags = 0;
    for (k, val) in &m.tags {
        if !rules::is_valid(k) || !rules::is_valid(val) {
            v.rejected.push(format!(
                "tag {k:?}={val:?} has characters outside {}",
                rules::ALLOWED_CHARS
            ));
        }
        if rules::is_reserved_key(k) {
            v.rejected.push(format!(
                "key {k:?} is reserved ({}*)",
                rules::RESERVED_PREFIX
            ));
        }
        if k == "name" {
            continue;
        }
        if rules::is_user_key(k) {
            user_tags += 1;
        }
        if !rules::key_len_ok(k.chars().count()) {
            v.lengths.push(format!(
                "key {k:?} is not {}..={} characters",
                rules::KEY_MIN,
                rules::KEY_MAX
            ));
        }
        if !rules::value_len_ok(val.chars().count()) {
            v.lengths.push(format!(
                "value {val:?} of {k:?} is not {}..={} characters",
                rules::VALUE_MIN,
                rules::VALUE_MAX
            ));
        }
    }
    if user_tags > rules::MAX_USER_TAGS {
        v.rejected.push(format!(
            "{user_tags} user tags, at most {} allowed",
            rules::MAX_USER_TAGS
        ));
    }
    if m.op != 0 && m.op != 10 {
        v.rejected.push(format!("op {} is neither 0 nor 10", m.op));
    }
    v
}

/// Validates a decoded request as Atlas does: fills `record.violations` and `record.accepted`
/// and says what to answer (200 when all were accepted, 202 when some, 400 when none or when
/// the body could not be decoded).
pub(super) fn validate(record: &mut ReceivedRequest, strict: bool) -> Answer {
    let ms = match &record.payload {
        Ok(ms) => ms.clone(),
        Err(e) => return Answer::error(400, std::slice::from_ref(e)),
    };
    let mut errors = Vec::new();
    for (i, m) in ms.into_iter().enumerate() {
        let verdict = check_measurement(&m);
        for v in verdict.rejected.iter().chain(&verdict.lengths) {
            record.violations.push(format!("measurement {i}: {v}"));
        }
        if verdict.accepted(strict) {
            record.accepted.push(m);
        } else {
            errors.extend(
                verdict
                    .rejected
                    .into_iter()
                    .chain(verdict.lengths)
                    .map(|v| format!("{i}: {v}")),
            );
        }
    }
    let total = record.measurement_count();
    let failed = total - record.accepted.len();
    if failed == 0 {
        Answer::ok()
    } else if failed == total {
        Answer::rejected(400, failed, &errors)
    } else {
        Answer::rejected(202, failed, &errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(tags: &[(&str, &str)]) -> ReceivedMeasurement {
        ReceivedMeasurement {
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            op: 0,
            value: 1.0,
        }
    }

    #[test]
    fn rules() {
        assert_eq!(
            check_measurement(&m(&[("name", "ok.name"), ("key", "v")])),
            Verdict::default()
        );
        let v = check_measurement(&m(&[("name", "a"), ("x", "y")]));
        assert!(v.rejected.is_empty());
        assert_eq!(v.lengths.len(), 2);
        assert_eq!(check_measurement(&m(&[("key", "v")])).rejected.len(), 1);
        let v = check_measurement(&m(&[("name", "nm"), ("atlas.x", "v")]));
        assert_eq!(v.rejected.len(), 1, "{v:?}");
        assert_eq!(check_measurement(&m(&[("name", "n m")])).rejected.len(), 1);
        let many: Vec<(String, String)> = (0..21).map(|i| (format!("k{i}"), "v".into())).collect();
        let mut tags: Vec<(&str, &str)> =
            many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        tags.push(("name", "nm"));
        tags.push(("nf.app", "a"));
        assert_eq!(check_measurement(&m(&tags)).rejected.len(), 1);
        let mut bad_op = m(&[("name", "nm")]);
        bad_op.op = 3;
        assert_eq!(check_measurement(&bad_op).rejected.len(), 1);
    }

    fn request(ms: Vec<ReceivedMeasurement>) -> ReceivedRequest {
        ReceivedRequest {
            method: "POST".into(),
            path: super::super::PUBLISH_PATH.into(),
            headers: vec![],
            body_len: 0,
            payload: Ok(ms),
            violations: vec![],
            status: None,
            accepted: vec![],
        }
    }

    #[test]
    fn answers_as_atlas() {
        let good = m(&[("name", "ok.name")]);
        let bad = m(&[("name", "bad name")]);
        let mut r = request(vec![good.clone()]);
        assert_eq!(validate(&mut r, false).status, 200);
        let mut r = request(vec![good.clone(), bad.clone()]);
        let a = validate(&mut r, false);
        assert_eq!(a.status, 202);
        let body: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!(body["type"], "partial");
        assert_eq!(body["errorCount"], 1);
        assert_eq!(r.accepted, vec![good]);
        let mut r = request(vec![bad]);
        let a = validate(&mut r, false);
        assert_eq!(a.status, 400);
        let body: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!(body["errorCount"], 1);
        let mut r = request(vec![]);
        r.payload = Err("bad JSON".into());
        assert_eq!(validate(&mut r, false).status, 400);
    }
}
