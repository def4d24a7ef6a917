"""The Helm chart as an installer sees it: rendered with Helm v4 (helm-python-sdk) for each values
combination, every object checked against the Kubernetes OpenAPI schema (strict: an unknown or
misplaced field fails), then the properties a platform team relies on."""

from __future__ import annotations

import json
import os
import subprocess

import celpy
import yaml
import helm_python
import kubernetes_validate
import pytest

from chartlib import CHART, REPO, Rendered, load_chart, render, to_yaml_stream

# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schema known.
KUBE_VERSIONS = ["1.30", kubernetes_validate.latest_version()]

# Kinds defined by other projects' CRDs: no OpenAPI schema ships for them, so the tests below
# check their fields by hand.
FOREIGN_KINDS = {("cert-manager.io/v1", "Issuer"), ("cert-manager.io/v1", "Certificate"),
                 ("monitoring.coreos.com/v1", "ServiceMonitor")}

ANNEXA_RESOURCES = ["compliancepolicies", "trainingdatasets", "modeldeployments", "modelapprovals",
                    "agentpolicies"]

SCENARIOS = {
    "default": ({}, "annexa", "annexa-system"),
    "ha-off": ({"replicaCount": 1, "leaderElection": {"enabled": False}}, "annexa", "annexa-system"),
    "cert-manager": ({"certificates": {"mode": "cert-manager"}}, "annexa", "annexa-system"),
    "cert-manager-cluster-issuer": (
        {"certificates": {"mode": "cert-manager",
                          "certManager": {"issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer",
                                                        "group": "cert-manager.io"}}}},
        "annexa", "annexa-system"),
    "custom-namespace": ({"webhook": {"excludedNamespaces": ["argocd"]}}, "prod", "platform-security"),
    "grantable-rules": ({"rbac": {"grantMode": "grantableRules", "grantableRules": [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]}},
        "annexa", "annexa-system"),
    "everything-optional": ({"metrics": {"serviceMonitor": {"enabled": True}},
                             "networkPolicy": {"apiServer": {"cidrs": ["10.0.0.10/32"]},
                                               "webhook": {"from": [{"ipBlock": {"cidr": "10.0.0.0/24"}}]}},
                             "podAntiAffinity": "hard", "image": {"digest": "sha256:" + "a" * 64},
                             "webhook": {"workloads": {"failurePolicy": "Ignore", "extraMatchConditions": [
                                 {"name": "not-ci", "expression": "request.userInfo.username != 'ci'"}]}}},
                            "annexa", "annexa-system"),
    "namespaced-writes": ({"rbac": {"namespaces": ["team-a", "team-b"]}}, "annexa", "annexa-system"),
    "namespaced-grantable-rules": ({"rbac": {"namespaces": ["team-a"], "grantMode": "grantableRules",
                                             "grantableRules": [{"apiGroups": [""], "resources": ["secrets"],
                                                                 "verbs": ["get"]}]}},
                                   "annexa", "annexa-system"),
    "workloads-off": ({"webhook": {"workloads": {"enabled": False}}, "networkPolicy": {"enabled": False}},
                      "annexa", "annexa-system"),
}


@pytest.fixture(scope="module")
def chart() -> helm_python.Chart:
    return load_chart()


@pytest.fixture(scope="module")
def rendered(chart) -> dict[str, Rendered]:
    return {key: render(values, name=name, namespace=ns, chart=chart)
            for key, (values, name, ns) in SCENARIOS.items()}


def webhooks(r: Rendered) -> list[dict]:
    return (r.one("ValidatingWebhookConfiguration")["webhooks"]
            + r.one("MutatingWebhookConfiguration")["webhooks"])


def webhook(r: Rendered, name: str) -> dict:
    found = [w for w in webhooks(r) if w["name"] == name]
    assert len(found) == 1, name
    return found[0]


def container(r: Rendered) -> dict:
    (c,) = r.one("Deployment")["spec"]["template"]["spec"]["containers"]
    return c


def permissions(rules: list[dict]) -> dict[tuple[str, str, tuple[str, ...]], set[str]]:
    """(apiGroup, resource, resourceNames) -> verbs, for every rule (resourceNames () when the
    rule names none)."""
    out: dict[tuple[str, str, tuple[str, ...]], set[str]] = {}
    for rule in rules:
        names = tuple(sorted(rule.get("resourceNames") or []))
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource, names), set()).update(rule["verbs"])
    return out


