//! Reading manifests: files and folders of multi-document YAML or JSON, each document decoded
//! into the objects Annexa governs by [`crate::decode`] (this module adds the files, the
//! documents, `List`s and the limits on them). Every error names the file, the document and,
//! where it can, the field; nothing panics on any input.

use crate::decode::{Object, decode, type_name};
use crate::error::{Error, Result};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use walkdir::WalkDir;

/// Largest file `annexa check` reads (a guard against runaway inputs).
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// Most documents (and `List` items) one file may hold.
pub const MAX_DOCUMENTS: usize = 10_000;
/// Deepest `[`/`{` nesting read. The YAML parser refuses nesting past 128 levels anyway, but
/// only after time that grows with the square of the depth: this is refused before parsing.
pub const MAX_FLOW_NESTING: usize = 256;

/// Where a document came from: `file.yaml` (document 2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    /// 1-based index of the document in the file.
    pub document: usize,
    /// 1-based line where the document starts, when known.
    pub line: Option<usize>,
    /// 1-based index in the document's `items` when the document is a `List`.
    pub item: Option<usize>,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{} (document {}", self.file, line, self.document)?,
            None => write!(f, "{} (document {}", self.file, self.document)?,
        }
        match self.item {
            Some(item) => write!(f, ", item {item})"),
            None => write!(f, ")"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Document {
    pub origin: Origin,
    pub object: Object,
    /// The manifest names no `metadata.namespace`: a namespaced object was put in `default`
    /// (`annexa check -n` chooses another, as `kubectl apply -n` does).
    pub namespace_omitted: bool,
}

/// Expands paths (files, folders searched recursively for .yaml/.yml/.json, `-` for stdin)
/// in a stable order. Symbolic links to folders are followed, each folder read once (a link
/// back to a folder already read, a loop, is not followed again); anything that is not a
/// regular file or a folder (a FIFO, a socket, a device) is an error, never read.
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut visited = HashSet::new();
    for path in paths {
        if path.as_os_str() == "-" {
            out.push(path.clone());
            continue;
        }
        let meta = std::fs::metadata(path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        if meta.is_dir() {
            let mut found = manifests_under(path, &mut visited)?;
            found.sort();
            out.extend(found);
        } else if meta.is_file() {
            out.push(path.clone());
        } else {
            return Err(not_regular(path));
        }
    }
    Ok(out)
}

fn not_regular(path: &Path) -> Error {
    Error::Input(format!(
        "{}: not a regular file (a FIFO, socket or device); annexa check reads files and folders",
        path.display()
    ))
}

/// The .yaml/.yml/.json files under a folder, symbolic links followed. `visited` holds the
/// folders already read (canonical paths): each is read once, however many ways lead into it.
fn manifests_under(dir: &Path, visited: &mut HashSet<PathBuf>) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut unreadable = None;
    let entries = WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|entry| {
            if !entry.file_type().is_dir() {
                return true;
            }
            match std::fs::canonicalize(entry.path()) {
                Ok(canonical) => visited.insert(canonical),
                Err(source) => {
                    unreadable.get_or_insert(Error::Io {
                        path: entry.path().to_path_buf(),
                        source,
                    });
                    false
                }
            }
        });
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            // A link back to a folder being read (a loop) is not followed again.
            Err(e) if e.loop_ancestor().is_some() => continue,
            Err(e) => {
                let path = e.path().unwrap_or(dir).to_path_buf();
                return Err(Error::Io {
                    path,
                    source: e.into(),
                });
            }
        };
        let manifest = entry
            .path()
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
        // Links are followed: the type is the target's.
        let file_type = entry.file_type();
        if file_type.is_dir() || !manifest {
            continue;
        }
        if !file_type.is_file() {
            return Err(not_regular(entry.path()));
        }
        found.push(entry.into_path());
    }
    match unreadable {
        Some(e) => Err(e),
        None => Ok(found),
    }
}

/// Reads a file (or stdin for `-`), refusing files over [`MAX_FILE_BYTES`].
pub fn read_source(path: &Path) -> Result<(String, String)> {
    let name = if path.as_os_str() == "-" {
        "<stdin>".to_string()
    } else {
        path.display().to_string()
    };
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
    } else {
        let file = std::fs::File::open(path).map_err(io)?;
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
    }
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Error::Input(format!(
            "{name}: file is larger than {} MiB; split it into smaller files",
            MAX_FILE_BYTES / (1024 * 1024)
        )));
    }
    let mut text = String::from_utf8(bytes)
        .map_err(|e| Error::Input(format!("{name}: not UTF-8 text ({e})")))?;
    // A UTF-8 byte order mark (editors on Windows write one) is not part of the YAML.
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    Ok((name, text))
}

