//! Strict decoding of Annexa kinds: unknown fields and wrong types are errors that name the
//! field, with a spelling hint where a required field is missing beside a near miss.

use super::Error;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Decodes an Annexa kind strictly: unknown fields and wrong types are errors naming the field.
/// A required field that is missing beside an unknown one spelled like it is reported with the
/// suggestion (`missing field `image`; unknown field spec.imgae (did you mean `image`?)`).
pub fn typed<T: DeserializeOwned>(kind: &str, name: &str, value: &Value) -> Result<T, Error> {
    let mut unknown = Vec::new();
    let mut on_ignored = |path: serde_ignored::Path<'_>| {
        let p = field_path(&path);
        // Server-populated metadata and status are not the user's to get wrong.
        // `apiVersion` and `kind` were checked before decoding.
        if !p.starts_with("metadata.")
            && !p.starts_with("status.")
            && p != "apiVersion"
            && p != "kind"
        {
            unknown.push(p)
        }
    };
    let de = serde_ignored::Deserializer::new(value, &mut on_ignored);
    let result: Result<T, _> = serde_path_to_error::deserialize(de);
    match result {
        Err(e) => {
            let path = e.path().to_string();
            let source = e.into_inner();
            let hint = missing_field(&source.to_string())
                .map(|missing| typo_hint(&path, missing, &unknown))
                .unwrap_or_default();
            Err(Error::Field {
                kind: kind.to_string(),
                name: name.to_string(),
                path,
                source,
                hint,
            })
        }
        Ok(_) if !unknown.is_empty() => Err(Error::UnknownFields {
            kind: kind.to_string(),
            name: name.to_string(),
            fields: unknown,
        }),
        Ok(v) => Ok(v),
    }
}

/// A field path as the rest of Annexa writes them: `spec.gpu.pools[0].taint` (serde_ignored
/// writes `spec.gpu.?.pools.0.taint`).
fn field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        Path::Map { parent, key } => {
            let parent = field_path(parent);
            if parent.is_empty() {
                key.clone()
            } else {
                format!("{parent}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => field_path(parent),
    }
}

/// The field serde reports missing (`missing field `image``), if that is the error.
fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
}

/// `; unknown field spec.imgae (did you mean `image`?)` for the unknown fields beside the
/// missing one (`parent` is where serde found it missing); the suggestion when one is spelled
/// within two edits of it.
fn typo_hint(parent: &str, missing: &str, unknown: &[String]) -> String {
    let siblings: Vec<&String> = unknown
        .iter()
        .filter(|u| {
            let (dir, _) = u.rsplit_once('.').unwrap_or(("", u.as_str()));
            dir == parent
        })
        .collect();
    let mut out = String::new();
    for field in siblings {
        let leaf = field.rsplit_once('.').map_or(field.as_str(), |(_, l)| l);
        out.push_str(&format!("; unknown field {field}"));
        if edit_distance(leaf, missing) <= 2 {
            out.push_str(&format!(" (did you mean `{missing}`?)"));
        }
    }
    out
}

/// Levenshtein distance (field names are short; hand-written, no crate needed for this).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}