def code_permissions() -> list[dict]:
    """What Annexa's code calls (`annexa permissions`, the table each call site is checked
    against): the single source of the expected RBAC."""
    binary = os.environ.get("ANNEXA_BIN")
    command = [binary, "permissions"] if binary else ["cargo", "run", "--quiet", "--", "permissions"]
    out = subprocess.run(command, cwd=REPO, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def expected_rbac(values: dict, fullname: str) -> tuple[dict, dict]:
    """(ClusterRole, Role) permissions the chart must grant for these values, from the code."""
    cluster, role, _ = expected_rbac_by_scope(values, fullname)
    return cluster, role


def expected_rbac_by_scope(values: dict, fullname: str) -> tuple[dict, dict, dict]:
    """(ClusterRole, Role in the release namespace, Role in each of rbac.namespaces) permissions
    the chart must grant for these values, from the code: a `ListedNamespaces` permission is in
    the ClusterRole unless rbac.namespaces lists namespaces."""
    self_managed = values.get("certificates", {}).get("mode", "self-managed") != "cert-manager"
    leader = values.get("leaderElection", {}).get("enabled", True)
    escalate = values.get("rbac", {}).get("grantMode", "escalate") == "escalate"
    reports = values.get("reports", {})
    reports_on = reports.get("enabled", True)
    open_reports = reports.get("api", "openreports") == "openreports"
    granted = {"Always": True, "SelfManagedCertificates": self_managed, "LeaderElection": leader,
               "GrantModeEscalate": escalate, "OpenReports": reports_on and open_reports,
               "PolicyReports": reports_on and not open_reports}
    names = {None: (), "WebhookConfigurations": (fullname,),
             "CertificateSecret": (f"{fullname}-webhook-tls",), "Lease": (f"{fullname}-leader",)}
    listed_namespaces = values.get("rbac", {}).get("namespaces", [])
    cluster: dict = {}
    role: dict = {}
    listed: dict = {}
    for p in code_permissions():
        if not granted[p["when"]]:
            continue
        target = {"Cluster": cluster, "OwnNamespace": role,
                  "ListedNamespaces": listed if listed_namespaces else cluster}[p["scope"]]
        key = (p["apiGroup"], p["resource"], names[p.get("named")])
        target.setdefault(key, set()).update(p["verbs"])
    return cluster, role, listed


# The fields of cert-manager.io/v1 and monitoring.coreos.com/v1 the chart may use, from their
# CRDs (cert-manager v1.16 Certificate/Issuer, prometheus-operator v0.77 ServiceMonitor): an
# unknown or misspelt field, a wrong type or an unknown enum value fails here as the API server
# would refuse it.
GO_DURATION = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"
FOREIGN_SCHEMAS = {
    "Issuer": {"selfSigned": dict, "ca": {"secretName": str}},
    "Certificate": {
        "secretName": str, "isCA": bool, "commonName": str, "duration": GO_DURATION,
        "renewBefore": GO_DURATION, "dnsNames": [str],
        "usages": ["server auth", "client auth", "digital signature", "key encipherment"],
        "privateKey": {"algorithm": {"RSA", "ECDSA", "Ed25519"}, "size": int,
                       "rotationPolicy": {"Never", "Always"}},
        "issuerRef": {"name": str, "kind": {"Issuer", "ClusterIssuer"}, "group": {"cert-manager.io"}},
    },
    "ServiceMonitor": {
        "namespaceSelector": {"matchNames": [str], "any": bool},
        "selector": {"matchLabels": dict},
        "endpoints": [{"port": str, "scheme": {"http", "https"}, "path": str,
                       "interval": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",
                       "scrapeTimeout": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}],
    },
}


def conforms(value, schema, path: str) -> None:
    import re
    if isinstance(schema, dict):
        assert isinstance(value, dict), f"{path}: expected an object, got {value!r}"
        for key, sub in value.items():
            assert key in schema, f"{path}.{key}: not a field of the CRD"
            conforms(sub, schema[key], f"{path}.{key}")
    elif isinstance(schema, list):
        assert isinstance(value, list) and value, f"{path}: expected a non-empty list"
        for i, item in enumerate(value):
            if isinstance(schema[0], str) and len(schema) > 1:
                assert item in schema, f"{path}[{i}]: {item!r} not one of {schema}"
            else:
                conforms(item, schema[0], f"{path}[{i}]")
    elif isinstance(schema, set):
        assert value in schema, f"{path}: {value!r} not one of {sorted(schema)}"
    elif isinstance(schema, str):
        assert isinstance(value, str) and re.match(schema, value), f"{path}: {value!r} does not match {schema}"
    elif schema is dict:
        assert isinstance(value, dict), f"{path}: expected an object"
    else:
        assert isinstance(value, schema) and not (schema is int and isinstance(value, bool)), \
            f"{path}: {value!r} is not a {schema.__name__}"


def check_foreign(obj: dict) -> None:
    assert set(obj) == {"apiVersion", "kind", "metadata", "spec"}, obj.keys()
    assert obj["metadata"]["name"] and obj["metadata"]["namespace"]
    conforms(obj["spec"], FOREIGN_SCHEMAS[obj["kind"]], f"{obj['kind']}/{obj['metadata']['name']}.spec")


def test_foreign_checks_catch_a_misspelt_field_and_a_bad_value():
    cert = {"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": "c", "namespace": "n"},
            "spec": {"secretName": "s", "dnsNames": ["a.svc"], "duration": "2160h",
                     "issuerRef": {"name": "i", "kind": "Issuer", "group": "cert-manager.io"}}}
    check_foreign(cert)
    for broken in [{"secretname": "s"}, {"duration": "90d"}, {"issuerRef": {"name": "i", "kind": "CA"}},
                   {"usages": ["server-auth"]}, {"isCA": "true"}]:
        with pytest.raises(AssertionError):
            check_foreign(dict(cert, spec=dict(cert["spec"], **broken)))


# --- every object is a valid Kubernetes object -----------------------------------------------

@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("kube", KUBE_VERSIONS)
def test_every_rendered_object_decodes_into_its_kubernetes_type(rendered, scenario, kube):
    r = rendered[scenario]
    assert r.objects, "nothing rendered"
    for obj in r.objects + r.crds:
        key = (obj["apiVersion"], obj["kind"])
        if key in FOREIGN_KINDS:
            check_foreign(obj)
            continue
        try:
            kubernetes_validate.validate(obj, kube, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{scenario}: {obj['kind']}/{obj['metadata']['name']} is not a valid "
                        f"{obj['kind']} for Kubernetes {kube}: {e.message} at "
                        f"/{'/'.join(map(str, e.absolute_path))}", pytrace=False)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_names_are_unique_and_namespaced_objects_land_in_the_release_namespace(rendered, scenario):
    r = rendered[scenario]
    _, _, namespace = SCENARIOS[scenario]
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "ValidatingWebhookConfiguration",
                      "MutatingWebhookConfiguration", "ValidatingAdmissionPolicy",
                      "ValidatingAdmissionPolicyBinding"}
    values = SCENARIOS[scenario][0]
    listed = values.get("rbac", {}).get("namespaces", [])
    seen = set()
    for obj in r.objects:
        key = (obj["kind"], obj["metadata"]["name"], obj["metadata"].get("namespace"))
        assert key not in seen, f"duplicate {key}"
        seen.add(key)
        if obj["kind"] in cluster_scoped:
            assert "namespace" not in obj["metadata"]
        elif obj["kind"] in {"Role", "RoleBinding"} and obj["metadata"]["name"].endswith("-grants"):
            # rbac.namespaces: the far-reaching writes, in each listed namespace and only there.
            assert obj["metadata"]["namespace"] in listed, key
        else:
            assert obj["metadata"]["namespace"] == namespace, key


