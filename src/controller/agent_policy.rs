//! AgentPolicy: the agent's ServiceAccount (no token automount), a Role + RoleBinding with
//! exactly the declared rules, an egress NetworkPolicy (allow-list plus DNS), and detection of
//! any other binding that grants the agent's account more than its policy (`LeastPrivilege`).

use super::conditions::{self, Desired};
use super::error::{Error, Result};
use super::{
    Child, Context, Watches, apply, apply_status, child_labels, drive, forbidden_condition,
    forbidden_to_annexa, foreign_children, name_conflict, owner_reference, refs, withdraw,
};
use crate::api::{AgentPolicy, AgentPolicyStatus, CommonStatus};
use crate::cluster::ClusterState;
use crate::policy::pod_access::{agent_pod_mismatches, listed};
use crate::policy::{self, Governed};
use futures::Future;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub use crate::api::AGENT_LABEL;
/// Bindings listed in status at most.
const MAX_LISTED: usize = 20;

/// Caches of RBAC objects for least-privilege checks.
#[derive(Clone)]
pub struct RbacState {
    pub role_bindings: Store<RoleBinding>,
    pub cluster_role_bindings: Store<ClusterRoleBinding>,
    pub roles: Store<Role>,
    pub cluster_roles: Store<ClusterRole>,
}

/// Name of the Role and RoleBinding Annexa grants the agent.
pub fn grant_name(agent: &AgentPolicy) -> String {
    format!("{}-agent", agent.name_any())
}

fn meta(agent: &AgentPolicy, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: agent.metadata.namespace.clone(),
        labels: Some(child_labels("agentpolicy", &agent.name_any())),
        owner_references: owner_reference(agent).map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

pub fn build_service_account(agent: &AgentPolicy) -> ServiceAccount {
    ServiceAccount {
        metadata: meta(agent, agent.spec.service_account_name.clone()),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}

/// Whether a namespaced Role can hold the rule (kube-apiserver refuses the whole Role
/// otherwise): verbs, API groups and resources, and no non-resource URLs.
pub fn role_can_hold(rule: &PolicyRule) -> bool {
    let some = |v: &Option<Vec<String>>| v.as_ref().is_some_and(|v| !v.is_empty());
    !rule.verbs.is_empty()
        && !some(&rule.non_resource_urls)
        && some(&rule.api_groups)
        && some(&rule.resources)
}

/// The Role with exactly the declared rules and its binding to the agent's account. A rule no
/// Role can hold (non-resource URLs, no verbs) is left out, so it is not granted.
pub fn build_grant(agent: &AgentPolicy) -> (Role, RoleBinding) {
    let role = Role {
        metadata: meta(agent, grant_name(agent)),
        rules: Some(
            agent
                .spec
                .permissions
                .iter()
                .filter(|r| role_can_hold(r))
                .cloned()
                .collect(),
        ),
    };
    let binding = RoleBinding {
        metadata: meta(agent, grant_name(agent)),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_string()),
            kind: "Role".to_string(),
            name: grant_name(agent),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_string(),
            name: agent.spec.service_account_name.clone(),
            namespace: agent.metadata.namespace.clone(),
            api_group: None,
        }]),
    };
    (role, binding)
}

