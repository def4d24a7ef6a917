//! The CRD schemas' size bounds (`maxItems`, `maxLength`, `maxProperties`), checked on an
//! object before it is decoded, so that the webhook and `annexa check` refuse what the API
//! server refuses, with its wording and the field's path. One pass over the object whether it
//! is a `Value` or JSON text: the bounds are read from the same generated CRDs as `crds/`.

use super::error::{Exceeded, Limit};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use serde::Deserializer;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

/// The root schema of each Annexa kind, by kind.
fn schemas() -> &'static BTreeMap<String, JSONSchemaProps> {
    static SCHEMAS: OnceLock<BTreeMap<String, JSONSchemaProps>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        crate::api::crds()
            .into_iter()
            .filter_map(|(_, crd)| {
                let kind = crd.spec.names.kind.clone();
                let root = crd
                    .spec
                    .versions
                    .into_iter()
                    .next()?
                    .schema?
                    .open_api_v3_schema?;
                Some((kind, root))
            })
            .collect()
    })
}

/// A path in the object, built only when a bound is exceeded.
enum Path<'a> {
    Root,
    Field(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Field(Path::Root, name) => write!(f, "{name}"),
            Path::Field(parent, name) => write!(f, "{parent}.{name}"),
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

/// The first bound exceeded, in the API server's words: `spec.x: Too many: 65: must have at
/// most 64 items`.
pub fn check_value(kind: &str, value: &Value) -> Result<(), Exceeded> {
    let Some(schema) = schemas().get(kind) else {
        return Ok(());
    };
    run(schema, |walk| walk.deserialize(value).map(|_| ()).is_ok())
}

/// Whether JSON text is within the bounds of `kind` (the webhook's fast path; on `false` the
/// object goes through [`check_value`] for the message).
pub fn text_within(kind: &str, json: &str) -> bool {
    let Some(schema) = schemas().get(kind) else {
        return true;
    };
    run(schema, |walk| {
        let mut de = serde_json::Deserializer::from_str(json);
        walk.deserialize(&mut de).is_ok()
    })
    .is_ok()
}

fn run(schema: &JSONSchemaProps, walk: impl FnOnce(Walk<'_>) -> bool) -> Result<(), Exceeded> {
    let found = RefCell::new(None);
    let ok = walk(Walk {
        schema: Some(schema),
        path: &Path::Root,
        found: &found,
    });
    match found.into_inner() {
        Some(exceeded) => Err(exceeded),
        // Text that is not JSON is not this check's to refuse: decoding says what is wrong.
        None if ok => Ok(()),
        None => Ok(()),
    }
}

struct Walk<'a> {
    /// None: a field the schema does not describe (decoding refuses it, naming it).
    schema: Option<&'a JSONSchemaProps>,
    path: &'a Path<'a>,
    found: &'a RefCell<Option<Exceeded>>,
}

impl Walk<'_> {
    fn exceeded<E: serde::de::Error>(&self, limit: Limit) -> E {
        *self.found.borrow_mut() = Some(Exceeded {
            path: self.path.to_string(),
            limit,
        });
        E::custom("size bound exceeded")
    }
}

fn child_items(schema: Option<&JSONSchemaProps>) -> Option<&JSONSchemaProps> {
    match schema?.items.as_ref()? {
        JSONSchemaPropsOrArray::Schema(items) => Some(items),
        JSONSchemaPropsOrArray::Schemas(_) => None,
    }
}

fn child_field<'s>(schema: Option<&'s JSONSchemaProps>, key: &str) -> Option<&'s JSONSchemaProps> {
    let schema = schema?;
    if let Some(property) = schema.properties.as_ref().and_then(|p| p.get(key)) {
        return Some(property);
    }
    match schema.additional_properties.as_ref()? {
        JSONSchemaPropsOrBool::Schema(values) => Some(values),
        JSONSchemaPropsOrBool::Bool(_) => None,
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if self.schema.is_none() {
            deserializer.deserialize_ignored_any(IgnoredAny)?;
            return Ok(());
        }
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Kubernetes object")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        if let Some(max) = self.schema.and_then(|s| s.max_length) {
            let max = usize::try_from(max).unwrap_or(usize::MAX);
            // Bytes bound characters from above: count characters only when it can matter.
            if v.len() > max && v.chars().count() > max {
                return Err(self.exceeded(Limit::Length(max)));
            }
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let max = self
            .schema
            .and_then(|s| s.max_items)
            .map(|m| usize::try_from(m).unwrap_or(usize::MAX));
        let items = child_items(self.schema);
        let mut i = 0;
        loop {
            if max.is_some_and(|max| i >= max) {
                // One more item is one too many; the rest is not read.
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    let max = max.unwrap_or_default();
                    return Err(self.exceeded(Limit::Items(max)));
                }
                return Ok(());
            }
            let path = Path::Index(self.path, i);
            let walk = Walk {
                schema: items,
                path: &path,
                found: self.found,
            };
            if seq.next_element_seed(walk)?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let max = self
            .schema
            .and_then(|s| s.max_properties)
            .map(|m| usize::try_from(m).unwrap_or(usize::MAX));
        let mut count = 0;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            count += 1;
            if max.is_some_and(|max| count > max) {
                let max = max.unwrap_or_default();
                return Err(self.exceeded(Limit::Properties(max)));
            }
            let path = Path::Field(self.path, &key);
            // The root's metadata is the API server's to bound.
            let schema = match self.path {
                Path::Root if key == "metadata" => None,
                _ => child_field(self.schema, &key),
            };
            map.next_value_seed(Walk {
                schema,
                path: &path,
                found: self.found,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bounds_are_checked_alike_on_values_and_text() {
        let names: Vec<String> = (0..65).map(|i| format!("d{i}")).collect();
        let model = json!({"apiVersion": "annexa.dev/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": "m"}, "spec": {"trainingDatasets": names}});
        let text = model.to_string();
        assert_eq!(
            check_value("ModelDeployment", &model).map_err(|e| e.to_string()),
            Err("spec.trainingDatasets: Too many: must have at most 64 items".to_string())
        );
        assert!(!text_within("ModelDeployment", &text));
        let long = "x".repeat(1025);
        let dataset = json!({"kind": "TrainingDataset", "spec": {"source": {"uri": long}}});
        assert_eq!(
            check_value("TrainingDataset", &dataset).map_err(|e| e.to_string()),
            Err("spec.source.uri: Too long: may not be more than 1024 characters".to_string())
        );
        assert!(!text_within("TrainingDataset", &dataset.to_string()));
        // Characters, not bytes: 1024 two-byte characters are within the bound.
        let wide = "é".repeat(1024);
        let dataset = json!({"kind": "TrainingDataset", "spec": {"source": {"uri": wide}}});
        assert_eq!(check_value("TrainingDataset", &dataset), Ok(()));
        assert!(text_within("TrainingDataset", &dataset.to_string()));
        // Within bounds; unknown fields are decoding's to refuse.
        let model = json!({"kind": "ModelDeployment", "metadata": {"name": "m", "labels": {"a": "b"}},
            "spec": {"trainingDatasets": ["a"], "bogus": ["x"]}});
        assert_eq!(check_value("ModelDeployment", &model), Ok(()));
        assert!(text_within("ModelDeployment", &model.to_string()));
    }
}
