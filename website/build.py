"""Build the course website from the stored, executed notebooks (``make site``).

    python website/build.py            # stage, fetch the vendored scripts once, run Sphinx, check the result
    python website/build.py --check    # only check an already built site

Steps:
1. **Stage** a source folder in ``build/site-src``: ``website/conf.py`` and its extension, the landing page
   (``website/index.md`` filled with the README's course map and set-up commands, so the two never
   disagree), ``INSTRUCTORS.md`` as ``instructors.md``, and copies of ``notebooks/[0-9]*.ipynb``, unchanged.
2. **Vendor** the widget manager and MathJax (``website/vendor.json``): each npm tarball is fetched once into
   ``build/site-vendor`` with ``npm pack``, checked against its pinned sha512, and unpacked into ``_static``.
3. **Sphinx** (myst-nb, execution off) writes the HTML to ``build/site``; the notebooks are never run.
4. **Check** every built page: no script, style sheet, font, image or frame is loaded from another host, and
   every local file a page loads exists.

Nothing here needs the network except ``npm pack`` the first time (the npm registry only).
"""
from __future__ import annotations

import argparse
import base64
import fnmatch
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parents[1]
WEBSITE = ROOT / "website"
STAGE = ROOT / "build" / "site-src"
OUT = ROOT / "build" / "site"
DOCTREES = ROOT / "build" / "site-doctrees"
VENDOR_CACHE = ROOT / "build" / "site-vendor"
NOTEBOOK_GLOB = "[0-9]*.ipynb"


class SiteBuildError(RuntimeError):
    """The site cannot be built or failed a check; the message says what to do."""


# --- the README as the one source of the course map and the set-up commands --------------------------

@dataclass(frozen=True)
class CourseEntry:
    """One row of the README's course map."""

    number: str
    path: str  # e.g. "notebooks/01_time_distributed.ipynb"
    topic: str
    run_time: str


def _section(readme: str, heading: str) -> str:
    """The text of the ``## heading…`` section of a markdown document, up to the next ``## ``."""
    match = re.search(rf"^## {re.escape(heading)}.*?$(.*?)(?=^## |\Z)", readme, re.MULTILINE | re.DOTALL)
    if not match:
        raise SiteBuildError(f"README.md has no '## {heading}' section; the landing page is built from it")
    return match.group(1)


def course_map(readme: str) -> list[CourseEntry]:
    """The rows of the README's ``## Course map`` table.

    Example:
        >>> readme = '''## Course map
        ...
        ... | # | notebook | topic | headless run time* |
        ... | --- | --- | --- | --- |
        ... | 01 | `notebooks/01_a.ipynb` | loops vs. reshape | 17 s |
        ...
        ... ## Next'''
        >>> course_map(readme)
        [CourseEntry(number='01', path='notebooks/01_a.ipynb', topic='loops vs. reshape', run_time='17 s')]
    """
    rows = []
    for line in _section(readme, "Course map").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not re.fullmatch(r"\d+", cells[0]):
            continue  # the header, the rule, prose
        rows.append(CourseEntry(cells[0], cells[1].strip("`"), cells[2], cells[3]))
    if not rows:
        raise SiteBuildError("README.md's course map has no notebook rows ('| 01 | `notebooks/…` | topic | time |')")
    return rows


def course_map_note(readme: str) -> str:
    r"""The footnote under the README's course map (how the run times were measured), or ``""``.

    Example:
        >>> course_map_note("## Course map\n\n| 01 | x | y | 1 s |\n\n\\* measured on a laptop.\n\nMore.\n")
        'Run times: measured on a laptop.'
    """
    match = re.search(r"^\\\*\s+(.*?)(?:\n\n|\Z)", _section(readme, "Course map"), re.MULTILINE | re.DOTALL)
    return f"Run times: {' '.join(match.group(1).split())}" if match else ""


def setup_commands(readme: str) -> str:
    """The first fenced code block (with its fences) of the README's ``## Set up`` section."""
    match = re.search(r"^```.*?^```$", _section(readme, "Set up"), re.MULTILINE | re.DOTALL)
    if not match:
        raise SiteBuildError("README.md's '## Set up' section has no ``` code block with the set-up commands")
    return match.group(0)


def notebook_title(path: Path) -> str:
    """The text of a notebook's first ``# `` heading (its page title on the site)."""
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    raise SiteBuildError(f"{path} has no '# title' heading in a markdown cell")


