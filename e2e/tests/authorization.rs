//! Authorisation as kube-apiserver enforces it: RBAC through RoleBindings and
//! ClusterRoleBindings, aggregation, subresources, resource names, non-resource URLs,
//! ServiceAccount tokens, impersonation, the access reviews and privilege-escalation
//! prevention. Each case runs unchanged against a real cluster (ANNEXA_E2E_KUBECONFIG).
//! Identities that must not go through the harness's own impersonation (a real cluster's
//! kubeconfig impersonates alice and friends) are ServiceAccounts with minted tokens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use annexa_e2e::harness::{Cluster, Kubectl, eventually};
use common::*;
use serde_json::{Value, json};

/// A ServiceAccount with a token minted through the TokenRequest API, and kubectl acting as it.
struct Robot {
    user: String,
    kubectl: Kubectl,
}

fn robot(cluster: &Cluster, ns: &str, name: &str) -> Robot {
    cluster
        .kubectl()
        .args(["create", "serviceaccount", name, "-n", ns])
        .ok()
        .unwrap();
    let token = cluster
        .kubectl()
        .args(["create", "token", name, "-n", ns, "--duration=1h"])
        .ok()
        .unwrap();
    let kubeconfig = cluster
        .kubeconfig_with_token(&format!("{ns}-{name}"), token.trim())
        .unwrap();
    Robot {
        user: format!("system:serviceaccount:{ns}:{name}"),
        kubectl: cluster.kubectl_with(&kubeconfig),
    }
}

fn create(k: Kubectl, doc: &Value) -> Result<String, String> {
    let out = k
        .args(["create", "-f", "-"])
        .stdin(doc.to_string())
        .run()
        .unwrap();
    if out.success {
        Ok(out.stdout)
    } else {
        Err(out.stderr)
    }
}

fn role(ns: &str, name: &str, rules: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
           "metadata": {"name": name, "namespace": ns}, "rules": rules})
}

fn role_binding(ns: &str, name: &str, kind: &str, role: &str, subjects: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
           "metadata": {"name": name, "namespace": ns},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
           "subjects": subjects})
}

/// A ClusterRole or ClusterRoleBinding deleted on drop.
struct ClusterScoped {
    what: String,
    kubectl: Kubectl,
}

impl Drop for ClusterScoped {
    fn drop(&mut self) {
        let _ = self
            .kubectl
            .clone()
            .args(["delete", &self.what, "--ignore-not-found"])
            .run();
    }
}

#[test]
fn role_bindings_grant_in_their_namespace_only_and_denials_use_kube_apiserver_wording() {
    let cluster = cluster();
    let team = cluster.namespace("rbac-team").unwrap();
    let other = cluster.namespace("rbac-other").unwrap();
    cluster
        .grant(Some(&team.name), "edit", &["--group=dev"])
        .unwrap();
    let cm = configmap(&team.name, "c1", json!({"k": "v"}));
    create(cluster.kubectl_as("alice"), &cm).unwrap();
    // Not in another namespace.
    let err = create(
        cluster.kubectl_as("alice"),
        &configmap(&other.name, "c1", json!({})),
    )
    .unwrap_err();
    assert!(
        err.contains(&format!(
            "Error from server (Forbidden): error when creating \"STDIN\": configmaps is forbidden: User \"alice\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"{}\"",
            other.name
        )),
        "{err}"
    );
    // A user in no group holds nothing.
    let err = cluster
        .kubectl_as("mallory")
        .args(["get", "configmap", "c1", "-n", &team.name])
        .fails()
        .unwrap();
    assert!(
        err.contains(&format!(
            "Error from server (Forbidden): configmaps \"c1\" is forbidden: User \"mallory\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"{}\"",
            team.name
        )),
        "{err}"
    );
    // Cluster scope needs a ClusterRoleBinding: a RoleBinding of `edit` gives no nodes.
    let err = cluster
        .kubectl_as("alice")
        .args(["get", "nodes"])
        .fails()
        .unwrap();
    assert!(
        err.contains("nodes is forbidden: User \"alice\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"),
        "{err}"
    );
}