def test_the_chart_carries_byte_identical_copies_of_the_generated_crds():
    generated = sorted(p.name for p in (REPO / "crds").glob("*.yaml"))
    assert generated == ["agentpolicies.yaml", "compliancepolicies.yaml", "modelapprovals.yaml",
                         "modeldeployments.yaml", "trainingdatasets.yaml"]
    assert sorted(p.name for p in (CHART / "crds").glob("*.yaml")) == generated
    for name in generated:
        assert (CHART / "crds" / name).read_bytes() == (REPO / "crds" / name).read_bytes(), (
            f"charts/annexa/crds/{name} differs from crds/{name}: cp crds/*.yaml charts/annexa/crds/")


# --- the ValidatingAdmissionPolicy that backs the approval rules ------------------------------

def test_admission_policy_is_the_repository_manifest(rendered):
    """The chart installs exactly admission/*.yaml (plus chart labels)."""
    docs = [d for f in ("modelapproval-identity.yaml", "modeldeployment-requester.yaml")
            for d in yaml.safe_load_all((REPO / "admission" / f).read_text()) if d]
    expected = ([d for d in docs if d["kind"] == "ValidatingAdmissionPolicy"]
                + [d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding"])
    r = rendered["default"]
    got = r.all("ValidatingAdmissionPolicy") + r.all("ValidatingAdmissionPolicyBinding")
    for doc in got:
        doc["metadata"].pop("labels")
    assert got == expected


def test_admission_policy_covers_creation_and_deletion_of_approvals_and_fails_closed(rendered):
    covered = {
        "annexa-modelapproval-identity": (["modelapprovals"], ["CREATE", "DELETE"]),
        "annexa-modeldeployment-requester": (["modeldeployments"], ["CREATE", "UPDATE"]),
    }
    assert sorted(p["metadata"]["name"] for p in rendered["default"].all("ValidatingAdmissionPolicy")) == sorted(covered)
    for name, (resources, operations) in covered.items():
        policy = rendered["default"].one("ValidatingAdmissionPolicy", name)
        assert policy["spec"]["failurePolicy"] == "Fail"
        (rule,) = policy["spec"]["matchConstraints"]["resourceRules"]
        assert rule["resources"] == resources and rule["apiGroups"] == ["annexa.dev"]
        assert rule["operations"] == operations
        binding = rendered["default"].one("ValidatingAdmissionPolicyBinding", name)
        assert binding["spec"]["policyName"] == name
        assert binding["spec"]["validationActions"] == ["Deny"]


def test_admission_policy_lists_allowed_service_account_approvers_and_can_be_disabled(chart):
    sa = "system:serviceaccount:ci:release-bot"
    r = render({"admissionPolicy": {"serviceAccountApprovers": [sa]}}, chart=chart)
    (variable,) = r.one("ValidatingAdmissionPolicy", "annexa-modelapproval-identity")["spec"]["variables"]
    assert variable == {"name": "serviceAccountApprovers", "expression": f'["{sa}"]'}
    r = render({"admissionPolicy": {"enabled": False}}, chart=chart)
    assert not r.all("ValidatingAdmissionPolicy") and not r.all("ValidatingAdmissionPolicyBinding")


# --- webhooks: where they look, how they fail ------------------------------------------------

@pytest.mark.parametrize("scenario", SCENARIOS)
def test_no_webhook_ever_sees_kube_system_or_the_release_namespace(rendered, scenario):
    r = rendered[scenario]
    _, _, namespace = SCENARIOS[scenario]
    for w in webhooks(r):
        exprs = w["namespaceSelector"]["matchExpressions"]
        excluded = [e for e in exprs if e["key"] == "kubernetes.io/metadata.name"]
        assert len(excluded) == 1 and excluded[0]["operator"] == "NotIn", w["name"]
        assert {"kube-system", namespace} <= set(excluded[0]["values"]), w["name"]
        assert "matchLabels" not in w["namespaceSelector"]


def test_extra_excluded_namespaces_are_excluded_from_every_webhook(rendered):
    for w in webhooks(rendered["custom-namespace"]):
        (e,) = [e for e in w["namespaceSelector"]["matchExpressions"]
                if e["key"] == "kubernetes.io/metadata.name"]
        assert e["values"] == ["kube-system", "platform-security", "argocd"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_webhook_is_fast_side_effect_free_v1_and_calls_annexa(rendered, scenario):
    r = rendered[scenario]
    values, name, namespace = SCENARIOS[scenario]
    fullname = name if "annexa" in name else f"{name}-annexa"
    for w in webhooks(r):
        assert w["timeoutSeconds"] == 5
        assert w["sideEffects"] == "None"
        assert w["admissionReviewVersions"] == ["v1"]
        svc = w["clientConfig"]["service"]
        assert (svc["name"], svc["namespace"], svc["port"]) == (f"{fullname}-webhook", namespace, 443)
        assert "caBundle" not in w["clientConfig"], "the chart must never set caBundle"
        assert "url" not in w["clientConfig"]


def test_annexa_kinds_webhook_validates_all_five_kinds_and_fails_closed(rendered):
    w = webhook(rendered["default"], "kinds.validate.annexa.dev")
    assert w["clientConfig"]["service"]["path"] == "/validate"
    assert w["failurePolicy"] == "Fail"
    rule, deletions = w["rules"]
    assert rule["apiGroups"] == ["annexa.dev"]
    assert sorted(rule["resources"]) == sorted(ANNEXA_RESOURCES)
    assert rule["operations"] == ["CREATE", "UPDATE"]
    assert rule["scope"] == "*", "CompliancePolicy is cluster-scoped"
    # Deleting a rejection is checked (only its author may withdraw it).
    assert deletions["resources"] == ["modelapprovals"]
    assert deletions["operations"] == ["DELETE"]


def test_workloads_webhook_only_in_opted_in_namespaces_and_only_pod_bearing_kinds(rendered):
    w = webhook(rendered["default"], "workloads.validate.annexa.dev")
    assert w["clientConfig"]["service"]["path"] == "/validate"
    assert w["failurePolicy"] == "Fail"
    assert {"key": "annexa.dev/enforce", "operator": "In", "values": ["true"]} in \
        w["namespaceSelector"]["matchExpressions"]
    matched = {(g, res) for rule in w["rules"] for g in rule["apiGroups"] for res in rule["resources"]}
    assert matched == {("", "pods"), ("", "pods/ephemeralcontainers"), ("apps", "deployments"),
                       ("apps", "statefulsets"), ("apps", "daemonsets"), ("apps", "replicasets"),
                       ("batch", "jobs"), ("batch", "cronjobs")}
    for rule in w["rules"]:
        if rule["resources"] == ["pods/ephemeralcontainers"]:
            # `kubectl debug` updates this subresource; it has no CREATE.
            assert rule["operations"] == ["UPDATE"]
            continue
        assert rule["operations"] == ["CREATE", "UPDATE"]
        assert not any("/" in res for res in rule["resources"]), "no other subresources (status, scale)"


def test_failure_policies_are_set_per_webhook(rendered):
    r = rendered["everything-optional"]
    assert webhook(r, "workloads.validate.annexa.dev")["failurePolicy"] == "Ignore"
    assert webhook(r, "kinds.validate.annexa.dev")["failurePolicy"] == "Fail"
    assert webhook(r, "digest-requester.mutate.annexa.dev")["failurePolicy"] == "Fail"
    r = render({"webhook": {"annexaKinds": {"failurePolicy": "Ignore"},
                            "digestRequester": {"failurePolicy": "Ignore"}}})
    assert webhook(r, "kinds.validate.annexa.dev")["failurePolicy"] == "Ignore"
    assert webhook(r, "digest-requester.mutate.annexa.dev")["failurePolicy"] == "Ignore"
    assert webhook(r, "workloads.validate.annexa.dev")["failurePolicy"] == "Fail"


def test_workloads_webhook_can_be_switched_off_without_touching_the_kinds(rendered):
    r = rendered["workloads-off"]
    names = [w["name"] for w in webhooks(r)]
    assert names == ["kinds.validate.annexa.dev", "digest-requester.mutate.annexa.dev"]


def test_mutating_webhook_only_touches_modeldeployments_once(rendered):
    (w,) = rendered["default"].one("MutatingWebhookConfiguration")["webhooks"]
    assert w["clientConfig"]["service"]["path"] == "/mutate"
    assert w["reinvocationPolicy"] == "Never"
    assert w["rules"] == [{"apiGroups": ["annexa.dev"], "apiVersions": ["v1alpha1"],
                           "resources": ["modeldeployments"], "operations": ["CREATE", "UPDATE"],
                           "scope": "Namespaced"}]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_webhook_configurations_are_release_resources_so_uninstall_removes_them(rendered, scenario):
    for kind in ["ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"]:
        annotations = rendered[scenario].one(kind)["metadata"].get("annotations") or {}
        assert not any(k.startswith("helm.sh/hook") for k in annotations), \
            "a hook is not deleted by helm uninstall"
        assert "helm.sh/resource-policy" not in annotations, "keep policy survives uninstall"


# --- matchConditions, evaluated as the API server would --------------------------------------

def _match(r: Rendered):
    conditions = webhook(r, "workloads.validate.annexa.dev")["matchConditions"]
    env = celpy.Environment()
    programs = [env.program(env.compile(c["expression"])) for c in conditions]

    def matches(resource: str, operation: str, obj: dict, old: dict | None, user: str = "alice") -> bool:
        activation = {
            "request": celpy.json_to_cel({"operation": operation, "resource": {"resource": resource},
                                          "userInfo": {"username": user}}),
            "object": celpy.json_to_cel(obj),
            "oldObject": celpy.json_to_cel(old),
        }
        results = [p.evaluate(activation) for p in programs]
        for result in results:
            assert not isinstance(result, celpy.CELEvalError), result
        return all(bool(x) for x in results)

    return matches


POD_SPEC = {"containers": [{"name": "serve", "image": "registry.example.com/ml/serve:1.0"}]}


def _deployment(image="registry.example.com/ml/serve:1.0", replicas=1, labels=None):
    return {"metadata": {"labels": labels or {"app": "m"}},
            "spec": {"replicas": replicas, "template": {"metadata": {"labels": {"app": "m"}},
                     "spec": {"containers": [{"name": "serve", "image": image}]}}}}


def test_match_conditions_send_creations_and_pod_spec_changes_only(rendered):
    matches = _match(rendered["default"])
    # Every creation matters: it brings images, tolerations, resources Annexa has not seen.
    assert matches("pods", "CREATE", {"spec": POD_SPEC}, None)
    assert matches("deployments", "CREATE", _deployment(), None)
    # A new image, a GPU request or a toleration in the template goes to Annexa.
    assert matches("deployments", "UPDATE", _deployment(image="evil.io/x:latest"), _deployment())
    gpu = _deployment()
    gpu["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": 1}}
    assert matches("statefulsets", "UPDATE", gpu, _deployment())
    tolerating = _deployment()
    tolerating["spec"]["template"]["spec"]["tolerations"] = [{"key": "gpu", "operator": "Exists"}]
    assert matches("replicasets", "UPDATE", tolerating, _deployment())
    # Scaling and metadata edits never reach the webhook, so they work even while it is down.
    assert not matches("deployments", "UPDATE", _deployment(replicas=5), _deployment())
    assert not matches("deployments", "UPDATE", _deployment(labels={"team": "x"}), _deployment())
    assert not matches("pods", "UPDATE", {"metadata": {"annotations": {"a": "b"}}, "spec": POD_SPEC},
                       {"metadata": {}, "spec": POD_SPEC})
    # A pod's labels say whether it is an agent's pod (A.8.12, A.5.15): adding, changing or
    # removing them goes to Annexa; the same labels do not.
    labelled = {"metadata": {"labels": {"app": "agent"}}, "spec": POD_SPEC}
    assert matches("pods", "UPDATE", labelled, {"metadata": {}, "spec": POD_SPEC})
    assert matches("pods", "UPDATE", {"metadata": {}, "spec": POD_SPEC}, labelled)
    assert matches("pods", "UPDATE", {"metadata": {"labels": {"app": "x"}}, "spec": POD_SPEC}, labelled)
    assert not matches("pods", "UPDATE", labelled, labelled)
    assert not matches("pods", "UPDATE", {"metadata": {}, "spec": POD_SPEC}, {"metadata": {}, "spec": POD_SPEC})
    changed_pod = {"spec": {"containers": [{"name": "serve", "image": "evil.io/x:latest"}]}}
    assert matches("pods", "UPDATE", changed_pod, {"spec": POD_SPEC})
    # `kubectl debug` (pods/ephemeralcontainers: the resource is still `pods`) changes the spec.
    debugged = {"spec": dict(POD_SPEC, ephemeralContainers=[{"name": "debugger", "image": "busybox"}])}
    assert matches("pods", "UPDATE", debugged, {"spec": POD_SPEC})
    # CronJobs keep their pod template one level deeper.
    cron = {"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": POD_SPEC}}}}}
    cron_other_schedule = {"spec": dict(cron["spec"], schedule="0 * * * *")}
    assert not matches("cronjobs", "UPDATE", cron_other_schedule, cron)
    cron_new_image = {"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {
        "spec": {"containers": [{"name": "serve", "image": "evil.io/x:latest"}]}}}}}}
    assert matches("cronjobs", "UPDATE", cron_new_image, cron)


