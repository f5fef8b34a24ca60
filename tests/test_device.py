import pytest
import torch

from helpers import device as dev
from helpers.validation import LabInputError


def test_auto_picks_cuda_only_when_present():
    assert dev.pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_cpu_is_always_available():
    assert dev.pick_device("cpu") == torch.device("cpu")
    assert dev.available_devices()[0] == "cpu"


def test_unknown_device_names_the_choices():
    with pytest.raises(LabInputError, match="'auto', 'cpu', 'cuda'"):
        dev.pick_device("gpu")


def test_cuda_without_cuda_says_what_to_do(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(LabInputError, match="no CUDA GPU.*device='auto' or 'cpu'"):
        dev.pick_device("cuda")
    assert dev.available_devices() == ["cpu"]


def test_seed_everything_repeats_torch_numpy_and_python():
    import random

    import numpy as np

    dev.seed_everything(3)
    first = (torch.rand(3), np.random.rand(3), random.random())
    dev.seed_everything(3)
    second = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], second[0]) and (first[1] == second[1]).all() and first[2] == second[2]


def test_set_threads_takes_effect_and_rejects_zero():
    before = torch.get_num_threads()
    try:
        assert dev.set_threads(1) == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    with pytest.raises(LabInputError):
        dev.set_threads(0)


def test_report_lists_what_check_env_promises():
    report = dev.environment_report()
    for key in ("torch", "cuda_available", "device_name", "threads", "ipywidgets", "jupyterlab_widgets", "dot"):
        assert key in report
    assert report["torch"] == torch.__version__


def test_report_explains_missing_dot(monkeypatch):
    monkeypatch.setattr(dev.shutil, "which", lambda name: None)
    text = dev.format_report(dev.environment_report())
    assert "dot" in text and "apt-get install graphviz" in text


def test_check_env_entry_point_prints_report(capsys):
    assert dev.main() == 0
    assert "torch" in capsys.readouterr().out


def test_using_threads_restores_the_count_even_on_error():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), dev.using_threads(1):
        assert torch.get_num_threads() == 1
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before
    with pytest.raises(LabInputError):
        with dev.using_threads(0):
            pass


def test_seeds_and_threads_have_explicit_bounds():
    import numpy as np

    dev.seed_everything(np.int64(3))  # a NumPy integer is a fine seed
    dev.seed_everything(2**32 - 1)
    for bad in (-1, 2**32, 1.5, "0"):
        with pytest.raises(LabInputError, match="seed must be an integer"):
            dev.seed_everything(bad)
    with pytest.raises(LabInputError, match="limit of 256"):
        dev.set_threads(257)
