"""int8 on the CPU (core/model/int8.py): ONNX Runtime's quantised graph agrees with fp32 by the
precision trial's rule on a trained model, is tried by "auto" on every CPU, is converted once
and kept, a damaged kept file is converted again, and `birdid identify --precision int8` works."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from birdid_app.cli import main
from birdid_app.core.insight.explain import cam_for
from birdid_app.core.model.checkpoint import read_checkpoint, write_checkpoint
from birdid_app.core.model.inference import Classifier
from birdid_app.core.model.int8 import Int8Unavailable, kept_file, prepare_int8
from birdid_app.core.model.precision import (
    MIN_COSINE,
    TIE_FRACTION,
    choose_precision,
    measure_precisions,
    sample_pictures,
)
from conftest import RGB_MEAN, RGB_STD, SPECIES, make_photo, make_small_model

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small model trained for a few steps to tell 10 photo-like pictures apart (one per
    species), so its logits separate as a real model's do, and the pictures."""
    folder = tmp_path_factory.mktemp("trained")
    photos = [make_photo(folder / f"bird-{i}.jpg", size=(320, 240), seed=i, quality=92) for i in range(len(SPECIES))]
    model = make_small_model(seed=5, classifier_scale=1.0).train()
    probe = Classifier(read_checkpoint(_write(model, folder / "untrained.pt")), device="cpu", precision="fp32")
    from birdid_app.core.photos.photo import decode_photo

    inputs = torch.stack([probe.model_input(decode_photo(p)) for p in photos])
    labels = torch.arange(len(SPECIES))
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(40):
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(inputs, stage_maps=False).logits, labels)
        loss.backward()
        optimiser.step()
    model.eval()
    return _write(model, folder / "trained.pt"), photos


def _write(model, path):
    write_checkpoint(path, model, SPECIES, RGB_MEAN, RGB_STD)
    return path


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.mark.slow
def test_int8_agrees_with_fp32_by_the_trials_rule_on_a_trained_model(trained):
    path, photos = trained
    fp32 = Classifier.from_file(path, device="cpu", precision="fp32")
    int8 = Classifier.from_file(path, device="cpu", precision="int8")
    assert int8.int8 is not None and int8.precision_reason == "int8, as asked"
    exact, quantised = fp32.identify_files(photos, keep_stage_maps=False), int8.identify_files(photos, keep_stage_maps=False)
    for a, b in zip(exact, quantised, strict=True):
        assert b.stage_maps == ()
        assert _cosine(a.embedding, b.embedding) >= MIN_COSINE
        assert a.ranked(1)[0].name == b.ranked(1)[0].name
        assert {s.name for s in a.ranked(5)} == {s.name for s in b.ranked(5)}
    # The trial, on its own sample pictures, says the same.
    fp32_trial, int8_trial = measure_precisions(read_checkpoint(path), CPU, ["fp32", "int8"]).trials
    assert int8_trial.agrees and int8_trial.cosine >= MIN_COSINE and not int8_trial.problem

    # The window's forward, with stage maps, runs the same int8 graph: the same answer as without
    # them (one photo, one answer everywhere), and maps shaped as fp32's and close to them.
    picture = sample_pictures()[0]
    (with_maps,) = int8.identify_images([picture])
    (without,) = int8.identify_images([picture], keep_stage_maps=False)
    (exact_maps,) = fp32.identify_images([picture])
    np.testing.assert_array_equal(with_maps.probabilities, without.probabilities)
    assert [m.shape for m in with_maps.stage_maps] == [m.shape for m in exact_maps.stage_maps]
    for quantised_map, exact_map in zip(with_maps.stage_maps, exact_maps.stage_maps, strict=True):
        assert _cosine(quantised_map.ravel(), exact_map.ravel()) > 0.99
    # Grad-CAM needs gradients: the float model, in fp32.
    assert int8.model.classifier.weight.dtype == torch.float32
    cam = cam_for(int8, sample_pictures()[0], class_index=0, stage=3)
    assert np.isfinite(cam).all()


