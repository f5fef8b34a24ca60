"""LICENSE, CITATION.cff, Binder's postBuild and the README's Binder/Colab links agree with pyproject.toml."""
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
sys.path.insert(0, str(ROOT / "scripts"))
import colab_cell  # noqa: E402


def test_license_is_the_mit_text_with_the_contributors_copyright():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 RNN Loops Lab contributors" in text
    assert "Permission is hereby granted, free of charge" in text and 'THE SOFTWARE IS PROVIDED "AS IS"' in text
    assert PROJECT["project"]["license"] == {"text": "MIT"}


def test_citation_matches_the_project():
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["type"] == "software"
    assert citation["version"] == PROJECT["project"]["version"]
    assert citation["license"] == "MIT"
    assert citation["repository-code"] == PROJECT["project"]["urls"]["Repository"]
    assert citation["authors"] == [{"name": "RNN Loops Lab contributors"}]
    assert citation["title"] and citation["message"]


def test_post_build_installs_the_course_jupyterlab_settings(tmp_path):
    post_build = ROOT / "postBuild"
    assert os.access(post_build, os.X_OK), "repo2docker runs postBuild only when it is executable"
    run = subprocess.run([post_build], env={**os.environ, "NB_PYTHON_PREFIX": str(tmp_path)}, cwd=tmp_path,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    installed = tmp_path / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    assert installed.read_text() == (ROOT / "lab-overrides.json").read_text()


def test_binder_environment_installs_the_course():
    pip = next(d["pip"] for d in yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
               if isinstance(d, dict))
    # a local requirement makes repo2docker copy the whole repository before installing the environment
    assert "-e .[lab,test]" in pip and "-c constraints.txt" in pip


def test_readme_links_use_the_repository_and_tag_of_pyproject():
    readme = (ROOT / "README.md").read_text()
    owner_repo = colab_cell.repository_url().split("github.com/", 1)[1]
    assert f"https://mybinder.org/v2/gh/{owner_repo}/{colab_cell.release_tag()}?urlpath=lab/tree/notebooks" in readme
    assert colab_cell.colab_url("01_time_distributed.ipynb") in readme
    assert f"release tag (`{colab_cell.release_tag()}`)" in readme


PYTHON_POLICY = ("3.11 made the stored outputs, 3.12 is tested too. 3.13 and newer are not tested: `make` never "
                 "picks them and warns if you point it at one")


@pytest.mark.parametrize("page", ["README.md", "INSTRUCTORS.md", "website/index.md"])
def test_one_python_policy_everywhere(page):
    text = " ".join((ROOT / page).read_text().split())
    assert PYTHON_POLICY in text, f"{page} must state the Python policy in the same words as the README"
    assert "3.11 is required" not in text and "requires 3.11" not in text


def test_instructors_guide_quotes_messages_make_really_prints():
    guide = (ROOT / "INSTRUCTORS.md").read_text()
    makefile, finder = (ROOT / "Makefile").read_text(), (ROOT / "scripts" / "find-python.sh").read_text()
    assert "`No Python 3.11 or 3.12 found`" in guide and "No Python 3.11 or 3.12 found" in makefile
    assert "`warning: Python 3.13 … is not tested`" in guide and '"warning: Python $version ($2) is not tested' in finder


def test_readme_leads_with_the_course_and_keeps_maintainer_material_out():
    readme = (ROOT / "README.md").read_text()
    headings = [line for line in readme.splitlines() if line.startswith("## ")]
    assert headings[:2] == ["## Course map", "## Set up: two commands"]
    for maintainer_topic in ("make test-compat", "make bench", "compat-matrix", "make test-browser"):
        assert maintainer_topic not in readme, maintainer_topic
    contributing = (ROOT / "CONTRIBUTING.md").read_text()
    for topic in ("## Tested versions", "## Editing a notebook", "## Course website", "## Publishing a release",
                  "make bench", "git push origin v0.1.0"):
        assert topic in contributing, topic


def test_changelog_describes_the_version_of_pyproject():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## {PROJECT['project']['version']} " in changelog
