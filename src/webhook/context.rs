//! The cross-object context of admission decisions: related objects (datasets, models,
//! approvals, agents), the namespace profile, and whether workload checks apply.
//!
//! Two implementations: [`StaticContext`] over files (`annexa webhook --policy/--context`) and
//! `cluster::StoreContext` over kube-runtime reflector stores (`annexa run`).

use crate::api::{CompliancePolicy, ENFORCE_LABEL};
use crate::cluster::ProfileCache;
use crate::decode::Object;
use crate::error::{Error, Result};
use crate::manifest::{self, Document};
use crate::policy::{Inventory, Lookup, Profile};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

/// What the handlers need to know beyond the object under review.
pub trait AdmissionContext: Send + Sync {
    /// Related objects for the cross-object rules.
    fn lookup(&self) -> &dyn Lookup;
    /// Whether Pods and pod templates in the namespace are checked (the namespace is
    /// labelled `annexa.dev/enforce=true`).
    fn workloads_enforced(&self, namespace: &str) -> bool;
    /// The effective profile of the namespace (merge of the CompliancePolicies selecting it).
    fn profile(&self, namespace: &str) -> Arc<Profile>;
    /// Whether the context is complete enough to decide (stores synced). `/readyz` reports it.
    fn ready(&self) -> bool {
        true
    }
}

/// Whether a namespace's labels opt it into workload checks.
pub fn labels_enforce(labels: &BTreeMap<String, String>) -> bool {
    labels.get(ENFORCE_LABEL).is_some_and(|v| v == "true")
}

/// A context read from manifest files: stand-alone mode and tests.
///
/// A namespace with no Namespace object in the files counts as opted in to workload checks
/// (the stand-alone webhook is asked about namespaces it cannot see; the API server's
/// `namespaceSelector` decides which workloads reach it in a cluster).
#[derive(Debug, Default)]
pub struct StaticContext {
    inventory: Inventory,
    policies: Vec<Arc<CompliancePolicy>>,
    namespaces: HashMap<String, BTreeMap<String, String>>,
    profiles: ProfileCache,
}

impl StaticContext {
    /// Builds the context from decoded documents (Annexa kinds, Namespaces, and the claims and
    /// nodes the GPU rules resolve). Workloads and other kinds are ignored.
    pub fn from_documents(documents: impl IntoIterator<Item = Document>) -> Self {
        let mut context = Self::default();
        for document in documents {
            context.add(document.object);
        }
        context
    }

    pub fn add(&mut self, object: Object) {
        match object {
            Object::Policy(p) => self.policies.push(Arc::new(p)),
            Object::Dataset(d) => self.inventory.add_dataset(d),
            Object::Model(m) => self.inventory.add_model(m),
            Object::Approval(a) => self.inventory.add_approval(a),
            Object::Agent(a) => self.inventory.add_agent(a),
            Object::Namespace { name, labels } => {
                self.namespaces.insert(name, labels);
            }
            Object::Related(r) => self.inventory.add_related(r),
            Object::Workload(_) | Object::Skipped { .. } => {}
        }
    }

    /// Loads `--policy` and `--context` files (both may hold any Annexa kind and Namespaces).
    /// Any file or document that does not decode is an error naming it.
    pub fn load(policy_files: &[PathBuf], context_files: &[PathBuf]) -> Result<Self> {
        let paths: Vec<PathBuf> = policy_files.iter().chain(context_files).cloned().collect();
        if paths.is_empty() {
            return Ok(Self::default());
        }
        let (documents, errors) = manifest::load(&paths);
        if !errors.is_empty() {
            return Err(Error::Input(errors.join("\n")));
        }
        Ok(Self::from_documents(documents))
    }

    pub fn policies(&self) -> &[Arc<CompliancePolicy>] {
        &self.policies
    }
}

impl AdmissionContext for StaticContext {
    fn lookup(&self) -> &dyn Lookup {
        &self.inventory
    }

    fn workloads_enforced(&self, namespace: &str) -> bool {
        self.namespaces.get(namespace).is_none_or(labels_enforce)
    }

    fn profile(&self, namespace: &str) -> Arc<Profile> {
        let empty = BTreeMap::new();
        let labels = self.namespaces.get(namespace).unwrap_or(&empty);
        self.profiles
            .get_or_compute(namespace, 0, labels, || self.policies.clone())
    }
}
