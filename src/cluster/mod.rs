//! The cluster as Annexa reads it: reflector stores of every object the rules cross-reference,
//! shared by the admission webhook and the controllers, with a [`Lookup`] over them and a cache
//! of namespace profiles.
//!
//! Each kind is watched once and held once: the controllers do not watch or cache Annexa's
//! kinds again, they subscribe to a [`Feed`] of the shared store's changes (see
//! `controller::run`).
//!
//! Memory: managedFields and `kubectl.kubernetes.io/last-applied-configuration` (a second copy
//! of the object) are pruned from every cached object, `status.controls` from Annexa's own, and
//! namespaces are cached as metadata only (their labels are all the rules need). For the GPU
//! rules, ResourceClaims and ResourceClaimTemplates are cached with only the DeviceClass names
//! of their requests, and Nodes with only their name, labels and taints (see [`GpuStores`]).

use crate::api::{
    AgentPolicy, CompliancePolicy, HasCommonStatus, ModelApproval, ModelDeployment, TrainingDataset,
};
use crate::policy::{Lookup, Profile, dataset_read_keys};
use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::{Namespace, Node, NodeSpec};
use k8s_openapi::api::resource::v1::{
    DeviceClaim, DeviceRequest, DeviceSubRequest, ExactDeviceRequest, ResourceClaim,
    ResourceClaimSpec, ResourceClaimTemplate,
};
use kube::api::{Api, PartialObjectMeta};
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use std::collections::{BTreeMap, HashMap, HashSet, hash_map::DefaultHasher};
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::broadcast;

mod profiles;

pub use profiles::ProfileCache;

/// Changes buffered per kind for a subscriber that falls behind; past that the subscriber is
/// resynced from the store (every cached object once more).
const FEED_BUFFER: usize = 1024;

/// The annotation `kubectl apply` writes: a full second copy of the object, read by no rule.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops what no rule and no controller reads before an object is cached.
pub(crate) fn prune<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// [`prune`], and for Annexa's kinds `status.controls` too: the controllers write it whole on
/// every reconcile and nothing reads it back from the cache (`annexa report` asks the API).
pub(crate) fn prune_governed<K: Resource + HasCommonStatus>(object: &mut K) {
    prune(object);
    if let Some(status) = object.common_status_mut() {
        status.controls = Vec::new();
    }
}

