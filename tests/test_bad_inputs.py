"""Bad input to the core instruments: every call in the table must raise ``LabInputError`` whose message
names the fix, quickly. None may hang (each call has its own timeout), end in a raw torch or Python error,
or return silently (a wrong result nobody notices)."""
from __future__ import annotations

import itertools
from contextlib import ExitStack
from unittest import mock

import ipywidgets as W
import matplotlib.pyplot as plt
import pytest
import torch
from torch import nn

from helpers import (
    autograd_loops,
    cells,
    device,
    exercises,
    gradients,
    graphs,
    memory,
    profiling,
    reference,
    timing,
    validation,
    widgets,
)
from helpers.timing import TimingRecord
from helpers.validation import LabInputError

NAN, INF = float("nan"), float("inf")


def _fn():
    return torch.ones(4).sum()


def _builders():
    return {"sum": lambda n, dev: (lambda: torch.ones(n, device=dev).sum())}


def _record(median=1e-3, impl="a"):
    return TimingRecord(impl, 8, "forward", median, 0.0, 5, 1, "cpu")


def _graph():
    x = torch.ones(3, requires_grad=True)
    return (x * 2).sum()


def _view():
    return graphs.draw_graph(_graph())


def _twins():
    torch.manual_seed(0)
    a = nn.Linear(3, 2)
    b = nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    return {"a": a, "b": b}


class _Sqrt(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(3))

    def forward(self, x):
        return (x * self.w).sqrt()  # gradient at 0 is infinite


