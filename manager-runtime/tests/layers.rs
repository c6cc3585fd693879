//! The runtime's files form layers that point one way (ARCHITECTURE.md).
//! This test reads the sources, resolves every `crate::`, `super::` and
//! `self::` path (and every name the crate root or `__private` re-exports)
//! to the file that defines it, and fails when
//!
//! - a file uses a file of a higher layer, or of another group of its own
//!   layer (the server and the client never use each other);
//! - files use each other in a circle (each group's files form a tree of
//!   uses, file by file);
//! - the built-ins (`sync/`) use anything but what a user of the crate
//!   could: the root's re-exports, `value`, and `__private` (the surface
//!   `#[shared]` generates code against);
//! - a file below the built-ins names one of their methods in a string (a
//!   dependency the compiler cannot see): the Python tables are generated
//!   on the methods themselves.
//!
//! A new file is placed by the group its path starts with; a new group
//! must be added to `LAYERS`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every group of files (a file, or a directory ending in `/`) and its
/// layer, bottom up. A file may use files of lower layers, and files of
/// its own group as long as no two use each other (directly or around a
/// circle).
const LAYERS: &[(&str, u32)] = &[
    // Foundation: plain data.
    ("error.rs", 0),
    ("address.rs", 1),
    ("authkey.rs", 1),
    ("codec.rs", 1),
    // A Redis client (feature `redis`), for the distributed pool.
    ("redis/", 1),
    ("token.rs", 2),
    ("wait.rs", 2),
    ("crossing.rs", 2),
    ("value/", 3),
    // Processes: children of this program (no tokio, no manager).
    ("process/", 4),
    // The manager (feature `manager`). Protocol: bytes on a socket.
    ("wire.rs", 5),
    ("tls.rs", 5),
    ("auth.rs", 6),
    // Same-host connections through shared memory.
    ("ring.rs", 6),
    ("transport.rs", 7),
    ("python/", 7),
    ("options.rs", 8),
    // Object model: what a served object is, its method and Python tables.
    ("object.rs", 9),
    // Where the built-ins' state lives when not in the server (Redis).
    ("backend/", 10),
    ("registry.rs", 11),
    // The two sides.
    ("server/", 12),
    ("client/", 12),
    ("proxy.rs", 13),
    // Lifecycle.
    ("spawn.rs", 14),
    ("manager.rs", 15),
    // Built on the public surface.
    ("sync/", 16),
];

/// Groups whose code may name only what a user of the crate can: the
/// root's re-exports, the public modules (`pub mod` in `lib.rs`) and
/// `__private`.
const PUBLIC_SURFACE_ONLY: &[&str] = &["sync/"];

/// Where the brace opened at `open` in `code` (comments and literals
/// blanked) closes; the end of the code if it never does.
fn matching_brace(code: &str, open: usize) -> usize {
    let mut depth = 0;
    for (j, c) in code[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return open + j;
                }
            }
            _ => {}
        }
    }
    code.len()
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The group of a file (relative to `src/`), and its layer.
fn group(file: &str) -> Option<(&'static str, u32)> {
    LAYERS
        .iter()
        .filter(|(group, _)| file == *group || (group.ends_with('/') && file.starts_with(group)))
        .max_by_key(|(group, _)| group.len())
        .copied()
}

