"""The documentation site's input: the home page, docs/, and the files their
links reach, at their places in the repository."""

from tools import site


def write(root, files: dict[str, str]) -> set[str]:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return set(files)


def test_the_home_page_docs_and_what_their_links_reach_are_staged(tmp_path):
    files = write(
        tmp_path,
        {
            "README.md": "[a](docs/a.md) [schema](contracts/x.json#/properties) [folder](contracts/) [x](https://x.org/y.md)",
            "docs/a.md": "![pic](pic.png) [code](../eventbus/y.py) [more](../bench/README.md#x) [out](../../etc/z.md)",
            "docs/pic.png": "",
            "docs/b.md": "[back](../README.md#quick-start)",
            "bench/README.md": "[page](../docs/b.md) [up](../../outside.md)",
            "contracts/x.json": "{}",
            "eventbus/y.py": "",
            "eventbus/unlinked.py": "",
        },
    )
    reached = site.reached(tmp_path, files - {"eventbus/y.py"})  # as if y.py were ignored by git
    assert reached == ["README.md", "bench/README.md", "contracts/x.json", "docs/a.md", "docs/b.md", "docs/pic.png"]


def test_links_are_resolved_from_the_page_and_never_leave_the_repository():
    text = "[a](../eventbus/y.py) [b](./c.md#top) [c](<d e.md>) [d](mailto:x@y.z) [e](#here) [f](../../up.md)"
    assert list(site.links("docs/page.md", text)) == ["eventbus/y.py", "docs/c.md", "docs/d e.md"]
