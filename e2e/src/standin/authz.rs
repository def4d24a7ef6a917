//! Authorisation as kube-apiserver's RBAC authoriser decides it: request attributes from the
//! URL (its RequestInfo), Roles and ClusterRoles reached through RoleBindings and
//! ClusterRoleBindings, `system:masters`, impersonation, privilege-escalation prevention on RBAC
//! writes, the access reviews, and ClusterRole aggregation (done by kube-controller-manager on a
//! cluster, here right after each ClusterRole write).

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::User;
use super::api::ApiError;
use super::registry::GroupResource;
use super::selectors::LabelSelector;
use super::store::{self, State, meta_str, now_rfc3339};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
const MASTERS: &str = "system:masters";
const SA_PREFIX: &str = "system:serviceaccount:";

/// What a request asks to do (kube-apiserver's authorizer.Attributes, without the user).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attributes {
    pub verb: String,
    pub resource_request: bool,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    pub namespace: String,
    pub path: String,
}

impl Attributes {
    /// A resource request (group, resource, optional `resource/subresource`).
    pub fn resource(verb: &str, group: &str, resource: &str, namespace: &str, name: &str) -> Self {
        let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
        Self {
            verb: verb.into(),
            resource_request: true,
            group: group.into(),
            resource: resource.into(),
            subresource: subresource.into(),
            namespace: namespace.into(),
            name: name.into(),
            ..Self::default()
        }
    }
}

/// The attributes of an HTTP request, as kube-apiserver's RequestInfoFactory derives them.
pub fn request_info(method: &str, path: &str, query: &HashMap<String, String>) -> Attributes {
    let mut a = Attributes {
        verb: method.to_ascii_lowercase(),
        path: path.to_string(),
        ..Attributes::default()
    };
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if parts.len() < 3 {
        return a;
    }
    let rest: &[&str] = match parts[0] {
        "api" => &parts[1..],
        "apis" if parts.len() >= 4 => {
            a.group = parts[1].to_string();
            &parts[2..]
        }
        _ => return a,
    };
    a.resource_request = true;
    a.version = rest[0].to_string();
    let mut rest = &rest[1..];
    a.verb = match method {
        "POST" => "create",
        "GET" | "HEAD" => "get",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        _ => "",
    }
    .to_string();
    if rest.first() == Some(&"namespaces")
        && let Some(ns) = rest.get(1)
    {
        a.namespace = ns.to_string();
        if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
            rest = &rest[2..];
        }
    }
    if let Some(sub) = rest.get(2) {
        a.subresource = sub.to_string();
    }
    if let Some(name) = rest.get(1) {
        a.name = name.to_string();
    }
    if let Some(resource) = rest.first() {
        a.resource = resource.to_string();
    }
    if a.name.is_empty() && a.verb == "get" {
        let watch = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
        a.verb = if watch { "watch" } else { "list" }.into();
        // A list or watch of one object by field selector is authorised for that name.
        if let Some(selector) = query.get("fieldSelector") {
            let single = selector
                .strip_prefix("metadata.name==")
                .or_else(|| selector.strip_prefix("metadata.name="));
            if let Some(name) = single.filter(|n| !n.contains(',') && !n.is_empty()) {
                a.name = name.to_string();
            }
        }
    }
    if a.name.is_empty() && a.verb == "delete" {
        a.verb = "deletecollection".into();
    }
    a
}

/// One RBAC rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    #[serde(default)]
    pub verbs: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
    #[serde(
        default,
        rename = "nonResourceURLs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub non_resource_urls: Vec<String>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl PolicyRule {
    pub fn from_json(v: &Value) -> Self {
        Self {
            verbs: strings(&v["verbs"]),
            api_groups: strings(&v["apiGroups"]),
            resources: strings(&v["resources"]),
            resource_names: strings(&v["resourceNames"]),
            non_resource_urls: strings(&v["nonResourceURLs"]),
        }
    }

    /// kube-apiserver's `CompactString`, used in escalation errors.
    pub fn compact(&self) -> String {
        let quoted = |v: &[String]| {
            let items: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
            format!("[{}]", items.join(" "))
        };
        let mut parts = Vec::new();
        for (label, list) in [
            ("APIGroups", &self.api_groups),
            ("Resources", &self.resources),
            ("NonResourceURLs", &self.non_resource_urls),
            ("ResourceNames", &self.resource_names),
            ("Verbs", &self.verbs),
        ] {
            if !list.is_empty() {
                parts.push(format!("{label}:{}", quoted(list)));
            }
        }
        format!("{{{}}}", parts.join(", "))
    }
}

