//! The effective profile of a namespace: the merge of every CompliancePolicy that selects it.
//!
//! Each selecting policy is first resolved on its own: a setting it leaves unset takes the
//! built-in baseline value (`Profile::baseline`, printed by `annexa policy default`). The
//! resolved values are then combined, strictest wins, so adding a policy never loosens what
//! another policy or the baseline requires:
//! - `environment`: the highest (Production > Staging > Development);
//! - actions: for each control, the strictest of each policy's action for it (its override,
//!   else its default action; Enforce > Warn > Audit);
//! - what counts as a GPU (resource names and patterns, DeviceClass names): the union of each
//!   policy's lists, a policy that sets none counting with the defaults; pools: per classification, from the policy that sorts first
//!   by name among those defining a pool for it (conflicting pools are a configuration error the
//!   policies' status reports);
//! - debug registries for ephemeral containers: only those every policy lists (a policy that
//!   lists none allows none);
//! - allow-lists (registries, key prefixes, encrypted StorageClasses, regions, approver groups):
//!   the intersection of the lists that are set;
//! - `requireDigest`: true if any policy requires it;
//! - `requireKmsFrom`: the lowest classification; `requiredApprovals`: the highest;
//!   TTLs and `maxRetention`: the shortest;
//! - forbidden verbs and forbidden permissions: the union (a policy that lists none contributes
//!   the baseline's); `allowSecretRead`: only if every policy allows it;
//!   `requireEgressAllowList`: if any policy requires it;
//! - exceptions: every policy's exceptions.

use super::catalogue::CATALOGUE;
use super::duration::{format_duration, parse_duration};
use crate::api::{
    Action, AgentLimits, Classification, CompliancePolicy, CompliancePolicySpec, ControlException,
    ControlOverride, EncryptionPolicy, EnforcementSpec, Environment, ForbiddenPermission,
    GpuPolicy, GpuPool, ImagePolicy, PoolTaint, PromotionPolicy, ResidencyPolicy, RetentionPolicy,
    TaintEffect,
};
use jiff::SignedDuration;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};
use serde::Serialize;
use std::collections::BTreeMap;

/// Label key of the built-in GPU pools (`annexa.dev/gpu-pool: confidential`).
pub const BASELINE_POOL_LABEL: &str = "annexa.dev/gpu-pool";

/// Everything the rules need to know about a namespace's policy.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// Names of the CompliancePolicies merged into this profile (empty: baseline only).
    pub policies: Vec<String>,
    pub environment: Environment,
    pub default_action: Action,
    /// Action per control id, for every control of the catalogue.
    pub actions: BTreeMap<&'static str, Action>,
    /// Extended resources that count as GPUs: names and `*` patterns.
    pub gpu_resource_names: Vec<String>,
    /// DeviceClasses whose DRA claims count as GPU requests: names and `*` patterns.
    pub gpu_device_class_names: Vec<String>,
    pub gpu_pools: BTreeMap<Classification, GpuPool>,
    /// None: any registry. Some, even empty: only these (policies whose lists have nothing in
    /// common allow nothing).
    pub allowed_registries: Option<Vec<String>>,
    pub require_digest: bool,
    /// Registries ephemeral containers may also come from (empty: none).
    pub debug_registries: Vec<String>,
    pub require_kms_from: Classification,
    /// None: any key. Some, even empty: only these (policies whose lists have nothing in
    /// common allow nothing).
    pub allowed_key_prefixes: Option<Vec<String>>,
    /// None: any StorageClass. Some, even empty: only these (policies whose lists have nothing in
    /// common allow nothing).
    pub encrypted_storage_classes: Option<Vec<String>>,
    /// None: any region. Some, even empty: only these (policies whose lists have nothing in
    /// common allow nothing).
    pub allowed_regions: Option<Vec<String>>,
    pub required_approvals: u32,
    #[serde(serialize_with = "ser_duration")]
    pub approval_ttl: SignedDuration,
    /// None: any group. Some, even empty: only these (policies whose lists have nothing in
    /// common allow nothing).
    pub approver_groups: Option<Vec<String>>,
    /// ServiceAccount usernames allowed to approve. Empty: none.
    pub service_account_approvers: Vec<String>,
    #[serde(serialize_with = "ser_duration")]
    pub max_token_ttl: SignedDuration,
    pub forbidden_verbs: Vec<String>,
    pub forbidden_permissions: Vec<ForbiddenPermission>,
    pub allow_secret_read: bool,
    pub require_egress_allow_list: bool,
    #[serde(serialize_with = "ser_duration")]
    pub max_retention: SignedDuration,
    pub exceptions: Vec<ControlException>,
}

