"""The Argo CD health checks of examples/gitops/argocd-cm.yaml, run by a real Lua 5.1 interpreter
(the language Argo CD's gopher-lua implements) on status fixtures for every kind and state, in a
sandbox holding only the libraries Argo CD opens for health scripts."""

from __future__ import annotations

import pytest
import yaml
from lupa import lua51

from chartlib import REPO

CONFIGMAP = REPO / "examples" / "gitops" / "argocd-cm.yaml"
KINDS = ["CompliancePolicy", "TrainingDataset", "ModelDeployment", "ModelApproval", "AgentPolicy"]
ARGO_STATES = {"Healthy", "Progressing", "Degraded", "Suspended"}
DIGEST_OLD = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
DIGEST_NEW = "sha256:2222222222222222222222222222222222222222222222222222222222222222"


def scripts() -> dict[str, str]:
    data = yaml.safe_load(CONFIGMAP.read_text())["data"]
    return {key.rsplit("_", 1)[1]: value for key, value in data.items()
            if key.startswith("resource.customizations.health.")}


def health(kind: str, obj: dict) -> tuple[str, str]:
    """Runs the health script for `kind` on `obj` as Argo CD does: `obj` is a global, the script's
    chunk returns a table {status, message}."""
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    g = lua.globals()
    for unsafe in ["os", "io", "debug", "require", "package", "dofile", "loadfile", "load",
                   "loadstring", "module"]:
        g[unsafe] = None
    g.obj = lua.table_from(obj, recursive=True)
    hs = lua.execute(scripts()[kind])
    assert hs is not None, f"{kind}: the script returned nothing"
    status, message = hs["status"], hs["message"]
    assert status in ARGO_STATES, f"{kind}: status {status!r}"
    assert isinstance(message, str), f"{kind}: message {message!r}"
    return status, message


def cond(type_: str, status: str, reason: str = "", message: str = "", generation: int = 2) -> dict:
    return {"type": type_, "status": status, "reason": reason or ("Ok" if status == "True" else "No"),
            "message": message, "lastTransitionTime": "2026-01-01T00:00:00Z",
            "observedGeneration": generation}


def obj(kind: str, *conditions: dict, generation: int = 2, observed: int | None = 2, **status) -> dict:
    o = {"apiVersion": "annexa.dev/v1alpha1", "kind": kind,
         "metadata": {"name": "x", "namespace": "ml", "generation": generation}}
    if conditions or status or observed is not None:
        o["status"] = dict(status, conditions=list(conditions))
        if observed is not None:
            o["status"]["observedGeneration"] = observed
    return o


OK = [cond("Ready", "True", "Reconciled", "applied"),
      cond("Compliant", "True", "AllControlsPass", "every control passes")]


def test_every_kind_has_a_health_check_and_shares_one_prelude():
    found = scripts()
    assert set(found) == set(KINDS) | {"Application"}
    preludes = {found[k].split("-- Kind-specific rules.")[0] for k in KINDS}
    assert len(preludes) == 1, "the shared prelude differs between kinds"


@pytest.mark.parametrize("kind", KINDS)
def test_no_status_yet_is_progressing(kind):
    assert health(kind, obj(kind, observed=None)) == \
        ("Progressing", f"Waiting for Annexa to evaluate this {kind}")
    assert health(kind, obj(kind))[0] == "Progressing"  # status with an empty condition list


@pytest.mark.parametrize("kind", KINDS)
def test_stale_observed_generation_is_progressing_whatever_the_conditions_say(kind):
    failing = [cond(t, "False", "Bad", "old news", generation=2)
               for t in ["Ready", "Compliant", "Retained", "LeastPrivilege", "Counted"]]
    status, message = health(kind, obj(kind, *failing, generation=3, observed=2))
    assert status == "Progressing"
    assert message == "Waiting for Annexa to evaluate generation 3 (status is for 2)"
    assert health(kind, obj(kind, *OK, generation=3, observed=None)) == \
        ("Progressing", "Waiting for Annexa to evaluate generation 3 (status is for none)")


# --- CompliancePolicy ------------------------------------------------------------------------

