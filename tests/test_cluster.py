"""The files in cluster/: every YAML parses and passes schema-level checks written here (the fields the Ray cluster
launcher, KubeRay and Ray's runtime_env need, and the agreements between the files: Ray versions, images, volumes,
the job's config), the GPU configs fit the clusters the files bring up (the placement plan computed from each
file), nothing secret or account-specific is committed, and the README's walk-through names files that exist.
The GPU path is built for H100 nodes talking NCCL over EFA: every node pins a current AMI (never Ray's
`latest_dlami`), EFA instance types get all their EFA interfaces and a cluster placement group, GPU pods request the
EFA devices, the NCCL environment routes NCCL through aws-ofi-nccl (in the image), and `ray up` installs nothing."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import ray
import yaml

from tracer1.config import load_config
from tracer1.engines.weight_sync import SUPPORTED_VLLM
from tracer1.cluster_nodes import nodes_from_launcher, nodes_from_raycluster
from tracer1.placement import plan_placement

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = ROOT / "cluster"
RAY_SERIES = ".".join(ray.__version__.split(".")[:2])
IMAGE = "REGISTRY/tracer1:0.1.0"  # cluster/Dockerfile's image, which every node of both paths runs
GPU_CONFIGS = ["gpu_qwen3vl8b_1x8.yaml", "gpu_qwen3vl8b_4x8.yaml", "gpu_qwen25vl7b_1x8.yaml"]
# NCCL over EFA through aws-ofi-nccl (AWS's settings); NCCL_NET makes a missing plugin an error, not TCP.
NCCL_EFA_ENV = {"FI_PROVIDER": "efa", "FI_EFA_USE_DEVICE_RDMA": "1", "FI_EFA_FORK_SAFE": "1",
                "NCCL_NET": "AWS Libfabric"}


def load(name: str) -> dict:
    return yaml.safe_load((CLUSTER / name).read_text())


def test_every_yaml_in_cluster_parses_to_a_mapping():
    files = sorted(CLUSTER.glob("*.yaml"))
    assert [f.name for f in files] == ["aws-gpu.yaml", "kuberay-raycluster.yaml", "kuberay-rayjob.yaml",
                                       "kuberay-shared-storage.yaml", "runtime_env.yaml"]
    for f in files:
        assert isinstance(yaml.safe_load(f.read_text()), dict), f


# --- the Ray cluster launcher ----------------------------------------------------------------------------------

# vCPUs and GPUs of the instance types the launcher file may name (AWS's published sizes).
AWS_TYPES = {"m6i.8xlarge": (32, 0), "p5.48xlarge": (192, 8), "p4d.24xlarge": (96, 8), "p4de.24xlarge": (96, 8)}
# EFA interfaces an instance type has, one per network card (EC2 user guide: p5 32 cards, p4d 4).
EFA_INTERFACES = {"p5.48xlarge": 32, "p5e.48xlarge": 32, "p4d.24xlarge": 4, "p4de.24xlarge": 4}


def test_launcher_has_what_ray_up_needs_and_declares_its_instances_truthfully():
    c = load("aws-gpu.yaml")
    assert {"cluster_name", "provider", "auth", "available_node_types", "head_node_type", "max_workers",
            "head_start_ray_commands", "worker_start_ray_commands"} <= set(c)
    assert c["provider"]["type"] == "aws" and re.fullmatch(r"[a-z]{2}-[a-z]+-\d", c["provider"]["region"])
    types = c["available_node_types"]
    assert c["head_node_type"] in types
    workers = {n: t for n, t in types.items() if n != c["head_node_type"]}
    assert sum(t["max_workers"] for t in workers.values()) <= c["max_workers"]
    for name, t in types.items():
        instance = t["node_config"]["InstanceType"]
        assert (t["resources"]["CPU"], t["resources"]["GPU"]) == AWS_TYPES[instance], name
        assert t.get("min_workers", 0) <= t.get("max_workers", 0) or name == c["head_node_type"]
    assert c["docker"]["image"] == IMAGE  # built from cluster/Dockerfile on the client's Ray, as KubeRay's pods


def test_every_node_pins_a_current_deep_learning_ami_and_says_how_to_look_it_up():
    """Ray's `latest_dlami` is an Ubuntu 18.04 DLAMI whose driver is too old for H100 and current CUDA wheels; AMI
    ids differ per region, so the file holds the id the user looked up (DLAMI_ID until then) and says how."""
    c, text = load("aws-gpu.yaml"), (CLUSTER / "aws-gpu.yaml").read_text()
    for name, t in c["available_node_types"].items():
        image = t["node_config"]["ImageId"]
        assert image == "DLAMI_ID" or re.fullmatch(r"ami-[0-9a-f]{8}([0-9a-f]{9})?", image), (name, image)
    assert "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04)" in text
    assert "aws ssm get-parameter" in text and "aws ec2 describe-images" in text
    assert "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id" in text
    assert "DLAMI_ID" in (CLUSTER / "README.md").read_text()  # the walk-through fills it in


def run_env(options: list[str]) -> dict[str, str]:
    """The `-e NAME=VALUE` variables of docker run options."""
    words = shlex.split(" ".join(options))
    return dict(w.split("=", 1) for flag, w in zip(words, words[1:]) if flag == "-e")


def test_efa_instances_get_all_their_efa_interfaces_a_placement_group_the_devices_and_the_nccl_env():
    c = load("aws-gpu.yaml")
    efa_types = {n: t for n, t in c["available_node_types"].items()
                 if t["node_config"]["InstanceType"] in EFA_INTERFACES}
    assert efa_types, "no EFA node type: NCCL between the GPU nodes would run over TCP"
    for name, t in efa_types.items():
        node = t["node_config"]
        interfaces = node["NetworkInterfaces"]
        efa = [i for i in interfaces if i["InterfaceType"] in ("efa", "efa-only")]
        cards = sorted(i["NetworkCardIndex"] for i in efa)
        assert cards == list(range(EFA_INTERFACES[node["InstanceType"]])), name  # one EFA on every card
        primary = [i for i in interfaces if (i["NetworkCardIndex"], i["DeviceIndex"]) == (0, 0)]
        assert len(primary) == 1 and primary[0]["InterfaceType"] in ("interface", "efa"), name  # never efa-only
        assert len({(i["NetworkCardIndex"], i["DeviceIndex"]) for i in interfaces}) == len(interfaces), name
        # Ray's launcher: with NetworkInterfaces, subnet and security groups on every interface and nowhere else
        assert all(i["SubnetId"] and i["Groups"] for i in interfaces), name
        assert not {"SubnetId", "SubnetIds", "SecurityGroupIds"} & set(node), name
        assert node["Placement"]["GroupName"], name  # a cluster placement group
        options = c["docker"]["run_options"] + t["docker"]["worker_run_options"]
        assert "--device=/dev/infiniband" in options and "--ulimit memlock=-1:-1" in options, name
        assert NCCL_EFA_ENV.items() <= run_env(options).items(), name
    head = c["available_node_types"][c["head_node_type"]]["node_config"]
    assert set(head["SecurityGroupIds"]) == {g for t in efa_types.values()
                                             for i in t["node_config"]["NetworkInterfaces"] for g in i["Groups"]}


def test_ray_up_installs_nothing_the_image_holds_it():
    c = load("aws-gpu.yaml")
    lists = [c.get(k, []) for k in ("setup_commands", "head_setup_commands", "worker_setup_commands",
                                    "initialization_commands")]
    lists += [t.get("worker_setup_commands", []) for t in c["available_node_types"].values()]
    for command in (cmd for commands in lists for cmd in commands):
        assert not re.search(r"\b(pip|uv|conda)\b.*\binstall\b", command), command


def test_launcher_starts_ray_with_the_token_it_mounts_and_mounts_shared_storage():
    c = load("aws-gpu.yaml")
    (token_remote, token_local), = c["file_mounts"].items()
    for command in c["head_start_ray_commands"][1:] + c["worker_start_ray_commands"][1:]:
        assert "RAY_AUTH_MODE=token" in command and f"RAY_AUTH_TOKEN_PATH=$HOME/{token_remote[2:]}" in command
    assert any("--head" in cmd for cmd in c["head_start_ray_commands"])
    assert any("$RAY_HEAD_IP" in cmd for cmd in c["worker_start_ray_commands"])
    assert "-v /mnt/shared:/mnt/shared" in c["docker"]["run_options"]
    assert any("/mnt/shared" in cmd and "mount" in cmd for cmd in c["initialization_commands"])
    assert token_local.startswith("~/")  # the token stays on the user's machine, never in the repository


@pytest.mark.parametrize("config_name", GPU_CONFIGS)
def test_the_gpu_configs_fit_the_launchers_largest_cluster(config_name):
    nodes = nodes_from_launcher(load("aws-gpu.yaml"))
    assert [(n.name, n.gpus) for n in nodes] == [("head", 0)] + [(f"gpu_8xh100 {i}", 8) for i in range(4)]
    config = load_config(["stage=2"], [ROOT / "configs" / config_name])
    p = plan_placement(config, nodes, "cluster/aws-gpu.yaml")
    assert p.fits, p.render()
    assert {x.node for x in p.placed if x.demand.role == "reward"} == {0}  # CPU work stays on the head


def test_the_one_node_launcher_minimum_is_too_small_for_the_four_node_config():
    nodes = nodes_from_launcher(load("aws-gpu.yaml"), workers="min")
    p = plan_placement(load_config([], [ROOT / "configs" / "gpu_qwen3vl8b_4x8.yaml"]), nodes, "min_workers")
    assert not p.fits and "learner ranks (8 CPU, 1 GPU each) do not fit" in p.problems[0]


# --- KubeRay ----------------------------------------------------------------------------------------------------

def check_raycluster_spec(spec: dict) -> None:
    assert spec["rayVersion"].startswith(f"{RAY_SERIES}.")
    assert spec["authOptions"] == {"mode": "token"}
    groups = [("head", spec["headGroupSpec"])] + [(g["groupName"], g) for g in spec["workerGroupSpecs"]]
    images = set()
    for name, group in groups:
        pod = group["template"]["spec"]
        container = pod["containers"][0]
        images.add(container["image"])
        requests, limits = container["resources"]["requests"], container["resources"]["limits"]
        assert requests == limits, name  # Ray's resources come from the limits; equal requests = guaranteed pod
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert set(mounts.values()) <= set(volumes), name
        assert volumes[mounts["/mnt/shared"]]["persistentVolumeClaim"]["claimName"] == "tracer1-shared"
        assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
        if name != "head":
            assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
            assert int(limits["nvidia.com/gpu"]) == 8
            assert int(limits["vpc.amazonaws.com/efa"]) == EFA_INTERFACES["p5.48xlarge"], name  # EFA device plugin
            assert limits["hugepages-2Mi"], name  # libfabric's EFA buffers
            env = {e["name"]: e["value"] for e in container["env"]}
            assert NCCL_EFA_ENV.items() <= env.items(), name
            assert "emptyDir" in volumes[mounts["/mnt/local"]], name  # checkpoint.local_dir, on the node
    assert images == {IMAGE}


def test_raycluster_manifest_is_a_valid_tracer1_cluster():
    m = load("kuberay-raycluster.yaml")
    assert (m["apiVersion"], m["kind"], m["metadata"]["name"]) == ("ray.io/v1", "RayCluster", "tracer1")
    check_raycluster_spec(m["spec"])


def test_rayjob_runs_stage1_of_a_real_config_on_the_same_cluster():
    m = load("kuberay-rayjob.yaml")
    assert (m["apiVersion"], m["kind"]) == ("ray.io/v1", "RayJob")
    spec = m["spec"]
    assert spec["rayClusterSpec"] == load("kuberay-raycluster.yaml")["spec"]  # one cluster definition, not two
    check_raycluster_spec(spec["rayClusterSpec"])
    assert spec["shutdownAfterJobFinishes"] is True and spec["backoffLimit"] >= 1
    words = shlex.split(spec["entrypoint"])
    assert words[:3] == ["python", "-m", "tracer1.run"] and words[3] == "--config"
    config_file = ROOT / words[4].removeprefix("/home/ray/tracer1/")  # the image's copy of configs/
    config = load_config(words[5:], [config_file])
    assert config.stage == 1 and config.run_name and config.checkpoint.resume == "auto"  # a retry resumes
    assert config.logging.out_dir.startswith("/mnt/shared/")
    assert yaml.safe_load(spec["runtimeEnvYAML"])["env_vars"]["HF_HUB_OFFLINE"] == "1"
    p = plan_placement(config, nodes_from_raycluster(spec["rayClusterSpec"]), "the RayJob's cluster")
    assert p.fits, p.render()
    assert len(p.nodes) == 5 and [n.cpus for n in p.nodes] == [32, 180, 180, 180, 180]


def test_shared_storage_claim_is_read_write_many():
    m = load("kuberay-shared-storage.yaml")
    assert (m["kind"], m["metadata"]["name"]) == ("PersistentVolumeClaim", "tracer1-shared")
    assert m["spec"]["accessModes"] == ["ReadWriteMany"]


def test_dockerfile_builds_on_the_clients_ray_and_installs_tracer1_where_the_rayjob_looks():
    text = (CLUSTER / "Dockerfile").read_text()
    assert re.search(rf"^FROM rayproject/ray:{re.escape(RAY_SERIES)}\.\d+-py311-gpu$", text, re.M)
    assert "WORKDIR /home/ray/tracer1" in text and "COPY --chown=ray:users configs ./configs" in text
    assert re.findall(r"'vllm==([\d.]+)\.\*'", text) == list(SUPPORTED_VLLM)  # the series the NCCL sync supports


def test_dockerfile_puts_efa_libfabric_and_aws_ofi_nccl_where_nccl_finds_them():
    text = (CLUSTER / "Dockerfile").read_text()
    assert re.search(r"aws-efa-installer-\$\{EFA_INSTALLER_VERSION\}\.tar\.gz", text)
    assert re.search(r"efa_installer\.sh -y --skip-kmod", text)  # the kernel driver is the host's
    assert "libnccl-net" in text  # the build fails if the installer left no aws-ofi-nccl
    path = re.search(r"LD_LIBRARY_PATH=(\S+)", text).group(1).split(":")
    assert "/opt/amazon/ofi-nccl/lib/x86_64-linux-gnu" in path and "/opt/amazon/efa/lib" in path


@pytest.mark.parametrize("config_name", GPU_CONFIGS)
def test_gpu_configs_checkpoint_asynchronously_to_the_nodes_local_disk_both_paths_mount(config_name):
    checkpoint = load_config([], [ROOT / "configs" / config_name]).checkpoint
    assert checkpoint.async_write and checkpoint.local_dir.startswith("/mnt/local/")
    assert "-v /mnt/local:/mnt/local" in load("aws-gpu.yaml")["docker"]["run_options"]
    assert any("/mnt/local" in cmd for cmd in load("aws-gpu.yaml")["initialization_commands"])
    # the KubeRay GPU pods' /mnt/local: check_raycluster_spec


# --- runtime_env ------------------------------------------------------------------------------------------------

RUNTIME_ENV_KEYS = {"working_dir", "py_modules", "excludes", "pip", "uv", "conda", "env_vars", "container",
                    "image_uri", "config", "nsight", "py_executable"}


def test_runtime_env_ships_the_checkout_without_environments_or_runs():
    env = load("runtime_env.yaml")
    assert set(env) <= RUNTIME_ENV_KEYS
    assert env["working_dir"] == "."
    assert {".venv", ".venv-vllm", "runs", ".git"} <= set(env["excludes"])
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in env["env_vars"].items())  # Ray wants strings


# --- secrets and the walk-through ---------------------------------------------------------------------------------

SECRET_PATTERNS = {
    "AWS access key id": r"\b(AKIA|ASIA)[0-9A-Z]{16}\b",
    "AWS account id / ARN": r"\b\d{12}\b|arn:aws:",
    "private key": r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
    "Hugging Face token": r"\bhf_[A-Za-z0-9]{30,}\b",
    "secret assignment": r"(?i)(secret_access_key|password|auth_token)\s*[:=]\s*['\"]?[A-Za-z0-9/+]{16,}",
}


def test_no_secret_or_account_id_is_committed():
    files = sorted(CLUSTER.iterdir()) + sorted((ROOT / "configs").glob("gpu_*.yaml"))
    for f in files:
        text = f.read_text()
        for what, pattern in SECRET_PATTERNS.items():
            assert not re.search(pattern, text), f"{f.name}: looks like a {what}"


def test_readme_walks_from_launch_to_submit_and_back_with_files_that_exist():
    text = (CLUSTER / "README.md").read_text()
    for step in ("ray up cluster/aws-gpu.yaml", "kubectl apply -f cluster/kuberay-raycluster.yaml",
                 "ray job submit", "python -m tracer1.run", "--plan", "ray job logs", "ray job stop",
                 "checkpoint.resume=auto", "ray down cluster/aws-gpu.yaml", "kubectl delete"):
        assert step in text, step
    for path in set(re.findall(r"\b((?:cluster|configs)/[\w.-]+\.(?:yaml|md)|cluster/Dockerfile)\b", text)):
        assert (ROOT / path).exists(), path
