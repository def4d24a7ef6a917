"""Render charts/annexa to a YAML stream (CRDs first). Run through render.sh."""

from __future__ import annotations

import argparse
import json
import sys

import helm_python
import yaml

from chartlib import render, to_yaml_stream


def deep_merge(base: dict, extra: dict) -> dict:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_merge(base[key], value)
        else:
            base[key] = value
    return base


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", default="annexa", help="release name (default annexa)")
    parser.add_argument("--namespace", default="annexa-system", help="release namespace")
    parser.add_argument("-f", "--values", action="append", default=[], help="values file (repeatable)")
    parser.add_argument("--set-json", action="append", default=[], help="values as a JSON object (repeatable)")
    parser.add_argument("--no-crds", action="store_true", help="leave the CRDs out")
    args = parser.parse_args()
    values: dict = {}
    for path in args.values:
        with open(path) as f:
            deep_merge(values, yaml.safe_load(f) or {})
    for text in args.set_json:
        deep_merge(values, json.loads(text))
    try:
        rendered = render(values, name=args.name, namespace=args.namespace)
    except helm_python.HelmError as e:
        print(f"render.sh: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(to_yaml_stream(rendered, with_crds=not args.no_crds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
