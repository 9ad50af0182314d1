"""Ray job submission: send an experiment to a cluster's job server, then follow, list or stop it.

    bias-inherit submit CONFIG [key=value ...] --address http://HEAD:8265 [--no-wait]
    bias-inherit status JOB_ID    bias-inherit logs JOB_ID [--follow]
    bias-inherit stop JOB_ID      bias-inherit list

`submit` wraps `JobSubmissionClient.submit_job`: the project directory is the runtime env's
`working_dir` (minus the virtualenv, caches, local MLflow stores, Ray results and data), `env_vars`
carry the tracking URI and the data dir, and the entrypoint is `python -m ray_jobs.run CONFIG`.
The plain equivalent is in the README (`ray job submit ... -- python -m ray_jobs.run CONFIG`).

The address is `--address`, else `RAY_ADDRESS` when it is an http(s) URL, else
http://127.0.0.1:8265. Ray 2.60 turns token auth on for new clusters: the token is read the way
Ray reads it (`RAY_AUTH_TOKEN`, then the file in `RAY_AUTH_TOKEN_PATH`, then ~/.ray/auth_token)
and sent as a bearer token, also when this shell has no `RAY_AUTH_MODE=token`.
"""
from __future__ import annotations

import asyncio
import os
import secrets
import shlex
import sys
import time
from pathlib import Path

from bias.errors import JobError

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
# Never uploaded: the virtualenv, VCS and tool caches, local MLflow stores, Tune results, data.
EXCLUDES = [".venv", ".git", "**/__pycache__", "*.pyc", ".pytest_cache", ".cache", "mlruns",
            "ray_results", "*.db", "/data/", "*.egg-info"]
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


def resolve_address(address: str | None) -> str:
    env = os.environ.get("RAY_ADDRESS", "")
    address = address or (env if env.startswith(("http://", "https://")) else DEFAULT_ADDRESS)
    if not address.startswith(("http://", "https://")):
        raise JobError(f"job address {address!r} must be the dashboard's http(s):// URL, "
                       f"e.g. http://HEAD:8265")
    return address.rstrip("/")


def ray_auth_token(default_file: bool = True) -> str | None:
    """The cluster token, looked up in Ray's own order; None when there is none."""
    token = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    if token:
        return token
    paths = [os.environ.get("RAY_AUTH_TOKEN_PATH")]
    if default_file:
        paths.append(Path.home() / ".ray" / "auth_token")
    for path in paths:
        if path and Path(path).is_file():
            token = Path(path).read_text().strip()
            if token:
                return token
    return None


def client(address: str | None):
    """A JobSubmissionClient for the address, with the auth token when there is one. A token named
    by the environment is always sent; ~/.ray/auth_token (which a local `ray.init` writes too)
    only when the server asks for one, so it never goes to a cluster that has no use for it."""
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient
    address = resolve_address(address)
    explicit = ray_auth_token(default_file=False)
    attempts = [explicit] if explicit else [None, ray_auth_token()]
    refused = ""
    for token in dict.fromkeys(attempts):
        headers = {"Authorization": f"Bearer {token}"} if token else None
        try:
            return JobSubmissionClient(address, headers=headers)
        except AuthenticationError as e:
            refused = str(e).splitlines()[0]
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise JobError(f"cannot reach the Ray job server at {address}: "
                           f"{str(e).splitlines()[0]}") from None
    raise JobError(f"the Ray job server at {address} refused the request: {refused} (token from "
                   f"RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token; "
                   f"{'one was sent' if any(attempts) else 'none was found'})")


def project_root(start: Path | None = None) -> Path:
    """The checkout to upload: the nearest directory upwards holding pyproject.toml and ray_jobs/."""
    for folder in [(start or Path.cwd()).resolve(), *(start or Path.cwd()).resolve().parents]:
        if (folder / "pyproject.toml").is_file() and (folder / "ray_jobs" / "run.py").is_file():
            return folder
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").is_file():
        return here
    raise JobError("no bias-inherit checkout found above the current directory; run submit from "
                   "the project or pass --working-dir")