def test_compliance_policy_states():
    assert health("CompliancePolicy", obj("CompliancePolicy", OK[0], matchedNamespaces=3)) == \
        ("Healthy", "Applies to 3 namespace(s)")
    invalid = cond("Ready", "False", "Invalid", "gpu.pools[0].taint: missing effect")
    assert health("CompliancePolicy", obj("CompliancePolicy", invalid)) == \
        ("Degraded", "gpu.pools[0].taint: missing effect")
    assert health("CompliancePolicy", obj("CompliancePolicy", cond("Ready", "Unknown")))[0] == "Progressing"


# --- TrainingDataset -------------------------------------------------------------------------

def test_training_dataset_states():
    retained = cond("Retained", "True", "WithinRetention", "retained until 2027-01-01T00:00:00Z")
    assert health("TrainingDataset", obj("TrainingDataset", *OK, retained)) == \
        ("Healthy", "retained until 2027-01-01T00:00:00Z")
    expired = cond("Retained", "False", "Expired",
                   "retention ended at 2026-01-01T00:00:00Z; data deleted at 2026-01-01T00:01:00Z")
    assert health("TrainingDataset", obj("TrainingDataset", *OK, expired)) == \
        ("Degraded", expired["message"])
    failing = cond("Compliant", "False", "ControlsFailed",
                   'A.8.24 Use of cryptography: dataset "claims" is Confidential and has no KMS key')
    assert health("TrainingDataset", obj("TrainingDataset", OK[0], failing, retained)) == \
        ("Degraded", failing["message"])
    assert health("TrainingDataset", obj("TrainingDataset", OK[1]))[0] == "Progressing"


# --- ModelDeployment -------------------------------------------------------------------------

def md(*conditions, **status):
    return obj("ModelDeployment", *conditions, **status)


SERVING = [*OK, cond("DatasetsCompliant", "True"), cond("Encrypted", "True"), cond("GPUIsolated", "True"),
           cond("Available", "True", "MinimumReplicasAvailable", "2 of 2 replicas available")]


def test_model_deployment_serving_the_approved_digest_is_healthy():
    conditions = SERVING + [cond("Approved", "True", "Approved", "2 of 2 approvals"),
                            cond("Promoted", "True", "Promoted", "serving sha256:2222222222")]
    assert health("ModelDeployment", md(*conditions, servingDigest=DIGEST_NEW)) == \
        ("Healthy", "serving sha256:2222222222")
    not_required = SERVING + [cond("Approved", "True", "NotRequired", "no approvals required")]
    assert health("ModelDeployment", md(*not_required))[0] == "Healthy"


def test_model_deployment_awaiting_approval_is_suspended_with_the_approval_count():
    waiting = cond("Approved", "False", "AwaitingApproval", "1 of 2 approvals")
    held = cond("Promoted", "False", "Pending",
                "serving sha256:1111111111; sha256:2222222222 is held until approved")
    status, message = health("ModelDeployment", md(*SERVING, waiting, held, servingDigest=DIGEST_OLD,
                                                   pendingDigest=DIGEST_NEW))
    assert status == "Suspended"
    assert message == ("Awaiting approval: 1 of 2 approvals; serving sha256:1111111111; "
                       "sha256:2222222222 is held until approved")
    # A first deployment: nothing serves until approved.
    first = [OK[1], cond("Ready", "False", "AwaitingApproval", "nothing serves yet"),
             cond("Approved", "False", "AwaitingApproval", "0 of 2 approvals"),
             cond("Promoted", "False", "NothingServing", "nothing serves until sha256:2222222222 is approved")]
    assert health("ModelDeployment", md(*first)) == \
        ("Suspended", "Awaiting approval: 0 of 2 approvals; nothing serves until sha256:2222222222 is approved")


def test_model_deployment_rejected_is_degraded():
    rejected = cond("Approved", "False", "Rejected", "rejected by bob: eval regression on fraud set")
    assert health("ModelDeployment", md(*SERVING, rejected)) == \
        ("Degraded", "rejected by bob: eval regression on fraud set")


@pytest.mark.parametrize("failing", ["Compliant", "DatasetsCompliant", "Encrypted", "GPUIsolated"])
def test_model_deployment_failing_control_is_degraded_even_while_awaiting_approval(failing):
    conditions = [c for c in SERVING if c["type"] != failing]
    conditions.append(cond(failing, "False", "Failed", f"A.8.22 {failing} fails here"))
    conditions.append(cond("Approved", "False", "AwaitingApproval", "1 of 2 approvals"))
    assert health("ModelDeployment", md(*conditions)) == ("Degraded", f"A.8.22 {failing} fails here")


