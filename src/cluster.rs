//! The cluster as Annexa reads it: reflector stores of every object the rules cross-reference,
//! shared by the admission webhook and the controllers (one watch per kind, one cache), with a
//! [`Lookup`] over them and a cache of namespace profiles.
//!
//! Memory: managedFields are pruned from every cached object, and namespaces are cached as
//! metadata only (their labels are all the rules need).

use crate::api::{AgentPolicy, CompliancePolicy, ModelApproval, ModelDeployment, TrainingDataset};
use crate::policy::{Lookup, Profile};
use crate::webhook::context::ProfileCache;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PartialObjectMeta};
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use std::collections::{BTreeMap, hash_map::DefaultHasher};
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The admission context over reflector stores. Namespaces are watched as metadata only and
/// managedFields are dropped, to keep memory low.
pub struct StoreContext {
    pub policies: Store<CompliancePolicy>,
    pub datasets: Store<TrainingDataset>,
    pub models: Store<ModelDeployment>,
    pub approvals: Store<ModelApproval>,
    pub agents: Store<AgentPolicy>,
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    pub(crate) profiles: ProfileCache,
    synced: AtomicBool,
}

impl StoreContext {
    /// A context over existing stores (tests fill them through their writers).
    pub fn new(
        policies: Store<CompliancePolicy>,
        datasets: Store<TrainingDataset>,
        models: Store<ModelDeployment>,
        approvals: Store<ModelApproval>,
        agents: Store<AgentPolicy>,
        namespaces: Store<PartialObjectMeta<Namespace>>,
    ) -> Self {
        Self {
            policies,
            datasets,
            models,
            approvals,
            agents,
            namespaces,
            profiles: ProfileCache::default(),
            synced: AtomicBool::new(false),
        }
    }

    /// Marks the stores as synced (`/readyz` then answers 200).
    pub fn set_synced(&self) {
        self.synced.store(true, Ordering::Relaxed);
    }

    /// Names the current policy set: the profile cache is valid while it is unchanged.
    pub(crate) fn policy_generation(&self, policies: &[Arc<CompliancePolicy>]) -> u64 {
        let mut hasher = DefaultHasher::new();
        let mut versions: Vec<(&str, &str)> = policies
            .iter()
            .map(|p| {
                (
                    p.metadata.name.as_deref().unwrap_or_default(),
                    p.metadata.resource_version.as_deref().unwrap_or_default(),
                )
            })
            .collect();
        versions.sort_unstable();
        versions.hash(&mut hasher);
        // Objects without a resourceVersion (tests) are told apart by content.
        if versions.iter().any(|(_, rv)| rv.is_empty()) {
            for p in policies {
                format!("{:?}", p.spec).hash(&mut hasher);
            }
        }
        hasher.finish()
    }
}

impl Lookup for StoreContext {
    fn dataset(&self, namespace: &str, name: &str) -> Option<Arc<TrainingDataset>> {
        self.datasets.get(&ObjectRef::new(name).within(namespace))
    }
    fn model(&self, namespace: &str, name: &str) -> Option<Arc<ModelDeployment>> {
        self.models.get(&ObjectRef::new(name).within(namespace))
    }
    fn approvals(&self, namespace: &str, model: &str) -> Vec<Arc<ModelApproval>> {
        self.approvals.state_filter(|a| {
            a.metadata.namespace.as_deref() == Some(namespace) && a.spec.model_deployment == model
        })
    }
    fn agent_for_service_account(&self, namespace: &str, sa: &str) -> Option<Arc<AgentPolicy>> {
        self.agents.find(|a| {
            a.metadata.namespace.as_deref() == Some(namespace) && a.spec.service_account_name == sa
        })
    }
}

pub(crate) type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

pub(crate) fn reflect<K>(api: Api<K>) -> (Store<K>, Task)
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let (store, writer) = reflector::store();
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    let stream = watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(|o: &mut K| o.managed_fields_mut().clear())
        .reflect(writer)
        .for_each(move |event| {
            if let Err(e) = event {
                tracing::warn!(kind = %kind, error = %e, "watch error; retrying with backoff");
            }
            futures::future::ready(())
        });
    (store, Box::pin(stream))
}

