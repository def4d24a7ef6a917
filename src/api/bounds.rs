//! Bounds on every list, string and map of the CRD schemas. Fields whose size matters to a
//! user carry their bound as a schemars attribute on the Rust type (`length(max = ..)`); every
//! other list, string and map (fields of embedded Kubernetes types such as `PolicyRule`
//! included) gets the default below when the CRD is generated. Bounded schemas keep objects
//! that the rules and the API server's CEL cost estimates must read small; the webhook and
//! `annexa check` refuse the same sizes with the same field paths (`decode::bounds`).
//! docs/crds.md, "Size limits", lists them.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};

/// Items of a list in `spec` without a bound of its own.
pub const DEFAULT_MAX_ITEMS: i64 = 64;
/// Characters of a string in `spec` without a bound of its own: above a DNS subdomain name
/// (253), a URI or a KMS key ARN, and room for a paragraph of justification.
pub const DEFAULT_MAX_LENGTH: i64 = 1024;
/// Keys of a map (labels, node selectors) without a bound of its own.
pub const DEFAULT_MAX_PROPERTIES: i64 = 64;
/// Characters of a string in `status` (Annexa writes them; conditions cap messages at 4096,
/// `metav1.Condition` at 32768).
pub const STATUS_MAX_LENGTH: i64 = 32768;

/// Sets the default bounds on every list, string and map of the CRD's schemas that has none.
pub fn bound(crd: &mut CustomResourceDefinition) {
    for version in &mut crd.spec.versions {
        let Some(root) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        else {
            continue;
        };
        for (name, property) in root.properties.iter_mut().flatten() {
            match name.as_str() {
                "spec" => bound_schema(property, DEFAULT_MAX_LENGTH),
                "status" => bound_schema(property, STATUS_MAX_LENGTH),
                // apiVersion, kind and metadata are the API server's to validate.
                _ => {}
            }
        }
    }
}

fn bound_schema(schema: &mut JSONSchemaProps, max_length: i64) {
    match schema.type_.as_deref() {
        Some("string") => {
            schema.max_length.get_or_insert(max_length);
        }
        Some("array") => {
            schema.max_items.get_or_insert(DEFAULT_MAX_ITEMS);
        }
        Some("object") if schema.additional_properties.is_some() => {
            schema.max_properties.get_or_insert(DEFAULT_MAX_PROPERTIES);
        }
        _ => {}
    }
    match &mut schema.items {
        Some(JSONSchemaPropsOrArray::Schema(items)) => bound_schema(items, max_length),
        Some(JSONSchemaPropsOrArray::Schemas(items)) => {
            items.iter_mut().for_each(|s| bound_schema(s, max_length))
        }
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(values)) = &mut schema.additional_properties {
        bound_schema(values, max_length);
    }
    for property in schema.properties.iter_mut().flat_map(|p| p.values_mut()) {
        bound_schema(property, max_length);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every list, string and map of every CRD (spec and status) has a bound.
    #[test]
    fn every_list_string_and_map_is_bounded() {
        fn unbounded(schema: &JSONSchemaProps, path: String, out: &mut Vec<String>) {
            match schema.type_.as_deref() {
                Some("string") if schema.max_length.is_none() => out.push(path.clone()),
                Some("array") if schema.max_items.is_none() => out.push(path.clone()),
                Some("object")
                    if schema.additional_properties.is_some()
                        && schema.max_properties.is_none() =>
                {
                    out.push(path.clone())
                }
                _ => {}
            }
            if let Some(JSONSchemaPropsOrArray::Schema(items)) = &schema.items {
                unbounded(items, format!("{path}[]"), out);
            }
            if let Some(JSONSchemaPropsOrBool::Schema(values)) = &schema.additional_properties {
                unbounded(values, format!("{path}{{}}"), out);
            }
            for (name, property) in schema.properties.iter().flatten() {
                unbounded(property, format!("{path}.{name}"), out);
            }
        }
        let mut found = Vec::new();
        for (_, crd) in crate::api::crds() {
            let root = crd.spec.versions[0]
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .expect("schema");
            for part in ["spec", "status"] {
                if let Some(schema) = root.properties.as_ref().and_then(|p| p.get(part)) {
                    unbounded(
                        schema,
                        format!("{}.{part}", crd.spec.names.kind),
                        &mut found,
                    );
                }
            }
        }
        assert!(found.is_empty(), "unbounded: {found:#?}");
    }
}