def test_model_deployment_rolling_out_is_progressing():
    unavailable = [c for c in SERVING if c["type"] != "Available"] + [
        cond("Available", "False", "ReplicasUnavailable", "0 of 2 replicas available"),
        cond("Approved", "True", "Approved", "2 of 2 approvals")]
    assert health("ModelDeployment", md(*unavailable)) == ("Progressing", "0 of 2 replicas available")
    not_promoted = SERVING + [cond("Approved", "True", "Approved", "2 of 2 approvals"),
                              cond("Promoted", "False", "Pending", "rolling out sha256:2222222222")]
    assert health("ModelDeployment", md(*not_promoted)) == ("Progressing", "rolling out sha256:2222222222")


# --- ModelApproval ---------------------------------------------------------------------------

def mapr(counted: dict) -> dict:
    return obj("ModelApproval", *OK, counted)


def test_model_approval_that_counts_is_healthy():
    assert health("ModelApproval", mapr(cond("Counted", "True", "Counted", f"1 of 2 approvals for {DIGEST_NEW}"))) == \
        ("Healthy", f"1 of 2 approvals for {DIGEST_NEW}")
    assert health("ModelApproval", mapr(cond("Counted", "True", "Rejecting", "this rejection blocks the digest")))[0] == \
        "Healthy"


@pytest.mark.parametrize("reason,message", [
    ("Superseded", f"the model now requests {DIGEST_NEW}"),
    ("Expired", "approval expired at 2026-01-01T00:00:00Z"),
    ("Duplicate", "alice already approved this digest"),
])
def test_model_approval_that_no_longer_counts_is_suspended(reason, message):
    assert health("ModelApproval", mapr(cond("Counted", "False", reason, message))) == \
        ("Suspended", f"Not counted ({reason}): {message}")


@pytest.mark.parametrize("reason,message", [
    ("SelfApproval", "A.5.3 Segregation of duties: the approver requested this digest"),
    ("NotInApproverGroup", "alice is in none of the approver groups ml-leads"),
    ("ModelNotFound", 'ModelDeployment "fraud" does not exist'),
])
def test_model_approval_that_can_never_count_is_degraded(reason, message):
    assert health("ModelApproval", mapr(cond("Counted", "False", reason, message))) == \
        ("Degraded", f"Not counted ({reason}): {message}")


# --- AgentPolicy -----------------------------------------------------------------------------

def test_agent_policy_states():
    lp = cond("LeastPrivilege", "True", "NoExcessBindings", "no binding grants more than the policy")
    assert health("AgentPolicy", obj("AgentPolicy", *OK, lp)) == ("Healthy", "applied")
    excess = cond("LeastPrivilege", "False", "ExcessBindings",
                  'A.8.2 Privileged access rights: service account "agent" is granted more than its '
                  "policy by ClusterRoleBinding/agent-admin")
    status, message = health("AgentPolicy", obj("AgentPolicy", *OK, excess))
    assert status == "Degraded" and "ClusterRoleBinding/agent-admin" in message
    withheld = cond("Ready", "False", "GrantWithheld",
                    "the declared permissions break an Enforce control and were not granted")
    assert health("AgentPolicy", obj("AgentPolicy", withheld, OK[1], lp)) == ("Degraded", withheld["message"])
    failing = cond("Compliant", "False", "ControlsFailed", "A.8.12 Data leakage prevention: no egress allow-list")
    assert health("AgentPolicy", obj("AgentPolicy", OK[0], failing, lp)) == ("Degraded", failing["message"])


# --- Application (for sync waves between child Applications) ---------------------------------

def test_application_health_passes_through_for_sync_waves():
    app = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {"name": "annexa"},
           "status": {"health": {"status": "Degraded", "message": "Deployment annexa: 0/2 ready"}}}
    assert health("Application", app) == ("Degraded", "Deployment annexa: 0/2 ready")
    del app["status"]
    assert health("Application", app) == ("Progressing", "")
