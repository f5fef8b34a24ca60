"""Autograd graphs: statistics, and drawings with torchviz (or matplotlib when ``dot`` is missing)."""
from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import warnings
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import matplotlib
import torch

from helpers.validation import LabInputError, one_line, require_mapping, require_positive_int, require_tensor

DOT_HINT = ("graphviz's 'dot' program is not installed, so this is a simplified drawing. For the full torchviz "
            "view install graphviz ('sudo apt-get install graphviz', 'brew install graphviz' or "
            "'conda install -c conda-forge graphviz') and restart the kernel.")
DEFAULT_MAX_NODES = 120
MAX_DRAWN_NODES = 2000  # the picture is unreadable beyond this
MAX_SIDE_BY_SIDE = 6
# graphviz's layout grows steeply with an RNN loop's graph (measured: 1.7 s at 122 nodes, 36-71 s at 182,
# over 300 s at 242), so dot gets this long before the summary is shown instead
LAYOUT_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class GraphStats:
    """Size of an autograd graph: distinct nodes, their types, and the longest root-to-leaf path."""

    nodes: int
    node_types: Counter = field(compare=False)
    depth: int

    def __str__(self) -> str:
        kinds = ", ".join(f"{name}×{count}" for name, count in sorted(self.node_types.items()))
        return f"{self.nodes} nodes, depth {self.depth}: {kinds}"


def _root(tensor: object, name: str) -> torch.autograd.graph.Node:
    tensor = require_tensor(tensor, name)
    if tensor.grad_fn is None:
        raise LabInputError(f"{name} has no autograd history (grad_fn is None). Compute it from a tensor with "
                            "requires_grad=True, outside torch.no_grad(), and pass the result, not a leaf.")
    return tensor.grad_fn


def _walk(root: torch.autograd.graph.Node) -> tuple[list, dict, dict]:
    """Nodes in discovery order, their children, and each node's depth (longest path from root)."""
    order, children = [], {}
    stack = [root]
    while stack:
        node = stack.pop()
        if node in children:
            continue
        kids = [child for child, _ in node.next_functions if child is not None]
        children[node] = kids
        order.append(node)
        stack.extend(kids)
    depth = {root: 1}
    for node in _topological(root, children):
        for child in children[node]:
            depth[child] = max(depth.get(child, 0), depth[node] + 1)
    return order, children, depth


def _topological(root, children) -> list:
    seen, post = set(), []
    stack = [(root, iter(children[root]))]
    seen.add(root)
    while stack:
        node, it = stack[-1]
        child = next(it, None)
        if child is None:
            stack.pop()
            post.append(node)
        elif child not in seen:
            seen.add(child)
            stack.append((child, iter(children[child])))
    return post[::-1]


def graph_stats(tensor: torch.Tensor) -> GraphStats:
    """Count the autograd nodes behind ``tensor``.

    Args:
        tensor: a result with a ``grad_fn`` (e.g. a loss).

    Returns:
        ``GraphStats`` with the number of distinct nodes (``AccumulateGrad`` leaves included),
        a ``Counter`` of node type names and the depth (nodes on the longest root-to-leaf path).

    Example:
        >>> x = torch.ones(2, requires_grad=True)
        >>> graph_stats((x * 2).sum()).nodes   # SumBackward0 -> MulBackward0 -> AccumulateGrad
        3
    """
    order, _, depth = _walk(_root(tensor, "tensor"))
    return GraphStats(nodes=len(order), node_types=Counter(type(n).__name__ for n in order),
                      depth=max(depth.values()))


def dot_available() -> bool:
    """Whether graphviz's ``dot`` program is on the PATH.

    Example:
        >>> isinstance(dot_available(), bool)
        True
    """
    return shutil.which("dot") is not None


class LayoutTooSlow(Exception):
    """graphviz did not lay the graph out within ``LAYOUT_TIMEOUT_S``."""