fn rules_of(role: &Value) -> Vec<PolicyRule> {
    role["rules"]
        .as_array()
        .map(|rs| rs.iter().map(PolicyRule::from_json).collect())
        .unwrap_or_default()
}

fn has(list: &[String], item: &str) -> bool {
    list.iter().any(|s| s == item)
}

fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    has(&rule.verbs, "*") || has(&rule.verbs, verb)
}

fn resource_matches(rule: &PolicyRule, a: &Attributes) -> bool {
    let combined = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    rule.resources.iter().any(|r| {
        r == "*"
            || *r == combined
            || (!a.subresource.is_empty() && *r == format!("*/{}", a.subresource))
    })
}

fn url_matches(rule: &PolicyRule, path: &str) -> bool {
    rule.non_resource_urls.iter().any(|u| {
        u == "*"
            || u == path
            || u.strip_suffix('*')
                .is_some_and(|prefix| path.starts_with(prefix))
    })
}

/// Whether one rule allows a request (kube-apiserver's `RuleAllows`).
pub fn rule_allows(a: &Attributes, rule: &PolicyRule) -> bool {
    if a.resource_request {
        verb_matches(rule, &a.verb)
            && (has(&rule.api_groups, "*") || has(&rule.api_groups, &a.group))
            && resource_matches(rule, a)
            && (rule.resource_names.is_empty() || has(&rule.resource_names, &a.name))
    } else {
        verb_matches(rule, &a.verb) && url_matches(rule, &a.path)
    }
}

fn rbac_gr(resource: &str) -> GroupResource {
    GroupResource {
        group: RBAC_GROUP.into(),
        resource: resource.into(),
    }
}

fn subject_applies(user: &User, subject: &Value, binding_namespace: &str) -> bool {
    let name = subject["name"].as_str().unwrap_or_default();
    match subject["kind"].as_str().unwrap_or_default() {
        "User" => user.name == name,
        "Group" => has(&user.groups, name),
        "ServiceAccount" => {
            let ns = subject["namespace"]
                .as_str()
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_namespace);
            !ns.is_empty() && user.name == format!("{SA_PREFIX}{ns}:{name}")
        }
        _ => false,
    }
}

fn describe_subject(subject: &Value, binding_namespace: &str) -> String {
    let kind = subject["kind"].as_str().unwrap_or_default();
    let name = subject["name"].as_str().unwrap_or_default();
    if kind == "ServiceAccount" {
        let ns = subject["namespace"]
            .as_str()
            .filter(|n| !n.is_empty())
            .unwrap_or(binding_namespace);
        format!("{kind} \"{name}/{ns}\"")
    } else {
        format!("{kind} \"{name}\"")
    }
}

