"""generated/ is exactly what `make generate` makes from contracts/."""

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODEGEN = Path(sys.executable).parent / "datamodel-codegen"


def makefile_codegen_flags() -> list[str]:
    """The CODEGEN_FLAGS that the Makefile's `generate` target passes."""
    makefile = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    return shlex.split(re.search(r"^CODEGEN_FLAGS\s*:?=(.*)$", makefile, re.MULTILINE).group(1))


def python_files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.glob("*.py")}


def test_generated_dataclasses_match_the_contracts(tmp_path):
    # Same relative paths as the Makefile: the input folder's name is written into generated/__init__.py.
    (tmp_path / "contracts").mkdir()
    for schema in (ROOT / "contracts").glob("*.json"):
        shutil.copy(schema, tmp_path / "contracts")
    command = [str(CODEGEN), "--input", "contracts", "--output", "generated", *makefile_codegen_flags()]
    subprocess.run(command, cwd=tmp_path, check=True, capture_output=True)

    fresh, committed = python_files(tmp_path / "generated"), python_files(ROOT / "generated")
    stale = sorted(name for name in fresh | committed if fresh.get(name) != committed.get(name))
    assert not stale, f"generated/ is out of date with contracts/ ({', '.join(stale)}): run `make generate`"
