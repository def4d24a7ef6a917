//! AgentPolicy: A.5.15, A.5.18, A.8.2, A.8.12, A.8.20.

use super::fixtures::*;
use crate::api::Action::{Audit, Enforce};
use crate::api::ControlOutcome::{NotApplicable, Pass};

const CONTROLS: &[&str] = &["A.5.15", "A.5.18", "A.8.2", "A.8.12", "A.8.20"];

/// A customer-support agent that reads one ConfigMap and calls the ticketing API.
pub const SUPPORT_AGENT: &str = r#"
apiVersion: annexa.dev/v1alpha1
kind: AgentPolicy
metadata:
  name: support-agent
  namespace: support
spec:
  serviceAccountName: support-agent
  permissions:
    - apiGroups: [""]
      resources: [configmaps]
      resourceNames: [support-playbooks]
      verbs: [get]
  egress:
    - cidr: 10.20.0.0/16
      ports: [443]
      protocol: TCP
  tokenTTL: 30m
"#;

#[test]
fn least_privilege_agent_passes_every_control() {
    let e = World::baseline().eval(SUPPORT_AGENT);
    assert_clean(&e, CONTROLS);
    for control in CONTROLS {
        assert_outcome(&e, control, Pass);
    }
}

#[test]
fn each_rule_fails_on_the_field_that_breaks_it() {
    const RULE: &str = "    - apiGroups: [\"\"]\n      resources: [configmaps]\n      resourceNames: [support-playbooks]\n      verbs: [get]\n";
    const EGRESS: &str = "    - cidr: 10.20.0.0/16\n      ports: [443]\n      protocol: TCP\n";
    let cases: &[Case<'_>] = &[
        (
            "every API group",
            &[("apiGroups: [\"\"]", "apiGroups: [\"*\"]")],
            &[(
                "A.5.15",
                "spec.permissions[0].apiGroups",
                Enforce,
                r#"A.5.15 Access control: agent "support-agent" is granted every API group ("*")"#,
            )],
        ),
        (
            "every resource (which includes Secrets)",
            &[("resources: [configmaps]", "resources: [\"*\"]")],
            &[
                (
                    "A.5.15",
                    "spec.permissions[0].resources",
                    Enforce,
                    r#"A.5.15 Access control: agent "support-agent" is granted every resource ("*")"#,
                ),
                (
                    "A.8.2",
                    "spec.permissions[0].resources",
                    Enforce,
                    r#"A.8.2 Privileged access rights: agent "support-agent" is granted every resource ("*"), the dangerous permissions the policy forbids included"#,
                ),
                (
                    "A.8.2",
                    "spec.permissions[0].resources",
                    Enforce,
                    r#"A.8.2 Privileged access rights: agent "support-agent" may read Secrets, which the policy forbids"#,
                ),
            ],
        ),
        (
            "a subresource of every resource",
            &[
                ("resources: [configmaps]", "resources: [\"*/scale\"]"),
                ("verbs: [get]", "verbs: [update]"),
            ],
            &[(
                "A.5.15",
                "spec.permissions[0].resources",
                Enforce,
                r#"A.5.15 Access control: agent "support-agent" is granted every resource ("*")"#,
            )],
        ),
        (
            "non-resource URLs",
            &[(
                RULE,
                "    - nonResourceURLs: [/metrics]\n      verbs: [get]\n",
            )],
            &[
                (
                    "A.5.15",
                    "spec.permissions[0].resources",
                    Enforce,
                    r#"A.5.15 Access control: agent "support-agent" has a rule that names no resources"#,
                ),
                (
                    "A.5.15",
                    "spec.permissions[0].nonResourceURLs",
                    Enforce,
                    r#"A.5.15 Access control: agent "support-agent" is granted non-resource URLs, which a namespaced Role cannot scope"#,
                ),
            ],
        ),
        (
            "no token TTL",
            &[("  tokenTTL: 30m\n", "")],
            &[(
                "A.5.18",
                "spec.tokenTTL",
                Enforce,
                r#"A.5.18 Access rights: agent "support-agent" declares no token TTL (at most 1h)"#,
            )],
        ),
        (
            "a token TTL beyond the maximum",
            &[("tokenTTL: 30m", "tokenTTL: 2h")],
            &[(
                "A.5.18",
                "spec.tokenTTL",
                Enforce,
                r#"A.5.18 Access rights: agent "support-agent" token TTL 2h exceeds the maximum of 1h"#,
            )],
        ),
        (
            "a token TTL below what the API server issues",
            &[("tokenTTL: 30m", "tokenTTL: 5m")],
            &[(
                "A.5.18",
                "spec.tokenTTL",
                Enforce,
                r#"A.5.18 Access rights: agent "support-agent" token TTL 5m is below the 10m minimum the API server accepts for projected tokens"#,
            )],
        ),
        (
            "a malformed token TTL",
            &[("tokenTTL: 30m", "tokenTTL: 30min")],
            &[(
                "A.5.18",
                "spec.tokenTTL",
                Enforce,
                r#"A.5.18 Access rights: agent "support-agent" spec.tokenTTL: duration "30min" has unknown unit 'i' (use w, d, h, m or s, e.g. 90d or 1h30m)"#,
            )],
        ),
        (
            "a forbidden verb",
            &[("verbs: [get]", "verbs: [get, escalate]")],
            &[(
                "A.8.2",
                "spec.permissions[0].verbs",
                Enforce,
                r#"A.8.2 Privileged access rights: agent "support-agent" is granted the forbidden verb "escalate""#,
            )],
        ),
        (
            "every verb",
            &[("verbs: [get]", "verbs: [\"*\"]")],
            &[(
                "A.8.2",
                "spec.permissions[0].verbs",
                Enforce,
                r#"A.8.2 Privileged access rights: agent "support-agent" is granted the forbidden verb "*""#,
            )],
        ),
        (
            "reading Secrets",
            &[(
                "resources: [configmaps]",
                "resources: [configmaps, secrets]",
            )],
            &[(
                "A.8.2",
                "spec.permissions[0].resources",
                Enforce,
                r#"A.8.2 Privileged access rights: agent "support-agent" may read Secrets, which the policy forbids"#,
            )],
        ),
        (
            "no egress allow-list",
            &[("  egress:\n", ""), (EGRESS, "")],
            &[(
                "A.8.12",
                "spec.egress",
                Enforce,
                r#"A.8.12 Data leakage prevention: agent "support-agent" declares no egress allow-list"#,
            )],
        ),
        (
            "egress to the whole IPv4 internet",
            &[("cidr: 10.20.0.0/16", "cidr: 0.0.0.0/0")],
            &[(
                "A.8.12",
                "spec.egress[0].cidr",
                Enforce,
                r#"A.8.12 Data leakage prevention: agent "support-agent" may reach the whole internet (0.0.0.0/0)"#,
            )],
        ),
        (
            "egress to the whole IPv6 internet",
            &[("cidr: 10.20.0.0/16", "cidr: \"::/0\"")],
            &[(
                "A.8.12",
                "spec.egress[0].cidr",
                Enforce,
                r#"A.8.12 Data leakage prevention: agent "support-agent" may reach the whole internet (::/0)"#,
            )],
        ),
        (
            "an address without a prefix length",
            &[("cidr: 10.20.0.0/16", "cidr: 10.20.0.0")],
            &[(
                "A.8.20",
                "spec.egress[0].cidr",
                Enforce,
                r#"A.8.20 Networks security: agent "support-agent" egress "10.20.0.0" is not a valid CIDR"#,
            )],
        ),
        (
            "a prefix length out of range",
            &[("cidr: 10.20.0.0/16", "cidr: 10.20.0.0/33")],
            &[(
                "A.8.20",
                "spec.egress[0].cidr",
                Enforce,
                r#"A.8.20 Networks security: agent "support-agent" egress "10.20.0.0/33" is not a valid CIDR"#,
            )],
        ),
        (
            "every port",
            &[("      ports: [443]\n", "")],
            &[(
                "A.8.20",
                "spec.egress[0].ports",
                Enforce,
                r#"A.8.20 Networks security: agent "support-agent" egress to 10.20.0.0/16 opens every port"#,
            )],
        ),
        (
            "port 0",
            &[("ports: [443]", "ports: [0]")],
            &[(
                "A.8.20",
                "spec.egress[0].ports[0]",
                Enforce,
                r#"A.8.20 Networks security: agent "support-agent" egress port 0 is not a valid port"#,
            )],
        ),
        (
            "an unknown protocol",
            &[("protocol: TCP", "protocol: HTTP")],
            &[(
                "A.8.20",
                "spec.egress[0].protocol",
                Enforce,
                r#"A.8.20 Networks security: agent "support-agent" egress protocol "HTTP" is not TCP, UDP or SCTP"#,
            )],
        ),
    ];
    let world = World::baseline();
    for (name, edits, expected) in cases {
        let e = world.eval(&edit(SUPPORT_AGENT, edits));
        assert_eq!(e.outcomes.len(), CONTROLS.len(), "{name}");
        assert_findings(&e, expected);
    }
}