def _torchviz_png(tensor: torch.Tensor, params: Mapping[str, torch.Tensor] | None) -> bytes:
    with warnings.catch_warnings():  # torchviz 0.0.3 compares versions with distutils; not the learner's concern
        warnings.simplefilter("ignore", DeprecationWarning)
        from torchviz import make_dot

        graph = make_dot(tensor, params=dict(params or {}))
    graph.graph_attr.update(size="7,7", dpi="80")
    # dot run here rather than through graph.pipe, which has no time limit
    posix = os.name == "posix"
    process = subprocess.Popen([shutil.which("dot") or "dot", "-Tpng"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=posix)
    try:
        png, errors = process.communicate(graph.source.encode("utf-8"), timeout=LAYOUT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        if posix:  # the whole group: a wrapper script around dot must not leave dot running
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
        process.communicate()
        raise LayoutTooSlow from None
    if process.returncode != 0 or not png:
        raise RuntimeError(one_line(errors.decode("utf-8", "replace") or f"dot exited with {process.returncode}"))
    return png


def _figure_png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    matplotlib.pyplot.close(fig)
    return buffer.getvalue()


def _matplotlib_png(tensor: torch.Tensor, title: str) -> bytes:
    import matplotlib.pyplot as plt

    order, children, depth = _walk(tensor.grad_fn)
    levels: dict[int, list] = {}
    for node in order:
        levels.setdefault(depth[node], []).append(node)
    widest = max(len(nodes) for nodes in levels.values())
    fig, ax = plt.subplots(figsize=(min(2 + 1.6 * widest, 12), min(1 + 0.8 * len(levels), 10)))
    # Same orientation as torchviz: leaves on top, the output at the bottom, arrows along the forward pass.
    deepest = max(levels)
    position = {}
    for level, nodes in levels.items():
        for i, node in enumerate(nodes):
            position[node] = ((i + 0.5) / len(nodes), level - deepest)
    for node, kids in children.items():
        for child in kids:
            (x0, y0), (x1, y1) = position[child], position[node]
            ax.annotate("", xy=(x1, y1 + 0.15), xytext=(x0, y0 - 0.15),
                        arrowprops={"arrowstyle": "->", "color": "0.5"})
    for node, (x, y) in position.items():
        name = type(node).__name__
        colour = "lightblue" if name == "AccumulateGrad" else "lightgrey"
        ax.text(x, y, name, ha="center", va="center", fontsize=8,
                bbox={"boxstyle": "round", "facecolor": colour})
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(1 - deepest - 0.7, 0.7)
    ax.axis("off")
    ax.set_title(title + "\n(simplified drawing: arrows follow the forward pass as in torchviz; leaves in blue)", fontsize=9,
                 parse_math=False)  # a "$" in a learner's title is text, not the start of a formula
    return _figure_png(fig)


def _summary_png(stats: GraphStats, title: str, reason: str) -> bytes:
    import matplotlib.pyplot as plt

    names, counts = zip(*stats.node_types.most_common(), strict=True)
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(names) + 1.2))
    ax.barh(names, counts, color="tab:blue")
    ax.invert_yaxis()
    ax.set_xlabel("number of nodes")
    ax.set_title(f"{title}: {stats.nodes} nodes ({reason}); node types", fontsize=9, parse_math=False)
    return _figure_png(fig)


@dataclass
class GraphView:
    """A rendered autograd graph; displays as PNG in a notebook.

    Attributes:
        png: the image bytes.
        stats: the graph's ``GraphStats``.
        backend: ``"graphviz"``, ``"matplotlib"`` (no ``dot``) or ``"summary"`` (over the size cap).
        hint: a one-line note for the learner, empty when there is nothing to say.
    """

    png: bytes
    stats: GraphStats
    backend: str
    hint: str = ""

    def _repr_png_(self) -> bytes:
        return self.png

    def __repr__(self) -> str:
        text = f"<autograd graph: {self.stats}; drawn with {self.backend}>"
        return f"{text}\n{self.hint}" if self.hint else text


