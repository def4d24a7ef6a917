//! In-memory object storage with a global resourceVersion, a bounded event history for watches
//! and the bits of garbage collection the stand-in performs itself (owner references,
//! namespace termination, CRD removal).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::registry::{GroupResource, Registry, Special};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub gr: GroupResource,
    pub namespace: String,
    pub type_: EventType,
    pub object: Value,
    /// The previous state (for MODIFIED), so selector-filtered watches can emit ADDED/DELETED.
    pub old: Option<Value>,
}

pub type Key = (String, String);

pub struct State {
    pub registry: Registry,
    objects: HashMap<GroupResource, BTreeMap<Key, Value>>,
    uids: HashSet<String>,
    rv: u64,
    /// The oldest resourceVersion a watch may start from.
    oldest_watchable: u64,
    history: VecDeque<Arc<Event>>,
    history_cap: usize,
    max_objects: usize,
    count: usize,
    tx: broadcast::Sender<Arc<Event>>,
    /// Owners deleted in the foreground, waiting for their blocking dependents.
    foreground: HashSet<(GroupResource, String, String)>,
}

/// The `foregroundDeletion` finalizer kube-apiserver puts on an owner deleted in the foreground.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

static RNG: AtomicU64 = AtomicU64::new(0);

/// A small non-cryptographic random source (xorshift), enough for names, uids and faults.
pub fn random_u64() -> u64 {
    let mut x = RNG.load(Ordering::Relaxed);
    if x == 0 {
        x = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15)
            | 1;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    RNG.store(x, Ordering::Relaxed);
    x
}

pub fn new_uid() -> String {
    let a = random_u64();
    let b = random_u64();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        (a >> 32) as u32,
        (a >> 16) as u16,
        (a & 0xfff) as u16,
        ((b >> 48) as u16 & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

pub fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[(random_u64() % ALPHABET.len() as u64) as usize] as char)
        .collect()
}

pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj["metadata"][field].as_str().unwrap_or_default()
}

