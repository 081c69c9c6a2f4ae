"""The Classifier on a real small checkpoint: one forward gives species, embedding and stage maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from birdid_app.core.errors import BirdidError, PhotoError
from birdid_app.core.model.inference import Classifier, check_precision, resolve_device
from birdid_app.core.photos.photo import decode_photo
from conftest import SPECIES


@pytest.fixture(scope="module")
def classifier(small_model_file):
    return Classifier.from_file(small_model_file, device="cpu", precision="fp32")


def test_one_forward_gives_ranked_species_embedding_and_stage_maps(classifier, photo_dir):
    (result,) = classifier.identify_files([photo_dir / "blue-tit.jpg"])
    ranked = result.ranked()
    assert sorted(s.name for s in ranked) == sorted(SPECIES)
    probabilities = [s.probability for s in ranked]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
    assert [s.name for s in result.ranked(3)] == [s.name for s in ranked[:3]]
    assert result.embedding.shape == (256,) and result.embedding.dtype == np.float32
    assert [m.shape for m in result.stage_maps] == [(32, 32, 32), (64, 16, 16), (128, 8, 8), (256, 4, 4)]
    assert result.forward_seconds > 0 and result.batch_size == 1


def test_matches_the_model_run_by_hand(classifier, photo_dir):
    image = decode_photo(photo_dir / "robin.png")
    (result,) = classifier.identify_images([image])
    with torch.inference_mode():
        expected = classifier.model(classifier.model_input(image)[None])
    np.testing.assert_allclose(result.probabilities, torch.softmax(expected.logits, -1)[0].numpy(), atol=1e-6)
    np.testing.assert_allclose(result.embedding, expected.embedding[0].numpy(), atol=1e-6)


def test_without_stage_maps_the_model_builds_none_and_the_answer_is_the_same(classifier, photo_dir, monkeypatch):
    # Indexing asks for no maps: the model must not build them (no reroll), not just not copy them.
    from birdid_app.core.model import hiera

    rerolls = []
    real_reroll = hiera.reroll

    def counting_reroll(*args):
        rerolls.append(args)
        return real_reroll(*args)

    monkeypatch.setattr(hiera, "reroll", counting_reroll)
    paths = [photo_dir / "blue-tit.jpg", photo_dir / "heron.jpg"]
    with_maps = classifier.identify_files(paths, keep_stage_maps=True)
    assert len(rerolls) == 4  # one batch, four stages
    rerolls.clear()
    without = list(classifier.iter_identify_files(paths))  # keep_stage_maps=False by default
    assert rerolls == []
    for a, b in zip(with_maps, without, strict=True):
        assert len(a.stage_maps) == 4 and b.stage_maps == ()
        np.testing.assert_array_equal(a.probabilities, b.probabilities)
        np.testing.assert_array_equal(a.embedding, b.embedding)


def test_a_loaded_model_survives_its_file_being_overwritten_in_place(small_model_file, photo_dir, tmp_path):
    # A memory-mapped load would die here with SIGBUS: the weights must be the classifier's own.
    path = tmp_path / "model.pt"
    path.write_bytes(small_model_file.read_bytes())
    classifier = Classifier.from_file(path, device="cpu", precision="fp32")
    (before,) = classifier.identify_files([photo_dir / "robin.png"])
    path.write_bytes(b"tampered")
    (after,) = classifier.identify_files([photo_dir / "robin.png"])
    np.testing.assert_array_equal(before.probabilities, after.probabilities)


def test_batching_gives_the_same_answer_as_one_at_a_time(classifier, photo_dir):
    paths = sorted(photo_dir.iterdir()) * 4  # 12 photos: more than one batch of 8
    together = classifier.identify_files(paths)
    alone = [classifier.identify_files([p])[0] for p in paths[:3]]
    assert [r.batch_size for r in together] == [8] * 8 + [4] * 4
    for a, b in zip(together[:3], alone, strict=True):
        np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-5)
        assert a.source == b.source


def test_a_bad_photo_does_not_stop_the_batch(classifier, photo_dir, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_text("not a photo")
    paths = [photo_dir / "blue-tit.jpg", broken, tmp_path / "missing.jpg", photo_dir / "heron.jpg"]
    results = classifier.identify_files(paths)
    assert isinstance(results[1], PhotoError) and "broken.jpg" in str(results[1])
    assert isinstance(results[2], PhotoError) and "missing.jpg" in str(results[2])
    assert results[0].source == str(paths[0]) and results[3].source == str(paths[3])
    assert results[0].ranked(1)[0].probability > 0


def test_different_photos_get_different_answers(classifier, photo_dir):
    a, b = classifier.identify_files([photo_dir / "blue-tit.jpg", photo_dir / "heron.jpg"])
    assert np.abs(a.embedding - b.embedding).max() > 1e-3


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_stays_close_to_fp32(small_model_file, classifier, photo_dir, precision):
    low = Classifier.from_file(small_model_file, device="cpu", precision=precision)
    assert low.model.classifier.weight.dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    image = decode_photo(photo_dir / "blue-tit.jpg")
    (exact,) = classifier.identify_images([image])
    (approx,) = low.identify_images([image])
    assert approx.embedding.dtype == np.float32
    cosine = exact.embedding @ approx.embedding / np.linalg.norm(exact.embedding) / np.linalg.norm(approx.embedding)
    assert cosine > 0.99


def test_device_and_precision_choices():
    assert resolve_device("cpu") == torch.device("cpu")
    assert check_precision("bf16") == "bf16"
    with pytest.raises(BirdidError, match="Unknown precision 'int4'"):
        check_precision("int4")
    if not torch.cuda.is_available():
        assert resolve_device("auto") in (torch.device("cpu"), torch.device("mps"))
        with pytest.raises(BirdidError, match="no usable CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(BirdidError, match="Unknown device"):
        resolve_device("tpu")


def test_an_image_from_memory_needs_no_file(classifier):
    image = Image.new("RGB", (50, 80), (200, 30, 30))
    (result,) = classifier.identify_images([image], ["clipboard"])
    assert result.source == "clipboard"


def test_doubt_flags_low_and_close_answers():
    from birdid_app.core.model.inference import SpeciesScore, doubt

    assert doubt([SpeciesScore("Great Tit", 0.9), SpeciesScore("Blue Tit", 0.05)]) is None
    assert doubt([SpeciesScore("Great Tit", 0.3), SpeciesScore("Blue Tit", 0.1)]) == "the best match has only 30%"
    assert doubt([SpeciesScore("Great Tit", 0.5), SpeciesScore("Blue Tit", 0.42)]) == (
        "Great Tit and Blue Tit are close (50% and 42%)"
    )


def test_cuda_devices_by_number_are_understood():
    with pytest.raises(BirdidError, match="Unknown device 'cpu:1'"):
        resolve_device("cpu:1")
    if not torch.cuda.is_available():
        with pytest.raises(BirdidError, match="no usable CUDA GPU"):
            resolve_device("cuda:0")


ZEN4_FLAGS = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_vnni\n"
HASWELL_FLAGS = "processor\t: 0\nflags\t\t: fpu sse avx avx2 fma\n"


def test_bf16_support_is_read_from_the_cpu_flags():
    from birdid_app.core.model.inference import cpu_has_native_bf16

    assert cpu_has_native_bf16(ZEN4_FLAGS)
    assert cpu_has_native_bf16("flags\t: avx2 amx_bf16 amx_tile\n")
    assert not cpu_has_native_bf16(HASWELL_FLAGS)
    assert not cpu_has_native_bf16("")


def test_out_of_memory_halves_the_batch_then_falls_back_to_the_cpu(small_model_file, photo_dir, monkeypatch):
    """An injected out-of-memory error on a (pretend) GPU: smaller batches, then the CPU, and the
    answers are still right."""
    gpu = Classifier.from_file(small_model_file, device="cpu", precision="fp32")
    gpu.device = torch.device("cuda", 0)  # it thinks it is on a GPU; the injected forward fails there
    real_forward = Classifier._forward
    tried = []

    def forward(self, batch, sources, keep_stage_maps=True):
        tried.append((self.device.type, batch.shape[0]))
        if self.device.type == "cuda":
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return real_forward(self, batch, sources, keep_stage_maps)

    monkeypatch.setattr(Classifier, "_forward", forward)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    images = [decode_photo(p) for p in sorted(photo_dir.iterdir())] * 3  # 9 photos
    results = gpu.identify_images(images)
    assert tried[:4] == [("cuda", 8), ("cuda", 4), ("cuda", 2), ("cuda", 1)]
    assert tried[4:] == [("cpu", 8), ("cpu", 1)]
    assert gpu.device == torch.device("cpu") and "ran out of memory" in gpu.notice
    # The same answers as a classifier that was on the CPU, in that precision, from the start.
    on_cpu = Classifier.from_file(small_model_file, device="cpu", precision=gpu.precision)
    monkeypatch.setattr(Classifier, "_forward", real_forward)
    expected = on_cpu.identify_images(images)
    assert [r.ranked(5) for r in results] == [e.ranked(5) for e in expected]
    assert all(np.array_equal(r.embedding, e.embedding) for r, e in zip(results, expected, strict=True))


def test_out_of_memory_on_the_cpu_at_one_photo_is_a_clear_error(small_model_file, photo_dir, monkeypatch):
    cpu = Classifier.from_file(small_model_file, device="cpu", precision="fp32")

    def forward(self, batch, sources, keep_stage_maps=True):
        raise torch.OutOfMemoryError("out of memory (injected)")

    monkeypatch.setattr(Classifier, "_forward", forward)
    with pytest.raises(BirdidError, match="not enough memory to run the model"):
        cpu.identify_images([decode_photo(photo_dir / "robin.png")])
    assert cpu.batch_size == 1
