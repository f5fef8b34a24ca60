"""Sphinx extension of the course website: solutions collapsed, test markers and the Colab cell hidden,
panels labelled as snapshots, figures given alt text.

- Each notebook ends with ``### Solutions``. On the website everything in that section (its markdown,
  solution code and check outputs) is wrapped in one ``<details>`` element, closed, so a reader sees the
  exercises first and opens the worked answers with one click.
- The ``# NBVAL_…`` comment lines that tell the test runner which outputs to compare are dropped from the
  code shown (notebooks tidied by scripts/notebook_hygiene.py carry them as cell tags instead, which the
  page never shows): they mean nothing to a reader of a page.
- The Colab cell (tagged ``colab-setup``) is dropped: it acts only on Colab and does nothing on a page.
- Every cell that shows a panel gets a note under it: the panel is a stored snapshot whose controls do
  nothing here, and how to run it. (``_static/course-alt.js`` gives the images the panels draw an alt text.)
- Every figure gets an alt text instead of its hashed file name: its title where the cell's code gives one
  literally (``title="…"``, ``set_title("…")``, ``suptitle("…")``), else the section it illustrates.

Both happen on the parsed document at build time; the notebooks themselves are never edited.
"""
from __future__ import annotations

import re

from docutils import nodes

NBVAL_MARKER = re.compile(r"^\s*#\s*NBVAL_[A-Z_]+\s*$")
COLAB_TAG = "colab-setup"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
PANEL_NOTE = ("Stored snapshot: this panel shows the result of its last run, when the notebook was executed; "
              "its controls do nothing on this page. To change a setting and run it, open the notebook in "
              "JupyterLab (make lab) or Colab, run the cells above it, then press Run.")
# A title given as a string literal in the cell's code: title="…", .set_title("…"), suptitle("…"), plt.title("…").
TITLE_IN_CODE = re.compile(r"""(?:\btitle\s*=\s*|\.set_title\(\s*|\bsuptitle\(\s*|\bplt\.title\(\s*)f?(["'])(.+?)\1""")

SOLUTIONS_TITLE = "Solutions"
SUMMARY_TEXT = "Show the solutions (try the exercises first)"


class collapsed_solutions(nodes.General, nodes.Element):
    """A closed ``<details>`` around a section's body; its ``<summary>`` is SUMMARY_TEXT."""


def visit_collapsed_solutions_html(translator, node: collapsed_solutions) -> None:
    translator.body.append('<details class="course-solutions">\n'
                           f'<summary>{SUMMARY_TEXT}</summary>\n<div class="course-solutions-body">\n')


def depart_collapsed_solutions_html(translator, node: collapsed_solutions) -> None:
    translator.body.append("</div>\n</details>\n")


def collapse_solutions(app, doctree: nodes.document) -> None:
    """Move the body of every section titled "Solutions" (not its heading) into a closed details element."""
    for section in list(doctree.findall(nodes.section)):
        title = section.next_node(nodes.title)
        if title is None or title.parent is not section or title.astext().strip() != SOLUTIONS_TITLE:
            continue
        body = [child for child in section.children if child is not title]
        if not body:
            continue
        wrapper = collapsed_solutions()
        for child in body:
            section.remove(child)
        wrapper.extend(body)
        section.append(wrapper)


def drop_nbval_markers(app, doctree: nodes.document) -> None:
    """Remove ``# NBVAL_IGNORE_OUTPUT``-style lines (and the blank lines after them) from code cell sources."""
    for block in list(doctree.findall(nodes.literal_block)):
        parent = block.parent
        if not isinstance(parent, nodes.container) or "cell_input" not in parent.get("classes", []):
            continue
        lines = block.astext().splitlines()
        kept = [line for line in lines if not NBVAL_MARKER.match(line)]
        if len(kept) == len(lines):
            continue
        while kept and not kept[0].strip():
            kept.pop(0)
        text = "\n".join(kept)
        block.children = []
        block.append(nodes.Text(text))
        block.rawsource = text


def _code_cells(doctree: nodes.document):
    return [node for node in doctree.findall(nodes.container) if node.get("nb_element") == "cell_code"]


def drop_colab_cell(app, doctree: nodes.document) -> None:
    """Remove the Colab set-up cell (tag ``colab-setup``): it does nothing anywhere but on Colab."""
    for cell in _code_cells(doctree):
        if f"tag_{COLAB_TAG}" in cell.get("classes", []):
            cell.parent.remove(cell)


def note_panels(app, doctree: nodes.document) -> None:
    """Under every cell that shows a stored widget view, say that it is a snapshot and how to run it."""
    for cell in _code_cells(doctree):
        if any(WIDGET_VIEW in raw.astext() for raw in cell.findall(nodes.raw)):
            note = nodes.paragraph(PANEL_NOTE, PANEL_NOTE, classes=["course-panel-note"])
            cell.parent.insert(cell.parent.index(cell) + 1, note)


def figure_alt(code: str, section: str) -> str:
    """The alt text of a figure drawn by ``code`` in the section titled ``section``.

    Example:
        >>> figure_alt('draw_graph(loss, title="total_loss += x * x, 3 iterations")', "2. Loops")
        'Figure: total_loss += x * x, 3 iterations'
        >>> figure_alt("ax.plot(xs, ys)", "3. Memory")
        'Figure of section 3. Memory (stored output of the notebook)'
    """
    titles = [match[2] for match in TITLE_IN_CODE.finditer(code) if "{" not in match[2]]
    if titles:
        return "Figure: " + "; ".join(dict.fromkeys(titles))
    return f"Figure of section {section} (stored output of the notebook)"


def alt_from_titles(app, doctree: nodes.document) -> None:
    """Give every output image without an alt text one from its figure's title or its section."""
    for cell in _code_cells(doctree):
        images = [image for image in cell.findall(nodes.image) if not image.get("alt")]
        if not images:
            continue
        code = "\n".join(block.astext() for block in cell.findall(nodes.literal_block)
                         if "cell_input" in block.parent.get("classes", []))
        section = next((node for node in _ancestors(cell) if isinstance(node, nodes.section)), None)
        title = section.next_node(nodes.title).astext() if section is not None else "of this page"
        for image in images:
            image["alt"] = figure_alt(code, title)


def _ancestors(node: nodes.Node):
    while node.parent is not None:
        node = node.parent
        yield node


def setup(app):
    app.add_node(collapsed_solutions, html=(visit_collapsed_solutions_html, depart_collapsed_solutions_html))
    app.connect("doctree-read", drop_colab_cell)
    app.connect("doctree-read", alt_from_titles)  # before the markers go: they are not part of any title
    app.connect("doctree-read", note_panels)
    app.connect("doctree-read", collapse_solutions)
    app.connect("doctree-read", drop_nbval_markers)
    app.add_js_file("course-alt.js", defer="defer")
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