fn ser_duration<S: serde::Serializer>(d: &SignedDuration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

const DEFAULT_APPROVAL_TTL_SECS: i64 = 7 * 86_400;
const DEFAULT_TOKEN_TTL_SECS: i64 = 3_600;
const DEFAULT_RETENTION_SECS: i64 = 365 * 86_400;
/// Extended resources that count as GPUs when no policy lists its own: NVIDIA whole GPUs,
/// their time-sliced and MPS shares (`nvidia.com/gpu.shared`), MIG slices
/// (`nvidia.com/mig-1g.10gb`, `nvidia.com/mig-1g.10gb.shared`), AMD GPUs and Intel GPUs
/// (`gpu.intel.com/i915`, `gpu.intel.com/xe`, `gpu.intel.com/millicores`).
pub const BASELINE_GPU_RESOURCE_NAMES: [&str; 5] = [
    "nvidia.com/gpu",
    "nvidia.com/gpu.*",
    "nvidia.com/mig-*",
    "amd.com/gpu",
    "gpu.intel.com/*",
];
/// DeviceClasses whose claims count as GPU requests when no policy lists its own: the classes
/// the NVIDIA, AMD and Intel DRA drivers install.
pub const BASELINE_GPU_DEVICE_CLASSES: [&str; 4] = [
    "gpu.nvidia.com",
    "mig.nvidia.com",
    "gpu.amd.com",
    "gpu.intel.com",
];
/// Verbs agents may never hold unless a policy lists its own.
pub const BASELINE_FORBIDDEN_VERBS: [&str; 4] = ["*", "escalate", "bind", "impersonate"];

/// Permissions agents may never hold unless a policy lists its own (A.8.2): each one lets an
/// agent act beyond its own rules (mint tokens of other accounts, run commands in other pods,
/// rewrite Secrets or RBAC, reach the kubelet, act as someone else, approve certificates,
/// change admission).
pub fn baseline_forbidden_permissions() -> Vec<ForbiddenPermission> {
    const WRITE: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];
    let rule = |group: &str, resources: &[&str], verbs: &[&str]| ForbiddenPermission {
        api_group: group.to_string(),
        resources: resources.iter().map(|r| r.to_string()).collect(),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
    };
    vec![
        rule("", &["serviceaccounts/token"], &["create"]),
        rule(
            "",
            &["pods/exec", "pods/attach", "pods/portforward"],
            &["*"],
        ),
        rule(
            "",
            &["secrets"],
            &[
                "create",
                "update",
                "patch",
                "delete",
                "deletecollection",
                "list",
                "watch",
            ],
        ),
        rule(
            "rbac.authorization.k8s.io",
            &[
                "roles",
                "rolebindings",
                "clusterroles",
                "clusterrolebindings",
            ],
            &[
                "create",
                "update",
                "patch",
                "delete",
                "deletecollection",
                "escalate",
                "bind",
            ],
        ),
        rule("", &["nodes/proxy"], &["*"]),
        rule(
            "",
            &["users", "groups", "serviceaccounts"],
            &["impersonate"],
        ),
        rule(
            "authentication.k8s.io",
            &["userextras", "uids"],
            &["impersonate"],
        ),
        rule(
            "certificates.k8s.io",
            &["certificatesigningrequests/approval", "signers"],
            &["*"],
        ),
        rule(
            "admissionregistration.k8s.io",
            &[
                "mutatingwebhookconfigurations",
                "validatingwebhookconfigurations",
                "validatingadmissionpolicies",
                "validatingadmissionpolicybindings",
                "mutatingadmissionpolicies",
                "mutatingadmissionpolicybindings",
            ],
            &WRITE,
        ),
    ]
}

