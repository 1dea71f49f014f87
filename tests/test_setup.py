"""Set-up: the lock, pyproject.toml and environment.yml agree, the locked versions are the installed ones, torch
is a CPU build, and `make lab` serves the course."""

import importlib.metadata
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
CONDA_NAMES = {"torch": "pytorch-cpu"}  # conda-forge's CPU-only PyTorch
LOCK = ROOT / "requirements-lock.txt"
PIN = re.compile(r"([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)==([0-9][0-9A-Za-z.!-]*)")  # no local label, no URL


def project_requirements(with_markers: bool = False) -> list[Requirement]:
    """pyproject.toml's dependencies and dev extra; those with environment markers only if asked."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]
    return [r for r in requirements if with_markers or r.marker is None]


def lock_lines() -> list[str]:
    return [line.strip() for line in LOCK.read_text().splitlines() if line.strip() and not line.startswith("#")]


def locked() -> dict[str, str]:
    """The lock's versions by canonical package name."""
    pins = [PIN.fullmatch(line) or pytest.fail(f"not a `name==version` line in the lock: {line!r}") for line in lock_lines()]
    return {canonicalize_name(pin[1]): pin[2] for pin in pins}


def test_the_lock_pins_exact_versions_once_each():
    lines = lock_lines()
    assert len(lines) > 50  # torch, the course's packages and what they pull in
    bad = [line for line in lines if not PIN.fullmatch(line)]
    assert bad == [], f"not `name==version` (an editable, URL, range or local-label line?): {bad}"
    names = [canonicalize_name(PIN.fullmatch(line)[1]) for line in lines]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []
    header = LOCK.read_text().split("\n")[:8]
    assert any("make lock" in line for line in header) and any(re.search(r"\d{4}-\d{2}-\d{2}", line) for line in header)
    # The Makefile installs the locked torch (`make setup` would fail on a conflicting pin).
    torch_pin = re.search(r"^TORCH \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M)[1]
    assert f"torch=={locked()['torch']}" == torch_pin


def test_every_dependency_is_locked_within_its_pyproject_range():
    versions = locked()
    for requirement in project_requirements(with_markers=True):
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue  # e.g. tomli, only for Python versions the lock was not made for
        name = canonicalize_name(requirement.name)
        assert name in versions, f"{requirement.name} is in pyproject.toml but not in the lock"
        assert requirement.specifier.contains(versions[name], prereleases=True), \
            f"the lock's {requirement.name}=={versions[name]} is outside pyproject.toml's {requirement}"


def split(requirement: str):
    name, spec = re.match(r"^\s*([A-Za-z0-9_.-]+)\s*(.*)$", requirement).groups()
    return name.lower().replace("_", "-"), spec.replace(" ", "")


def test_environment_yml_pins_the_same_dependencies_as_the_lock():
    versions = locked()
    wanted = {}
    for requirement in project_requirements():  # environment markers: only for other Python versions
        name = canonicalize_name(requirement.name)
        wanted[CONDA_NAMES.get(name, name)] = "==" + versions[name]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = dict(split(d) for d in env["dependencies"] if isinstance(d, str) and d not in ("pip",) and not d.startswith("python="))
    assert conda == wanted


def test_the_installed_versions_are_the_locked_ones():
    """What proves that `make test` installed with the lock: every locked package is here at its locked version
    (a local label such as torch's `+cpu` aside). A conda environment resolves the packages the course's own
    pull in itself, so there only the direct ones, which environment.yml pins, are compared."""
    versions = locked()
    if (Path(sys.prefix) / "conda-meta").is_dir():
        versions = {n: v for n, v in versions.items() if n in {canonicalize_name(r.name) for r in project_requirements()}}
    wrong = {}
    for name, version in versions.items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed is None or Version(Version(installed).public) != Version(version):
            wrong[name] = (installed, version)
    assert wrong == {}, f"installed vs locked: {wrong}; run `rm {sys.prefix}/.installed && make setup`"


def test_torch_is_a_cpu_build():
    assert torch.version.cuda is None and torch.version.hip is None
    gpu_packages = [d.metadata["Name"] for d in importlib.metadata.distributions()
                    if (d.metadata["Name"] or "").lower().startswith(("nvidia-", "triton"))]
    assert gpu_packages == [], f"GPU packages were installed: {gpu_packages}"


def test_readme_gives_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    assert "make lab" in readme and "make test" in readme
    assert re.search(r"^make test$", (ROOT / ".ci" / "run").read_text(), re.M)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


def test_make_lab_serves_the_chapter_notebooks(tmp_path):
    port, token = free_port(), secrets.token_hex(16)
    lab_args = (f"--no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port={port} --ServerApp.port_retries=0 "
                f"--IdentityProvider.token={token}")
    # `make lab`, as the README says, with this test's environment standing in for .venv/.
    command = ["make", "lab", f"VENV={sys.prefix}", "-o", f"{sys.prefix}/.installed", f"LAB_ARGS={lab_args}"]
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    log = open(tmp_path / "lab.log", "w")
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                status, body = get(f"{base}/api/contents/chapters?token={token}")
                break
            except urllib.error.HTTPError:
                raise
            except OSError:  # not listening yet
                assert server.poll() is None, (tmp_path / "lab.log").read_text()
                assert time.monotonic() < deadline, "JupyterLab did not start within 90 s"
                time.sleep(0.5)
        import json
        listed = sorted(item["name"] for item in json.loads(body)["content"] if item["name"].endswith(".ipynb"))
        assert listed == sorted(p.name for p in (ROOT / "chapters").glob("*.ipynb")) and listed
        status, page = get(f"{base}/lab/tree/chapters/{listed[0]}?token={token}")
        assert status == 200 and "JupyterLab" in page
        status, body = get(f"{base}/api/contents/chapters/{listed[0]}?token={token}")
        assert json.loads(body)["type"] == "notebook"
        # The first screen is the course: no "get notified about Jupyter news?" pop-up, no update check.
        status, body = get(f"{base}/lab/api/settings/@jupyterlab/apputils-extension:notification?token={token}")
        defaults = {k: v.get("default") for k, v in json.loads(body)["schema"]["properties"].items()}
        assert defaults["fetchNews"] == "false" and defaults["checkForUpdates"] is False, defaults
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
