"""The three LSTMs must compute what nn.LSTM computes, gradient for gradient; the tools around them must
measure what they say."""
import copy

import pytest
import torch
from torch import nn

from helpers.exercises import check_raises
from helpers.gradients import compare_gradients
from helpers.lstm_variants import (BASELINE, CELL_LOOP, COMPILED, HOISTED, IMPLEMENTATIONS, NN_LSTM, PARAM_NAMES,
                                   CellLoopLSTM, HoistedLSTM, NNLSTM, OpCount, batch_vs_time_builders,
                                   copy_weights, count_calls, experiment_named, first_call_seconds, gflops_table,
                                   hidden_builders, index_vs_unbind_builders, length_builders, lstm_flops,
                                   make_compiled_cell_loop, make_family, make_timing_panel, matmul_peak_gflops,
                                   panel_lengths, plot_gflops, plot_sweep, profile_ops, record_flops,
                                   run_timing_point, standard_experiments)
from helpers.timing import TimingRecord, time_implementations
from helpers.validation import LabInputError


def _reference_lstm(family, dtype=torch.float32):
    """A plain nn.LSTM (not our subclass) with the family's weights."""
    ref = nn.LSTM(family[NN_LSTM].input_size, family[NN_LSTM].hidden_size, batch_first=True)
    return copy_weights(family[NN_LSTM], ref).to(dtype)


@pytest.mark.parametrize("batch,length,inp,hidden", [(3, 7, 5, 6), (1, 1, 1, 1), (2, 2, 3, 5), (5, 13, 7, 3)])
def test_outputs_and_state_match_nn_lstm(batch, length, inp, hidden):
    family = make_family(inp, hidden, seed=batch + length)
    ref = _reference_lstm(family)
    x = torch.randn(batch, length, inp)
    hx = (torch.randn(1, batch, hidden), torch.randn(1, batch, hidden))
    for args in ((x,), (x, hx)):
        want_out, (want_h, want_c) = ref(*args)
        for kind, model in family.items():
            out, (h, c) = model(*args)
            assert out.shape == want_out.shape and h.shape == want_h.shape and c.shape == want_c.shape, kind
            for got, want in ((out, want_out), (h, want_h), (c, want_c)):
                assert torch.allclose(got, want, atol=1e-6, rtol=1e-5), kind


@pytest.mark.parametrize("length", [1, 2, 9])
def test_gradients_match_nn_lstm_float32_and_float64(length):
    family = make_family(4, 5, seed=length)
    x = torch.randn(3, length, 4)
    comparison = compare_gradients(family, x, atol=1e-5, rtol=1e-4)
    assert comparison.all_close, str(comparison)
    quantities = {row.quantity for row in comparison.rows}
    assert quantities == {"input", *PARAM_NAMES}
    family64 = {k: m.double() for k, m in family.items()}
    comparison64 = compare_gradients(family64, x.double(), atol=1e-13, rtol=0)
    assert comparison64.all_close and comparison64.max_abs_diff() < 1e-13, str(comparison64)


def test_gradients_differ_when_a_weight_differs():
    family = make_family(3, 4)
    with torch.no_grad():
        family[HOISTED].weight_hh_l0[0, 0] += 0.5
    comparison = compare_gradients(family, torch.randn(2, 5, 3))
    assert not comparison.all_close
    assert comparison.row(NN_LSTM, "bias_ih_l0").allclose  # nn.LSTM was untouched
    assert not comparison.row(HOISTED, "bias_ih_l0").allclose


def test_cell_loop_parameters_are_tied_to_the_cell():
    model = CellLoopLSTM(3, 4)
    assert [n for n, _ in model.named_parameters()] == list(PARAM_NAMES)
    assert model.cell.weight_ih is model.weight_ih_l0 and model.cell.bias_hh is model.bias_hh_l0
    model = model.double()
    assert model.cell.weight_hh is model.weight_hh_l0 and model.cell.weight_hh.dtype == torch.float64
    clone = copy.deepcopy(model)
    assert clone.cell.weight_ih is clone.weight_ih_l0 and clone.weight_ih_l0 is not model.weight_ih_l0


def test_nn_lstm_wrapper_is_bitwise_nn_lstm():
    family = make_family(3, 4, kinds=[NN_LSTM])
    ref = _reference_lstm(family)
    x = torch.randn(2, 6, 3)
    assert torch.equal(family[NN_LSTM](x)[0], ref(x)[0])


def test_hoisted_folds_biases_into_one_projection():
    family = make_family(2, 3, kinds=[HOISTED, NN_LSTM])
    with torch.no_grad():
        family[HOISTED].bias_ih_l0.add_(1.0)
        family[HOISTED].bias_hh_l0.sub_(1.0)  # same sum, so the same LSTM
    x = torch.randn(2, 4, 2)
    assert torch.allclose(family[HOISTED](x)[0], family[NN_LSTM](x)[0], atol=1e-6)


