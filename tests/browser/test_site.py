"""The course website (``make site``), opened in headless Chromium: ``make test-site``.

The built folder ``build/site`` is served on a free loopback port (``python -m http.server``), and every
request to any other address is recorded and refused, so a page that needs the internet fails here
instead of quietly working on a connected laptop. Checked:

- every page loads with no console error and no uncaught script error, and every image on it decodes;
- each notebook page shows its panels: every stored widget view renders (controls and stored output), none
  shows a widget error, and the page's math is typeset by the site's own MathJax;
- code cells show no ``# NBVAL_…`` test markers (the site drops them) and no Colab set-up cell;
- every cell showing a panel has a note under it saying it is a stored snapshot and how to run it;
- every image, those the panels draw included, has an alt text that is not a file name;
- the landing page's set-up commands are whole on the page: no line cut off or scrolled sideways;
- each notebook page folds its solutions: one closed ``details.course-solutions`` whose body is hidden
  until its summary is clicked (and which then shows the solutions' passing checks, ✅);
- the landing page links every notebook page and the instructor's guide, and every link between pages
  (with its ``#anchor``) leads to an existing page and element;
- no request ever leaves the machine (and the guard that refuses them is itself shown to work).

Screenshots go to ``test-artifacts/site/``. Same Chromium setup as ``make test-browser`` (the ``browser``
fixture of ``conftest.py``); marked ``site`` so ``make test-browser`` leaves it to ``make test-site``.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "build" / "site"
ARTIFACTS = ROOT / "test-artifacts" / "site"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_FAILURES = ("Error displaying widget", "model not found", "Failed to load model class",
                   "Loading widget...")
RENDER_TIMEOUT = 30_000  # ms for the widget manager and MathJax to finish on a loaded 2-core machine
PAGE_TIMEOUT = 60_000  # ms for any one page action (a notebook page is a few MB of HTML)

pytestmark = [pytest.mark.browser, pytest.mark.site]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def site_url():
    if not (SITE / "index.html").exists():
        pytest.fail(f"{SITE.relative_to(ROOT)}/index.html does not exist: build the site first (make site)")
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                               "--directory", str(SITE)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url, timeout=2).close()
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the site's HTTP server did not answer on {url}")
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


class Visitor:
    """One browser context on the site; requests to any other origin are recorded and aborted."""

    def __init__(self, browser, site_url: str):
        self.site_url = site_url
        self.origin = site_url.rstrip("/")
        self.outside: list[str] = []
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
        self.context.set_default_timeout(PAGE_TIMEOUT)
        self.context.route("**/*", self._route)

    def _route(self, route) -> None:
        url = route.request.url
        if url.startswith(self.origin + "/") or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def open(self, path: str):
        """Load ``path``; returns (page, problems so far: console errors, page errors, failed requests)."""
        page = self.context.new_page()
        problems: list[str] = []
        page.on("console", lambda message: problems.append(f"console {message.type}: {message.text}")
                if message.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(f"uncaught script error: {error}"))
        page.on("response", lambda response: problems.append(f"HTTP {response.status} for {response.url}")
                if response.status >= 400 else None)
        page.on("requestfailed", lambda request: problems.append(f"request failed: {request.url}")
                if request.url.startswith(self.origin) else None)
        # "load": every script, style sheet, font and image of the page has arrived (what renders later,
        # the panels, each test waits for explicitly).
        page.goto(self.site_url + path, wait_until="load")
        return page, problems


@pytest.fixture(scope="module")
def visitor(browser, site_url):
    session = Visitor(browser, site_url)
    yield session
    session.context.close()


def _pages() -> list[str]:
    return sorted(path.relative_to(SITE).as_posix() for path in SITE.rglob("*.html")
                  if not path.relative_to(SITE).as_posix().startswith(("_static/", "_sources/")))


def _page_name(path: str) -> str:
    return path.replace(".html", "").replace("/", "_")


def _screenshot(page, path: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{_page_name(path)}.png"), full_page=True)


def _panel_cells(notebook: Path) -> int:
    cells = json.loads(notebook.read_text())["cells"]
    return sum(any(WIDGET_VIEW in output.get("data", {}) for output in cell.get("outputs", []))
               for cell in cells if cell["cell_type"] == "code")


def _stored_views(notebook: Path) -> int:
    cells = json.loads(notebook.read_text())["cells"]
    return sum(WIDGET_VIEW in output.get("data", {}) for cell in cells if cell["cell_type"] == "code"
               for output in cell.get("outputs", []))


JS_IMAGES_WITHOUT_ALT = """() => [...document.images].filter(im => !im.alt.trim() || /\\.(png|jpe?g|svg)$/i.test(im.alt))
                                                      .map(im => (im.getAttribute('src') || '').slice(0, 80))"""
JS_BROKEN_IMAGES = """() => [...document.images].filter(im => !(im.complete && im.naturalWidth > 0))
                                                 .map(im => im.getAttribute('src'))"""
# Each widget view script of the page, and what the widget manager rendered just before it.
JS_VIEWS = f"""() => [...document.querySelectorAll('script[type="{WIDGET_VIEW}"]')].map(script => {{
    const area = script.previousElementSibling;
    const rendered = area && area.classList.contains('widget-subarea') ? area : null;
    return {{
        rendered: !!rendered,
        controls: rendered ? rendered.querySelectorAll('button, input, select').length : 0,
        output: rendered ? [...rendered.querySelectorAll('.widget-output')]
                               .map(o => o.innerText.trim().length + o.querySelectorAll('img').length)
                               .reduce((a, b) => a + b, 0) : 0,
        text: rendered ? rendered.innerText.slice(0, 4000) : '',
    }};
}})"""


@pytest.mark.parametrize("path", _pages())
def test_page_loads_cleanly_with_every_image(visitor, path):
    page, problems = visitor.open(path)
    try:
        # The widget manager draws the panels (and their images) after the load event: wait for them.
        page.wait_for_function(f"() => ({JS_VIEWS})().every(view => view.rendered) && "
                               "[...document.images].every(im => im.complete)", timeout=RENDER_TIMEOUT)
        page.wait_for_timeout(500)  # late console errors from deferred scripts
        broken = page.evaluate(JS_BROKEN_IMAGES)
        without_alt = page.evaluate(JS_IMAGES_WITHOUT_ALT)
        _screenshot(page, path)
    finally:
        page.close()
    assert not broken, f"{path}: images that did not load: {broken}"
    assert not without_alt, f"{path}: images without an alt text (or with a file name as one): {without_alt}"
    assert not problems, f"{path}: " + "\n".join(problems)
    assert not visitor.outside, f"requests that tried to leave the machine: {visitor.outside}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_notebook_page_shows_panels_math_and_folded_solutions(visitor, notebook):
    path = f"notebooks/{notebook.stem}.html"
    page, problems = visitor.open(path)
    try:
        expected = _stored_views(notebook)
        assert expected, f"{notebook.name} stores no widget view: execute it with store_widget_state (make execute)"
        page.wait_for_function(f"() => ({JS_VIEWS})().every(view => view.rendered)", timeout=RENDER_TIMEOUT)
        views = page.evaluate(JS_VIEWS)
        assert len(views) == expected, f"{path}: {len(views)} widget views on the page, {expected} stored"
        for number, view in enumerate(views, 1):
            assert view["controls"], f"{path}: panel {number} rendered without controls: {view['text'][:300]!r}"
            assert view["output"], f"{path}: panel {number} shows no stored output: {view['text'][:300]!r}"
            failures = [text for text in WIDGET_FAILURES if text in view["text"]]
            assert not failures, f"{path}: panel {number} shows {failures}"
        if page.locator(".math").count():
            page.wait_for_selector("mjx-container", timeout=RENDER_TIMEOUT)
            raw = page.evaluate("() => [...document.querySelectorAll('span.math, div.math')]"
                                ".filter(el => !el.querySelector('mjx-container')).length")
            assert raw == 0, f"{path}: {raw} math elements were not typeset"

        assert "NBVAL_" not in page.locator("article").inner_text(), f"{path}: shows nbval test markers"
        assert page.locator(".tag_colab-setup").count() == 0, f"{path}: shows the Colab-only set-up cell"
        notes = page.locator("p.course-panel-note")
        assert notes.count() == _panel_cells(notebook), f"{path}: {notes.count()} snapshot notes under panels"
        assert "stored snapshot" in notes.first.inner_text().lower() and "make lab" in notes.first.inner_text()

        solutions = page.locator("details.course-solutions")
        assert solutions.count() == 1, f"{path}: {solutions.count()} folded solution blocks, expected 1"
        body = solutions.locator(".course-solutions-body")
        assert not solutions.evaluate("el => el.open"), f"{path}: the solutions are open on load"
        assert not body.is_visible(), f"{path}: the solutions are visible before they are asked for"
        assert page.get_by_role("heading", name="Exercises").first.is_visible(), f"{path}: exercises are hidden"
        solutions.locator("summary").click()
        body.wait_for(state="visible", timeout=5_000)
        assert "✅" in body.inner_text(), f"{path}: the opened solutions show no passing check (✅)"
        _screenshot(page, f"{path}.solutions-open")
    finally:
        page.close()
    assert not problems, f"{path}: " + "\n".join(problems)
    assert not visitor.outside, f"requests that tried to leave the machine: {visitor.outside}"


@pytest.mark.parametrize("width", [1280, 760])
def test_landing_setup_commands_are_whole(browser, site_url, width):
    """The set-up block wraps: no line is cut off or needs sideways scrolling, on a laptop or a narrow window."""
    guard = Visitor(browser, site_url)
    try:
        page = guard.context.new_page()
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(site_url + "index.html", wait_until="load")
        block = page.locator("article div.highlight pre", has_text="make lab").first
        sizes = block.evaluate("el => [el.scrollWidth, el.clientWidth]")
        text = block.inner_text()
    finally:
        guard.context.close()
    assert sizes[0] <= sizes[1], f"the set-up block scrolls sideways at {width} px: {sizes}"
    assert "make test" in text and "make lab" in text


def test_links_between_pages_work(visitor, site_url):
    """Crawl from the landing page: every local link reaches a page (and its #anchor); no page is orphaned."""
    page, problems = visitor.open("index.html")
    try:
        landing = {urldefrag(urljoin(page.url, href))[0] for href in
                   page.eval_on_selector_all("article a[href]", "els => els.map(a => a.getAttribute('href'))")}
        for target in ["instructors.html"] + [f"notebooks/{nb.stem}.html" for nb in NOTEBOOKS]:
            assert site_url + target in landing, f"the landing page does not link {target}"

        seen, queue, broken, ids = set(), deque([site_url + "index.html"]), [], {}
        while queue:
            url = queue.popleft()
            if url in seen:
                continue
            seen.add(url)
            page.goto(url, wait_until="domcontentloaded")
            ids[url] = set(page.eval_on_selector_all("[id]", "els => els.map(e => e.id)"))
            for href in page.eval_on_selector_all("a[href]", "els => els.map(a => a.getAttribute('href'))"):
                absolute = urljoin(url, href)
                if not absolute.startswith(site_url):
                    continue  # a link out is the reader's choice, not a load
                target, fragment = urldefrag(absolute)
                if target.endswith("/"):
                    target += "index.html"
                if urlsplit(target).path.endswith(".html"):
                    queue.append(target)
                    if fragment:
                        broken.append((url, href, target, fragment))
                else:  # a download (.ipynb) or another file: it must exist
                    response = page.request.get(target)
                    if not response.ok:
                        problems.append(f"{url}: link {href} answers HTTP {response.status}")
        missing = [f"{url}: link {href} points at #{fragment}, which {target} does not have"
                   for url, href, target, fragment in broken if target in ids and fragment not in ids[target]]
        built = {site_url + path for path in _pages()}
        orphans = sorted(built - seen - {site_url + "genindex.html", site_url + "search.html"})
    finally:
        page.close()
    assert not missing, "\n".join(missing)
    assert not problems, "\n".join(problems)
    assert not (seen - built - {site_url}), f"links to pages that were not built: {sorted(seen - built)}"
    assert not orphans, f"pages no link reaches: {orphans}"
    assert not visitor.outside, f"requests that tried to leave the machine: {visitor.outside}"


def test_the_guard_refuses_requests_to_other_hosts(browser, site_url):
    """The offline check is not vacuous: a page that loads from another host is caught."""
    guard = Visitor(browser, site_url)
    try:
        page = guard.context.new_page()
        page.goto(site_url + "index.html", wait_until="load")
        page.evaluate("() => new Promise(done => { const im = new Image(); im.onerror = im.onload = done; "
                      "im.src = 'https://example.org/pixel.png'; })")
    finally:
        guard.context.close()
    assert guard.outside == ["https://example.org/pixel.png"]
