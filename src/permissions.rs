//! Every call Annexa makes to the API server, as the RBAC permission it needs: the single
//! source of the chart's ClusterRole and Role. `annexa permissions` prints it; the chart tests
//! compare the rendered RBAC with it (nothing missing, nothing unused), and a test here checks
//! that each entry points at the code that makes the call.

use serde::Serialize;

/// Where the permission is granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Scope {
    /// ClusterRole: in every namespace (or cluster-scoped objects).
    Cluster,
    /// Role in Annexa's own namespace.
    OwnNamespace,
    /// The ClusterRole, or, when the chart's `rbac.namespaces` lists namespaces, a Role in each
    /// of them instead: the writes that reach furthest (RBAC escalation, PVC deletion), which an
    /// installation can confine to the namespaces Annexa serves.
    ListedNamespaces,
}

/// The single object a permission is restricted to (`resourceNames`), when RBAC allows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Named {
    /// Annexa's own webhook configurations (the release name).
    WebhookConfigurations,
    /// The Secret holding the self-managed CA and serving certificate.
    CertificateSecret,
    /// The leader-election Lease.
    Lease,
}

/// When the chart grants it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum When {
    Always,
    /// `certificates.mode: self-managed` (the default).
    SelfManagedCertificates,
    /// `leaderElection.enabled` (the default).
    LeaderElection,
    /// `rbac.grantMode: escalate` (the default).
    GrantModeEscalate,
    /// `reports.enabled` with `reports.api: openreports` (the default).
    OpenReports,
    /// `reports.enabled` with `reports.api: wgpolicyk8s`.
    PolicyReports,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Permission {
    pub api_group: &'static str,
    pub resource: &'static str,
    pub verbs: &'static [&'static str],
    pub scope: Scope,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub named: Option<Named>,
    pub when: When,
    pub why: &'static str,
    /// Where the code makes the call: (file, text found there).
    #[serde(skip)]
    pub used_by: &'static [(&'static str, &'static str)],
}

const KINDS: [&str; 5] = [
    "compliancepolicies",
    "trainingdatasets",
    "modeldeployments",
    "modelapprovals",
    "agentpolicies",
];

macro_rules! p {
    ($group:expr, $resource:expr, [$($verb:expr),*], $scope:expr, $named:expr, $when:expr, $why:expr, [$($site:expr),*]) => {
        Permission {
            api_group: $group,
            resource: $resource,
            verbs: &[$($verb),*],
            scope: $scope,
            named: $named,
            when: $when,
            why: $why,
            used_by: &[$($site),*],
        }
    };
}

const CLUSTER: Scope = Scope::Cluster;
const LISTED: Scope = Scope::ListedNamespaces;
const OWN: Scope = Scope::OwnNamespace;
const ALWAYS: When = When::Always;
const WATCHED: (&str, &str) = (
    "src/cluster/mod.rs",
    "Api<DeserializeGuard<K>> = Api::all(client)",
);
const STATUS: (&str, &str) = ("src/controller/mod.rs", "api.patch_status(");
const APPLY: (&str, &str) = ("src/controller/mod.rs", "Patch::Apply(object)");
const FOREIGN: (&str, &str) = ("src/controller/mod.rs", ".get_opt(name)");
const OWNED_WATCH: (&str, &str) = ("src/controller/model_deployment.rs", ".owns(");
const BLOCK: (&str, &str) = ("src/controller/mod.rs", "block_owner_deletion: Some(true)");
const WITHDRAW: (&str, &str) = ("src/controller/mod.rs", "api.delete(name, &params)");