/// The source without comments, and with every string and character
/// literal blanked (`"…"` keeps its quotes), so braces and paths inside
/// them do not count. The literals are returned apart, with their offsets.
fn code(text: &str) -> (String, Vec<(usize, String)>) {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut literals = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if text[i..].starts_with("//") {
            let end = text[i..].find('\n').map_or(text.len(), |n| i + n);
            out.extend(std::iter::repeat_n(' ', end - i));
            i = end;
        } else if text[i..].starts_with("/*") {
            let end = text[i + 2..]
                .find("*/")
                .map_or(text.len(), |n| i + 2 + n + 2);
            out.extend(
                text[i..end]
                    .chars()
                    .map(|c| if c == '\n' { '\n' } else { ' ' }),
            );
            i = end;
        } else if c == b'r'
            && (text[i + 1..].starts_with('"') || text[i + 1..].starts_with("#\""))
            && !text[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_')
        {
            let hashes = text[i + 1..].chars().take_while(|&c| c == '#').count();
            let open = i + 1 + hashes + 1;
            let close = format!("\"{}", "#".repeat(hashes));
            let end = text[open..]
                .find(&close)
                .map_or(text.len(), |n| open + n + close.len());
            literals.push((i, text[open..end.saturating_sub(close.len())].to_string()));
            out.extend(
                text[i..end]
                    .chars()
                    .map(|c| if c == '\n' { '\n' } else { ' ' }),
            );
            i = end;
        } else if c == b'"' {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j] != b'"' {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(bytes.len());
            literals.push((i, text[i + 1..end - 1].to_string()));
            out.push('"');
            out.extend(
                text[i + 1..end - 1]
                    .chars()
                    .map(|c| if c == '\n' { '\n' } else { ' ' }),
            );
            out.push('"');
            i = end;
        } else if c == b'\'' {
            // A char literal ('x', '\n', '{'), not a lifetime ('a).
            let rest = &text[i + 1..];
            let len = if let Some(escaped) = rest.strip_prefix('\\') {
                escaped.find('\'').map(|n| n + 2)
            } else {
                rest.char_indices()
                    .nth(1)
                    .filter(|&(_, c)| c == '\'')
                    .map(|(n, _)| n)
            };
            match len {
                Some(len) => {
                    out.extend(std::iter::repeat_n(' ', len + 2));
                    i += len + 2;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let ch = text[i..].chars().next().expect("a char");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    (out, literals)
}

/// A path as written: where it starts and its segments.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Written {
    /// `crate`, `super` (repeated in `ups`) or `self`.
    from: &'static str,
    ups: usize,
    segments: Vec<String>,
    /// Byte offset in the code, for the enclosing inline module.
    at: usize,
}

/// Every `crate::`, `super::` and `self::` path in `code`, with `{..}`
/// groups expanded into one path per member.
fn paths(code: &str) -> Vec<Written> {
    let mut found = Vec::new();
    for start in ["crate::", "super::", "self::"] {
        let mut offset = 0;
        while let Some(i) = code[offset..].find(start) {
            let at = offset + i;
            offset = at + start.len();
            let before = code[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
                continue;
            }
            if start == "super::" && code[..at].ends_with("super::") {
                continue; // counted from the first `super::`
            }
            if before == Some(':') {
                continue; // `x::self::` is not a start
            }
            let mut rest = &code[at + start.len()..];
            let mut ups = usize::from(start == "super::");
            while let Some(more) = rest.strip_prefix("super::") {
                ups += 1;
                rest = more;
            }
            let from = match start {
                "crate::" => "crate",
                "super::" => "super",
                _ => "self",
            };
            for segments in expand(rest) {
                found.push(Written {
                    from,
                    ups,
                    segments,
                    at,
                });
            }
        }
    }
    found
}

/// The paths `rest` (what follows `crate::`) writes: `a::b::C`, or a group
/// `{a::X, b::{Y, Z}}` as each of its members.
fn expand(rest: &str) -> Vec<Vec<String>> {
    let mut prefix = Vec::new();
    let mut rest = rest;
    loop {
        let ident: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if ident.is_empty() {
            break;
        }
        rest = &rest[ident.len()..];
        prefix.push(ident);
        match rest.strip_prefix("::") {
            Some(more) => rest = more,
            None => return vec![prefix],
        }
    }
    let Some(group) = rest.strip_prefix('{') else {
        return if prefix.is_empty() {
            vec![]
        } else {
            vec![prefix]
        };
    };
    let mut depth = 1;
    let mut end = group.len();
    for (j, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        if depth == 0 {
            end = j;
            break;
        }
    }
    let mut members = Vec::new();
    let mut depth = 0;
    let mut item = String::new();
    for c in group[..end].chars().chain(std::iter::once(',')) {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                for member in expand(item.trim()) {
                    let mut path = prefix.clone();
                    path.extend(member.into_iter().filter(|s| s != "self"));
                    members.push(path);
                }
                item.clear();
                continue;
            }
            _ => {}
        }
        item.push(c);
    }
    members
}

/// The inline modules (`mod name { .. }`) of `code`: each name with the
/// span of its body.
fn inline_modules(code: &str) -> Vec<(String, usize, usize)> {
    let mut modules = Vec::new();
    let mut offset = 0;
    while let Some(i) = code[offset..].find("mod ") {
        let at = offset + i;
        offset = at + 4;
        if code[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            continue;
        }
        let rest = &code[at + 4..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let after = rest[name.len()..].trim_start();
        if name.is_empty() || !after.starts_with('{') {
            continue;
        }
        let open = at + 4 + (rest.len() - after.len());
        modules.push((name, open, matching_brace(code, open)));
    }
    modules
}

/// A file's module path (`server/python/mod.rs` → `["server", "python"]`).
fn module_of(file: &str) -> Vec<String> {
    let stem = file.trim_end_matches(".rs");
    let mut path: Vec<String> = stem.split('/').map(String::from).collect();
    if path.last().is_some_and(|s| s == "mod" || s == "lib") {
        path.pop();
    }
    path
}

/// Resolve module path `segments` to the deepest file it names; `None`
/// when the first segment is not a module file.
fn file_of(segments: &[String]) -> Option<String> {
    let mut found = None;
    let mut dir = String::new();
    for segment in segments {
        let file = format!("{dir}{segment}.rs");
        let module = format!("{dir}{segment}/mod.rs");
        if src().join(&file).is_file() {
            found = Some(file);
        } else if src().join(&module).is_file() {
            found = Some(module);
        } else {
            break;
        }
        dir = format!("{dir}{segment}/");
    }
    found
}

/// The names `pub use` statements of `text` re-export, each with the
/// module path it comes from.
fn reexports(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut names = BTreeMap::new();
    for statement in text.split(';') {
        let mut statement = statement.trim();
        while statement.starts_with("#[") {
            let Some(end) = statement.find(']') else {
                break;
            };
            statement = statement[end + 1..].trim_start();
        }
        let Some(path) = statement.strip_prefix("pub use ") else {
            continue;
        };
        let path = path.strip_prefix("crate::").unwrap_or(path);
        for full in expand(path) {
            if let Some((name, module)) = full.split_last() {
                names.insert(name.clone(), module.to_vec());
            }
        }
    }
    names
}

/// Everything one file uses: the files, and the words of its paths.
struct Uses {
    files: BTreeSet<String>,
    /// Files only re-exported (`pub use`): a facade passes them on; they
    /// count for layers, not for circles.
    reexported: BTreeSet<String>,
    /// Paths that name no file and no re-export.
    unresolved: BTreeSet<String>,
    /// Whether a path went through something a user could not name.
    private: BTreeSet<String>,
}

fn uses(
    file: &str,
    code: &str,
    root: &BTreeMap<String, Vec<String>>,
    private: &BTreeMap<String, Vec<String>>,
    public: &BTreeSet<String>,
) -> Uses {
    let mut out = Uses {
        files: BTreeSet::new(),
        reexported: BTreeSet::new(),
        unresolved: BTreeSet::new(),
        private: BTreeSet::new(),
    };
    let modules = inline_modules(code);
    let here = module_of(file);
    for path in paths(code) {
        // The module the path is written in, inline modules included.
        let mut current = here.clone();
        for (name, open, close) in &modules {
            if *open < path.at && path.at < *close {
                current.push(name.clone());
            }
        }
        let absolute: Vec<String> = match path.from {
            "crate" => path.segments.clone(),
            "self" => current.iter().chain(&path.segments).cloned().collect(),
            _ => {
                let keep = current.len().saturating_sub(path.ups);
                current[..keep]
                    .iter()
                    .chain(&path.segments)
                    .cloned()
                    .collect()
            }
        };
        let Some(first) = absolute.first() else {
            continue;
        };
        let text = absolute.join("::");
        // A re-export from another crate (`shared`, the macro) names no
        // file of ours: resolved, nothing used.
        let via = |map: &BTreeMap<String, Vec<String>>, name: &String| {
            map.get(name)
                .map(|module| file_of(module).unwrap_or_else(|| "lib.rs".into()))
        };
        let target = if first == "__private" {
            absolute.get(1).and_then(|name| via(private, name))
        } else {
            match file_of(&absolute) {
                Some(found) => {
                    if path.from == "crate" && !public.contains(first) {
                        out.private.insert(text.clone());
                    }
                    Some(found)
                }
                None if absolute.len() == 1 || path.from == "crate" => via(root, first),
                None => None,
            }
        };
        let statement = code[..path.at].rfind([';', '{', '}']).map_or(0, |n| n + 1);
        let reexport = code[statement..path.at].trim_start().starts_with("pub use");
        match target {
            Some(target) if target != file && target != "lib.rs" => {
                if reexport {
                    out.reexported.insert(target);
                } else {
                    out.files.insert(target);
                }
            }
            Some(_) => {}
            None if path.from == "crate" => {
                out.unresolved.insert(text);
            }
            None => {}
        }
    }
    out
}

struct Sources {
    /// File (relative to `src/`) → its code and literals.
    files: BTreeMap<String, (String, Vec<(usize, String)>)>,
    root: BTreeMap<String, Vec<String>>,
    private: BTreeMap<String, Vec<String>>,
    /// The modules `lib.rs` declares `pub` (whatever the features).
    public: BTreeSet<String>,
}

fn sources() -> Sources {
    let mut paths = Vec::new();
    rust_files(&src(), &mut paths);
    let mut files = BTreeMap::new();
    for path in paths {
        let relative = path
            .strip_prefix(src())
            .expect("under src")
            .to_str()
            .expect("utf-8 path")
            .replace('\\', "/");
        let text = std::fs::read_to_string(&path).expect("source");
        files.insert(relative, code(&text));
    }
    let lib = &files["lib.rs"].0;
    let root = reexports(lib);
    let private_block = lib
        .find("pub mod __private")
        .map(|at| &lib[at..])
        .unwrap_or("");
    let private = reexports(private_block);
    let public = lib
        .split("pub mod ")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        })
        .collect();
    Sources {
        files,
        root,
        private,
        public,
    }
}

