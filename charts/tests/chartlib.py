"""Render the Annexa chart offline with helm-python-sdk (Helm v4) and index the objects."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import helm_python
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "annexa"


@dataclass
class Rendered:
    """One rendering of the chart: its objects, its NOTES.txt and the CRDs it carries."""

    objects: list[dict]
    notes: str
    crds: list[dict]

    def all(self, kind: str) -> list[dict]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict:
        found = [o for o in self.all(kind) if name is None or o["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
        return found[0]

    def maybe(self, kind: str) -> dict | None:
        found = self.all(kind)
        assert len(found) <= 1, f"expected at most one {kind}, found {len(found)}"
        return found[0] if found else None


def load_chart() -> helm_python.Chart:
    return helm_python.Chart.load(str(CHART))


def render(values: dict | None = None, *, name: str = "annexa", namespace: str = "annexa-system",
           chart: helm_python.Chart | None = None) -> Rendered:
    chart = chart or load_chart()
    manifests = chart.render(values or {}, name=name, namespace=namespace, is_install=True)
    objects: list[dict] = []
    notes = ""
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                objects.append(doc)
    crds = [yaml.safe_load(c["data"]) for c in sorted(chart.crds, key=lambda c: c["name"])]
    return Rendered(objects=objects, notes=notes, crds=crds)


def to_yaml_stream(rendered: Rendered, with_crds: bool = True) -> str:
    docs = (rendered.crds if with_crds else []) + rendered.objects
    return "".join("---\n" + yaml.safe_dump(d, sort_keys=False) for d in docs)
