//! kube-runtime's watcher against the stand-in: every change seen once, a dropped watch resumed
//! from its resourceVersion, and a relist after 410 Gone. Stand-in only (it drops watches).

// Test helpers below panic on broken preconditions, like the tests themselves.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use annexa_e2e::standin::Faults;
use common::*;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::json;

type Log = Arc<Mutex<Vec<String>>>;

async fn until(log: &Log, what: &str, pred: impl Fn(&[String]) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if pred(&log.lock().unwrap()) {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "timed out waiting for {what}; log: {:?}",
                log.lock().unwrap()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn set(api: &Api<ConfigMap>, value: u32) {
    api.patch(
        "c",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": value.to_string()}})),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_sees_every_change_once_resumes_and_relists() {
    let cluster = Arc::new(
        tokio::task::spawn_blocking(|| standin(&["--watch-history=20"]))
            .await
            .unwrap(),
    );
    let c = cluster.clone();
    let ns = tokio::task::spawn_blocking(move || c.namespace("watcher").unwrap())
        .await
        .unwrap();

    let kubeconfig = Kubeconfig::read_from(cluster.kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(Client::try_from(config).unwrap(), &ns.name);
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("c".into());
    cm.data = Some([("v".to_string(), "0".to_string())].into());
    api.create(&PostParams::default(), &cm).await.unwrap();

    let log: Log = Arc::default();
    let sink = log.clone();
    let watched = api.clone();
    let task = tokio::spawn(async move {
        let mut stream = watcher(watched, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = stream.next().await {
            let value = |cm: &ConfigMap| {
                cm.data
                    .as_ref()
                    .and_then(|d| d.get("v").cloned())
                    .unwrap_or_default()
            };
            let line = match event {
                Ok(watcher::Event::Apply(cm)) => format!("Apply:{}", value(&cm)),
                Ok(watcher::Event::Delete(cm)) => format!("Delete:{}", value(&cm)),
                Ok(watcher::Event::Init) => "Init".into(),
                Ok(watcher::Event::InitApply(cm)) => format!("InitApply:{}", value(&cm)),
                Ok(watcher::Event::InitDone) => "InitDone".into(),
                Err(e) => format!("Error:{e}"),
            };
            sink.lock().unwrap().push(line);
        }
    });

    until(&log, "the initial list", |l| {
        l.iter().any(|e| e == "InitDone")
    })
    .await;
    assert!(log.lock().unwrap().contains(&"InitApply:0".to_string()));

    // 1. Every change is seen exactly once, in order.
    for v in 1..=5 {
        set(&api, v).await;
    }
    until(&log, "change 5", |l| l.iter().any(|e| e == "Apply:5")).await;
    let applies: Vec<String> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.starts_with("Apply:"))
        .cloned()
        .collect();
    assert_eq!(
        applies,
        ["Apply:1", "Apply:2", "Apply:3", "Apply:4", "Apply:5"]
    );

    // 2. A dropped watch resumes from its resourceVersion: no relist, nothing lost or repeated.
    let mark = log.lock().unwrap().len();
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.drop_watches().unwrap())
        .await
        .unwrap();
    for v in 6..=8 {
        set(&api, v).await;
    }
    until(&log, "change 8", |l| l.iter().any(|e| e == "Apply:8")).await;
    let after: Vec<String> = log.lock().unwrap()[mark..]
        .iter()
        .filter(|e| !e.starts_with("Error:"))
        .cloned()
        .collect();
    assert_eq!(
        after,
        ["Apply:6", "Apply:7", "Apply:8"],
        "full log: {:?}",
        log.lock().unwrap()
    );

    // 3. While it cannot reconnect, more changes happen than the history keeps: the resumed
    // watch gets 410 Gone and the watcher relists.
    let mark = log.lock().unwrap().len();
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || {
        c.set_faults(&Faults {
            error_rate: 1.0,
            error_codes: vec![500],
            path_contains: "watch=true".into(),
            ..Faults::default()
        })
        .unwrap();
        c.drop_watches().unwrap();
    })
    .await
    .unwrap();
    for v in 100..130 {
        set(&api, v).await;
    }
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.set_faults(&Faults::default()).unwrap())
        .await
        .unwrap();
    until(&log, "the relist", |l| {
        let tail = &l[mark..];
        tail.iter().any(|e| e == "Init")
            && tail.iter().any(|e| e == "InitApply:129")
            && tail.iter().any(|e| e == "InitDone")
    })
    .await;
    let tail: Vec<String> = log.lock().unwrap()[mark..].to_vec();
    assert!(
        !tail.iter().any(|e| e.starts_with("Apply:1")),
        "changes lost to compaction must not be replayed: {tail:?}"
    );

    task.abort();
    drop(ns);
}