def test_extra_match_conditions_are_anded_with_the_charts(rendered):
    matches = _match(rendered["everything-optional"])
    assert matches("pods", "CREATE", {"spec": POD_SPEC}, None, user="alice")
    assert not matches("pods", "CREATE", {"spec": POD_SPEC}, None, user="ci")


# --- the operator Deployment -----------------------------------------------------------------

def test_default_is_highly_available(rendered):
    r = rendered["default"]
    dep = r.one("Deployment")
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    pdb = r.one("PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= \
        dep["spec"]["template"]["metadata"]["labels"].items()
    anti = dep["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    (term,) = anti["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    assert "--leader-election" in container(r)["args"]
    assert "--lease-name=annexa-leader" in container(r)["args"]


def test_hard_anti_affinity_is_required_scheduling(rendered):
    spec = rendered["everything-optional"].one("Deployment")["spec"]["template"]["spec"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" in spec["affinity"]["podAntiAffinity"]


def test_ha_off_runs_one_replica_without_pdb_lease_or_lease_permissions(rendered):
    r = rendered["ha-off"]
    assert r.one("Deployment")["spec"]["replicas"] == 1
    assert r.maybe("PodDisruptionBudget") is None, "a PDB over one replica blocks every drain"
    args = container(r)["args"]
    assert "--leader-election" not in args and not any(a.startswith("--lease-name") for a in args)
    assert not any("coordination.k8s.io" in rule["apiGroups"] for rule in r.one("Role")["rules"])
    assert "WARNING: one replica" in r.notes


def test_several_replicas_without_leader_election_refuse_to_render(chart):
    with pytest.raises(helm_python.HelmRenderError, match="leaderElection"):
        render({"replicaCount": 3, "leaderElection": {"enabled": False}}, chart=chart)


def test_container_command_is_the_documented_contract(rendered):
    c = container(rendered["default"])
    assert c["image"] == "ghcr.io/annexa-dev/annexa:0.1.0"
    assert c["command"] == ["/annexa"]
    assert c["args"] == [
        "run", "--namespace=$(POD_NAMESPACE)", "--webhook-addr=0.0.0.0:8443",
        "--metrics-addr=0.0.0.0:8080", "--service-name=annexa-webhook",
        "--cert-secret=annexa-webhook-tls", "--validating-webhook=annexa", "--mutating-webhook=annexa",
        "--leader-election", "--lease-name=annexa-leader", "--report-api=openreports",
        "--log-format=json",
    ]
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert container(rendered["everything-optional"])["image"] == \
        "ghcr.io/annexa-dev/annexa@sha256:" + "a" * 64


def test_probes_are_https_on_the_webhook_port_and_metrics_is_exposed(rendered):
    c = container(rendered["default"])
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"webhook": 8443, "metrics": 8080}
    assert c["livenessProbe"]["httpGet"] == {"scheme": "HTTPS", "path": "/healthz", "port": "webhook"}
    assert c["readinessProbe"]["httpGet"] == {"scheme": "HTTPS", "path": "/readyz", "port": "webhook"}
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_pod_is_hardened(rendered, scenario):
    dep = rendered[scenario].one("Deployment")
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    sc = container(rendered[scenario])["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["privileged"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert all("hostPath" not in v for v in pod["volumes"])


def test_services_route_to_the_operator_pods(rendered):
    r = rendered["default"]
    pod_labels = r.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    webhook_svc = r.one("Service", "annexa-webhook")
    assert webhook_svc["spec"]["selector"].items() <= pod_labels.items()
    assert webhook_svc["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": "webhook",
                                             "protocol": "TCP"}]
    metrics_svc = r.one("Service", "annexa-metrics")
    assert metrics_svc["spec"]["ports"][0]["targetPort"] == "metrics"


def test_service_monitor_scrapes_the_metrics_service(rendered):
    r = rendered["everything-optional"]
    sm = r.one("ServiceMonitor")
    svc = r.one("Service", "annexa-metrics")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    # Only the metrics Service: scraping the webhook port would hit TLS.
    assert not sm["spec"]["selector"]["matchLabels"].items() <= \
        r.one("Service", "annexa-webhook")["metadata"]["labels"].items()
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    assert endpoint["scheme"] == "http", "the metrics port is plain HTTP"
    # The endpoint names a port the selected Service really has, in the namespace it watches.
    assert "metrics" in [p["name"] for p in svc["spec"]["ports"]]
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [svc["metadata"]["namespace"]]}
    assert sm["metadata"]["namespace"] == svc["metadata"]["namespace"]
    assert rendered["default"].maybe("ServiceMonitor") is None


# --- certificates ----------------------------------------------------------------------------

def test_self_managed_certificates_are_managed_by_annexa(rendered):
    r = rendered["default"]
    assert not r.all("Certificate") and not r.all("Issuer")
    for kind in ["ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"]:
        assert "cert-manager.io/inject-ca-from" not in (r.one(kind)["metadata"].get("annotations") or {})
    role_rules = r.one("Role")["rules"]
    assert {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["annexa-webhook-tls"],
            "verbs": ["get", "update"]} in role_rules
    patch_webhooks = [rule for rule in r.one("ClusterRole", "annexa")["rules"]
                      if "admissionregistration.k8s.io" in rule["apiGroups"]]
    assert patch_webhooks == [{"apiGroups": ["admissionregistration.k8s.io"],
                               "resources": ["validatingwebhookconfigurations",
                                             "mutatingwebhookconfigurations"],
                               "resourceNames": ["annexa"], "verbs": ["get", "patch"]}]


def test_cert_manager_mode_mounts_the_issued_certificate_and_injects_the_ca(rendered):
    r = rendered["cert-manager"]
    args = container(r)["args"]
    assert "--tls-cert-file=/tls/tls.crt" in args and "--tls-key-file=/tls/tls.key" in args
    assert not any(a.startswith(("--cert-secret", "--validating-webhook", "--mutating-webhook"))
                   for a in args)
    pod = r.one("Deployment")["spec"]["template"]["spec"]
    (tls,) = [v for v in pod["volumes"] if v["name"] == "tls"]
    assert tls["secret"]["secretName"] == "annexa-webhook-tls"
    assert {"name": "tls", "mountPath": "/tls", "readOnly": True} in container(r)["volumeMounts"]
    serving = r.one("Certificate", "annexa-webhook")
    assert serving["spec"]["secretName"] == "annexa-webhook-tls"
    assert "annexa-webhook.annexa-system.svc" in serving["spec"]["dnsNames"]
    assert serving["spec"]["issuerRef"]["name"] == "annexa-ca"
    ca = r.one("Certificate", "annexa-ca")
    assert ca["spec"]["isCA"] is True
    assert r.one("Issuer", "annexa-ca")["spec"]["ca"]["secretName"] == ca["spec"]["secretName"]
    assert r.one("Issuer", "annexa-selfsigned")["spec"] == {"selfSigned": {}}
    for kind in ["ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"]:
        assert r.one(kind)["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == \
            "annexa-system/annexa-webhook"
    # Annexa neither writes the Secret nor patches the webhooks: no permission for it.
    assert not any("admissionregistration.k8s.io" in rule["apiGroups"]
                   for rule in r.one("ClusterRole", "annexa")["rules"])
    assert not any("secrets" in rule["resources"] for rule in r.one("Role")["rules"])


def test_cert_manager_with_an_existing_issuer_creates_no_issuer(rendered):
    r = rendered["cert-manager-cluster-issuer"]
    assert not r.all("Issuer")
    assert [c["metadata"]["name"] for c in r.all("Certificate")] == ["annexa-webhook"]
    assert r.one("Certificate")["spec"]["issuerRef"] == {"name": "corp-ca", "kind": "ClusterIssuer",
                                                         "group": "cert-manager.io"}


# --- RBAC: least privilege -------------------------------------------------------------------

@pytest.mark.parametrize("scenario", SCENARIOS)
def test_rbac_has_no_wildcards(rendered, scenario):
    r = rendered[scenario]
    for kind in ["ClusterRole", "Role"]:
        for role in r.all(kind):
            for rule in role["rules"]:
                for field in ["apiGroups", "resources", "verbs", "resourceNames"]:
                    assert "*" not in rule.get(field, []), (kind, rule)
                    assert not any(v.endswith("/*") for v in rule.get(field, [])), (kind, rule)
                assert "nonResourceURLs" not in rule


def fullname_of(name: str) -> str:
    return name if "annexa" in name else f"{name}-annexa"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_rbac_grants_exactly_what_the_code_calls(rendered, scenario):
    """Every (group, resource, names, verb) the chart grants Annexa is one the code calls, and
    every one the code calls is granted: nothing missing (a 403 at run time), nothing unused."""
    r = rendered[scenario]
    values, name, namespace = SCENARIOS[scenario]
    fullname = fullname_of(name)
    cluster, role, listed = expected_rbac_by_scope(values, fullname)
    listed_namespaces = values.get("rbac", {}).get("namespaces", [])

    def without_grantable_rules(granted: dict) -> dict:
        # grantableRules are what platform teams let Annexa hand out to agents, not calls of its own.
        for rule in values.get("rbac", {}).get("grantableRules", []):
            for key, verbs in permissions([rule]).items():
                granted[key] = granted.get(key, set()) - set(verbs)
                if not granted[key]:
                    del granted[key]
        return granted

    granted = permissions(r.one("ClusterRole", fullname)["rules"])
    if not listed_namespaces:
        granted = without_grantable_rules(granted)
    assert granted == cluster, (
        f"missing: { {k: v - granted.get(k, set()) for k, v in cluster.items() if v - granted.get(k, set())} }; "
        f"unused: { {k: v - cluster.get(k, set()) for k, v in granted.items() if v - cluster.get(k, set())} }")
    roles = [o for o in r.all("Role") if o["metadata"]["name"] == fullname]
    role_granted = permissions(roles[0]["rules"]) if roles else {}
    assert role_granted == role
    if roles:
        assert roles[0]["metadata"]["namespace"] == namespace
    grants = {o["metadata"]["namespace"]: o for o in r.all("Role")
              if o["metadata"]["name"] == f"{fullname}-grants"}
    assert sorted(grants) == sorted(listed_namespaces)
    for ns, grant in grants.items():
        assert without_grantable_rules(permissions(grant["rules"])) == listed, ns
        binding = r.one("RoleBinding", f"{fullname}-grants") if len(grants) == 1 else next(
            b for b in r.all("RoleBinding") if b["metadata"]["namespace"] == ns)
        assert binding["metadata"]["namespace"] == ns
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                      "name": f"{fullname}-grants"}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": fullname, "namespace": namespace}]
    binding = r.one("ClusterRoleBinding", fullname)
    assert binding["roleRef"]["name"] == fullname
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": fullname, "namespace": namespace}]


def test_the_comparison_sees_named_rules_and_fails_on_a_missing_or_extra_verb(rendered):
    """The helper compares rules with resourceNames too, so a verb added to or missing from the
    webhook-configuration rule is caught."""
    r = rendered["default"]
    rules = r.one("ClusterRole", "annexa")["rules"]
    cluster, _ = expected_rbac({}, "annexa")
    assert permissions(rules) == cluster
    named = ("admissionregistration.k8s.io", "validatingwebhookconfigurations", ("annexa",))
    assert permissions(rules)[named] == {"get", "patch"}
    tampered = [dict(rule, verbs=rule["verbs"] + ["update"]) if rule.get("resourceNames") else rule
                for rule in rules]
    assert permissions(tampered) != cluster


def test_nothing_cluster_wide_on_secrets_and_no_impersonation(rendered):
    granted = permissions(rendered["default"].one("ClusterRole", "annexa")["rules"])
    assert not any(res == "secrets" for _, res, _ in granted)
    assert not any("impersonate" in verbs for verbs in granted.values())
    assert granted[("rbac.authorization.k8s.io", "clusterroles", ())] == {"list", "watch"}


def test_annexa_kinds_join_view_and_edit_by_aggregation_and_approving_is_separate(rendered):
    r = rendered["default"]
    view = r.one("ClusterRole", "annexa-aggregate-to-view")
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert permissions(view["rules"]) == {
        ("annexa.dev", kind, ()): {"get", "list", "watch"}
        for kind in ["compliancepolicies", "trainingdatasets", "modeldeployments",
                     "modelapprovals", "agentpolicies"]}
    edit = r.one("ClusterRole", "annexa-aggregate-to-edit")
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    writes = {"create", "update", "patch", "delete", "deletecollection"}
    # Approvals and cluster-wide policies stay out of `edit`.
    assert permissions(edit["rules"]) == {
        ("annexa.dev", kind, ()): writes
        for kind in ["trainingdatasets", "modeldeployments", "agentpolicies"]}
    approver = r.one("ClusterRole", "annexa-approver")
    assert not any(k.startswith("rbac.authorization.k8s.io/aggregate")
                   for k in approver["metadata"]["labels"])
    assert permissions(approver["rules"]) == {
        ("annexa.dev", "modeldeployments", ()): {"get", "list", "watch"},
        ("annexa.dev", "modelapprovals", ()): {"get", "list", "watch", "create"}}


def test_grantable_rules_mode_drops_escalate_and_bind(rendered):
    granted = permissions(rendered["grantable-rules"].one("ClusterRole", "annexa")["rules"])
    assert not any({"escalate", "bind"} & verbs for verbs in granted.values())
    assert granted[("", "configmaps", ())] == {"get", "list"}
    assert "RBAC: rbac.grantMode=escalate" not in rendered["grantable-rules"].notes


def test_listed_namespaces_take_escalation_and_pvc_deletion_out_of_the_cluster_role(rendered):
    """rbac.namespaces: escalate/bind on Roles and delete on PVCs leave the ClusterRole and are
    granted by a Role in each listed namespace only; reads and the other writes stay
    cluster-wide."""
    default = permissions(rendered["default"].one("ClusterRole", "annexa")["rules"])
    narrowed = permissions(rendered["namespaced-writes"].one("ClusterRole", "annexa")["rules"])
    assert default[("rbac.authorization.k8s.io", "roles", ())] >= {"escalate", "bind"}
    assert default[("", "persistentvolumeclaims", ())] == {"get", "delete"}
    assert not {"escalate", "bind"} & narrowed[("rbac.authorization.k8s.io", "roles", ())]
    assert narrowed[("", "persistentvolumeclaims", ())] == {"get"}
    assert {k: v for k, v in default.items() if k[1] not in {"roles", "persistentvolumeclaims"}} == \
        {k: v for k, v in narrowed.items() if k[1] not in {"roles", "persistentvolumeclaims"}}
    grants = {o["metadata"]["namespace"]: permissions(o["rules"])
              for o in rendered["namespaced-writes"].all("Role")
              if o["metadata"]["name"] == "annexa-grants"}
    assert grants == {ns: {("rbac.authorization.k8s.io", "roles", ()): {"escalate", "bind"},
                           ("", "persistentvolumeclaims", ()): {"delete"}}
                      for ns in ["team-a", "team-b"]}
    assert "in the namespaces\nteam-a, team-b (rbac.namespaces)" in rendered["namespaced-writes"].notes
    assert "Use rbac.namespaces to confine it" in rendered["default"].notes


def test_listed_namespaces_confine_grantable_rules_too(rendered):
    r = rendered["namespaced-grantable-rules"]
    cluster = permissions(r.one("ClusterRole", "annexa")["rules"])
    assert not any(res == "secrets" for _, res, _ in cluster), "reading Secrets stays in team-a"
    (grant,) = [o for o in r.all("Role") if o["metadata"]["name"] == "annexa-grants"]
    assert grant["metadata"]["namespace"] == "team-a"
    assert permissions(grant["rules"]) == {("", "secrets", ()): {"get"},
                                          ("", "persistentvolumeclaims", ()): {"delete"}}


@pytest.mark.parametrize("namespaces", [["Team-A"], ["team-a", "team-a"], "team-a"])
def test_listed_namespaces_must_be_namespace_names(chart, namespaces):
    with pytest.raises(helm_python.HelmValuesError):
        render({"rbac": {"namespaces": namespaces}}, chart=chart)


def test_grantable_rules_refuse_wildcards_and_forbidden_verbs(chart):
    for rule in [{"apiGroups": [""], "resources": ["*"], "verbs": ["get"]},
                 {"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]},
                 {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["bind"]}]:
        with pytest.raises(helm_python.HelmValuesError):
            render({"rbac": {"grantMode": "grantableRules", "grantableRules": [rule]}}, chart=chart)


def test_role_is_limited_to_annexa_own_secret_and_lease(rendered):
    role = rendered["custom-namespace"].one("Role")
    assert role["metadata"]["namespace"] == "platform-security"
    granted = permissions(role["rules"])
    assert granted == {
        ("", "secrets", ()): {"create"},
        ("", "secrets", ("prod-annexa-webhook-tls",)): {"get", "update"},
        ("coordination.k8s.io", "leases", ()): {"create"},
        ("coordination.k8s.io", "leases", ("prod-annexa-leader",)): {"get", "patch"},
    }


# --- network policy --------------------------------------------------------------------------

def test_network_policy_opens_only_the_webhook_metrics_api_server_and_dns(rendered):
    r = rendered["default"]
    np = r.one("NetworkPolicy")
    assert np["spec"]["podSelector"]["matchLabels"].items() <= \
        r.one("Deployment")["spec"]["template"]["metadata"]["labels"].items()
    assert np["spec"]["policyTypes"] == ["Ingress", "Egress"]
    webhook_in, metrics_in = np["spec"]["ingress"]
    assert webhook_in["ports"] == [{"port": 8443, "protocol": "TCP"}] and "from" not in webhook_in
    assert metrics_in["ports"] == [{"port": 8080, "protocol": "TCP"}]
    assert metrics_in["from"] == [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "monitoring"}}}]
    api, dns = np["spec"]["egress"]
    assert sorted(p["port"] for p in api["ports"]) == [443, 6443]
    assert sorted((p["port"], p["protocol"]) for p in dns["ports"]) == [(53, "TCP"), (53, "UDP")]
    assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    narrowed = rendered["everything-optional"].one("NetworkPolicy")
    assert narrowed["spec"]["ingress"][0]["from"] == [{"ipBlock": {"cidr": "10.0.0.0/24"}}]
    assert narrowed["spec"]["egress"][0]["to"] == [{"ipBlock": {"cidr": "10.0.0.10/32"}}]
    assert rendered["workloads-off"].maybe("NetworkPolicy") is None