/// A key an object is found by besides its name: `(what, namespace, name)`, e.g.
/// `("secret", "ml", "claims-s3-reader")` for the datasets whose credentials are that Secret.
pub type IndexKey = (&'static str, String, String);

/// A secondary index over a cached kind, kept current by the kind's [`Feed`] as watch events
/// arrive, so that a decision finds objects by key rather than by scanning the store.
/// Answers are read back from the store and checked against the key, so the index can only
/// narrow a lookup, never answer with an object that no longer matches.
pub struct Index<K: Resource<DynamicType = ()>> {
    keys: fn(&K) -> Vec<IndexKey>,
    entries: RwLock<IndexEntries<K>>,
}

struct IndexEntries<K: Resource<DynamicType = ()>> {
    objects: HashMap<IndexKey, HashSet<ObjectRef<K>>>,
    keys_of: HashMap<ObjectRef<K>, Vec<IndexKey>>,
}

impl<K: Resource<DynamicType = ()>> Default for IndexEntries<K> {
    fn default() -> Self {
        Self {
            objects: HashMap::new(),
            keys_of: HashMap::new(),
        }
    }
}

impl<K: Resource<DynamicType = ()> + Clone> Index<K> {
    pub fn new(keys: fn(&K) -> Vec<IndexKey>) -> Self {
        Self {
            keys,
            entries: RwLock::new(IndexEntries::default()),
        }
    }

    /// An index of every object in the store now.
    pub fn of(store: &Store<K>, keys: fn(&K) -> Vec<IndexKey>) -> Self {
        let index = Self::new(keys);
        index.rebuild(&store.state());
        index
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, IndexEntries<K>> {
        // A panic elsewhere while holding the lock leaves the maps whole (each change is
        // a few inserts and removes): keep serving from them.
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }

    fn unlink(entries: &mut IndexEntries<K>, object: &ObjectRef<K>) {
        for key in entries.keys_of.remove(object).unwrap_or_default() {
            if let Some(refs) = entries.objects.get_mut(&key) {
                refs.remove(object);
                if refs.is_empty() {
                    entries.objects.remove(&key);
                }
            }
        }
    }

    fn link(&self, entries: &mut IndexEntries<K>, object: &K) {
        let reference = ObjectRef::from_obj(object);
        let keys = (self.keys)(object);
        for key in &keys {
            entries
                .objects
                .entry(key.clone())
                .or_default()
                .insert(reference.clone());
        }
        if !keys.is_empty() {
            entries.keys_of.insert(reference, keys);
        }
    }

    /// An object was created or changed.
    pub fn upsert(&self, object: &K) {
        let mut entries = self.write();
        Self::unlink(&mut entries, &ObjectRef::from_obj(object));
        self.link(&mut entries, object);
    }

    /// An object was deleted.
    pub fn remove(&self, object: &K) {
        Self::unlink(&mut self.write(), &ObjectRef::from_obj(object));
    }

    /// The store was relisted: index exactly what it holds.
    pub fn rebuild(&self, objects: &[Arc<K>]) {
        let mut entries = IndexEntries::default();
        for object in objects {
            self.link(&mut entries, object);
        }
        *self.write() = entries;
    }

    /// The objects of the store indexed under `key`.
    pub fn get(&self, store: &Store<K>, key: &IndexKey) -> Vec<Arc<K>> {
        let refs: Vec<ObjectRef<K>> = {
            let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
            match entries.objects.get(key) {
                Some(refs) => refs.iter().cloned().collect(),
                None => return Vec::new(),
            }
        };
        let mut found: Vec<Arc<K>> = refs
            .iter()
            .filter_map(|r| store.get(r))
            .filter(|o| (self.keys)(o).contains(key))
            .collect();
        // Stable answers whatever the hash order.
        found.sort_by(|a, b| a.meta().name.cmp(&b.meta().name));
        found
    }
}

/// Datasets by the Secret and the claim they are read through.
pub fn dataset_keys(dataset: &TrainingDataset) -> Vec<IndexKey> {
    let (secret, claim) = dataset_read_keys(dataset);
    secret
        .map(|(ns, name)| ("secret", ns, name))
        .into_iter()
        .chain(claim.map(|(ns, name)| ("claim", ns, name)))
        .collect()
}

/// AgentPolicies by namespace.
pub fn agent_keys(agent: &AgentPolicy) -> Vec<IndexKey> {
    vec![(
        "namespace",
        agent.metadata.namespace.clone().unwrap_or_default(),
        String::new(),
    )]
}

/// The changes of one cached kind, for the controllers: every object applied to or deleted
/// from the shared store, in order, as the `Arc` the store holds (no copy). Controllers
/// subscribe when they start (on the leader only), so a replica that only serves the webhook
/// pays nothing for it.
pub struct Feed<K: Resource<DynamicType = ()> + Clone + 'static> {
    store: Store<K>,
    tx: broadcast::Sender<Arc<K>>,
    /// Kept current with the store, when the kind is looked up by key.
    index: Option<Arc<Index<K>>>,
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Clone for Feed<K> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            tx: self.tx.clone(),
            index: self.index.clone(),
        }
    }
}

