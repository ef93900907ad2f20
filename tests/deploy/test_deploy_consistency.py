"""The deployment files agree with each other and with the server's command line.

Each check is one way a deployment breaks although every file is valid on its
own: a probe on the wrong port, a grace period shorter than the drain, a token
mounted where the server does not look, a Service that selects nothing.
"""

from __future__ import annotations

import importlib.util
import json
import posixpath
import subprocess
import sys
from types import SimpleNamespace

import pytest
import yaml

from deployfiles import (
    DEPLOY, REPO, dockerfile_stages, env, flags, image_command, instructions, option, quantity, the,
)

DEFAULT_DRAIN_SECONDS = 20  # `ser-serve serve --drain-seconds` default (the server contract, issue 12)


def deployment() -> dict:
    return the("Deployment", "ser-serve")


def pod_specs() -> list[tuple[str, dict]]:
    """The pod specs that run the server: the Deployment's and the KServe predictor's."""
    return [("deployment", deployment()["spec"]["template"]["spec"]), ("kserve", the("InferenceService")["spec"]["predictor"])]


def server_container(pod: dict) -> dict:
    (container,) = [c for c in pod["containers"] if c["args"][:1] == ["serve"]]
    return container


def port_number(container: dict, port) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return number


def prestop_seconds(container: dict) -> float:
    pre_stop = container.get("lifecycle", {}).get("preStop", {})
    if "sleep" in pre_stop:
        return pre_stop["sleep"]["seconds"]
    command = pre_stop.get("exec", {}).get("command", [])
    return float(command[1]) if command[:1] == ["sleep"] else 0.0


@pytest.mark.parametrize("name, pod", pod_specs(), ids=lambda v: v if isinstance(v, str) else "")
def test_probes_target_the_port_the_server_listens_on(name, pod):
    container = server_container(pod)
    port = int(option(container["args"], "--port"))
    assert option(container["args"], "--host") == "0.0.0.0", "the kubelet and the Service reach the pod IP"
    assert port in [p["containerPort"] for p in container["ports"]]
    expected = {"startupProbe": "/readyz", "readinessProbe": "/readyz", "livenessProbe": "/healthz"}
    for probe, path in expected.items():
        http = container[probe]["httpGet"]
        assert http["path"] == path, f"{name} {probe}"
        assert port_number(container, http["port"]) == port, f"{name} {probe} checks another port"
    # Model load may take minutes; liveness must not kill a pod that is still loading.
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120


@pytest.mark.parametrize("name, pod", pod_specs(), ids=lambda v: v if isinstance(v, str) else "")
def test_grace_period_covers_prestop_and_drain(name, pod):
    container = server_container(pod)
    drain = float(option(container["args"], "--drain-seconds", DEFAULT_DRAIN_SECONDS))
    pre_stop = prestop_seconds(container)
    assert pre_stop >= 3, "a few seconds for endpoints controllers to remove the pod before SIGTERM"
    # The kubelet's grace period counts from the start of preStop; stopping TorchServe needs a moment too.
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + drain + 3, name


@pytest.mark.parametrize("name, pod", pod_specs(), ids=lambda v: v if isinstance(v, str) else "")
def test_token_secret_is_mounted_where_the_server_reads_it(name, pod):
    container = server_container(pod)
    token_file = option(container["args"], "--token-file")
    secret = the("Secret", "ser-serve-token")
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == posixpath.dirname(token_file)]
    assert mount.get("readOnly") is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    (item,) = volume["secret"]["items"]
    assert item["path"] == posixpath.basename(token_file)
    assert item["key"] in secret["stringData"]
    assert volume["secret"]["defaultMode"] == 0o440 and pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsGroup"]
    # The image's own default points at the same file.
    assert option(image_command(DEPLOY / "Dockerfile"), "--token-file") == token_file


@pytest.mark.parametrize("name, pod", pod_specs(), ids=lambda v: v if isinstance(v, str) else "")
def test_read_only_root_filesystem_leaves_the_work_dir_and_tmp_writable(name, pod):
    container = server_container(pod)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    workdir = instructions(dockerfile_stages(DEPLOY / "Dockerfile")["runtime"], "WORKDIR")[-1]
    empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    writable = {m["mountPath"] for m in container["volumeMounts"] if m["name"] in empty_dirs}
    assert {workdir, "/tmp"} <= writable, f"{name}: the archive, logs and temp files need {workdir} and /tmp"