#[test]
fn list_watch_get_and_resource_names_are_separate_permissions() {
    let cluster = cluster();
    let ns = cluster.namespace("rbac-verbs").unwrap();
    for name in ["mine", "theirs"] {
        create(cluster.kubectl(), &configmap(&ns.name, name, json!({}))).unwrap();
    }
    create(
        cluster.kubectl(),
        &role(
            &ns.name,
            "one-configmap",
            json!([{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["mine"], "verbs": ["get"]}]),
        ),
    )
    .unwrap();
    create(
        cluster.kubectl(),
        &role_binding(
            &ns.name,
            "alice-one",
            "Role",
            "one-configmap",
            json!([{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}]),
        ),
    )
    .unwrap();
    let alice = |args: &[&str]| {
        cluster
            .kubectl_as("alice")
            .args(["-n", &ns.name])
            .args(args.iter().copied())
            .run()
            .unwrap()
    };
    assert!(alice(&["get", "configmap", "mine"]).success);
    let theirs = alice(&["get", "configmap", "theirs"]);
    assert!(
        theirs.stderr.contains("configmaps \"theirs\" is forbidden"),
        "{}",
        theirs.stderr
    );
    // get is not list: a rule with resourceNames never allows a list.
    let list = alice(&["get", "configmaps"]);
    assert!(
        list.stderr.contains(
            "configmaps is forbidden: User \"alice\" cannot list resource \"configmaps\""
        ),
        "{}",
        list.stderr
    );
    // Nor a watch (asked through SelfSubjectAccessReview, as `kubectl auth can-i` does).
    let watch = alice(&["auth", "can-i", "watch", "configmaps/mine"]);
    assert_eq!(watch.stdout.trim(), "no", "{watch:?}");
    let get = alice(&["auth", "can-i", "get", "configmaps/mine"]);
    assert_eq!(get.stdout.trim(), "yes", "{get:?}");
    // deletecollection is its own verb too.
    let delete_all = alice(&["delete", "configmaps", "--all"]);
    assert!(!delete_all.success);
}

#[test]
fn subresources_need_their_own_rules() {
    let cluster = cluster();
    let ns = cluster.namespace("rbac-sub").unwrap();
    create(
        cluster.kubectl(),
        &role(
            &ns.name,
            "pods-only",
            json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "create"]},
                   {"apiGroups": ["apps"], "resources": ["deployments/status"], "verbs": ["get"]}]),
        ),
    )
    .unwrap();
    create(
        cluster.kubectl(),
        &role_binding(
            &ns.name,
            "dev-pods",
            "Role",
            "pods-only",
            json!([{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "dev"}]),
        ),
    )
    .unwrap();
    let can = |subresource: &str| {
        cluster
            .kubectl_as("alice")
            .args(["auth", "can-i", "create", "pods", "-n", &ns.name])
            .args((!subresource.is_empty()).then(|| format!("--subresource={subresource}")))
            .run()
            .unwrap()
            .stdout
            .trim()
            .to_string()
    };
    assert_eq!(can(""), "yes");
    assert_eq!(can("exec"), "no");
    assert_eq!(can("portforward"), "no");
    let status = cluster
        .kubectl_as("alice")
        .args([
            "auth",
            "can-i",
            "get",
            "deployments.apps",
            "--subresource=status",
            "-n",
            &ns.name,
        ])
        .run()
        .unwrap();
    assert_eq!(status.stdout.trim(), "yes", "{status:?}");
    let deployments = cluster
        .kubectl_as("alice")
        .args(["get", "deployments", "-n", &ns.name])
        .fails()
        .unwrap();
    assert!(
        deployments.contains("cannot list resource \"deployments\" in API group \"apps\""),
        "{deployments}"
    );
}