def test_bad_input_is_explained():
    model = HoistedLSTM(3, 4)
    assert check_raises(lambda: model(torch.randn(5, 3)), LabInputError, match="3-D")
    assert check_raises(lambda: model(torch.randn(2, 5, 4)), LabInputError, match="input_size=3")
    assert check_raises(lambda: model(torch.randn(2, 0, 3)), LabInputError, match="no time steps")
    assert check_raises(lambda: model(torch.randn(2, 5, 3), (torch.zeros(2, 4), torch.zeros(2, 4))),
                        LabInputError, match="(1, 2, 4)")
    assert check_raises(lambda: NNLSTM(3, 4)(torch.randn(5, 3)), LabInputError, match="3-D")
    assert check_raises(lambda: CellLoopLSTM(0, 4), LabInputError, match="input_size")
    assert check_raises(lambda: make_family(3, 4, kinds=["GRU"]), LabInputError, match="kind")
    assert check_raises(lambda: make_family(3, 4, kinds="nn.LSTM"), LabInputError, match="list")
    assert check_raises(lambda: copy_weights(CellLoopLSTM(3, 4), NNLSTM(3, 5)), LabInputError, match="same sizes")
    assert check_raises(lambda: copy_weights(CellLoopLSTM(3, 4), nn.GRU(3, 4)), LabInputError, match="weight")


@pytest.mark.slow  # importing torch._dynamo alone takes seconds
def test_compiled_cell_loop_matches_with_eager_backend():
    torch._dynamo.reset()
    model = copy_weights(make_family(3, 4, kinds=[NN_LSTM])[NN_LSTM], make_compiled_cell_loop(3, 4, backend="eager"))
    x = torch.randn(2, 3, 3)
    assert first_call_seconds(model, x) > 0
    assert torch.allclose(model(x)[0], make_family(3, 4, kinds=[NN_LSTM])[NN_LSTM](x)[0], atol=1e-6)
    assert check_raises(lambda: make_compiled_cell_loop(3, 4, backend="tensorrt"), LabInputError, match="backend")
    assert COMPILED not in IMPLEMENTATIONS  # compile time keeps it opt-in


def test_profiler_sees_one_big_projection_and_one_small_gemm_per_step():
    length = 6
    family = make_family(3, 4, kinds=[CELL_LOOP, HOISTED])
    x = torch.randn(2, length, 3)
    hoisted = profile_ops(lambda: family[HOISTED](x))
    assert count_calls(hoisted, "aten::addmm") == length + 1  # T recurrent products + the projection
    linear = [op for op in hoisted if op.name == "aten::linear"]
    assert [(op.shapes[0], op.count) for op in linear] == [((2, length, 3), 1)]
    loop = profile_ops(lambda: family[CELL_LOOP](x), prefixes=("aten::lstm_cell",))
    assert count_calls(loop, "aten::lstm_cell") == length
    nn_lstm = make_family(3, 4, kinds=[NN_LSTM], dtype=torch.float64)[NN_LSTM]  # float64: ATen's own loop
    ops = profile_ops(lambda: nn_lstm(x.double()), prefixes=("aten::linear",))
    assert sorted((op.shapes[0], op.count) for op in ops) == sorted([((length, 2, 3), 1), ((2, 4), length)])
    assert check_raises(lambda: profile_ops(42), LabInputError, match="callable")
    if not torch.cuda.is_available():
        assert check_raises(lambda: profile_ops(lambda: None, kernels=True), LabInputError, match="cuda")


def test_flops_and_gflops_table():
    assert lstm_flops(2, 3, 5, 7) == 2 * 2 * 3 * 4 * 7 * (5 + 7)
    assert lstm_flops(2, 3, 5, 7, "forward+backward") == 3 * lstm_flops(2, 3, 5, 7)
    rec = TimingRecord("nn.LSTM", 8, "forward", 2e-3, 0.0, 3, 2, "cpu")
    fixed = {"swept": "hidden_size", "batch": 4, "length": 10}
    assert record_flops(rec, fixed) == lstm_flops(4, 10, 8, 8)
    table = gflops_table([rec], fixed, peak_gflops=record_flops(rec, fixed) / 2e-3 / 1e9 * 4)
    assert table.splitlines()[1].split()[-1] == "25"
    assert check_raises(lambda: record_flops(rec, {"swept": "batch"}), LabInputError, match="swept")
    assert check_raises(lambda: lstm_flops(0, 1, 1, 1), LabInputError, match="batch")
    assert check_raises(lambda: gflops_table([rec], fixed, 0), LabInputError, match="peak")


def test_matmul_peak_is_a_positive_throughput():
    assert matmul_peak_gflops(128, threads=1, min_run_time=0.01) > 0
    assert check_raises(lambda: matmul_peak_gflops(0), LabInputError, match="n")


def test_builders_share_weights_and_inputs():
    builders = length_builders(2, 3, 4)
    outs = [builders[k](5, torch.device("cpu"))()[0] for k in IMPLEMENTATIONS]
    assert all(torch.allclose(o, outs[-1], atol=1e-6) for o in outs)
    hb = hidden_builders(2, 3)
    assert torch.allclose(hb[CELL_LOOP](8, torch.device("cpu"))()[0], hb[NN_LSTM](8, torch.device("cpu"))()[0], atol=1e-6)
    bt = batch_vs_time_builders(4, 3, 5)
    assert [tuple(b(4, torch.device("cpu"))()[0].shape) for b in bt.values()] == [(4, 1, 5), (1, 4, 5)]
    iu = index_vs_unbind_builders(2, 3)
    assert torch.equal(iu["x[:, t] indexing"](5, torch.device("cpu"))(), iu["unbind"](5, torch.device("cpu"))())


