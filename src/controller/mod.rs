//! The controllers: one reconciler per kind, each `read -> build (pure) -> apply (server-side
//! apply, field manager "annexa", owned children) -> status (server-side apply of /status)`.
//!
//! Everything about a kind is in its file (`model_deployment.rs`, ...): its Controller (`controller`:
//! the watches, owned children and mappers from related objects), its `reconcile` and its pure
//! builders. This module holds what they share: [`run`] (the shared RBAC caches and the five
//! Controllers), one instrumented wrapper ([`drive`]: timing, metrics) and one [`error_policy`],
//! and the helpers that write children and status.

pub mod agent_policy;
pub mod compliance_policy;
pub mod conditions;
pub mod error;
pub mod leader;
pub mod metrics;
pub mod model_approval;
pub mod model_deployment;
pub mod reports;
pub mod training_dataset;

use crate::cluster::{ClusterState, Feed};
use error::{Context as _, Doing, Target};
pub use error::{Error, Result};
use futures::{Future, StreamExt};
use jiff::Timestamp;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

/// Field manager of every write Annexa makes.
pub const FIELD_MANAGER: &str = "annexa";
pub use crate::api::MANAGED_BY;

/// What every reconciler shares.
pub struct Context {
    pub client: Client,
    pub state: ClusterState,
    pub metrics: Arc<metrics::ControllerMetrics>,
    /// RBAC caches for the AgentPolicy least-privilege check.
    pub rbac: Option<agent_policy::RbacState>,
    /// Each CompliancePolicy's last scan of its GPU pool nodes.
    pub pool_scans: compliance_policy::PoolScans,
    /// Condition transitions already published as Events.
    pub published: conditions::Published,
}

impl Context {
    pub fn new(
        client: Client,
        state: ClusterState,
        metrics: Arc<metrics::ControllerMetrics>,
    ) -> Self {
        Self {
            client,
            state,
            metrics,
            rbac: None,
            pool_scans: compliance_policy::PoolScans::default(),
            published: conditions::Published::default(),
        }
    }

    /// The evaluation of a governed object under `profile`, against the shared cache: the same
    /// engine call as the webhook's.
    pub fn evaluate(
        &self,
        governed: crate::policy::Governed<'_>,
        profile: &crate::policy::Profile,
        now: Timestamp,
    ) -> crate::policy::Evaluation {
        crate::policy::evaluate(
            governed,
            &crate::policy::Context {
                profile,
                lookup: &*self.state,
                now,
                detail: crate::policy::Detail::Outcomes,
            },
        )
    }

    /// The condition transitions of `object` not yet published as Events by this process.
    pub fn unpublished<'a, K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        transitions: Vec<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    ) -> Vec<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
        let uid = object.meta().uid.as_deref().unwrap_or_default();
        self.published.unpublished(uid, transitions)
    }

    /// Publishes an Event for each transition from the `old` conditions of `object` to the
    /// `new` ones not yet published by this process, noted `TYPE: MESSAGE`, a `Warning` when
    /// `warning` says so.
    pub async fn publish_transitions<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        old: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
        new: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
        warning: impl Fn(&k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition) -> bool,
    ) {
        for c in self.unpublished(object, conditions::transitions(old, new)) {
            self.event(
                object,
                warning(c),
                &c.reason,
                format!("{}: {}", c.type_, c.message),
            )
            .await;
        }
    }

    /// Publishes an Event (events.k8s.io/v1) on the object; failures are logged, never fatal.
    ///
    /// Events are published on condition transitions only, so there is nothing to aggregate:
    /// unlike kube's `Recorder`, nothing is cached (its series cache would hold every event
    /// for six minutes, tens of MiB with thousands of objects).
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        let event = build_event(
            &object.object_ref(&()),
            warning,
            reason,
            note,
            Timestamp::now(),
        );
        let namespace = event.metadata.namespace.as_deref().unwrap_or("default");
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        if let Err(e) = api.create(&PostParams::default(), &event).await {
            tracing::warn!(error = %crate::error::kube_message(&e), reason, "cannot publish event");
        }
    }
}