impl Profile {
    /// The built-in baseline: what applies to a namespace no CompliancePolicy selects, and the
    /// value of every setting the selecting policies leave unset.
    pub fn baseline() -> Self {
        Self::merge(&[])
    }

    /// Required approvals when no policy sets them: 2 in Production, none elsewhere.
    fn default_required_approvals(environment: Environment) -> u32 {
        if environment == Environment::Production {
            2
        } else {
            0
        }
    }

    /// The action for a control (Enforce for an id outside the catalogue).
    pub fn action(&self, control: &str) -> Action {
        self.actions
            .get(control)
            .copied()
            .unwrap_or(self.default_action)
    }

    /// Whether images must be pinned by digest: the policy says so, or the environment is Production.
    pub fn digest_required(&self) -> bool {
        self.require_digest || self.environment == Environment::Production
    }

    /// The GPU pool a workload of this classification must use: the pool for exactly this
    /// classification, else the nearest stricter one (never a less isolated pool).
    pub fn pool_for(&self, classification: Classification) -> Option<&GpuPool> {
        self.gpu_pools
            .range(classification..)
            .next()
            .map(|(_, pool)| pool)
    }

    /// Whether `resource` counts as a GPU (an exact name or a pattern of the policy).
    pub fn is_gpu_resource(&self, resource: &str) -> bool {
        self.gpu_resource_names
            .iter()
            .any(|r| name_matches(r, resource))
    }

    /// Whether claims for devices of this DeviceClass count as GPU requests.
    pub fn is_gpu_device_class(&self, class: &str) -> bool {
        self.gpu_device_class_names
            .iter()
            .any(|c| name_matches(c, class))
    }

    /// The resource name a rendered GPU workload requests when none is given: the first exact
    /// (pattern-free) GPU resource name of the policy.
    pub fn default_gpu_resource(&self) -> Option<&str> {
        self.gpu_resource_names
            .iter()
            .map(String::as_str)
            .find(|r| !r.contains('*'))
    }

