"""Static checks of the cluster definitions in cluster/ (CPU only, no network).

Loads every cluster/*.yaml with yaml.safe_load_all and checks, per kind:
  * the Ray cluster launcher config (validated with Ray's own schema code),
  * KubeRay RayCluster / RayJob (GPU worker group, token auth, /dev/shm, env),
  * the MLflow server manifests (args parsed by MLflow's own CLI),
and across files: `python -m X` entrypoints name real modules, referenced
configs/*.yaml exist, image tags / pins / rayVersion match pyproject.toml,
every MLFLOW_TRACKING_URI points at the MLflow Service and passes its Host check,
every Ray pod / node gets the Hugging Face token and S3 access (IRSA ServiceAccount,
instance profile), and every cluster reaches the largest documented shape with
enough trial_driver slots, head CPUs and Tune concurrency to use all of its GPUs.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import shlex
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"
README = CLUSTER / "README.md"
DOCKERFILE = CLUSTER / "image_ray_gpu.Dockerfile"
EXPECTED_YAML = {
    "aws_1x8xh100.yaml",
    "kuberay_raycluster_gpu.yaml",
    "kuberay_rayjob_paper_gender.yaml",
    "mlflow_server.yaml",
}
PAPER_CONFIG = "configs/paper_gender.yaml"
PAPER_ENTRYPOINT = ["python", "-m", "ray_jobs.run", PAPER_CONFIG]
REQUIRED_EXCLUDES = {".venv", "mlruns", "ray_results", "*.db", ".cache"}
REQUIRED_ENV = ("MLFLOW_TRACKING_URI", "BIAS_INHERIT_DATA_DIR")
PAPER_CONFIGS = sorted((REPO / "configs").glob("paper_*.yaml"))
GPUS_PER_NODE = 8
TRIAL_DRIVER = "trial_driver"
# The largest documented shape (cluster/README.md): 8 nodes x 8 H100.
MAX_SHAPE_GPUS = 64
HF_TOKEN_ENV = "HF_TOKEN"
IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"
IAM_ROLE_ARN = re.compile(r"arn:aws:iam::\d{12}:role/[\w+=,.@/-]+")
INSTANCE_PROFILE_ARN = re.compile(r"arn:aws:iam::\d{12}:instance-profile/[\w+=,.@/-]+")


# --------------------------------------------------------------------------- #
# pyproject.toml
# --------------------------------------------------------------------------- #
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
ALL_REQUIREMENTS = list(PROJECT["dependencies"]) + [
    req for reqs in PROJECT.get("optional-dependencies", {}).values() for req in reqs
]
_REQ_RE = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*(\[[^\]]*\])?\s*==\s*([A-Za-z0-9_.*+-]+)\s*$")


def _exact_pins() -> dict[str, set[str]]:
    pins: dict[str, set[str]] = {}
    for req in ALL_REQUIREMENTS:
        m = _REQ_RE.match(req)
        if m:
            pins.setdefault(m.group(1).lower(), set()).add(m.group(3))
    return pins


PIN_SETS = _exact_pins()
PINS = {name: sorted(versions)[0] for name, versions in PIN_SETS.items()}
RAY_VERSION = PINS["ray"]
MLFLOW_VERSION = PINS["mlflow"]
PROJECT_VERSION = PROJECT["version"]
PROJECT_PACKAGE_PATTERNS = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]


# --------------------------------------------------------------------------- #
# Loading and small helpers
# --------------------------------------------------------------------------- #
def _load_all() -> dict[str, list[dict]]:
    loaded = {}
    for path in sorted(CLUSTER.glob("*.yaml")):
        with path.open() as fh:
            docs = [d for d in yaml.safe_load_all(fh) if d is not None]
        loaded[path.name] = docs
    return loaded


DOCS = _load_all()


def _all_docs() -> list[tuple[str, dict]]:
    return [(name, doc) for name, docs in DOCS.items() for doc in docs]


def _of_kind(kind: str) -> list[tuple[str, dict]]:
    return [(n, d) for n, d in _all_docs() if isinstance(d, dict) and d.get("kind") == kind]


def _launcher_configs() -> list[tuple[str, dict]]:
    return [
        (n, d)
        for n, d in _all_docs()
        if isinstance(d, dict) and "kind" not in d and "cluster_name" in d
    ]


def _cluster_text_files() -> list[Path]:
    return sorted(p for p in CLUSTER.iterdir() if p.is_file())


def _ray_cluster_specs() -> list[tuple[str, dict]]:
    specs = [(f"{n}:RayCluster/{d['metadata']['name']}", d["spec"]) for n, d in _of_kind("RayCluster")]
    specs += [
        (f"{n}:RayJob/{d['metadata']['name']}.rayClusterSpec", d["spec"]["rayClusterSpec"])
        for n, d in _of_kind("RayJob")
    ]
    return specs


def _ray_pod_templates(spec: dict) -> list[tuple[str, dict, dict]]:
    """(group name, rayStartParams, pod spec) for the head and every worker group."""
    out = [("head", spec["headGroupSpec"].get("rayStartParams", {}), spec["headGroupSpec"]["template"]["spec"])]
    for group in spec.get("workerGroupSpecs", []):
        out.append((group["groupName"], group.get("rayStartParams", {}), group["template"]["spec"]))
    return out


def _ray_container(pod_spec: dict) -> dict:
    # KubeRay treats the first container as the Ray container.
    return pod_spec["containers"][0]


def _gpu_limit(container: dict) -> int:
    limits = container.get("resources", {}).get("limits", {})
    return int(limits.get("nvidia.com/gpu", 0))


_K8S_SUFFIX = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def _k8s_bytes(quantity) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]i?)?", str(quantity))
    assert m, f"unparseable quantity {quantity!r}"
    return int(float(m.group(1)) * _K8S_SUFFIX.get(m.group(2) or "", 1))


def _docker_bytes(size: str) -> int:
    m = re.fullmatch(r"(\d+)([bkmg]?)", size.strip("'\"").lower())
    assert m, f"unparseable docker size {size!r}"
    return int(m.group(1)) * {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30}[m.group(2)]


def _ray_start_resources(value: str) -> dict:
    """Parse KubeRay's rayStartParams.resources format: '"{\\"Custom\\": 1}"'."""
    s = value.strip()
    if s.startswith('"') and s.endswith('"'):
        s = s[1:-1].replace('\\"', '"')
    return json.loads(s)


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def _mlflow_service_url() -> str:
    services = [d for _, d in _of_kind("Service") if d["metadata"]["name"] == "mlflow"]
    assert len(services) == 1, "expected one Service named mlflow"
    svc = services[0]
    port = svc["spec"]["ports"][0]["port"]
    return f"http://{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc.cluster.local:{port}"