/// The Event Annexa publishes about `regarding` (reported by controller "annexa").
pub fn build_event(
    regarding: &ObjectReference,
    warning: bool,
    reason: &str,
    note: String,
    now: Timestamp,
) -> K8sEvent {
    K8sEvent {
        metadata: ObjectMeta {
            namespace: regarding.namespace.clone(),
            name: Some(format!(
                "{}.{:x}",
                regarding.name.as_deref().unwrap_or(FIELD_MANAGER),
                now.as_nanosecond()
            )),
            ..ObjectMeta::default()
        },
        action: Some("Reconcile".to_string()),
        reason: Some(reason.chars().take(128).collect()),
        note: Some(note.chars().take(1000).collect()),
        event_time: Some(MicroTime(now)),
        regarding: Some(regarding.clone()),
        reporting_controller: Some(FIELD_MANAGER.to_string()),
        reporting_instance: Some(FIELD_MANAGER.to_string()),
        type_: Some(if warning { "Warning" } else { "Normal" }.to_string()),
        ..K8sEvent::default()
    }
}

/// An owner reference making `owner` the controller of a child (garbage-collected with it;
/// `blockOwnerDeletion`: a foreground deletion of the owner waits for its children).
pub fn owner_reference<K: Resource<DynamicType = ()>>(owner: &K) -> Option<OwnerReference> {
    owner.controller_owner_ref(&()).map(|o| OwnerReference {
        block_owner_deletion: Some(true),
        ..o
    })
}

/// Whether `existing` is controlled by the object that `desired` names as its controller
/// (same UID). An object without that controller reference was not created by Annexa for this
/// owner: it belongs to someone else, whatever its labels say.
pub fn owned_as_desired(existing: &ObjectMeta, desired: &ObjectMeta) -> bool {
    let controller = |m: &ObjectMeta| {
        m.owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| o.uid.clone())
    };
    match (controller(existing), controller(desired)) {
        (Some(have), Some(want)) => have == want,
        _ => false,
    }
}

/// The children that exist under their name but are not owned by their parent, described for
/// the parent's condition. Annexa never adopts: such a child is neither written nor deleted.
pub async fn foreign_children(client: &Client, children: &[Child<'_>]) -> Result<Vec<String>> {
    let mut foreign = Vec::new();
    for child in children {
        if let Some(existing) = child.existing(client).await?
            && !owned_as_desired(&existing, child.desired)
        {
            foreign.push(format!(
                "{} {:?} already exists in namespace {:?} and is not owned by this object",
                child.kind,
                child.desired.name.as_deref().unwrap_or_default(),
                child.desired.namespace.as_deref().unwrap_or_default(),
            ));
        }
    }
    Ok(foreign)
}

/// Whether `existing` is controlled by the object with UID `owner_uid`: the only objects Annexa
/// may withdraw.
pub fn controlled_by(existing: &ObjectMeta, owner_uid: &str) -> bool {
    !owner_uid.is_empty()
        && existing
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.controller == Some(true) && o.uid == owner_uid)
}