def build_submission(config: str, overrides: list[str], working_dir: Path,
                     tracking_uri: str | None = None, data_dir: str | None = None,
                     env: list[str] | None = None) -> tuple[str, dict, list[str]]:
    """(entrypoint, runtime_env, warnings) for one config; the config is validated here first."""
    from bias.config import load_config
    cfg = load_config(config, overrides)
    warnings = []
    path = Path(config).resolve()
    try:
        config_arg = path.relative_to(working_dir.resolve()).as_posix()
    except ValueError:
        config_arg = str(path)
        warnings.append(f"{config} is outside the working dir {working_dir}, so it is not "
                        f"uploaded: the job reads {path} on the head node")
    entrypoint = shlex.join(["python", "-m", "ray_jobs.run", config_arg, *overrides])

    env_vars = {}
    uri = tracking_uri or cfg.tracking.uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        env_vars["MLFLOW_TRACKING_URI"] = uri
    else:
        warnings.append("no tracking URI (--tracking-uri, tracking.uri or MLFLOW_TRACKING_URI): "
                        "the job would write SQLite into its temporary working dir")
    data = data_dir or os.environ.get("BIAS_INHERIT_DATA_DIR")
    if data:
        env_vars["BIAS_INHERIT_DATA_DIR"] = data
    for item in env or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            from bias.config import ConfigError
            raise ConfigError(f"--env {item!r} is not of the form KEY=VALUE")
        env_vars[key] = value
    if "://" not in cfg.storage_path and not Path(cfg.storage_path).is_absolute():
        warnings.append(f"storage_path {cfg.storage_path!r} is relative: on the cluster it lands "
                        f"in the job's temporary working dir; use a shared path or a URI "
                        f"(s3://...) so results and `resume` survive the job")
    runtime_env = {"working_dir": str(working_dir), "excludes": list(EXCLUDES),
                   "env_vars": env_vars}
    return entrypoint, runtime_env, warnings


def submit(config: str, overrides: list[str], address: str | None = None, wait: bool = True,
           tracking_uri: str | None = None, data_dir: str | None = None,
           working_dir: str | None = None, env: list[str] | None = None,
           submission_id: str | None = None, echo=print) -> tuple[str, str | None]:
    """Submit; returns (job id, final status or None with --no-wait)."""
    from bias.config import load_config
    root = Path(working_dir).resolve() if working_dir else project_root()
    entrypoint, runtime_env, warnings = build_submission(config, overrides, root, tracking_uri,
                                                         data_dir, env)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    cfg = load_config(config, overrides)
    # The data, models and storage live on the cluster, where the job's `run` checks them;
    # here only what the config alone shows.
    from ray_jobs.preflight import preflight
    preflight(cfg, None, local=False)
    jobs = client(address)
    job_id = submission_id or f"bias-inherit-{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}-" \
                              f"{secrets.token_hex(2)}"
    try:
        job_id = jobs.submit_job(entrypoint=entrypoint, runtime_env=runtime_env,
                                 submission_id=job_id,
                                 metadata={"bias_inherit.config": config,
                                           "bias_inherit.experiment": cfg.experiment_name,
                                           "bias_inherit.config_digest": cfg.digest()})
    except RuntimeError as e:
        raise JobError(f"the job server refused the submission: {str(e).splitlines()[0]}") from None
    echo(f"submitted {job_id}: {entrypoint}")
    if not wait:
        echo(f"follow it with: bias-inherit logs {job_id} --follow --address {jobs.get_address()}")
        return job_id, None
    return job_id, follow(jobs, job_id, echo)


def follow(jobs, job_id: str, echo=print) -> str:
    """Stream the job's logs until it ends; returns its final status."""
    async def tail():
        async for chunk in jobs.tail_job_logs(job_id):
            print(chunk, end="", flush=True)
    asyncio.run(tail())
    # The log stream closes when the driver exits; the status follows a moment later.
    deadline = time.monotonic() + 30
    status = str(jobs.get_job_status(job_id).value)
    while status not in TERMINAL and time.monotonic() < deadline:
        time.sleep(0.5)
        status = str(jobs.get_job_status(job_id).value)
    echo(f"job {job_id}: {status}")
    return status