def _mlflow_deployment() -> tuple[dict, dict]:
    deps = [
        d for _, d in _of_kind("Deployment")
        if any("mlflow" in c.get("image", "") for c in d["spec"]["template"]["spec"]["containers"])
    ]
    assert len(deps) == 1, f"expected exactly one MLflow Deployment, found {len(deps)}"
    dep = deps[0]
    (container,) = [c for c in dep["spec"]["template"]["spec"]["containers"] if "mlflow" in c["image"]]
    return dep, container


def _parse_mlflow_server_args(container: dict):
    from mlflow.cli import server  # the click command behind `mlflow server`

    command = container.get("command", [])
    assert command[:2] == ["mlflow", "server"], f"MLflow container command is {command}"
    return server.make_context("server", list(command[2:]) + list(container.get("args", [])))


def _readme_submit_argv() -> list[str]:
    lines = [ln.strip() for ln in README.read_text().splitlines() if ln.strip().startswith("ray job submit ")]
    assert len(lines) == 1, f"README.md should hold exactly one `ray job submit` line, found {len(lines)}"
    return shlex.split(lines[0])


def _dockerfile_workdir() -> str:
    workdirs = re.findall(r"^WORKDIR\s+(\S+)", DOCKERFILE.read_text(), flags=re.M)
    assert workdirs, "Dockerfile has no WORKDIR"
    return workdirs[-1]


# --------------------------------------------------------------------------- #
# Files and headers
# --------------------------------------------------------------------------- #
@pytest.mark.unit
def test_pyproject_pins_are_consistent():
    # ray is pinned twice (base deps and the gpu extra's ray[llm]); both must agree.
    for name in ("ray", "mlflow", "vllm", "torch"):
        assert len(PIN_SETS.get(name, ())) == 1, f"pyproject pins {name} to {PIN_SETS.get(name)}"


@pytest.mark.unit
def test_expected_files_present_and_parse():
    assert EXPECTED_YAML <= set(DOCS), f"missing: {EXPECTED_YAML - set(DOCS)}"
    assert README.is_file() and DOCKERFILE.is_file()
    for name, docs in DOCS.items():
        assert docs, f"{name} holds no YAML document"
        for doc in docs:
            assert isinstance(doc, dict), f"{name}: top-level document is {type(doc).__name__}"


@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(EXPECTED_YAML) + [DOCKERFILE.name])
def test_file_opens_with_header_and_launch_command(name):
    lines = (CLUSTER / name).read_text().splitlines()
    header = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line.lstrip("# ").rstrip())
    assert len(header) >= 5, f"{name} does not open with a comment header"
    launch = [h for h in header if re.match(r"(ray up|kubectl apply -f|docker build -f)\b", h)]
    assert any(f"cluster/{name}" in h for h in launch), (
        f"{name}: header has no launch command naming cluster/{name}: {launch}"
    )


# --------------------------------------------------------------------------- #
# Ray cluster launcher (ray up)
# --------------------------------------------------------------------------- #
def _launcher() -> dict:
    configs = _launcher_configs()
    assert len(configs) == 1, f"expected one launcher config, found {[n for n, _ in configs]}"
    return configs[0][1]


@pytest.mark.unit
def test_launcher_required_keys():
    cfg = _launcher()
    for key in ("cluster_name", "provider", "available_node_types", "head_node_type",
                "idle_timeout_minutes", "head_start_ray_commands", "worker_start_ray_commands"):
        assert key in cfg, f"launcher config lacks {key}"
    assert cfg["docker"]["image"], "launcher config lacks docker.image"
    assert cfg["provider"]["type"] == "aws"
    assert cfg["head_node_type"] in cfg["available_node_types"]


def test_launcher_passes_ray_schema_validation():
    # What `ray up` itself runs before touching the cloud: fill in provider
    # defaults, then validate against ray/autoscaler/ray-schema.json.
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(copy.deepcopy(_launcher())))


