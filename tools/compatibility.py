"""The compatibility gate: each contract against every released version of it.

Versions are judged as readers and writers behave. A writer is strict: version
A's writers produce only objects its contract allows, with no other field. An
event reader is tolerant: it accepts any object whose known fields its contract
allows (an open content model). So readers of version B read the events of
version A exactly when writer(A) is a subset of reader(B), and that subset
question is what jsoncompat decides for JSON Schema 2020-12 (its "deserializer"
role: the new schema must accept everything the old one did).

Events must be FULL compatible with every released version (new readers read
old events, old readers read new events); the POST body BACKWARD (the API still
accepts every body it accepted; it reads strictly, refusing unknown fields).

Why a little code of our own around jsoncompat: its release for Python 3.11
(0.3.x; 0.4 needs Python 3.12) answers only yes or no, with no explanation. So
the gate asks it again field by field to find the fields at fault, and says
what changed in each. And jsoncompat treats `format` as an annotation, as
2020-12 does by default, while our readers assert it: a changed `format` is a
break here.

    python -m tools.compatibility check [--contracts DIR]
    python -m tools.compatibility release [--contracts DIR]
"""

import argparse
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import jsoncompat

from eventbus.versions import CONTRACTS_DIR, current_version, reader_schema, released

REQUESTS = {"CreateOrderRequest"}  # read by the orders API, strictly; every other contract is an event
ANNOTATIONS = {"description", "examples", "title", "$comment", "default", "$id", "$schema"}
FROZEN = "released.sha256"  # the checksums of the released versions, in `sha256sum` format

Schema = dict[str, Any]


def _is_subset(writer: Schema, reader: Schema) -> bool:
    """Everything `writer` allows, `reader` allows too."""
    written = writer.get("properties", {})
    formats_kept = all(
        field.get("format") in (None, written[name].get("format"))
        for name, field in reader.get("properties", {}).items()
        if isinstance(field, dict) and isinstance(written.get(name), dict)
    )
    plain = [json.dumps({k: v for k, v in s.items() if k not in ("$id", "examples")}) for s in (writer, reader)]
    return formats_kept and jsoncompat.check_compat(*plain, jsoncompat.Role.DESERIALIZER)


def _one_field(contract: Schema, name: str, reading_open: bool) -> Schema:
    """The part of `contract` about field `name`: what it says of the field, or,
    when it does not know it, that the field is never there (a strict writer or
    reader) or anything (a tolerant reader)."""
    if name in contract["properties"]:
        required = [name] if name in contract.get("required", []) else []
        return {"type": "object", "properties": {name: contract["properties"][name]}, "required": required}
    return {"type": "object"} if reading_open else {"type": "object", "properties": {name: False}}


def _change(old: Schema, new: Schema, name: str) -> str:
    """What happened to field `name` between two versions, in a few words."""
    before, after = old["properties"].get(name), new["properties"].get(name)
    if after is None:
        return "removed"
    if before is None:
        return "added as required" if name in new.get("required", []) else "added"
    changes = []
    was_required, is_required = name in old.get("required", []), name in new.get("required", [])
    if was_required != is_required:
        changes.append("now required" if is_required else "now optional")
    for keyword in sorted((set(before) | set(after)) - ANNOTATIONS):
        was, now = before.get(keyword, "unset"), after.get(keyword, "unset")
        if was == now:
            continue
        if keyword == "enum" and isinstance(was, list) and isinstance(now, list):
            changes += [f"enum adds {value!r}" for value in now if value not in was]
            changes += [f"enum drops {value!r}" for value in was if value not in now]
        else:
            changes.append(f"{keyword} {_show(was)} -> {_show(now)}")
    return ", ".join(changes) or "changed"


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _consequence(change: str, version: int, noun: str, backward: bool) -> str:
    if backward:
        if change == "removed":
            return f"{noun} of version {version} may carry it, and this version refuses unknown fields"
        if "required" in change:
            return f"{noun} of version {version} lack it"
        return f"{noun} of version {version} may hold values this version refuses"
    if change == "removed" or change.startswith("now optional"):
        return f"readers of version {version} require it"
    return f"readers of version {version} refuse values this version allows"


