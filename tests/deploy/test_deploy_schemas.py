"""Every Kubernetes object under deploy/ is valid for the API server it is meant for, offline.

Built-in kinds: kubernetes-validate in strict mode (unknown fields are errors)
for each pinned Kubernetes version. Custom resources (KServe InferenceService,
KEDA ScaledObject): the projects' published CRD schemas (deploy/schemas),
closed the way the API server prunes.
"""

from __future__ import annotations

import copy
import re

import pytest

from deployfiles import (
    CRD_SCHEMAS, DEPLOY, KUBERNETES_VERSIONS, documents, NOT_OBJECTS, SCHEMAS, builtin_errors, crd_errors, is_custom, objects,
    sha256, strict_structural, the, yaml_files,
)

BUILTIN = [(rel, doc) for rel, doc in objects() if not is_custom(doc)]
CUSTOM = [(rel, doc) for rel, doc in objects() if is_custom(doc)]


def object_id(item) -> str:
    rel, doc = item
    return f"{rel}:{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("item", BUILTIN, ids=object_id)
def test_builtin_manifest_is_valid_for_kubernetes_with_no_unknown_field(item, version):
    _, doc = item
    assert builtin_errors(doc, version) == []


@pytest.mark.parametrize("item", CUSTOM, ids=object_id)
def test_custom_resource_matches_its_published_crd_schema(item):
    _, doc = item
    assert crd_errors(doc) == []


def test_every_yaml_file_under_deploy_is_checked_by_some_test():
    kinds = {(doc["apiVersion"], doc["kind"]) for _, doc in objects()}
    assert ("serving.kserve.io/v1beta1", "InferenceService") in kinds and ("keda.sh/v1alpha1", "ScaledObject") in kinds
    for path in yaml_files():
        rel = path.relative_to(DEPLOY).as_posix()
        if rel not in NOT_OBJECTS:
            docs = documents(path)
            assert docs and all("apiVersion" in doc and "kind" in doc for doc in docs), f"{rel} is not a Kubernetes object"
    for rel in NOT_OBJECTS:
        assert (DEPLOY / rel).is_file(), f"NOT_OBJECTS names a file that is gone: {rel}"
    # Built-in kinds that kubernetes-validate does not know would fail above with
    # SchemaNotFoundError; custom kinds without a schema file would be passed to it as built-in.
    assert len(BUILTIN) >= 8 and len(CUSTOM) == 2


def test_strict_validation_rejects_an_unknown_field_and_a_wrong_type_in_a_deployment():
    deployment = copy.deepcopy(the("Deployment", "ser-serve"))
    misspelt = copy.deepcopy(deployment)
    misspelt["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {"path": "/readyz"}
    assert any("httpGett" in error for error in builtin_errors(misspelt, KUBERNETES_VERSIONS[0]))
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "two"
    assert builtin_errors(wrong_type, KUBERNETES_VERSIONS[0]) != []


def test_crd_validation_rejects_an_unknown_field_a_wrong_type_and_bad_metadata():
    isvc = the("InferenceService")
    unknown = copy.deepcopy(isvc)
    unknown["spec"]["predictor"]["containers"][0]["readinessProbes"] = {}
    assert any("readinessProbes" in error for error in crd_errors(unknown))
    misplaced = copy.deepcopy(isvc)
    misplaced["spec"]["replicas"] = 2  # belongs in spec.predictor (minReplicas)
    assert any("replicas" in error for error in crd_errors(misplaced))
    bad_metadata = copy.deepcopy(isvc)
    bad_metadata["metadata"]["label"] = {"a": "b"}
    assert any("label" in error for error in crd_errors(bad_metadata))

    scaled = the("ScaledObject")
    number_threshold = copy.deepcopy(scaled)
    number_threshold["spec"]["triggers"][0]["metadata"]["threshold"] = 0.2  # KEDA's trigger metadata is strings
    assert any("threshold" in error for error in crd_errors(number_threshold))
    misspelt = copy.deepcopy(scaled)
    misspelt["spec"]["minReplicas"] = 2  # KEDA spells it minReplicaCount
    assert any("minReplicas" in error for error in crd_errors(misspelt))


def test_strict_structural_closes_only_what_the_api_server_would_prune():
    schema = {
        "type": "object",
        "properties": {
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "properties": {
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    "items": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}},
                    "empty": {"type": "object"},
                },
            },
        },
    }
    strict = strict_structural(schema)
    spec = strict["properties"]["spec"]
    assert strict["additionalProperties"] is False and spec["additionalProperties"] is False
    assert spec["properties"]["labels"]["additionalProperties"] == {"type": "string"}
    assert "additionalProperties" not in spec["properties"]["free"]
    assert spec["properties"]["items"]["items"]["additionalProperties"] is False
    assert spec["properties"]["empty"]["additionalProperties"] is False  # pruned whole by the API server
    assert "ObjectMeta" in strict["properties"]["metadata"]["$ref"]
    assert "additionalProperties" not in schema["properties"]["spec"], "the published schema must not be modified"


def test_schema_files_are_the_extracted_ones():
    """deploy/schemas/README.md records each file's hash at extraction: a hand edit shows up here."""
    readme = (SCHEMAS / "README.md").read_text()
    for path in CRD_SCHEMAS.values():
        recorded = re.search(rf"`{re.escape(path.name)}`: ([0-9a-f]{{64}})", readme)
        assert recorded, f"{path.name} has no recorded sha256 in deploy/schemas/README.md"
        assert sha256(path) == recorded.group(1), f"{path.name} differs from the extracted schema"


def test_manifests_leave_the_namespace_to_the_operator_and_bound_every_container():
    """No object names a namespace (kustomize or `kubectl -n` sets it); every container has requests and limits."""
    for rel, doc in objects():
        assert "namespace" not in doc["metadata"], f"{rel}: {doc['kind']} pins a namespace"
        spec = doc.get("spec", {})
        pod = spec.get("template", {}).get("spec") or spec.get("predictor")
        for container in (pod or {}).get("containers", []):
            resources = container.get("resources", {})
            assert {"cpu", "memory"} <= resources.get("requests", {}).keys(), f"{rel}: {container['name']} requests"
            assert "memory" in resources.get("limits", {}), f"{rel}: {container['name']} has no memory limit"