/// Walks every rule that applies to `user` in `namespace` (cluster-wide rules always), as
/// kube-apiserver's rule resolver does; `visit` returns false to stop. Bindings that name a
/// missing role are reported in `errors` with kube-apiserver's wording.
fn visit_rules(
    st: &State,
    user: &User,
    namespace: &str,
    errors: &mut Vec<String>,
    mut visit: impl FnMut(&str, &PolicyRule) -> bool,
) {
    let crb = rbac_gr("clusterrolebindings");
    let cr = rbac_gr("clusterroles");
    for (_, binding) in st.list(&crb, None) {
        let Some(subject) = binding["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| subject_applies(user, s, ""))
        else {
            continue;
        };
        let role_name = binding["roleRef"]["name"].as_str().unwrap_or_default();
        if binding["roleRef"]["kind"] != "ClusterRole" {
            continue;
        }
        let Some(role) = st.get(&cr, "", role_name) else {
            errors.push(format!(
                "clusterrole.rbac.authorization.k8s.io \"{role_name}\" not found"
            ));
            continue;
        };
        let source = format!(
            "ClusterRoleBinding \"{}\" of ClusterRole \"{role_name}\" to {}",
            meta_str(binding, "name"),
            describe_subject(subject, "")
        );
        for rule in rules_of(role) {
            if !visit(&source, &rule) {
                return;
            }
        }
    }
    if namespace.is_empty() {
        return;
    }
    let rb = rbac_gr("rolebindings");
    let roles = rbac_gr("roles");
    for (_, binding) in st.list(&rb, Some(namespace)) {
        let Some(subject) = binding["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| subject_applies(user, s, namespace))
        else {
            continue;
        };
        let role_name = binding["roleRef"]["name"].as_str().unwrap_or_default();
        let role_kind = binding["roleRef"]["kind"].as_str().unwrap_or_default();
        let role = match role_kind {
            "Role" => st.get(&roles, namespace, role_name),
            "ClusterRole" => st.get(&cr, "", role_name),
            _ => continue,
        };
        let Some(role) = role else {
            errors.push(format!(
                "{}.rbac.authorization.k8s.io \"{role_name}\" not found",
                role_kind.to_ascii_lowercase()
            ));
            continue;
        };
        let source = format!(
            "RoleBinding \"{}/{namespace}\" of {role_kind} \"{role_name}\" to {}",
            meta_str(binding, "name"),
            describe_subject(subject, namespace)
        );
        for rule in rules_of(role) {
            if !visit(&source, &rule) {
                return;
            }
        }
    }
}

/// Every rule that applies to `user` in `namespace`, and the resolution errors.
pub fn rules_for(st: &State, user: &User, namespace: &str) -> (Vec<PolicyRule>, Vec<String>) {
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    visit_rules(st, user, namespace, &mut errors, |_, rule| {
        rules.push(rule.clone());
        true
    });
    (rules, errors)
}

/// An authorisation decision and its reason (empty, as RBAC leaves it, when nothing matched).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
}

fn aggregate_errors(errors: &[String]) -> String {
    match errors {
        [] => String::new(),
        [one] => format!("RBAC: {one}"),
        many => format!("RBAC: [{}]", many.join(", ")),
    }
}

/// Decides a request as kube-apiserver's authorisers do (system:masters, then RBAC).
pub fn authorize(st: &State, user: &User, a: &Attributes) -> Decision {
    if has(&user.groups, MASTERS) {
        return Decision {
            allowed: true,
            reason: String::new(),
        };
    }
    let mut errors = Vec::new();
    let mut allowed_by = None;
    visit_rules(st, user, &a.namespace, &mut errors, |source, rule| {
        if rule_allows(a, rule) {
            allowed_by = Some(format!("RBAC: allowed by {source}"));
            false
        } else {
            true
        }
    });
    match allowed_by {
        Some(reason) => Decision {
            allowed: true,
            reason,
        },
        None => Decision {
            allowed: false,
            reason: aggregate_errors(&errors),
        },
    }
}

/// A 403 as kube-apiserver's `NewForbidden` writes it.
pub fn new_forbidden(group: &str, resource: &str, name: &str, err: &str) -> ApiError {
    let qualified = if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    };
    let message = if resource.is_empty() {
        format!("forbidden: {err}")
    } else if name.is_empty() {
        format!("{qualified} is forbidden: {err}")
    } else {
        format!("{qualified} \"{name}\" is forbidden: {err}")
    };
    let mut details = serde_json::Map::new();
    for (k, v) in [("name", name), ("group", group), ("kind", resource)] {
        if !v.is_empty() {
            details.insert(k.into(), json!(v));
        }
    }
    ApiError::new(403, "Forbidden", message).with_details(Value::Object(details))
}

/// The 403 for a denied request, in kube-apiserver's wording.
pub fn forbidden(user: &User, a: &Attributes, reason: &str) -> ApiError {
    let what = if !a.resource_request {
        format!(
            "User \"{}\" cannot {} path \"{}\"",
            user.name, a.verb, a.path
        )
    } else {
        let resource = if a.subresource.is_empty() {
            a.resource.clone()
        } else {
            format!("{}/{}", a.resource, a.subresource)
        };
        let scope = if a.namespace.is_empty() {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace \"{}\"", a.namespace)
        };
        format!(
            "User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
            user.name, a.verb, a.group
        )
    };
    let err = if reason.is_empty() {
        what
    } else {
        format!("{what}: {reason}")
    };
    new_forbidden(&a.group, &a.resource, &a.name, &err)
}

