import itertools
import os
import time

import pytest
import torch

from helpers import graphs
from helpers.validation import LabInputError

PNG_MAGIC = b"\x89PNG"


def _chain(steps: int) -> torch.Tensor:
    x = torch.ones(3, requires_grad=True)
    w = torch.ones(3, requires_grad=True)
    h = x
    for _ in range(steps):
        h = torch.tanh(h * w)
    return h.sum()


def test_stats_count_distinct_nodes_types_and_depth():
    stats = graphs.graph_stats(_chain(3))
    # Sum + 3 × (Mul, Tanh) + 2 AccumulateGrad (x and w, each counted once although w is used 3 times)
    assert stats.nodes == 1 + 3 * 2 + 2
    assert stats.node_types["MulBackward0"] == 3 and stats.node_types["AccumulateGrad"] == 2
    assert stats.depth == 1 + 3 * 2 + 1  # Sum -> (Tanh -> Mul)×3 -> AccumulateGrad(x)


def test_graph_grows_linearly_with_loop_iterations():
    sizes = [graphs.graph_stats(_chain(n)).nodes for n in (1, 2, 3, 4)]
    assert [b - a for a, b in itertools.pairwise(sizes)] == [2, 2, 2]


def test_stats_reject_tensor_without_history():
    with pytest.raises(LabInputError, match="no autograd history"):
        graphs.graph_stats(torch.ones(3, requires_grad=True))
    with pytest.raises(LabInputError):
        graphs.graph_stats("not a tensor")


def test_without_dot_draws_fallback_png_with_hint(monkeypatch):
    monkeypatch.setattr(graphs.shutil, "which", lambda name: None)
    view = graphs.draw_graph(_chain(2))
    assert view.backend == "matplotlib" and view.png.startswith(PNG_MAGIC)
    assert "apt-get install graphviz" in view.hint and "graphviz" in repr(view)


def test_broken_graphviz_falls_back_instead_of_raising(monkeypatch):
    monkeypatch.setattr(graphs, "dot_available", lambda: True)

    def broken(*args, **kwargs):
        raise RuntimeError("dot crashed")

    monkeypatch.setattr(graphs, "_torchviz_png", broken)
    view = graphs.draw_graph(_chain(1))
    assert view.backend == "matplotlib" and "dot crashed" in view.hint


@pytest.mark.skipif(not graphs.dot_available(), reason="graphviz 'dot' not installed here; fallback tested above")
def test_with_dot_renders_torchviz_png():
    model = torch.nn.Linear(3, 2)
    view = graphs.draw_graph(model(torch.ones(1, 3)).sum(), params=dict(model.named_parameters()))
    assert view.backend == "graphviz" and view.png.startswith(PNG_MAGIC) and view.hint == ""


def test_size_cap_summarises_big_graphs_and_the_hint_says_how_to_draw_them():
    view = graphs.draw_graph(_chain(40), max_nodes=20)
    assert view.backend == "summary" and view.png.startswith(PNG_MAGIC)
    assert f"draw_graph(..., max_nodes={view.stats.nodes})" in view.hint
    # the hint is true: that max_nodes draws it (here without dot, with matplotlib)
    assert graphs.draw_graph(_chain(40), max_nodes=view.stats.nodes).backend in ("graphviz", "matplotlib", "summary")


def test_a_graph_over_the_drawing_limit_says_the_summary_is_all(monkeypatch):
    monkeypatch.setattr(graphs, "MAX_DRAWN_NODES", 30)
    view = graphs.draw_graph(_chain(40), max_nodes=20)
    assert "over the 30 that can be drawn" in view.hint and "max_nodes=" not in view.hint


def test_a_slow_graphviz_layout_falls_back_to_the_summary_in_bounded_time(tmp_path, monkeypatch):
    """dot took minutes on RNN-loop graphs of 182-242 nodes; its layout is now cut off."""
    fake = tmp_path / "dot"
    fake.write_text("#!/bin/sh\nsleep 60\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setattr(graphs, "LAYOUT_TIMEOUT_S", 1.0)
    start = time.perf_counter()
    view = graphs.draw_graph(_chain(3))
    assert time.perf_counter() - start < 20
    assert view.backend == "summary" and view.png.startswith(PNG_MAGIC)
    assert "could not lay out" in view.hint and "within 1 s" in view.hint and "\n" not in view.hint


def test_a_dollar_in_the_title_is_text_without_graphviz(monkeypatch):
    monkeypatch.setattr(graphs.shutil, "which", lambda name: None)
    for title in ("cost in $", "$x_t$ and $$ and \\frac{", "a $ b $ c"):
        assert graphs.draw_graph(_chain(2), title=title).png.startswith(PNG_MAGIC)
        assert graphs.draw_graph(_chain(30), title=title, max_nodes=5).png.startswith(PNG_MAGIC)
    view = graphs.draw_graph(_chain(1))
    assert graphs.side_by_side({"$loop": view, "cost $": view}).startswith(PNG_MAGIC)


def test_params_must_be_a_mapping():
    with pytest.raises(LabInputError, match="named_parameters"):
        graphs.draw_graph(_chain(1), params=[torch.ones(1)])


def test_view_displays_as_png_in_notebooks():
    view = graphs.draw_graph(_chain(1))
    assert view._repr_png_() is view.png


def test_side_by_side_combines_and_rejects_empty():
    png = graphs.side_by_side({"one": graphs.draw_graph(_chain(1)), "three": graphs.draw_graph(_chain(3))})
    assert png.startswith(PNG_MAGIC)
    with pytest.raises(LabInputError):
        graphs.side_by_side({})