impl<K> Feed<K>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    pub fn new(store: Store<K>) -> Self {
        let (tx, _) = broadcast::channel(FEED_BUFFER);
        Self {
            store,
            tx,
            index: None,
        }
    }

    /// A feed that also keeps `index` current with the store.
    pub fn with_index(store: Store<K>, index: Arc<Index<K>>) -> Self {
        Self {
            index: Some(index),
            ..Self::new(store)
        }
    }

    /// The shared store this feed reports on.
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// Every object applied or deleted from now on (what [`Feed::changes`] yields after the
    /// objects already cached), for watches that only map changes onto other objects.
    pub fn updates(&self) -> BoxStream<'static, Arc<K>> {
        Self::follow(self.tx.subscribe(), self.store.clone())
    }

    /// Every object in the store now, then every object applied or deleted from now on
    /// (deleted ones as last seen). A subscriber that falls more than the buffer behind gets
    /// every cached object again in place of the changes it missed.
    pub fn changes(&self) -> BoxStream<'static, Arc<K>> {
        let rx = self.tx.subscribe();
        let now = futures::stream::iter(self.store.state());
        now.chain(Self::follow(rx, self.store.clone())).boxed()
    }

    fn follow(rx: broadcast::Receiver<Arc<K>>, store: Store<K>) -> BoxStream<'static, Arc<K>> {
        futures::stream::unfold((rx, store), |(mut rx, store)| async move {
            match rx.recv().await {
                Ok(object) => Some((vec![object], (rx, store))),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!(kind = %K::kind(&()), missed, "change feed fell behind; resyncing from the cache");
                    let all = store.state();
                    Some((all, (rx, store)))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        })
        .flat_map(futures::stream::iter)
        .boxed()
    }

    /// Applies a watch event to the store, then tells the subscribers.
    pub fn apply(&self, writer: &mut Writer<K>, event: watcher::Event<K>) {
        writer.apply_watcher_event(&event);
        if let Some(index) = &self.index {
            match &event {
                watcher::Event::Apply(object) => index.upsert(object),
                watcher::Event::Delete(object) => index.remove(object),
                watcher::Event::InitDone => index.rebuild(&self.store.state()),
                watcher::Event::Init | watcher::Event::InitApply(_) => {}
            }
        }
        if self.tx.receiver_count() == 0 {
            return;
        }
        match event {
            watcher::Event::Apply(object) => {
                if let Some(stored) = self.store.get(&ObjectRef::from_obj(&object)) {
                    let _ = self.tx.send(stored);
                }
            }
            watcher::Event::Delete(object) => {
                let _ = self.tx.send(Arc::new(object));
            }
            // After a relist every object counts as changed (what was deleted during a
            // disconnect is not known; the controllers' periodic requeues cover it).
            watcher::Event::InitDone => {
                for object in self.store.state() {
                    let _ = self.tx.send(object);
                }
            }
            watcher::Event::Init | watcher::Event::InitApply(_) => {}
        }
    }
}

/// One [`Feed`] per kind of the admission context.
pub struct Feeds {
    pub policies: Feed<CompliancePolicy>,
    pub datasets: Feed<TrainingDataset>,
    pub models: Feed<ModelDeployment>,
    pub approvals: Feed<ModelApproval>,
    pub agents: Feed<AgentPolicy>,
    pub namespaces: Feed<PartialObjectMeta<Namespace>>,
}

/// What the GPU rules resolve: the DRA claims and templates pods name and the nodes they pin.
/// Not part of readiness: on a cluster that does not serve `resource.k8s.io/v1` the claim
/// stores stay empty, and a pod naming a claim then counts as requesting GPUs (fail closed).
#[derive(Clone)]
pub struct GpuStores {
    pub claims: Store<ResourceClaim>,
    pub claim_templates: Store<ResourceClaimTemplate>,
    pub nodes: Store<Node>,
}

impl Default for GpuStores {
    /// Empty stores (nothing fills them).
    fn default() -> Self {
        Self {
            claims: reflector::store().0,
            claim_templates: reflector::store().0,
            nodes: reflector::store().0,
        }
    }
}