def landing_page(template: str, readme: str, titles: dict[str, str]) -> str:
    """Fill ``website/index.md``'s placeholders from the README and the notebooks' titles.

    ``{{course_map}}`` becomes a table whose first column links each notebook page, ``{{course_map_note}}``
    the README's note on the run times, ``{{setup_commands}}`` the README's set-up block, and
    ``{{toctree}}`` the site's navigation (the notebooks in course order, then the instructor's guide).
    """
    entries = course_map(readme)
    missing = [entry.path for entry in entries if entry.path not in titles]
    if missing:
        raise SiteBuildError(f"README.md's course map names notebooks that do not exist: {missing}")
    table = ["| # | notebook | what it measures | run time |", "| --- | --- | --- | --- |"]
    for entry in entries:
        table.append(f"| {entry.number} | [{titles[entry.path]}]({entry.path}) | {entry.topic} | {entry.run_time} |")
    toctree = ["```{toctree}", ":hidden:", ":caption: Notebooks", ""]
    toctree += [entry.path.removesuffix(".ipynb") for entry in entries]
    toctree += ["```", "", "```{toctree}", ":hidden:", ":caption: Teaching", "", "instructors", "```"]
    filled = (template.replace("{{course_map}}", "\n".join(table))
              .replace("{{course_map_note}}", course_map_note(readme))
              .replace("{{setup_commands}}", setup_commands(readme))
              .replace("{{toctree}}", "\n".join(toctree)))
    leftover = re.findall(r"\{\{\w+\}\}", filled)
    if leftover:
        raise SiteBuildError(f"website/index.md has unknown placeholders: {leftover}")
    return filled


# --- vendored scripts ------------------------------------------------------------------------------

def sri_sha512(path: Path) -> str:
    """A file's sha512 in the ``sha512-<base64>`` form npm prints as a package's ``dist.integrity``."""
    digest = hashlib.sha512(path.read_bytes()).digest()
    return "sha512-" + base64.b64encode(digest).decode()


def fetch_package(package: dict, cache: Path = VENDOR_CACHE) -> Path:
    """The package's tarball in ``cache``, fetched with ``npm pack`` if absent; its sha512 is checked."""
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / (package["name"].lstrip("@").replace("/", "-") + f"-{package['version']}.tgz")
    if not tarball.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise SiteBuildError(
                f"npm is needed once to fetch {package['name']}@{package['version']} (the site serves it itself): "
                "install Node.js (e.g. 'sudo apt-get install npm'), or copy the tarball into "
                f"{cache.relative_to(ROOT)}/ from a machine that has it")
        print(f"site: fetching {package['name']}@{package['version']} with npm pack", flush=True)
        subprocess.run([npm, "pack", "--silent", f"{package['name']}@{package['version']}"],
                       cwd=cache, check=True, stdout=subprocess.DEVNULL)
    actual = sri_sha512(tarball)
    if actual != package["integrity"]:
        tarball.unlink()
        raise SiteBuildError(f"{tarball.name}: sha512 {actual} differs from website/vendor.json's "
                             f"{package['integrity']}; the file was removed, nothing was used")
    return tarball


def unpack_selected(tarball: Path, patterns: list[str], dest: Path) -> list[str]:
    """Extract the files of ``tarball``'s ``package/`` matching ``patterns`` into ``dest``.

    ``dir/**`` matches everything below ``dir``; other patterns are fnmatch globs on the whole path. Every
    pattern must match a file. The files land directly in ``dest`` with the common top folder of each
    pattern removed (``dist/embed.js`` -> ``dest/embed.js``, ``es5/input/**`` -> ``dest/input/...``).
    Returns the written paths relative to ``dest``.
    """
    written, unmatched = [], set(patterns)
    with tarfile.open(tarball) as archive:
        for member in archive.getmembers():
            if not member.isfile() or not member.name.startswith("package/"):
                continue
            inner = member.name.removeprefix("package/")
            if ".." in Path(inner).parts or Path(inner).is_absolute():
                raise SiteBuildError(f"{tarball.name}: refusing the path {member.name!r} (outside the package)")
            for pattern in patterns:
                prefix = pattern.split("/")[0] + "/" if "/" in pattern else ""
                hit = (inner.startswith(pattern[:-2]) if pattern.endswith("/**")
                       else fnmatch.fnmatchcase(inner, pattern))
                if hit:
                    unmatched.discard(pattern)
                    relative = inner.removeprefix(prefix)
                    target = dest / relative
                    target.parent.mkdir(parents=True, exist_ok=True)
                    source = archive.extractfile(member)
                    assert source is not None
                    target.write_bytes(source.read())
                    written.append(relative)
                    break
    if unmatched:
        raise SiteBuildError(f"{tarball.name}: website/vendor.json's patterns {sorted(unmatched)} match no file")
    return written


def vendor(static: Path) -> None:
    """Fetch, check and copy every package of ``website/vendor.json`` into ``static/vendor/<target>``."""
    spec = json.loads((WEBSITE / "vendor.json").read_text())
    for package in spec["packages"]:
        dest = static / "vendor" / package["target"]
        shutil.rmtree(dest, ignore_errors=True)
        unpack_selected(fetch_package(package), package["copy"], dest)


# --- checks of the built HTML ------------------------------------------------------------------------

# Attributes through which a page loads something by itself (a plain <a href> is only a link to follow).
_LOADING = re.compile(
    r"<(?P<tag>script|img|iframe|source|video|audio|embed)\b[^>]*?\bsrc\s*=\s*[\"'](?P<src>[^\"']+)[\"']"
    r"|<link\b(?=[^>]*\brel\s*=\s*[\"'](?:stylesheet|preload|modulepreload|icon|shortcut icon|manifest)[\"'])"
    r"[^>]*?\bhref\s*=\s*[\"'](?P<href>[^\"']+)[\"']"
    r"|url\(\s*[\"']?(?P<css>[^\"')]+)[\"']?\s*\)"
    r"|@import\s+[\"'](?P<imp>[^\"']+)[\"']",
    re.IGNORECASE)