    /// The profile of a namespace with these labels: the merge of the selecting policies.
    pub fn for_namespace<'a>(
        namespace_labels: &BTreeMap<String, String>,
        policies: impl IntoIterator<Item = &'a CompliancePolicy>,
    ) -> Self {
        let mut selecting: Vec<&CompliancePolicy> = policies
            .into_iter()
            .filter(|p| selector_matches(p.spec.namespace_selector.as_ref(), namespace_labels))
            .collect();
        selecting.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        Self::merge(&selecting)
    }

    /// Merges policies (already filtered to those that select the namespace), strictest wins.
    pub fn merge(policies: &[&CompliancePolicy]) -> Self {
        let specs: Vec<&CompliancePolicySpec> = policies.iter().map(|p| &p.spec).collect();
        let environment = specs
            .iter()
            .filter_map(|s| s.environment)
            .max()
            .unwrap_or(Environment::Development);

        let default_of = |s: &CompliancePolicySpec| {
            s.enforcement
                .as_ref()
                .and_then(|e| e.action)
                .unwrap_or(Action::Enforce)
        };
        let default_action = specs
            .iter()
            .map(|s| default_of(s))
            .max()
            .unwrap_or(Action::Enforce);
        let actions = CATALOGUE
            .iter()
            .map(|control| {
                let action = specs
                    .iter()
                    .map(|s| {
                        s.enforcement
                            .as_ref()
                            .and_then(|e| {
                                e.overrides.iter().rev().find(|o| o.control == control.id)
                            })
                            .map(|o| o.action)
                            .unwrap_or_else(|| default_of(s))
                    })
                    .max()
                    .unwrap_or(default_action);
                (control.id, action)
            })
            .collect();

        let gpus: Vec<&GpuPolicy> = specs.iter().filter_map(|s| s.gpu.as_ref()).collect();
        // Each policy counts with its own lists, or the defaults where it sets none; the union
        // wins (more counts as a GPU, never less).
        let union_of = |list: fn(&GpuPolicy) -> &Vec<String>, defaults: &[&str]| {
            let mut union: Vec<String> = Vec::new();
            let mut add = |name: &str| {
                if !union.iter().any(|n| n == name) {
                    union.push(name.to_string());
                }
            };
            for s in &specs {
                match s.gpu.as_ref().map(list).filter(|l| !l.is_empty()) {
                    Some(names) => names.iter().for_each(|n| add(n)),
                    None => defaults.iter().for_each(|n| add(n)),
                }
            }
            if specs.is_empty() {
                defaults.iter().for_each(|n| add(n));
            }
            union
        };
        let gpu_resource_names = union_of(|g| &g.resource_names, &BASELINE_GPU_RESOURCE_NAMES);
        let gpu_device_class_names =
            union_of(|g| &g.device_class_names, &BASELINE_GPU_DEVICE_CLASSES);
        let mut gpu_pools: BTreeMap<Classification, GpuPool> = BTreeMap::new();
        for g in &gpus {
            for pool in &g.pools {
                gpu_pools
                    .entry(pool.classification)
                    .or_insert_with(|| pool.clone());
            }
        }
        if gpu_pools.is_empty() {
            gpu_pools = baseline_pools();
        }

        let images: Vec<&ImagePolicy> = specs.iter().filter_map(|s| s.images.as_ref()).collect();
        let encryption: Vec<&EncryptionPolicy> =
            specs.iter().filter_map(|s| s.encryption.as_ref()).collect();
        let residency: Vec<&ResidencyPolicy> =
            specs.iter().filter_map(|s| s.residency.as_ref()).collect();
        let promotion: Vec<&PromotionPolicy> =
            specs.iter().filter_map(|s| s.promotion.as_ref()).collect();

        // Each policy is resolved on its own first (a setting it leaves unset takes the
        // baseline value), then the resolved values are combined strictest-wins. So adding a
        // policy can never loosen what another policy, or the baseline, already requires.
        let agents_of = |s: &CompliancePolicySpec| s.agents.clone().unwrap_or_default();
        let mut forbidden_verbs: Vec<String> = Vec::new();
        for s in &specs {
            let listed = agents_of(s).forbidden_verbs;
            let verbs = if listed.is_empty() {
                BASELINE_FORBIDDEN_VERBS.map(String::from).to_vec()
            } else {
                listed
            };
            for v in verbs {
                if !forbidden_verbs.contains(&v) {
                    forbidden_verbs.push(v);
                }
            }
        }
        if forbidden_verbs.is_empty() {
            forbidden_verbs = BASELINE_FORBIDDEN_VERBS.map(String::from).to_vec();
        }
        let mut forbidden_permissions: Vec<ForbiddenPermission> = Vec::new();
        for s in specs.iter().map(|s| agents_of(s).forbidden_permissions) {
            let listed = if s.is_empty() {
                baseline_forbidden_permissions()
            } else {
                s
            };
            for p in listed {
                if !forbidden_permissions.contains(&p) {
                    forbidden_permissions.push(p);
                }
            }
        }
        if forbidden_permissions.is_empty() {
            forbidden_permissions = baseline_forbidden_permissions();
        }
        let duration_of = |value: Option<&str>, default_secs: i64| {
            value
                .and_then(|v| parse_duration(v).ok())
                .unwrap_or(SignedDuration::from_secs(default_secs))
        };
        let shortest_of = |f: &dyn Fn(&CompliancePolicySpec) -> Option<String>,
                           default_secs: i64| {
            specs
                .iter()
                .map(|s| duration_of(f(s).as_deref(), default_secs))
                .min()
                .unwrap_or(SignedDuration::from_secs(default_secs))
        };

        Profile {
            policies: policies
                .iter()
                .filter_map(|p| p.metadata.name.clone())
                .collect(),
            environment,
            default_action,
            actions,
            gpu_resource_names,
            gpu_device_class_names,
            gpu_pools,
            allowed_registries: intersect(images.iter().map(|i| &i.allowed_registries)),
            require_digest: images.iter().any(|i| i.require_digest == Some(true)),
            // A policy without debug registries allows none: only what every policy lists.
            debug_registries: if specs.is_empty() {
                Vec::new()
            } else {
                let lists: Vec<Vec<String>> = specs
                    .iter()
                    .map(|s| {
                        s.images
                            .as_ref()
                            .map(|i| i.debug_registries.clone())
                            .unwrap_or_default()
                    })
                    .collect();
                lists[0]
                    .iter()
                    .filter(|r| lists.iter().all(|l| l.contains(r)))
                    .cloned()
                    .collect()
            },
            require_kms_from: specs
                .iter()
                .map(|s| {
                    s.encryption
                        .as_ref()
                        .and_then(|e| e.require_kms_from)
                        .unwrap_or(Classification::Confidential)
                })
                .min()
                .unwrap_or(Classification::Confidential),
            allowed_key_prefixes: intersect(encryption.iter().map(|e| &e.allowed_key_prefixes)),
            encrypted_storage_classes: intersect(
                encryption.iter().map(|e| &e.encrypted_storage_classes),
            ),
            allowed_regions: intersect(residency.iter().map(|r| &r.allowed_regions)),
            required_approvals: specs
                .iter()
                .map(|s| {
                    s.promotion
                        .as_ref()
                        .and_then(|p| p.required_approvals)
                        .unwrap_or_else(|| {
                            Self::default_required_approvals(
                                s.environment.unwrap_or(Environment::Development),
                            )
                        })
                })
                .max()
                .unwrap_or_else(|| Self::default_required_approvals(environment)),
            approval_ttl: shortest_of(
                &|s| s.promotion.as_ref().and_then(|p| p.approval_ttl.clone()),
                DEFAULT_APPROVAL_TTL_SECS,
            ),
            approver_groups: intersect(promotion.iter().map(|p| &p.approver_groups)),
            // An allow-list where empty means none: every policy must name the account.
            service_account_approvers: if !specs.is_empty()
                && promotion.len() == specs.len()
                && promotion
                    .iter()
                    .all(|p| !p.service_account_approvers.is_empty())
            {
                intersect(promotion.iter().map(|p| &p.service_account_approvers))
                    .unwrap_or_default()
            } else {
                Vec::new()
            },
            max_token_ttl: shortest_of(&|s| agents_of(s).max_token_ttl, DEFAULT_TOKEN_TTL_SECS),
            forbidden_verbs,
            forbidden_permissions,
            allow_secret_read: !specs.is_empty()
                && specs
                    .iter()
                    .all(|s| agents_of(s).allow_secret_read == Some(true)),
            require_egress_allow_list: specs.is_empty()
                || specs
                    .iter()
                    .any(|s| agents_of(s).require_egress_allow_list.unwrap_or(true)),
            max_retention: shortest_of(
                &|s| s.retention.as_ref().and_then(|r| r.max_retention.clone()),
                DEFAULT_RETENTION_SECS,
            ),
            exceptions: specs
                .iter()
                .flat_map(|s| s.exceptions.iter().cloned())
                .collect(),
        }
    }

    /// The profile written back as a CompliancePolicy spec (what `annexa policy default` prints).
    pub fn to_spec(&self) -> CompliancePolicySpec {
        CompliancePolicySpec {
            namespace_selector: None,
            environment: Some(self.environment),
            enforcement: Some(EnforcementSpec {
                action: Some(self.default_action),
                overrides: self
                    .actions
                    .iter()
                    .filter(|(_, a)| **a != self.default_action)
                    .map(|(id, a)| ControlOverride {
                        control: id.to_string(),
                        action: *a,
                    })
                    .collect(),
            }),
            gpu: Some(GpuPolicy {
                resource_names: self.gpu_resource_names.clone(),
                device_class_names: self.gpu_device_class_names.clone(),
                pools: self.gpu_pools.values().cloned().collect(),
            }),
            images: Some(ImagePolicy {
                allowed_registries: allow_list(self.allowed_registries.as_deref()),
                require_digest: Some(self.require_digest),
                debug_registries: self.debug_registries.clone(),
            }),
            encryption: Some(EncryptionPolicy {
                require_kms_from: Some(self.require_kms_from),
                allowed_key_prefixes: allow_list(self.allowed_key_prefixes.as_deref()),
                encrypted_storage_classes: allow_list(self.encrypted_storage_classes.as_deref()),
            }),
            residency: Some(ResidencyPolicy {
                allowed_regions: allow_list(self.allowed_regions.as_deref()),
            }),
            promotion: Some(PromotionPolicy {
                required_approvals: Some(self.required_approvals),
                approval_ttl: Some(format_duration(self.approval_ttl)),
                approver_groups: allow_list(self.approver_groups.as_deref()),
                service_account_approvers: self.service_account_approvers.clone(),
            }),
            agents: Some(AgentLimits {
                max_token_ttl: Some(format_duration(self.max_token_ttl)),
                forbidden_verbs: self.forbidden_verbs.clone(),
                forbidden_permissions: self.forbidden_permissions.clone(),
                allow_secret_read: Some(self.allow_secret_read),
                require_egress_allow_list: Some(self.require_egress_allow_list),
            }),
            retention: Some(RetentionPolicy {
                max_retention: Some(format_duration(self.max_retention)),
            }),
            exceptions: self.exceptions.clone(),
        }
    }
}