/// A claim's spec reduced to what the GPU rules read: each request's DeviceClass names.
fn classes_only(spec: &mut Option<ResourceClaimSpec>) {
    let requests = spec
        .take()
        .and_then(|s| s.devices)
        .and_then(|d| d.requests)
        .unwrap_or_default();
    let requests = requests
        .into_iter()
        .map(|r| DeviceRequest {
            name: r.name,
            exactly: r.exactly.map(|e| ExactDeviceRequest {
                device_class_name: e.device_class_name,
                ..ExactDeviceRequest::default()
            }),
            first_available: r.first_available.map(|alternatives| {
                alternatives
                    .into_iter()
                    .map(|a| DeviceSubRequest {
                        name: a.name,
                        device_class_name: a.device_class_name,
                        ..DeviceSubRequest::default()
                    })
                    .collect()
            }),
        })
        .collect();
    *spec = Some(ResourceClaimSpec {
        devices: Some(DeviceClaim {
            requests: Some(requests),
            ..DeviceClaim::default()
        }),
    });
}

/// Keeps a claim's name and requested DeviceClasses (its status holds allocation results).
pub(crate) fn prune_claim(claim: &mut ResourceClaim) {
    prune(claim);
    claim.metadata.labels = None;
    claim.metadata.annotations = None;
    claim.metadata.owner_references = None;
    claim.status = None;
    classes_only(&mut claim.spec);
}

/// Keeps a template's name and requested DeviceClasses.
pub(crate) fn prune_claim_template(template: &mut ResourceClaimTemplate) {
    prune(template);
    template.metadata.labels = None;
    template.metadata.annotations = None;
    if let Some(spec) = template.spec.as_mut() {
        spec.metadata = None;
        classes_only(&mut spec.spec);
    }
}

/// Keeps a node's name, labels and taints (its status lists every image it holds).
pub(crate) fn prune_node(node: &mut Node) {
    prune(node);
    node.metadata.annotations = None;
    node.metadata.owner_references = None;
    node.status = None;
    let taints = node.spec.take().and_then(|s| s.taints);
    node.spec = Some(NodeSpec {
        taints,
        ..NodeSpec::default()
    });
}