/// Allows or refuses a request with kube-apiserver's 403.
pub fn check(st: &State, user: &User, a: &Attributes) -> Result<Decision, ApiError> {
    let decision = authorize(st, user, a);
    if decision.allowed {
        Ok(decision)
    } else {
        Err(forbidden(user, a, &decision.reason))
    }
}

/// The groups kube-apiserver gives a ServiceAccount.
pub fn service_account_user(namespace: &str, name: &str, uid: &str) -> User {
    User {
        name: format!("{SA_PREFIX}{namespace}:{name}"),
        uid: uid.to_string(),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{namespace}"),
            "system:authenticated".into(),
        ],
    }
}

/// `system:serviceaccount:NS:NAME` split into (NS, NAME).
pub fn split_service_account(username: &str) -> Option<(&str, &str)> {
    let rest = username.strip_prefix(SA_PREFIX)?;
    let (ns, name) = rest.split_once(':')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then_some((ns, name))
}

/// What a request asks to act as (the `Impersonate-*` headers).
#[derive(Clone, Debug, Default)]
pub struct Impersonation {
    pub user: Option<String>,
    pub groups: Vec<String>,
    pub uid: Option<String>,
    pub extra: Vec<(String, String)>,
}

/// The user a request acts as: each impersonated user, service account, group, uid and extra
/// value must be allowed to `actor` with the `impersonate` verb, as kube-apiserver checks it.
pub fn impersonate(st: &State, actor: &User, request: &Impersonation) -> Result<User, ApiError> {
    let Some(username) = &request.user else {
        if request.groups.is_empty() && request.uid.is_none() && request.extra.is_empty() {
            return Ok(actor.clone());
        }
        return Err(ApiError::new(
            500,
            "InternalError",
            "Internal error occurred: requested impersonation of groups, uid or extras without impersonating a user",
        ));
    };
    let mut checks = Vec::new();
    let mut groups = request.groups.clone();
    match split_service_account(username) {
        Some((ns, name)) => {
            checks.push(Attributes::resource(
                "impersonate",
                "",
                "serviceaccounts",
                ns,
                name,
            ));
            if groups.is_empty() {
                groups = vec![
                    "system:serviceaccounts".into(),
                    format!("system:serviceaccounts:{ns}"),
                ];
            }
        }
        None => checks.push(Attributes::resource(
            "impersonate",
            "",
            "users",
            "",
            username,
        )),
    }
    for g in &request.groups {
        checks.push(Attributes::resource("impersonate", "", "groups", "", g));
    }
    if let Some(uid) = &request.uid {
        checks.push(Attributes::resource(
            "impersonate",
            "authentication.k8s.io",
            "uids",
            "",
            uid,
        ));
    }
    for (key, value) in &request.extra {
        checks.push(Attributes::resource(
            "impersonate",
            "authentication.k8s.io",
            &format!("userextras/{key}"),
            "",
            value,
        ));
    }
    for a in &checks {
        check(st, actor, a)?;
    }
    if username != "system:anonymous"
        && !groups
            .iter()
            .any(|g| g == "system:authenticated" || g == "system:unauthenticated")
    {
        groups.push("system:authenticated".into());
    }
    Ok(User {
        name: username.clone(),
        uid: request.uid.clone().unwrap_or_default(),
        groups,
    })
}

/// The rules of `requested` not covered by `owner` (kube-apiserver's `Covers`), each broken
/// down to one verb, group, resource and name.
pub fn uncovered(owner: &[PolicyRule], requested: &[PolicyRule]) -> Vec<PolicyRule> {
    let mut missing = Vec::new();
    for rule in requested {
        for atom in atomize(rule) {
            if !owner.iter().any(|o| covers(o, &atom)) {
                missing.push(atom);
            }
        }
    }
    missing
}

fn atomize(rule: &PolicyRule) -> Vec<PolicyRule> {
    let mut out = Vec::new();
    for verb in &rule.verbs {
        for group in &rule.api_groups {
            for resource in &rule.resources {
                if rule.resource_names.is_empty() {
                    out.push(PolicyRule {
                        verbs: vec![verb.clone()],
                        api_groups: vec![group.clone()],
                        resources: vec![resource.clone()],
                        ..PolicyRule::default()
                    });
                }
                for name in &rule.resource_names {
                    out.push(PolicyRule {
                        verbs: vec![verb.clone()],
                        api_groups: vec![group.clone()],
                        resources: vec![resource.clone()],
                        resource_names: vec![name.clone()],
                        ..PolicyRule::default()
                    });
                }
            }
        }
        for url in &rule.non_resource_urls {
            out.push(PolicyRule {
                verbs: vec![verb.clone()],
                non_resource_urls: vec![url.clone()],
                ..PolicyRule::default()
            });
        }
    }
    out
}

