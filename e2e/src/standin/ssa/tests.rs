use super::*;

fn cm(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": data})
}

fn configmaps() -> Schema {
    Schema::new(
        json!({"type": "object", "properties": {"data": {"type": "object", "additionalProperties": {"type": "string"}}}}),
        true,
        false,
    )
}

#[test]
fn two_managers_keep_their_fields() {
    let s = configmaps();
    let live = apply(&s, None, &cm(json!({"a":"1"})), "one", "v1", "", false, "t").unwrap();
    let live = apply(
        &s,
        Some(&live),
        &cm(json!({"b":"2"})),
        "two",
        "v1",
        "",
        false,
        "t",
    )
    .unwrap();
    assert_eq!(live["data"], json!({"a":"1","b":"2"}));
    // "one" stops sending a: it is removed; b stays.
    let live = apply(
        &s,
        Some(&live),
        &cm(json!({"c":"3"})),
        "one",
        "v1",
        "",
        false,
        "t",
    )
    .unwrap();
    assert_eq!(live["data"], json!({"b":"2","c":"3"}));
    // "two" setting c to another value conflicts.
    let err = apply(
        &s,
        Some(&live),
        &cm(json!({"b":"2","c":"4"})),
        "two",
        "v1",
        "",
        false,
        "t",
    );
    let Err(ApplyError::Conflicts(c)) = err else {
        panic!("expected a conflict: {err:?}")
    };
    assert_eq!(c[0].path, ".data.c");
    assert_eq!(
        conflict_message(&c),
        "Apply failed with 1 conflict: conflict with \"one\": .data.c"
    );
}

fn deployment_schema() -> Schema {
    Schema::new(
        super::super::ssa_schema::builtin_for_tests("apps", "Deployment"),
        true,
        true,
    )
}

fn deployment(containers: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
           "spec": {"template": {"spec": {"containers": containers}}}})
}

#[test]
fn containers_merge_by_name_and_ports_by_port_and_protocol() {
    let s = deployment_schema();
    let live = apply(
        &s,
        None,
        &deployment(json!([{"name": "app", "image": "a:1", "ports": [{"containerPort": 80}]}])),
        "one",
        "apps/v1",
        "",
        false,
        "t",
    )
    .unwrap();
    let live = apply(
        &s,
        Some(&live),
        &deployment(json!([{"name": "sidecar", "image": "s:1"}])),
        "two",
        "apps/v1",
        "",
        false,
        "t",
    )
    .unwrap();
    let names: Vec<&str> = live["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app", "sidecar"]);
    let one = &live["metadata"]["managedFields"][0];
    assert_eq!(one["manager"], "one");
    let app =
        &one["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"app\"}"];
    assert_eq!(app["."], json!({}));
    assert_eq!(app["f:image"], json!({}));
    assert_eq!(
        app["f:ports"]["k:{\"containerPort\":80,\"protocol\":\"TCP\"}"],
        json!({".": {}, "f:containerPort": {}})
    );
    // Changing the other manager's image conflicts with a path naming the item.
    let err = apply(
        &s,
        Some(&live),
        &deployment(json!([{"name": "app", "image": "a:2"}])),
        "two",
        "apps/v1",
        "",
        false,
        "t",
    );
    let Err(ApplyError::Conflicts(c)) = err else {
        panic!("expected a conflict: {err:?}")
    };
    assert_eq!(c.len(), 1);
    assert_eq!(
        c[0].path,
        ".spec.template.spec.containers[name=\"app\"].image"
    );
    // "one" drops its container: removed, the sidecar stays.
    let live = apply(
        &s,
        Some(&live),
        &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": 1}}),
        "one",
        "apps/v1",
        "",
        false,
        "t",
    )
    .unwrap();
    assert_eq!(
        live["spec"]["template"]["spec"]["containers"],
        json!([{"name": "sidecar", "image": "s:1"}])
    );
}

#[test]
fn duplicate_keys_are_refused() {
    let s = deployment_schema();
    let err = apply(
        &s,
        None,
        &deployment(json!([{"name": "a", "image": "x"}, {"name": "a", "image": "y"}])),
        "one",
        "apps/v1",
        "",
        false,
        "t",
    );
    let Err(ApplyError::Invalid(m)) = err else {
        panic!("expected an error: {err:?}")
    };
    assert_eq!(
        m,
        ".spec.template.spec.containers: duplicate entries for key [name=\"a\"]"
    );
}

#[test]
fn an_update_takes_over_what_it_changes() {
    let s = configmaps();
    let live = apply(
        &s,
        None,
        &cm(json!({"a":"1","b":"2"})),
        "one",
        "v1",
        "",
        false,
        "t1",
    )
    .unwrap();
    let mut edited = live.clone();
    edited["data"]["a"] = json!("9");
    record_update(&s, Some(&live), &mut edited, "kubectl-edit", "v1", "", "t2");
    let entries = read_entries(&edited);
    let one = entries.iter().find(|e| e.manager == "one").unwrap();
    let edit = entries
        .iter()
        .find(|e| e.manager == "kubectl-edit")
        .unwrap();
    assert!(
        one.fields
            .contains(&vec!["f:data".to_string(), "f:b".to_string()])
    );
    assert!(
        !one.fields
            .contains(&vec!["f:data".to_string(), "f:a".to_string()])
    );
    assert!(
        edit.fields
            .contains(&vec!["f:data".to_string(), "f:a".to_string()])
    );
    let err = apply(
        &s,
        Some(&edited),
        &cm(json!({"a":"1","b":"2"})),
        "one",
        "v1",
        "",
        false,
        "t3",
    );
    let Err(ApplyError::Conflicts(c)) = err else {
        panic!("expected a conflict: {err:?}")
    };
    assert_eq!(
        conflict_message(&c),
        "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using v1: .data.a"
    );
}