#[test]
fn policy_limits_change_the_verdict() {
    let lenient = r#"
apiVersion: annexa.dev/v1alpha1
kind: CompliancePolicy
metadata:
  name: research
spec:
  agents:
    maxTokenTTL: 4h
    allowSecretRead: true
    requireEgressAllowList: false
    forbiddenVerbs: [impersonate]
"#;
    let agent = edit(
        SUPPORT_AGENT,
        &[
            (
                "resources: [configmaps]",
                "resources: [configmaps, secrets]",
            ),
            ("verbs: [get]", "verbs: [get, escalate]"),
            ("tokenTTL: 30m", "tokenTTL: 2h"),
            (
                "  egress:\n    - cidr: 10.20.0.0/16\n      ports: [443]\n      protocol: TCP\n",
                "",
            ),
        ],
    );
    let e = World::with_policies(&[lenient]).eval(&agent);
    assert!(e.findings.is_empty(), "{:?}", e.findings);
    assert_outcome_message(
        &e,
        "A.8.12",
        NotApplicable,
        "the policy does not require an egress allow-list",
    );
    assert_outcome_message(&e, "A.8.20", NotApplicable, "no egress rules");
    // Under the baseline, the same agent fails four controls.
    let e = World::baseline().eval(&agent);
    let failed: Vec<&str> = e.findings.iter().map(|f| f.control).collect();
    assert_eq!(failed, ["A.5.18", "A.8.2", "A.8.2", "A.8.12"]);
}