/// Egress denied but to the allow-list and cluster DNS.
pub fn build_network_policy(agent: &AgentPolicy) -> NetworkPolicy {
    // The same selector the admission rules hold agent pods to (`AgentPolicy::pod_selector`).
    let selector = agent.pod_selector();
    let mut egress: Vec<NetworkPolicyEgressRule> = agent
        .spec
        .egress
        .iter()
        // A rule a NetworkPolicy cannot express is left out (that traffic stays denied): the
        // API server would refuse the whole policy, and the agent's egress would stay open.
        .filter(|rule| network_policy_can_hold(rule))
        .map(|rule| NetworkPolicyEgressRule {
            to: Some(vec![NetworkPolicyPeer {
                ip_block: Some(IPBlock {
                    cidr: rule.cidr.clone(),
                    except: None,
                }),
                ..NetworkPolicyPeer::default()
            }]),
            ports: Some(
                rule.ports
                    .iter()
                    .map(|p| NetworkPolicyPort {
                        port: Some(IntOrString::Int(*p)),
                        protocol: Some(rule.protocol.clone().unwrap_or_else(|| "TCP".to_string())),
                        end_port: None,
                    })
                    .collect(),
            ),
        })
        .collect();
    egress.push(NetworkPolicyEgressRule {
        to: Some(vec![NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "kubernetes.io/metadata.name".to_string(),
                    "kube-system".to_string(),
                )])),
                match_expressions: None,
            }),
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "k8s-app".to_string(),
                    "kube-dns".to_string(),
                )])),
                match_expressions: None,
            }),
            ip_block: None,
        }]),
        ports: Some(
            ["UDP", "TCP"]
                .iter()
                .map(|proto| NetworkPolicyPort {
                    port: Some(IntOrString::Int(53)),
                    protocol: Some(proto.to_string()),
                    end_port: None,
                })
                .collect(),
        ),
    });
    NetworkPolicy {
        metadata: meta(agent, grant_name(agent)),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector),
            policy_types: Some(vec!["Egress".to_string()]),
            egress: Some(egress),
            ingress: None,
        }),
    }
}

/// Whether an egress rule is one a NetworkPolicy can hold: a protocol of TCP, UDP or SCTP,
/// ports from 1 to 65535 and a CIDR (`address/prefix`).
pub fn network_policy_can_hold(rule: &crate::api::EgressRule) -> bool {
    let protocol = matches!(
        rule.protocol.as_deref(),
        None | Some("TCP" | "UDP" | "SCTP")
    );
    let ports = rule.ports.iter().all(|p| (1..=65535).contains(p));
    let cidr = rule.cidr.split_once('/').is_some_and(|(ip, prefix)| {
        match (ip.parse::<std::net::IpAddr>(), prefix.parse::<u8>()) {
            (Ok(std::net::IpAddr::V4(_)), Ok(bits)) => bits <= 32,
            (Ok(std::net::IpAddr::V6(_)), Ok(bits)) => bits <= 128,
            _ => false,
        }
    });
    protocol && ports && cidr
}

/// The egress policy of an agent whose declared egress fails an Enforce control: every egress
/// denied but cluster DNS (the declared rules are not opened, not even in part).
pub fn build_withheld_network_policy(agent: &AgentPolicy) -> NetworkPolicy {
    let mut policy = build_network_policy(agent);
    if let Some(spec) = policy.spec.as_mut() {
        let dns = spec.egress.as_mut().and_then(|rules| rules.pop());
        spec.egress = Some(dns.into_iter().collect());
    }
    policy
}

fn covers(list: Option<&[String]>, value: &str) -> bool {
    list.unwrap_or_default()
        .iter()
        .any(|v| v == value || v == "*")
}

/// Whether every permission in `granted` is covered by a declared rule.
pub fn rule_covered(granted: &PolicyRule, declared: &[PolicyRule]) -> bool {
    if granted
        .non_resource_urls
        .as_deref()
        .is_some_and(|u| !u.is_empty())
    {
        return false;
    }
    let groups = granted.api_groups.as_deref().unwrap_or_default();
    let resources = granted.resources.as_deref().unwrap_or_default();
    let names = granted.resource_names.as_deref().unwrap_or_default();
    groups.iter().all(|g| {
        resources.iter().all(|r| {
            granted.verbs.iter().all(|v| {
                declared.iter().any(|d| {
                    // A wildcard granted is only covered by the same wildcard declared.
                    let group_ok = covers(d.api_groups.as_deref(), g)
                        && (g != "*" || covers(d.api_groups.as_deref(), "*"));
                    let resource_ok = covers(d.resources.as_deref(), r);
                    let verb_ok = d.verbs.iter().any(|dv| dv == v || dv == "*");
                    let declared_names = d.resource_names.as_deref().unwrap_or_default();
                    let names_ok = declared_names.is_empty()
                        || (!names.is_empty() && names.iter().all(|n| declared_names.contains(n)));
                    group_ok && resource_ok && verb_ok && names_ok
                })
            })
        })
    })
}

