//! Names the macros derive from the user's: create methods, proxy types,
//! and "did you mean" hints.

use proc_macro2::{Ident, Span};

/// `MathsClass` → `maths_class`, `HTTPServer` → `http_server`,
/// `get_queue` → `get_queue`: a typeid as a create method name.
pub(crate) fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let previous = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1);
            let starts_word = match previous {
                None | Some('_') => false,
                Some(p) if p.is_lowercase() || p.is_ascii_digit() => true,
                // The last capital of an acronym starts the next word: HTTPServer.
                Some(p) => p.is_uppercase() && next.is_some_and(|n| n.is_lowercase()),
            };
            if starts_word {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// An identifier spelled `name`, raw (`r#type`) when `name` is a keyword
/// that allows it; `None` for `self`, `super`, `crate` and `Self`.
pub(crate) fn ident(name: &str, span: Span) -> Option<Ident> {
    if syn::parse_str::<Ident>(name).is_ok() {
        return Some(Ident::new(name, span));
    }
    match name {
        "self" | "super" | "crate" | "Self" | "_" => None,
        _ => Some(Ident::new_raw(name, span)),
    }
}

/// `tokens` as a person writes them (`inner::Foo<u8>`, not `inner :: Foo <
/// u8 >`), for messages and docs.
pub(crate) fn display(tokens: &impl quote::ToTokens) -> String {
    let text = tokens.to_token_stream().to_string();
    [
        (" :: ", "::"),
        (":: ", "::"),
        (" < ", "<"),
        ("< ", "<"),
        (" >", ">"),
        (" ,", ","),
        ("& ", "&"),
    ]
    .iter()
    .fold(text, |text, (from, to)| text.replace(from, to))
}

/// The closest of `candidates` to `word`, if it is a likely typo.
pub(crate) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= 2 && *d < c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_of_typeids() {
        assert_eq!(snake_case("Maths"), "maths");
        assert_eq!(snake_case("MathsClass"), "maths_class");
        assert_eq!(snake_case("get_queue"), "get_queue");
        assert_eq!(snake_case("HTTPServer"), "http_server");
        assert_eq!(snake_case("Queue2"), "queue2");
        assert_eq!(snake_case("Vec2Map"), "vec2_map");
        assert_eq!(snake_case("ABC"), "abc");
        assert_eq!(snake_case("myQueue"), "my_queue");
        assert_eq!(snake_case("Shared_Queue"), "shared_queue");
        assert_eq!(snake_case("x"), "x");
    }

    #[test]
    fn keywords_become_raw_identifiers() {
        let span = Span::call_site();
        assert_eq!(ident("maths", span).unwrap().to_string(), "maths");
        assert_eq!(ident("type", span).unwrap().to_string(), "r#type");
        assert!(ident("self", span).is_none());
        assert!(ident("crate", span).is_none());
    }

    #[test]
    fn display_reads_like_source() {
        let ty: syn::Type = syn::parse_quote!(inner::Foo<Vec<&str>, u8>);
        assert_eq!(display(&ty), "inner::Foo<Vec<&str>, u8>");
    }

    #[test]
    fn closest_suggests_only_near_misses() {
        let options = ["typeid", "exposed"];
        assert_eq!(closest("expose", &options), Some("exposed"));
        assert_eq!(closest("type_id", &options), Some("typeid"));
        assert_eq!(closest("name", &options), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
