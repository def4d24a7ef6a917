//! Rules for AgentPolicy: A.5.15, A.5.18, A.8.2, A.8.12, A.8.20.

use super::catalogue::{A_5_15, A_5_18, A_8_2, A_8_12, A_8_20};
use super::duration::{format_duration, parse_duration};
use super::{Context, Evaluation, ObjectRef, Recorder};
use crate::api::{AgentPolicy, ForbiddenPermission, Kind};
use k8s_openapi::api::rbac::v1::PolicyRule;
use std::sync::Arc;

pub const KIND: &str = Kind::AgentPolicy.name();

/// The AgentPolicy that governs a ServiceAccount several of them name: the most senior
/// ([`AgentPolicy::seniority`]: the oldest `creationTimestamp`, then the first by name), whatever
/// order `agents` comes in. `annexa check` (files, in file order) and the cluster (a store, in
/// no order) both decide by this, so they agree; objects written by hand carry no timestamp and
/// count as older than any that does, so between them the name decides.
pub fn governing_agent<'a>(
    agents: impl IntoIterator<Item = &'a Arc<AgentPolicy>>,
    namespace: &str,
    service_account: &str,
) -> Option<Arc<AgentPolicy>> {
    agents
        .into_iter()
        .filter(|a| {
            a.metadata.namespace.as_deref() == Some(namespace)
                && a.spec.service_account_name == service_account
        })
        .min_by(|a, b| a.seniority().cmp(&b.seniority()))
        .cloned()
}

/// Whether a rule lets the holder read Secrets.
pub fn reads_secrets(rule: &PolicyRule) -> bool {
    let groups = rule.api_groups.as_deref().unwrap_or_default();
    let resources = rule.resources.as_deref().unwrap_or_default();
    let core = groups.iter().any(|g| g.is_empty() || g == "*");
    let secrets = resources.iter().any(|r| r == "secrets" || r == "*");
    let reads = rule
        .verbs
        .iter()
        .any(|v| matches!(v.as_str(), "get" | "list" | "watch" | "*"));
    core && secrets && reads
}

/// The permissions of `forbidden` that `rule` grants, as `(verb, resource)` pairs (a wildcard in
/// the rule grants every forbidden verb or resource it covers).
pub fn forbidden_grants<'a>(
    rule: &'a PolicyRule,
    forbidden: &'a [ForbiddenPermission],
) -> Vec<(&'a str, &'a str)> {
    let groups = rule.api_groups.as_deref().unwrap_or_default();
    let resources = rule.resources.as_deref().unwrap_or_default();
    let mut found = Vec::new();
    // Every resource: reported once by the caller, not once per forbidden permission.
    if resources.iter().any(|r| r == "*") {
        return found;
    }
    for f in forbidden {
        if !groups.iter().any(|g| *g == f.api_group || g == "*") {
            continue;
        }
        for resource in &f.resources {
            let base = resource.split('/').next().unwrap_or(resource);
            let covered = resources.iter().any(|r| {
                r == resource
                    || (resource.contains('/') && *r == format!("{base}/*"))
                    || (resource.contains('/')
                        && *r == format!("*/{}", &resource[base.len() + 1..]))
            });
            if !covered {
                continue;
            }
            for verb in &f.verbs {
                let granted = if verb == "*" {
                    rule.verbs.first().map(String::as_str)
                } else {
                    rule.verbs
                        .iter()
                        .find(|v| *v == verb || *v == "*")
                        .map(|_| verb.as_str())
                };
                if let Some(v) = granted
                    && !found.contains(&(v, resource.as_str()))
                {
                    found.push((v, resource.as_str()));
                }
            }
        }
    }
    found
}

/// Whether a CIDR is syntactically valid (IPv4 or IPv6 with a prefix length).
pub fn valid_cidr(cidr: &str) -> bool {
    let Some((addr, prefix)) = cidr.split_once('/') else {
        return false;
    };
    let Ok(prefix) = prefix.parse::<u8>() else {
        return false;
    };
    match addr.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => prefix <= 32,
        Ok(std::net::IpAddr::V6(_)) => prefix <= 128,
        Err(_) => false,
    }
}