@pytest.mark.slow
def test_auto_tries_int8_on_a_cpu_without_native_bf16(trained):
    path, _ = trained
    told = []
    choice = choose_precision(read_checkpoint(path), CPU, native_bf16=False, on_converting=lambda: told.append(1))
    assert [t.precision for t in choice.trials] == ["fp32", "int8"] and told == [1]
    fp32, int8 = choice.trials
    assert int8.agrees, int8
    # int8 only when more than TIE_FRACTION faster than fp32: the simpler mode wins a tie.
    assert choice.precision == ("int8" if int8.seconds < fp32.seconds / (1 + TIE_FRACTION) else "fp32")
    # The Classifier runs what was chosen, from the kept conversion: nothing converted again.
    from birdid_app.core.model import inference

    classifier = inference.Classifier.from_file(path, device="cpu", precision="auto", on_converting=lambda: told.append(2))
    assert told == [1] and classifier.precision in ("fp32", "int8", "bf16")


@pytest.mark.slow
@pytest.mark.int8_real
def test_the_conversion_is_kept_reused_and_converted_again_when_damaged(small_model_file):
    checkpoint = read_checkpoint(small_model_file)
    converted = []
    prepare_int8(checkpoint, on_converting=lambda: converted.append(1))
    kept = kept_file(checkpoint)
    assert converted == [1] and kept.is_file() and kept.with_name(kept.name + ".sha256").is_file()
    image = torch.zeros(1, 3, 128, 128)
    expected = prepare_int8(checkpoint, on_converting=lambda: converted.append(2))(image)
    assert converted == [1]  # reused

    data = bytearray(kept.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte somewhere in the weights
    kept.write_bytes(bytes(data))
    again = prepare_int8(checkpoint, on_converting=lambda: converted.append(3))
    assert converted == [1, 3]
    for a, b in zip(expected, again(image), strict=True):
        torch.testing.assert_close(a, b)

    kept.write_bytes(kept.read_bytes()[:1000])  # cut short
    prepare_int8(checkpoint, on_converting=lambda: converted.append(4))
    assert converted == [1, 3, 4]


def test_int8_that_cannot_be_prepared_is_one_sentence_and_auto_keeps_fp32(small_model_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as on an installation without it
    with pytest.raises(Int8Unavailable, match=r"^int8 could not be prepared: ONNX Runtime is not installed"):
        Classifier.from_file(small_model_file, device="cpu", precision="int8")
    choice = choose_precision(read_checkpoint(small_model_file), CPU, native_bf16=False)
    assert choice.precision == "fp32" and choice.trials[1].problem.startswith("int8 could not be prepared")
    assert "int8 could not be prepared: ONNX Runtime is not installed" in choice.describe()


def test_identify_with_int8_from_the_command_line(small_model_file, photo_dir, capsys):
    assert main(["identify", "--model", str(small_model_file), str(photo_dir / "heron.jpg"), "--precision", "int8"]) == 0
    out, err = capsys.readouterr()
    assert "%" in out and "int8" in err

    # A photo's answer does not depend on the photos beside it in a batch (dynamic quantisation
    # scales each run's activations by their largest value): alone or with others, the same.
    from birdid_app.core.model.inference import Classifier

    classifier = Classifier.from_file(small_model_file, device="cpu", precision="int8")  # the kept conversion
    photos = sorted(photo_dir.glob("*.jpg"))
    alone = classifier.identify_files(photos[:1], keep_stage_maps=False)[0]
    together = classifier.identify_files(photos, keep_stage_maps=False)[0]
    assert len(photos) >= 2 and classifier.int8 is not None
    np.testing.assert_array_equal(alone.embedding, together.embedding)
    np.testing.assert_array_equal(alone.probabilities, together.probabilities)


@pytest.mark.slow
@pytest.mark.int8_real
def test_the_conversion_runs_in_a_process_of_its_own_and_can_be_stopped(small_model_file, tmp_path):
    """What the window's engine does on a first start: torch.export in a spawned child (it cannot
    run beside the engine's forwards), the result kept where prepare_int8 then finds it."""
    from birdid_app.core.model.int8 import convert_in_a_process

    model = tmp_path / "copy.pt"
    model.write_bytes(small_model_file.read_bytes())
    checkpoint = read_checkpoint(model)
    assert convert_in_a_process(checkpoint, should_stop=lambda: True) is False  # stopped at once
    assert not kept_file(checkpoint).exists()
    assert convert_in_a_process(checkpoint) is True and kept_file(checkpoint).exists()
    told = []
    prepare_int8(checkpoint, on_converting=lambda: told.append(1))
    assert told == []  # found kept, not converted again
