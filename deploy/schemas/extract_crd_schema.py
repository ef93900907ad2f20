"""Write the openAPIV3Schema of one version of a CustomResourceDefinition as JSON.

    python deploy/schemas/extract_crd_schema.py CRD.yaml VERSION OUT.json

The schema is copied as published (no field added, removed or tightened); the
tests apply the API server's unknown-field rule themselves (tests/deploy/crd.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml


def extract(crd_yaml: str, version: str) -> dict:
    """The openAPIV3Schema of ``version`` in the (single) CRD document of ``crd_yaml``."""
    crds = [doc for doc in yaml.safe_load_all(crd_yaml) if doc and doc.get("kind") == "CustomResourceDefinition"]
    if len(crds) != 1:
        raise SystemExit(f"expected one CustomResourceDefinition, found {len(crds)}")
    for served in crds[0]["spec"]["versions"]:
        if served["name"] == version:
            return served["schema"]["openAPIV3Schema"]
    raise SystemExit(f"{crds[0]['metadata']['name']} has no version {version}")


if __name__ == "__main__":
    source, version, out = sys.argv[1:4]
    schema = extract(Path(source).read_text(), version)
    # Compact: the KServe schema is 0.7 MB this way, 1.6 MB indented.
    Path(out).write_text(json.dumps(schema, separators=(",", ":"), sort_keys=True) + "\n")