def loaded_urls(html: str) -> list[str]:
    """The URLs a page or style sheet loads by itself: scripts, style sheets, images, frames, CSS url()s.

    Example:
        >>> loaded_urls('<script src="_static/a.js"></script><a href="https://x.org">x</a>'
        ...             '<link rel="stylesheet" href="https://cdn.example/t.css"><img src="i.png">')
        ['_static/a.js', 'https://cdn.example/t.css', 'i.png']
    """
    urls = []
    for match in _LOADING.finditer(html):
        url = next(group for group in (match.group("src"), match.group("href"), match.group("css"),
                                       match.group("imp")) if group)
        urls.append(url.strip())
    return urls


def is_external(url: str) -> bool:
    """Whether loading ``url`` leaves the site (any scheme or host; ``data:`` and relative paths stay).

    Example:
        >>> [is_external(u) for u in ("https://cdn.x/a.js", "//cdn.x/a.js", "_static/a.js", "data:image/png;base64,AA")]
        [True, True, False, False]
    """
    parts = urlsplit(url)
    return bool(parts.netloc) or parts.scheme not in ("", "data", "blob", "about")


def check_site(out: Path = OUT) -> list[str]:
    """Problems in a built site: external loads, and local files a page or style sheet loads that are missing."""
    problems = []
    files = sorted(out.rglob("*.html")) + sorted(out.rglob("*.css"))
    if not (out / "index.html").exists():
        return [f"{out / 'index.html'} does not exist: build the site first (make site)"]
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        for url in loaded_urls(text):
            if is_external(url):
                problems.append(f"{path.relative_to(out)} loads {url} from another host")
                continue
            local = urlsplit(url).path
            if not local or url.startswith(("data:", "#")) or "{" in url:
                continue
            if not (path.parent / unquote(local)).exists():
                problems.append(f"{path.relative_to(out)} loads {url}, which is not in the site")
    return problems


# --- build -------------------------------------------------------------------------------------------

def stage(stage_dir: Path = STAGE) -> list[Path]:
    """Write the Sphinx source folder; returns the staged notebooks."""
    shutil.rmtree(stage_dir, ignore_errors=True)
    stage_dir.mkdir(parents=True)
    shutil.copy2(WEBSITE / "conf.py", stage_dir / "conf.py")
    shutil.copytree(WEBSITE / "_ext", stage_dir / "_ext", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(WEBSITE / "_static", stage_dir / "_static")
    shutil.copy2(ROOT / "INSTRUCTORS.md", stage_dir / "instructors.md")
    notebooks = sorted((ROOT / "notebooks").glob(NOTEBOOK_GLOB))
    if not notebooks:
        raise SiteBuildError("no notebooks/[0-9]*.ipynb to build the site from")
    (stage_dir / "notebooks").mkdir()
    for notebook in notebooks:
        shutil.copy2(notebook, stage_dir / "notebooks" / notebook.name)
    titles = {f"notebooks/{nb.name}": notebook_title(nb) for nb in notebooks}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (stage_dir / "index.md").write_text(
        landing_page((WEBSITE / "index.md").read_text(encoding="utf-8"), readme, titles), encoding="utf-8")
    vendor(stage_dir / "_static")
    return notebooks


def build(jobs: str = "2") -> None:
    start = time.monotonic()
    notebooks = stage()
    shutil.rmtree(OUT, ignore_errors=True)
    warnings = ROOT / "build" / "site-warnings.log"
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-E", "-q", "-j", jobs, "-d", str(DOCTREES),
               "-w", str(warnings), str(STAGE), str(OUT)]
    print(f"site: rendering {len(notebooks)} stored notebooks with Sphinx (no execution)", flush=True)
    subprocess.run(command, check=True)
    problems = check_site(OUT)
    if problems:
        raise SiteBuildError("the built site fails its offline check:\n  " + "\n  ".join(problems))
    count = warnings.read_text().count("WARNING") if warnings.exists() else 0
    print(f"site: built {OUT.relative_to(ROOT)}/index.html in {time.monotonic() - start:.0f} s; "
          f"no page loads anything from another host; {count} Sphinx warnings"
          + (f" (see {warnings.relative_to(ROOT)})" if count else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check an already built site")
    parser.add_argument("-j", "--jobs", default="2", help="Sphinx parallel jobs (default 2)")
    args = parser.parse_args(argv)
    try:
        if args.check:
            problems = check_site(OUT)
            if problems:
                raise SiteBuildError("\n  ".join(["the built site fails its offline check:", *problems]))
            print(f"site: {OUT.relative_to(ROOT)} passes the offline check")
        else:
            build(args.jobs)
    except SiteBuildError as error:
        print(f"site: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
