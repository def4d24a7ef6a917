//! The kube-rs client paths an operator uses, against the stand-in or the real cluster in
//! ANNEXA_E2E_KUBECONFIG: server-side apply (also of status), optimistic concurrency on
//! replace, paginated lists, Leases.

// Test helpers below panic on broken preconditions, like the tests themselves.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, Client};
use serde_json::json;

async fn client(path: &std::path::Path) -> Client {
    let kubeconfig = Kubeconfig::read_from(path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_client_paths() {
    let cluster = tokio::task::spawn_blocking(cluster).await.unwrap();
    let (cluster, ns, crd) = tokio::task::spawn_blocking(move || {
        let ns = cluster.namespace("kube").unwrap();
        let crd = TestCrd::install(&cluster);
        (cluster, ns, crd)
    })
    .await
    .unwrap();
    let client = client(cluster.kubeconfig()).await;

    // Server-side apply of a custom resource, then of its status, as a controller does.
    let gvk = GroupVersionKind::gvk(&crd.group, "v1", "Widget");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "widgets");
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &resource);
    let ssa = PatchParams::apply("annexa-test").force();
    let applied = widgets
        .patch(
            "w1",
            &ssa,
            &Patch::Apply(crd.widget(&ns.name, "w1", json!({"size": 1}))),
        )
        .await
        .unwrap();
    assert_eq!(applied.metadata.generation, Some(1));
    let status = json!({
        "apiVersion": format!("{}/v1", crd.group), "kind": "Widget",
        "status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]},
    });
    let after = widgets
        .patch_status("w1", &ssa, &Patch::Apply(status))
        .await
        .unwrap();
    assert_eq!(after.data["status"]["conditions"][0]["type"], "Ready");
    assert_eq!(after.metadata.generation, Some(1));
    assert_eq!(after.data["spec"]["size"], 1);
    let managers: Vec<(String, Option<String>)> = after
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .map(|m| (m.manager.unwrap_or_default(), m.subresource))
        .collect();
    assert!(
        managers.contains(&("annexa-test".into(), None)),
        "{managers:?}"
    );
    assert!(
        managers.contains(&("annexa-test".into(), Some("status".into()))),
        "{managers:?}"
    );

    // Replace with a stale resourceVersion: 409 Conflict.
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("c".into());
    let created = configmaps
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let mut first = created.clone();
    first.data = Some([("a".to_string(), "1".to_string())].into());
    configmaps
        .replace("c", &PostParams::default(), &first)
        .await
        .unwrap();
    let mut stale = created.clone();
    stale.data = Some([("a".to_string(), "2".to_string())].into());
    match configmaps
        .replace("c", &PostParams::default(), &stale)
        .await
    {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 409);
            assert_eq!(status.reason, "Conflict");
        }
        other => panic!("expected 409, got {other:?}"),
    }

    // Paginated list: every item exactly once.
    for i in 0..7 {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some(format!("page-{i}"));
        cm.metadata.labels = Some([("page".to_string(), "yes".to_string())].into());
        configmaps
            .create(&PostParams::default(), &cm)
            .await
            .unwrap();
    }
    let mut names = Vec::new();
    let mut params = ListParams::default().labels("page=yes").limit(3);
    loop {
        let page = configmaps.list(&params).await.unwrap();
        names.extend(page.items.iter().filter_map(|c| c.metadata.name.clone()));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    assert_eq!(names.len(), 7, "{names:?}");

    // Leases, as leader election uses them.
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns.name);
    let mut lease = Lease::default();
    lease.metadata.name = Some("leader".into());
    lease.spec = Some(k8s_openapi::api::coordination::v1::LeaseSpec {
        holder_identity: Some("replica-a".into()),
        lease_duration_seconds: Some(15),
        ..Default::default()
    });
    let held = leases.create(&PostParams::default(), &lease).await.unwrap();
    let mut taken = held.clone();
    if let Some(spec) = taken.spec.as_mut() {
        spec.holder_identity = Some("replica-b".into());
    }
    leases
        .replace("leader", &PostParams::default(), &taken)
        .await
        .unwrap();
    assert!(
        leases
            .replace("leader", &PostParams::default(), &held)
            .await
            .is_err()
    );
    let now = leases.get("leader").await.unwrap();
    assert_eq!(
        now.spec.unwrap().holder_identity.as_deref(),
        Some("replica-b")
    );

    tokio::task::spawn_blocking(move || {
        drop(crd);
        drop(ns);
        drop(cluster);
    })
    .await
    .unwrap();
}
