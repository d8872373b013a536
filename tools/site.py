"""The documentation site's input, for `make docs`: README.md (the home page),
docs/, and every file of the repository their links reach, laid out as in the
repository, so that a relative link that works on GitHub works in the site too.
mkdocs then builds the site from it, and with --strict fails on a link that
reaches nothing.

    python -m tools.site build/docs-src
"""

import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
HOME = "README.md"
PAGES = "docs/"
LINK = re.compile(r"\]\(\s*(?:<([^>]+)>|([^)\s]+))")  # the target of [text](target), ![alt](<tar get>)


def repository_files(root: Path) -> set[str]:
    """The files of the working tree git knows or would add: never build output or caches."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {name for name in listed.split("\0") if name and (root / name).is_file()}


def links(page: str, text: str) -> Iterator[str]:
    """The repository paths that `page`'s relative links name (without their #anchor)."""
    for bracketed, bare in LINK.findall(text):
        url = urlsplit(bracketed or bare)
        if url.scheme or url.netloc or not url.path or url.path.startswith("/"):
            continue
        parts: list[str] = []
        for part in (PurePosixPath(page).parent / unquote(url.path)).parts:
            if part == "..":
                if not parts:
                    break  # outside the repository: nothing to stage, mkdocs reports it
                parts.pop()
            elif part != ".":
                parts.append(part)
        else:
            if parts:
                yield "/".join(parts)


def reached(root: Path, files: Iterable[str]) -> list[str]:
    """The home page, every file under docs/, and what their pages link to, page after page."""
    files = set(files)
    pending = [HOME, *sorted(name for name in files if name.startswith(PAGES))]
    found: set[str] = set()
    while pending:
        name = pending.pop()
        if name in found or name not in files:
            continue
        found.add(name)
        if name.endswith(".md"):
            pending += links(name, (root / name).read_text())
    return sorted(found)


def stage(out: Path, root: Path = ROOT) -> list[str]:
    """Copy what the site shows into `out`, as laid out in the repository; returns the paths."""
    shutil.rmtree(out, ignore_errors=True)
    names = reached(root, repository_files(root))
    for name in names:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, out / name)
    return names


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    staged = stage(Path(sys.argv[1]))
    print(f"docs: {len(staged)} files staged in {sys.argv[1]}")
