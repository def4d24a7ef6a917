//! The OpenReports writer: keeps one report per namespace (and one cluster report) in step
//! with the governed objects, for the cluster UIs that read the report CRDs.
//!
//! Runs with the controllers (on the leader). It follows the shared cache's change feeds,
//! waits for a short quiet period, re-evaluates the objects of the namespaces that changed
//! (every namespace when a policy or a namespace changes, and all of them every few minutes
//! for time-bound results), and server-side applies a report only when its content changed.
//! A namespace whose objects are all gone keeps an empty report until the namespace goes
//! (the report is owned by its Namespace). When the report CRD is not installed the writer
//! logs it once, counts it in `annexa_reports_skipped_total` and checks again at each resync:
//! Annexa keeps working either way.

use super::{Context, FIELD_MANAGER, MANAGED_BY};
use crate::api::{AgentPolicy, ModelApproval, ModelDeployment, TrainingDataset};
use crate::cluster::ClusterState;
use crate::evidence::openreports::{self, Entry, REPORT_NAME, ReportApi};
use crate::policy::{self, Evaluation, Governed};
use futures::StreamExt;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::ApiResource;
use kube::{Client, Resource, ResourceExt};
use std::collections::{BTreeMap, BTreeSet, hash_map::DefaultHasher};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

/// Quiet period after a change before reports are rebuilt (changes arrive in bursts).
const DEBOUNCE: Duration = Duration::from_millis(500);
/// Every namespace is re-evaluated this often (approval and retention expiry move with time).
const RESYNC: Duration = Duration::from_secs(300);

/// What changed: one namespace, or everything.
#[derive(Clone, Debug)]
enum Dirty {
    Namespace(String),
    All,
}

fn resource(api: ReportApi, cluster: bool) -> ApiResource {
    let (kind, plural) = if cluster {
        api.cluster()
    } else {
        api.namespaced()
    };
    ApiResource {
        group: api.group().to_string(),
        version: api.version().to_string(),
        api_version: api.api_version(),
        kind: kind.to_string(),
        plural: plural.to_string(),
    }
}

/// Whether the API server serves the namespaced report kind.
async fn crd_installed(client: &Client, api: ReportApi) -> bool {
    match client.list_api_group_resources(&api.api_version()).await {
        Ok(list) => list.resources.iter().any(|r| r.name == api.namespaced().1),
        Err(_) => false,
    }
}

fn fingerprint(value: &serde_json::Value) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.to_string().hash(&mut hasher);
    hasher.finish()
}

/// The evaluations of every governed object of one namespace, from the shared cache.
fn evaluate_namespace(
    state: &ClusterState,
    namespace: &str,
    now: jiff::Timestamp,
) -> Vec<(Evaluation, String, Option<String>)> {
    let profile = state.profile(namespace);
    let ctx = policy::Context {
        profile: &profile,
        lookup: &**state,
        now,
        detail: policy::Detail::Outcomes,
    };
    let in_ns = |ns: Option<&str>| ns == Some(namespace);
    let mut out = Vec::new();
    for d in state
        .datasets
        .state()
        .iter()
        .filter(|o| in_ns(o.metadata.namespace.as_deref()))
    {
        out.push((
            policy::evaluate(Governed::Dataset(d), &ctx),
            TrainingDataset::api_version(&()).to_string(),
            d.metadata.uid.clone(),
        ));
    }
    for m in state
        .models
        .state()
        .iter()
        .filter(|o| in_ns(o.metadata.namespace.as_deref()))
    {
        out.push((
            policy::evaluate(Governed::Model(m), &ctx),
            ModelDeployment::api_version(&()).to_string(),
            m.metadata.uid.clone(),
        ));
    }
    for a in state
        .approvals
        .state()
        .iter()
        .filter(|o| in_ns(o.metadata.namespace.as_deref()))
    {
        out.push((
            policy::evaluate(Governed::Approval(a), &ctx),
            ModelApproval::api_version(&()).to_string(),
            a.metadata.uid.clone(),
        ));
    }
    for a in state
        .agents
        .state()
        .iter()
        .filter(|o| in_ns(o.metadata.namespace.as_deref()))
    {
        out.push((
            policy::evaluate(Governed::Agent(a), &ctx),
            AgentPolicy::api_version(&()).to_string(),
            a.metadata.uid.clone(),
        ));
    }
    out
}