# --- values and docs -------------------------------------------------------------------------

@pytest.mark.parametrize("values", [
    {"replicas": 2},                                        # misspelt key
    {"webhook": {"workloads": {"failurePolicy": "fail"}}},  # wrong case
    {"certificates": {"mode": "vault"}},
    {"webhook": {"timeoutSeconds": 31}},                    # API server maximum is 30
    {"image": {"digest": "latest"}},
])
def test_schema_rejects_values_that_would_silently_do_something_else(chart, values):
    with pytest.raises(helm_python.HelmValuesError):
        render(values, chart=chart)


def test_custom_release_name_and_namespace_flow_everywhere(rendered):
    r = rendered["custom-namespace"]
    args = container(r)["args"]
    assert "--service-name=prod-annexa-webhook" in args
    assert "--cert-secret=prod-annexa-webhook-tls" in args
    assert "--validating-webhook=prod-annexa" in args and "--mutating-webhook=prod-annexa" in args
    assert "--lease-name=prod-annexa-leader" in args
    assert r.one("ValidatingWebhookConfiguration")["metadata"]["name"] == "prod-annexa"
    assert r.one("ClusterRoleBinding")["subjects"][0]["namespace"] == "platform-security"
    assert "kubectl -n platform-security rollout status deployment/prod-annexa" in r.notes
    assert "kubectl delete validatingwebhookconfiguration prod-annexa" in r.notes