/// What [`Profile::to_spec`] writes for an allow-list that allows nothing (policies whose lists
/// have nothing in common): an empty list would read back as "any". A name under the reserved
/// `.invalid` domain (RFC 2606), which no registry, key, region, StorageClass or group carries.
pub const NOTHING_ALLOWED: &str = "nothing-allowed.invalid";

/// An allow-list as a policy writes it: empty for "any", [`NOTHING_ALLOWED`] for "none".
fn allow_list(list: Option<&[String]>) -> Vec<String> {
    match list {
        None => Vec::new(),
        Some([]) => vec![NOTHING_ALLOWED.to_string()],
        Some(names) => names.to_vec(),
    }
}

/// The baseline GPU pools: one per classification, selected by `annexa.dev/gpu-pool` and
/// tainted with the same key.
fn baseline_pools() -> BTreeMap<Classification, GpuPool> {
    Classification::ALL
        .into_iter()
        .map(|c| {
            let value = c.as_str().to_ascii_lowercase();
            (
                c,
                GpuPool {
                    classification: c,
                    node_selector: BTreeMap::from([(
                        BASELINE_POOL_LABEL.to_string(),
                        value.clone(),
                    )]),
                    taint: Some(PoolTaint {
                        key: BASELINE_POOL_LABEL.to_string(),
                        value: Some(value),
                        effect: TaintEffect::NoSchedule,
                    }),
                    runtime_class_name: None,
                },
            )
        })
        .collect()
}