/// Namespaces holding at least one governed object.
fn governed_namespaces(state: &ClusterState) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    set.extend(state.datasets.state().iter().filter_map(|o| o.namespace()));
    set.extend(state.models.state().iter().filter_map(|o| o.namespace()));
    set.extend(state.approvals.state().iter().filter_map(|o| o.namespace()));
    set.extend(state.agents.state().iter().filter_map(|o| o.namespace()));
    set
}

/// The desired report of a namespace.
fn build_namespace_report(
    state: &ClusterState,
    api: ReportApi,
    namespace: &str,
    now: jiff::Timestamp,
) -> serde_json::Value {
    let evaluated = evaluate_namespace(state, namespace, now);
    let profile = state.profile(namespace);
    let action = |control: &str| profile.action(control);
    let entries: Vec<Entry<'_>> = evaluated
        .iter()
        .map(|(evaluation, api_version, uid)| Entry {
            evaluation,
            api_version: api_version.clone(),
            uid: uid.clone(),
            policies: &profile.policies,
            action: &action,
        })
        .collect();
    let uid = state
        .namespaces
        .get(&kube::runtime::reflector::ObjectRef::new(namespace))
        .and_then(|ns| ns.metadata.uid.clone());
    openreports::namespace_report(api, namespace, uid.as_deref(), &entries)
}

fn build_cluster_report(state: &ClusterState, api: ReportApi) -> serde_json::Value {
    let mut policies: Vec<(String, Option<String>, Vec<String>)> = state
        .policies
        .state()
        .iter()
        .map(|p| {
            (
                p.name_any(),
                p.metadata.uid.clone(),
                p.status
                    .as_ref()
                    .map(|s| s.ungoverned_gpu_pods.clone())
                    .unwrap_or_default(),
            )
        })
        .collect();
    policies.sort();
    openreports::cluster_report(api, &policies)
}

struct Writer {
    client: Client,
    api: ReportApi,
    /// Fingerprint of the last report written per namespace ("" for the cluster report).
    written: BTreeMap<String, u64>,
    available: Option<bool>,
}

impl Writer {
    async fn apply(&mut self, key: &str, report: serde_json::Value, ctx: &Context) {
        let print = fingerprint(&report);
        if self.written.get(key) == Some(&print) {
            return;
        }
        let cluster = key.is_empty();
        let ar = resource(self.api, cluster);
        let api: Api<DynamicObject> = if cluster {
            Api::all_with(self.client.clone(), &ar)
        } else {
            Api::namespaced_with(self.client.clone(), key, &ar)
        };
        let params = PatchParams::apply(FIELD_MANAGER).force();
        match api
            .patch(REPORT_NAME, &params, &Patch::Apply(&report))
            .await
        {
            Ok(_) => {
                self.written.insert(key.to_string(), print);
                ctx.metrics.report_written(&ar.kind);
            }
            Err(e) => {
                tracing::warn!(error = %crate::error::kube_message(&e), kind = %ar.kind, namespace = key, "cannot write the report");
                ctx.metrics.error(&ar.kind, "api");
            }
        }
    }