/// Like [`reflect`], for Annexa's own kinds, where an object that does not decode (written
/// before a schema change, or by hand with the webhook down) must not stop the watch: it is
/// logged and left out of the cache, and every other object stays current.
pub(crate) fn reflect_guarded<K>(client: Client) -> (Store<K>, Task)
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, mut writer) = reflector::store::<K>();
    let kind = K::kind(&()).into_owned();
    let api: Api<DeserializeGuard<K>> = Api::all(client);
    let stream = watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .for_each(move |event| {
            let valid = |guard: DeserializeGuard<K>| match guard.0 {
                Ok(mut object) => {
                    object.managed_fields_mut().clear();
                    Some(object)
                }
                Err(invalid) => {
                    tracing::warn!(
                        kind = %kind,
                        namespace = invalid.metadata.namespace.as_deref().unwrap_or_default(),
                        name = invalid.metadata.name.as_deref().unwrap_or_default(),
                        error = %invalid.error,
                        "object does not decode; left out of the cache"
                    );
                    None
                }
            };
            let event = match event {
                Ok(watcher::Event::Apply(g)) => valid(g).map(watcher::Event::Apply),
                Ok(watcher::Event::InitApply(g)) => valid(g).map(watcher::Event::InitApply),
                Ok(watcher::Event::Delete(g)) => valid(g).map(watcher::Event::Delete),
                Ok(watcher::Event::Init) => Some(watcher::Event::Init),
                Ok(watcher::Event::InitDone) => Some(watcher::Event::InitDone),
                Err(e) => {
                    tracing::warn!(kind = %kind, error = %e, "watch error; retrying with backoff");
                    None
                }
            };
            if let Some(event) = event {
                writer.apply_watcher_event(&event);
            }
            futures::future::ready(())
        });
    (store, Box::pin(stream))
}

/// Starts watching everything the decisions read. Returns the context and the future that
/// drives the watches (run it on a task; it never ends) and marks the context synced once
/// every store has listed.
pub fn watch(client: Client) -> (Arc<StoreContext>, impl Future<Output = ()> + Send) {
    let (policies, p) = reflect_guarded::<CompliancePolicy>(client.clone());
    let (datasets, d) = reflect_guarded::<TrainingDataset>(client.clone());
    let (models, m) = reflect_guarded::<ModelDeployment>(client.clone());
    let (approvals, a) = reflect_guarded::<ModelApproval>(client.clone());
    let (agents, g) = reflect_guarded::<AgentPolicy>(client.clone());
    let (namespaces, namespace_writer) = reflector::store();
    let n: Task = Box::pin(
        watcher(Api::<PartialObjectMeta<Namespace>>::all(client), watcher::Config::default().any_semantic())
            .default_backoff()
            .modify(|o: &mut PartialObjectMeta<Namespace>| o.managed_fields_mut().clear())
            .reflect(namespace_writer)
            .for_each(|event| {
                if let Err(e) = event {
                    tracing::warn!(kind = "Namespace", error = %e, "watch error; retrying with backoff");
                }
                futures::future::ready(())
            }),
    );
    let context = Arc::new(StoreContext::new(
        policies, datasets, models, approvals, agents, namespaces,
    ));
    let ready = {
        let context = context.clone();
        async move {
            let _ = context.policies.wait_until_ready().await;
            let _ = context.datasets.wait_until_ready().await;
            let _ = context.models.wait_until_ready().await;
            let _ = context.approvals.wait_until_ready().await;
            let _ = context.agents.wait_until_ready().await;
            let _ = context.namespaces.wait_until_ready().await;
            context.set_synced();
            tracing::info!("admission context synced");
        }
    };
    let tasks: Vec<Task> = vec![p, d, m, a, g, n, Box::pin(ready)];
    (context, async move {
        futures::future::join_all(tasks).await;
    })
}

impl StoreContext {
    /// Whether every store has listed once.
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Relaxed)
    }

    /// Labels of a namespace (with `kubernetes.io/metadata.name`, as the API server sets it).
    pub fn namespace_labels(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        self.namespaces.get(&ObjectRef::new(namespace)).map(|ns| {
            let mut labels = ns.labels().clone();
            labels
                .entry("kubernetes.io/metadata.name".to_string())
                .or_insert_with(|| namespace.to_string());
            labels
        })
    }

    /// The effective profile of a namespace (cached per policy set).
    pub fn profile(&self, namespace: &str) -> Arc<Profile> {
        let labels = self.namespace_labels(namespace).unwrap_or_else(|| {
            BTreeMap::from([(
                "kubernetes.io/metadata.name".to_string(),
                namespace.to_string(),
            )])
        });
        let policies = self.policies.state();
        let generation = self.policy_generation(&policies);
        self.profiles
            .get_or_compute(namespace, generation, &labels, || policies)
    }
}

/// The shared state under the name the controllers use.
pub type ClusterState = Arc<StoreContext>;