/// Withdraws a child Annexa wrote earlier and current policy no longer allows (a Role, a
/// RoleBinding): `existing` (from the cache) is deleted when `owner` controls it, bound to the
/// UID read so that an object recreated under the name in between is left alone. An object of
/// that name Annexa does not own is never touched. Returns whether a deletion was made.
pub async fn withdraw<K, O>(client: &Client, owner: &O, existing: Option<&K>) -> Result<bool>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + DeserializeOwned
        + Clone
        + Debug,
    O: Resource<DynamicType = ()>,
{
    let Some(existing) = existing else {
        return Ok(false);
    };
    let meta = existing.meta();
    if !controlled_by(meta, owner.meta().uid.as_deref().unwrap_or_default()) {
        return Ok(false);
    }
    let (Some(namespace), Some(name)) = (meta.namespace.as_deref(), meta.name.as_deref()) else {
        return Ok(false);
    };
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let params = kube::api::DeleteParams {
        preconditions: meta.uid.clone().map(|uid| kube::api::Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..kube::api::DeleteParams::background()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(true),
        // Gone already, or replaced by another object of that name: nothing of ours is left.
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(false),
        Err(e) => Err(Error::api(Doing::Delete, Target::of(existing), e)),
    }
}

/// A Role or RoleBinding of `namespace`/`name`, from the RBAC caches (read from the API server
/// when the controller runs without them).
pub async fn cached_rbac<K>(
    ctx: &Context,
    store: impl Fn(&agent_policy::RbacState) -> &kube::runtime::reflector::Store<K>,
    namespace: &str,
    name: &str,
) -> Result<Option<Arc<K>>>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + serde::de::DeserializeOwned
        + Clone
        + std::fmt::Debug
        + 'static,
{
    match &ctx.rbac {
        Some(rbac) => {
            Ok(store(rbac).get(&kube::runtime::reflector::ObjectRef::new(name).within(namespace)))
        }
        None => {
            let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
            Ok(api
                .get_opt(name)
                .await
                .doing(Doing::Get, || Target::new::<K>(Some(namespace), name))?
                .map(Arc::new))
        }
    }
}

/// The API server's refusal of a write Annexa made with its own RBAC (403), as the message of
/// the parent's condition: Annexa's ServiceAccount lacks the permission the server names. None
/// for any other error.
pub fn forbidden_to_annexa(error: &Error) -> Option<String> {
    match error {
        Error::Forbidden { .. } => error.status().map(|status| status.message.clone()),
        _ => None,
    }
}

/// The `Ready=False/Forbidden` condition of a parent whose children Annexa's own RBAC does not
/// let it write in this namespace (e.g. `rbac.namespaces` in the chart leaves it out).
pub fn forbidden_condition(what: &str, message: &str) -> conditions::Desired {
    conditions::Desired::new(
        "Ready",
        false,
        "Forbidden",
        format!(
            "Annexa's own RBAC does not allow it to write {what}: {message}; a cluster administrator grants it (see rbac.namespaces and rbac.grantMode in the chart) or the object moves to a namespace where Annexa may act"
        ),
    )
}

/// A child Annexa is about to write: its kind and desired metadata.
pub struct Child<'a> {
    pub kind: &'static str,
    pub desired: &'a ObjectMeta,
    fetch: FetchMeta,
}

/// Reads the metadata of a child by namespace and name (None: absent).
type FetchMeta = for<'c> fn(
    &'c Client,
    &'c str,
    &'c str,
) -> futures::future::BoxFuture<'c, Result<Option<ObjectMeta>>>;

impl<'a> Child<'a> {
    /// A child of type `K`.
    pub fn of<K>(object: &'a K) -> Self
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + k8s_openapi::Resource
            + DeserializeOwned
            + Clone
            + Debug,
    {
        fn fetch<'c, K>(
            client: &'c Client,
            namespace: &'c str,
            name: &'c str,
        ) -> futures::future::BoxFuture<'c, Result<Option<ObjectMeta>>>
        where
            K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
                + DeserializeOwned
                + Clone
                + Debug,
        {
            Box::pin(async move {
                let api: Api<K> = Api::namespaced(client.clone(), namespace);
                Ok(api
                    .get_opt(name)
                    .await
                    .doing(Doing::Get, || Target::new::<K>(Some(namespace), name))?
                    .map(|o| o.meta().clone()))
            })
        }
        Self {
            kind: <K as k8s_openapi::Resource>::KIND,
            desired: object.meta(),
            fetch: fetch::<K>,
        }
    }

    async fn existing(&self, client: &Client) -> Result<Option<ObjectMeta>> {
        let namespace = self.desired.namespace.as_deref().unwrap_or_default();
        let name = self.desired.name.as_deref().unwrap_or_default();
        (self.fetch)(client, namespace, name).await
    }
}

/// Replaces the `Ready` condition among `desired`.
pub fn replace_ready(desired: &mut Vec<conditions::Desired>, ready: conditions::Desired) {
    desired.retain(|d| d.type_ != "Ready");
    desired.push(ready);
}

/// The `Ready=False` condition of a parent whose children collide with objects it does not own.
pub fn name_conflict(foreign: &[String]) -> conditions::Desired {
    conditions::Desired::new(
        "Ready",
        false,
        "NameConflict",
        format!(
            "{}; Annexa never adopts an object it did not create: nothing was written, rename this object or remove the existing one",
            foreign.join("; ")
        ),
    )
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
    api.patch(&object.name_any(), &params, &Patch::Apply(object))
        .await
        .doing(Doing::Apply, || Target::of(object))
}