    /// Namespaces that hold a report of ours from an earlier run (to empty them if needed).
    async fn existing(&self) -> BTreeSet<String> {
        let api: Api<DynamicObject> =
            Api::all_with(self.client.clone(), &resource(self.api, false));
        let params = ListParams::default().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1));
        match api.list_metadata(&params).await {
            Ok(list) => list.items.iter().filter_map(|o| o.namespace()).collect(),
            Err(e) => {
                tracing::warn!(error = %crate::error::kube_message(&e), "cannot list existing reports");
                BTreeSet::new()
            }
        }
    }

    /// Checks the CRD (when unknown or absent); true when reports can be written.
    async fn check_available(&mut self, ctx: &Context) -> bool {
        if self.available == Some(true) {
            return true;
        }
        let now = crd_installed(&self.client, self.api).await;
        let (kind, plural) = self.api.namespaced();
        if now {
            tracing::info!(api = %self.api.api_version(), kind, "writing a compliance report per namespace");
        } else {
            if self.available != Some(false) {
                tracing::info!(
                    api = %self.api.api_version(),
                    kind,
                    "the {plural}.{} CRD is not installed: compliance reports are skipped (checked again every {}s)",
                    self.api.group(),
                    RESYNC.as_secs()
                );
            }
            ctx.metrics.report_skipped(kind);
        }
        self.available = Some(now);
        now
    }
}

/// Runs the writer until `shutdown` turns true.
pub async fn run(
    ctx: Arc<Context>,
    api: ReportApi,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let state = ctx.state.clone();
    let feeds = &state.feeds;
    let namespace_of = |ns: Option<String>| ns.map(Dirty::Namespace).unwrap_or(Dirty::All);
    let mut changes = futures::stream::select_all(vec![
        feeds
            .datasets
            .updates()
            .map(move |o| namespace_of(o.namespace()))
            .boxed(),
        feeds
            .models
            .updates()
            .map(move |o| namespace_of(o.namespace()))
            .boxed(),
        feeds
            .approvals
            .updates()
            .map(move |o| namespace_of(o.namespace()))
            .boxed(),
        feeds
            .agents
            .updates()
            .map(move |o| namespace_of(o.namespace()))
            .boxed(),
        feeds.policies.updates().map(|_| Dirty::All).boxed(),
        feeds.namespaces.updates().map(|_| Dirty::All).boxed(),
    ]);
    let mut writer = Writer {
        client: ctx.client.clone(),
        api,
        written: BTreeMap::new(),
        available: None,
    };
    let mut known: BTreeSet<String> = BTreeSet::new();
    let mut dirty_all = true;
    let mut dirty: BTreeSet<String> = BTreeSet::new();
    let mut resync = tokio::time::interval(RESYNC);
    resync.tick().await;
    loop {
        let was_available = writer.available == Some(true);
        if (dirty_all || !dirty.is_empty()) && writer.check_available(&ctx).await {
            // The CRD just appeared (or this is the first pass): every namespace is due.
            dirty_all |= !was_available;
            if known.is_empty() {
                known = writer.existing().await;
            }
            let now = jiff::Timestamp::now();
            let governed = governed_namespaces(&state);
            let targets: BTreeSet<String> = if dirty_all {
                governed.union(&known).cloned().collect()
            } else {
                std::mem::take(&mut dirty)
            };
            for ns in targets {
                let report = build_namespace_report(&state, api, &ns, now);
                writer.apply(&ns, report, &ctx).await;
                known.insert(ns);
            }
            writer
                .apply("", build_cluster_report(&state, api), &ctx)
                .await;
            dirty_all = false;
            dirty.clear();
        }
        tokio::select! {
            _ = shutdown.wait_for(|v| *v) => return,
            _ = resync.tick() => dirty_all = true,
            change = changes.next() => {
                let Some(first) = change else { return };
                let mut pending = vec![first];
                // Gather the rest of the burst.
                let quiet = tokio::time::sleep(DEBOUNCE);
                tokio::pin!(quiet);
                loop {
                    tokio::select! {
                        _ = &mut quiet => break,
                        more = changes.next() => match more {
                            Some(d) => pending.push(d),
                            None => break,
                        },
                    }
                }
                for d in pending {
                    match d {
                        Dirty::All => dirty_all = true,
                        Dirty::Namespace(ns) => { dirty.insert(ns); }
                    }
                }
            }
        }
    }
}