/// Splits YAML (or JSON, a subset of YAML) into documents and decodes each one; a `List`
/// (`kind: List` or any `*List` kind with `items`) is expanded into its items.
/// Returns every document that decoded and every error (one per bad document).
pub fn parse_documents(file: &str, text: &str) -> (Vec<Document>, Vec<String>) {
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    if let Some(line) = flow_nesting_beyond(text, MAX_FLOW_NESTING) {
        errors.push(format!(
            "{file}: line {line}: nesting deeper than {MAX_FLOW_NESTING} levels; nothing in this file was read"
        ));
        return (docs, errors);
    }
    let starts = document_start_lines(text);
    let mut count = 0;
    for (i, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let origin = Origin {
            file: file.to_string(),
            document: i + 1,
            line: starts.get(i).copied(),
            item: None,
        };
        count += 1;
        if count > MAX_DOCUMENTS {
            errors.push(format!(
                "{file}: more than {MAX_DOCUMENTS} documents and list items; split the file"
            ));
            break;
        }
        let value = match Value::deserialize(de) {
            Ok(v) => v,
            Err(e) => {
                let at = e
                    .location()
                    .map(|l| format!("{file}: line {} column {}", l.line(), l.column()))
                    .unwrap_or_else(|| format!("{file} (document {})", i + 1));
                errors.push(format!(
                    "{at}: malformed YAML: {}",
                    strip_location(&e.to_string())
                ));
                // A syntax error ends the stream: later documents cannot be trusted.
                break;
            }
        };
        if value.is_null() {
            continue;
        }
        if let Some(items) = list_items(&value) {
            let items = match items {
                Ok(items) => items,
                Err(e) => {
                    errors.push(format!("{origin}: {e}"));
                    continue;
                }
            };
            count += items.len();
            if count > MAX_DOCUMENTS {
                errors.push(format!(
                    "{file}: more than {MAX_DOCUMENTS} documents and list items; split the file"
                ));
                break;
            }
            for (j, item) in items.into_iter().enumerate() {
                let origin = Origin {
                    item: Some(j + 1),
                    ..origin.clone()
                };
                match decode(&item) {
                    Ok(object) => docs.push(Document {
                        origin,
                        object,
                        namespace_omitted: namespace_omitted(&item),
                    }),
                    Err(e) => errors.push(format!("{origin}: {e}")),
                }
            }
            continue;
        }
        match decode(&value) {
            Ok(object) => docs.push(Document {
                origin,
                object,
                namespace_omitted: namespace_omitted(&value),
            }),
            Err(e) => errors.push(format!("{origin}: {e}")),
        }
    }
    (docs, errors)
}

fn namespace_omitted(value: &Value) -> bool {
    value
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
}

/// The items of a `List` document (`kind: List`, or `FooList` with `items`), `None` for any
/// other document. Items of a typed list (`ModelDeploymentList`) may omit `kind` and
/// `apiVersion`, as the API server writes them: they take the list's. A list inside a list is
/// an error (`kubectl` never writes one).
fn list_items(value: &Value) -> Option<Result<Vec<Value>, String>> {
    let kind = value.get("kind")?.as_str()?;
    let list_kind = kind.strip_suffix("List")?;
    let items = value.get("items")?;
    let Value::Array(items) = items else {
        return Some(Err(format!(
            "{kind}: items must be a list, found {}",
            type_name(items)
        )));
    };
    let api_version = value.get("apiVersion").cloned();
    let mut out = Vec::with_capacity(items.len());
    for (j, item) in items.iter().enumerate() {
        let mut item = item.clone();
        if let Value::Object(map) = &mut item
            && !list_kind.is_empty()
        {
            if !map.contains_key("kind") {
                map.insert("kind".to_string(), Value::String(list_kind.to_string()));
            }
            if let Some(v) = &api_version
                && !map.contains_key("apiVersion")
            {
                map.insert("apiVersion".to_string(), v.clone());
            }
        }
        if item
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| k.ends_with("List"))
            && item.get("items").is_some()
        {
            return Some(Err(format!(
                "{kind}: items[{j}] is itself a list; nested lists are not read"
            )));
        }
        out.push(item);
    }
    Some(Ok(out))
}

/// The 1-based line where `[`/`{` nesting first goes deeper than `limit`, if it does. Quoted
/// strings and comments are skipped; plain scalars are not told apart, so brackets inside
/// them count (as they would have to be nested `limit` deep to matter, real manifests never
/// come near).
fn flow_nesting_beyond(text: &str, limit: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut line = 1;
    let mut bytes = text.bytes().peekable();
    let mut previous = b'\n';
    while let Some(b) = bytes.next() {
        match b {
            b'\n' => line += 1,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Some(line);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'#' if previous.is_ascii_whitespace() => {
                for c in bytes.by_ref() {
                    if c == b'\n' {
                        line += 1;
                        break;
                    }
                }
                previous = b'\n';
                continue;
            }
            b'"' if depth > 0 => {
                let mut escaped = false;
                for c in bytes.by_ref() {
                    match c {
                        b'\n' => line += 1,
                        b'\\' if !escaped => {
                            escaped = true;
                            continue;
                        }
                        b'"' if !escaped => break,
                        _ => {}
                    }
                    escaped = false;
                }
            }
            b'\'' if depth > 0 => {
                for c in bytes.by_ref() {
                    match c {
                        b'\n' => line += 1,
                        b'\'' => break,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        previous = b;
    }
    None
}

fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// 1-based line numbers where each document starts (after `---` separators).
fn document_start_lines(text: &str) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut pending = Some(1);
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed.starts_with("--- ") {
            if let Some(p) = pending.take() {
                // The first separator may open the first document.
                if i > 0
                    && text
                        .lines()
                        .take(i)
                        .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
                {
                    starts.push(p);
                }
            }
            pending = Some(i + 2);
        }
    }
    if let Some(p) = pending {
        starts.push(p);
    }
    starts
}

/// Loads every document from the paths. Errors from every file are collected; the caller
/// decides what to do with a partial result (`annexa check` refuses to evaluate it).
pub fn load(paths: &[PathBuf]) -> (Vec<Document>, Vec<String>) {
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    let files = match expand_paths(paths) {
        Ok(f) => f,
        Err(e) => return (docs, vec![e.to_string()]),
    };
    for file in files {
        match read_source(&file) {
            Err(e) => errors.push(e.to_string()),
            Ok((name, text)) => {
                if text.trim().is_empty() {
                    errors.push(format!("{name}: file is empty"));
                    continue;
                }
                let (d, e) = parse_documents(&name, &text);
                docs.extend(d);
                errors.extend(e);
            }
        }
    }
    (docs, errors)
}

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