fn finalizers(obj: &Value) -> bool {
    obj["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty())
}

pub enum StoreError {
    TooManyObjects,
}

impl State {
    pub fn new(first_rv: u64, history_cap: usize, max_objects: usize) -> Self {
        let (tx, _) = broadcast::channel(4096);
        Self {
            registry: Registry::default(),
            objects: HashMap::new(),
            uids: HashSet::new(),
            rv: first_rv,
            oldest_watchable: first_rv,
            history: VecDeque::new(),
            history_cap: history_cap.max(1),
            max_objects,
            count: 0,
            tx,
            foreground: HashSet::new(),
        }
    }

    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    pub fn oldest_watchable(&self) -> u64 {
        self.oldest_watchable
    }

    /// Events after `rv`, or None when `rv` is older than the kept history (410 Gone).
    pub fn events_since(&self, rv: u64) -> Option<Vec<Arc<Event>>> {
        if rv < self.oldest_watchable {
            return None;
        }
        Some(self.history.iter().filter(|e| e.rv > rv).cloned().collect())
    }

    pub fn get(&self, gr: &GroupResource, ns: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(gr)
            .and_then(|m| m.get(&(ns.to_string(), name.to_string())))
    }

    /// Objects of a resource, sorted by (namespace, name); `ns = None` means all namespaces.
    pub fn list<'a>(
        &'a self,
        gr: &GroupResource,
        ns: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a Key, &'a Value)> + 'a {
        self.objects
            .get(gr)
            .into_iter()
            .flat_map(|m| m.iter())
            .filter(move |((ons, _), _)| ns.is_none_or(|n| n == ons))
    }

    pub fn namespace_exists(&self, ns: &str) -> bool {
        self.get(&ns_gr(), "", ns).is_some()
    }

    pub fn namespace_terminating(&self, ns: &str) -> bool {
        self.get(&ns_gr(), "", ns)
            .is_some_and(|n| !n["metadata"]["deletionTimestamp"].is_null())
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn record(&mut self, event: Event) {
        let event = Arc::new(event);
        self.history.push_back(event.clone());
        while self.history.len() > self.history_cap {
            if let Some(dropped) = self.history.pop_front() {
                self.oldest_watchable = dropped.rv;
            }
        }
        // Nobody listening is fine.
        let _ = self.tx.send(event);
    }

    /// Stores `obj` (assigning a new resourceVersion) and records the event.
    pub fn put(
        &mut self,
        gr: &GroupResource,
        mut obj: Value,
        created: bool,
    ) -> Result<Value, StoreError> {
        if created && self.count >= self.max_objects {
            return Err(StoreError::TooManyObjects);
        }
        let rv = self.next_rv();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let ns = meta_str(&obj, "namespace").to_string();
        let name = meta_str(&obj, "name").to_string();
        let uid = meta_str(&obj, "uid").to_string();
        let old = self
            .objects
            .entry(gr.clone())
            .or_default()
            .insert((ns.clone(), name), obj.clone());
        if old.is_none() {
            self.count += 1;
        }
        self.uids.insert(uid);
        self.record(Event {
            rv,
            gr: gr.clone(),
            namespace: ns,
            type_: if old.is_none() {
                EventType::Added
            } else {
                EventType::Modified
            },
            object: obj.clone(),
            old,
        });
        Ok(obj)
    }

    /// Removes an object for good and runs the follow-ups (owner references, namespaces, CRDs).
    pub fn remove(&mut self, gr: &GroupResource, ns: &str, name: &str) -> Option<Value> {
        self.remove_inner(gr, ns, name, None)
    }

    /// Removes an object whose last state is `last` (an update that removed the last finalizer).
    pub fn remove_as(
        &mut self,
        gr: &GroupResource,
        ns: &str,
        name: &str,
        last: Value,
    ) -> Option<Value> {
        self.remove_inner(gr, ns, name, Some(last))
    }

    fn remove_inner(
        &mut self,
        gr: &GroupResource,
        ns: &str,
        name: &str,
        last: Option<Value>,
    ) -> Option<Value> {
        let stored = self
            .objects
            .get_mut(gr)?
            .remove(&(ns.to_string(), name.to_string()))?;
        let mut obj = last.unwrap_or(stored);
        self.count = self.count.saturating_sub(1);
        let rv = self.next_rv();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let uid = meta_str(&obj, "uid").to_string();
        self.uids.remove(&uid);
        self.record(Event {
            rv,
            gr: gr.clone(),
            namespace: ns.to_string(),
            type_: EventType::Deleted,
            object: obj.clone(),
            old: None,
        });
        self.after_removal(gr, &obj, &uid);
        Some(obj)
    }

    fn after_removal(&mut self, gr: &GroupResource, obj: &Value, uid: &str) {
        // Background cascading deletion of dependents whose owners are all gone.
        let mut dependents = Vec::new();
        for (dgr, objs) in &self.objects {
            for ((dns, dname), d) in objs {
                let Some(refs) = d["metadata"]["ownerReferences"].as_array() else {
                    continue;
                };
                let owned_by_removed = refs.iter().any(|r| r["uid"].as_str() == Some(uid));
                let any_owner_left = refs.iter().any(|r| {
                    r["uid"]
                        .as_str()
                        .is_some_and(|u| u != uid && self.uids.contains(u))
                });
                if owned_by_removed && !any_owner_left {
                    dependents.push((dgr.clone(), dns.clone(), dname.clone()));
                }
            }
        }
        for (dgr, dns, dname) in dependents {
            self.delete(&dgr, &dns, &dname, false);
        }
        self.foreground.remove(&(
            gr.clone(),
            meta_str(obj, "namespace").to_string(),
            meta_str(obj, "name").to_string(),
        ));
        self.release_foreground_owners();

        let special = self
            .registry
            .any_version(gr)
            .map(|t| t.special)
            .unwrap_or(Special::None);
        if special == Special::Crd {
            let name = meta_str(obj, "name").to_string();
            let served: Vec<GroupResource> = self
                .registry
                .all()
                .iter()
                .filter(|t| t.crd.as_deref() == Some(name.as_str()))
                .map(|t| t.group_resource())
                .collect();
            self.registry.unregister_crd(&name);
            for cgr in served {
                let keys: Vec<Key> = self.list(&cgr, None).map(|(k, _)| k.clone()).collect();
                for (cns, cname) in keys {
                    self.remove(&cgr, &cns, &cname);
                }
            }
        }
        let ns = meta_str(obj, "namespace").to_string();
        if !ns.is_empty() {
            self.finish_namespace_if_empty(&ns);
        }
    }

    fn namespace_empty(&self, ns: &str) -> bool {
        self.objects
            .values()
            .all(|m| m.keys().all(|(ons, _)| ons != ns))
    }

    fn finish_namespace_if_empty(&mut self, ns: &str) {
        let Some(nsobj) = self.get(&ns_gr(), "", ns) else {
            return;
        };
        if nsobj["metadata"]["deletionTimestamp"].is_null() || finalizers(nsobj) {
            return;
        }
        if self.namespace_empty(ns) {
            self.remove(&ns_gr(), "", ns);
        }
    }

    /// Deletes an object as the API does: finalizers keep it with a deletionTimestamp,
    /// a namespace empties itself first. Returns the object as the response shows it.
    pub fn delete(
        &mut self,
        gr: &GroupResource,
        ns: &str,
        name: &str,
        orphan: bool,
    ) -> Option<Value> {
        let current = self.get(gr, ns, name)?.clone();
        let is_namespace = *gr == ns_gr();
        if orphan {
            let uid = meta_str(&current, "uid").to_string();
            self.orphan_dependents(&uid);
        }
        if finalizers(&current) || is_namespace {
            let mut shown = current;
            if shown["metadata"]["deletionTimestamp"].is_null() {
                shown["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
                shown["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                if let Some(generation) = shown["metadata"]["generation"].as_i64() {
                    shown["metadata"]["generation"] = json!(generation + 1);
                }
                if is_namespace {
                    shown["status"]["phase"] = json!("Terminating");
                }
                shown = self.put(gr, shown, false).ok()?;
            }
            if is_namespace {
                self.empty_namespace(name);
            }
            return Some(self.get(gr, ns, name).cloned().unwrap_or(shown));
        }
        self.remove(gr, ns, name)
    }

    /// Objects whose ownerReferences name `uid`: (resource, namespace, name, blockOwnerDeletion).
    fn dependents_of(&self, uid: &str) -> Vec<(GroupResource, String, String, bool)> {
        let mut out = Vec::new();
        for (gr, objs) in &self.objects {
            for ((ns, name), d) in objs {
                for r in d["metadata"]["ownerReferences"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    if r["uid"].as_str() == Some(uid) {
                        let blocks = r["blockOwnerDeletion"].as_bool() == Some(true);
                        out.push((gr.clone(), ns.clone(), name.clone(), blocks));
                    }
                }
            }
        }
        out
    }

    /// Foreground cascading deletion: the owner stays, with a deletionTimestamp and the
    /// `foregroundDeletion` finalizer, until every dependent with `blockOwnerDeletion: true` is
    /// gone; its dependents are deleted at once (as the garbage collector would).
    pub fn delete_foreground(&mut self, gr: &GroupResource, ns: &str, name: &str) -> Option<Value> {
        let current = self.get(gr, ns, name)?.clone();
        let uid = meta_str(&current, "uid").to_string();
        let dependents = self.dependents_of(&uid);
        if dependents.is_empty() {
            return self.delete(gr, ns, name, false);
        }
        let mut shown = current;
        let has_finalizer = shown["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == FOREGROUND_FINALIZER));
        if !has_finalizer {
            if !shown["metadata"]["finalizers"].is_array() {
                shown["metadata"]["finalizers"] = json!([]);
            }
            if let Some(f) = shown["metadata"]["finalizers"].as_array_mut() {
                f.push(json!(FOREGROUND_FINALIZER));
            }
        }
        if shown["metadata"]["deletionTimestamp"].is_null() {
            shown["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
            shown["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            if let Some(generation) = shown["metadata"]["generation"].as_i64() {
                shown["metadata"]["generation"] = json!(generation + 1);
            }
        }
        let shown = self.put(gr, shown, false).ok()?;
        self.foreground
            .insert((gr.clone(), ns.to_string(), name.to_string()));
        for (dgr, dns, dname, _) in dependents {
            let Some(d) = self.get(&dgr, &dns, &dname).cloned() else {
                continue;
            };
            let refs = d["metadata"]["ownerReferences"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let other_owner_left = refs.iter().any(|r| {
                r["uid"]
                    .as_str()
                    .is_some_and(|u| u != uid && self.uids.contains(u))
            });
            if other_owner_left {
                // Another owner still holds it: only the reference to this owner goes.
                let mut kept = d;
                kept["metadata"]["ownerReferences"] = Value::Array(
                    refs.into_iter()
                        .filter(|r| r["uid"].as_str() != Some(uid.as_str()))
                        .collect(),
                );
                let _ = self.put(&dgr, kept, false);
            } else {
                self.delete(&dgr, &dns, &dname, false);
            }
        }
        self.release_foreground_owners();
        Some(self.get(gr, ns, name).cloned().unwrap_or(shown))
    }

    /// Removes the `foregroundDeletion` finalizer from owners no dependent blocks any more.
    fn release_foreground_owners(&mut self) {
        let waiting: Vec<(GroupResource, String, String)> =
            self.foreground.iter().cloned().collect();
        for (gr, ns, name) in waiting {
            let Some(owner) = self.get(&gr, &ns, &name).cloned() else {
                self.foreground.remove(&(gr, ns, name));
                continue;
            };
            let uid = meta_str(&owner, "uid").to_string();
            if self
                .dependents_of(&uid)
                .iter()
                .any(|(_, _, _, blocks)| *blocks)
            {
                continue;
            }
            self.foreground
                .remove(&(gr.clone(), ns.clone(), name.clone()));
            let mut released = owner;
            if let Some(f) = released["metadata"]["finalizers"].as_array_mut() {
                f.retain(|x| x != FOREGROUND_FINALIZER);
            }
            if finalizers(&released) {
                let _ = self.put(&gr, released, false);
            } else {
                self.remove_as(&gr, &ns, &name, released);
            }
        }
    }

    /// The garbage collector deletes an object whose owners all no longer exist (e.g. a
    /// dependent written after its owner was deleted).
    pub fn collect_if_owners_gone(&mut self, gr: &GroupResource, ns: &str, name: &str) {
        let Some(obj) = self.get(gr, ns, name) else {
            return;
        };
        let Some(refs) = obj["metadata"]["ownerReferences"].as_array() else {
            return;
        };
        let all_gone = !refs.is_empty()
            && refs
                .iter()
                .all(|r| r["uid"].as_str().is_none_or(|u| !self.uids.contains(u)));
        if all_gone {
            self.delete(gr, ns, name, false);
        }
    }

    fn empty_namespace(&mut self, ns: &str) {
        let mut victims = Vec::new();
        for (gr, objs) in &self.objects {
            for (ons, oname) in objs.keys() {
                if ons == ns {
                    victims.push((gr.clone(), oname.clone()));
                }
            }
        }
        for (gr, oname) in victims {
            self.delete(&gr, ns, &oname, false);
        }
        self.finish_namespace_if_empty(ns);
    }

    fn orphan_dependents(&mut self, uid: &str) {
        let mut updates = Vec::new();
        for (gr, objs) in &self.objects {
            for d in objs.values() {
                if let Some(refs) = d["metadata"]["ownerReferences"].as_array()
                    && refs.iter().any(|r| r["uid"].as_str() == Some(uid))
                {
                    let mut d = d.clone();
                    let kept: Vec<Value> = refs
                        .iter()
                        .filter(|r| r["uid"].as_str() != Some(uid))
                        .cloned()
                        .collect();
                    if kept.is_empty() {
                        if let Some(m) = d["metadata"].as_object_mut() {
                            m.remove("ownerReferences");
                        }
                    } else {
                        d["metadata"]["ownerReferences"] = Value::Array(kept);
                    }
                    updates.push((gr.clone(), d));
                }
            }
        }
        for (gr, d) in updates {
            let _ = self.put(&gr, d, false);
        }
    }

    /// After an update: an object being deleted whose finalizers are gone is removed.
    pub fn remove_if_finalized(&mut self, gr: &GroupResource, obj: &Value) -> Option<Value> {
        if obj["metadata"]["deletionTimestamp"].is_null() || finalizers(obj) {
            return None;
        }
        let ns = meta_str(obj, "namespace").to_string();
        let name = meta_str(obj, "name").to_string();
        if *gr == ns_gr() {
            self.finish_namespace_if_empty(&name);
            return self.get(gr, &ns, &name).is_none().then(|| obj.clone());
        }
        self.remove(gr, &ns, &name)
    }
}

pub fn ns_gr() -> GroupResource {
    GroupResource {
        group: String::new(),
        resource: "namespaces".into(),
    }
}