/// The admission context over reflector stores. Namespaces are watched as metadata only and
/// managedFields are dropped, to keep memory low.
pub struct StoreContext {
    pub policies: Store<CompliancePolicy>,
    pub datasets: Store<TrainingDataset>,
    pub models: Store<ModelDeployment>,
    pub approvals: Store<ModelApproval>,
    pub agents: Store<AgentPolicy>,
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    /// Claims, templates and nodes for the GPU rules.
    pub gpu: GpuStores,
    /// The stores' changes, for the controllers.
    pub feeds: Feeds,
    /// Datasets by credentials Secret and claim, AgentPolicies by namespace.
    dataset_index: Arc<Index<TrainingDataset>>,
    agent_index: Arc<Index<AgentPolicy>>,
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
        let dataset_index = Arc::new(Index::of(&datasets, dataset_keys));
        let agent_index = Arc::new(Index::of(&agents, agent_keys));
        Self::with_feeds(
            Feeds {
                policies: Feed::new(policies),
                datasets: Feed::with_index(datasets, dataset_index.clone()),
                models: Feed::new(models),
                approvals: Feed::new(approvals),
                agents: Feed::with_index(agents, agent_index.clone()),
                namespaces: Feed::new(namespaces),
            },
            dataset_index,
            agent_index,
        )
    }

    fn with_feeds(
        feeds: Feeds,
        dataset_index: Arc<Index<TrainingDataset>>,
        agent_index: Arc<Index<AgentPolicy>>,
    ) -> Self {
        Self {
            dataset_index,
            agent_index,
            policies: feeds.policies.store(),
            datasets: feeds.datasets.store(),
            models: feeds.models.store(),
            approvals: feeds.approvals.store(),
            agents: feeds.agents.store(),
            namespaces: feeds.namespaces.store(),
            gpu: GpuStores::default(),
            feeds,
            profiles: ProfileCache::default(),
            synced: AtomicBool::new(false),
        }
    }

    /// The same context resolving claims, templates and nodes from these stores.
    pub fn with_gpu_stores(mut self, gpu: GpuStores) -> Self {
        self.gpu = gpu;
        self
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
    /// When several AgentPolicies name the account, the one that governs it: the oldest, as
    /// `annexa check` and the controller decide (`policy::agent_policy::governing_agent`).
    fn agent_for_service_account(&self, namespace: &str, sa: &str) -> Option<Arc<AgentPolicy>> {
        let naming = self
            .agents
            .state_filter(|a| a.spec.service_account_name == sa);
        crate::policy::agent_policy::governing_agent(&naming, namespace, sa)
    }
    fn resource_claim(&self, namespace: &str, name: &str) -> Option<Arc<ResourceClaim>> {
        self.gpu.claims.get(&ObjectRef::new(name).within(namespace))
    }
    fn resource_claim_template(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<ResourceClaimTemplate>> {
        self.gpu
            .claim_templates
            .get(&ObjectRef::new(name).within(namespace))
    }
    fn node(&self, name: &str) -> Option<Arc<Node>> {
        self.gpu.nodes.get(&ObjectRef::new(name))
    }
    fn agents_in(&self, namespace: &str) -> Vec<Arc<AgentPolicy>> {
        self.agent_index.get(
            &self.agents,
            &("namespace", namespace.to_string(), String::new()),
        )
    }
    fn datasets_by_secret(&self, namespace: &str, secret: &str) -> Vec<Arc<TrainingDataset>> {
        self.dataset_index.get(
            &self.datasets,
            &("secret", namespace.to_string(), secret.to_string()),
        )
    }
    fn datasets_by_claim(&self, namespace: &str, claim: &str) -> Vec<Arc<TrainingDataset>> {
        self.dataset_index.get(
            &self.datasets,
            &("claim", namespace.to_string(), claim.to_string()),
        )
    }
}

pub(crate) type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Watches every object of a kind into a shared store (pruned, see [`prune`]); returns its
/// [`Feed`] and the task driving the watch.
pub(crate) fn reflect<K>(api: Api<K>) -> (Feed<K>, Task)
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    reflect_pruned(api, prune::<K>)
}

/// [`reflect`] with a pruning of its own.
pub(crate) fn reflect_pruned<K>(api: Api<K>, pruning: fn(&mut K)) -> (Feed<K>, Task)
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, mut writer) = reflector::store();
    let feed = Feed::new(store);
    let publisher = feed.clone();
    let kind = K::kind(&()).into_owned();
    let stream = watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(pruning)
        .for_each(move |event| {
            match event {
                Ok(event) => publisher.apply(&mut writer, event),
                Err(e) => {
                    tracing::warn!(kind = %kind, error = %crate::error::watch_message(&e), "watch error; retrying with backoff")
                }
            }
            futures::future::ready(())
        });
    (feed, Box::pin(stream))
}

