"""generated/ is exactly what `make generate` makes from contracts/."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def generated_files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.iterdir() if path.suffix in (".py", ".yaml")}


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make to run the Makefile's generate recipe")
def test_generated_files_match_the_contracts(tmp_path):
    # Run the Makefile's own recipe in a scratch copy, with this virtualenv's tools
    # and without re-installing it (-o), so generated/ here is left alone.
    shutil.copy(ROOT / "Makefile", tmp_path)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)  # the code generator formats to its line length
    shutil.copytree(ROOT / "contracts", tmp_path / "contracts")
    bin_dir = Path(sys.executable).parent
    make = ["make", "-s", "-C", str(tmp_path), "-o", ".venv/.installed", f"BIN={bin_dir}", "generate"]
    subprocess.run(make, check=True, capture_output=True)

    fresh, committed = generated_files(tmp_path / "generated"), generated_files(ROOT / "generated")
    stale = sorted(name for name in fresh | committed if fresh.get(name) != committed.get(name))
    assert not stale, f"generated/ is out of date with contracts/ ({', '.join(stale)}): run `make generate`"
