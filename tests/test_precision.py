"""precision "auto": the fastest mode that agrees with fp32, measured on this computer, kept."""

from __future__ import annotations

import json
import os

import torch

from birdid_app.core import paths
from birdid_app.core.checkpoint import read_checkpoint, write_checkpoint
from birdid_app.core.inference import Classifier
from birdid_app.core.precision import MIN_COSINE, candidate_precisions, choose_precision
from conftest import RGB_MEAN, RGB_STD, SPECIES, make_small_model

CPU = torch.device("cpu")


def test_bf16_is_tried_on_a_cpu_only_where_it_is_native_and_int8_on_every_cpu():
    assert candidate_precisions(CPU, native_bf16=True) == ["fp32", "bf16", "int8"]
    assert candidate_precisions(CPU, native_bf16=False) == ["fp32", "int8"]


def test_auto_runs_the_fastest_mode_that_agrees_and_keeps_the_trial(small_model_file, tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(small_model_file.read_bytes())
    told = []
    choice = choose_precision(read_checkpoint(path), CPU, native_bf16=True, on_measuring=lambda: told.append(1))
    assert told == [1] and choice.measured_now
    fp32, bf16, _int8 = choice.trials
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    assert fp32.agrees and abs(fp32.cosine - 1) < 1e-6 and fp32.seconds > 0
    assert bf16.cosine >= MIN_COSINE and bf16.same_top5  # a confident model agrees in bf16
    assert choice.precision == min((t for t in choice.trials if t.agrees), key=lambda t: t.seconds).precision
    assert choice.describe().startswith(f"{choice.precision}, picked automatically")

    again = choose_precision(read_checkpoint(path), CPU, native_bf16=True, on_measuring=lambda: told.append(2))
    assert told == [1] and not again.measured_now and again.trials == choice.trials
    kept = json.loads((paths.data_dir() / "precision-trials.json").read_text())
    assert len(kept) == 1 and str(path.resolve()) in next(iter(kept))

    # A changed model file is measured again.
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert choose_precision(read_checkpoint(path), CPU, native_bf16=True).measured_now


def test_a_mode_that_disagrees_with_fp32_is_never_picked(tmp_path):
    # Every species' classifier row the same up to 1 part in 10^4: fp32 still ranks them, bf16
    # (8 bits of mantissa) cannot tell them apart, so its top-5 differs however fast it is.
    model = make_small_model(seed=3)
    with torch.no_grad():
        row = model.classifier.weight[0].clone()
        model.classifier.weight.copy_(row + 1e-4 * row.abs().mean() * torch.randn(model.classifier.weight.shape))
        model.classifier.bias.zero_()
    path = tmp_path / "flat.pt"
    write_checkpoint(path, model, SPECIES, RGB_MEAN, RGB_STD)
    choice = choose_precision(read_checkpoint(path), CPU, native_bf16=True)
    fp32, bf16, _int8 = choice.trials
    assert not bf16.same_top5 and not bf16.agrees
    assert choice.precision != "bf16"
    if choice.precision == "fp32":  # int8 is tried too, and on this flat classifier disagrees as well
        assert choice.describe() == "fp32, picked automatically: no faster mode agreed with it (bf16, int8 did not agree with fp32)"


def test_a_classifier_on_auto_runs_the_chosen_mode_and_says_why(small_model_file, monkeypatch):
    from birdid_app.core import inference

    monkeypatch.setattr(inference, "cpu_has_native_bf16", lambda: True)
    classifier = Classifier.from_file(small_model_file, device="cpu", precision="auto")
    kept = choose_precision(read_checkpoint(small_model_file), CPU, native_bf16=True)
    assert not kept.measured_now and classifier.precision == kept.precision
    expected_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "int8": torch.float32}[classifier.precision]
    assert classifier.model.classifier.weight.dtype == expected_dtype
    assert classifier.precision_reason == kept.describe()

    monkeypatch.setattr(inference, "cpu_has_native_bf16", lambda: False)
    classifier = Classifier.from_file(small_model_file, device="cpu", precision="auto")
    # Without native bf16 the trial weighs fp32 against int8; this random model's int8 disagrees.
    assert classifier.precision == "fp32" and classifier.model.classifier.weight.dtype == torch.float32
    assert classifier.precision_reason == "fp32, picked automatically: no faster mode agreed with it (int8 did not agree with fp32)"
    assert Classifier.from_file(small_model_file, device="cpu", precision="bf16").precision_reason == "bf16, as asked"