/// Merge-patches a namespaced child under the `annexa` field manager: for what server-side
/// apply cannot remove, list items another manager added (see
/// [`model_deployment::foreign_pod_items`]).
pub async fn put_back<K>(client: &Client, live: &K, patch: &serde_json::Value) -> Result<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + DeserializeOwned
        + Clone
        + Debug,
{
    let namespace = live
        .meta()
        .namespace
        .as_deref()
        .ok_or_else(|| Error::Invalid(format!("{} has no namespace", K::kind(&()))))?;
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    api.patch(&live.name_any(), &params, &Patch::Merge(patch))
        .await
        .doing(Doing::Patch, || Target::of(live))
}

/// Server-side applies `status` of an Annexa object (`api` is scoped to its namespace).
pub async fn apply_status<K, S>(api: &Api<K>, object: &K, status: &S) -> Result<()>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
    S: Serialize,
{
    let status = serde_json::to_value(status).map_err(|source| Error::Serialize {
        target: Target::of(object),
        source,
    })?;
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(&object.name_any(), &params, &Patch::Apply(&patch))
        .await
        .doing(Doing::WriteStatus, || Target::of(object))?;
    Ok(())
}

/// The namespace of a namespaced Annexa object (one without cannot be reconciled).
pub fn namespace_of<K: Resource<DynamicType = ()>>(object: &K) -> Result<String> {
    object
        .meta()
        .namespace
        .clone()
        .ok_or_else(|| Error::Invalid(format!("{} without namespace", K::kind(&()))))
}

