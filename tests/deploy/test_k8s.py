"""The Kubernetes manifests: validated against Kubernetes' own schemas (kubernetes-validate ships them, so no
network), then checked for what this service needs: probes, a GPU, requests and limits, Service and HPA targets."""

import tomllib
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.deploy.test_dockerfile import only, serve_command, stages

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
VERSION = "1.31.0"  # the oldest Kubernetes that the manifests are meant for


def load(name: str) -> dict:
    return yaml.safe_load((K8S / name).read_text())


def container() -> dict:
    [service] = load("deployment.yaml")["spec"]["template"]["spec"]["containers"]
    return service


@pytest.mark.parametrize("name", ["deployment.yaml", "service.yaml", "hpa.yaml"])
def test_valid_against_the_kubernetes_schema(name: str) -> None:
    kubernetes_validate.validate(load(name), VERSION, strict=True)  # strict: unknown fields are errors too


def test_kustomization_applies_every_manifest() -> None:
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(load("kustomization.yaml")["resources"]) == manifests


def test_probes_on_the_health_routes() -> None:
    service = container()
    [port] = service["ports"]
    assert port == {"name": "http", "containerPort": int(serve_command()[-1])}  # the image's --port
    assert service["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert service["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert service["startupProbe"]["httpGet"]["path"] == "/health/live"


def test_one_gpu_and_requests_and_limits() -> None:
    resources = container()["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == 1
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[kind])


def test_runs_as_the_image_user_and_outlasts_the_drain() -> None:
    pod = load("deployment.yaml")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"]
    assert pod["securityContext"]["runAsUser"] == int(only(stages()["serve"], "USER"))
    assert pod["terminationGracePeriodSeconds"] > 30  # uvicorn drains for up to 30 s


def test_service_and_autoscaler_target_the_deployment() -> None:
    deployment, service, hpa = load("deployment.yaml"), load("service.yaml"), load("hpa.yaml")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == ("apps/v1", "Deployment", "latentgen")
    assert deployment["metadata"]["name"] == "latentgen"
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


def training_manifests() -> list[dict]:
    return list(yaml.safe_load_all((K8S / "training" / "train-job.yaml").read_text()))


def test_the_multi_node_training_job_is_valid_and_rendezvous_at_its_first_pod() -> None:
    service, job = training_manifests()
    for manifest in (service, job):
        kubernetes_validate.validate(manifest, VERSION, strict=True)
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"]
    [train] = spec["template"]["spec"]["containers"]
    args = dict(arg.removeprefix("--").split("=", 1) for arg in train["args"] if arg.startswith("--") and "=" in arg)
    assert train["command"] == ["torchrun"] and int(args["nnodes"]) == spec["completions"]
    assert args["master_addr"] == f"{job['metadata']['name']}-0.{service['metadata']['name']}"  # pod 0, by DNS
    assert (
        spec["template"]["spec"]["subdomain"] == service["metadata"]["name"] and service["spec"]["clusterIP"] == "None"
    )
    assert train["args"][train["args"].index("-m") + 1] == "training"
    assert train["resources"]["limits"]["nvidia.com/gpu"] == args["nproc_per_node"]


# RayJob's fields (KubeRay's ray.io/v1 API): its CRD is not in kubernetes-validate, so the pod templates inside it
# are validated as Pods, and every other field is checked against the API's own names.
RAYJOB_FIELDS = {"entrypoint", "shutdownAfterJobFinishes", "ttlSecondsAfterFinished", "activeDeadlineSeconds",
                 "rayClusterSpec", "runtimeEnvYAML", "submissionMode", "backoffLimit", "suspend"}  # fmt: skip
CLUSTER_FIELDS = {"rayVersion", "headGroupSpec", "workerGroupSpecs", "enableInTreeAutoscaling", "autoscalerOptions"}
GROUP_FIELDS = {"groupName", "replicas", "minReplicas", "maxReplicas", "rayStartParams", "template", "serviceType"}


def test_the_bulk_rayjob_runs_latentgen_bulk_in_the_bulk_image_over_a_shared_volume() -> None:
    job = yaml.safe_load((K8S / "bulk" / "encode-rayjob.yaml").read_text())
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob") and set(job["spec"]) <= RAYJOB_FIELDS
    cluster = job["spec"]["rayClusterSpec"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    assert set(cluster) <= CLUSTER_FIELDS and all(set(group) <= GROUP_FIELDS for group in groups)
    for group in groups:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": group["template"]["spec"]}
        kubernetes_validate.validate(pod, VERSION, strict=True)
        [container] = group["template"]["spec"]["containers"]
        assert container["image"] == "latentgen:bulk" and container["volumeMounts"][0]["mountPath"] == "/mnt/data"
    assert job["spec"]["entrypoint"].split()[:4] == ["python", "-m", "latentgen_bulk", "encode"]
    pinned = next(d for d in tomllib.loads((K8S.parents[1] / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["bulk"] if d.startswith("ray"))  # fmt: skip
    assert f">={cluster['rayVersion'].rsplit('.', 1)[0]}" in pinned  # the image's Ray is the cluster's
    assert "bulk" in stages()