/// Like [`reflect`], for Annexa's own kinds, where an object that does not decode (written
/// before a schema change, or by hand with the webhook down) must not stop the watch: it is
/// logged and left out of the cache (so no controller reconciles it), and every other object
/// stays current.
pub(crate) fn reflect_guarded<K>(client: Client, index: Option<Arc<Index<K>>>) -> (Feed<K>, Task)
where
    K: Resource<DynamicType = ()>
        + HasCommonStatus
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, mut writer) = reflector::store::<K>();
    let feed = match index {
        Some(index) => Feed::with_index(store, index),
        None => Feed::new(store),
    };
    let publisher = feed.clone();
    let kind = K::kind(&()).into_owned();
    let api: Api<DeserializeGuard<K>> = Api::all(client);
    let stream = watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .for_each(move |event| {
            let valid = |guard: DeserializeGuard<K>| match guard.0 {
                Ok(mut object) => {
                    prune_governed(&mut object);
                    Some(object)
                }
                Err(invalid) => {
                    tracing::warn!(
                        kind = %kind,
                        namespace = invalid.metadata.namespace.as_deref().unwrap_or_default(),
                        name = invalid.metadata.name.as_deref().unwrap_or_default(),
                        error = %invalid.error,
                        "object does not decode; left out of the cache and not reconciled until it is fixed"
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
                    tracing::warn!(kind = %kind, error = %crate::error::watch_message(&e), "watch error; retrying with backoff");
                    None
                }
            };
            if let Some(event) = event {
                publisher.apply(&mut writer, event);
            }
            futures::future::ready(())
        });
    (feed, Box::pin(stream))
}