/// What Annexa calls, and why. The chart's RBAC is exactly this.
pub fn permissions() -> Vec<Permission> {
    let mut out = Vec::new();
    for kind in KINDS {
        out.push(Permission {
            api_group: "annexa.dev",
            resource: kind,
            verbs: &["list", "watch"],
            scope: CLUSTER,
            named: None,
            when: ALWAYS,
            why: "the shared cache the webhook and the controllers read",
            used_by: &[WATCHED],
        });
    }
    for kind in KINDS {
        out.push(Permission {
            api_group: "annexa.dev",
            resource: leak_status(kind),
            verbs: &["patch"],
            scope: CLUSTER,
            named: None,
            when: ALWAYS,
            why: "conditions and control results (server-side apply of /status)",
            used_by: &[STATUS],
        });
    }
    for kind in ["trainingdatasets", "modeldeployments", "agentpolicies"] {
        out.push(Permission {
            api_group: "annexa.dev",
            resource: leak_finalizers(kind),
            verbs: &["update"],
            scope: CLUSTER,
            named: None,
            when: ALWAYS,
            why: "children set blockOwnerDeletion on their owner (OwnerReferencesPermissionEnforcement requires it)",
            used_by: &[BLOCK],
        });
    }
    out.extend([
        p!("", "serviceaccounts", ["get", "list", "watch", "create", "patch"], CLUSTER, None, ALWAYS,
            "ModelDeployment and AgentPolicy own a ServiceAccount: read before writing (never adopt), watched for drift, server-side applied",
            [FOREIGN, OWNED_WATCH, APPLY]),
        p!("", "services", ["get", "list", "watch", "create", "patch"], CLUSTER, None, ALWAYS,
            "ModelDeployment owns the Service in front of its model",
            [FOREIGN, OWNED_WATCH, APPLY]),
        p!("apps", "deployments", ["get", "list", "watch", "create", "patch"], CLUSTER, None, ALWAYS,
            "ModelDeployment owns the Deployment serving the approved digest (get: never adopt, and the digest served before)",
            [FOREIGN, OWNED_WATCH, APPLY, ("src/controller/model_deployment.rs", ".get_opt(&model.name_any())")]),
        p!("networking.k8s.io", "networkpolicies", ["get", "list", "watch", "create", "patch"], CLUSTER, None, ALWAYS,
            "default-deny ingress of a model, egress allow-list of an agent",
            [FOREIGN, OWNED_WATCH, APPLY]),
        p!("rbac.authorization.k8s.io", "roles", ["get", "list", "watch", "create", "patch", "delete"], CLUSTER, None, ALWAYS,
            "dataset readers and agent grants (written, and withdrawn when policy forbids them); the roles bindings reference (least-privilege check)",
            [FOREIGN, ("src/controller/mod.rs", "reflect(Api::<Role>::all"), APPLY, WITHDRAW]),
        p!("rbac.authorization.k8s.io", "rolebindings", ["get", "list", "watch", "create", "patch", "delete"], CLUSTER, None, ALWAYS,
            "binding of those Roles (withdrawn with them); every binding, to report excess privileges of agents",
            [FOREIGN, ("src/controller/mod.rs", "reflect(Api::<RoleBinding>::all"), APPLY, WITHDRAW]),
        p!("rbac.authorization.k8s.io", "clusterroles", ["list", "watch"], CLUSTER, None, ALWAYS,
            "what bindings of agents grant (least-privilege check); read-only",
            [("src/controller/mod.rs", "reflect(Api::<ClusterRole>::all")]),
        p!("rbac.authorization.k8s.io", "clusterrolebindings", ["list", "watch"], CLUSTER, None, ALWAYS,
            "bindings that reach agents cluster-wide; read-only",
            [("src/controller/mod.rs", "reflect(Api::<ClusterRoleBinding>::all")]),
        p!("rbac.authorization.k8s.io", "roles", ["escalate", "bind"], LISTED, None, When::GrantModeEscalate,
            "write and bind Roles granting what users declare and Annexa does not hold (the webhook first checks the user holds it)",
            [APPLY]),
        p!("", "namespaces", ["list", "watch"], CLUSTER, None, ALWAYS,
            "namespace labels select policies and opt workloads in",
            [("src/cluster/mod.rs", "Api::<PartialObjectMeta<Namespace>>::all")]),
        p!("", "nodes", ["list", "watch"], CLUSTER, None, ALWAYS,
            "GPU pool nodes (cached for the placement rules; listed for the audit of ungoverned pods)",
            [("src/controller/compliance_policy.rs", ".list_metadata("), ("src/cluster/mod.rs", "Api::<Node>::all(client)")]),
        p!("", "pods", ["list"], CLUSTER, None, ALWAYS,
            "pods on GPU pool nodes (audit of ungoverned GPU pods) and pods reading datasets",
            [("src/controller/compliance_policy.rs", "spec.nodeName="), ("src/controller/mod.rs", "let list = pods")]),
        p!("resource.k8s.io", "resourceclaims", ["list", "watch"], CLUSTER, None, ALWAYS,
            "the DeviceClass a pod's claims ask for (GPU rules)",
            [("src/cluster/mod.rs", "Api::<ResourceClaim>::all")]),
        p!("resource.k8s.io", "resourceclaimtemplates", ["list", "watch"], CLUSTER, None, ALWAYS,
            "the DeviceClass a pod's claim templates ask for (GPU rules)",
            [("src/cluster/mod.rs", "Api::<ResourceClaimTemplate>::all")]),
        p!("openreports.io", "reports", ["list", "create", "patch"], CLUSTER, None, When::OpenReports,
            "one compliance report per namespace (server-side apply), listed at start",
            [("src/controller/reports.rs", "Patch::Apply(&report)"), ("src/controller/reports.rs", "list_metadata(")]),
        p!("openreports.io", "clusterreports", ["list", "create", "patch"], CLUSTER, None, When::OpenReports,
            "the cluster compliance report (server-side apply), listed at start",
            [("src/controller/reports.rs", "Patch::Apply(&report)"), ("src/controller/reports.rs", "list_metadata(")]),
        p!("wgpolicyk8s.io", "policyreports", ["list", "create", "patch"], CLUSTER, None, When::PolicyReports,
            "one compliance report per namespace (server-side apply), listed at start",
            [("src/controller/reports.rs", "Patch::Apply(&report)"), ("src/controller/reports.rs", "list_metadata(")]),
        p!("wgpolicyk8s.io", "clusterpolicyreports", ["list", "create", "patch"], CLUSTER, None, When::PolicyReports,
            "the cluster compliance report (server-side apply), listed at start",
            [("src/controller/reports.rs", "Patch::Apply(&report)"), ("src/controller/reports.rs", "list_metadata(")]),
        p!("", "persistentvolumeclaims", ["get"], CLUSTER, None, ALWAYS,
            "a dataset's PVC at expiry, read before deleting: never one another object controls",
            [("src/controller/training_dataset.rs", "pvcs.get_opt(pvc)")]),
        p!("", "persistentvolumeclaims", ["delete"], LISTED, None, ALWAYS,
            "a dataset's PVC at expiry with onExpiry: Delete (deleted by UID)",
            [("src/controller/training_dataset.rs", "pvcs.delete(pvc")]),
        p!("events.k8s.io", "events", ["create"], CLUSTER, None, ALWAYS,
            "one Event per condition transition, never updated",
            [("src/controller/mod.rs", "api.create(&PostParams::default(), &event)")]),
        p!("authorization.k8s.io", "subjectaccessreviews", ["create"], CLUSTER, None, ALWAYS,
            "the webhook asks whether the requesting user may do what Annexa would do for them",
            [("src/webhook/access.rs", ".create(&PostParams::default(), &review)")]),
        p!("admissionregistration.k8s.io", "validatingwebhookconfigurations", ["get", "patch"], CLUSTER,
            Some(Named::WebhookConfigurations), When::SelfManagedCertificates,
            "caBundle of Annexa's own configuration, by a targeted JSON patch",
            [("src/webhook/certs/secret.rs", "api.get_opt(name).await"), ("src/webhook/certs/secret.rs", "Patch::Json::<()>(patch)")]),
        p!("admissionregistration.k8s.io", "mutatingwebhookconfigurations", ["get", "patch"], CLUSTER,
            Some(Named::WebhookConfigurations), When::SelfManagedCertificates,
            "caBundle of Annexa's own configuration, by a targeted JSON patch",
            [("src/webhook/certs/secret.rs", "api.get_opt(name).await"), ("src/webhook/certs/secret.rs", "Patch::Json::<()>(patch)")]),
        p!("", "secrets", ["create"], OWN, None, When::SelfManagedCertificates,
            "the certificate Secret is created by the first replica (RBAC cannot restrict create by name)",
            [("src/webhook/certs/secret.rs", "api.create(&PostParams::default(), &secret)")]),
        p!("", "secrets", ["get", "update"], OWN, Some(Named::CertificateSecret), When::SelfManagedCertificates,
            "read and renew the shared certificate (update with resourceVersion: a conflicting replica re-reads)",
            [("src/webhook/certs/secret.rs", ".get_opt(&config.secret_name)"), ("src/webhook/certs/secret.rs", "api.replace(&config.secret_name")]),
        p!("coordination.k8s.io", "leases", ["create"], OWN, None, When::LeaderElection,
            "the leader Lease is created by the first replica",
            [("src/controller/leader.rs", "LeaseManagerBuilder")]),
        p!("coordination.k8s.io", "leases", ["get", "patch"], OWN, Some(Named::Lease), When::LeaderElection,
            "hold and renew the leader Lease (kube-lease-manager reads and patches it)",
            [("src/controller/leader.rs", "LeaseManagerBuilder")]),
    ]);
    out
}

