//! What Annexa's controllers will do on behalf of the user who writes an object, as the
//! permissions that user must hold (no confused deputy). Pure: the webhook asks the API server
//! (SubjectAccessReview, as the requesting user) about each [`AccessCheck`]; nothing here talks
//! to a cluster.
//!
//! - TrainingDataset with `credentialsSecret` and allowed service accounts: the controller writes
//!   a Role letting them read the Secret, so the user must be able to `get` it (A.8.3);
//! - TrainingDataset with `retention.onExpiry: Delete` and a PVC source: the controller deletes
//!   the PVC at expiry, so the user must be able to `delete` it (A.8.10);
//! - AgentPolicy: the controller writes a Role with the declared rules, so the user must hold
//!   every permission granted, or have `escalate` on Roles in the namespace, the rule
//!   kube-apiserver applies to anyone creating a Role (A.8.2).

use super::catalogue::{A_8_2, A_8_3, A_8_10, Control};
use crate::api::{AgentPolicy, OnExpiry, TrainingDataset};

/// The RBAC API group.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
/// Permissions of one AgentPolicy checked one by one at most; past this only `escalate` on
/// Roles admits it (the webhook answers within its deadline).
pub const MAX_CHECKS: usize = 64;

/// One question for the API server: may the user do `verb` on this resource?
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessCheck {
    pub namespace: String,
    pub verb: String,
    /// API group (`""`: core).
    pub group: String,
    pub resource: String,
    pub subresource: Option<String>,
    pub name: Option<String>,
}

impl AccessCheck {
    /// `verb` on `resource` (`pods/exec` splits into resource and subresource).
    pub fn new(
        namespace: &str,
        verb: &str,
        group: &str,
        resource: &str,
        name: Option<&str>,
    ) -> Self {
        let (resource, subresource) = match resource.split_once('/') {
            Some((r, s)) => (r.to_string(), Some(s.to_string())),
            None => (resource.to_string(), None),
        };
        Self {
            namespace: namespace.to_string(),
            verb: verb.to_string(),
            group: group.to_string(),
            resource,
            subresource,
            name: name.map(str::to_string),
        }
    }

    /// `escalate` on Roles in the namespace: lets a user write a Role granting what they lack.
    pub fn escalate_roles(namespace: &str) -> Self {
        Self::new(namespace, "escalate", RBAC_GROUP, "roles", None)
    }

    /// `"get" on secrets "db" in namespace "team"` (what a refusal names).
    pub fn describe(&self) -> String {
        let mut resource = self.resource.clone();
        if let Some(sub) = &self.subresource {
            resource = format!("{resource}/{sub}");
        }
        if !self.group.is_empty() {
            resource = format!("{resource}.{}", self.group);
        }
        match &self.name {
            Some(name) => format!(
                "{:?} on {resource} {name:?} in namespace {:?}",
                self.verb, self.namespace
            ),
            None => format!(
                "{:?} on {resource} in namespace {:?}",
                self.verb, self.namespace
            ),
        }
    }
}

/// A permission the requesting user must hold, with the control and field it comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delegated {
    pub control: &'static Control,
    /// The field of the object that asks for it.
    pub path: String,
    pub check: AccessCheck,
    /// What Annexa will do with it, for the refusal: `grant it to service accounts ["x"]`.
    pub purpose: String,
}

/// What must be verified for an object before Annexa acts on it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delegation {
    /// Every permission the user must hold...
    pub each: Vec<Delegated>,
    /// ...unless the user may do this instead (`escalate` on Roles, for an agent's rules).
    pub or_else: Option<Delegated>,
}

impl Delegation {
    pub fn is_empty(&self) -> bool {
        self.each.is_empty() && self.or_else.is_none()
    }
}

/// What a TrainingDataset's controller will do for its author.
pub fn dataset(dataset: &TrainingDataset) -> Delegation {
    let namespace = dataset.metadata.namespace.as_deref().unwrap_or("default");
    let spec = &dataset.spec;
    let mut each = Vec::new();
    let accounts = spec
        .access
        .as_ref()
        .map(|a| a.allowed_service_accounts.as_slice())
        .unwrap_or_default();
    if let Some(secret) = &spec.credentials_secret
        && !accounts.is_empty()
    {
        each.push(Delegated {
            control: &A_8_3,
            path: "spec.credentialsSecret".to_string(),
            check: AccessCheck::new(namespace, "get", "", "secrets", Some(secret)),
            purpose: format!("grant reading it to service accounts {accounts:?}"),
        });
    }
    let deletes = spec
        .retention
        .as_ref()
        .is_some_and(|r| r.on_expiry == OnExpiry::Delete);
    if deletes && let Some(pvc) = &spec.source.pvc {
        each.push(Delegated {
            control: &A_8_10,
            path: "spec.source.pvc".to_string(),
            check: AccessCheck::new(namespace, "delete", "", "persistentvolumeclaims", Some(pvc)),
            purpose: "delete it when the retention expires".to_string(),
        });
    }
    Delegation {
        each,
        or_else: None,
    }
}