/// Starts watching everything the decisions read. Returns the context and the future that
/// drives the watches (run it on a task; it never ends) and marks the context synced once
/// every store has listed.
pub fn watch(client: Client) -> (Arc<StoreContext>, impl Future<Output = ()> + Send) {
    let dataset_index = Arc::new(Index::new(dataset_keys));
    let agent_index = Arc::new(Index::new(agent_keys));
    let (policies, p) = reflect_guarded::<CompliancePolicy>(client.clone(), None);
    let (datasets, d) = reflect_guarded(client.clone(), Some(dataset_index.clone()));
    let (models, m) = reflect_guarded::<ModelDeployment>(client.clone(), None);
    let (approvals, a) = reflect_guarded::<ModelApproval>(client.clone(), None);
    let (agents, g) = reflect_guarded(client.clone(), Some(agent_index.clone()));
    let (namespaces, n) = reflect(Api::<PartialObjectMeta<Namespace>>::all(client.clone()));
    let (claims, c) = reflect_pruned(Api::<ResourceClaim>::all(client.clone()), prune_claim);
    let (claim_templates, t) = reflect_pruned(
        Api::<ResourceClaimTemplate>::all(client.clone()),
        prune_claim_template,
    );
    let (nodes, o) = reflect_pruned(Api::<Node>::all(client), prune_node);
    let gpu = GpuStores {
        claims: claims.store(),
        claim_templates: claim_templates.store(),
        nodes: nodes.store(),
    };
    let context = Arc::new(
        StoreContext::with_feeds(
            Feeds {
                policies,
                datasets,
                models,
                approvals,
                agents,
                namespaces,
            },
            dataset_index,
            agent_index,
        )
        .with_gpu_stores(gpu),
    );
    let ready = {
        let context = context.clone();
        async move {
            let _ = context.policies.wait_until_ready().await;
            let _ = context.datasets.wait_until_ready().await;
            let _ = context.models.wait_until_ready().await;
            let _ = context.approvals.wait_until_ready().await;
            let _ = context.agents.wait_until_ready().await;
            let _ = context.namespaces.wait_until_ready().await;
            let _ = context.gpu.nodes.wait_until_ready().await;
            context.set_synced();
            tracing::info!("admission context synced");
        }
    };
    let tasks: Vec<Task> = vec![p, d, m, a, g, n, c, t, o, Box::pin(ready)];
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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;
    use watcher::Event;

    fn object(name: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some("ml".to_string()),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        }
    }

    fn names(objects: &[Arc<ConfigMap>]) -> Vec<String> {
        objects.iter().map(|o| o.name_any()).collect()
    }

    /// A feed whose store has listed `names`.
    fn listed(names: &[&str]) -> (Feed<ConfigMap>, Writer<ConfigMap>) {
        let (store, mut writer) = reflector::store();
        let feed = Feed::new(store);
        feed.apply(&mut writer, Event::Init);
        for name in names {
            feed.apply(&mut writer, Event::InitApply(object(name)));
        }
        feed.apply(&mut writer, Event::InitDone);
        (feed, writer)
    }

    #[tokio::test]
    async fn changes_start_with_the_cache_then_follow_applies_and_deletions() {
        let (feed, mut writer) = listed(&["a"]);
        let mut changes = feed.changes();
        feed.apply(&mut writer, Event::Apply(object("b")));
        feed.apply(&mut writer, Event::Delete(object("a")));
        let seen: Vec<_> = (&mut changes).take(3).collect().await;
        assert_eq!(names(&seen), ["a", "b", "a"]);
        assert_eq!(
            names(&feed.store().state()),
            ["b"],
            "the deletion reached the store"
        );
    }

    #[tokio::test]
    async fn updates_skip_the_cache_and_what_happened_before_subscribing() {
        let (feed, mut writer) = listed(&["a", "b"]);
        feed.apply(&mut writer, Event::Apply(object("before")));
        let mut updates = feed.updates();
        feed.apply(&mut writer, Event::Apply(object("after")));
        let next = updates.next().await.unwrap();
        assert_eq!(next.name_any(), "after");
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_gets_the_whole_cache_again() {
        let (feed, mut writer) = listed(&[]);
        let mut updates = feed.updates();
        for i in 0..FEED_BUFFER + 10 {
            feed.apply(&mut writer, Event::Apply(object(&format!("o{i}"))));
        }
        // Without the resync the stream would wait forever after the buffered changes.
        let resync: Vec<_> = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            (&mut updates).take(FEED_BUFFER + 10).collect(),
        )
        .await
        .expect("the lagging subscriber is resynced");
        let mut got = names(&resync);
        got.sort();
        let mut want = names(&feed.store().state());
        want.sort();
        assert_eq!(got.len(), FEED_BUFFER + 10);
        assert_eq!(got, want, "every cached object, once");
    }

    #[test]
    fn pruning_drops_managed_fields_and_the_last_applied_copy_only() {
        let mut o = object("a");
        o.metadata.managed_fields = Some(vec![Default::default()]);
        o.metadata.annotations = Some(BTreeMap::from([
            (LAST_APPLIED.to_string(), "{\"big\": true}".to_string()),
            (
                "annexa.dev/digest-requested-by".to_string(),
                "alice".to_string(),
            ),
        ]));
        prune(&mut o);
        assert_eq!(o.metadata.managed_fields, None);
        assert_eq!(
            o.metadata.annotations,
            Some(BTreeMap::from([(
                "annexa.dev/digest-requested-by".to_string(),
                "alice".to_string()
            )]))
        );
    }

    #[test]
    fn governed_objects_are_cached_without_their_controls_but_with_their_conditions() {
        // Decoded the way Annexa decodes what it reads, so a field the type does not have is
        // an error here rather than silently dropped.
        let value: serde_json::Value = serde_yaml_ng::from_str(
            "apiVersion: annexa.dev/v1alpha1
kind: TrainingDataset
metadata: {name: claims, namespace: ml}
spec:
  source: {uri: 's3://bucket/claims'}
  classification: Internal
  encryption: {kmsKey: 'arn:aws:kms:eu-west-1:111122223333:key/claims'}
  retention: {period: 30d}
status:
  conditions:
  - {type: Ready, status: 'True', reason: Reconciled, message: ok, lastTransitionTime: '2026-11-25T00:00:00Z'}
  controls:
  - {id: A.8.24, title: Use of cryptography, result: Pass, message: ''}
",
        )
        .unwrap();
        let crate::decode::Object::Dataset(mut dataset) = crate::decode::decode(&value).unwrap()
        else {
            panic!("not a TrainingDataset")
        };
        prune_governed(&mut dataset);
        let status = dataset.common_status().unwrap();
        assert!(status.controls.is_empty());
        assert_eq!(
            status.conditions.len(),
            1,
            "conditions are read by the controllers"
        );
    }
}