fn leak_status(kind: &str) -> &'static str {
    match kind {
        "compliancepolicies" => "compliancepolicies/status",
        "trainingdatasets" => "trainingdatasets/status",
        "modeldeployments" => "modeldeployments/status",
        "modelapprovals" => "modelapprovals/status",
        _ => "agentpolicies/status",
    }
}

fn leak_finalizers(kind: &str) -> &'static str {
    match kind {
        "trainingdatasets" => "trainingdatasets/finalizers",
        "modeldeployments" => "modeldeployments/finalizers",
        _ => "agentpolicies/finalizers",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_permission_points_at_the_code_that_uses_it() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for p in permissions() {
            assert!(!p.used_by.is_empty(), "{p:?} names no call site");
            for (file, text) in p.used_by {
                let source = std::fs::read_to_string(root.join(file)).unwrap();
                assert!(
                    source.contains(text),
                    "{} {} {:?}: {file} no longer contains {text:?}",
                    p.api_group,
                    p.resource,
                    p.verbs
                );
            }
        }
    }

    #[test]
    fn no_wildcard_and_no_secret_outside_annexas_namespace() {
        for p in permissions() {
            assert!(!p.verbs.contains(&"*") && p.resource != "*", "{p:?}");
            if p.resource == "secrets" {
                assert_eq!(p.scope, Scope::OwnNamespace, "{p:?}");
            }
            assert!(!p.verbs.contains(&"impersonate"), "{p:?}");
        }
    }
}