fn widgets() -> Schema {
    Schema::new(
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                "size": {"type": "integer"},
            }},
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
        }}),
        false,
        true,
    )
}

fn widget(body: Value) -> Value {
    let mut w =
        json!({"apiVersion": "e2e.annexa.dev/v1", "kind": "Widget", "metadata": {"name": "w"}});
    if let (Some(w), Some(body)) = (w.as_object_mut(), body.as_object()) {
        w.extend(body.clone());
    }
    w
}

#[test]
fn main_resource_applies_own_no_status_and_status_applies_own_only_status() {
    let s = widgets();
    let live = apply(
        &s,
        None,
        &widget(json!({"spec": {"size": 1}, "status": {"ready": true}, "extra": 1})),
        "ctl",
        "e2e.annexa.dev/v1",
        "",
        false,
        "t",
    )
    .unwrap();
    let entries = read_entries(&live);
    // status is the subresource's; `extra` is pruned by the schema: neither is owned.
    assert_eq!(
        entries[0].fields,
        FieldSet::from([vec!["f:spec".to_string(), "f:size".to_string()]])
    );
    let live = apply(
        &s,
        Some(&live),
        &widget(json!({"status": {"ready": true}})),
        "ctl",
        "e2e.annexa.dev/v1",
        "status",
        false,
        "t",
    )
    .unwrap();
    let status = read_entries(&live)
        .into_iter()
        .find(|e| e.subresource == "status")
        .unwrap();
    assert_eq!(
        status.fields,
        FieldSet::from([vec!["f:status".to_string(), "f:ready".to_string()]])
    );
    // The main-resource entry is untouched by the status apply.
    assert!(read_entries(&live).iter().any(|e| e.subresource.is_empty()));
}

#[test]
fn set_items_are_owned_by_value_and_pruned_only_when_nobody_owns_them() {
    let s = widgets();
    let v = "e2e.annexa.dev/v1";
    let live = apply(
        &s,
        None,
        &widget(json!({"spec": {"tags": ["a", "b"]}})),
        "one",
        v,
        "",
        false,
        "t",
    )
    .unwrap();
    let live = apply(
        &s,
        Some(&live),
        &widget(json!({"spec": {"tags": ["b", "c"]}})),
        "two",
        v,
        "",
        false,
        "t",
    )
    .unwrap();
    assert_eq!(live["spec"]["tags"], json!(["a", "b", "c"]));
    assert_eq!(
        live["metadata"]["managedFields"][1]["fieldsV1"],
        json!({"f:spec": {"f:tags": {"v:\"b\"": {}, "v:\"c\"": {}}}})
    );
    let live = apply(
        &s,
        Some(&live),
        &widget(json!({"spec": {"size": 2}})),
        "one",
        v,
        "",
        false,
        "t",
    )
    .unwrap();
    assert_eq!(live["spec"], json!({"tags": ["b", "c"], "size": 2}));
    // Nobody left owning tags: the list goes, not an empty one.
    let live = apply(
        &s,
        Some(&live),
        &widget(json!({"spec": {"size": 2}})),
        "two",
        v,
        "",
        false,
        "t",
    )
    .unwrap();
    assert_eq!(live["spec"], json!({"size": 2}));
}

#[test]
fn an_update_that_creates_owns_maps_it_adds_with_a_dot() {
    let s = configmaps();
    let mut created = cm(json!({"a": "1"}));
    created["metadata"]["labels"] = json!({"app": "x"});
    record_update(&s, None, &mut created, "kubectl-create", "v1", "", "t");
    assert_eq!(
        created["metadata"]["managedFields"][0]["fieldsV1"],
        json!({"f:data": {".": {}, "f:a": {}}, "f:metadata": {"f:labels": {".": {}, "f:app": {}}}})
    );
    // FieldsV1 reads back to the same set.
    let entries = read_entries(&created);
    assert!(entries[0].fields.contains(&vec!["f:data".to_string()]));
    assert!(
        entries[0]
            .fields
            .contains(&vec!["f:data".to_string(), "f:a".to_string()])
    );
}

#[test]
fn conflicts_are_listed_members_first_per_manager() {
    let p = |segs: &[&str]| segs.iter().map(|s| s.to_string()).collect::<Path>();
    let mut paths = [
        p(&["f:spec", "f:a", "f:b"]),
        p(&["f:spec", "f:z"]),
        p(&["f:metadata", "f:labels", "f:x"]),
    ];
    paths.sort_by(|a, b| set_order(a, b));
    assert_eq!(
        paths.iter().map(|p| display(p)).collect::<Vec<_>>(),
        [".metadata.labels.x", ".spec.z", ".spec.a.b"]
    );
}