fn binds(subjects: Option<&Vec<Subject>>, namespace: &str, account: &str) -> bool {
    subjects.into_iter().flatten().any(|s| {
        (s.kind == "ServiceAccount"
            && s.name == account
            && s.namespace.as_deref() == Some(namespace))
            || (s.kind == "Group"
                && (s.name == "system:serviceaccounts"
                    || s.name == format!("system:serviceaccounts:{namespace}")))
            || (s.kind == "User"
                && s.name == format!("system:serviceaccount:{namespace}:{account}"))
    })
}

/// Bindings (other than Annexa's own) that grant the agent's account more than its policy.
pub fn excess_bindings(agent: &AgentPolicy, rbac: &RbacState) -> Vec<String> {
    let namespace = agent.namespace().unwrap_or_default();
    let account = &agent.spec.service_account_name;
    let declared = &agent.spec.permissions;
    let own = grant_name(agent);
    let rules_of = |kind: &str, name: &str| -> Option<Vec<PolicyRule>> {
        match kind {
            "ClusterRole" => rbac
                .cluster_roles
                .get(&ObjectRef::new(name))
                .map(|r| r.rules.clone().unwrap_or_default()),
            "Role" => rbac
                .roles
                .get(&ObjectRef::new(name).within(&namespace))
                .map(|r| r.rules.clone().unwrap_or_default()),
            _ => None,
        }
    };
    let mut excess = Vec::new();
    let mut judge =
        |label: String, role_ref: &RoleRef| match rules_of(&role_ref.kind, &role_ref.name) {
            None => excess.push(format!(
                "{label} ({} {} not found, cannot verify)",
                role_ref.kind, role_ref.name
            )),
            Some(rules) => {
                if !rules.iter().all(|r| rule_covered(r, declared)) {
                    excess.push(format!("{label} ({} {})", role_ref.kind, role_ref.name));
                }
            }
        };
    for rb in rbac.role_bindings.state() {
        if rb.metadata.namespace.as_deref() != Some(namespace.as_str()) || rb.name_any() == own {
            continue;
        }
        if binds(rb.subjects.as_ref(), &namespace, account) {
            judge(
                format!("RoleBinding {}/{}", namespace, rb.name_any()),
                &rb.role_ref,
            );
        }
    }
    for crb in rbac.cluster_role_bindings.state() {
        if binds(crb.subjects.as_ref(), &namespace, account) {
            judge(
                format!("ClusterRoleBinding {}", crb.name_any()),
                &crb.role_ref,
            );
        }
    }
    excess.sort();
    excess
}

/// Whether the agent's declared permissions, and its declared egress, fail an Enforce control:
/// `(grant_blocked, egress_blocked)`. The same engine call as the webhook's decides what the
/// controller materialises.
pub fn blocked(eval: &policy::Evaluation) -> (bool, bool) {
    let grant = eval
        .denials()
        .any(|f| f.control == "A.5.15" || f.control == "A.8.2");
    let egress = eval
        .denials()
        .any(|f| f.control == "A.8.12" || f.control == "A.8.20");
    (grant, egress)
}