/// Whether a name matches a policy entry: the same name, or a pattern where each `*` matches
/// any run of characters (`nvidia.com/mig-*`). Hand-written: glob crates match paths, where
/// `*` stops at `/`.
pub fn name_matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// The intersection of the lists that are non-empty (an empty list means "any").
/// The intersection of the allow-lists that are set (non-empty); None when none is set (no
/// limit). Lists with nothing in common give `Some(vec![])`: nothing is allowed, never "any".
fn intersect<'a>(lists: impl Iterator<Item = &'a Vec<String>>) -> Option<Vec<String>> {
    let mut result: Option<Vec<String>> = None;
    for list in lists.filter(|l| !l.is_empty()) {
        result = Some(match result {
            None => list.clone(),
            Some(acc) => acc.into_iter().filter(|v| list.contains(v)).collect(),
        });
    }
    result
}

/// Whether a label selector matches a label set, with kube-core's [`Selector`]. `None` and an
/// empty selector match everything; an invalid selector (an unknown operator, `In` or `NotIn`
/// without values) matches nothing, and [`validate_policy`] refuses a policy written with one.
pub fn selector_matches(
    selector: Option<&LabelSelector>,
    labels: &BTreeMap<String, String>,
) -> bool {
    let Some(selector) = selector else {
        return true;
    };
    Selector::try_from(selector.clone()).is_ok_and(|selector| selector.matches(labels))
}