#[test]
fn a_per_control_override_sets_the_action() {
    let policy = edit(
        PRODUCTION,
        &[(
            "    action: Enforce\n",
            "    action: Enforce\n    overrides:\n      - control: A.8.12\n        action: Audit\n",
        )],
    );
    let agent = edit(
        SUPPORT_AGENT,
        &[
            ("cidr: 10.20.0.0/16", "cidr: 0.0.0.0/0"),
            ("verbs: [get]", "verbs: [bind]"),
        ],
    );
    let e = World::with_policies(&[&policy]).eval(&agent);
    assert_findings(
        &e,
        &[
            (
                "A.8.2",
                "spec.permissions[0].verbs",
                Enforce,
                r#"A.8.2 Privileged access rights: agent "support-agent" is granted the forbidden verb "bind""#,
            ),
            (
                "A.8.12",
                "spec.egress[0].cidr",
                Audit,
                r#"A.8.12 Data leakage prevention: agent "support-agent" may reach the whole internet (0.0.0.0/0)"#,
            ),
        ],
    );
    assert_eq!(e.denials().count(), 1);
}

/// The agent with its one rule replaced by `rule` (YAML flow mapping).
fn agent_granted(rule: &str) -> String {
    edit(
        SUPPORT_AGENT,
        &[(
            "    - apiGroups: [\"\"]\n      resources: [configmaps]\n      resourceNames: [support-playbooks]\n      verbs: [get]\n",
            &format!("    - {rule}\n"),
        )],
    )
}