def breaks(title: str, old: Schema, new: Schema, version: int) -> list[str]:
    """Every way `new` breaks compatibility with the released `version` of
    contract `title` (`old`), as messages naming the field and the rule."""
    request = title in REQUESTS
    noun = "requests" if request else "events"
    reader = (lambda s: s) if request else reader_schema
    directions = [(True, old, new)] + ([] if request else [(False, new, old)])  # (backward, writer, reader)
    found = []
    for backward, writer, reading in directions:
        faulty = [
            name
            for name in sorted(set(old["properties"]) | set(new["properties"]))
            if not _is_subset(_one_field(writer, name, False), _one_field(reading, name, not request))
        ]
        for name in faulty:
            change = _change(old, new, name)
            found.append(f"{title}: field '{name}' {change}; {_consequence(change, version, noun, backward)}")
        if not faulty and not _is_subset(writer, reader(reading)):
            rule = "read its old " if backward else "be read by its old readers as "
            found.append(f"{title}: must {rule}{noun} of version {version}, and cannot")
    return found


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _frozen_problems(directory: Path) -> list[str]:
    """Released versions never change: each still has the checksum it was released with."""
    listed = {}
    if (directory / FROZEN).exists():
        listed = dict(reversed(line.split("  ", 1)) for line in (directory / FROZEN).read_text().splitlines())
    on_disk = {str(path.relative_to(directory)) for path in directory.glob("*/v[0-9]*.json")}
    problems = [
        f"{name}: released versions are frozen, but it was edited"
        for name in sorted(on_disk & set(listed))
        if _sha256(directory / name) != listed[name]
    ]
    problems += [f"{name}: not released with `make contracts-release`" for name in sorted(on_disk - set(listed))]
    problems += [f"{name}: released, but missing" for name in sorted(set(listed) - on_disk)]
    return problems


def check(directory: Path) -> tuple[list[str], int]:
    """All problems with the contracts in `directory`, and how many version pairs were compared."""
    problems = _frozen_problems(directory)
    pairs = 0
    for contract_file in sorted(directory.glob("*.json")):
        new = json.loads(contract_file.read_text())
        for version, old in sorted(released(contract_file).items()):
            problems += breaks(new["title"], old, new, version)
            pairs += 1
    return problems, pairs


def release(directory: Path) -> list[str]:
    """Freeze every contract that changed since its last release as its next version."""
    made = []
    for contract_file in sorted(directory.glob("*.json")):
        version = current_version(contract_file)
        frozen = contract_file.with_suffix("") / f"v{version}.json"
        if not frozen.exists():
            frozen.parent.mkdir(exist_ok=True)
            shutil.copyfile(contract_file, frozen)
            made.append(str(frozen.relative_to(directory)))
    names = sorted(str(path.relative_to(directory)) for path in directory.glob("*/v[0-9]*.json"))
    (directory / FROZEN).write_text("".join(f"{_sha256(directory / name)}  {name}\n" for name in names))
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.compatibility", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["check", "release"])
    parser.add_argument("--contracts", type=Path, default=CONTRACTS_DIR, help="the contracts folder")
    args = parser.parse_args(argv)
    started = time.monotonic()
    problems, pairs = check(args.contracts)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        outcome = "; nothing released" if args.command == "release" else ""
        print(f"contracts-check: {len(problems)} problem(s) with the contracts{outcome}", file=sys.stderr)
        return 1
    if args.command == "release":
        made = release(args.contracts)
        print("released: " + (", ".join(made) or "nothing, every contract is already released"))
        return 0
    print(
        f"contracts-check: every contract is compatible with its {pairs} released version(s) "
        f"({time.monotonic() - started:.2f}s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