def test_indexing_builds_one_node_per_step_unbind_one_in_total():
    from helpers.graphs import graph_stats

    iu = index_vs_unbind_builders(2, 3)
    indexed = graph_stats(iu["x[:, t] indexing"](16, torch.device("cpu"))())
    unbound = graph_stats(iu["unbind"](16, torch.device("cpu"))())
    assert indexed.node_types["SelectBackward0"] == 16 and "SelectBackward0" not in unbound.node_types
    assert unbound.node_types["UnbindBackward0"] == 1


def test_indexing_backward_grows_faster_than_unbind(retry_timing):
    # per-step slices scatter into full-size zero tensors: the ratio to unbind grows with T
    builders = index_vs_unbind_builders(4, 128)

    def ratios():
        recs = time_implementations(builders, [32, 256], mode="forward+backward", threads=1, min_run_time=0.02,
                                    progress=False)
        t = {(r.implementation, r.size): r.median_s for r in recs}
        return t[("x[:, t] indexing", 32)] / t[("unbind", 32)], t[("x[:, t] indexing", 256)] / t[("unbind", 256)]

    retry_timing(ratios, lambda r: r[1] > 1.5 * r[0])


def test_standard_experiments_names_and_scales():
    for scale in ("notebook", "reference"):
        exps = {e.name: e for e in standard_experiments(scale)}
        assert {"nb02.length_sweep", "nb02.hidden_sweep", "nb02.fastrnns", "nb02.mingru_scan"} <= set(exps)
        for name in ("nb02.length_sweep", "nb02.hidden_sweep", "nb02.fastrnns"):
            assert exps[name].baseline == "nn.LSTM" and set(IMPLEMENTATIONS) == set(exps[name].builders)
        fast = exps["nb02.fastrnns"]
        assert fast.sizes == (100,) and fast.fixed["batch"] == 64
        assert fast.fixed["input_size"] == fast.fixed["hidden_size"] == 512
    small = experiment_named("nb02.hidden_sweep", "notebook")
    large = experiment_named("nb02.hidden_sweep", "reference")
    assert max(small.sizes) < max(large.sizes)
    assert check_raises(lambda: standard_experiments("huge"), LabInputError, match="scale")


def test_timing_panel_runs_changes_and_refuses_big_settings():
    panel = make_timing_panel()
    first = panel.set(batch=2, hidden=8, length=16, implementations=(NN_LSTM, HOISTED)).run()
    assert {r.size for r in first} == set(panel_lengths(16)) and {r.implementation for r in first} == {NN_LSTM, HOISTED}
    second = panel.set(length=8, implementations=(CELL_LOOP,), mode="forward+backward").run()
    assert {r.size for r in second} == {2, 4, 8} and {r.mode for r in second} == {"forward+backward"}
    assert panel.set(batch=64, hidden=512, length=512).run() is None
    assert "GFLOP" in panel.status.value or "MiB" in panel.status.value
    assert check_raises(lambda: panel.set(hidden=4096), LabInputError, match="range")
    assert check_raises(lambda: run_timing_point(implementations=("GRU",)), LabInputError, match="implementation")


def test_plots_have_labelled_axes():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = [TimingRecord(impl, size, mode, 1e-3 * size * (2 if impl != BASELINE else 1), 0.0, 3, 2, "cpu")
            for impl in IMPLEMENTATIONS for size in (4, 8) for mode in ("forward", "forward+backward")]
    fig = plot_sweep(recs, "sequence length T")
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)
    ax = plot_gflops(recs, {"swept": "length", "batch": 1, "input_size": 4, "hidden_size": 4}, 1.0, "T")
    assert ax.get_xlabel() == "T" and "GFLOP/s" in ax.get_ylabel() and ax.get_legend() is not None
    plt.close("all")
    assert str(OpCount("aten::mm", ((2, 3), (3, 1)), 4)) == "aten::mm on (2, 3) (3, 1) ×4"


def test_gemm_counts_follow_the_algorithm():
    from helpers.lstm_variants import describe_gemms, gemm_counts

    length, batch = 5, 3
    family = make_family(4, 6, kinds=[CELL_LOOP, HOISTED])
    x = torch.randn(batch, length, 4)
    loop = gemm_counts(profile_ops(lambda: family[CELL_LOOP](x)))
    hoisted = gemm_counts(profile_ops(lambda: family[HOISTED](x)))
    assert loop == {(batch, 4, 24): length, (batch, 6, 24): length}
    assert hoisted == {(batch * length, 4, 24): 1, (batch, 6, 24): length}
    assert describe_gemms(profile_ops(lambda: family[HOISTED](x))).startswith(f"{length + 1} matrix multiplies")
