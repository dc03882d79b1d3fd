//! The Atlas publish rules (SPEC section 5 and 7) applied to parsed arguments at compile time.
//!
//! Each failure is a [`syn::Error`] spanned on the offending literal or identifier, saying how to
//! fix it. All failures of one macro invocation are reported together.

use std::collections::HashMap;

use proc_macro2::Span;
use syn::LitStr;

use crate::args::MeterArgs;

/// Shortest accepted metric name.
pub const NAME_MIN: usize = 2;
/// Longest accepted metric name.
pub const NAME_MAX: usize = 255;
/// Shortest accepted tag key.
pub const KEY_MIN: usize = 2;
/// Longest accepted tag key.
pub const KEY_MAX: usize = 60;
/// Shortest accepted tag value.
pub const VALUE_MIN: usize = 1;
/// Longest accepted tag value.
pub const VALUE_MAX: usize = 120;
/// Most tags a user may write on one meter.
pub const MAX_USER_TAGS: usize = 20;

/// The characters Atlas accepts, as shown in messages.
const ALLOWED: &str = "-._A-Za-z0-9^~";

/// What a macro accepts, for the checks and the messages.
pub struct Rules<'a> {
    /// How the macro is written in messages, e.g. `#[timed]`.
    pub macro_name: &'a str,
    /// The flags it accepts.
    pub flags: &'a [&'a str],
    /// Whether the name is required (else a default applies).
    pub name_required: bool,
    /// Keys the macro sets itself, with the reason shown when a user sets one.
    pub taken: &'a [(&'a str, &'a str)],
}

/// Whether `c` is in the Atlas character set.
pub fn is_allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '^' | '~')
}

/// `text` with every character outside the Atlas set replaced by `_`.
pub fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| if is_allowed(c) { c } else { '_' })
        .collect()
}

/// Collects errors so that all of them are reported at once.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, span: Span, msg: impl std::fmt::Display) {
        let e = syn::Error::new(span, msg);
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// Checks characters and length of one string; `what` names it in messages.
fn check_text(errors: &mut Errors, span: Span, what: &str, text: &str, (min, max): (usize, usize)) {
    let bad: Vec<char> = text.chars().filter(|c| !is_allowed(*c)).collect();
    if !bad.is_empty() {
        let mut shown = String::new();
        for c in bad {
            if !shown.contains(c) {
                shown.push(c);
            }
        }
        errors.push(
            span,
            format!(
                "{what} \"{}\" contains characters Atlas does not accept ({:?}); \
                 use only `{ALLOWED}`, e.g. \"{}\"",
                text.escape_default(),
                shown,
                sanitize(text)
            ),
        );
    }
    let len = text.chars().count();
    if len < min {
        let hint = if len == 0 {
            format!("{what} is empty")
        } else {
            format!("{what} \"{}\" is too short", text.escape_default())
        };
        errors.push(
            span,
            format!("{hint}: Atlas needs {min} to {max} characters; use a longer, descriptive one"),
        );
    } else if len > max {
        errors.push(
            span,
            format!(
                "{what} is too long ({len} characters): Atlas accepts at most {max}; shorten it"
            ),
        );
    }
}

/// Why a key is reserved, if it is.
fn reserved(key: &str) -> Option<&'static str> {
    match key {
        "name" => Some("is reserved: Atlas sets it from the metric name"),
        "statistic" => {
            Some("is reserved: the meter sets it when it reports (count, totalTime, ...)")
        }
        "percentile" => Some("is reserved: percentile meters set it for their buckets"),
        _ if key.starts_with("nf.") => Some(
            "is reserved: `nf.*` keys are the infrastructure common tags, set from the \
             environment (NETFLIX_APP, EC2_REGION, ... or SPECTATOR_COMMON_TAGS)",
        ),
        _ if key.starts_with("atlas.") => {
            Some("is reserved: `atlas.*` keys belong to Atlas itself")
        }
        _ => None,
    }
}