def draw_graph(tensor: torch.Tensor, params: Mapping[str, torch.Tensor] | None = None,
               title: str = "autograd graph", max_nodes: int = DEFAULT_MAX_NODES) -> GraphView:
    """Render the autograd graph behind ``tensor`` as a PNG.

    Uses torchviz's ``make_dot`` when graphviz's ``dot`` program is installed; otherwise draws the
    same nodes with matplotlib and adds a hint on installing graphviz. Graphs with more than
    ``max_nodes`` nodes, and graphs graphviz cannot lay out within ``LAYOUT_TIMEOUT_S``, are summarised as
    a bar chart of node types instead, with a one-line hint saying which and what to do.

    Args:
        tensor: a result with a ``grad_fn``.
        params: optional ``{name: parameter}`` so torchviz labels leaves (e.g. ``dict(model.named_parameters())``).
        title: a caption for the fallback drawings (plain text: ``$`` is not mathtext).
        max_nodes: the size cap, at most ``MAX_DRAWN_NODES``.

    Returns:
        A ``GraphView`` (shown as an image when it is the last expression in a cell).

    Example:
        >>> x = torch.ones(3, requires_grad=True)
        >>> draw_graph((x * 2).sum()).stats.nodes
        3
    """
    if params is not None and not isinstance(params, Mapping):
        raise LabInputError("params must be a mapping of names to tensors, e.g. dict(model.named_parameters()).")
    for pname, value in (params or {}).items():
        if not isinstance(value, torch.Tensor):
            raise LabInputError(f"params[{pname!r}] is a {type(value).__name__}; params maps names to tensors, "
                                "e.g. dict(model.named_parameters()).")
    max_nodes = require_positive_int(max_nodes, "max_nodes", maximum=MAX_DRAWN_NODES,
                                     reason="(graphviz takes minutes on larger graphs and the drawing is unreadable)")
    if not isinstance(title, str):
        raise LabInputError(f"title must be a string; got {type(title).__name__}.")
    stats = graph_stats(tensor)
    if stats.nodes > max_nodes:
        if stats.nodes > MAX_DRAWN_NODES:
            hint = (f"The graph has {stats.nodes} nodes, over the {MAX_DRAWN_NODES:,} that can be drawn readably; "
                    "this summary of its node types is the whole view.")
        else:
            hint = (f"The graph has {stats.nodes} nodes; draw_graph(..., max_nodes={stats.nodes}) tries to draw it "
                    f"in full (graphviz gets {LAYOUT_TIMEOUT_S:g} s to lay it out, then this summary is shown).")
        return GraphView(_summary_png(stats, title, f"over max_nodes={max_nodes}"), stats, "summary", hint)
    if dot_available():
        try:
            return GraphView(_torchviz_png(tensor, params), stats, "graphviz")
        except LayoutTooSlow:
            return GraphView(_summary_png(stats, title, f"graphviz's layout took over {LAYOUT_TIMEOUT_S:g} s"), stats,
                             "summary", f"graphviz could not lay out {stats.nodes} nodes within {LAYOUT_TIMEOUT_S:g} s, "
                             "so this is a summary of the node types; a shorter sequence draws in full.")
        except Exception as error:  # a broken graphviz install must not stop the lesson
            return GraphView(_matplotlib_png(tensor, title), stats, "matplotlib",
                             f"graphviz failed ({one_line(f'{type(error).__name__}: {error}', 200)}); "
                             "showing a simplified drawing.")
    return GraphView(_matplotlib_png(tensor, title), stats, "matplotlib", DOT_HINT)


def side_by_side(views: Mapping[str, GraphView]) -> bytes:
    """Combine several ``GraphView`` images into one PNG with a caption each (node counts included).

    Example:
        >>> x = torch.ones(2, requires_grad=True)
        >>> side_by_side({"a": draw_graph(x.sum()), "b": draw_graph((x * x).sum())})[:4]
        b'\\x89PNG'
    """
    import matplotlib.pyplot as plt

    views = require_mapping(views, "views", "{caption: GraphView}, e.g. {'loop': view1, 'reshape': view2}")
    if len(views) > MAX_SIDE_BY_SIDE:
        raise LabInputError(f"side_by_side shows at most {MAX_SIDE_BY_SIDE} graphs in one row (they get too small "
                            f"to read); got {len(views)}. Split them over several calls.")
    for name, view in views.items():
        if not isinstance(view, GraphView):
            raise LabInputError(f"views[{name!r}] is a {type(view).__name__}; pass what draw_graph returns.")
    fig, axes = plt.subplots(1, len(views), figsize=(5 * len(views), 6), squeeze=False)
    for ax, (name, view) in zip(axes[0], views.items(), strict=True):
        ax.imshow(matplotlib.image.imread(io.BytesIO(view.png), format="png"))
        ax.set_title(f"{name}: {view.stats.nodes} nodes, depth {view.stats.depth}", fontsize=10, parse_math=False)
        ax.axis("off")
    return _figure_png(fig)