def test_notes_tell_how_to_remove_a_blocking_webhook(rendered):
    notes = rendered["default"].notes
    assert "kubectl delete validatingwebhookconfiguration annexa" in notes
    assert "kubectl delete mutatingwebhookconfiguration annexa" in notes
    assert "kubectl -n annexa-system rollout restart deployment/annexa" in notes


def test_render_stream_for_the_e2e_suite_puts_crds_before_everything(rendered):
    docs = list(yaml.safe_load_all(to_yaml_stream(rendered["default"])))
    kinds = [d["kind"] for d in docs]
    assert kinds[:5] == ["CustomResourceDefinition"] * 5
    assert "CustomResourceDefinition" not in kinds[5:]
    assert len(docs) == 5 + len(rendered["default"].objects)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_helm_lint_strict_finds_no_warning(scenario):
    values, _, namespace = SCENARIOS[scenario]
    result = helm_python.lint(str(CHART), values, strict=True, namespace=namespace)
    assert result["errors"] == []
    # Severity 1 is informational (e.g. "icon is recommended"); 2 and above are warnings/errors.
    assert [m for m in result["messages"] if m["severity"] >= 2] == []


def test_image_and_chart_agree_on_user_and_entrypoint():
    dockerfile = (REPO / "Dockerfile").read_text()
    stages = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("FROM ")]
    assert len(stages) >= 2, "multi-stage: the build toolchain stays out of the image"
    assert stages[-1].startswith("gcr.io/distroless/") and stages[-1].endswith(":nonroot")
    final = dockerfile.split("\nFROM ")[-1]
    assert "\nUSER 65532:65532\n" in final
    assert '\nENTRYPOINT ["/annexa"]\n' in final
    c = render().one("Deployment")["spec"]["template"]["spec"]
    assert c["securityContext"]["runAsUser"] == 65532
    assert c["containers"][0]["command"] == ["/annexa"]
    ignored = (REPO / ".dockerignore").read_text().split()
    assert "target/" in ignored and ".git/" in ignored