/// Validates the name, the tags and the flags of one meter.
pub fn check(args: &MeterArgs, rules: &Rules, missing_name_span: Span) -> syn::Result<()> {
    let mut errors = Errors::default();
    let m = rules.macro_name;

    match &args.name {
        Some(name) => check_name(&mut errors, name),
        None if rules.name_required => errors.push(
            missing_name_span,
            format!("{m} needs a metric name first, e.g. \"server.requestLatency\""),
        ),
        None => {}
    }

    let mut seen: HashMap<&str, Span> = HashMap::new();
    for (i, tag) in args.tags.iter().enumerate() {
        let key = tag.key.text.as_str();
        let span = tag.key.span;
        if i == MAX_USER_TAGS {
            errors.push(
                span,
                format!(
                    "too many tags ({}): Atlas accepts at most {MAX_USER_TAGS} user tags per \
                     metric; remove some or fold them into the name",
                    args.tags.len()
                ),
            );
        }
        if seen.contains_key(key) {
            errors.push(
                span,
                format!("duplicate tag key `{key}`: each key may appear once; remove one of them"),
            );
        } else {
            seen.insert(key, span);
        }
        if let Some(why) = reserved(key) {
            let rest = key
                .strip_prefix("nf.")
                .or_else(|| key.strip_prefix("atlas."))
                .filter(|r| r.len() >= KEY_MIN);
            let suggestion = match rest {
                Some(rest) => format!("`{}`", sanitize(rest)),
                None => format!("`my_{}`", sanitize(key)),
            };
            errors.push(
                span,
                format!("tag key `{key}` {why}; rename the tag, e.g. {suggestion}"),
            );
        } else if let Some((_, why)) = rules.taken.iter().find(|(k, _)| *k == key) {
            errors.push(
                span,
                format!("tag key `{key}` {why}; rename the tag, e.g. `my_{key}`"),
            );
        } else {
            check_text(&mut errors, span, "tag key", key, (KEY_MIN, KEY_MAX));
        }
        check_text(
            &mut errors,
            tag.value.span(),
            "tag value",
            &tag.value.value(),
            (VALUE_MIN, VALUE_MAX),
        );
    }

    let mut flags_seen: Vec<String> = Vec::new();
    for flag in &args.flags {
        let text = flag.to_string();
        if !rules.flags.contains(&text.as_str()) {
            let accepted = if rules.flags.is_empty() {
                String::from("no flags")
            } else {
                let list: Vec<String> = rules.flags.iter().map(|f| format!("`{f}`")).collect();
                format!("the flag {}", list.join(", "))
            };
            let name = if rules.name_required {
                "a metric name string literal (required, first)"
            } else {
                "an optional metric name string literal (first)"
            };
            errors.push(
                flag.span(),
                format!(
                    "unknown argument `{text}`: {m} accepts {name}, tags written \
                     `key = \"value\"`, and {accepted}"
                ),
            );
        } else if flags_seen.contains(&text) {
            errors.push(flag.span(), format!("`{text}` is given twice; remove one"));
        } else {
            flags_seen.push(text);
        }
    }
    errors.finish()
}

/// Validates a metric name literal.
fn check_name(errors: &mut Errors, name: &LitStr) {
    check_text(
        errors,
        name.span(),
        "metric name",
        &name.value(),
        (NAME_MIN, NAME_MAX),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::parse_attr;
    use quote::quote;

    const RULES: Rules = Rules {
        macro_name: "#[timed]",
        flags: &["percentiles"],
        name_required: false,
        taken: &[("result", "is set by #[timed]")],
    };

    fn errors(tokens: proc_macro2::TokenStream) -> Vec<String> {
        let args = parse_attr(tokens).unwrap();
        match check(&args, &RULES, Span::call_site()) {
            Ok(()) => vec![],
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn accepts_valid_input() {
        assert!(errors(quote!()).is_empty());
        assert!(errors(quote!(
            "server.req-Latency^~_9",
            "a.b" = "x",
            k2 = "1",
            percentiles
        ))
        .is_empty());
    }

    #[test]
    fn name_rules() {
        let e = errors(quote!("a b"));
        assert_eq!(e.len(), 1);
        assert!(e[0].contains("\"a_b\""), "{e:?}");
        assert!(errors(quote!("a"))[0].contains("too short"));
        assert!(errors(quote!(""))[0].contains("empty"));
        let long = "x".repeat(256);
        assert!(errors(quote!(#long))[0].contains("at most 255"));
        let ok = "x".repeat(255);
        assert!(errors(quote!(#ok)).is_empty());
    }

    #[test]
    fn tag_rules() {
        assert!(errors(quote!(k = "v"))[0].contains("too short"));
        assert!(errors(quote!(kk = ""))[0].contains("empty"));
        assert!(errors(quote!("a b" = "v"))[0].contains("\"a_b\""));
        assert!(errors(quote!(kk = "a/b"))[0].contains("\"a_b\""));
        let long = "v".repeat(121);
        assert!(errors(quote!(kk = #long))[0].contains("at most 120"));
        let long_key = "k".repeat(61);
        assert!(errors(quote!(#long_key = "v"))[0].contains("at most 60"));
        assert!(errors(quote!(kk = "a", kk = "b"))[0].contains("duplicate"));
        for key in ["name", "statistic", "percentile", "nf.app", "atlas.dstype"] {
            let e = errors(quote!(#key = "v"));
            assert_eq!(e.len(), 1, "{key}: {e:?}");
            assert!(e[0].contains("reserved"), "{e:?}");
        }
        assert!(errors(quote!(result = "v"))[0].contains("is set by"));
    }

    #[test]
    fn tag_count_limit() {
        let keys: Vec<String> = (0..21).map(|i| format!("k{i}")).collect();
        let tags = keys.iter().map(|k| quote!(#k = "v"));
        let e = errors(quote!(#(#tags),*));
        assert_eq!(e.len(), 1);
        assert!(e[0].contains("at most 20"));
        let tags = keys[..20].iter().map(|k| quote!(#k = "v"));
        assert!(errors(quote!(#(#tags),*)).is_empty());
    }

    #[test]
    fn flags() {
        let e = errors(quote!(histogram));
        assert!(e[0].contains("unknown argument `histogram`"), "{e:?}");
        assert!(e[0].contains("`percentiles`"), "{e:?}");
        assert!(errors(quote!(percentiles, percentiles))[0].contains("twice"));
    }

    #[test]
    fn reports_every_error() {
        // short name, short key, empty value, reserved key
        assert_eq!(errors(quote!("a", k = "", "nf.x" = "y")).len(), 4);
    }

    #[test]
    fn sanitizes() {
        assert_eq!(sanitize("a b/c:d"), "a_b_c_d");
        assert_eq!(sanitize("ok-._^~"), "ok-._^~");
    }
}
