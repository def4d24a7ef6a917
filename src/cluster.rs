//! The cluster as Annexa reads it: reflector stores of the objects the rules cross-reference,
//! shared by the webhook and the controllers, and a [`Lookup`] over them.
//!
//! Memory: managedFields are pruned from every cached object, and namespaces are cached as
//! metadata only (their labels are all the rules need).

use crate::api::{AgentPolicy, CompliancePolicy, ModelApproval, ModelDeployment, TrainingDataset};
use crate::policy::{Lookup, Profile};
use futures::{StreamExt, future::BoxFuture};
use k8s_openapi::api::core::v1::Namespace;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

/// Reflector stores of everything the rules read.
#[derive(Clone)]
pub struct ClusterState {
    pub policies: Store<CompliancePolicy>,
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    pub datasets: Store<TrainingDataset>,
    pub models: Store<ModelDeployment>,
    pub approvals: Store<ModelApproval>,
    pub agents: Store<AgentPolicy>,
}

pub(crate) fn reflect<K>(api: Api<K>) -> (Store<K>, BoxFuture<'static, ()>)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(|o: &mut K| o.managed_fields_mut().clear());
    let fut = reflector::reflector(writer, stream).for_each(|_| futures::future::ready(()));
    (reader, Box::pin(fut))
}

impl ClusterState {
    /// Creates the stores and the future that keeps them in sync (run it on a task).
    pub fn new(client: &Client) -> (Self, BoxFuture<'static, ()>) {
        let (policies, f1) = reflect(Api::<CompliancePolicy>::all(client.clone()));
        let (datasets, f2) = reflect(Api::<TrainingDataset>::all(client.clone()));
        let (models, f3) = reflect(Api::<ModelDeployment>::all(client.clone()));
        let (approvals, f4) = reflect(Api::<ModelApproval>::all(client.clone()));
        let (agents, f5) = reflect(Api::<AgentPolicy>::all(client.clone()));
        // Metadata only: the labels are all the rules need.
        let (namespaces, f6) = reflect(Api::<PartialObjectMeta<Namespace>>::all(client.clone()));
        let run = async move {
            futures::join!(f1, f2, f3, f4, f5, f6);
        };
        (
            Self {
                policies,
                namespaces,
                datasets,
                models,
                approvals,
                agents,
            },
            Box::pin(run),
        )
    }

    /// Waits until every store has its first full list.
    pub async fn wait_ready(&self) {
        let _ = futures::join!(
            self.policies.wait_until_ready(),
            self.namespaces.wait_until_ready(),
            self.datasets.wait_until_ready(),
            self.models.wait_until_ready(),
            self.approvals.wait_until_ready(),
            self.agents.wait_until_ready(),
        );
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

    /// The effective profile of a namespace.
    pub fn profile(&self, namespace: &str) -> Profile {
        let labels = self.namespace_labels(namespace).unwrap_or_else(|| {
            BTreeMap::from([(
                "kubernetes.io/metadata.name".to_string(),
                namespace.to_string(),
            )])
        });
        let policies = self.policies.state();
        Profile::for_namespace(&labels, policies.iter().map(|p| &**p))
    }
}

impl Lookup for ClusterState {
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
