"""A service image holds the runtime and nothing of the tooling: eventbus/,
services/ and generated/, with the packages requirements.txt installs. Here a
fresh interpreter sees only that (tools/, the other folders of the repository
and every other installed package hidden) and must still import every runtime
module; and no package that only the tooling imports may be in requirements.txt."""

import json
import subprocess
import sys
from functools import cache
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
IMAGE = {"eventbus", "services", "generated"}  # what the Dockerfile copies

# Imports every runtime module with `hidden` refused, then, unhidden, the tooling;
# prints the refusals and the top-level modules only the tooling brought in.
PROBE = """
import importlib, json, sys

runtime, tooling, hidden = json.loads(sys.argv[1])

class Hide:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in hidden:
            raise ModuleNotFoundError(f"No module named {name!r} in a service image")

sys.meta_path.insert(0, Hide())
refused = {}
for module in runtime:
    try:
        importlib.import_module(module)
    except ImportError as error:
        refused[module] = str(error)
sys.meta_path.pop(0)
before = {name.partition(".")[0] for name in sys.modules}
for module in tooling:
    importlib.import_module(module)
after = {name.partition(".")[0] for name in sys.modules}
print(json.dumps({"refused": refused, "tooling_only": sorted(after - before)}))
"""


def modules(package: str) -> list[str]:
    """Every module of `package`, but the `__main__`s (importing one starts a service)."""
    files = sorted((ROOT / package).rglob("*.py"))
    names = [".".join(path.relative_to(ROOT).with_suffix("").parts) for path in files if path.stem != "__main__"]
    return [name.removesuffix(".__init__") for name in names]


def requirements() -> list[Requirement]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [Requirement(line) for line in lines if line and not line.startswith("#")]


def with_dependencies(wanted: list[Requirement]) -> set[str]:
    """The distributions `wanted` names and all they depend on, as installed here."""
    seen, todo = set(), list(wanted)
    while todo:
        requirement = todo.pop()
        for extra in {"", *requirement.extras}:
            key = (canonicalize_name(requirement.name), extra)
            if key in seen:
                continue
            seen.add(key)
            for dependency in map(Requirement, metadata.requires(requirement.name) or []):
                if dependency.marker is None or dependency.marker.evaluate({"extra": extra}):
                    todo.append(dependency)
    return {name for name, _ in seen}


@cache
def probe() -> dict:
    in_image = with_dependencies(requirements())
    distributions = metadata.packages_distributions()
    hidden = {path.parent.name for path in ROOT.glob("*/__init__.py")} - IMAGE
    hidden |= {
        module
        for module, owners in distributions.items()
        if module not in IMAGE and not in_image & {canonicalize_name(owner) for owner in owners}
    }
    argument = json.dumps([modules("eventbus") + modules("services"), modules("tools"), sorted(hidden)])
    found = subprocess.run(
        [sys.executable, "-c", PROBE, argument], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(found.stdout)


def test_every_runtime_module_imports_with_only_what_an_image_holds():
    assert probe()["refused"] == {}


def test_requirements_hold_no_package_only_the_tooling_imports():
    distributions = metadata.packages_distributions()
    tooling_only = {
        canonicalize_name(owner) for module in probe()["tooling_only"] for owner in distributions.get(module, [])
    }
    assert tooling_only, "the tooling imports some package of its own (jsoncompat at least)"
    assert tooling_only & {canonicalize_name(r.name) for r in requirements()} == set()