/// Standard labels of a child.
pub fn child_labels(owner_kind: &str, owner: &str) -> std::collections::BTreeMap<String, String> {
    std::collections::BTreeMap::from([
        (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
        (format!("annexa.dev/{}", owner_kind), owner.to_string()),
    ])
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
        Error::Invalid(_) => Action::await_change(),
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

/// References to the objects, as the controllers key them.
pub fn refs<K>(
    objects: impl IntoIterator<Item = Arc<K>>,
) -> Vec<kube::runtime::reflector::ObjectRef<K>>
where
    K: Resource<DynamicType = ()>,
{
    objects
        .into_iter()
        .map(|o| kube::runtime::reflector::ObjectRef::from_obj(&*o))
        .collect()
}

/// What a kind's Controller may subscribe to besides the shared cache's feeds
/// (`state.feeds`): the RBAC caches the dataset and agent controllers share, the settings
/// every Controller runs with, and the shutdown signal.
pub struct Watches {
    pub client: Client,
    pub state: ClusterState,
    pub roles: Feed<Role>,
    pub role_bindings: Feed<RoleBinding>,
    pub cluster_role_bindings: Feed<ClusterRoleBinding>,
    /// The watch of Annexa's own children, filtered by its label: Annexa never caches the
    /// cluster's other Deployments.
    pub owned: watcher::Config,
    pub config: kube::runtime::controller::Config,
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

/// Runs a kind's Controller with what every kind shares: each reconcile timed and counted
/// under the kind's name, each failure through [`error_policy`], a graceful shutdown (the
/// reconciles in flight finish).
pub fn drive<K, Fut>(
    controller: Controller<K>,
    reconcile: fn(Arc<K>, Arc<Context>) -> Fut,
    ctx: Arc<Context>,
    watches: &Watches,
) -> impl Future<Output = ()> + Send + use<K, Fut>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    Fut: Future<Output = Result<Action>> + Send + 'static,
{
    let mut stop = watches.shutdown.clone();
    controller
        .graceful_shutdown_on(async move {
            let _ = stop.wait_for(|v| *v).await;
        })
        .run(
            move |object, ctx| instrumented(reconcile, object, ctx),
            error_policy,
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
}

/// A kind's reconcile, timed and counted (`annexa_reconciles_total`,
/// `annexa_reconcile_duration_seconds`, labelled with the kind).
async fn instrumented<K, Fut>(
    reconcile: fn(Arc<K>, Arc<Context>) -> Fut,
    object: Arc<K>,
    ctx: Arc<Context>,
) -> Result<Action>
where
    K: Resource<DynamicType = ()>,
    Fut: Future<Output = Result<Action>>,
{
    let started = std::time::Instant::now();
    let result = reconcile(object, ctx.clone()).await;
    ctx.metrics
        .observe(&K::kind(&()), started.elapsed().as_secs_f64());
    result
}

/// After a failed reconcile of any kind: counted by kind and category
/// (`annexa_reconcile_errors_total`), logged, and requeued as [`error_action`] says.
pub fn error_policy<K>(object: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action
where
    K: Resource<DynamicType = ()>,
{
    let kind = K::kind(&());
    ctx.metrics.error(&kind, error.category());
    let name = object.name_any();
    tracing::warn!(
        kind = %kind,
        namespace = object.meta().namespace.as_deref().unwrap_or_default(),
        name = %name,
        error = %error,
        "reconcile failed"
    );
    error_action(error, &name)
}

/// Runs every controller until `shutdown` turns true (in-flight reconciles finish first).
///
/// Annexa's kinds, namespaces and RBAC objects are watched once: each controller is fed from
/// the shared cache ([`crate::cluster::Feed`]) for its own kind and for the objects its
/// decisions read (policies, namespaces, approvals, datasets, bindings), and reconciles the
/// cached object itself, so nothing is held twice. Only the owned children Annexa does not
/// otherwise read (Deployments, Services, NetworkPolicies, ServiceAccounts) have watches of
/// their own, filtered by Annexa's label and without a store: a change to one puts the
/// drift back. An object that does not decode is left out of the cache (and logged), never
/// stops a watch. Each kind's file builds its own Controller (`controller`): its watches,
/// owned children and the mappers from related objects.
pub async fn run(
    client: Client,
    state: ClusterState,
    metrics: Arc<metrics::ControllerMetrics>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let (role_bindings, f1) = crate::cluster::reflect(Api::<RoleBinding>::all(client.clone()));
    let (cluster_role_bindings, f2) =
        crate::cluster::reflect(Api::<ClusterRoleBinding>::all(client.clone()));
    let (roles, f3) = crate::cluster::reflect(Api::<Role>::all(client.clone()));
    let (cluster_roles, f4) = crate::cluster::reflect(Api::<ClusterRole>::all(client.clone()));
    let rbac_watches = tokio::spawn(async move {
        futures::join!(f1, f2, f3, f4);
    });
    let mut context = Context::new(client.clone(), state.clone(), metrics);
    let rbac = agent_policy::RbacState {
        role_bindings: role_bindings.store(),
        cluster_role_bindings: cluster_role_bindings.store(),
        roles: roles.store(),
        cluster_roles: cluster_roles.store(),
    };
    context.rbac = Some(rbac.clone());
    let ctx = Arc::new(context);
    // Least privilege judged against half-listed RBAC caches would report phantom results.
    let listed = async {
        let _ = futures::join!(
            rbac.role_bindings.wait_until_ready(),
            rbac.cluster_role_bindings.wait_until_ready(),
            rbac.roles.wait_until_ready(),
            rbac.cluster_roles.wait_until_ready()
        );
    };
    let mut stopping = shutdown.clone();
    tokio::select! {
        _ = listed => {}
        _ = stopping.wait_for(|v| *v) => {
            rbac_watches.abort();
            return;
        }
    }

    let watches = Watches {
        client,
        state,
        roles,
        role_bindings,
        cluster_role_bindings,
        owned: watcher::Config::default().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1)),
        config: kube::runtime::controller::Config::default().concurrency(4),
        shutdown,
    };
    futures::join!(
        model_deployment::controller(ctx.clone(), &watches),
        training_dataset::controller(ctx.clone(), &watches),
        agent_policy::controller(ctx.clone(), &watches),
        model_approval::controller(ctx.clone(), &watches),
        compliance_policy::controller(ctx, &watches),
    );
    rbac_watches.abort();
}

#[cfg(test)]
mod tests;

/// The pods of a namespace that are running or about to (not Succeeded or Failed), reduced to
/// what the workload rules read: what the background audits of datasets and agents hold
/// against their rules. Pods that do not decode are skipped (logged).
pub async fn running_pods(
    client: &Client,
    namespace: &str,
) -> Result<Vec<crate::policy::workload::Workload>> {
    use k8s_openapi::api::core::v1::Pod;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods
        .list(&kube::api::ListParams::default())
        .await
        .doing(Doing::List, || Target::list::<Pod>(Some(namespace)))?;
    Ok(list
        .items
        .into_iter()
        .filter(|pod| {
            !matches!(
                pod.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            )
        })
        .filter_map(|pod| {
            let value = serde_json::to_value(&pod).ok()?;
            crate::decode::workload::from_object("Pod", &value)
                .map_err(|e| {
                    tracing::debug!(namespace, pod = %pod.name_any(), error = %e, "pod skipped by the audit")
                })
                .ok()
        })
        .collect())
}