fn covers(owner: &PolicyRule, atom: &PolicyRule) -> bool {
    let all =
        |set: &[String], wanted: &[String]| has(set, "*") || wanted.iter().all(|w| has(set, w));
    if !all(&owner.verbs, &atom.verbs) {
        return false;
    }
    if !atom.non_resource_urls.is_empty() {
        return atom.non_resource_urls.iter().all(|url| {
            owner.non_resource_urls.iter().any(|o| {
                o == "*" || o == url || o.strip_suffix('*').is_some_and(|p| url.starts_with(p))
            })
        });
    }
    let resources_covered = has(&owner.resources, "*")
        || atom.resources.iter().all(|r| {
            has(&owner.resources, r)
                || r.split_once('/')
                    .is_some_and(|(_, sub)| has(&owner.resources, &format!("*/{sub}")))
        });
    all(&owner.api_groups, &atom.api_groups)
        && resources_covered
        && (owner.resource_names.is_empty()
            || (!atom.resource_names.is_empty()
                && atom
                    .resource_names
                    .iter()
                    .all(|n| has(&owner.resource_names, n))))
}

fn full_authority() -> Vec<PolicyRule> {
    vec![
        PolicyRule {
            verbs: vec!["*".into()],
            api_groups: vec!["*".into()],
            resources: vec!["*".into()],
            ..PolicyRule::default()
        },
        PolicyRule {
            verbs: vec!["*".into()],
            non_resource_urls: vec!["*".into()],
            ..PolicyRule::default()
        },
    ]
}

fn confirm_no_escalation(
    st: &State,
    user: &User,
    namespace: &str,
    requested: &[PolicyRule],
) -> Result<(), String> {
    let (owned, errors) = rules_for(st, user, namespace);
    let missing = uncovered(&owned, requested);
    if missing.is_empty() {
        return Ok(());
    }
    let described: BTreeSet<String> = missing.iter().map(PolicyRule::compact).collect();
    let groups: Vec<String> = user.groups.iter().map(|g| format!("{g:?}")).collect();
    let mut message = format!(
        "user \"{}\" (groups=[{}]) is attempting to grant RBAC permissions not currently held:\n{}",
        user.name,
        groups.join(" "),
        described.into_iter().collect::<Vec<_>>().join("\n")
    );
    if !errors.is_empty() {
        message.push_str(&format!("; resolution errors: [{}]", errors.join(", ")));
    }
    Err(message)
}

/// Equal apart from what the garbage collector changes (owner references, finalizers) and
/// bookkeeping: such an update needs no escalation check.
fn only_gc_fields_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v["metadata"].as_object_mut() {
            for f in [
                "ownerReferences",
                "finalizers",
                "managedFields",
                "resourceVersion",
                "generation",
            ] {
                m.remove(f);
            }
        }
        v
    };
    strip(old) == strip(new)
}