class _Renamed(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(3, 2)

    def forward(self, x):
        return self.proj(x)


def _panel():
    return widgets.Panel(lambda n, span: (n, span), {"n": W.IntSlider(value=3, min=1, max=10),
                                                     "span": W.IntRangeSlider(value=(2, 50), min=0, max=150)})


def _no_cuda(call):
    def run():
        with mock.patch.object(torch.cuda, "is_available", lambda: False):
            return call()
    return run


def _enter(context_manager_factory):
    def run():
        with ExitStack() as stack:
            return stack.enter_context(context_manager_factory())
    return run


def _under_no_grad(call):
    def run():
        with torch.no_grad():
            return call()
    return run


def _comparison():
    return gradients.compare_gradients(_twins(), torch.randn(4, 3))


# (id, the bad call, a pattern its message must match: the problem and what to do)
BAD_CALLS = [
    # --- timing: no hang on NaN/inf, explicit bounds, no truncated or empty sweeps
    ("time_callable min_run_time nan", lambda: timing.time_callable(_fn, min_run_time=NAN),
     r"min_run_time must be a finite number in \(0, 60\] seconds; got nan"),
    ("time_callable min_run_time inf", lambda: timing.time_callable(_fn, min_run_time=INF), r"finite number"),
    ("time_callable min_run_time 0", lambda: timing.time_callable(_fn, min_run_time=0), r"in \(0, 60\] seconds"),
    ("time_callable min_run_time -1", lambda: timing.time_callable(_fn, min_run_time=-1), r"in \(0, 60\]"),
    ("time_callable min_run_time an hour", lambda: timing.time_callable(_fn, min_run_time=3600), r"in \(0, 60\]"),
    ("time_callable min_run_time text", lambda: timing.time_callable(_fn, min_run_time="0.1"), r"must be a number"),
    ("time_callable fn not callable", lambda: timing.time_callable("fn"), r"zero-argument callable, e\.g\. lambda"),
    ("time_callable threads 0", lambda: timing.time_callable(_fn, threads=0), r"threads must be a positive integer"),
    ("time_callable threads huge", lambda: timing.time_callable(_fn, threads=10**6),
     r"limit of 256 \(more threads than any CPU here"),
    ("time_callable threads float", lambda: timing.time_callable(_fn, threads=2.0), r"positive integer; got 2\.0"),
    ("interleaved_medians empty", lambda: timing.interleaved_medians({}), r"pass at least one"),
    ("interleaved_medians list", lambda: timing.interleaved_medians([_fn]), r"must be a dict"),
    ("interleaved_medians value not callable", lambda: timing.interleaved_medians({"a": 3}),
     r"fns\['a'\] must be a zero-argument callable"),
    ("interleaved_medians rounds 0", lambda: timing.interleaved_medians({"a": _fn}, rounds=0), r"rounds must be"),
    ("interleaved_medians rounds huge", lambda: timing.interleaved_medians({"a": _fn}, rounds=10**6),
     r"limit of 1000"),
    ("interleaved_medians min_run_time nan", lambda: timing.interleaved_medians({"a": _fn}, min_run_time=NAN),
     r"finite number"),
    ("interleaved_medians plan too long",
     lambda: timing.interleaved_medians({"a": _fn, "b": _fn}, rounds=1000, min_run_time=1),
     r"at least 2000 s .* lower min_run_time or measure fewer points"),
    ("time_implementations no sizes", lambda: timing.time_implementations(_builders(), []),
     r"sizes is empty: pass at least one size"),
    ("time_implementations fractional size", lambda: timing.time_implementations(_builders(), [2.7]),
     r"sizes\[0\] must be a positive integer; got 2\.7"),
    ("time_implementations huge size", lambda: timing.time_implementations(_builders(), [10**9]),
     r"limit of 10000000 .*choose a value up to"),
    ("time_implementations sizes a number", lambda: timing.time_implementations(_builders(), 64),
     r"sizes must be a list of positive integers"),
    ("time_implementations bad mode", lambda: timing.time_implementations(_builders(), [4], mode="backward"),
     r"'forward', 'forward\+backward'"),
    ("time_implementations no builders", lambda: timing.time_implementations({}, [4]), r"pass at least one"),
    ("time_implementations builder not callable", lambda: timing.time_implementations({"a": 3}, [4]),
     r"builders\['a'\] must be a builder\(size, device\)"),
    ("time_implementations builder returns a number",
     lambda: timing.time_implementations({"a": lambda n, d: 5}, [4]), r"returns a zero-argument callable"),
    ("time_implementations unknown device", lambda: timing.time_implementations(_builders(), [4], device="tpu"),
     r"device must be one of 'auto', 'cpu', 'cuda'"),
    ("time_implementations cuda without cuda",
     _no_cuda(lambda: timing.time_implementations(_builders(), [4], device="cuda")), r"Use device='auto' or 'cpu'"),
    ("time_implementations min_run_time nan",
     lambda: timing.time_implementations(_builders(), [4], min_run_time=NAN), r"finite number"),
    ("time_implementations backward of text",
     lambda: timing.time_implementations({"t": lambda n, d: (lambda: "text")}, [1], mode="forward+backward",
                                         min_run_time=0.001), r"must return a tensor or a tuple of tensors"),
    ("speedups of no records", lambda: timing.speedups([], "a"), r"records is empty.*time_implementations"),
    ("speedups of a NaN median", lambda: timing.speedups([_record(NAN)], "a"),
     r"median_s=nan; a time must be a finite positive number"),
    ("speedups unknown baseline", lambda: timing.speedups([_record()], "zz"), r"no records for baseline 'zz'"),
    ("speedups of a string", lambda: timing.speedups("records", "a"), r"must be a list of TimingRecord"),
    ("ratio_table of numbers", lambda: timing.ratio_table([1, 2], "a"), r"records\[0\] is a int, not a TimingRecord"),
    ("fit_loglog_slope NaN time", lambda: timing.fit_loglog_slope([1, 2], [1, NAN]), r"times\[1\] must be a finite"),
    ("fit_loglog_slope one point", lambda: timing.fit_loglog_slope([1], [1]), r"at least two \(size, time\) pairs"),
    ("fit_loglog_slope one distinct size", lambda: timing.fit_loglog_slope([4, 4], [1, 2]),
     r"at least two different values"),
    ("fit_loglog_slope zero time", lambda: timing.fit_loglog_slope([1, 2], [0, 1]), r"times\[0\] must be above 0"),
    ("fit_loglog_slope strings", lambda: timing.fit_loglog_slope("12", "12"), r"sizes must be a list of numbers"),
    ("label_measured_sizes no sizes", lambda: timing.label_measured_sizes(plt.subplots()[1], []), r"sizes is empty"),
    ("label_measured_sizes not an Axes", lambda: timing.label_measured_sizes("ax", [16]), r"matplotlib Axes"),
    ("plot_timings empty", lambda: timing.plot_timings([]), r"time something first"),
    # --- memory
    ("saved_for_backward not callable", lambda: memory.saved_for_backward(3), r"must be callable \(a module"),
    ("saved_for_backward under no_grad",
     _under_no_grad(lambda: memory.saved_for_backward(nn.Linear(2, 2), torch.ones(1, 2))), r"Call it outside no_grad"),
    ("track_live_saved ignore numbers", _enter(lambda: memory.track_live_saved(ignore=[1])),
     r"ignore\[0\] must be a tensor"),
    ("track_live_saved ignore a number", _enter(lambda: memory.track_live_saved(ignore=5)),
     r"ignore must be a list of tensors, e\.g\."),
    # --- graphs
    ("graph_stats of a list", lambda: graphs.graph_stats([1, 2]), r"torch\.as_tensor"),
    ("graph_stats of a leaf", lambda: graphs.graph_stats(torch.ones(2)), r"no autograd history"),
    ("draw_graph of a leaf", lambda: graphs.draw_graph(torch.ones(2, requires_grad=True)), r"pass the result, not a leaf"),
    ("draw_graph params a list", lambda: graphs.draw_graph(_graph(), params=[torch.ones(1)]),
     r"dict\(model\.named_parameters\(\)\)"),
    ("draw_graph params of numbers", lambda: graphs.draw_graph(_graph(), params={"w": 3}),
     r"params\['w'\] is a int; params maps names to tensors"),
    ("draw_graph max_nodes 0", lambda: graphs.draw_graph(_graph(), max_nodes=0), r"max_nodes must be a positive integer"),
    ("draw_graph max_nodes huge", lambda: graphs.draw_graph(_graph(), max_nodes=10**6),
     r"limit of 2000 \(graphviz takes minutes"),
    ("side_by_side empty", lambda: graphs.side_by_side({}), r"views is empty: pass at least one entry .*e\.g\."),
    ("side_by_side list", lambda: graphs.side_by_side([_view()]), r"dict \{caption: GraphView\}"),
    ("side_by_side of bytes", lambda: graphs.side_by_side({"a": b"png"}), r"pass what draw_graph returns"),
    ("side_by_side too many", lambda: graphs.side_by_side({str(i): None for i in range(7)}),
     r"at most 6 graphs .*Split them"),
    # --- gradients
    ("compare_gradients one model", lambda: gradients.compare_gradients({"a": nn.Linear(3, 2)}, torch.randn(4, 3)),
     r"at least two entries"),
    ("compare_gradients a function", lambda: gradients.compare_gradients({"a": nn.Linear(3, 2), "b": torch.tanh},
                                                                         torch.randn(4, 3)),
     r"models\['b'\] must be an nn\.Module; wrap a function"),
    ("compare_gradients NaN input", lambda: gradients.compare_gradients(_twins(), torch.full((4, 3), NAN)),
     r"inputs\[0\] contains 12 NaN .*pass finite values"),
    ("compare_gradients no inputs", lambda: gradients.compare_gradients(_twins(), []), r"inputs is empty"),
    ("compare_gradients empty input", lambda: gradients.compare_gradients(_twins(), torch.empty(0, 3)),
     r"inputs\[0\] is empty"),
    ("compare_gradients wrong width", lambda: gradients.compare_gradients(_twins(), torch.randn(4, 5)),
     r"models\['a'\] failed on inputs of shape \(4, 5\).*layout the models expect"),
    ("compare_gradients input a string", lambda: gradients.compare_gradients(_twins(), "x"),
     r"inputs must be a tensor or a list"),
    ("compare_gradients atol nan", lambda: gradients.compare_gradients(_twins(), torch.randn(4, 3), atol=NAN),
     r"atol must be a finite number at least 0"),
    ("compare_gradients rtol negative", lambda: gradients.compare_gradients(_twins(), torch.randn(4, 3), rtol=-1),
     r"rtol must be at least 0"),
    ("compare_gradients loss not scalar",
     lambda: gradients.compare_gradients(_twins(), torch.randn(4, 3), loss_fn=lambda out: out),
     r"Reduce it first"),
    ("compare_gradients loss_fn not callable",
     lambda: gradients.compare_gradients(_twins(), torch.randn(4, 3), loss_fn="sum"), r"loss_fn must be a function"),
    ("compare_gradients different names",
     lambda: gradients.compare_gradients({"a": nn.Linear(3, 2), "b": _Renamed()}, torch.randn(4, 3)),
     r"parameter names differ .*copy the weights"),
    ("compare_gradients infinite gradient",
     lambda: gradients.compare_gradients({"a": _Sqrt(), "b": _Sqrt()}, torch.zeros(2, 3)),
     r"gradient of 'a' holds NaN or infinity.*look for an overflow"),
    ("comparison row unknown", lambda: _comparison().row("zz", "input"), r"rows exist for"),
    ("comparison max_abs_diff unknown", lambda: _comparison().max_abs_diff("zz"), r"no rows for implementation 'zz'"),
    # --- widgets
    ("Panel fn not callable", lambda: widgets.Panel(3, {}), r"fn must be a function"),
    ("Panel control not a widget", lambda: widgets.Panel(lambda n: n, {"n": 3}), r"ipywidgets value widget"),
    ("Panel control fn cannot take", lambda: widgets.Panel(lambda n: n, {"m": W.IntSlider()}),
     r"name each control after one of fn's arguments"),
    ("Panel controls a list", lambda: widgets.Panel(lambda n: n, [W.IntSlider()]), r"controls must be a dict"),
    ("Panel set out of range", lambda: _panel().set(n=50), r"outside the allowed range \[1, 10\]"),
    ("Panel set range out of range", lambda: _panel().set(span=(0, 10**6)), r"outside the allowed range \[0, 150\]"),
    ("Panel set unknown control", lambda: _panel().set(m=1), r"no control named 'm'; controls: \['n', 'span'\]"),
    ("Panel set fraction on IntSlider", lambda: _panel().set(n=2.5), r"would become 2 .*an int for an IntSlider"),
    ("Panel set NaN", lambda: _panel().set(n=NAN), r"must be a finite number in \[1, 10\]"),
    ("largest_within_budget NaN estimate", lambda: widgets.largest_within_budget(lambda n: NAN, 10),
     r"returned nan; it must return a finite number of bytes"),
    ("largest_within_budget over at size 1", lambda: widgets.largest_within_budget(lambda n: 10**9, 5, 100),
     r"even size 1 needs .*raise budget_bytes"),
    ("largest_within_budget upper 0", lambda: widgets.largest_within_budget(lambda n: n, 0), r"upper must be a positive"),
    ("largest_within_budget not callable", lambda: widgets.largest_within_budget(3, 10), r"a function n -> bytes"),
    # --- exercises (a check that can never pass is refused; a wrong answer only fails)
    ("check_close NaN expected", lambda: exercises.check_close(torch.ones(2), torch.tensor([1.0, NAN])),
     r"holds NaN or infinity, so no answer could ever match"),
    ("check_close expected None", lambda: exercises.check_close(1.0, None), r"must be a tensor, a number"),
    ("check_close negative atol", lambda: exercises.check_close(1.0, 1.0, atol=-1), r"atol must be at least 0"),
    ("check_close NaN rtol", lambda: exercises.check_close(1.0, 1.0, rtol=NAN), r"rtol must be a finite number"),
    ("check_close empty expected", lambda: exercises.check_close((), ()), r"empty sequence"),
    ("check_close name not text", lambda: exercises.check_close(1.0, 1.0, name=3), r"name must be a string"),
    ("check_equal tensor expected", lambda: exercises.check_equal(torch.ones(2), torch.ones(2)),
     r"check tensors with check_close"),
    ("check_equal expected None", lambda: exercises.check_equal(1, None), r"give the right answer"),
    ("check_raises expected not an exception", lambda: exercises.check_raises(lambda: 1 / 0, 5),
     r"an exception class such as RuntimeError"),
    ("check_raises match not text", lambda: exercises.check_raises(lambda: 1 / 0, match=3), r"match must be a substring"),
    # --- device
    ("pick_device unknown", lambda: device.pick_device("gpu"), r"one of 'auto', 'cpu', 'cuda'; got 'gpu'"),
    ("pick_device cuda without cuda", _no_cuda(lambda: device.pick_device("cuda")), r"Use device='auto' or 'cpu'"),
    ("seed_everything negative", lambda: device.seed_everything(-1), r"seed must be an integer in 0\.\.4294967295"),
    ("seed_everything too large", lambda: device.seed_everything(2**40), r"seed must be an integer"),
    ("seed_everything fraction", lambda: device.seed_everything(1.5), r"seed must be an integer"),
    ("seed_everything text", lambda: device.seed_everything("0"), r"seed must be an integer"),
    ("set_threads 0", lambda: device.set_threads(0), r"count must be a positive integer"),
    ("set_threads huge", lambda: device.set_threads(10**6), r"limit of 256"),
    ("using_threads 0", _enter(lambda: device.using_threads(0)), r"threads must be a positive integer"),
    ("format_report of text", lambda: device.format_report("x"), r"the dict environment_report\(\) returns"),
    # --- validation
    ("require_tensor of a list", lambda: validation.require_tensor([1], "x"), r"Convert it with torch\.as_tensor\(x\)"),
    ("require_tensor wrong rank", lambda: validation.require_tensor(torch.zeros(2), "x", ndim=3, layout="(b, t, f)"),
     r"3-D tensor \(b, t, f\); got shape \(2,\)"),
    ("require_scalar_loss vector", lambda: validation.require_scalar_loss(torch.ones(3, requires_grad=True)),
     r"Reduce it first"),
    ("require_scalar_loss no graph", lambda: validation.require_scalar_loss(torch.tensor(1.0)), r"requires_grad=True"),
    ("require_positive_int bool", lambda: validation.require_positive_int(True, "n"), r"positive integer; got True"),
    ("require_positive_int reason", lambda: validation.require_positive_int(400, "length", 308, "(the data's length)"),
     r"limit of 308 \(the data's length\); choose a value up to 308"),
    ("require_number NaN", lambda: validation.require_number(NAN, "lr", low=0), r"lr must be a finite number"),
    ("require_finite inf", lambda: validation.require_finite(torch.tensor([1.0, INF]), "x"), r"x contains 1 NaN"),
    ("require_sizes empty", lambda: validation.require_sizes([], "lengths"), r"lengths is empty"),
    ("require_sizes text", lambda: validation.require_sizes("12", "lengths"), r"list of positive integers, e\.g\."),
    ("require_sizes too many", lambda: validation.require_sizes(list(range(1, 100)), "lengths"),
     r"more than 64 entries"),
    ("require_sizes endless", lambda: validation.require_sizes(itertools.count(1), "lengths"), r"more than 64 entries"),
    ("require_choice", lambda: validation.require_choice("GRUU", "layer_type", ["RNN", "GRU"]),
     r"one of 'RNN', 'GRU'; got 'GRUU'"),
    ("require_callable", lambda: validation.require_callable(3, "fn"), r"fn must be a function"),
    ("require_choices a bare string", lambda: validation.require_choices("GRU", "layer_types", ["RNN", "GRU"]),
     r"got the string 'GRU'\. Write \['GRU'\]"),
    ("require_choices unknown item", lambda: validation.require_choices(["GRU", "gru"], "layer_types", ["RNN", "GRU"]),
     r"layer_types\[1\] must be one of 'RNN', 'GRU'; got 'gru'"),
    ("require_choices empty", lambda: validation.require_choices([], "layer_types", ["RNN"]), r"pick at least one"),
    ("require_file a folder", lambda: validation.require_file(".", "path"), r"is a folder, not a file"),
    ("require_file missing", lambda: validation.require_file("no/such.csv", "path", "It ships in data/."),
     r"'no/such\.csv' does not exist\. It ships in data/\."),
    ("require_file a number", lambda: validation.require_file(3, "path"), r"must be a path"),
    # --- reference
    ("load_reference name not text", lambda: reference.load_reference(3), r"a name such as 'nb01\.length_sweep'"),
    ("load_reference device tpu", lambda: reference.load_reference("x", device="tpu"), r"'cuda' or 'cpu'"),
    ("load_reference directory a number", lambda: reference.load_reference("x", directory=3), r"must be a path"),
    ("describe_reference device gpu", lambda: reference.describe_reference("x", device="gpu"), r"'cuda' or 'cpu'"),
    ("plot_reference device tpu", lambda: reference.plot_reference("x", device="tpu"), r"'cuda' or 'cpu'"),
]


def test_the_table_is_large_and_covers_every_core_instrument():
    assert len(BAD_CALLS) >= 60 and len({case_id for case_id, _, _ in BAD_CALLS}) == len(BAD_CALLS)
    called = " ".join(case_id for case_id, _, _ in BAD_CALLS)
    for public in ("time_callable", "interleaved_medians", "time_implementations", "speedups", "fit_loglog_slope",
                   "saved_for_backward", "track_live_saved", "graph_stats", "draw_graph", "side_by_side",
                   "compare_gradients", "Panel", "largest_within_budget", "check_close", "check_equal",
                   "check_raises", "pick_device", "seed_everything", "set_threads", "load_reference"):
        assert public in called, public


@pytest.mark.timeout(20)  # a hang (the old NaN min_run_time spun forever) fails here, not at the suite's limit
@pytest.mark.parametrize("call, pattern", [pytest.param(call, pattern, id=case_id)
                                           for case_id, call, pattern in BAD_CALLS])
def test_bad_call_raises_lab_input_error_saying_what_to_do(call, pattern):
    with pytest.raises(LabInputError, match=pattern) as caught:
        call()
    message = str(caught.value)
    assert message.strip() and "Traceback" not in message and len(message) < 600


def _broken_builder(n, dev):
    raise IndexError("list index out of range")


class _Broken(nn.Module):
    def forward(self, x):
        return x[:, 99]


def _raises_key_error():
    state = {}
    return state["h"]


def _loop_with_a_bug(cell, x):
    return cell(x) + None


def _make_model_with_a_bug():
    return SimpleRNN(1, 8)  # noqa: F821 - the name the notebook defines, missing here on purpose


# The learner's own function failing inside an instrument: one LabInputError naming the use, the error and
# the line, instead of a stack trace through the instrument.
SPECIMEN_FAILURES = [
    ("timed function fails", lambda: timing.time_callable(lambda: torch.ones(2) @ torch.ones(3), min_run_time=0.01),
     r"the timed function \(its warm-up call\) failed: RuntimeError: .*\(in <lambda>, test_bad_inputs\.py line"),
    ("builder fails", lambda: timing.time_implementations({"b": _broken_builder}, [4], min_run_time=0.01),
     r"builders\['b'\] at size 4 failed: IndexError: list index out of range \(in _broken_builder"),
    ("backward of a constant", lambda: timing.time_implementations(
        {"c": lambda n, d: (lambda: torch.ones(n))}, [4], mode="forward+backward", min_run_time=0.01),
     r"warm-up call\) failed: RuntimeError: element 0 of tensors does not require grad"),
    ("saved_for_backward fn fails", lambda: memory.saved_for_backward(nn.Linear(3, 2), torch.ones(4, 5)),
     r"saved_for_backward's fn failed on inputs of shape \(4, 5\): RuntimeError: mat1 and mat2"),
    ("model fails", lambda: gradients.compare_gradients({"a": _Broken(), "b": _Broken()}, torch.ones(2, 3)),
     r"models\['a'\] failed on inputs of shape \(2, 3\): IndexError: .*\(in forward, test_bad_inputs\.py"),
    ("loss_fn fails", lambda: gradients.compare_gradients(_twins(), torch.randn(4, 3), loss_fn=lambda out: out.logits),
     r"loss_fn on the output of 'a' failed on inputs of shape \(4, 2\): AttributeError: .*'logits'"),
    ("profile_ops fn fails", lambda: profiling.profile_ops(lambda: torch.ones(2) @ torch.ones(3)),
     r"the function profile_ops runs \(its warm-up call\) failed: RuntimeError: .*\(in <lambda>, test_bad_inputs"),
    ("operator_counts fn fails", lambda: profiling.operator_counts(_raises_key_error),
     r"profile_ops runs .* failed: KeyError: 'h' \(in _raises_key_error"),
    ("operator_calls fn fails", lambda: profiling.operator_calls(_raises_key_error),
     r"failed: KeyError: 'h' \(in _raises_key_error"),
    ("step_through loop fails", lambda: cells.step_through(_loop_with_a_bug, nn.RNNCell(1, 4), torch.randn(5, 1), 2),
     r"the cell loop failed on inputs of shape \(1, 2, 1\): ValueError: RNNCell: .*\(in _loop_with_a_bug"),
    ("make_model fails", lambda: autograd_loops.check_sliding_window_training(
        lambda *a: None, _make_model_with_a_bug, torch.randn(3, 2, 1), torch.randn(3, 2, 1), reach=1),
     r"make_model failed: NameError: .*\(in _make_model_with_a_bug"),
    ("estimate fails", lambda: widgets.largest_within_budget(lambda n: n * [1] + 1, upper=10),
     r"estimate_bytes\(1\) failed: TypeError: .*\(in <lambda>, test_bad_inputs"),
]


@pytest.mark.timeout(20)
@pytest.mark.parametrize("call, pattern", [pytest.param(call, pattern, id=case_id)
                                           for case_id, call, pattern in SPECIMEN_FAILURES])
def test_a_failing_specimen_is_reported_with_its_line(call, pattern):
    with pytest.raises(LabInputError, match=pattern) as caught:
        call()
    assert caught.value.__context__ is not None  # the original error stays reachable for a full traceback


# The learner's function returning the wrong kind of thing: refused in one line, never a raw error later on.
WRONG_RESULTS = [
    ("step_through loop returns only outputs", lambda: cells.step_through(
        lambda cell, x: torch.zeros(1, x.shape[1], 4), nn.RNNCell(1, 4), torch.randn(5, 1), 2),
     r"run_loop must return a pair \(outputs, state\) like nn\.RNN; got Tensor"),
    ("step_through loop returns None", lambda: cells.step_through(lambda cell, x: None, nn.RNNCell(1, 4),
                                                                  torch.randn(5, 1), 2), r"got NoneType"),
    ("make_model returns None", lambda: autograd_loops.check_sliding_window_training(
        lambda *a: None, lambda: None, torch.randn(3, 2, 1), torch.randn(3, 2, 1), reach=1),
     r"make_model must return a fresh torch\.nn\.Module; it returned NoneType"),
    ("one model ignores its input", lambda: gradients.compare_gradients(
        {"uses x": _Scale(), "ignores x": _IgnoresInput()}, torch.ones(2, 3)), r"'ignores x' produced no gradient for 'input'"),
]


class _Scale(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(3))

    def forward(self, x):
        return x * self.w


class _IgnoresInput(_Scale):
    def forward(self, x):
        return self.w * 2


@pytest.mark.timeout(20)
@pytest.mark.parametrize("call, pattern", [pytest.param(call, pattern, id=case_id)
                                           for case_id, call, pattern in WRONG_RESULTS])
def test_a_wrong_kind_of_result_is_refused_in_one_line(call, pattern):
    with pytest.raises(LabInputError, match=pattern) as caught:
        call()
    assert "\n" not in str(caught.value)


def test_models_that_all_ignore_their_input_compare_their_parameter_gradients():
    comparison = gradients.compare_gradients({"a": _IgnoresInput(), "b": _IgnoresInput()}, torch.ones(2, 3))
    assert comparison.all_close and {row.quantity for row in comparison.rows} == {"w"}


# NaN and short results said where they happened (issue 28, item 5), never a panel that says "done".
def _panel_status(fn, **controls):
    panel = widgets.Panel(fn, {name: W.IntSlider(value=value, min=1, max=500) for name, value in controls.items()})
    assert panel.run() is None
    return panel.status.value


def test_a_panel_refuses_a_nan_result_in_its_status_line():
    def ratio(n):
        return float("nan") if n else 1.0

    assert "your function ratio returned nan" in _panel_status(ratio, n=3)
    assert "index (1,)" in _panel_status(lambda n: torch.tensor([1.0, NAN]), n=3)


def test_the_notebook_05_panels_say_nan_and_short_results():
    from helpers import rnn_compare

    def train(layer_type, seq_len, steps, progress):
        return [0.5] * 16 + [NAN] + [0.1] * (steps - 17)

    panel = rnn_compare.make_training_panel(train)
    assert panel.run() is None and "returned NaN at step 16" in panel.status.value
    panel = rnn_compare.make_training_panel(lambda layer_type, seq_len, steps, progress: [0.5, 0.4, 0.3])
    assert panel.run() is None and "returned 3 values, expected 200" in panel.status.value
    flow = rnn_compare.make_gradient_flow_panel(lambda layer_type, hidden_size, steps, control: [1.0] * 3)
    assert flow.run() is None and "returned 3 values, expected 61" in flow.status.value


def test_smooth_lets_one_nan_spoil_only_its_windows():
    from helpers.rnn_compare import smooth

    smoothed = smooth([1.0, NAN, 1.0, 1.0, 1.0], window=2)
    assert smoothed[0] == 1.0 and smoothed[1] != smoothed[1] and smoothed[2] != smoothed[2]
    assert smoothed[3:] == [1.0, 1.0]
    with pytest.raises(LabInputError, match="list of numbers"):
        smooth("1, 2, 3")


@pytest.mark.parametrize("a, b, side", [(torch.tensor(NAN), torch.tensor(NAN), "first"),
                                        (torch.ones(3), torch.tensor([1.0, INF, 1.0]), "second")])
def test_max_abs_diff_says_nan_instead_of_returning_it(a, b, side):
    with pytest.raises(LabInputError, match=f"the {side} tensor holds NaN or infinity"):
        gradients.max_abs_diff(a, b)


def test_step_through_says_where_the_loop_returned_nan():
    def loop(cell, x):
        outputs = torch.zeros(1, x.shape[1], 4)
        outputs[0, 2:] = NAN
        return outputs, None

    with pytest.raises(LabInputError, match="returned NaN or infinity at step 2"):
        cells.step_through(loop, nn.RNNCell(1, 4), torch.randn(5, 1), 4)


# The classes of bad argument the audit found raw or silent, each refused in one place (validation.py) and so
# for every instrument that takes that kind of argument: tensors without values or of a layout operators
# mishandle, over-large tensors, a list where a dict is expected, a string where a list is.
_HUGE = torch.zeros(1).expand(2**29)  # a view: no memory now, gigabytes once an instrument copies it
ARGUMENT_CLASSES = [
    ("meta tensor to graph_stats", lambda: graphs.graph_stats(torch.ones(3, device="meta")), r"meta tensor"),
    ("meta tensor to max_abs_diff", lambda: gradients.max_abs_diff(torch.ones(2, device="meta"),
                                                                   torch.ones(2, device="meta")), r"meta tensor"),
    ("meta tensor to compare_gradients", lambda: gradients.compare_gradients(_twins(), torch.ones(4, 3, device="meta")),
     r"meta tensor"),
    ("sparse tensor to compare_gradients", lambda: gradients.compare_gradients(_twins(), torch.ones(4, 3).to_sparse()),
     r"sparse tensor .*to_dense"),
    ("sparse tensor to max_abs_diff", lambda: gradients.max_abs_diff(torch.ones(2).to_sparse(), torch.ones(2)),
     r"sparse tensor"),
    ("over-large tensor to max_abs_diff", lambda: gradients.max_abs_diff(_HUGE, _HUGE), r"536,870,912 elements"),
    ("over-large tensor to require_finite", lambda: validation.require_finite(_HUGE, "x"), r"use smaller sizes"),
    ("list of callables to interleaved_medians", lambda: timing.interleaved_medians([_fn]),
     r"fns must be a dict .*got list\. Give each item a name"),
    ("list of builders to time_implementations", lambda: timing.time_implementations([_builders()["sum"]], [4]),
     r"builders must be a dict .*got list"),
    ("list of views to side_by_side", lambda: graphs.side_by_side([_view()]), r"views must be a dict .*got list"),
    ("list of curves to plot_losses", lambda: __import__("helpers.rnn_compare").rnn_compare.plot_losses([[0.1]]),
     r"curves must be a dict .*got list"),
    ("string of sizes", lambda: timing.time_implementations(_builders(), "64,128"), r"sizes must be a list"),
    ("string of layer names", lambda: validation.require_choices("GRU", "layers", ["GRU"]), r"got the string"),
    ("string as a series", lambda: validation.require_series("0.1 0.2", "train"), r"must return a list of numbers"),
    ("tuple as a mapping", lambda: validation.require_mapping((("a", 1),), "controls", "{name: control}"),
     r"controls must be a dict"),
    ("directory as an output file", lambda: validation.require_writable(".", "--out", ".json"), r"is a folder"),
    ("output of the wrong kind", lambda: validation.require_writable("x.csv", "--out", ".json"), r"must end in \.json"),
]


@pytest.mark.timeout(20)
@pytest.mark.parametrize("call, pattern", [pytest.param(call, pattern, id=case_id)
                                           for case_id, call, pattern in ARGUMENT_CLASSES])
def test_each_class_of_bad_argument_is_refused_in_one_line(call, pattern):
    with pytest.raises(LabInputError, match=pattern) as caught:
        call()
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 600
