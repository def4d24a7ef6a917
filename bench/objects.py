#!/usr/bin/env python3
"""Writes N governed objects (TrainingDatasets, ModelDeployments, AgentPolicies in equal
shares, cloned from examples/compliant) spread over 10 namespaces, as multi-document YAML files
of 500 objects each, for the memory benchmark: `objects.py N OUTDIR`."""
import copy, pathlib, sys, yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
n, out = int(sys.argv[1]), pathlib.Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)


def first(path, kind):
    return next(d for d in yaml.safe_load_all((ROOT / path).read_text()) if d and d["kind"] == kind)


templates = [
    first("examples/compliant/10-datasets-production.yaml", "TrainingDataset"),
    first("examples/compliant/20-model-fraud-detection.yaml", "ModelDeployment"),
    first("examples/compliant/30-agents.yaml", "AgentPolicy"),
]
docs = []
for i in range(n):
    obj = copy.deepcopy(templates[i % 3])
    obj["metadata"] = {"name": f"{obj['metadata']['name']}-{i}", "namespace": f"mem-{i % 10}",
                      "labels": {"annexa.dev/bench": "memory"}}
    if obj["kind"] == "AgentPolicy":  # one service account per agent, as in a real cluster
        obj["spec"]["serviceAccountName"] = f"{obj['spec']['serviceAccountName']}-{i}"
    docs.append(obj)
for chunk in range(0, n, 500):
    (out / f"objects-{chunk // 500:03d}.yaml").write_text(yaml.safe_dump_all(docs[chunk:chunk + 500]))
