//! The runtime's modules form layers that point one way (ARCHITECTURE.md):
//! each module uses only modules of lower layers, and the built-ins use the
//! crate's public surface only. This test reads the sources and fails on
//! any `crate::` path that breaks the order, so the document stays true.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every top-level module of the runtime and its layer. A module may use
/// modules of strictly lower layers only; two modules of one layer never
/// use each other. A new module must be added here, at its place.
const LAYERS: &[(&str, u32)] = &[
    // Foundation: plain data.
    ("error", 0),
    ("address", 1),
    ("authkey", 1),
    ("codec", 1),
    ("token", 2),
    ("wait", 2),
    ("crossing", 2),
    ("value", 3),
    // Processes: children of this program (no tokio, no manager).
    ("process", 4),
    // The manager (feature `manager`). Protocol: bytes on a socket.
    ("wire", 5),
    ("tls", 5),
    ("auth", 6),
    ("transport", 7),
    ("python", 7),
    ("options", 8),
    // Object model.
    ("object", 9),
    ("registry", 10),
    // The two sides.
    ("server", 11),
    ("client", 11),
    ("proxy", 12),
    // Lifecycle.
    ("spawn", 13),
    ("manager", 14),
    // Built on the public surface.
    ("sync", 15),
];

/// Modules whose code may name only what the crate root exports (and the
/// public `value` module): they are written as a user of the crate would.
const PUBLIC_SURFACE_ONLY: &[&str] = &["sync"];

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

/// The source without comments, so prose naming `crate::x` does not count.
fn code(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first path segment of every `crate::` path in `code`, expanding
/// `crate::{a::X, b}` groups. A segment followed by `::` is a module; one
/// that is not is a name the crate root exports (it is returned as
/// `::name`, so the macro `manager` and the module `manager` differ).
fn crate_paths(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let preceded_by_ident = rest[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        rest = &rest[i + "crate::".len()..];
        if preceded_by_ident {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut end = 0;
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
            let mut depth = 0;
            let mut item = String::new();
            for c in group[..end].chars().chain(std::iter::once(',')) {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.push(first_segment(item.trim()));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
        } else {
            found.push(first_segment(rest));
        }
    }
    found.retain(|s| !s.is_empty() && s != "self");
    found
}

fn first_segment(path: &str) -> String {
    let segment: String = path
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    if path[segment.len()..].starts_with("::") || segment.is_empty() || segment == "self" {
        segment
    } else {
        format!("::{segment}")
    }
}

/// Names the crate root re-exports, with the module each comes from.
fn root_exports(lib: &str) -> BTreeMap<String, String> {
    let mut exports = BTreeMap::new();
    for statement in code(lib).split(';') {
        // Attributes (`#[cfg(...)]`) before the statement.
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
        let (module, names) = match path.split_once("::") {
            Some(split) => split,
            None => continue,
        };
        let names = names.trim_start_matches('{').trim_end_matches('}');
        for name in names.split(',') {
            let name = name.trim().rsplit("::").next().unwrap_or("").trim();
            if !name.is_empty() {
                exports.insert(name.to_string(), module.trim().to_string());
            }
        }
    }
    exports
}

#[test]
fn modules_only_use_lower_layers() {
    let layers: BTreeMap<&str, u32> = LAYERS.iter().copied().collect();
    let lib = std::fs::read_to_string(src().join("lib.rs")).expect("lib.rs");
    let exports = root_exports(&lib);
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files.sort();
    let mut broken = BTreeSet::new();
    let mut unknown = BTreeSet::new();
    for file in &files {
        let relative = file.strip_prefix(src()).expect("under src");
        let module = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .expect("a path")
            .trim_end_matches(".rs")
            .to_string();
        if module == "lib" {
            continue;
        }
        let Some(&rank) = layers.get(module.as_str()) else {
            unknown.insert(module);
            continue;
        };
        let text = std::fs::read_to_string(file).expect("source");
        let public_only = PUBLIC_SURFACE_ONLY.contains(&module.as_str());
        for segment in crate_paths(&code(&text)) {
            if segment == module {
                continue;
            }
            // A bare name is what the root exports, unless only a module
            // has it; a path segment is a module, unless only the root
            // exports it (a trait's method path, `crate::Proxy::token`).
            let (name, bare) = match segment.strip_prefix("::") {
                Some(name) => (name, true),
                None => (segment.as_str(), false),
            };
            let is_module = layers.contains_key(name);
            let exported = exports.get(name);
            let target = match (bare, is_module, exported) {
                (true, _, Some(from)) | (false, false, Some(from)) => from.clone(),
                (_, true, _) => name.to_string(),
                (_, false, None) => {
                    broken.insert(format!(
                        "{}: `crate::{name}` is neither a module nor exported by the crate root",
                        relative.display()
                    ));
                    continue;
                }
            };
            let via_root = exported.is_some() && target != name;
            if public_only {
                if !via_root && target != "value" && target != module {
                    broken.insert(format!(
                        "{}: `crate::{name}` is not the public surface (use a root re-export)",
                        relative.display()
                    ));
                }
                continue;
            }
            if target == module || target == "manager_macros" {
                continue;
            }
            match layers.get(target.as_str()) {
                Some(&used) if used < rank => {}
                Some(&used) => {
                    broken.insert(format!(
                        "{}: uses `{target}` (layer {used}) from layer {rank}",
                        relative.display()
                    ));
                }
                None => {
                    broken.insert(format!(
                        "{}: uses `crate::{segment}`, which is no module of LAYERS",
                        relative.display()
                    ));
                }
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "modules missing from LAYERS (give each its layer): {unknown:?}"
    );
    assert!(
        broken.is_empty(),
        "layering broken:\n{}",
        broken.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn path_scanner_expands_groups() {
    let paths =
        crate_paths("use crate::{a::X, b::{Y, Z}, c}; f(crate::d::e); $crate::g::h; xcrate::no");
    assert_eq!(paths, ["a", "b", "::c", "d", "g"]);
    let paths = crate_paths("crate::Result<()>; crate::manager::BaseManager; crate::manager!");
    assert_eq!(paths, ["::Result", "manager", "::manager"]);
}
