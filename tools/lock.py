"""Write requirements-lock.txt and environment.yml's pins from a `pip freeze` (the last step of `make lock`).

`make lock` builds a throwaway venv, installs torch and the course (`-e ".[dev]"`) into it without constraints,
so with today's releases, and passes its `pip freeze --all --exclude-editable` to this script:

    python tools/lock.py FREEZE_FILE

It writes every pinned package into requirements-lock.txt (local labels such as torch's `+cpu` dropped, so the
same line works with PyPI's and PyTorch's CPU index; pip itself left out), and gives each package listed in
environment.yml the lock's exact version (`pytorch-cpu` is torch). Standard library only: it runs with the
Python that made the venvs.
"""

from __future__ import annotations

import datetime
import platform
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements-lock.txt"
ENVIRONMENT = ROOT / "environment.yml"
CONDA_NAMES = {"pytorch-cpu": "torch"}  # conda-forge's name -> pip's
LEFT_OUT = {"pip"}  # the venv's own installer, not a package the course installs
NOT_PINNED = {"python", "pip"}  # environment.yml entries that are not course packages

HEADER = """\
# The exact version of every package the course installs: torch, pyproject.toml's dependencies with the dev
# extra, and everything they pull in, resolved with Python {python} on {system}.
# `make lab` and `make test` install with this file as pip constraints (`pip install -c requirements-lock.txt`),
# so learners, developers and CI get the versions CI tested; environment.yml pins the same direct packages.
# Refresh: `make lock` (a throwaway venv gets today's releases; its `pip freeze` is written here), then `make test`.
# Locked on {date}.
"""

PIN = re.compile(r"([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)==([^\s+;]+)(?:\+\S+)?")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins_from_freeze(text: str) -> list[tuple[str, str]]:
    """(name, version) for each package of a `pip freeze`, local labels dropped; anything but `name==version` refused."""
    pins = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = PIN.fullmatch(line)
        if not match:
            raise SystemExit(f"lock: not a `name==version` line in the freeze (an editable or URL install?): {line!r}")
        if canonical(match[1]) not in LEFT_OUT:
            pins.append((match[1], match[2]))
    names = [canonical(name) for name, _ in pins]
    if len(set(names)) != len(names):
        raise SystemExit("lock: a package appears twice in the freeze")
    return pins


def lock_text(pins: list[tuple[str, str]], date: str) -> str:
    system = f"{platform.system()} {platform.machine()}"
    header = HEADER.format(python=platform.python_version(), system=system, date=date)
    return header + "".join(f"{name}=={version}\n" for name, version in pins)


def pinned_environment(text: str, versions: dict[str, str]) -> str:
    """environment.yml with each listed package's version replaced by `==` the lock's."""
    entry = re.compile(r"^(\s*-\s+)([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:[=<>!~]=?\s*\S+)?\s*$")
    lines, in_dependencies = [], False
    for line in text.splitlines(keepends=True):
        if re.match(r"^\S", line):  # a top-level key: only the `dependencies:` list is pinned
            in_dependencies = line.startswith("dependencies:")
        match = entry.match(line.rstrip("\n"))
        if in_dependencies and match and match[2] not in NOT_PINNED:
            name = canonical(CONDA_NAMES.get(match[2], match[2]))
            if name not in versions:
                raise SystemExit(f"lock: environment.yml lists {match[2]}, which the lock does not have")
            line = f"{match[1]}{match[2]}=={versions[name]}\n"
        lines.append(line)
    return "".join(lines)


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit(__doc__)
    pins = pins_from_freeze(Path(argv[0]).read_text())
    old = {}
    if LOCK.exists():
        old = {canonical(name): version for name, version in pins_from_freeze(LOCK.read_text())}
    LOCK.write_text(lock_text(pins, datetime.date.today().isoformat()))
    versions = {canonical(name): version for name, version in pins}
    ENVIRONMENT.write_text(pinned_environment(ENVIRONMENT.read_text(), versions))
    changed = [f"  {name}: {old.get(canonical(name), '(new)')} -> {version}"
               for name, version in pins if old.get(canonical(name)) != version]
    gone = sorted(set(old) - set(versions))
    print(f"lock: {len(pins)} packages written to {LOCK.name}; environment.yml pinned to them")
    print("\n".join(changed) if changed else "lock: no version changed")
    if gone:
        print("lock: no longer installed: " + ", ".join(gone))


if __name__ == "__main__":
    main(sys.argv[1:])