#[test]
fn cluster_roles_labelled_for_aggregation_extend_edit() {
    let cluster = cluster();
    let ns = cluster.namespace("rbac-agg").unwrap();
    cluster
        .grant(Some(&ns.name), "edit", &["--group=dev"])
        .unwrap();
    let quota = json!({"apiVersion": "v1", "kind": "ResourceQuota",
                       "metadata": {"name": "q", "namespace": ns.name},
                       "spec": {"hard": {"pods": "10"}}});
    // `edit` does not write ResourceQuotas.
    let err = create(cluster.kubectl_as("alice"), &quota).unwrap_err();
    assert!(
        err.contains("cannot create resource \"resourcequotas\""),
        "{err}"
    );
    let name = format!("e2e-quota-writer-{}", random());
    let _guard = ClusterScoped {
        what: format!("clusterrole/{name}"),
        kubectl: cluster.kubectl(),
    };
    create(
        cluster.kubectl(),
        &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": name, "labels": {"rbac.authorization.k8s.io/aggregate-to-edit": "true"}},
                "rules": [{"apiGroups": [""], "resources": ["resourcequotas"], "verbs": ["create"]}]}),
    )
    .unwrap();
    // The aggregation controller copies the rule into `edit` (and from there into `admin`).
    eventually(TIMEOUT, "edit and admin aggregate the new rule", || {
        ["edit", "admin"]
            .iter()
            .all(|role| {
                let role = get_json(cluster.kubectl().args(["get", "clusterrole", role]));
                role["rules"].as_array().unwrap().iter().any(|r| {
                    r["resources"] == json!(["resourcequotas"]) && r["verbs"] == json!(["create"])
                })
            })
            .then_some(())
    })
    .unwrap();
    eventually(TIMEOUT, "alice creates a quota through edit", || {
        create(cluster.kubectl_as("alice"), &quota).ok()
    })
    .unwrap();
}

#[test]
fn non_resource_urls_are_authorised_by_path() {
    let cluster = cluster();
    // Discovery is granted to every authenticated user (system:discovery).
    let api = cluster
        .kubectl_as("mallory")
        .args(["get", "--raw", "/api"])
        .ok()
        .unwrap();
    assert!(api.contains("APIVersions"), "{api}");
    let err = cluster
        .kubectl_as("mallory")
        .args(["get", "--raw", "/metrics"])
        .fails()
        .unwrap();
    assert!(
        err.contains("forbidden: User \"mallory\" cannot get path \"/metrics\""),
        "{err}"
    );
}

#[test]
fn service_account_tokens_identify_the_service_account_until_it_is_deleted() {
    let cluster = cluster();
    let ns = cluster.namespace("rbac-sa").unwrap();
    let bot = robot(&cluster, &ns.name, "bot");
    let whoami = get_json(bot.kubectl.clone().args(["auth", "whoami"]));
    let info = &whoami["status"]["userInfo"];
    assert_eq!(info["username"], bot.user.as_str());
    let groups: Vec<&str> = info["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap())
        .collect();
    for expected in [
        "system:serviceaccounts".to_string(),
        format!("system:serviceaccounts:{}", ns.name),
        "system:authenticated".to_string(),
    ] {
        assert!(groups.contains(&expected.as_str()), "{groups:?}");
    }
    // A ServiceAccount holds nothing until bound...
    let err = bot
        .kubectl
        .clone()
        .args(["get", "configmaps", "-n", &ns.name])
        .fails()
        .unwrap();
    assert!(
        err.contains(&format!(
            "configmaps is forbidden: User \"{}\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"{}\"",
            bot.user, ns.name
        )),
        "{err}"
    );
    // ...and a binding to the ServiceAccount subject grants it.
    cluster
        .grant(
            Some(&ns.name),
            "view",
            &[&format!("--serviceaccount={}:bot", ns.name)],
        )
        .unwrap();
    bot.kubectl
        .clone()
        .args(["get", "configmaps", "-n", &ns.name])
        .ok()
        .unwrap();
    // The token dies with its ServiceAccount.
    cluster
        .kubectl()
        .args(["delete", "serviceaccount", "bot", "-n", &ns.name])
        .ok()
        .unwrap();
    eventually(TIMEOUT, "the token is refused", || {
        let out = bot
            .kubectl
            .clone()
            .args(["get", "configmaps", "-n", &ns.name])
            .run()
            .unwrap();
        (!out.success && out.stderr.contains("Unauthorized")).then_some(())
    })
    .unwrap();
}

#[test]
fn impersonation_needs_the_impersonate_verb_for_each_identity() {
    let cluster = cluster();
    let ns = cluster.namespace("rbac-imp").unwrap();
    let bot = robot(&cluster, &ns.name, "impostor");
    let err = bot
        .kubectl
        .clone()
        .args(["get", "configmaps", "-n", &ns.name, "--as=bob"])
        .fails()
        .unwrap();
    assert!(
        err.contains(&format!(
            "users \"bob\" is forbidden: User \"{}\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope",
            bot.user
        )),
        "{err}"
    );
    let role = format!("e2e-impersonate-bob-{}", random());
    let _role = ClusterScoped {
        what: format!("clusterrole/{role}"),
        kubectl: cluster.kubectl(),
    };
    create(
        cluster.kubectl(),
        &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": role},
                "rules": [{"apiGroups": [""], "resources": ["users"], "resourceNames": ["bob"], "verbs": ["impersonate"]}]}),
    )
    .unwrap();
    let binding = cluster
        .grant(
            None,
            &role,
            &[&format!("--serviceaccount={}:impostor", ns.name)],
        )
        .unwrap();
    let _binding = ClusterScoped {
        what: format!("clusterrolebinding/{binding}"),
        kubectl: cluster.kubectl(),
    };
    let whoami = eventually(TIMEOUT, "impersonating bob is allowed", || {
        let out = bot
            .kubectl
            .clone()
            .args(["auth", "whoami", "--as=bob", "-o", "json"])
            .run()
            .unwrap();
        out.success
            .then(|| serde_json::from_str::<Value>(&out.stdout).unwrap())
    })
    .unwrap();
    assert_eq!(whoami["status"]["userInfo"]["username"], "bob");
    // Each group asked for is checked separately.
    let err = bot
        .kubectl
        .clone()
        .args([
            "get",
            "configmaps",
            "-n",
            &ns.name,
            "--as=bob",
            "--as-group=system:masters",
        ])
        .fails()
        .unwrap();
    assert!(
        err.contains("groups \"system:masters\" is forbidden"),
        "{err}"
    );
    // Only bob: carol stays out of reach.
    let err = bot
        .kubectl
        .clone()
        .args(["get", "configmaps", "-n", &ns.name, "--as=carol"])
        .fails()
        .unwrap();
    assert!(err.contains("users \"carol\" is forbidden"), "{err}");
}