/// Is there a path of uses from `from` to `to`?
fn reaches(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_string()];
    while let Some(file) = stack.pop() {
        if file == to {
            return true;
        }
        if seen.insert(file.clone()) {
            stack.extend(graph.get(&file).into_iter().flatten().cloned());
        }
    }
    false
}

#[test]
fn files_only_use_lower_layers_and_form_no_circle() {
    let sources = sources();
    let mut broken = BTreeSet::new();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, (code, _)) in &sources.files {
        if file == "lib.rs" {
            continue;
        }
        let Some((group_name, rank)) = group(file) else {
            broken.insert(format!("{file}: in no group of LAYERS (give it its place)"));
            continue;
        };
        let used = uses(file, code, &sources.root, &sources.private, &sources.public);
        for path in &used.unresolved {
            broken.insert(format!(
                "{file}: `crate::{path}` names no file and nothing the root re-exports"
            ));
        }
        if PUBLIC_SURFACE_ONLY.contains(&group_name) {
            for path in &used.private {
                if group(
                    file_of(&path.split("::").map(String::from).collect::<Vec<_>>())
                        .as_deref()
                        .unwrap_or(""),
                )
                .map(|(g, _)| g)
                    != Some(group_name)
                {
                    broken.insert(format!(
                        "{file}: `crate::{path}` is not the public surface (use a root re-export)"
                    ));
                }
            }
        }
        for target in used.files.iter().chain(&used.reexported) {
            let Some((target_group, target_rank)) = group(target) else {
                continue;
            };
            if target_rank > rank || (target_rank == rank && target_group != group_name) {
                broken.insert(format!(
                    "{file} (layer {rank}) uses {target} (layer {target_rank}, {target_group})"
                ));
            }
        }
        graph.insert(file.clone(), used.files);
    }
    for (file, targets) in &graph {
        for target in targets {
            if reaches(&graph, target, file) {
                let (a, b) = if file < target {
                    (file, target)
                } else {
                    (target, file)
                };
                broken.insert(format!("{a} and {b} use each other (around a circle)"));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "layering broken:\n{}",
        broken.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn no_lower_file_names_a_built_in_method_in_a_string() {
    let sources = sources();
    // What the built-ins' Python tables call them, and the names any
    // Python object has: strings that are Python's, not ours.
    let mut python = BTreeSet::new();
    let mut ours = BTreeSet::new();
    for (file, (code, literals)) in &sources.files {
        if !file.starts_with("sync/") {
            continue;
        }
        for (at, literal) in literals {
            let line_start = code[..*at].rfind('\n').map_or(0, |n| n + 1);
            if code[line_start..*at].contains("#[py(") {
                python.insert(literal.clone());
            }
        }
        // The methods of each `#[crate::shared(..)] impl` block.
        let mut offset = 0;
        while let Some(i) = code[offset..].find("#[crate::shared(") {
            let open = offset + i + code[offset + i..].find('{').expect("an impl body");
            let close = matching_brace(code, open);
            let body = &code[open..close];
            for word in ["pub fn ", "pub async fn "] {
                let mut at = 0;
                while let Some(k) = body[at..].find(word) {
                    at += k + word.len();
                    let name: String = body[at..]
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    // An attribute read from Python (`#[py(attr)]`) is
                    // Python's name too.
                    let before = &body[..at];
                    let attributes = before[before.rfind('}').map_or(0, |n| n + 1)..].to_string();
                    if attributes.contains("#[py(attr") {
                        python.insert(name.clone());
                    }
                    ours.insert(name);
                }
            }
            offset = close;
        }
    }
    let ours: BTreeSet<_> = ours.difference(&python).cloned().collect();
    let mut found = BTreeSet::new();
    for (file, (code, literals)) in &sources.files {
        let below = group(file).is_some_and(|(g, _)| g != "sync/");
        // The pickle codec names Python's own globals (`builtins.slice`).
        if !below || file.ends_with("tests.rs") || file.starts_with("python/pickle/") {
            continue;
        }
        // A file's unit tests (at its end) may write any table by hand.
        let tests = code.find("#[cfg(test)]").unwrap_or(code.len());
        for (_, literal) in literals.iter().filter(|(at, _)| *at < tests) {
            if ours.contains(literal) {
                found.insert(format!("{file}: \"{literal}\""));
            }
        }
    }
    assert!(
        found.is_empty(),
        "strings naming methods of the built-ins below them (generate the table on the \
         method instead):\n{}",
        found.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn the_scanner_reads_paths_modules_and_literals() {
    let (text, literals) =
        code("use crate::{a::X, b::{Y, Z}}; // crate::no\nlet s = \"crate::not {\";");
    let found: Vec<Vec<String>> = paths(&text).into_iter().map(|p| p.segments).collect();
    assert_eq!(
        found,
        [vec!["a", "X"], vec!["b", "Y"], vec!["b", "Z"]]
            .map(|v| v.into_iter().map(String::from).collect::<Vec<_>>())
    );
    assert_eq!(literals[0].1, "crate::not {");
    let (text, _) = code("mod inner { use super::super::x::Y; } fn f() {}");
    let modules = inline_modules(&text);
    assert_eq!(modules.len(), 1);
    let written = &paths(&text)[0];
    assert_eq!((written.from, written.ups), ("super", 2));
    assert_eq!(module_of("server/python/mod.rs"), ["server", "python"]);
    assert_eq!(
        file_of(&["server".into(), "core".into(), "Core".into()]).as_deref(),
        Some("server/core.rs")
    );
}
