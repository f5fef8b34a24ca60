"""website/build.py without Sphinx: the landing page from the README, vendored tarballs, the offline check.

The rendered site itself is tested in headless Chromium by tests/browser/test_site.py (make test-site).
"""
from __future__ import annotations

import doctest
import io
import json
import re
import tarfile
import tomllib
from pathlib import Path

import pytest

from website import build

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_docstring_examples():
    failures, attempted = doctest.testmod(build, verbose=False)
    assert attempted and not failures


def test_readme_course_map_names_every_notebook_in_order():
    entries = build.course_map(README)
    notebooks = [f"notebooks/{path.name}" for path in sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))]
    assert [entry.path for entry in entries] == notebooks
    assert all(re.fullmatch(r"\d+ s", entry.run_time) for entry in entries), [e.run_time for e in entries]


def test_landing_page_carries_the_readme_map_setup_and_links():
    titles = {f"notebooks/{p.name}": build.notebook_title(p) for p in (ROOT / "notebooks").glob("[0-9]*.ipynb")}
    page = build.landing_page((ROOT / "website" / "index.md").read_text(encoding="utf-8"), README, titles)
    assert "{{" not in page
    for entry in build.course_map(README):
        row = next(line for line in page.splitlines() if line.startswith(f"| {entry.number} |"))
        assert f"]({entry.path})" in row and entry.run_time in row
    assert build.setup_commands(README) in page and "make lab" in page and "make test" in page
    assert "instructors" in page and "instructors.md" in page


def test_readme_setup_block_fits_the_landing_page():
    # about 90 characters fit a code line in the site's article column; longer ones were cut off
    block = build.setup_commands(README)
    assert max(len(line) for line in block.splitlines()) <= 90, block
    lines = [line for line in block.splitlines() if line.startswith("make ")]
    assert [line.split()[1] for line in lines] == ["test", "lab"], "make test first: make lab keeps running"


def test_site_extension_gives_figures_alt_text_from_their_titles():
    pytest.importorskip("docutils", reason="the site's packages (make site) are not installed here")
    import sys

    sys.path.insert(0, str(ROOT / "website" / "_ext"))
    import course_site

    failures, attempted = doctest.testmod(course_site, verbose=False)
    assert attempted and not failures
    assert course_site.figure_alt("ax.set_title('loss')\nfig.suptitle(f'{n} runs')", "1. A") == "Figure: loss"


def test_landing_page_refuses_a_map_naming_a_missing_notebook():
    readme = "## Course map\n\n| 09 | `notebooks/09_gone.ipynb` | nothing | 1 s |\n\n## Set up\n\n```bash\nmake lab\n```\n"
    with pytest.raises(build.SiteBuildError, match="09_gone"):
        build.landing_page("{{course_map}}", readme, titles={})


def test_readme_without_course_map_is_a_clear_error():
    with pytest.raises(build.SiteBuildError, match="Course map"):
        build.course_map("# nothing here\n")


def _tarball(tmp_path: Path, files: dict[str, bytes]) -> Path:
    path = tmp_path / "pkg-1.0.0.tgz"
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_unpack_selected_copies_matching_files_without_their_top_folder(tmp_path):
    tarball = _tarball(tmp_path, {"dist/embed.js": b"js", "dist/a.woff2": b"font", "dist/big.map": b"map",
                                  "es5/input/tex.js": b"tex", "LICENSE": b"BSD"})
    written = build.unpack_selected(tarball, ["dist/embed.js", "dist/*.woff2", "es5/input/**", "LICENSE"],
                                    tmp_path / "out")
    assert sorted(written) == ["LICENSE", "a.woff2", "embed.js", "input/tex.js"]
    assert (tmp_path / "out" / "input" / "tex.js").read_bytes() == b"tex"
    assert not (tmp_path / "out" / "big.map").exists()


def test_unpack_selected_refuses_a_pattern_that_matches_nothing(tmp_path):
    tarball = _tarball(tmp_path, {"dist/embed.js": b"js"})
    with pytest.raises(build.SiteBuildError, match="embed-amd"):
        build.unpack_selected(tarball, ["dist/embed-amd.js"], tmp_path / "out")


def test_fetch_package_refuses_a_tarball_whose_hash_differs(tmp_path):
    tarball = _tarball(tmp_path, {"dist/embed.js": b"js"})
    package = {"name": "pkg", "version": "1.0.0", "integrity": build.sri_sha512(tarball)}
    assert build.fetch_package(package, cache=tmp_path) == tarball  # cached and matching: used as is
    package["integrity"] = "sha512-" + "A" * 86 + "=="
    with pytest.raises(build.SiteBuildError, match="differs"):
        build.fetch_package(package, cache=tmp_path)
    assert not tarball.exists()  # a tampered download is removed, never unpacked


def test_vendor_spec_pins_exact_versions_with_sha512():
    spec = json.loads((ROOT / "website" / "vendor.json").read_text())
    names = {package["name"] for package in spec["packages"]}
    assert {"@jupyter-widgets/html-manager", "mathjax"} <= names
    for package in spec["packages"]:
        assert re.fullmatch(r"\d+\.\d+\.\d+", package["version"]), package
        assert re.fullmatch(r"sha512-[A-Za-z0-9+/]{86}==", package["integrity"]), package
        assert package["copy"] and package["target"]


def test_check_site_flags_external_and_missing_loads(tmp_path):
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "ok.js").write_text("")
    (tmp_path / "index.html").write_text(
        '<script src="_static/ok.js"></script><a href="https://example.org/">a link is fine</a>'
        '<img src="data:image/png;base64,AA">')
    assert build.check_site(tmp_path) == []
    (tmp_path / "page.html").write_text(
        '<link rel="stylesheet" href="https://cdn.example/t.css"><img src="_images/gone.png">'
        '<style>@font-face { src: url(//fonts.example/f.woff2) }</style>')
    problems = build.check_site(tmp_path)
    assert any("https://cdn.example/t.css" in p for p in problems)
    assert any("//fonts.example/f.woff2" in p for p in problems)
    assert any("_images/gone.png" in p and "not in the site" in p for p in problems)


def test_site_extra_is_pinned_and_never_asks_for_torch():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    site = project["optional-dependencies"]["site"]
    constraints = (ROOT / "constraints.txt").read_text().lower()
    for spec in site:
        name = re.split(r"[<>=!~\[ ]", spec)[0].lower()
        assert re.search(rf"^{re.escape(name)}==", constraints, re.MULTILINE), f"{name} is not pinned"
        assert "torch" not in name
