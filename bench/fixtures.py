#!/usr/bin/env python3
"""Generates the AdmissionReview fixtures of the benchmarks (benches/fixtures/*.json).

Workloads (in namespace ml-prod of benches/fixtures/context.yaml: Production, Enforce,
allowed registry registry.example.com, baseline GPU pools) are derived from the 9.5 KB GPU-pod
review gpu-pod-review.json; Annexa kinds are wrapped from examples/compliant (allow) and
examples/noncompliant (deny). Rerun after changing an example: `python3 bench/fixtures.py`.
The benchmarks check every fixture's verdict (the suffix -allow / -deny) before timing it.
"""
import copy, json, pathlib, yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "benches" / "fixtures"
GPU = json.loads((OUT / "gpu-pod-review.json").read_text())
GROUPS = {"Pod": "", "Deployment": "apps"}
RESOURCES = {"Pod": "pods", "Deployment": "deployments", "TrainingDataset": "trainingdatasets",
             "ModelDeployment": "modeldeployments", "ModelApproval": "modelapprovals",
             "AgentPolicy": "agentpolicies", "CompliancePolicy": "compliancepolicies"}


def review(obj, group, version, username="alice@example.com", uid="705ab4f5-6393-11e8-b7cc-42010a800002",
           groups=()):
    kind = obj["kind"]
    ns = obj.get("metadata", {}).get("namespace")
    res = {"group": group, "version": version, "resource": RESOURCES[kind]}
    request = {
        "uid": uid, "kind": {"group": group, "version": version, "kind": kind},
        "resource": res, "requestKind": {"group": group, "version": version, "kind": kind},
        "requestResource": res, "name": obj["metadata"].get("name", ""), "operation": "CREATE",
        "userInfo": {"username": username, "uid": "u-1", "groups": [*groups, "system:authenticated"]},
        "object": obj, "oldObject": None, "dryRun": False,
        "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
    }
    if ns:
        request["namespace"] = ns
    return {"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": request}


def write(name, data):
    (OUT / f"{name}.json").write_text(json.dumps(data, indent=None, separators=(",", ":")) + "\n")


def gpu_pod_deny(pod):
    """The GPU pod breaking every GPU-pod rule the peers encode."""
    pod = copy.deepcopy(pod)
    spec = pod["spec"]
    spec["nodeSelector"] = {"annexa.dev/gpu-pool": "public"}
    spec["tolerations"] = spec["tolerations"][1:]
    spec["hostNetwork"] = True
    spec["volumes"].append({"name": "dev", "hostPath": {"path": "/dev"}})
    spec["containers"][1]["image"] = "docker.io/library/metrics-sidecar:latest"
    spec["containers"][1]["securityContext"] = {"privileged": True}
    return pod


def main():
    pod = GPU["request"]["object"]
    # The allow case is gpu-pod-review.json itself.
    write("gpu-pod-deny", review(gpu_pod_deny(pod), "", "v1"))

    small = {"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": "web-1", "namespace": "ml-prod", "labels": {"app": "web"}},
             "spec": {"serviceAccountName": "web", "containers": [{
                 "name": "web",
                 "image": "registry.example.com/web/frontend@sha256:" + "cd" * 32,
                 "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                 "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                 "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False}}]}}
    write("pod-1k-allow", review(small, "", "v1"))
    bad = copy.deepcopy(small)
    bad["spec"]["containers"][0]["image"] = "docker.io/library/nginx:1.27"
    write("pod-1k-deny", review(bad, "", "v1"))

    def deployment(template):
        meta = template["metadata"]
        tmeta = {"labels": {k: v for k, v in meta["labels"].items() if k != "pod-template-hash"},
                 "annotations": meta["annotations"]}
        return {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "llm-serve", "namespace": "ml-prod", "labels": {"app": "llm-serve"}},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "llm-serve"}},
                         "template": {"metadata": tmeta, "spec": template["spec"]}}}
    write("deployment-allow", review(deployment(pod), "apps", "v1"))
    write("deployment-deny", review(deployment(gpu_pod_deny(pod)), "apps", "v1"))

    def first(path, kind, name=None):
        for doc in yaml.safe_load_all((ROOT / path).read_text()):
            if doc and doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name):
                return doc
        raise SystemExit(f"{path}: no {kind} {name or ''}")

    annexa = [
        ("trainingdataset", "TrainingDataset", "examples/compliant/10-datasets-production.yaml", None,
         "examples/noncompliant/10-dataset-claims-export.yaml", None),
        ("modeldeployment", "ModelDeployment", "examples/compliant/20-model-fraud-detection.yaml", None,
         "examples/noncompliant/20-model-churn-predictor.yaml", None),
        ("modelapproval", "ModelApproval", "examples/compliant/21-approvals-fraud-detection.yaml", None,
         "examples/compliant/21-approvals-fraud-detection.yaml", None),
        ("agentpolicy", "AgentPolicy", "examples/compliant/30-agents.yaml", None,
         "examples/noncompliant/30-agent-support.yaml", None),
        ("compliancepolicy", "CompliancePolicy", "examples/compliant/01-policy-production.yaml", None,
         None, None),
    ]
    for stem, kind, allow, allow_name, deny, deny_name in annexa:
        for verdict, path, name in (("allow", allow, allow_name), ("deny", deny, deny_name)):
            if path is None:
                continue
            obj = first(path, kind, name)
            user, groups = "alice@example.com", ()
            if kind == "ModelApproval":
                # Allowed when submitted by its approver, who is in the groups claimed; the deny
                # case is submitted on the approver's behalf by someone else (A.5.3).
                if verdict == "allow":
                    user, groups = obj["spec"]["approver"]["username"], obj["spec"]["approver"]["groups"]
                else:
                    user = "mallory@example.com"
            write(f"{stem}-{verdict}", review(obj, "annexa.dev", "v1alpha1", username=user, groups=groups))
    # An invalid CompliancePolicy: a GPU pool that isolates nothing.
    invalid = copy.deepcopy(first("examples/compliant/01-policy-production.yaml", "CompliancePolicy"))
    invalid["metadata"]["name"] = "invalid"
    invalid["spec"]["gpu"] = {"pools": [{"classification": "Restricted"}]}
    write("compliancepolicy-deny", review(invalid, "annexa.dev", "v1alpha1"))


if __name__ == "__main__":
    main()
