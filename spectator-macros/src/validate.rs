//! The Atlas naming rules applied at compile time, turning parsed arguments into a checked
//! [`Meter`].
//!
//! The rules themselves (character set, lengths, tag limit, reserved prefixes) come from the
//! runtime's `rules.rs`, included by this crate, so the compile-time checks and what the
//! runtime accepts cannot drift apart. Each failure is a [`syn::Error`] spanned on the offending
//! literal or identifier, saying how to fix it; all failures of one meter are reported together.

use std::collections::HashSet;

use proc_macro2::Span;
use syn::{Ident, LitStr};

use crate::args::{MeterArgs, Tag};
use crate::errors::Errors;
use crate::rules;

/// A bare-word argument that picks the meter kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flag {
    /// `percentiles`: a `PercentileTimer` instead of a `Timer`.
    Percentiles,
    /// `long_task`: a `LongTaskTimer`, measuring calls while they run.
    LongTask,
}

impl Flag {
    /// Every flag, in the order messages list them.
    pub const ALL: [Flag; 2] = [Flag::Percentiles, Flag::LongTask];

    /// The flag as written.
    pub const fn text(self) -> &'static str {
        match self {
            Flag::Percentiles => "percentiles",
            Flag::LongTask => "long_task",
        }
    }

    /// The flag written `text`, if it is one.
    pub fn parse(text: &str) -> Option<Flag> {
        Flag::ALL.into_iter().find(|f| f.text() == text)
    }

    /// Whether `args` has this flag (before any check: the plan needs it to pick the rules).
    pub fn given(self, args: &MeterArgs) -> bool {
        args.flags.iter().any(|f| f == self.text())
    }
}

/// What happens when no metric name is written.
#[derive(Clone, Copy)]
pub enum NameRule {
    /// A name is required; the error points at this span.
    Required(Span),
    /// The meter takes this name.
    Default(&'static str),
}

/// What a macro accepts, for the checks and the messages.
pub struct Rules<'a> {
    /// How the macro is written in messages, e.g. `#[timed]`.
    pub macro_name: &'a str,
    /// The flags it accepts.
    pub flags: &'a [Flag],
    /// Flags it does not accept but a user may try, with what to write instead.
    pub refused: &'a [(Flag, &'a str)],
    /// What happens without a name.
    pub name: NameRule,
    /// Keys the macro sets itself, with the reason shown when a user sets one.
    pub taken: &'a [(&'a str, &'a str)],
}

/// A meter's arguments once every rule holds: what the code generators work from.
pub struct Meter {
    /// The metric name: the one written, or the macro's default.
    pub name: LitStr,
    /// Whether the name was written (else the default applies).
    pub named: bool,
    /// The tags as written, in order.
    pub tags: Vec<Tag>,
    /// Whether `percentiles` was given.
    pub percentiles: bool,
    /// Whether `long_task` was given.
    pub long_task: bool,
}

/// Keys a meter sets on what it reports (on top of the rules file's reserved `name`, `nf.*`
/// and `atlas.*`): `statistic` on every meter, `percentile` on percentile meters' buckets.
fn meter_key(key: &str) -> Option<&'static str> {
    match key {
        "statistic" => {
            Some("is reserved: the meter sets it when it reports (count, totalTime, ...)")
        }
        "percentile" => Some("is reserved: percentile meters set it for their buckets"),
        _ => None,
    }
}

/// Why a key is reserved, if it is.
fn reserved(key: &str) -> Option<&'static str> {
    if key == "name" {
        Some("is reserved: Atlas sets it from the metric name")
    } else if rules::is_infra_key(key) {
        Some(
            "is reserved: `nf.*` keys are the infrastructure common tags, set from the \
             environment (NETFLIX_APP, EC2_REGION, ... or SPECTATOR_COMMON_TAGS)",
        )
    } else if rules::is_reserved_key(key) {
        Some("is reserved: `atlas.*` keys belong to Atlas itself")
    } else {
        meter_key(key)
    }
}

