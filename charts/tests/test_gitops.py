"""The Argo CD example of examples/gitops/: sync waves in the right order, paths that exist, chart
values the chart accepts, and ignoreDifferences that name exactly what Annexa writes."""

from __future__ import annotations

import yaml

from chartlib import REPO, render

GITOPS = REPO / "examples" / "gitops"


def app(name: str) -> dict:
    return yaml.safe_load((GITOPS / "apps" / f"{name}.yaml").read_text())


def wave(application: dict) -> int:
    return int(application["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])


def test_root_syncs_the_child_applications():
    root = yaml.safe_load((GITOPS / "root.yaml").read_text())
    assert root["spec"]["source"]["path"] == "examples/gitops/apps"
    children = sorted(p.stem for p in (GITOPS / "apps").glob("*.yaml"))
    assert children == ["ai-workloads", "annexa", "annexa-crds"]


def test_sync_waves_go_crds_then_annexa_then_custom_resources():
    assert wave(app("annexa-crds")) < wave(app("annexa")) < wave(app("ai-workloads"))


def test_crds_come_from_the_generated_folder_and_are_never_deleted_by_argo():
    crds = app("annexa-crds")
    assert crds["spec"]["source"]["path"] == "crds"
    assert len(list((REPO / "crds").glob("*.yaml"))) == 5
    assert crds["spec"]["syncPolicy"]["automated"]["prune"] is False
    assert "finalizers" not in crds["metadata"], "a cascading delete would delete every Annexa object"


def test_operator_application_renders_with_its_values_and_ignores_only_the_ca_bundle():
    annexa = app("annexa")
    source = annexa["spec"]["source"]
    assert (REPO / source["path"] / "Chart.yaml").exists()
    assert source["helm"]["skipCrds"] is True
    # The values of the example are accepted by values.schema.json and render.
    rendered = render(source["helm"]["valuesObject"], name=source["helm"]["releaseName"],
                      namespace=annexa["spec"]["destination"]["namespace"])
    webhook_configs = {(o["kind"], o["metadata"]["name"]) for o in rendered.objects
                       if o["kind"].endswith("WebhookConfiguration")}
    ignored = {(d["kind"], d["name"]) for d in annexa["spec"]["ignoreDifferences"]}
    assert ignored == webhook_configs
    for d in annexa["spec"]["ignoreDifferences"]:
        assert d["jqPathExpressions"] == [".webhooks[]?.clientConfig.caBundle"]
    assert "RespectIgnoreDifferences=true" in annexa["spec"]["syncPolicy"]["syncOptions"]
    for w in rendered.one("ValidatingWebhookConfiguration")["webhooks"]:
        (excluded,) = [e for e in w["namespaceSelector"]["matchExpressions"]
                       if e["key"] == "kubernetes.io/metadata.name"]
        assert "argocd" in excluded["values"], "Argo CD itself is never blocked by Annexa"


def test_workloads_application_ignores_only_the_digest_requester_annotation():
    workloads = app("ai-workloads")
    (ignore,) = workloads["spec"]["ignoreDifferences"]
    assert (ignore["group"], ignore["kind"]) == ("annexa.dev", "ModelDeployment")
    (pointer,) = ignore["jsonPointers"]
    # RFC 6901: "/" inside a key is written "~1".
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
    assert parts == ["metadata", "annotations", "annexa.dev/digest-requested-by"]
    assert "RespectIgnoreDifferences=true" in workloads["spec"]["syncPolicy"]["syncOptions"]
