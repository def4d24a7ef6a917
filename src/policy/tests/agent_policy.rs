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
