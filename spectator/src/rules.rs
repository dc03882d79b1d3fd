//! The Atlas naming rules: which characters a name, key or value may hold, how long each may
//! be, and which keys are reserved.
//!
//! This one file is the source for the runtime (sanitising ids), the local receiver (what it
//! accepts, as the Atlas aggregator does) and the proc-macro crate, which includes the same
//! file with `#[path]` so that compile-time checks and runtime behaviour cannot drift apart.
//! It depends on nothing but `core`/`std`.
//!
//! Reference: Atlas's publish validation
//! (<https://netflix.github.io/atlas-docs/api/publish/>, "Validation") and Spectator's
//! naming conventions (<https://netflix.github.io/atlas-docs/concepts/naming/>).

// Included by more than one crate; each uses a different part.
#![allow(dead_code)]

/// Shortest metric name the aggregator accepts.
pub const NAME_MIN: usize = 2;
/// Longest metric name the aggregator accepts.
pub const NAME_MAX: usize = 255;
/// Shortest tag key the aggregator accepts.
pub const KEY_MIN: usize = 2;
/// Longest tag key the aggregator accepts.
pub const KEY_MAX: usize = 60;
/// Shortest tag value the aggregator accepts.
pub const VALUE_MIN: usize = 1;
/// Longest tag value the aggregator accepts.
pub const VALUE_MAX: usize = 120;
/// Most user tags on one id (tags other than `name` and the `nf.*` infrastructure tags).
pub const MAX_USER_TAGS: usize = 20;
/// The characters the aggregator accepts, as shown in messages.
pub const ALLOWED_CHARS: &str = "-._A-Za-z0-9~^";
/// Key prefix reserved for Atlas itself; the aggregator rejects user tags with it.
pub const RESERVED_PREFIX: &str = "atlas.";
/// Key prefix of the infrastructure tags (`nf.app`, `nf.cluster`, ...), set by the
/// environment rather than by instrumentation; they do not count against [`MAX_USER_TAGS`].
pub const INFRA_PREFIX: &str = "nf.";

/// Whether `c` is in the Atlas character set `-._A-Za-z0-9~^`.
pub const fn is_valid_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '^')
}

/// [`is_valid_char`] for each byte value.
const VALID_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 128 {
        table[b] = is_valid_char(b as u8 as char);
        b += 1;
    }
    table
};

/// Whether every character of `s` is in the Atlas character set.
pub fn is_valid(s: &str) -> bool {
    // The set is ASCII, so a byte outside it (any byte of a multi-byte character) is
    // outside it too: checking bytes needs no UTF-8 decoding.
    s.bytes().all(|b| VALID_BYTES[usize::from(b)])
}

/// `s` with every character outside `-._A-Za-z0-9~^` replaced by `_`; borrowed when nothing
/// needs replacing.
pub fn sanitize(s: &str) -> std::borrow::Cow<'_, str> {
    if is_valid(s) {
        std::borrow::Cow::Borrowed(s)
    } else {
        std::borrow::Cow::Owned(
            s.chars()
                .map(|c| if is_valid_char(c) { c } else { '_' })
                .collect(),
        )
    }
}

/// Whether `len` characters is an acceptable metric name length.
pub fn name_len_ok(len: usize) -> bool {
    (NAME_MIN..=NAME_MAX).contains(&len)
}

/// Whether `len` characters is an acceptable tag key length.
pub fn key_len_ok(len: usize) -> bool {
    (KEY_MIN..=KEY_MAX).contains(&len)
}

/// Whether `len` characters is an acceptable tag value length.
pub fn value_len_ok(len: usize) -> bool {
    (VALUE_MIN..=VALUE_MAX).contains(&len)
}

/// Whether `key` is reserved for Atlas (`atlas.*`).
pub fn is_reserved_key(key: &str) -> bool {
    key.starts_with(RESERVED_PREFIX)
}

/// Whether `key` is an infrastructure tag (`nf.*`).
pub fn is_infra_key(key: &str) -> bool {
    key.starts_with(INFRA_PREFIX)
}

/// Whether `key` counts against [`MAX_USER_TAGS`]: anything but `name`, `nf.*` and `atlas.*`.
pub fn is_user_key(key: &str) -> bool {
    key != "name" && !is_infra_key(key) && !is_reserved_key(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charset_and_sanitize() {
        assert!(is_valid("a-b._c~d^E9"));
        assert!(!is_valid("a b"));
        assert_eq!(sanitize("http.status code"), "http.status_code");
        assert_eq!(sanitize("é/x"), "__x");
        assert!(matches!(sanitize("ok"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(sanitize("a-b._~^Z9"), "a-b._~^Z9");
        assert_eq!(sanitize(""), "");
    }

    #[test]
    fn lengths_and_keys() {
        assert!(!name_len_ok(1) && name_len_ok(2) && name_len_ok(255) && !name_len_ok(256));
        assert!(!key_len_ok(1) && key_len_ok(60) && !key_len_ok(61));
        assert!(!value_len_ok(0) && value_len_ok(120) && !value_len_ok(121));
        assert!(is_reserved_key("atlas.dstype") && !is_reserved_key("atlasx"));
        assert!(is_user_key("statusCode") && !is_user_key("nf.app") && !is_user_key("name"));
    }
}
