//! The layers of the crate, proved by its imports: `api` (the types) imports nothing of the
//! crate; `policy` (the pure rules) imports only `api` and itself; `decode` (raw objects to
//! typed ones) imports only `api`, `policy` and itself. The shared cache (`cluster`) sits on
//! those and the error type, below the webhook and the controllers that read it; `evidence`
//! (the records of what was checked and observed, and their formats) on `manifest` and those,
//! below the CLI and the controllers that fill it. Everything
//! else (`manifest`, `webhook`, `controller`, `cli`, ...) sits above them. Every `.rs` file
//! under these folders is read, tests included; a `crate::X` path (in a `use` line or inline) naming a
//! module outside the allowed set, or a `super::` that climbs out of the folder, fails with
//! the file and the line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

/// Each layer's folder under `src/` and the top-level modules it may name.
const LAYERS: &[(&str, &[&str])] = &[
    ("api", &["api"]),
    ("policy", &["api", "policy"]),
    ("decode", &["api", "policy", "decode"]),
    ("cluster", &["api", "policy", "decode", "error", "cluster"]),
    // The evidence writers read records and the catalogue; the CLI and the controllers fill
    // and call them, never the other way round.
    (
        "evidence",
        &["api", "policy", "decode", "manifest", "evidence"],
    ),
];

#[test]
fn the_lower_layers_import_only_the_layers_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut problems = Vec::new();
    let mut files_read = 0;
    for (layer, allowed) in LAYERS {
        let root = src.join(layer);
        for file in rust_files(&root) {
            let text = std::fs::read_to_string(&file).unwrap();
            let depth = module_depth(&root, &file);
            let name = file.strip_prefix(&src).unwrap().display().to_string();
            problems.extend(
                violations(&text, allowed, depth)
                    .into_iter()
                    .map(|(line, what)| format!("src/{name}:{line}: {what}")),
            );
            files_read += 1;
        }
    }
    // A renamed folder must not make the test pass by reading nothing.
    assert!(files_read >= 30, "only {files_read} files read");
    assert!(
        problems.is_empty(),
        "imports that break the layers (api <- policy <- decode <- cluster <- the rest):\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_check_names_each_forbidden_path_with_its_line() {
    let text = "\
//! Mentions crate::webhook in a comment, which is not an import.
use crate::api::Classification;
use crate::manifest::MapOnly;
use crate::{api, cluster::ClusterState};
fn f() {
    let _ = crate::decode::decode(&v); // crate::cli in a comment
    let _ = super::super::webhook::admission::Target::Other;
    let _ = super::gpu::visibility_variables(&env);
}
#[cfg(test)]
mod tests {
    use super::super::gpu;
}
";
    let found = violations(text, &["api", "policy"], 1);
    assert_eq!(
        found,
        [
            (3, "crate::manifest is outside api, policy".to_string()),
            (4, "crate::cluster is outside api, policy".to_string()),
            (6, "crate::decode is outside api, policy".to_string()),
            (7, "super::super:: climbs out of the folder".to_string()),
        ]
    );
    // At the top of the folder, one `super::` already leaves it.
    assert_eq!(
        violations("use super::Something;\n", &["api"], 0),
        [(1, "super:: climbs out of the folder".to_string())]
    );
}

/// Every `.rs` file under `dir`, in a stable order.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// How many modules deep a file is below its layer's root module: `policy/mod.rs` 0,
/// `policy/gpu.rs` and `policy/tests.rs` 1, `policy/tests/fixtures.rs` 2.
fn module_depth(root: &Path, file: &Path) -> usize {
    let relative = file.strip_prefix(root).unwrap();
    let parts = relative.components().count();
    if relative.file_name().is_some_and(|n| n == "mod.rs") {
        parts - 1
    } else {
        parts
    }
}

/// `(line, problem)` for each path in `text` that names a crate module outside `allowed` or
/// climbs above the layer with `super::`. `depth` is the file's module depth below the layer;
/// an inline `mod name {` adds one for the lines after it.
fn violations(text: &str, allowed: &[&str], depth: usize) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut inline_modules = 0;
    for (i, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        let trimmed = code.trim_start();
        if (trimmed.starts_with("mod ") || trimmed.starts_with("pub(crate) mod "))
            && trimmed.trim_end().ends_with('{')
        {
            inline_modules += 1;
        }
        for module in crate_modules(code) {
            if !allowed.contains(&module.as_str()) {
                out.push((
                    i + 1,
                    format!("crate::{module} is outside {}", allowed.join(", ")),
                ));
            }
        }
        for climb in super_climbs(code) {
            if climb > depth + inline_modules {
                out.push((
                    i + 1,
                    format!("{} climbs out of the folder", "super::".repeat(climb)),
                ));
            }
        }
    }
    out
}

/// The first module of every `crate::` path on a line, braces (`crate::{a, b::c}`) included.
fn crate_modules(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let preceded = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$');
        rest = &rest[at + "crate::".len()..];
        if preceded {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or_default();
            out.extend(
                inner
                    .split(',')
                    .map(|item| identifier(item.trim()))
                    .filter(|m| !m.is_empty()),
            );
        } else {
            out.push(identifier(rest));
        }
    }
    out
}

/// How many `super::` each `super::` path on a line starts with.
fn super_climbs(code: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("super::") {
        let preceded = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
        let mut count = 0;
        let mut tail = &rest[at..];
        while let Some(next) = tail.strip_prefix("super::") {
            count += 1;
            tail = next;
        }
        rest = tail;
        if !preceded {
            out.push(count);
        }
    }
    out
}

fn identifier(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}