/// Enforce findings listed for a condition or an Event (the first few; the rest counted).
pub fn enforce_findings(eval: &policy::Evaluation) -> String {
    const SHOWN: usize = 5;
    // Several rules can fail the same way: each message once, in the order found.
    let mut denials: Vec<&str> = Vec::new();
    for f in eval.denials() {
        if !denials.contains(&f.message.as_str()) {
            denials.push(&f.message);
        }
    }
    let mut text = denials
        .iter()
        .take(SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join("; ");
    if denials.len() > SHOWN {
        text.push_str(&format!("; and {} more", denials.len() - SHOWN));
    }
    text
}

/// `Ready=False` of an agent whose grant or egress fails an Enforce control: what is withheld
/// (and withdrawn, when it was granted before), the controls and the rules that fail.
pub fn withheld_ready(
    eval: &policy::Evaluation,
    grant_blocked: bool,
    egress_blocked: bool,
) -> Desired {
    let withheld: Vec<&str> = [
        (
            grant_blocked,
            "the declared permissions are not granted (a Role or RoleBinding granted before is withdrawn)",
        ),
        (egress_blocked, "the declared egress is not opened (DNS only)"),
    ]
    .into_iter()
    .filter_map(|(blocked, what)| blocked.then_some(what))
    .collect();
    let mut controls: Vec<&str> = eval.denials().map(|f| f.control).collect();
    controls.sort();
    controls.dedup();
    Desired::new(
        "Ready",
        false,
        if grant_blocked {
            "GrantWithheld"
        } else {
            "EgressWithheld"
        },
        format!(
            "the spec fails Enforce controls ({}): {}: {}",
            controls.join(", "),
            withheld.join("; "),
            enforce_findings(eval)
        ),
    )
}

/// The AgentPolicy that governs `agent`'s service account when several name the same one: the
/// oldest (then the first by name), as `annexa check` and the webhook decide
/// ([`governing_agent`](crate::policy::agent_policy::governing_agent)). Only it is reconciled;
/// the others report the conflict. (Two owners would take the account, its Role and
/// NetworkPolicy from each other on every reconcile.)
pub fn account_owner(agent: &AgentPolicy, agents: &[Arc<AgentPolicy>]) -> Option<Arc<AgentPolicy>> {
    crate::policy::agent_policy::governing_agent(
        agents,
        agent.metadata.namespace.as_deref()?,
        &agent.spec.service_account_name,
    )
    .filter(|owner| owner.name_any() != agent.name_any())
}

/// The AgentPolicy Controller: its own kind, its owned ServiceAccount, NetworkPolicy and Role,
/// every binding that names its account (least privilege is re-judged on each change, Annexa's
/// own grant included), the policies, and the agents naming the same account.
pub fn controller(ctx: Arc<Context>, watches: &Watches) -> impl Future<Output = ()> + use<> {
    let (client, feeds) = (&watches.client, &watches.state.feeds);
    let bound_agents = |subjects: Option<&Vec<Subject>>, state: &ClusterState| {
        let subjects = subjects.map(Vec::as_slice).unwrap_or_default();
        refs(state.agents.state_filter(|a| {
            subjects.iter().any(|s| {
                s.kind == "Group"
                    || (s.name == a.spec.service_account_name
                        && s.namespace.as_deref() == a.metadata.namespace.as_deref())
            })
        }))
    };
    let (s, s2, s3, s4) = (
        watches.state.clone(),
        watches.state.clone(),
        watches.state.clone(),
        watches.state.clone(),
    );
    let controller = Controller::for_shared_stream(feeds.agents.changes(), feeds.agents.store())
        .with_config(watches.config.clone())
        .owns(
            Api::<ServiceAccount>::all(client.clone()),
            watches.owned.clone(),
        )
        .owns(
            Api::<NetworkPolicy>::all(client.clone()),
            watches.owned.clone(),
        )
        .owns_shared_stream(watches.roles.updates())
        // Every RoleBinding change (Annexa's own grant included) re-judges the agents it binds.
        .watches_shared_stream(watches.role_bindings.updates(), move |rb| {
            bound_agents(rb.subjects.as_ref(), &s)
        })
        .watches_shared_stream(watches.cluster_role_bindings.updates(), move |crb| {
            bound_agents(crb.subjects.as_ref(), &s2)
        })
        .watches_shared_stream(feeds.policies.updates(), move |_| refs(s3.agents.state()))
        // Agents naming the same service account: when one changes or goes, the others
        // re-check which of them governs it.
        .watches_shared_stream(feeds.agents.updates(), move |changed| {
            refs(s4.agents.state_filter(|a| {
                a.metadata.namespace == changed.metadata.namespace
                    && a.spec.service_account_name == changed.spec.service_account_name
                    && a.metadata.name != changed.metadata.name
            }))
        });
    drive(controller, reconcile, ctx, watches)
}

pub async fn reconcile(agent: Arc<AgentPolicy>, ctx: Arc<Context>) -> Result<Action> {
    let (agent, ctx) = (&*agent, &*ctx);
    let namespace = super::namespace_of(agent)?;
    let now = Timestamp::now();
    if let Some(owner) = account_owner(agent, &ctx.state.agents.state()) {
        return report_conflict(agent, &owner, ctx, now).await;
    }
    let profile = ctx.state.profile(&namespace);
    let eval = ctx.evaluate(Governed::Agent(agent), &profile, now);

    let service_account = build_service_account(agent);
    let (role, binding) = build_grant(agent);
    // The same engine call as the webhook, whether or not the webhook saw the agent: grants
    // with Enforce findings (a wildcard, a dangerous permission) are not applied, and egress
    // rules with Enforce findings (the whole internet, every port) are not opened: the agent
    // keeps DNS only. Annexa never hands out what its own rules forbid.
    let (grant_blocked, egress_blocked) = blocked(&eval);
    let network_policy = if egress_blocked {
        build_withheld_network_policy(agent)
    } else {
        build_network_policy(agent)
    };
    let mut children = vec![Child::of(&service_account), Child::of(&network_policy)];
    if !grant_blocked {
        children.push(Child::of(&role));
        children.push(Child::of(&binding));
    }
    let foreign = foreign_children(&ctx.client, &children).await?;
    let mut forbidden = None;
    if foreign.is_empty() {
        // The restrictive children first: a grant Annexa may not write here leaves the agent
        // with its account and its egress policy, never the other way round.
        let applied = async {
            apply(&ctx.client, &service_account).await?;
            apply(&ctx.client, &network_policy).await?;
            if !grant_blocked {
                apply(&ctx.client, &role).await?;
                apply(&ctx.client, &binding).await?;
            }
            Ok::<_, Error>(())
        }
        .await;
        if let Err(error) = applied {
            forbidden = Some(forbidden_to_annexa(&error).ok_or(error)?);
        }
    }
    // A grant made while policy allowed it (admitted under Audit, created before a stricter
    // policy) is withdrawn as soon as it fails an Enforce control: binding first, then the Role.
    if grant_blocked {
        let name = grant_name(agent);
        let binding_now = super::cached_rbac(ctx, |r| &r.role_bindings, &namespace, &name).await?;
        let role_now = super::cached_rbac(ctx, |r| &r.roles, &namespace, &name).await?;
        let withdrew_binding = withdraw(&ctx.client, agent, binding_now.as_deref()).await?;
        let withdrew_role = withdraw(&ctx.client, agent, role_now.as_deref()).await?;
        if withdrew_binding || withdrew_role {
            ctx.event(
                agent,
                true,
                "GrantWithdrawn",
                format!(
                    "Role and RoleBinding {name:?} withdrawn: {}",
                    enforce_findings(&eval)
                ),
            )
            .await;
        }
    }

    let excess = ctx
        .rbac
        .as_ref()
        .map(|r| excess_bindings(agent, r))
        .unwrap_or_default();
    // The agent's pods, by the same definition as the NetworkPolicy's selector and the
    // admission rules: running pods whose account and labels disagree (A.8.12, A.5.15).
    let mismatched =
        agent_pod_mismatches(agent, &super::running_pods(&ctx.client, &namespace).await?);
    let pod_identity = if mismatched.is_empty() {
        Desired::new(
            "PodIdentity",
            true,
            "Consistent",
            "every running pod of the agent's service account carries its pod labels, and no other pod does",
        )
    } else {
        Desired::new(
            "PodIdentity",
            false,
            "Mismatched",
            format!(
                "{} break the agent's identity: {}",
                mismatched.len(),
                listed(&mismatched)
            ),
        )
    };
    let least_privilege = if excess.is_empty() {
        Desired::new(
            "LeastPrivilege",
            true,
            "NoExcessBindings",
            "no binding grants more than the policy",
        )
    } else {
        Desired::new(
            "LeastPrivilege",
            false,
            "ExcessBindings",
            format!(
                "A.8.2 Privileged access rights: service account {:?} is granted more than its policy by {}",
                agent.spec.service_account_name,
                excess.join(", ")
            ),
        )
    };
    let desired = vec![
        least_privilege,
        pod_identity.clone(),
        if !foreign.is_empty() {
            name_conflict(&foreign)
        } else if let Some(message) = &forbidden {
            forbidden_condition(
                &format!("the agent's children in namespace {namespace:?}"),
                message,
            )
        } else if grant_blocked || egress_blocked {
            withheld_ready(&eval, grant_blocked, egress_blocked)
        } else {
            Desired::new(
                "Ready",
                true,
                "Reconciled",
                "service account, role, binding and egress policy applied",
            )
        },
        if eval.is_compliant() && excess.is_empty() && mismatched.is_empty() {
            Desired::new("Compliant", true, "AllControlsPass", "every control passes")
        } else {
            let mut messages: Vec<String> =
                eval.findings.iter().map(|f| f.message.clone()).collect();
            if !excess.is_empty() {
                messages.push(format!("excess bindings: {}", excess.join(", ")));
            }
            if !mismatched.is_empty() {
                messages.push(pod_identity.message.clone());
            }
            Desired::new("Compliant", false, "ControlsFailed", messages.join("; "))
        },
    ];
    let old = super::old_conditions(agent);
    let merged = conditions::merge(&old, &desired, agent.metadata.generation, now);
    ctx.publish_transitions(agent, &old, &merged, |c| c.status == "False")
        .await;
    let status = AgentPolicyStatus {
        common: CommonStatus {
            observed_generation: agent.metadata.generation,
            conditions: merged,
            controls: eval.control_results(),
        },
        excess_bindings: excess.into_iter().take(MAX_LISTED).collect(),
    };
    let api: Api<AgentPolicy> = Api::namespaced(ctx.client.clone(), &namespace);
    apply_status(&api, agent, &status).await?;
    Ok(Action::requeue(Duration::from_secs(3600)))
}

/// Status of an AgentPolicy whose service account another one already governs: nothing is
/// applied for it until the conflict is resolved (the owner's deletion re-triggers it).
async fn report_conflict(
    agent: &AgentPolicy,
    owner: &AgentPolicy,
    ctx: &Context,
    now: Timestamp,
) -> Result<Action> {
    let message = format!(
        "service account {:?} is already governed by AgentPolicy {:?}; give this agent a service account of its own",
        agent.spec.service_account_name,
        owner.name_any()
    );
    let desired = vec![
        Desired::new("Ready", false, "ServiceAccountConflict", message.clone()),
        Desired::new("Compliant", false, "ServiceAccountConflict", message),
    ];
    let old = super::old_conditions(agent);
    let merged = conditions::merge(&old, &desired, agent.metadata.generation, now);
    ctx.publish_transitions(agent, &old, &merged, |_| true)
        .await;
    let status = AgentPolicyStatus {
        common: CommonStatus {
            observed_generation: agent.metadata.generation,
            conditions: merged,
            controls: Vec::new(),
        },
        excess_bindings: Vec::new(),
    };
    let api: Api<AgentPolicy> =
        Api::namespaced(ctx.client.clone(), &agent.namespace().unwrap_or_default());
    apply_status(&api, agent, &status).await?;
    Ok(Action::await_change())
}