/// What an AgentPolicy's controller will grant for its author: every permission of every
/// rule, or `escalate` on Roles (kube-apiserver's escalation check for Role writes).
pub fn agent(agent: &AgentPolicy) -> Delegation {
    let namespace = agent.metadata.namespace.as_deref().unwrap_or("default");
    let account = &agent.spec.service_account_name;
    let mut each: Vec<Delegated> = Vec::new();
    for (i, rule) in agent.spec.permissions.iter().enumerate() {
        let groups = rule.api_groups.as_deref().unwrap_or_default();
        let resources = rule.resources.as_deref().unwrap_or_default();
        let names: Vec<Option<&str>> = match rule.resource_names.as_deref() {
            Some(names) if !names.is_empty() => names.iter().map(|n| Some(n.as_str())).collect(),
            _ => vec![None],
        };
        for group in groups {
            for resource in resources {
                for verb in &rule.verbs {
                    for name in &names {
                        let check = AccessCheck::new(namespace, verb, group, resource, *name);
                        if each.iter().any(|d| d.check == check) {
                            continue;
                        }
                        each.push(Delegated {
                            control: &A_8_2,
                            path: format!("spec.permissions[{i}]"),
                            check,
                            purpose: format!("grant it to service account {account:?}"),
                        });
                    }
                }
            }
        }
    }
    if each.is_empty() {
        return Delegation::default();
    }
    Delegation {
        each,
        or_else: Some(Delegated {
            control: &A_8_2,
            path: "spec.permissions".to_string(),
            check: AccessCheck::escalate_roles(namespace),
            purpose: format!("write a Role granting service account {account:?} what you lack"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent_of(yaml: &str) -> AgentPolicy {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn agent_rules_expand_into_one_check_per_permission_with_escalate_as_the_alternative() {
        let a = agent_of(
            r#"
apiVersion: annexa.dev/v1alpha1
kind: AgentPolicy
metadata: {name: bot, namespace: team}
spec:
  serviceAccountName: bot
  permissions:
    - apiGroups: ["", apps]
      resources: [configmaps, pods/log]
      resourceNames: [a, b]
      verbs: [get]
    - apiGroups: [""]
      resources: [configmaps]
      resourceNames: [a]
      verbs: [get, list]
"#,
        );
        let d = agent(&a);
        let described: Vec<String> = d.each.iter().map(|d| d.check.describe()).collect();
        assert_eq!(
            described,
            [
                r#""get" on configmaps "a" in namespace "team""#,
                r#""get" on configmaps "b" in namespace "team""#,
                r#""get" on pods/log "a" in namespace "team""#,
                r#""get" on pods/log "b" in namespace "team""#,
                r#""get" on configmaps.apps "a" in namespace "team""#,
                r#""get" on configmaps.apps "b" in namespace "team""#,
                r#""get" on pods/log.apps "a" in namespace "team""#,
                r#""get" on pods/log.apps "b" in namespace "team""#,
                r#""list" on configmaps "a" in namespace "team""#,
            ]
        );
        assert_eq!(d.each[2].check.resource, "pods");
        assert_eq!(d.each[2].check.subresource.as_deref(), Some("log"));
        assert_eq!(d.each[8].path, "spec.permissions[1]");
        let escalate = d.or_else.unwrap();
        assert_eq!(escalate.check, AccessCheck::escalate_roles("team"));
        assert_eq!(escalate.control.id, "A.8.2");
    }

    #[test]
    fn datasets_need_get_on_the_secret_only_when_someone_is_granted_it_and_delete_only_on_expiry_delete()
     {
        let base = r#"
apiVersion: annexa.dev/v1alpha1
kind: TrainingDataset
metadata: {name: claims, namespace: team}
spec:
  source: {pvc: claims-data}
  classification: Internal
  credentialsSecret: claims-creds
"#;
        let d: TrainingDataset = serde_yaml_ng::from_str(base).unwrap();
        assert!(
            dataset(&d).is_empty(),
            "nobody is granted the Secret, nothing is deleted"
        );
        let full = format!(
            "{base}  access: {{allowedServiceAccounts: [trainer]}}\n  retention: {{period: 30d, onExpiry: Delete}}\n"
        );
        let d: TrainingDataset = serde_yaml_ng::from_str(&full).unwrap();
        let delegation = dataset(&d);
        let checks: Vec<(&str, String)> = delegation
            .each
            .iter()
            .map(|d| (d.control.id, d.check.describe()))
            .collect();
        assert_eq!(
            checks,
            [
                (
                    "A.8.3",
                    r#""get" on secrets "claims-creds" in namespace "team""#.to_string()
                ),
                (
                    "A.8.10",
                    r#""delete" on persistentvolumeclaims "claims-data" in namespace "team""#
                        .to_string()
                ),
            ]
        );
        assert!(
            delegation.or_else.is_none(),
            "no alternative to holding them"
        );
    }
}
