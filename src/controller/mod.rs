//! The controllers: one reconciler per kind, each `read -> build (pure) -> apply (server-side
//! apply, field manager "annexa", owned children) -> status (server-side apply of /status)`.

pub mod agent_policy;
pub mod compliance_policy;
pub mod conditions;
pub mod leader;
pub mod metrics;
pub mod model_approval;
pub mod model_deployment;
pub mod training_dataset;

use crate::cluster::ClusterState;
use crate::error::{Error, Result};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

/// Field manager of every write Annexa makes.
pub const FIELD_MANAGER: &str = "annexa";
/// Label on every object Annexa creates.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "annexa");

/// What every reconciler shares.
pub struct Context {
    pub client: Client,
    pub state: ClusterState,
    pub recorder: Recorder,
    pub metrics: Arc<metrics::ControllerMetrics>,
    /// RBAC caches for the AgentPolicy least-privilege check.
    pub rbac: Option<agent_policy::RbacState>,
}

impl Context {
    pub fn new(
        client: Client,
        state: ClusterState,
        metrics: Arc<metrics::ControllerMetrics>,
    ) -> Self {
        let recorder = Recorder::new(client.clone(), Reporter::from("annexa"));
        Self {
            client,
            state,
            recorder,
            metrics,
            rbac: None,
        }
    }

    /// Publishes an Event on the object; failures are logged, never fatal.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.chars().take(128).collect(),
            note: Some(note.chars().take(1000).collect()),
            action: "Reconcile".to_string(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &object.object_ref(&())).await {
            tracing::warn!(error = %e, "cannot publish event");
        }
    }
}

/// An owner reference making `owner` the controller of a child (garbage-collected with it).
pub fn owner_reference<K: Resource<DynamicType = ()>>(owner: &K) -> Option<OwnerReference> {
    owner.controller_owner_ref(&())
}

/// Server-side applies a namespaced child under the `annexa` field manager, taking ownership
/// of fields someone changed by hand (drift is put back, A.8.9).
pub async fn apply<K>(client: &Client, object: &K) -> Result<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Serialize
        + DeserializeOwned
        + Clone
        + Debug,
{
    let namespace = object
        .meta()
        .namespace
        .as_deref()
        .ok_or_else(|| Error::Invalid(format!("{} has no namespace", K::kind(&()))))?;
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    Ok(api
        .patch(&object.name_any(), &params, &Patch::Apply(object))
        .await?)
}

/// Server-side applies `status` of an Annexa object (`api` is scoped to its namespace).
pub async fn apply_status<K>(api: &Api<K>, object: &K, status: serde_json::Value) -> Result<()>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(&object.name_any(), &params, &Patch::Apply(&patch))
        .await?;
    Ok(())
}

/// Standard labels of a child.
pub fn child_labels(owner_kind: &str, owner: &str) -> std::collections::BTreeMap<String, String> {
    std::collections::BTreeMap::from([
        (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
        (format!("annexa.dev/{}", owner_kind), owner.to_string()),
    ])
}

/// The object a reconcile works on, or an `Invalid` error (retried when the object changes)
/// naming the object and what does not decode: one malformed object never stops a watch.
pub fn decoded<K: Resource<DynamicType = ()>>(
    guard: &kube::core::DeserializeGuard<K>,
) -> Result<&K> {
    match &guard.0 {
        Ok(object) => Ok(object),
        Err(invalid) => Err(Error::Invalid(format!(
            "{} {}/{} does not decode: {}",
            K::kind(&()),
            invalid.metadata.namespace.as_deref().unwrap_or_default(),
            invalid.metadata.name.as_deref().unwrap_or_default(),
            invalid.error
        ))),
    }
}

/// The conditions an object's status holds now (empty before its first reconcile).
pub fn old_conditions<K: crate::api::HasCommonStatus>(
    object: &K,
) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    object
        .common_status()
        .map(|s| s.conditions.clone())
        .unwrap_or_default()
}

/// Requeue after an error: invalid objects wait for a change; API errors back off with jitter.
pub fn error_action(error: &Error, attempt_hint: &str) -> Action {
    match error {
        Error::Invalid(_) | Error::Input(_) => Action::await_change(),
        _ => {
            // Jitter spreads retries of many objects failing at once (e.g. API server restart).
            let jitter = attempt_hint
                .bytes()
                .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
                % 10;
            Action::requeue(Duration::from_secs(10 + jitter))
        }
    }
}

