"""Contract versions, without the validators: each released version of a
contract is frozen in contracts/<name>/v<N>.json, and the current contract is
the latest of them, or the next one once it has changed (see `make
contracts-release`). Kept light, so the compatibility gate starts fast."""

import json
import re
from pathlib import Path
from typing import Any

CONTRACTS_DIR = Path(__file__).resolve().parent.parent / "contracts"


def reader_schema(contract_schema: dict[str, Any]) -> dict[str, Any]:
    """A contract as its readers read it: fields they do not know are let through."""
    return {key: value for key, value in contract_schema.items() if key != "additionalProperties"}


def released(contract_file: Path) -> dict[int, dict[str, Any]]:
    """The frozen versions of the contract in `contract_file`, by number."""
    folder = contract_file.with_suffix("")
    return {int(path.stem[1:]): json.loads(path.read_text()) for path in folder.glob("v[0-9]*.json")}


def current_version(contract_file: Path) -> int:
    """The latest released version, or the next one if the contract changed since."""
    versions = released(contract_file)
    latest = max(versions, default=0)
    unchanged = latest and versions[latest] == json.loads(contract_file.read_text())
    return latest if unchanged else latest + 1


def schema_uri(contract_schema: dict[str, Any], version: int) -> str:
    """The URI naming one version of a contract: its $id with the version in the path."""
    return contract_schema["$id"].removesuffix(".json") + f"/v{version}.json"


def claimed_version(dataschema_uri: str | None) -> str:
    """The version an event's `dataschema` claims, for messages: `version 2`."""
    found = re.search(r"/v(\d+)\.json$", dataschema_uri or "")
    return f"version {found.group(1)}" if found else "of unknown version"