/// Checks the name, the tags and the flags of one meter; every failure is reported.
pub fn check(args: &MeterArgs, rules: &Rules) -> syn::Result<Meter> {
    let mut errors = Errors::default();
    let m = rules.macro_name;

    let name = match (&args.name, rules.name) {
        (Some(name), _) => {
            check_text(
                &mut errors,
                name.span(),
                "metric name",
                &name.value(),
                (rules::NAME_MIN, rules::NAME_MAX),
            );
            name.clone()
        }
        (None, NameRule::Required(span)) => {
            errors.push(
                span,
                format!("{m} needs a metric name first, e.g. \"server.requestLatency\""),
            );
            LitStr::new("", span)
        }
        (None, NameRule::Default(default)) => LitStr::new(default, Span::call_site()),
    };

    check_tags(&mut errors, &args.tags, rules.taken);
    let flags = check_flags(&mut errors, &args.flags, rules);

    errors.finish(Meter {
        name,
        named: args.name.is_some(),
        tags: args.tags.clone(),
        percentiles: flags.contains(&Flag::Percentiles),
        long_task: flags.contains(&Flag::LongTask),
    })
}

fn check_tags(errors: &mut Errors, tags: &[Tag], taken: &[(&str, &str)]) {
    let mut seen: HashSet<&str> = HashSet::new();
    for (i, tag) in tags.iter().enumerate() {
        let key = tag.key.text.as_str();
        let span = tag.key.span;
        if i == rules::MAX_USER_TAGS {
            errors.push(
                span,
                format!(
                    "too many tags ({}): Atlas accepts at most {} user tags per metric; remove \
                     some or fold them into the name",
                    tags.len(),
                    rules::MAX_USER_TAGS
                ),
            );
        }
        if !seen.insert(key) {
            errors.push(
                span,
                format!("duplicate tag key `{key}`: each key may appear once; remove one of them"),
            );
        }
        if let Some(why) = reserved(key) {
            let rest = key
                .strip_prefix(rules::INFRA_PREFIX)
                .or_else(|| key.strip_prefix(rules::RESERVED_PREFIX))
                .filter(|r| r.len() >= rules::KEY_MIN);
            let suggestion = match rest {
                Some(rest) => format!("`{}`", rules::sanitize(rest)),
                None => format!("`my_{}`", rules::sanitize(key)),
            };
            errors.push(
                span,
                format!("tag key `{key}` {why}; rename the tag, e.g. {suggestion}"),
            );
        } else if let Some((_, why)) = taken.iter().find(|(k, _)| *k == key) {
            errors.push(
                span,
                format!("tag key `{key}` {why}; rename the tag, e.g. `my_{key}`"),
            );
        } else {
            check_text(
                errors,
                span,
                "tag key",
                key,
                (rules::KEY_MIN, rules::KEY_MAX),
            );
        }
        check_text(
            errors,
            tag.value.span(),
            "tag value",
            &tag.value.value(),
            (rules::VALUE_MIN, rules::VALUE_MAX),
        );
    }
}

/// Checks the flags; returns the ones accepted (each once).
fn check_flags(errors: &mut Errors, flags: &[Ident], rules: &Rules) -> Vec<Flag> {
    let m = rules.macro_name;
    let mut given: Vec<Flag> = Vec::new();
    for ident in flags {
        let text = ident.to_string();
        let span = ident.span();
        let flag = Flag::parse(&text);
        if let Some((_, instead)) = flag.and_then(|f| rules.refused.iter().find(|(r, _)| *r == f)) {
            errors.push(span, format!("{m} does not take `{text}`: {instead}"));
            continue;
        }
        let Some(flag) = flag.filter(|f| rules.flags.contains(f)) else {
            errors.push(span, unknown_flag(&text, rules));
            continue;
        };
        if given.contains(&flag) {
            errors.push(span, format!("`{text}` is given twice; remove one"));
            continue;
        }
        if let Some((other, why)) = given
            .iter()
            .find_map(|g| conflict(*g, flag).map(|w| (g, w)))
        {
            let both = if m == "#[timed]" {
                "put two attributes on the function, e.g. `#[timed(percentiles)]` and \
                 `#[timed(long_task)]`, whose default names differ"
            } else {
                "nest two blocks with different names"
            };
            errors.push(
                span,
                format!(
                    "`{text}` cannot be combined with `{}`: {why}; remove one of them, or, to \
                     have both, {both}",
                    other.text()
                ),
            );
            continue;
        }
        given.push(flag);
    }
    given
}

/// Why two flags cannot be given together, if they cannot: each picks a meter kind.
fn conflict(a: Flag, b: Flag) -> Option<&'static str> {
    match (a, b) {
        (Flag::Percentiles, Flag::LongTask) | (Flag::LongTask, Flag::Percentiles) => Some(
            "a long task timer reports the tasks in flight and how long they have run so far, \
             not a distribution of durations",
        ),
        _ => None,
    }
}