# --- Compliance reports ----------------------------------------------------------------------

def test_reports_follow_the_chosen_api_and_the_crds_install_only_on_request(chart):
    default = render({}, chart=chart)
    assert not [c for c in default.all("CustomResourceDefinition")
                if c["spec"]["group"] == "openreports.io"], "the OpenReports CRDs are opt-in"

    installed = render({"reports": {"installCRDs": True}}, chart=chart)
    crds = {c["metadata"]["name"]: c for c in installed.all("CustomResourceDefinition")
            if c["spec"]["group"] == "openreports.io"}
    assert set(crds) == {"reports.openreports.io", "clusterreports.openreports.io"}
    for crd in crds.values():
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"

    wg = render({"reports": {"api": "wgpolicy"}}, chart=chart)
    assert "--report-api=wgpolicy" in container(wg)["args"]
    granted = permissions(wg.one("ClusterRole", "annexa")["rules"])
    assert granted[("wgpolicyk8s.io", "policyreports", ())] == {"list", "create", "patch"}
    assert ("openreports.io", "reports", ()) not in granted

    off = render({"reports": {"enabled": False}}, chart=chart)
    assert "--no-reports" in container(off)["args"]
    assert not any(g in ("openreports.io", "wgpolicyk8s.io")
                   for g, _, _ in permissions(off.one("ClusterRole", "annexa")["rules"]))

    with pytest.raises(helm_python.HelmRenderError, match="reports.api=openreports"):
        render({"reports": {"api": "wgpolicy", "installCRDs": True}}, chart=chart)