#[test]
fn dangerous_permissions_are_refused_by_default_naming_verb_and_resource() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "token minting",
            r#"{apiGroups: [""], resources: [serviceaccounts/token], verbs: [create]}"#,
            r#""create" on "serviceaccounts/token""#,
        ),
        (
            "exec",
            r#"{apiGroups: [""], resources: [pods/exec], verbs: [create]}"#,
            r#""create" on "pods/exec""#,
        ),
        (
            "attach through a subresource wildcard",
            r#"{apiGroups: [""], resources: [pods/*], verbs: [get]}"#,
            r#""get" on "pods/exec"|"get" on "pods/attach"|"get" on "pods/portforward""#,
        ),
        (
            "port-forward",
            r#"{apiGroups: [""], resources: [pods/portforward], verbs: [get]}"#,
            r#""get" on "pods/portforward""#,
        ),
        (
            "Secret writes",
            r#"{apiGroups: [""], resources: [secrets], verbs: [update]}"#,
            r#""update" on "secrets""#,
        ),
        (
            "RBAC writes",
            r#"{apiGroups: [rbac.authorization.k8s.io], resources: [rolebindings], verbs: [create]}"#,
            r#""create" on "rolebindings""#,
        ),
        (
            "node proxy",
            r#"{apiGroups: [""], resources: [nodes/proxy], verbs: [get]}"#,
            r#""get" on "nodes/proxy""#,
        ),
        (
            "CSR approval",
            r#"{apiGroups: [certificates.k8s.io], resources: [certificatesigningrequests/approval], verbs: [update]}"#,
            r#""update" on "certificatesigningrequests/approval""#,
        ),
        (
            "webhook configurations",
            r#"{apiGroups: [admissionregistration.k8s.io], resources: [validatingwebhookconfigurations], verbs: [delete]}"#,
            r#""delete" on "validatingwebhookconfigurations""#,
        ),
    ];
    for (what, rule, permission) in cases {
        let e = World::baseline().eval(&agent_granted(rule));
        let a82: Vec<&str> = e
            .findings
            .iter()
            .filter(|f| f.control == "A.8.2" && f.message.contains("dangerous"))
            .map(|f| f.message.as_str())
            .collect();
        let expected: Vec<String> = permission
            .split('|')
            .map(|p| format!(
                r#"A.8.2 Privileged access rights: agent "support-agent" is granted {p}, a dangerous permission the policy forbids"#
            ))
            .collect();
        assert_eq!(a82, expected, "{what}");
        assert!(
            e.findings
                .iter()
                .filter(|f| f.message.contains("dangerous"))
                .all(|f| f.action == Enforce && f.path == "spec.permissions[0].resources"),
            "{what}: {:?}",
            e.findings
        );
    }
    // Reading Pods or listing ConfigMaps is not dangerous.
    let e = World::baseline().eval(&agent_granted(
        r#"{apiGroups: [""], resources: [pods, configmaps], verbs: [get, list]}"#,
    ));
    assert!(e.findings.is_empty(), "{:?}", e.findings);
}

#[test]
fn a_policy_may_replace_the_dangerous_permissions_and_policies_add_up() {
    let debug = r#"
apiVersion: annexa.dev/v1alpha1
kind: CompliancePolicy
metadata:
  name: debugging
spec:
  agents:
    forbiddenPermissions:
      - apiGroup: ""
        resources: [serviceaccounts/token]
        verbs: [create]
"#;
    let exec = agent_granted(r#"{apiGroups: [""], resources: [pods/exec], verbs: [create]}"#);
    let e = World::with_policies(&[debug]).eval(&exec);
    assert!(e.findings.is_empty(), "{:?}", e.findings);
    // The token rule the debugging policy keeps still holds.
    let token =
        agent_granted(r#"{apiGroups: [""], resources: [serviceaccounts/token], verbs: [create]}"#);
    assert_eq!(
        World::with_policies(&[debug])
            .eval(&token)
            .denials()
            .count(),
        1
    );
    // A second policy selecting the namespace without a list of its own brings the baseline back.
    let strict = r#"
apiVersion: annexa.dev/v1alpha1
kind: CompliancePolicy
metadata:
  name: strict
spec:
  environment: Production
"#;
    let e = World::with_policies(&[debug, strict]).eval(&exec);
    assert!(
        e.denials()
            .any(|f| f.message.contains(r#""create" on "pods/exec""#)),
        "{:?}",
        e.findings
    );
}

#[test]
fn escalate_on_roles_is_refused_even_when_a_policy_replaces_the_forbidden_verbs() {
    // operating.md: a policy listing `forbiddenVerbs` replaces the baseline verbs, but the
    // baseline's dangerous permissions (RBAC writes, escalate and bind included) still hold.
    let lenient = r#"
apiVersion: annexa.dev/v1alpha1
kind: CompliancePolicy
metadata:
  name: research
spec:
  agents:
    forbiddenVerbs: [impersonate]
"#;
    let agent = agent_granted(
        r#"{apiGroups: [rbac.authorization.k8s.io], resources: [roles], verbs: [escalate]}"#,
    );
    let e = World::with_policies(&[lenient]).eval(&agent);
    let denied: Vec<&str> = e.denials().map(|f| f.message.as_str()).collect();
    assert_eq!(
        denied,
        [
            r#"A.8.2 Privileged access rights: agent "support-agent" is granted "escalate" on "roles", a dangerous permission the policy forbids"#
        ]
    );
}