@pytest.mark.parametrize("name, pod", pod_specs(), ids=lambda v: v if isinstance(v, str) else "")
def test_pod_runs_as_the_image_user_and_never_as_root(name, pod):
    user = instructions(dockerfile_stages(DEPLOY / "Dockerfile")["runtime"], "USER")[-1]
    uid, gid = (int(part) for part in user.split(":"))
    context = pod["securityContext"]
    assert context["runAsNonRoot"] is True
    assert (context["runAsUser"], context["runAsGroup"]) == (uid, gid)


@pytest.mark.parametrize("name, pod", pod_specs(), ids=lambda v: v if isinstance(v, str) else "")
def test_cpu_request_covers_the_workers_torch_threads(name, pod):
    config = yaml.safe_load((REPO / "ser_serve/defaults/model-config.yaml").read_text())
    threads = config["maxWorkers"] * config["ser"]["torch_threads"]
    resources = server_container(pod)["resources"]
    assert quantity(resources["requests"]["cpu"]) >= threads, "threads beyond the CPU request are throttled"
    assert quantity(resources["limits"]["memory"]) >= quantity(resources["requests"]["memory"]) >= 2 * 2**30


def test_service_pdb_and_network_policy_select_the_deployment_pods():
    pods = deployment()["spec"]["template"]["metadata"]["labels"]
    assert deployment()["spec"]["selector"]["matchLabels"].items() <= pods.items()
    service = the("Service", "ser-serve")
    assert service["spec"]["selector"].items() <= pods.items()
    container = server_container(deployment()["spec"]["template"]["spec"])
    (service_port,) = service["spec"]["ports"]
    assert port_number(container, service_port["targetPort"]) == int(option(container["args"], "--port"))
    assert the("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= pods.items()
    policy = the("NetworkPolicy", "ser-serve")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pods.items()
    for rule in policy["spec"]["ingress"]:
        for port in rule["ports"]:
            assert port_number(container, port["port"]) == int(option(container["args"], "--port"))
    # The PDB must leave a replica serving.
    assert the("PodDisruptionBudget")["spec"]["maxUnavailable"] < deployment()["spec"]["replicas"]


def test_network_policy_admits_the_load_test_workers():
    policy = the("NetworkPolicy", "ser-serve")
    worker = the("Job", "ser-serve-locust-worker")["spec"]["template"]["metadata"]["labels"]
    same_namespace_rules = [peer["podSelector"]["matchLabels"] for rule in policy["spec"]["ingress"]
                            for peer in rule["from"] if "namespaceSelector" not in peer]
    assert any(labels.items() <= worker.items() for labels in same_namespace_rules)


def test_autoscalers_target_the_deployment_on_mean_queue_latency():
    replicas = deployment()["spec"]["replicas"]
    hpa, scaled = the("HorizontalPodAutoscaler"), the("ScaledObject")
    for target in (hpa["spec"]["scaleTargetRef"], scaled["spec"]["scaleTargetRef"]):
        assert (target["kind"], target["name"]) == ("Deployment", deployment()["metadata"]["name"])
    assert hpa["spec"]["minReplicas"] == scaled["spec"]["minReplicaCount"] == replicas
    trigger = scaled["spec"]["triggers"][0]
    query = trigger["metadata"]["query"]
    # A ratio of rates: falls when load falls (a bare counter only ever grows).
    assert "rate(ts_queue_latency_microseconds" in query and "rate(ts_inference_requests_total" in query
    assert trigger["metricType"] == "Value", "a mean must not be divided by the replica count"
    isvc_metric = the("InferenceService")["spec"]["predictor"]["autoScaling"]["metrics"][0]["external"]
    assert isvc_metric["metric"]["query"] == query
    assert quantity(isvc_metric["target"]["value"]) == float(trigger["metadata"]["threshold"])
    assert quantity(hpa["spec"]["metrics"][0]["pods"]["target"]["averageValue"]) == float(trigger["metadata"]["threshold"])


def test_hpa_metric_is_the_one_prometheus_adapter_serves():
    values = yaml.safe_load((DEPLOY / "k8s/autoscaling/prometheus-adapter-values.yaml").read_text())
    served = {rule["name"]["as"]: rule for rule in values["rules"]["custom"]}
    metric = the("HorizontalPodAutoscaler")["spec"]["metrics"][0]["pods"]["metric"]["name"]
    assert metric in served
    assert "rate(ts_queue_latency_microseconds" in served[metric]["metricsQuery"]
    assert "rate(ts_inference_requests_total" in served[metric]["metricsQuery"]


def test_kustomization_applies_every_manifest_but_the_secret_example():
    kustomization = yaml.safe_load((DEPLOY / "k8s/kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    present = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present - {"secret.example.yaml"}
    assert "secret.example.yaml" not in listed, "a placeholder token must never be applied"


def test_manifests_and_image_run_the_same_server_command():
    image = image_command(DEPLOY / "Dockerfile")[1:]  # without the ENTRYPOINT
    for name, pod in pod_specs():
        args = server_container(pod)["args"]
        for flag in flags(image):
            assert option(args, flag) == option(image, flag), f"{name}: {flag} differs from the image's CMD"
        assert server_container(pod)["image"].split(":")[-1] == "0.2.0"


# Run in a child process: importing locust monkey-patches the interpreter with gevent,
# which hangs a process that already has threads and sockets (other tests in this session).
PARSE_WITH_LOCUST = """
import json, sys
from locust.argument_parser import get_parser
import ser_tools.locustfile  # registers its options with locust's parser event
parser = get_parser(default_config_files=[])
print(json.dumps([vars(parser.parse_args(args)) for args in json.loads(sys.argv[1])], default=str))
"""


def parse_with_locust(*arg_lists: list[str]) -> list[SimpleNamespace]:
    result = subprocess.run([sys.executable, "-c", PARSE_WITH_LOCUST, json.dumps(arg_lists)], capture_output=True,
                            text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    return [SimpleNamespace(**parsed) for parsed in json.loads(result.stdout.strip().splitlines()[-1])]


def test_loadtest_jobs_parse_with_locust_and_the_locustfile():
    """The Job's arguments are accepted by locust with the locustfile's own options, and point at our Services."""
    if importlib.util.find_spec("locust") is None:  # not imported here: see PARSE_WITH_LOCUST
        pytest.skip("the loadtest extra is not installed")
    master = the("Job", "ser-serve-locust-master")["spec"]
    worker = the("Job", "ser-serve-locust-worker")["spec"]
    master_args = [a.replace("$(SER_SERVE_TOKEN)", "t0ken") for a in master["template"]["spec"]["containers"][0]["args"]]
    worker_args = worker["template"]["spec"]["containers"][0]["args"]
    parsed, parsed_worker = parse_with_locust(master_args, worker_args)
    assert parsed.master and parsed.headless and parsed.token == "t0ken" and parsed.user_classes == ["RestUser"]
    assert parsed.expect_workers == worker["parallelism"] == worker["completions"]
    # Bounded: the shape ends the run, --run-time stops the master regardless, the Job deadline ends the pods.
    assert parsed.shape_seconds < parsed.run_time < master["activeDeadlineSeconds"]
    service, server = the("Service", "ser-serve-locust-master"), the("Service", "ser-serve")
    assert parsed.host == f"http://{server['metadata']['name']}:{server['spec']['ports'][0]['port']}"
    assert parsed_worker.worker and parsed_worker.master_host == service["metadata"]["name"]
    assert parsed_worker.master_port == service["spec"]["ports"][0]["port"]
    assert service["spec"]["selector"].items() <= master["template"]["metadata"]["labels"].items()
    for args in (master_args, worker_args):
        locustfile = option(args, "-f")
        assert (REPO / locustfile.split("site-packages/", 1)[1]).is_file()
        assert locustfile == env(dockerfile_stages(DEPLOY / "Dockerfile")["loadtest"])["LOCUST_LOCUSTFILE"]
    variables = master["template"]["spec"]["containers"][0]["env"]
    (token,) = [e for e in variables if e["name"] == "SER_SERVE_TOKEN"]
    assert token["valueFrom"]["secretKeyRef"]["name"] == the("Secret", "ser-serve-token")["metadata"]["name"]