/// The message for a bare word that is no flag this macro takes.
fn unknown_flag(text: &str, rules: &Rules) -> String {
    let accepted = match rules.flags {
        [] => String::from("no flags"),
        [one] => format!("the flag `{}`", one.text()),
        [rest @ .., last] => {
            let names: Vec<String> = rest.iter().map(|f| format!("`{}`", f.text())).collect();
            format!("one of the flags {} or `{}`", names.join(", "), last.text())
        }
    };
    let name = match rules.name {
        NameRule::Required(_) => "a metric name string literal (required, first)",
        NameRule::Default(_) => "an optional metric name string literal (first)",
    };
    format!(
        "unknown argument `{text}`: {} accepts {name}, tags written `key = \"value\"`, and \
         {accepted}",
        rules.macro_name
    )
}

/// Checks the characters and the length of one string; `what` names it in messages.
fn check_text(errors: &mut Errors, span: Span, what: &str, text: &str, (min, max): (usize, usize)) {
    if !rules::is_valid(text) {
        let mut shown = String::new();
        for c in text.chars().filter(|c| !rules::is_valid_char(*c)) {
            if !shown.contains(c) {
                shown.push(c);
            }
        }
        errors.push(
            span,
            format!(
                "{what} \"{}\" contains characters Atlas does not accept ({:?}); \
                 use only `{}`, e.g. \"{}\"",
                text.escape_default(),
                shown,
                rules::ALLOWED_CHARS,
                rules::sanitize(text)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::parse_attr;
    use quote::quote;

    const RULES: Rules = Rules {
        macro_name: "#[timed]",
        flags: &Flag::ALL,
        refused: &[],
        name: NameRule::Default("method.timed"),
        taken: &[("result", "is set by #[timed]")],
    };

    fn errors(tokens: proc_macro2::TokenStream) -> Vec<String> {
        let args = parse_attr(tokens).unwrap();
        match check(&args, &RULES) {
            Ok(_) => vec![],
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
    fn the_checked_model_has_a_name() {
        let m = check(&parse_attr(quote!()).unwrap(), &RULES).ok().unwrap();
        assert_eq!(m.name.value(), "method.timed");
        assert!(!m.named && !m.percentiles);
        let m = check(&parse_attr(quote!("a.b", percentiles)).unwrap(), &RULES)
            .ok()
            .unwrap();
        assert_eq!(m.name.value(), "a.b");
        assert!(m.named && m.percentiles);
        let required = Rules {
            name: NameRule::Required(Span::call_site()),
            ..RULES
        };
        let e = check(&parse_attr(quote!(kk = "v")).unwrap(), &required)
            .err()
            .unwrap();
        assert!(e.to_string().contains("needs a metric name"), "{e}");
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
        assert!(errors(quote!("nf.app" = "v"))[0].contains("e.g. `app`"));
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
        assert!(e[0].contains("`long_task`"), "{e:?}");
        assert!(errors(quote!(percentiles, percentiles))[0].contains("twice"));
        assert!(errors(quote!(long_task, long_task))[0].contains("twice"));
        let counted = Rules {
            flags: &[],
            ..RULES
        };
        let e = check(&parse_attr(quote!(percentiles)).unwrap(), &counted)
            .err()
            .unwrap();
        assert!(e.to_string().contains("no flags"), "{e}");
        let refused = Rules {
            flags: &[],
            refused: &[(Flag::LongTask, "use `#[timed(long_task)]`")],
            ..RULES
        };
        let e = check(&parse_attr(quote!(long_task)).unwrap(), &refused)
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "#[timed] does not take `long_task`: use `#[timed(long_task)]`"
        );
    }

    #[test]
    fn flags_that_pick_different_kinds_conflict() {
        for args in [
            quote!(percentiles, long_task),
            quote!(long_task, percentiles),
        ] {
            let e = errors(args);
            assert_eq!(e.len(), 1, "{e:?}");
            assert!(e[0].contains("cannot be combined"), "{e:?}");
        }
        let m = check(&parse_attr(quote!("a.b", long_task)).unwrap(), &RULES)
            .ok()
            .unwrap();
        assert!(m.long_task && !m.percentiles);
        assert!(Flag::LongTask.given(&parse_attr(quote!(long_task)).unwrap()));
        assert!(!Flag::LongTask.given(&parse_attr(quote!(percentiles)).unwrap()));
    }

    #[test]
    fn reports_every_error() {
        // short name, short key, empty value, reserved key
        assert_eq!(errors(quote!("a", k = "", "nf.x" = "y")).len(), 4);
    }
}
