"""Loading and checking the files under deploy/: the manifests, the Dockerfiles and the CRD schemas.

Shared by the tests of tests/deploy; nothing here needs a cluster, a container
runtime or the network.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from functools import lru_cache
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
SCHEMAS = DEPLOY / "schemas"

# Kubernetes versions the built-in kinds are validated against: the oldest we
# support (the preStop/probe/PDB/HPA v2 fields used are all GA there) and the
# newest the pinned kubernetes-validate knows, so a field removed or an API
# dropped in between fails too.
KUBERNETES_VERSIONS = ("1.33.0", "1.37.0")

# The custom resources, each checked against its project's published CRD schema.
CRD_SCHEMAS = {
    ("serving.kserve.io/v1beta1", "InferenceService"): SCHEMAS / "kserve-v0.20.0-inferenceservice-v1beta1.json",
    ("keda.sh/v1alpha1", "ScaledObject"): SCHEMAS / "keda-v2.20.2-scaledobject-v1alpha1.json",
}
# YAML files under deploy/ that are not Kubernetes objects, and what checks them instead.
NOT_OBJECTS = {
    "k8s/kustomization.yaml": "test_kustomization_applies_every_manifest_but_the_secret_example",
    "k8s/autoscaling/prometheus-adapter-values.yaml": "test_hpa_metric_is_the_one_prometheus_adapter_serves",
    "hadolint.yaml": "test_dockerfiles_pass_hadolint",
}
K8S_DEFINITIONS_ID = "https://kubernetes.io/api/_definitions.json"


def yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*.yaml") if p.is_file())


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def objects() -> list[tuple[str, dict]]:
    """(path relative to deploy/, object) for every Kubernetes object under deploy/."""
    found = []
    for path in yaml_files():
        rel = path.relative_to(DEPLOY).as_posix()
        if rel in NOT_OBJECTS:
            continue
        for doc in documents(path):
            found.append((rel, doc))
    return found


def the(kind: str, name: str | None = None, where: str | None = None) -> dict:
    """The one object of ``kind`` (and ``name``, and file prefix ``where``) under deploy/."""
    matches = [doc for rel, doc in objects() if doc.get("kind") == kind
               and (name is None or doc["metadata"]["name"] == name) and (where is None or rel.startswith(where))]
    assert len(matches) == 1, f"expected one {kind} {name or ''} under deploy/{where or ''}, found {len(matches)}"
    return matches[0]


def is_custom(doc: dict) -> bool:
    return (doc["apiVersion"], doc["kind"]) in CRD_SCHEMAS


# --- Command lines -----------------------------------------------------------------------

def option(args: list[str], name: str, default: str | None = None) -> str | None:
    """The value of ``--name VALUE`` or ``--name=VALUE`` in ``args``."""
    for i, arg in enumerate(args):
        if arg == name:
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return default


def flags(args: list[str]) -> set[str]:
    return {arg.split("=", 1)[0] for arg in args if arg.startswith("--")}


# --- Dockerfiles ---------------------------------------------------------------------------

def dockerfile_stages(path: Path) -> dict[str, list[tuple[str, str]]]:
    """{stage name: [(INSTRUCTION, arguments)]} with continuation lines joined and comments dropped.

    Instructions before the first FROM (global ARGs) are under "" .
    """
    lines, current = [], ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    stages: dict[str, list[tuple[str, str]]] = {"": []}
    name = ""
    for line in lines:
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            words = rest.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else f"stage{len(stages)}"
            stages[name] = []
        stages[name].append((instruction, rest.strip()))
    return stages


def instructions(stage: list[tuple[str, str]], name: str) -> list[str]:
    return [rest for instruction, rest in stage if instruction == name]


def arg_defaults(stages: dict[str, list[tuple[str, str]]]) -> dict[str, str]:
    """Every ARG with a default, across all stages."""
    defaults = {}
    for stage in stages.values():
        for rest in instructions(stage, "ARG"):
            if "=" in rest:
                key, value = rest.split("=", 1)
                defaults[key.strip()] = value.strip()
    return defaults


def env(stage: list[tuple[str, str]]) -> dict[str, str]:
    """ENV key=value pairs of a stage (the key=value form only)."""
    values = {}
    for rest in instructions(stage, "ENV"):
        for word in shlex.split(rest):
            key, _, value = word.partition("=")
            values[key] = value
    return values


def exec_form(rest: str) -> list[str]:
    """The JSON array of an exec-form ENTRYPOINT/CMD; raises if it is shell form."""
    value = json.loads(rest)
    assert isinstance(value, list) and all(isinstance(word, str) for word in value), rest
    return value


def image_command(path: Path, stage: str = "runtime") -> list[str]:
    """ENTRYPOINT + CMD of ``stage`` (the last of each), as the container runs it without args."""
    instructions_ = dockerfile_stages(path)[stage]
    entrypoint = exec_form(instructions(instructions_, "ENTRYPOINT")[-1])
    cmd = exec_form(instructions(instructions_, "CMD")[-1])
    return entrypoint + cmd


# --- CRD schemas -------------------------------------------------------------------------

def strict_structural(schema: dict) -> dict:
    """A copy of a CRD's structural schema in which every field the API server would drop is an error.

    The API server prunes fields that a structural schema does not specify
    (unless x-kubernetes-preserve-unknown-fields is set), and with strict field
    validation (kubectl's default) it rejects them instead. So: an object node
    of the skeleton without ``additionalProperties`` and without
    x-kubernetes-preserve-unknown-fields gets ``additionalProperties: false``.
    Nodes that preserve unknown fields, or that declare additionalProperties
    (maps), stay open. Value validations (anyOf/allOf/oneOf/not) are not part of
    the skeleton and are left as published. The root ``metadata`` (``type:
    object`` in every CRD) is validated as ObjectMeta, as the API server does.
    """
    schema = copy.deepcopy(schema)

    def close(node: dict) -> None:
        for child in node.get("properties", {}).values():
            close(child)
        if isinstance(node.get("items"), dict):
            close(node["items"])
        if isinstance(node.get("additionalProperties"), dict):
            close(node["additionalProperties"])
        is_object = node.get("type") == "object" or "properties" in node
        if is_object and "additionalProperties" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            node["additionalProperties"] = False

    close(schema)
    schema["properties"]["metadata"] = {"$ref": f"{K8S_DEFINITIONS_ID}#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    return schema


@lru_cache(maxsize=None)
def crd_validator(api_version: str, kind: str, kubernetes_version: str = KUBERNETES_VERSIONS[0]):
    """A jsonschema validator for the custom resource, strict as described in strict_structural."""
    import importlib.resources

    import jsonschema
    from referencing import Registry, Resource

    schema = strict_structural(json.loads(CRD_SCHEMAS[(api_version, kind)].read_text()))
    schema["properties"]["apiVersion"] = {"const": api_version}
    schema["properties"]["kind"] = {"const": kind}
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata", "spec"})
    definitions_file = (importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"
                        / f"v{kubernetes_version}-local-strict" / "_definitions.json")
    definitions = Resource.from_contents(json.loads(definitions_file.read_text()))
    registry = Registry().with_resource(K8S_DEFINITIONS_ID, definitions)
    return jsonschema.Draft202012Validator(schema, registry=registry)


def crd_errors(doc: dict) -> list[str]:
    """Every schema violation of a custom resource, as 'path: message'."""
    validator = crd_validator(doc.get("apiVersion"), doc.get("kind"))
    return [f"{'.'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
            for error in validator.iter_errors(doc)]


def builtin_errors(doc: dict, kubernetes_version: str) -> list[str]:
    """kubernetes-validate's strict verdict (unknown fields are errors) as a list of messages."""
    import kubernetes_validate

    try:
        kubernetes_validate.validate(doc, kubernetes_version, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{'.'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"]
    return []


def sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def quantity(value) -> float:
    """A Kubernetes quantity (``500m``, ``2``, ``3Gi``) as a number of base units."""
    match = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(value))
    assert match, value
    number, suffix = float(match.group(1)), match.group(2)
    scale = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}[suffix]
    return number * scale