/// Privilege-escalation prevention on writes of Roles, ClusterRoles and their bindings, as
/// kube-apiserver's RBAC storage applies it: a user may write a role only with permissions it
/// holds (or with `escalate` on it), and bind a role only when it holds its permissions (or
/// has `bind` on it). system:masters is exempt.
/// `decided` receives each authorisation asked on the way (`escalate`, `bind`).
pub fn check_rbac_write(
    st: &State,
    user: &User,
    resource: &str,
    namespace: &str,
    new: &Value,
    old: Option<&Value>,
    decided: &mut Vec<(Attributes, bool)>,
) -> Result<(), ApiError> {
    if has(&user.groups, MASTERS) {
        return Ok(());
    }
    if old.is_some_and(|o| only_gc_fields_changed(o, new)) {
        return Ok(());
    }
    let name = meta_str(new, "name");
    match resource {
        "roles" | "clusterroles" => {
            let escalate = Attributes::resource("escalate", RBAC_GROUP, resource, namespace, name);
            let allowed = authorize(st, user, &escalate).allowed;
            decided.push((escalate, allowed));
            if allowed {
                return Ok(());
            }
            let rules = if resource == "clusterroles" && new["aggregationRule"].is_object() {
                full_authority()
            } else {
                rules_of(new)
            };
            confirm_no_escalation(st, user, namespace, &rules)
                .map_err(|e| new_forbidden(RBAC_GROUP, resource, name, &e))
        }
        "rolebindings" | "clusterrolebindings" => {
            let role_kind = new["roleRef"]["kind"].as_str().unwrap_or_default();
            let role_name = new["roleRef"]["name"].as_str().unwrap_or_default();
            let role_resource = match role_kind {
                "Role" => "roles",
                "ClusterRole" => "clusterroles",
                _ => {
                    return Err(new_forbidden(
                        RBAC_GROUP,
                        resource,
                        name,
                        "unknown roleRef kind",
                    ));
                }
            };
            let bind =
                Attributes::resource("bind", RBAC_GROUP, role_resource, namespace, role_name);
            let allowed = authorize(st, user, &bind).allowed;
            decided.push((bind, allowed));
            if allowed {
                return Ok(());
            }
            let role_ns = if role_kind == "Role" { namespace } else { "" };
            let Some(role) = st.get(&rbac_gr(role_resource), role_ns, role_name) else {
                return Err(ApiError::new(
                    404,
                    "NotFound",
                    format!("{role_resource}.{RBAC_GROUP} \"{role_name}\" not found"),
                )
                .with_details(
                    json!({"name": role_name, "group": RBAC_GROUP, "kind": role_resource}),
                ));
            };
            confirm_no_escalation(st, user, namespace, &rules_of(role))
                .map_err(|e| new_forbidden(RBAC_GROUP, resource, name, &e))
        }
        _ => Ok(()),
    }
}