/// A requeue no later than `at` (and at least hourly, to re-evaluate on time).
pub fn requeue_until(at: Option<jiff::Timestamp>, now: jiff::Timestamp) -> Action {
    let hour = Duration::from_secs(3600);
    match at {
        Some(at) if at > now => {
            let secs = at.duration_since(now).as_secs().max(1) as u64;
            Action::requeue(Duration::from_secs(secs + 1).min(hour))
        }
        _ => Action::requeue(hour),
    }
}

/// References to the objects, as the guarded controllers key them.
fn refs<K>(
    objects: impl IntoIterator<Item = Arc<K>>,
) -> Vec<kube::runtime::reflector::ObjectRef<kube::core::DeserializeGuard<K>>>
where
    K: Resource<DynamicType = ()>,
{
    objects
        .into_iter()
        .map(|o| {
            let r = kube::runtime::reflector::ObjectRef::new(&o.name_any());
            match o.namespace() {
                Some(ns) => r.within(&ns),
                None => r,
            }
        })
        .collect()
}

/// Runs every controller until `shutdown` turns true (in-flight reconciles finish first).
///
/// Each controller watches its kind through a `DeserializeGuard` (an object that does not
/// decode is reported and skipped, never stops the watch) and is triggered by its owned
/// children (drift is put back) and, through mappers over the shared cache, by the objects its
/// decisions read: policies, namespaces, approvals, datasets, bindings.
pub async fn run(
    client: Client,
    state: ClusterState,
    metrics: Arc<metrics::ControllerMetrics>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    use crate::api::{
        AgentPolicy, CompliancePolicy, ModelApproval, ModelDeployment, TrainingDataset,
    };
    use futures::StreamExt;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{Namespace, Service, ServiceAccount};
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
    use kube::core::{DeserializeGuard, PartialObjectMeta};
    use kube::runtime::reflector::ObjectRef;
    use kube::runtime::{Controller, controller::Config, watcher};

    let (role_bindings, f1) = crate::cluster::reflect(Api::<RoleBinding>::all(client.clone()));
    let (cluster_role_bindings, f2) =
        crate::cluster::reflect(Api::<ClusterRoleBinding>::all(client.clone()));
    let (roles, f3) = crate::cluster::reflect(Api::<Role>::all(client.clone()));
    let (cluster_roles, f4) = crate::cluster::reflect(Api::<ClusterRole>::all(client.clone()));
    let rbac_watches = tokio::spawn(async move {
        futures::join!(f1, f2, f3, f4);
    });
    let mut context = Context::new(client.clone(), state.clone(), metrics);
    context.rbac = Some(agent_policy::RbacState {
        role_bindings,
        cluster_role_bindings,
        roles,
        cluster_roles,
    });
    let ctx = Arc::new(context);

    let stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    // Children are watched by label: Annexa never caches the cluster's other Deployments.
    let owned = watcher::Config::default().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1));
    let all = watcher::Config::default();
    let config = Config::default().concurrency(4);

    let s = state.clone();
    let s2 = state.clone();
    let s3 = state.clone();
    let md = Controller::new(
        Api::<DeserializeGuard<ModelDeployment>>::all(client.clone()),
        all.clone(),
    )
    .with_config(config.clone())
    .owns(Api::<Deployment>::all(client.clone()), owned.clone())
    .owns(Api::<Service>::all(client.clone()), owned.clone())
    .owns(Api::<NetworkPolicy>::all(client.clone()), owned.clone())
    .owns(Api::<ServiceAccount>::all(client.clone()), owned.clone())
    .watches(
        Api::<ModelApproval>::all(client.clone()),
        all.clone(),
        |a| {
            a.metadata.namespace.clone().map(|ns| {
                ObjectRef::<DeserializeGuard<ModelDeployment>>::new(&a.spec.model_deployment)
                    .within(&ns)
            })
        },
    )
    .watches(
        Api::<TrainingDataset>::all(client.clone()),
        all.clone(),
        move |d| {
            let ns = d.namespace().unwrap_or_default();
            let name = d.name_any();
            refs(s.models.state_filter(|m| {
                m.metadata.namespace.as_deref() == Some(ns.as_str())
                    && m.spec.training_datasets.contains(&name)
            }))
        },
    )
    .watches(
        Api::<CompliancePolicy>::all(client.clone()),
        all.clone(),
        move |_| refs(s2.models.state()),
    )
    .watches(
        Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
        all.clone(),
        move |ns| {
            let ns = ns.name_any();
            refs(
                s3.models
                    .state_filter(|m| m.metadata.namespace.as_deref() == Some(ns.as_str())),
            )
        },
    )
    .graceful_shutdown_on(stop(shutdown.clone()))
    .run(
        model_deployment::reconcile,
        model_deployment::error_policy,
        ctx.clone(),
    )
    .for_each(|_| futures::future::ready(()));

    let s = state.clone();
    let s2 = state.clone();
    let td = Controller::new(
        Api::<DeserializeGuard<TrainingDataset>>::all(client.clone()),
        all.clone(),
    )
    .with_config(config.clone())
    .owns(Api::<Role>::all(client.clone()), owned.clone())
    .owns(Api::<RoleBinding>::all(client.clone()), owned.clone())
    .watches(
        Api::<TrainingDataset>::all(client.clone()),
        all.clone(),
        move |parent| {
            let ns = parent.namespace().unwrap_or_default();
            let name = parent.name_any();
            refs(s.datasets.state_filter(|d| {
                d.metadata.namespace.as_deref() == Some(ns.as_str())
                    && d.spec.derived_from.contains(&name)
            }))
        },
    )
    .watches(
        Api::<CompliancePolicy>::all(client.clone()),
        all.clone(),
        move |_| refs(s2.datasets.state()),
    )
    .graceful_shutdown_on(stop(shutdown.clone()))
    .run(
        training_dataset::reconcile,
        training_dataset::error_policy,
        ctx.clone(),
    )
    .for_each(|_| futures::future::ready(()));

    let bound_agents = |subjects: Option<Vec<k8s_openapi::api::rbac::v1::Subject>>,
                        state: &ClusterState| {
        let subjects = subjects.unwrap_or_default();
        refs(state.agents.state_filter(|a| {
            subjects.iter().any(|s| {
                s.kind == "Group"
                    || (s.name == a.spec.service_account_name
                        && s.namespace.as_deref() == a.metadata.namespace.as_deref())
            })
        }))
    };
    let s = state.clone();
    let s2 = state.clone();
    let s3 = state.clone();
    let ap = Controller::new(
        Api::<DeserializeGuard<AgentPolicy>>::all(client.clone()),
        all.clone(),
    )
    .with_config(config.clone())
    .owns(Api::<ServiceAccount>::all(client.clone()), owned.clone())
    .owns(Api::<Role>::all(client.clone()), owned.clone())
    .owns(Api::<RoleBinding>::all(client.clone()), owned.clone())
    .owns(Api::<NetworkPolicy>::all(client.clone()), owned.clone())
    .watches(
        Api::<RoleBinding>::all(client.clone()),
        all.clone(),
        move |rb| bound_agents(rb.subjects, &s),
    )
    .watches(
        Api::<ClusterRoleBinding>::all(client.clone()),
        all.clone(),
        move |crb| bound_agents(crb.subjects, &s2),
    )
    .watches(
        Api::<CompliancePolicy>::all(client.clone()),
        all.clone(),
        move |_| refs(s3.agents.state()),
    )
    .graceful_shutdown_on(stop(shutdown.clone()))
    .run(
        agent_policy::reconcile,
        agent_policy::error_policy,
        ctx.clone(),
    )
    .for_each(|_| futures::future::ready(()));

    let s = state.clone();
    let mapr = Controller::new(
        Api::<DeserializeGuard<ModelApproval>>::all(client.clone()),
        all.clone(),
    )
    .with_config(config.clone())
    .watches(
        Api::<ModelDeployment>::all(client.clone()),
        all.clone(),
        move |m| {
            let ns = m.namespace().unwrap_or_default();
            let name = m.name_any();
            refs(s.approvals.state_filter(|a| {
                a.metadata.namespace.as_deref() == Some(ns.as_str())
                    && a.spec.model_deployment == name
            }))
        },
    )
    .graceful_shutdown_on(stop(shutdown.clone()))
    .run(
        model_approval::reconcile,
        model_approval::error_policy,
        ctx.clone(),
    )
    .for_each(|_| futures::future::ready(()));

    let s = state.clone();
    let cpol = Controller::new(
        Api::<DeserializeGuard<CompliancePolicy>>::all(client.clone()),
        all.clone(),
    )
    .with_config(config)
    .watches(
        Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
        all,
        move |_| refs(s.policies.state()),
    )
    .graceful_shutdown_on(stop(shutdown))
    .run(
        compliance_policy::reconcile,
        compliance_policy::error_policy,
        ctx,
    )
    .for_each(|_| futures::future::ready(()));

    futures::join!(md, td, ap, mapr, cpol);
    rbac_watches.abort();
}

#[cfg(test)]
mod tests;