fn access_review(cluster: &Cluster, spec: Value) -> Value {
    let body = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec});
    let out = cluster
        .kubectl()
        .args(["create", "-f", "-", "-o", "json"])
        .stdin(body.to_string())
        .ok()
        .unwrap();
    serde_json::from_str(&out).unwrap()
}

#[test]
fn access_reviews_answer_as_the_authoriser_decides() {
    let cluster = cluster();
    let ns = cluster.namespace("rbac-sar").unwrap();
    cluster
        .grant(Some(&ns.name), "edit", &["--group=dev"])
        .unwrap();
    let attrs = json!({"namespace": ns.name, "verb": "create", "resource": "configmaps"});
    let allowed = access_review(
        &cluster,
        json!({"user": "alice", "groups": ["dev"], "resourceAttributes": attrs}),
    );
    assert_eq!(allowed["status"]["allowed"], true, "{allowed}");
    assert!(
        allowed["status"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("RoleBinding"),
        "{allowed}"
    );
    // The same user without the group: the review uses exactly the groups it is given.
    let denied = access_review(
        &cluster,
        json!({"user": "alice", "resourceAttributes": attrs}),
    );
    assert_eq!(denied["status"]["allowed"], false, "{denied}");
    let masters = access_review(
        &cluster,
        json!({"user": "anyone", "groups": ["system:masters"], "resourceAttributes": {"verb": "delete", "resource": "nodes"}}),
    );
    assert_eq!(masters["status"]["allowed"], true, "{masters}");
    let non_resource = access_review(
        &cluster,
        json!({"user": "mallory", "groups": ["system:authenticated"], "nonResourceAttributes": {"path": "/apis", "verb": "get"}}),
    );
    assert_eq!(non_resource["status"]["allowed"], true, "{non_resource}");
    // Invalid reviews are refused with the field named.
    let err = cluster
        .kubectl()
        .args(["create", "-f", "-"])
        .stdin(
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                   "spec": {"resourceAttributes": attrs}})
            .to_string(),
        )
        .fails()
        .unwrap();
    assert!(
        err.contains(
            "spec.user: Invalid value: \"\": at least one of user or group must be specified"
        ),
        "{err}"
    );
    // SelfSubjectAccessReview and SelfSubjectRulesReview answer for the caller.
    let can = cluster
        .kubectl_as("alice")
        .args([
            "auth",
            "can-i",
            "delete",
            "deployments.apps",
            "-n",
            &ns.name,
        ])
        .run()
        .unwrap();
    assert_eq!(can.stdout.trim(), "yes", "{can:?}");
    let cannot = cluster
        .kubectl_as("mallory")
        .args([
            "auth",
            "can-i",
            "delete",
            "deployments.apps",
            "-n",
            &ns.name,
        ])
        .run()
        .unwrap();
    assert_eq!(cannot.stdout.trim(), "no", "{cannot:?}");
    assert!(!cannot.success);
    let rules = cluster
        .kubectl_as("alice")
        .args(["auth", "can-i", "--list", "-n", &ns.name])
        .ok()
        .unwrap();
    let configmaps = rules
        .lines()
        .find(|l| l.starts_with("configmaps "))
        .unwrap_or_else(|| panic!("{rules}"));
    assert!(configmaps.contains("create"), "{rules}");
    let mallory_rules = cluster
        .kubectl_as("mallory")
        .args(["auth", "can-i", "--list", "-n", &ns.name])
        .ok()
        .unwrap();
    assert!(
        !mallory_rules.lines().any(|l| l.starts_with("configmaps ")),
        "{mallory_rules}"
    );
}

