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
