//! Effective profiles per namespace, cached beside the stores they are computed from: the
//! webhook asks for one on every request, and it changes only when the namespace's labels or
//! the set of policies do.

use crate::api::CompliancePolicy;
use crate::policy::Profile;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

/// Caches profiles per namespace. Profiles are pure functions of (namespace labels, policies),
/// so a cache entry stays valid while both are unchanged; `generation` names the policy set.
#[derive(Default, Debug)]
pub struct ProfileCache {
    entries: RwLock<HashMap<String, CachedProfile>>,
}

#[derive(Debug)]
struct CachedProfile {
    generation: u64,
    labels: BTreeMap<String, String>,
    profile: Arc<Profile>,
}

/// Upper bound on cached namespaces; past it the cache starts over (names come from requests).
const PROFILE_CACHE_LIMIT: usize = 4096;

impl ProfileCache {
    pub fn get_or_compute(
        &self,
        namespace: &str,
        generation: u64,
        labels: &BTreeMap<String, String>,
        policies: impl FnOnce() -> Vec<Arc<CompliancePolicy>>,
    ) -> Arc<Profile> {
        {
            let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
            if let Some(hit) = entries.get(namespace)
                && hit.generation == generation
                && &hit.labels == labels
            {
                return hit.profile.clone();
            }
        }
        let policies = policies();
        let profile = Arc::new(Profile::for_namespace(
            labels,
            policies.iter().map(|p| p.as_ref()),
        ));
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= PROFILE_CACHE_LIMIT {
            entries.clear();
        }
        entries.insert(
            namespace.to_string(),
            CachedProfile {
                generation,
                labels: labels.clone(),
                profile: profile.clone(),
            },
        );
        profile
    }
}