pub fn evaluate(agent: &AgentPolicy, ctx: &Context<'_>) -> Evaluation {
    let name = agent.metadata.name.as_deref().unwrap_or_default();
    let namespace = agent.metadata.namespace.as_deref().unwrap_or("default");
    let mut rec = Recorder::new(KIND, ObjectRef::new(KIND, Some(namespace), name), ctx);
    let spec = &agent.spec;
    let profile = ctx.profile;

    for (i, rule) in spec.permissions.iter().enumerate() {
        let path = format!("spec.permissions[{i}]");
        // A.5.15: explicit groups and resources.
        if rule
            .api_groups
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|g| g == "*")
        {
            rec.fail(
                &A_5_15,
                format!("{path}.apiGroups"),
                format_args!("agent {name:?} is granted every API group (\"*\")"),
            );
        }
        if rule
            .resources
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|r| r == "*" || r.starts_with("*/"))
        {
            rec.fail(
                &A_5_15,
                format!("{path}.resources"),
                format_args!("agent {name:?} is granted every resource (\"*\")"),
            );
        }
        if rule.resources.as_deref().unwrap_or_default().is_empty() {
            rec.fail(
                &A_5_15,
                format!("{path}.resources"),
                format_args!("agent {name:?} has a rule that names no resources"),
            );
        }
        if rule
            .non_resource_urls
            .as_deref()
            .is_some_and(|u| !u.is_empty())
        {
            rec.fail(&A_5_15, format!("{path}.nonResourceURLs"), format_args!("agent {name:?} is granted non-resource URLs, which a namespaced Role cannot scope"));
        }
        // A.8.2: forbidden verbs and Secrets.
        for verb in &rule.verbs {
            if profile.forbidden_verbs.iter().any(|f| f == verb) {
                rec.fail(
                    &A_8_2,
                    format!("{path}.verbs"),
                    format_args!("agent {name:?} is granted the forbidden verb {verb:?}"),
                );
            }
        }
        let every_resource = rule
            .resources
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|r| r == "*");
        if every_resource && !profile.forbidden_permissions.is_empty() && !rule.verbs.is_empty() {
            rec.fail(
                &A_8_2,
                format!("{path}.resources"),
                format_args!(
                    "agent {name:?} is granted every resource (\"*\"), the dangerous permissions the policy forbids included"
                ),
            );
        }
        for (verb, resource) in forbidden_grants(rule, &profile.forbidden_permissions) {
            rec.fail(
                &A_8_2,
                format!("{path}.resources"),
                format_args!(
                    "agent {name:?} is granted {verb:?} on {resource:?}, a dangerous permission the policy forbids"
                ),
            );
        }
        if !profile.allow_secret_read && reads_secrets(rule) {
            rec.fail(
                &A_8_2,
                format!("{path}.resources"),
                format_args!("agent {name:?} may read Secrets, which the policy forbids"),
            );
        }
    }
    if spec.permissions.is_empty() {
        rec.pass_note(&A_5_15, "no permissions granted");
    }

    // A.5.18: time-bound tokens.
    match spec.token_ttl.as_deref().map(parse_duration) {
        None => rec.fail(&A_5_18, "spec.tokenTTL", format_args!(
            "agent {name:?} declares no token TTL (at most {})", format_duration(profile.max_token_ttl)
        )),
        Some(Err(e)) => rec.fail(&A_5_18, "spec.tokenTTL", format_args!("agent {name:?} spec.tokenTTL: {e}")),
        Some(Ok(ttl)) if ttl > profile.max_token_ttl => rec.fail(&A_5_18, "spec.tokenTTL", format_args!(
            "agent {name:?} token TTL {} exceeds the maximum of {}",
            format_duration(ttl), format_duration(profile.max_token_ttl)
        )),
        Some(Ok(ttl)) if ttl.as_secs() < 600 => rec.fail(&A_5_18, "spec.tokenTTL", format_args!(
            "agent {name:?} token TTL {} is below the 10m minimum the API server accepts for projected tokens",
            format_duration(ttl)
        )),
        Some(Ok(_)) => {}
    }

    // A.8.12: an egress allow-list, never the whole internet.
    if spec.egress.is_empty() {
        if profile.require_egress_allow_list {
            rec.fail(
                &A_8_12,
                "spec.egress",
                format_args!("agent {name:?} declares no egress allow-list"),
            );
        } else {
            rec.not_applicable(&A_8_12, "the policy does not require an egress allow-list");
        }
    }
    for (i, rule) in spec.egress.iter().enumerate() {
        let cidr = rule.cidr.trim();
        if cidr.ends_with("/0") {
            rec.fail(
                &A_8_12,
                format!("spec.egress[{i}].cidr"),
                format_args!("agent {name:?} may reach the whole internet ({cidr})"),
            );
        }
        // A.8.20: well-formed, explicit rules.
        if !valid_cidr(cidr) {
            rec.fail(
                &A_8_20,
                format!("spec.egress[{i}].cidr"),
                format_args!("agent {name:?} egress {cidr:?} is not a valid CIDR"),
            );
        }
        if rule.ports.is_empty() {
            rec.fail(
                &A_8_20,
                format!("spec.egress[{i}].ports"),
                format_args!("agent {name:?} egress to {cidr} opens every port"),
            );
        }
        for (j, port) in rule.ports.iter().enumerate() {
            if !(1..=65535).contains(port) {
                rec.fail(
                    &A_8_20,
                    format!("spec.egress[{i}].ports[{j}]"),
                    format_args!("agent {name:?} egress port {port} is not a valid port"),
                );
            }
        }
        if let Some(p) = rule.protocol.as_deref()
            && !matches!(p, "TCP" | "UDP" | "SCTP")
        {
            rec.fail(
                &A_8_20,
                format!("spec.egress[{i}].protocol"),
                format_args!("agent {name:?} egress protocol {p:?} is not TCP, UDP or SCTP"),
            );
        }
    }
    if spec.egress.is_empty() {
        rec.not_applicable(&A_8_20, "no egress rules");
    }
    rec.finish()
}
