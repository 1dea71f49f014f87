"""The package installs whole: a wheel built from the repository holds every subpackage, module and data file of
minitransformer/, and the course library imports and loads its shipped base from the unpacked wheel alone."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "minitransformer"


def on_disk(pattern: str) -> set[str]:
    """Files under minitransformer/ matching the glob pattern, as paths relative to the repository; no bytecode."""
    return {p.relative_to(ROOT).as_posix() for p in PACKAGE.rglob(pattern) if "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built offline (the venv's setuptools, no download) from a fresh copy of the repository's package,
    so that neither a stale build/ of an earlier run can add files nor the build write into the repository."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(PACKAGE, source / PACKAGE.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation",
                            "--no-index", "--quiet", "-w", str(tmp / "dist")],
                           cwd=source, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    (built,) = (tmp / "dist").glob("minitransformer-*.whl")
    return built


@pytest.fixture(scope="module")
def names(wheel) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_the_wheel_has_every_package_and_module(names):
    packages = {p.parent.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("__init__.py") if "__pycache__" not in p.parts}
    assert {"minitransformer", "minitransformer/peft", "minitransformer/experiments", "minitransformer/experiments/studies",
            "minitransformer/course", "minitransformer/course/check", "minitransformer/course/check/quizzes",
            "minitransformer/course/grade"} <= packages
    missing = sorted(f"{p}/__init__.py" for p in packages if f"{p}/__init__.py" not in names)
    assert missing == [], f"packages left out of the wheel: {missing}"
    modules = on_disk("*.py")
    assert sorted(modules - names) == [], "modules left out of the wheel"


def test_the_wheel_has_every_tracked_data_file(names):
    tracked = subprocess.run(["git", "ls-files", "minitransformer"], cwd=ROOT, capture_output=True, text=True, check=True)
    data = {path for path in tracked.stdout.splitlines() if not path.endswith(".py") and (ROOT / path).is_file()}
    # What the code loads at run time: the shipped bases, the studies' results, the lab settings.
    assert {"minitransformer/checkpoints/base.safetensors", "minitransformer/checkpoints/base.json",
            "minitransformer/experiments/studies/results/showdown.json", "minitransformer/course/lab/overrides.json"} <= data
    assert sorted(data - names) == [], "data files left out of the wheel"


def test_the_wheel_holds_the_package_and_nothing_else(names):
    tops = {name.split("/")[0] for name in names}
    assert tops == {"minitransformer", "minitransformer-0.1.0.dist-info"}
    assert [n for n in names if "__pycache__" in n or n.endswith(".pyc")] == []


# The venv's editable install of the repository adds a finder that would fill in any subpackage missing from the
# unpacked wheel from the repository's minitransformer/: take it out, and check where every module came from.
IMPORT = """
import sys
sys.path.insert(0, sys.argv[1])
sys.meta_path = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
import minitransformer
from minitransformer import peft
from minitransformer.course import check, grade
from minitransformer.experiments.studies import showdown
import minitransformer.course.check.quizzes
from minitransformer import checkpoint
from minitransformer.experiments import results
model = minitransformer.load_base()
elsewhere = [m.__name__ for m in list(sys.modules.values())
             if m.__name__.split(".")[0] == "minitransformer" and not m.__file__.startswith(sys.argv[1])]
assert elsewhere == [], f"imported from outside the wheel: {elsewhere}"
print(minitransformer.__file__)
print(checkpoint.BASE_CHECKPOINT)
print(sum(p.numel() for p in model.parameters()))
print(len(results.load_study("showdown")))
"""


def test_the_unpacked_wheel_imports_and_loads_its_shipped_base(wheel, tmp_path):
    unpacked = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    outside = tmp_path / "elsewhere"  # not the repository, whose minitransformer/ the venv's editable install maps
    outside.mkdir()
    run = subprocess.run([sys.executable, "-c", IMPORT, str(unpacked)], cwd=outside, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    module_file, base, n_parameters, n_results = run.stdout.split("\n")[-5:-1]
    assert Path(module_file) == unpacked / "minitransformer" / "__init__.py"
    assert Path(base) == unpacked / "minitransformer" / "checkpoints" / "base"
    assert int(n_parameters) > 0 and int(n_results) > 0