#[test]
fn roles_grant_only_what_their_author_holds_unless_escalate_or_bind() {
    let cluster = cluster();
    let ns = cluster.namespace("rbac-esc").unwrap();
    let bot = robot(&cluster, &ns.name, "team-admin");
    cluster
        .grant(
            Some(&ns.name),
            "admin",
            &[&format!("--serviceaccount={}:team-admin", ns.name)],
        )
        .unwrap();
    // Within its own rights: allowed.
    eventually(TIMEOUT, "admin can write a modest Role", || {
        create(
            bot.kubectl.clone(),
            &role(
                &ns.name,
                "reader",
                json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]),
            ),
        )
        .ok()
    })
    .unwrap();
    // Beyond them: refused, naming the missing permission.
    let too_much = role(
        &ns.name,
        "too-much",
        json!([{"apiGroups": [""], "resources": ["persistentvolumes"], "verbs": ["get"]}]),
    );
    let err = create(bot.kubectl.clone(), &too_much).unwrap_err();
    assert!(
        err.contains(&format!(
            "roles.rbac.authorization.k8s.io \"too-much\" is forbidden: user \"{}\" (groups=[\"system:serviceaccounts\" \"system:serviceaccounts:{}\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{{APIGroups:[\"\"], Resources:[\"persistentvolumes\"], Verbs:[\"get\"]}}",
            bot.user, ns.name
        )),
        "{err}"
    );
    // Binding a role one does not hold is refused the same way.
    let to_cluster_admin = role_binding(
        &ns.name,
        "power",
        "ClusterRole",
        "cluster-admin",
        json!([{"kind": "ServiceAccount", "name": "team-admin", "namespace": ns.name}]),
    );
    let err = create(bot.kubectl.clone(), &to_cluster_admin).unwrap_err();
    assert!(
        err.contains("rolebindings.rbac.authorization.k8s.io \"power\" is forbidden")
            && err.contains("is attempting to grant RBAC permissions not currently held"),
        "{err}"
    );
    // With `escalate` on roles and `bind` on cluster-admin, both go through.
    create(
        cluster.kubectl(),
        &role(
            &ns.name,
            "delegate",
            json!([{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["escalate"]},
                   {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "resourceNames": ["cluster-admin"], "verbs": ["bind"]}]),
        ),
    )
    .unwrap();
    create(
        cluster.kubectl(),
        &role_binding(
            &ns.name,
            "delegate",
            "Role",
            "delegate",
            json!([{"kind": "ServiceAccount", "name": "team-admin", "namespace": ns.name}]),
        ),
    )
    .unwrap();
    eventually(TIMEOUT, "escalate allows the Role", || {
        create(bot.kubectl.clone(), &too_much).ok()
    })
    .unwrap();
    eventually(TIMEOUT, "bind allows the RoleBinding", || {
        create(bot.kubectl.clone(), &to_cluster_admin).ok()
    })
    .unwrap();
}