/// Creates the default ClusterRoles and ClusterRoleBindings (see `bootstrap-rbac.yaml`).
pub fn bootstrap(st: &mut State) {
    let docs: Vec<Value> =
        serde_yaml_ng::from_str(include_str!("bootstrap-rbac.yaml")).unwrap_or_default();
    for mut doc in docs {
        let resource = match doc["kind"].as_str() {
            Some("ClusterRole") => "clusterroles",
            Some("ClusterRoleBinding") => "clusterrolebindings",
            _ => continue,
        };
        doc["metadata"]["uid"] = json!(store::new_uid());
        doc["metadata"]["creationTimestamp"] = json!(now_rfc3339());
        doc["metadata"]["labels"]["kubernetes.io/bootstrapping"] = json!("rbac-defaults");
        doc["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] =
            json!("true");
        let _ = st.put(&rbac_gr(resource), doc, true);
    }
    aggregate(st);
}

/// Fills the rules of every ClusterRole with an aggregationRule from the ClusterRoles its
/// selectors match, until nothing changes (what kube-controller-manager's
/// clusterrole-aggregation controller converges to).
pub fn aggregate(st: &mut State) {
    let cr = rbac_gr("clusterroles");
    for _round in 0..8 {
        let roles: Vec<Value> = st.list(&cr, None).map(|(_, r)| r.clone()).collect();
        let mut changed = false;
        for role in roles.iter().filter(|r| r["aggregationRule"].is_object()) {
            let selectors: Vec<LabelSelector> = role["aggregationRule"]["clusterRoleSelectors"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| LabelSelector::from_object(s).ok())
                .collect();
            let mut rules: Vec<Value> = Vec::new();
            let own = meta_str(role, "name");
            for other in roles.iter().filter(|o| meta_str(o, "name") != own) {
                if selectors.iter().any(|s| s.matches_object(other)) {
                    for rule in other["rules"].as_array().into_iter().flatten() {
                        if !rules.contains(rule) {
                            rules.push(rule.clone());
                        }
                    }
                }
            }
            if role["rules"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                != rules.as_slice()
            {
                let mut updated = role.clone();
                updated["rules"] = Value::Array(rules);
                let _ = st.put(&cr, updated, false);
                changed = true;
            }
        }
        if !changed {
            return;
        }
    }
}

fn review_attributes(spec: &Value) -> Option<Attributes> {
    let r = &spec["resourceAttributes"];
    if r.is_object() {
        let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
        return Some(Attributes {
            verb: s("verb"),
            resource_request: true,
            group: s("group"),
            version: s("version"),
            resource: s("resource"),
            subresource: s("subresource"),
            name: s("name"),
            namespace: s("namespace"),
            path: String::new(),
        });
    }
    let n = &spec["nonResourceAttributes"];
    n.is_object().then(|| Attributes {
        verb: n["verb"].as_str().unwrap_or_default().to_string(),
        path: n["path"].as_str().unwrap_or_default().to_string(),
        ..Attributes::default()
    })
}

fn review_invalid(kind: &str, errors: &[(String, String)]) -> ApiError {
    let texts: Vec<String> = errors.iter().map(|(f, m)| format!("{f}: {m}")).collect();
    let joined = if texts.len() == 1 {
        texts.join("")
    } else {
        format!("[{}]", texts.join(", "))
    };
    let causes: Vec<Value> = errors
        .iter()
        .map(|(f, m)| json!({"reason": "FieldValueInvalid", "message": m, "field": f}))
        .collect();
    ApiError::new(
        422,
        "Invalid",
        format!("{kind}.authorization.k8s.io \"\" is invalid: {joined}"),
    )
    .with_details(json!({"group": "authorization.k8s.io", "kind": kind, "causes": causes}))
}

/// Answers SubjectAccessReview, LocalSubjectAccessReview, SelfSubjectAccessReview and
/// SelfSubjectRulesReview with the same authoriser that guards every request.
pub fn review(
    st: &State,
    requester: &User,
    resource: &str,
    namespace: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    let spec = &body["spec"];
    let kind = match resource {
        "subjectaccessreviews" => "SubjectAccessReview",
        "localsubjectaccessreviews" => "LocalSubjectAccessReview",
        "selfsubjectaccessreviews" => "SelfSubjectAccessReview",
        "selfsubjectrulesreviews" => "SelfSubjectRulesReview",
        _ => return Err(ApiError::bad_request(format!("no review for {resource}"))),
    };
    let mut metadata = json!({"creationTimestamp": null});
    if !namespace.is_empty() {
        metadata["namespace"] = json!(namespace);
    }
    if resource == "selfsubjectrulesreviews" {
        let ns = spec["namespace"].as_str().unwrap_or_default();
        let (rules, errors) = rules_for(st, requester, ns);
        let mut resource_rules = Vec::new();
        let mut non_resource_rules = Vec::new();
        for rule in rules {
            if rule.non_resource_urls.is_empty() {
                resource_rules.push(json!({
                    "verbs": rule.verbs, "apiGroups": rule.api_groups,
                    "resources": rule.resources, "resourceNames": rule.resource_names,
                }));
            } else {
                non_resource_rules
                    .push(json!({"verbs": rule.verbs, "nonResourceURLs": rule.non_resource_urls}));
            }
        }
        let mut status = json!({
            "resourceRules": resource_rules,
            "nonResourceRules": non_resource_rules,
            "incomplete": !errors.is_empty(),
        });
        if !errors.is_empty() {
            status["evaluationError"] = json!(errors.join(", "));
        }
        return Ok(json!({
            "kind": kind, "apiVersion": "authorization.k8s.io/v1", "metadata": metadata,
            "spec": spec, "status": status,
        }));
    }
    let mut errors = Vec::new();
    let resource_attrs = spec["resourceAttributes"].is_object();
    let non_resource_attrs = spec["nonResourceAttributes"].is_object();
    if resource_attrs && non_resource_attrs {
        errors.push((
            "spec.nonResourceAttributes".to_string(),
            "Invalid value: \"object\": cannot be specified in combination with resourceAttributes"
                .to_string(),
        ));
    }
    if !resource_attrs && !non_resource_attrs {
        errors.push((
            "spec.resourceAttributes".to_string(),
            "Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified"
                .to_string(),
        ));
    }
    let subject = match resource {
        "subjectaccessreviews" | "localsubjectaccessreviews" => {
            let name = spec["user"].as_str().unwrap_or_default().to_string();
            let groups = strings(&spec["groups"]);
            if name.is_empty() && groups.is_empty() {
                errors.push((
                    "spec.user".to_string(),
                    "Invalid value: \"\": at least one of user or group must be specified"
                        .to_string(),
                ));
            }
            // The review asks about exactly the groups given: nothing is added.
            User {
                name,
                uid: spec["uid"].as_str().unwrap_or_default().to_string(),
                groups,
            }
        }
        _ => requester.clone(),
    };
    let mut attrs = review_attributes(spec).unwrap_or_default();
    if resource == "localsubjectaccessreviews" {
        if attrs.namespace.is_empty() {
            attrs.namespace = namespace.to_string();
        } else if attrs.namespace != namespace {
            errors.push((
                "spec.resourceAttributes.namespace".to_string(),
                format!(
                    "Invalid value: \"{}\": must match metadata.namespace",
                    attrs.namespace
                ),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(review_invalid(kind, &errors));
    }
    let decision = authorize(st, &subject, &attrs);
    let mut status = json!({"allowed": decision.allowed});
    if !decision.reason.is_empty() {
        status["reason"] = json!(decision.reason);
    }
    Ok(json!({
        "kind": kind, "apiVersion": "authorization.k8s.io/v1", "metadata": metadata,
        "spec": spec, "status": status,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        PolicyRule {
            verbs: v(verbs),
            api_groups: v(groups),
            resources: v(resources),
            resource_names: v(names),
            non_resource_urls: Vec::new(),
        }
    }

    #[test]
    fn request_info_follows_kube_apiserver() {
        let q = HashMap::new();
        let a = request_info("GET", "/api/v1/namespaces/ns/pods", &q);
        assert_eq!((a.verb.as_str(), a.namespace.as_str()), ("list", "ns"));
        let a = request_info("GET", "/api/v1/namespaces/ns", &q);
        assert_eq!(
            (a.resource.as_str(), a.name.as_str(), a.namespace.as_str()),
            ("namespaces", "ns", "ns")
        );
        let a = request_info(
            "POST",
            "/apis/annexa.dev/v1alpha1/namespaces/ns/modeldeployments/m/status",
            &q,
        );
        assert_eq!(
            (a.group.as_str(), a.subresource.as_str(), a.name.as_str()),
            ("annexa.dev", "status", "m")
        );
        let a = request_info("DELETE", "/api/v1/namespaces/ns/configmaps", &q);
        assert_eq!(a.verb, "deletecollection");
        let mut q = HashMap::new();
        q.insert("watch".to_string(), "true".to_string());
        q.insert("fieldSelector".to_string(), "metadata.name=x".to_string());
        let a = request_info("GET", "/api/v1/namespaces/ns/configmaps", &q);
        assert_eq!((a.verb.as_str(), a.name.as_str()), ("watch", "x"));
        let a = request_info("GET", "/apis/apps/v1", &q);
        assert!(!a.resource_request);
    }

    #[test]
    fn rules_match_subresources_and_names() {
        let a = Attributes::resource("create", "", "pods/exec", "ns", "p");
        assert!(!rule_allows(&a, &rule(&["create"], &[""], &["pods"], &[])));
        assert!(rule_allows(
            &a,
            &rule(&["create"], &[""], &["pods/exec"], &[])
        ));
        assert!(rule_allows(&a, &rule(&["create"], &[""], &["*/exec"], &[])));
        assert!(rule_allows(&a, &rule(&["*"], &["*"], &["*"], &[])));
        let list = Attributes::resource("list", "", "secrets", "ns", "");
        assert!(!rule_allows(
            &list,
            &rule(&["list"], &[""], &["secrets"], &["s"])
        ));
    }

    #[test]
    fn covers_needs_every_atom() {
        let owner = vec![rule(&["get", "list"], &[""], &["pods"], &[])];
        assert!(uncovered(&owner, &[rule(&["get"], &[""], &["pods"], &["p"])]).is_empty());
        let missing = uncovered(&owner, &[rule(&["get", "delete"], &[""], &["pods"], &[])]);
        assert_eq!(
            missing.iter().map(PolicyRule::compact).collect::<Vec<_>>(),
            vec!["{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"delete\"]}"]
        );
        let named = vec![rule(&["get"], &[""], &["secrets"], &["s"])];
        assert!(!uncovered(&named, &[rule(&["get"], &[""], &["secrets"], &[])]).is_empty());
    }
}