def _known(jobs, job_id: str):
    try:
        return jobs.get_job_info(job_id)
    except RuntimeError as e:
        raise JobError(f"no job {job_id!r} at {jobs.get_address()} "
                       f"({str(e).splitlines()[0]})") from None


def status(job_id: str, address: str | None = None) -> str:
    """The job's status, entrypoint, message and running time, as lines."""
    info = _known(client(address), job_id)
    lines = [f"{job_id}: {info.status.value}", f"  entrypoint: {info.entrypoint}"]
    if info.message:
        lines.append(f"  message: {info.message.strip()}")
    if info.start_time:
        end = (info.end_time or time.time() * 1000) / 1000
        lines.append(f"  running time: {end - info.start_time / 1000:.0f} s")
    return "\n".join(lines)


def logs(job_id: str, address: str | None = None, follow_: bool = False) -> str | None:
    """The job's logs so far, or (follow) stream them until the job ends and return its status."""
    jobs = client(address)
    _known(jobs, job_id)
    if follow_:
        return follow(jobs, job_id, echo=lambda line: print(line, file=sys.stderr))
    print(jobs.get_job_logs(job_id), end="")
    return None


def stop(job_id: str, address: str | None = None) -> bool:
    jobs = client(address)
    _known(jobs, job_id)
    return jobs.stop_job(job_id)


def list_jobs(address: str | None = None) -> list[tuple[str, str, str, str]]:
    """(job id, status, start time, entrypoint) of every job, oldest first."""
    rows = []
    for job in sorted(client(address).list_jobs(), key=lambda j: j.start_time or 0):
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime((job.start_time or 0) / 1000))
        rows.append((job.submission_id or job.job_id or "-", job.status.value, started,
                     job.entrypoint))
    return rows


def add_commands(sub) -> None:
    """Register submit, status, logs, stop and list on the CLI's subparsers (`handler` each)."""
    def address(p):
        p.add_argument("--address", help=f"dashboard URL (default: RAY_ADDRESS if http, else "
                                         f"{DEFAULT_ADDRESS})")
        return p

    p = address(sub.add_parser("submit", help="submit an experiment as a Ray job"))
    p.add_argument("config")
    p.add_argument("overrides", nargs="*", help="key=value overrides, passed on to the job")
    p.add_argument("--no-wait", action="store_true", help="return after submitting")
    p.add_argument("--tracking-uri", help="MLflow URI the job uses (default: config, then "
                                          "MLFLOW_TRACKING_URI)")
    p.add_argument("--data-dir", help="benchmark data dir on the cluster (default: "
                                      "BIAS_INHERIT_DATA_DIR)")
    p.add_argument("--working-dir", help="directory to upload (default: the project checkout)")
    p.add_argument("--env", action="append", metavar="KEY=VALUE", help="more job env vars")
    p.add_argument("--submission-id")
    for name, text in (("status", "a job's status"), ("stop", "stop a job")):
        address(sub.add_parser(name, help=text)).add_argument("job_id")
    p = address(sub.add_parser("logs", help="a job's logs"))
    p.add_argument("job_id")
    p.add_argument("--follow", "-f", action="store_true", help="stream until the job ends")
    address(sub.add_parser("list", help="the cluster's jobs"))

    def on_submit(args) -> int:
        _, final = submit(args.config, args.overrides, args.address, wait=not args.no_wait,
                          tracking_uri=args.tracking_uri, data_dir=args.data_dir,
                          working_dir=args.working_dir, env=args.env,
                          submission_id=args.submission_id)
        return 0 if final in (None, "SUCCEEDED") else 1

    def on_logs(args) -> int:
        final = logs(args.job_id, args.address, follow_=args.follow)
        return 0 if final in (None, "SUCCEEDED") else 1

    def on_stop(args) -> int:
        print(f"{args.job_id}: {'stop requested' if stop(args.job_id, args.address) else 'not running'}")
        return 0

    def on_list(args) -> int:
        for row in list_jobs(args.address):
            print("  ".join(row))
        return 0

    handlers = {"submit": on_submit, "logs": on_logs, "stop": on_stop, "list": on_list,
                "status": lambda args: print(status(args.job_id, args.address)) or 0}
    for name, handler in handlers.items():
        sub.choices[name].set_defaults(handler=handler)