@pytest.mark.unit
def test_launcher_cpu_head_with_trial_driver_and_gpu_workers():
    cfg = _launcher()
    types = cfg["available_node_types"]
    head = types[cfg["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0, "head must not advertise GPUs"
    assert head["resources"].get("CPU", 0) > 0
    assert head["resources"].get(TRIAL_DRIVER, 0) > 0, f"head lacks the {TRIAL_DRIVER} resource"

    workers = {k: v for k, v in types.items() if k != cfg["head_node_type"]}
    gpu = {k: v for k, v in workers.items() if v.get("resources", {}).get("GPU", 0) > 0}
    assert gpu, "no GPU worker node type"
    for name, node in gpu.items():
        assert node["node_config"]["InstanceType"] == "p5.48xlarge"
        assert node["resources"]["GPU"] == GPUS_PER_NODE
        assert node["resources"].get(TRIAL_DRIVER, 0) == 0, f"{name} must not host trial drivers"
        assert 0 <= node["min_workers"] <= node["max_workers"] <= cfg["max_workers"]
    assert cfg["idle_timeout_minutes"] > 0


@pytest.mark.unit
def test_launcher_docker_shm_gpus_and_token_auth():
    cfg = _launcher()
    docker = cfg["docker"]
    run_options = docker["run_options"]
    shm = [o for o in run_options if o.startswith("--shm-size")]
    assert shm, "docker.run_options lacks --shm-size"
    shm_bytes = _docker_bytes(re.split(r"[= ]", shm[-1], maxsplit=1)[1])
    for cmd in cfg["head_start_ray_commands"] + cfg["worker_start_ray_commands"]:
        for value in re.findall(r"--object-store-memory[= ](\d+)", cmd):
            assert int(value) < shm_bytes, "object store larger than /dev/shm"
    assert any(o.startswith("--gpus") for o in docker.get("worker_run_options", [])), (
        "GPU workers need --gpus in worker_run_options"
    )
    assert not any(o.startswith("--gpus") for o in run_options), "--gpus would break the CPU head"
    assert "--env=RAY_AUTH_MODE=token" in run_options
    token_mounts = [r for r, local in cfg["file_mounts"].items() if local.endswith(".ray/auth_token")]
    assert token_mounts and all(r.endswith("/.ray/auth_token") for r in token_mounts)
    assert any("ray start --head" in c for c in cfg["head_start_ray_commands"])
    assert any("ray start --address=$RAY_HEAD_IP:6379" in c for c in cfg["worker_start_ray_commands"])


@pytest.mark.unit
def test_launcher_installs_the_mounted_working_dir_with_gpu_extra():
    cfg = _launcher()
    mounted = {remote for remote, local in cfg["file_mounts"].items() if local in (".", "./")}
    assert mounted, "the working directory (.) is not in file_mounts"
    installs = [c for c in cfg["setup_commands"] if "pip install" in c]
    assert installs, "setup_commands install nothing"
    ok = False
    for cmd in installs:
        m = re.search(r"cd\s+(\S+)\s*&&\s*pip install\b.*-e\s+'\.\[gpu\]'", cmd)
        ok |= bool(m and m.group(1) in mounted)
    assert ok, f"no `cd <mounted working dir> && pip install -e '.[gpu]'` in {installs}"
    assert ".gitignore" in cfg.get("rsync_filter", []), "rsync would ship .venv/mlruns to the nodes"


# --------------------------------------------------------------------------- #
# KubeRay RayCluster / RayJob
# --------------------------------------------------------------------------- #
@pytest.mark.unit
def test_kuberay_kinds_present():
    assert len(_of_kind("RayCluster")) == 1
    assert len(_of_kind("RayJob")) == 1
    for _, doc in _of_kind("RayCluster") + _of_kind("RayJob"):
        assert doc["apiVersion"] == "ray.io/v1"
        assert doc["metadata"]["namespace"] == "bias-inherit"


RAY_CLUSTER_SPECS = _ray_cluster_specs()
RAY_CLUSTER_IDS = [label for label, _ in RAY_CLUSTER_SPECS]


@pytest.mark.unit
@pytest.mark.parametrize("label,spec", RAY_CLUSTER_SPECS, ids=RAY_CLUSTER_IDS)
def test_ray_cluster_spec(label, spec):
    assert "headGroupSpec" in spec and spec.get("workerGroupSpecs"), f"{label}: no head/worker groups"
    assert spec["rayVersion"] == RAY_VERSION
    assert spec.get("enableInTreeAutoscaling") is True, f"{label}: autoscaling off"

    # Head: CPU only, hosts the trial drivers.
    head_params = spec["headGroupSpec"]["rayStartParams"]
    head_container = _ray_container(spec["headGroupSpec"]["template"]["spec"])
    assert _gpu_limit(head_container) == 0, f"{label}: head requests GPUs"
    assert head_params.get("num-gpus") == "0"
    assert _ray_start_resources(head_params["resources"]).get(TRIAL_DRIVER, 0) > 0

    # Workers: an 8-GPU group with sane replica bounds.
    gpu_groups = [g for g in spec["workerGroupSpecs"] if _gpu_limit(_ray_container(g["template"]["spec"])) > 0]
    assert gpu_groups, f"{label}: no worker group with an nvidia.com/gpu limit"
    for group in spec["workerGroupSpecs"]:
        replicas = group.get("replicas", group["minReplicas"])
        assert 0 <= group["minReplicas"] <= replicas <= group["maxReplicas"], (
            f"{label}/{group['groupName']}: replica bounds {group['minReplicas']}/{replicas}/{group['maxReplicas']}"
        )
    for group in gpu_groups:
        container = _ray_container(group["template"]["spec"])
        assert _gpu_limit(container) == GPUS_PER_NODE
        requests = container["resources"].get("requests", {})
        assert int(requests.get("nvidia.com/gpu", GPUS_PER_NODE)) == GPUS_PER_NODE

    for group, params, pod in _ray_pod_templates(spec):
        container = _ray_container(pod)
        # /dev/shm: a memory-backed emptyDir, larger than the object store.
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        shm = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/dev/shm"]
        assert shm, f"{label}/{group}: /dev/shm not mounted"
        vol = volumes[shm[0]["name"]]
        assert vol.get("emptyDir", {}).get("medium") == "Memory", f"{label}/{group}: /dev/shm not in memory"
        if "object-store-memory" in params and "sizeLimit" in vol["emptyDir"]:
            assert int(params["object-store-memory"]) < _k8s_bytes(vol["emptyDir"]["sizeLimit"])
        # Every pod knows where MLflow and the data live.
        env = _env(container)
        for name in REQUIRED_ENV:
            assert name in env and env[name].get("value"), f"{label}/{group}: env {name} missing"
        # Image and version agree with pyproject.
        assert RAY_VERSION in container["image"], f"{label}/{group}: image {container['image']}"


@pytest.mark.unit
@pytest.mark.parametrize("label,spec", RAY_CLUSTER_SPECS, ids=RAY_CLUSTER_IDS)
def test_ray_cluster_token_auth(label, spec):
    auth = spec.get("authOptions")
    if auth is not None:
        # KubeRay >= 1.5.1 API: the operator injects RAY_AUTH_MODE / RAY_AUTH_TOKEN.
        assert auth.get("mode") == "token", f"{label}: authOptions.mode is {auth.get('mode')}"
        assert auth.get("secretName"), f"{label}: authOptions without a Secret"
        return
    # Manual form: every Ray container sets both variables, the token from a Secret.
    for group, _, pod in _ray_pod_templates(spec):
        env = _env(_ray_container(pod))
        assert env.get("RAY_AUTH_MODE", {}).get("value") == "token", f"{label}/{group}"
        assert "secretKeyRef" in env.get("RAY_AUTH_TOKEN", {}).get("valueFrom", {}), f"{label}/{group}"


def test_rayjob_spec():
    ((_, job),) = _of_kind("RayJob")
    spec = job["spec"]
    assert spec["entrypoint"].split() == PAPER_ENTRYPOINT
    assert spec["shutdownAfterJobFinishes"] is True
    assert isinstance(spec["ttlSecondsAfterFinished"], int) and spec["ttlSecondsAfterFinished"] >= 0
    assert "rayClusterSpec" in spec

    from ray.runtime_env import RuntimeEnv

    runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
    assert runtime_env.get("working_dir"), "runtimeEnvYAML lacks working_dir"
    checked = dict(runtime_env)
    if "://" not in runtime_env["working_dir"]:
        # The submitter pod runs the head image, so a local working_dir must be the
        # repo copy that cluster/image_ray_gpu.Dockerfile bakes into that image;
        # validate against this checkout, which is what the image holds.
        assert runtime_env["working_dir"] == _dockerfile_workdir()
        checked["working_dir"] = str(REPO)
    RuntimeEnv(**checked)  # Ray's own validation (env_vars must be Dict[str, str], ...)
    for name in REQUIRED_ENV:
        assert runtime_env["env_vars"].get(name), f"runtimeEnvYAML env_vars lacks {name}"
    assert REQUIRED_EXCLUDES <= set(runtime_env.get("excludes", []))


# --------------------------------------------------------------------------- #
# Credentials: Hugging Face token and S3 access (IRSA / instance profiles)
# --------------------------------------------------------------------------- #
def _owner_of(label: str) -> tuple[str, dict]:
    """The file and the RayCluster / RayJob document a `_ray_cluster_specs` label names."""
    name, kind, obj = re.match(r"(.+?):(RayCluster|RayJob)/([^.]+)", label).groups()
    (doc,) = [d for n, d in _of_kind(kind) if n == name and d["metadata"]["name"] == obj]
    return name, doc


def _header(name: str) -> str:
    lines = []
    for line in (CLUSTER / name).read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# ").rstrip())
    return "\n".join(lines)


@pytest.mark.unit
@pytest.mark.parametrize("label,spec", RAY_CLUSTER_SPECS, ids=RAY_CLUSTER_IDS)
def test_every_ray_pod_gets_the_hf_token_from_a_secret(label, spec):
    name, _ = _owner_of(label)
    header = _header(name)
    for group, _, pod in _ray_pod_templates(spec):
        env = _env(_ray_container(pod)).get(HF_TOKEN_ENV)
        assert env, f"{label}/{group}: no {HF_TOKEN_ENV} env (the paper configs load a gated model)"
        assert "value" not in env, f"{label}/{group}: {HF_TOKEN_ENV} must not be a literal"
        ref = env.get("valueFrom", {}).get("secretKeyRef", {})
        assert ref.get("name") and ref.get("key"), f"{label}/{group}: {HF_TOKEN_ENV} not from a secretKeyRef"
        assert not ref.get("optional"), f"{label}/{group}: a missing token Secret should stop the pod"
        # The header tells how to create exactly that Secret and key.
        assert re.search(rf"kubectl .*create secret generic {re.escape(ref['name'])}\b.*"
                         rf"--from-literal={re.escape(ref['key'])}=", header), (
            f"{name}: header lacks `kubectl create secret generic {ref['name']} --from-literal={ref['key']}=...`"
        )


def _service_accounts(name: str) -> dict[tuple[str, str], dict]:
    return {(d["metadata"].get("namespace"), d["metadata"]["name"]): d
            for n, d in _of_kind("ServiceAccount") if n == name}


@pytest.mark.unit
@pytest.mark.parametrize("label,spec", RAY_CLUSTER_SPECS, ids=RAY_CLUSTER_IDS)
def test_every_ray_pod_runs_as_an_irsa_service_account_of_its_file(label, spec):
    name, owner = _owner_of(label)
    namespace = owner["metadata"]["namespace"]
    accounts = _service_accounts(name)
    for group, _, pod in _ray_pod_templates(spec):
        sa = pod.get("serviceAccountName")
        assert sa, f"{label}/{group}: no serviceAccountName (pods would get no S3 access)"
        assert (namespace, sa) in accounts, f"{label}/{group}: ServiceAccount {sa} not defined in {name}"
        arn = accounts[(namespace, sa)]["metadata"].get("annotations", {}).get(IRSA_ANNOTATION, "")
        assert IAM_ROLE_ARN.fullmatch(arn), f"{name}: ServiceAccount {sa} lacks the IRSA annotation ({arn!r})"


@pytest.mark.unit
def test_service_accounts_shared_between_files_are_identical():
    # kubectl apply of either file must not flip the other's ServiceAccount.
    seen: dict[tuple[str, str], tuple[str, dict]] = {}
    for name, doc in _of_kind("ServiceAccount"):
        key = (doc["metadata"].get("namespace"), doc["metadata"]["name"])
        if key in seen:
            assert doc == seen[key][1], f"ServiceAccount {key} differs between {seen[key][0]} and {name}"
        seen[key] = (name, doc)


@pytest.mark.unit
def test_launcher_node_types_carry_instance_profiles_and_fetch_the_hf_token():
    cfg = _launcher()
    for node_type, node in cfg["available_node_types"].items():
        arn = node["node_config"].get("IamInstanceProfile", {}).get("Arn", "")
        assert INSTANCE_PROFILE_ARN.fullmatch(arn), f"{node_type}: no IamInstanceProfile Arn ({arn!r})"
    # No `ray up` field carries a secret; the nodes read the token themselves into the
    # file huggingface_hub reads when HF_TOKEN is unset: $HF_HOME/token.
    commands = cfg.get("initialization_commands", []) + cfg.get("setup_commands", [])
    assert any("HF_HOME" in c and "/token" in c for c in commands), "no command provides the HF token"
    assert not any(o.startswith(f"--env={HF_TOKEN_ENV}=") for o in cfg["docker"]["run_options"]), (
        "a literal token in docker run_options would sit in the file and `docker inspect`"
    )


@pytest.mark.unit
def test_no_hf_token_literal_in_cluster_files():
    for path in _cluster_text_files():
        assert not re.search(r"\bhf_[A-Za-z0-9]{30,}\b", path.read_text()), f"{path.name} holds a HF token"


# --------------------------------------------------------------------------- #
# Scale: the largest documented shape, trial_driver slots, head CPUs, retries
# --------------------------------------------------------------------------- #
def _paper_gender():
    from bias.config import load_config

    return load_config(REPO / PAPER_CONFIG)


def _gpus_per_trial(res) -> float:
    from training.grid import trial_demand

    return trial_demand(res)["GPU"]


def _launcher_max_gpus() -> int:
    cfg = _launcher()
    gpu_nodes = [n for k, n in cfg["available_node_types"].items()
                 if k != cfg["head_node_type"] and n["resources"].get("GPU", 0) > 0]
    per_type = sum(n["max_workers"] * n["resources"]["GPU"] for n in gpu_nodes)
    # The global max_workers caps all node types together.
    return min(per_type, cfg["max_workers"] * max(n["resources"]["GPU"] for n in gpu_nodes))


def _kuberay_max_gpus(spec: dict) -> int:
    return sum(g["maxReplicas"] * _gpu_limit(_ray_container(g["template"]["spec"]))
               for g in spec["workerGroupSpecs"])


def _cluster_shapes() -> list[tuple[str, int, dict, float]]:
    """(label, max GPUs, head Ray resources, head Ray CPUs) of every cluster definition."""
    cfg = _launcher()
    head = cfg["available_node_types"][cfg["head_node_type"]]["resources"]
    out = [("launcher", _launcher_max_gpus(), head, float(head["CPU"]))]
    for label, spec in _ray_cluster_specs():
        params = spec["headGroupSpec"]["rayStartParams"]
        out.append((label, _kuberay_max_gpus(spec), _ray_start_resources(params["resources"]),
                    float(params["num-cpus"])))
    return out


@pytest.mark.unit
def test_every_cluster_reaches_the_largest_shape_and_scales_from_small():
    for label, max_gpus, _, _ in _cluster_shapes():
        assert max_gpus >= MAX_SHAPE_GPUS, f"{label}: at most {max_gpus} GPUs < {MAX_SHAPE_GPUS}"
    cfg = _launcher()
    for node_type, node in cfg["available_node_types"].items():
        if node_type != cfg["head_node_type"]:
            assert node.get("min_workers", 0) <= 1, f"launcher {node_type}: min_workers keeps GPUs up"
    for label, spec in _ray_cluster_specs():
        for group in spec["workerGroupSpecs"]:
            assert group["minReplicas"] <= 1, f"{label}/{group['groupName']}: minReplicas keeps GPUs up"


@pytest.mark.unit
def test_trial_driver_slots_and_head_cpus_cover_a_trial_per_gpu_slot():
    res = _paper_gender().resources
    per_trial = _gpus_per_trial(res)
    for label, max_gpus, head, head_cpus in _cluster_shapes():
        trials = max_gpus / per_trial
        slots = head.get(TRIAL_DRIVER, 0) / res.driver_resources[TRIAL_DRIVER]
        assert slots >= trials, f"{label}: {slots:g} trial_driver slots < {trials:g} trials on {max_gpus} GPUs"
        assert head_cpus >= trials * res.driver_cpus, (
            f"{label}: head has {head_cpus:g} CPUs for {trials:g} drivers x {res.driver_cpus:g}"
        )


@pytest.mark.unit
@pytest.mark.parametrize("path", PAPER_CONFIGS, ids=lambda p: p.name)
def test_paper_configs_do_not_cap_concurrency_below_the_largest_shape(path):
    from bias.config import load_config

    res = load_config(path).resources
    if res.max_concurrent_trials is None:
        return  # derived from the cluster at job start
    per_trial = _gpus_per_trial(res)
    for label, max_gpus, _, _ in _cluster_shapes():
        assert res.max_concurrent_trials * per_trial >= max_gpus, (
            f"{path.name}: max_concurrent_trials={res.max_concurrent_trials} leaves GPUs of {label} idle"
        )


def _readme_shapes() -> list[dict[str, str]]:
    text = README.read_text()
    section = text.split("## Cluster shapes", 1)
    assert len(section) == 2, "README.md lacks the `## Cluster shapes` section"
    rows = [ln for ln in section[1].split("\n## ", 1)[0].splitlines() if ln.startswith("|")]
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in rows]
    header, body = cells[0], [r for r in cells[2:]]
    return [dict(zip(header, r)) for r in body]


@pytest.mark.unit
def test_readme_documents_the_8_32_64_gpu_shapes():
    res = _paper_gender().resources
    per_trial = _gpus_per_trial(res)
    rows = _readme_shapes()
    by_gpus = {int(r["GPUs"]): r for r in rows}
    assert {8, 32, 64} <= set(by_gpus), f"README shapes: {sorted(by_gpus)}"
    for gpus, row in by_gpus.items():
        nodes = int(re.match(r"(\d+) x (\d+)", row["Nodes x GPUs"]).group(1))
        assert nodes * GPUS_PER_NODE == gpus, row
        replicas = int(re.match(r"\d+", next(v for k, v in row.items() if "maxReplicas" in k)).group(0))
        assert replicas == nodes, row
        slots = int(re.match(r"\d+", row["`trial_driver` slots on the head"]).group(0))
        assert slots >= gpus / per_trial, row
        trials = int(next(v for k, v in row.items() if k.startswith("Concurrent trials")))
        assert trials == gpus / per_trial, f"{row}: {gpus} GPUs / {per_trial:g} per trial"
        if gpus < MAX_SHAPE_GPUS:
            assert f"resources.max_concurrent_trials={trials}" in row["To change"], row
            assert f"maxReplicas: {nodes}" in row["To change"] and f"max_workers: {nodes}" in row["To change"]


@pytest.mark.unit
def test_rayjob_retries():
    ((_, job),) = _of_kind("RayJob")
    spec = job["spec"]
    # spec.backoffLimit: reruns of a failed job, each on a fresh RayCluster (a rerun
    # starts the grid over, so keep it small); submitterConfig.backoffLimit: the
    # submitter pod's K8s Job retries (it never resubmits a submitted job).
    assert 1 <= spec.get("backoffLimit", 0) <= 3, f"RayJob spec.backoffLimit is {spec.get('backoffLimit')}"
    assert spec.get("submitterConfig", {}).get("backoffLimit", 0) >= 1


# --------------------------------------------------------------------------- #
# MLflow server
# --------------------------------------------------------------------------- #
def test_mlflow_deployment_args_parse_with_mlflow_cli():
    _, container = _mlflow_deployment()
    args = container.get("args", [])
    backend = [a for a in args if a.startswith("--backend-store-uri")]
    assert backend and "postgresql" in backend[0], f"--backend-store-uri is not PostgreSQL: {backend}"
    ctx = _parse_mlflow_server_args(container)
    params = ctx.params
    assert params["backend_store_uri"].startswith("postgresql")
    assert params["serve_artifacts"] is True
    assert (params["artifacts_destination"] or "").startswith("s3://")
    assert params["host"] == "0.0.0.0"
    # Kubernetes expands $(VAR) only for variables defined in the container env;
    # anything else would reach MLflow literally.
    env = _env(container)
    for var in re.findall(r"\$\((\w+)\)", " ".join(args)):
        assert var in env, f"$({var}) used in MLflow args but not defined in env"
        assert "secretKeyRef" in env[var].get("valueFrom", {}) or env[var].get("value")


def test_mlflow_image_and_probes():
    dep, container = _mlflow_deployment()
    image = container["image"]
    m = re.fullmatch(r"ghcr\.io/mlflow/mlflow:v([\d.]+)(-full)?", image)
    assert m and m.group(1) == MLFLOW_VERSION, f"MLflow image {image} != pyproject mlflow=={MLFLOW_VERSION}"
    ports = {p.get("name"): p["containerPort"] for p in container["ports"]}
    server_port = _parse_mlflow_server_args(container).params["port"]
    assert server_port in ports.values()
    probe = container["readinessProbe"]["httpGet"]
    assert probe["path"] == "/health"
    assert ports.get(probe["port"], probe["port"]) == server_port


def test_mlflow_service_and_postgres_backing():
    dep, container = _mlflow_deployment()
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    services = [d for _, d in _of_kind("Service") if d["metadata"]["name"] == "mlflow"]
    assert len(services) == 1, "no Service named mlflow"
    svc = services[0]
    assert svc["spec"]["selector"].items() <= pod_labels.items(), "Service does not select the MLflow pods"
    (port,) = svc["spec"]["ports"]
    assert port["port"] == 5000
    container_ports = {p.get("name"): p["containerPort"] for p in container["ports"]}
    assert container_ports.get(port["targetPort"], port["targetPort"]) == _parse_mlflow_server_args(
        container
    ).params["port"]

    # PostgreSQL: an in-cluster StatefulSet behind a Service, or an external DSN
    # whose parts all come from a Secret.
    stateful = [d for _, d in _of_kind("StatefulSet")
                if any("postgres" in c["image"] for c in d["spec"]["template"]["spec"]["containers"])]
    if stateful:
        sts = stateful[0]
        labels = sts["spec"]["template"]["metadata"]["labels"]
        assert any(s["spec"].get("selector", {}).items() <= labels.items()
                   and s["metadata"]["name"] == sts["spec"]["serviceName"]
                   for _, s in _of_kind("Service")), "postgres StatefulSet has no matching Service"
    else:
        env = _env(container)
        assert all("secretKeyRef" in env[v].get("valueFrom", {})
                   for v in re.findall(r"\$\((\w+)\)", " ".join(container["args"])))


def test_every_tracking_uri_points_at_the_mlflow_service_and_passes_host_check():
    from mlflow.server.security_utils import is_allowed_host_header

    expected = _mlflow_service_url()
    uris = []
    for spec_label, spec in _ray_cluster_specs():
        for group, _, pod in _ray_pod_templates(spec):
            uris.append((f"{spec_label}/{group}", _env(_ray_container(pod))["MLFLOW_TRACKING_URI"]["value"]))
    ((_, job),) = _of_kind("RayJob")
    uris.append(("RayJob runtimeEnvYAML", yaml.safe_load(job["spec"]["runtimeEnvYAML"])["env_vars"]["MLFLOW_TRACKING_URI"]))
    argv = _readme_submit_argv()
    runtime_env = json.loads(argv[argv.index("--runtime-env-json") + 1])
    uris.append(("README ray job submit", runtime_env["env_vars"]["MLFLOW_TRACKING_URI"]))
    for where, uri in uris:
        assert uri == expected, f"{where}: MLFLOW_TRACKING_URI {uri} != {expected}"

    _, container = _mlflow_deployment()
    allowed = _parse_mlflow_server_args(container).params["allowed_hosts"]
    allowed_list = [h.strip() for h in allowed.split(",")] if allowed else None
    host_header = urlsplit(expected).netloc
    if allowed_list is not None:  # None = MLflow's default: localhost + private IPs only
        assert is_allowed_host_header(allowed_list, host_header), (
            f"MLflow --allowed-hosts rejects Host: {host_header}; clients would get HTTP 403"
        )
    else:
        from mlflow.server.security_utils import get_default_allowed_hosts

        assert is_allowed_host_header(get_default_allowed_hosts(), host_header)


# --------------------------------------------------------------------------- #
# README job submission line
# --------------------------------------------------------------------------- #
def test_readme_ray_job_submit_line():
    from ray.dashboard.modules.job.cli import submit  # the click command behind `ray job submit`
    from ray.runtime_env import RuntimeEnv

    argv = _readme_submit_argv()
    assert argv[:3] == ["ray", "job", "submit"]
    params = submit.make_context("submit", argv[3:]).params
    assert urlsplit(params["address"]).port == 8265
    assert params["working_dir"] == "."
    assert list(params["entrypoint"]) == PAPER_ENTRYPOINT
    runtime_env = json.loads(params["runtime_env_json"])
    RuntimeEnv(**runtime_env)
    assert REQUIRED_EXCLUDES <= set(runtime_env["excludes"])
    for name in REQUIRED_ENV:
        assert runtime_env["env_vars"].get(name)


# --------------------------------------------------------------------------- #
# Cross-file references: entrypoint modules, configs, versions
# --------------------------------------------------------------------------- #
def _is_project_module(module: str) -> bool:
    top = module.split(".")[0]
    return any(re.fullmatch(pat.replace("*", ".*"), top) for pat in PROJECT_PACKAGE_PATTERNS)


@pytest.mark.unit
def test_every_python_dash_m_names_an_existing_module():
    found = {}
    for path in _cluster_text_files():
        for module in re.findall(r"python3?\s+-m\s+([A-Za-z_][\w.]*)", path.read_text()):
            found.setdefault(module, set()).add(path.name)
    assert "ray_jobs.run" in found, "no cluster file runs `python -m ray_jobs.run`"
    for module, where in sorted(found.items()):
        if _is_project_module(module):
            base = REPO.joinpath(*module.split("."))
            assert base.with_suffix(".py").is_file() or (base / "__main__.py").is_file(), (
                f"`python -m {module}` (in {sorted(where)}) names no module file in the repo"
            )
        else:
            assert importlib.util.find_spec(module) is not None, f"`python -m {module}` is not importable"


@pytest.mark.unit
def test_every_referenced_config_exists():
    found = {}
    for path in _cluster_text_files():
        for ref in re.findall(r"(?<![\w/.-])(configs/[\w./-]+?\.ya?ml)\b", path.read_text()):
            found.setdefault(ref, set()).add(path.name)
    assert PAPER_CONFIG in found, f"no cluster file references {PAPER_CONFIG}"
    for ref, where in sorted(found.items()):
        assert (REPO / ref).is_file(), f"{ref} (referenced in {sorted(where)}) does not exist"


@pytest.mark.unit
def test_ray_image_tags_match_pyproject():
    tags = {}
    for path in _cluster_text_files():
        for image, tag in re.findall(r"\b(rayproject/ray(?:-[a-z]+)?):([\w.-]+)", path.read_text()):
            tags.setdefault(tag, set()).add(path.name)
    assert tags, "no rayproject/ray image referenced"
    py_min = tuple(int(x) for x in re.search(r">=\s*(\d+)\.(\d+)", PROJECT["requires-python"]).groups())
    for tag, where in tags.items():
        assert tag == RAY_VERSION or tag.startswith(RAY_VERSION + "-"), (
            f"rayproject/ray:{tag} in {sorted(where)} != ray=={RAY_VERSION}"
        )
        py = re.search(r"-py3(\d+)", tag)
        assert py and (3, int(py.group(1))) >= py_min, f"{tag}: Python tag below requires-python"
    assert len({re.search(r"-py3\d+", t).group(0) for t in tags}) == 1, f"mixed Python tags: {tags}"
    # The KubeRay image is built from the same base as the launcher's image.
    assert re.search(rf"^FROM\s+{re.escape(_launcher()['docker']['image'])}\s*$", DOCKERFILE.read_text(), re.M)


@pytest.mark.unit
def test_custom_images_carry_ray_and_project_versions():
    for label, spec in _ray_cluster_specs():
        for group, _, pod in _ray_pod_templates(spec):
            image = _ray_container(pod)["image"]
            if image.startswith("rayproject/"):
                continue
            tag = image.rsplit(":", 1)[1]
            assert f"ray{RAY_VERSION}" in tag and PROJECT_VERSION in tag, (
                f"{label}/{group}: image tag {tag} should name ray{RAY_VERSION} and {PROJECT_VERSION}"
            )


@pytest.mark.unit
def test_pip_pins_in_cluster_files_match_pyproject():
    pin_re = re.compile(r"\b(ray|vllm|torch|mlflow)(\[[\w,\s-]*\])?==([\w.]+)")
    seen = 0
    for path in _cluster_text_files():
        for name, _extras, version in pin_re.findall(path.read_text()):
            seen += 1
            assert version == PINS[name], f"{path.name}: {name}=={version} but pyproject pins {PINS[name]}"
    # The image installs straight from pyproject.toml (incl. the gpu extra), so it
    # cannot drift; make sure it still does.
    assert seen >= 1, "no pinned ray/vllm/torch/mlflow found (the launcher header pins the client Ray)"
    text = DOCKERFILE.read_text()
    assert "tomllib" in text and "['optional-dependencies']['gpu']" in text


@pytest.mark.unit
def test_rayversion_and_readme_versions():
    for _, spec in _ray_cluster_specs():
        assert spec["rayVersion"] == RAY_VERSION
    readme = README.read_text()
    for name, version in (("Ray", RAY_VERSION), ("MLflow", MLFLOW_VERSION), ("vLLM", PINS["vllm"])):
        assert f"{name} {version}" in readme, f"README does not state {name} {version}"


# --------------------------------------------------------------------------- #
# The CLI's job submission and the experiment configs against the cluster shapes
# --------------------------------------------------------------------------- #
@pytest.mark.unit
def test_bias_inherit_submit_excludes_what_the_plain_lines_exclude():
    from ray_jobs.jobs import EXCLUDES

    argv = _readme_submit_argv()
    readme_env = json.loads(argv[argv.index("--runtime-env-json") + 1])
    ((_, job),) = _of_kind("RayJob")
    rayjob_env = yaml.safe_load(job["spec"]["runtimeEnvYAML"])
    for where, excludes in (("README", readme_env["excludes"]), ("RayJob", rayjob_env["excludes"])):
        missing = set(excludes) - set(EXCLUDES)
        assert not missing, f"bias-inherit submit would upload what the {where} line excludes: {missing}"



@pytest.mark.unit
@pytest.mark.parametrize("path", PAPER_CONFIGS, ids=lambda p: p.name)
def test_paper_configs_fit_every_cluster_shape(path):
    from bias.config import load_config
    from training.grid import trial_demand

    cfg = load_config(path)
    res = cfg.resources
    # Several nodes share Tune storage, checkpoints and the generation cache.
    assert "://" in cfg.storage_path, f"{path.name}: storage_path must be a shared URI"
    assert res.gpus_per_worker > 0 and res.gpus_per_worker * res.workers_per_trial <= GPUS_PER_NODE
    # Trial drivers ask for a resource only the CPU heads advertise (so they stay off GPU nodes).
    assert res.driver_resources.get(TRIAL_DRIVER, 0) > 0, f"{path.name}: drivers not pinned"
    heads = [("launcher", _launcher()["available_node_types"][_launcher()["head_node_type"]]["resources"])]
    heads += [(label, _ray_start_resources(spec["headGroupSpec"]["rayStartParams"]["resources"]))
              for label, spec in _ray_cluster_specs()]
    for label, resources in heads:
        slots = resources.get(TRIAL_DRIVER, 0) / res.driver_resources[TRIAL_DRIVER]
        assert slots >= res.max_concurrent_trials, f"{label}: {slots} driver slots for {path.name}"
    # Autoscaling from zero GPUs: concurrency must be set, and must fit the largest GPU pool.
    assert res.max_concurrent_trials, f"{path.name}: set resources.max_concurrent_trials"
    launcher_gpus = sum(n.get("max_workers", 0) * n["resources"].get("GPU", 0)
                        for n in _launcher()["available_node_types"].values())
    assert res.max_concurrent_trials * trial_demand(res)["GPU"] <= launcher_gpus
