//! Signature fingerprints, computed at expansion time.
//!
//! The same FNV-1a 64 as `managers::__private::fingerprint`; the macro emits
//! the result as a literal on both the server and the proxy side, so a client
//! built from another version of a type gets a clear error, not garbage.

const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0100_0000_01b3;

/// FNV-1a 64 of `text`.
pub(crate) fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(OFFSET_BASIS, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

/// What a method signature is hashed from.
pub(crate) struct Signature<'a> {
    /// `async fn`.
    pub(crate) is_async: bool,
    /// Takes `&mut self`.
    pub(crate) is_mut: bool,
    /// Marked `#[proxy]`: the result travels as tokens.
    pub(crate) returns_proxy: bool,
    /// The method's name.
    pub(crate) name: &'a str,
    /// Argument types, rendered by `quote!`.
    pub(crate) args: Vec<String>,
    /// Return type rendered by `quote!` (`()` for none).
    pub(crate) output: String,
}

impl Signature<'_> {
    /// `[async ][mut ][proxy ]name(arg,arg)->ret`, the hashed text.
    pub(crate) fn text(&self) -> String {
        let mut text = String::new();
        if self.is_async {
            text.push_str("async ");
        }
        if self.is_mut {
            text.push_str("mut ");
        }
        if self.returns_proxy {
            text.push_str("proxy ");
        }
        text.push_str(self.name);
        text.push('(');
        text.push_str(&self.args.join(","));
        text.push_str(")->");
        text.push_str(&self.output);
        text
    }

    /// The fingerprint of this signature.
    pub(crate) fn fingerprint(&self) -> u64 {
        fnv1a(&self.text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_reference_vectors() {
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a("foobar"), 0x8594_4171_f739_67e8);
    }

    fn signature(is_async: bool, is_mut: bool, args: &[&str], output: &str) -> Signature<'static> {
        Signature {
            is_async,
            is_mut,
            returns_proxy: false,
            name: "add",
            args: args.iter().map(|a| a.to_string()).collect(),
            output: output.to_string(),
        }
    }

    #[test]
    fn text_lists_markers_name_arguments_and_output() {
        assert_eq!(
            signature(false, false, &["i64", "i64"], "i64").text(),
            "add(i64,i64)->i64"
        );
        assert_eq!(
            signature(true, true, &[], "()").text(),
            "async mut add()->()"
        );
    }

    #[test]
    fn every_part_of_a_signature_changes_the_fingerprint() {
        let base = signature(false, false, &["i64"], "i64").fingerprint();
        assert_ne!(base, signature(true, false, &["i64"], "i64").fingerprint());
        assert_ne!(base, signature(false, true, &["i64"], "i64").fingerprint());
        assert_ne!(base, signature(false, false, &["u64"], "i64").fingerprint());
        assert_ne!(base, signature(false, false, &["i64"], "u64").fingerprint());
        let mut proxy = signature(false, false, &["i64"], "i64");
        proxy.returns_proxy = true;
        assert_ne!(base, proxy.fingerprint());
    }
}