/// What kube-apiserver refuses in a label selector of a built-in kind, which a CRD's schema
/// cannot say: an unknown operator, `In`/`NotIn` without values, `Exists`/`DoesNotExist` with
/// values. Such a selector matches nothing ([`selector_matches`]), so a policy written with one
/// would silently apply nowhere; it is refused instead.
fn selector_errors(field: &str, selector: &LabelSelector) -> Vec<String> {
    let mut errors = Vec::new();
    for (i, requirement) in selector.match_expressions.iter().flatten().enumerate() {
        let at = format!("{field}.matchExpressions[{i}]");
        let values = requirement.values.as_deref().unwrap_or_default();
        match requirement.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => errors.push(format!(
                "{at}.values: must be specified when `operator` is 'In' or 'NotIn'"
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => errors.push(format!(
                "{at}.values: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errors.push(format!(
                "{at}.operator: {other:?} is not a valid selector operator (In, NotIn, Exists, DoesNotExist)"
            )),
        }
    }
    errors
}

/// Validation of a CompliancePolicy itself: messages naming the field that is wrong.
pub fn validate_policy(policy: &CompliancePolicy) -> Vec<String> {
    let mut errors = Vec::new();
    let spec = &policy.spec;
    if let Some(selector) = &spec.namespace_selector {
        errors.extend(selector_errors("spec.namespaceSelector", selector));
    }
    if let Some(enforcement) = &spec.enforcement {
        for (i, o) in enforcement.overrides.iter().enumerate() {
            if super::catalogue::control(&o.control).is_none() {
                errors.push(format!(
                    "spec.enforcement.overrides[{i}].control: {:?} is not a control Annexa evaluates (see `annexa controls`)",
                    o.control
                ));
            }
        }
    }
    for (i, e) in spec.exceptions.iter().enumerate() {
        if super::catalogue::control(&e.control).is_none() {
            errors.push(format!(
                "spec.exceptions[{i}].control: {:?} is not a control Annexa evaluates (see `annexa controls`)",
                e.control
            ));
        }
    }
    let durations = [
        (
            "spec.promotion.approvalTTL",
            spec.promotion
                .as_ref()
                .and_then(|p| p.approval_ttl.as_deref()),
        ),
        (
            "spec.agents.maxTokenTTL",
            spec.agents
                .as_ref()
                .and_then(|a| a.max_token_ttl.as_deref()),
        ),
        (
            "spec.retention.maxRetention",
            spec.retention
                .as_ref()
                .and_then(|r| r.max_retention.as_deref()),
        ),
    ];
    for (field, value) in durations {
        if let Some(Err(e)) = value.map(parse_duration) {
            errors.push(format!("{field}: {e}"));
        }
    }
    if let Some(gpu) = &spec.gpu {
        let mut seen = Vec::new();
        for (i, pool) in gpu.pools.iter().enumerate() {
            if seen.contains(&pool.classification) {
                errors.push(format!(
                    "spec.gpu.pools[{i}].classification: a pool for {} is already defined",
                    pool.classification
                ));
            }
            seen.push(pool.classification);
            if pool.node_selector.is_empty() && pool.taint.is_none() {
                errors.push(format!(
                    "spec.gpu.pools[{i}]: a pool needs a nodeSelector or a taint to isolate anything"
                ));
            }
        }
    }
    errors
}
