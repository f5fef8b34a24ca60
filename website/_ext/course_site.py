"""Sphinx extension of the course website: solutions collapsed, test markers hidden.

- Each notebook ends with ``### Solutions``. On the website everything in that section (its markdown,
  solution code and check outputs) is wrapped in one ``<details>`` element, closed, so a reader sees the
  exercises first and opens the worked answers with one click.
- The ``# NBVAL_…`` comment lines that tell the test runner which outputs to compare are dropped from the
  code shown: they mean nothing to a reader of a page.

Both happen on the parsed document at build time; the notebooks themselves are never edited.
"""
from __future__ import annotations

import re

from docutils import nodes

NBVAL_MARKER = re.compile(r"^\s*#\s*NBVAL_[A-Z_]+\s*$")

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


def setup(app):
    app.add_node(collapsed_solutions, html=(visit_collapsed_solutions_html, depart_collapsed_solutions_html))
    app.connect("doctree-read", collapse_solutions)
    app.connect("doctree-read", drop_nbval_markers)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
