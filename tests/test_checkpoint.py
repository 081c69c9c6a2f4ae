"""Reading model files: every bad file gets one clear sentence naming it; good ones load."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from birdid_app.core.errors import CheckpointError
from birdid_app.core.model.checkpoint import read_checkpoint
from birdid_app.core.model.hiera import Hiera
from conftest import SMALL_CONFIG, SPECIES


def raw(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def rewrite(small_model_file: Path, tmp_path: Path, change) -> Path:
    data = raw(small_model_file)
    change(data)
    path = tmp_path / "changed.pt"
    torch.save(data, path)
    return path


def assert_refused(path: Path, phrase: str) -> CheckpointError:
    with pytest.raises(CheckpointError) as caught:
        read_checkpoint(path)
    message = str(caught.value)
    assert path.name in message
    assert phrase in message
    assert "\n" not in message and "Traceback" not in message
    return caught.value


def test_reads_shape_classes_and_colour_statistics(small_model_file):
    checkpoint = read_checkpoint(small_model_file)
    assert checkpoint.config == SMALL_CONFIG
    assert checkpoint.class_names == SPECIES
    model = checkpoint.build_model()
    assert isinstance(model, Hiera) and not model.training


def test_heads_come_from_the_file_config_when_present(small_model_file, tmp_path):
    path = rewrite(small_model_file, tmp_path, lambda d: d["config"].update(num_heads=2))
    assert read_checkpoint(path).config.num_heads == 2


def test_position_embedding_is_computed_once_at_load(small_model_file):
    model = read_checkpoint(small_model_file).build_model()
    before = model.pos_embed_tokens.clone()
    assert before.abs().sum() > 0
    with torch.no_grad():
        model.pos_embed_win.add_(1.0)
    assert torch.equal(model.pos_embed_tokens, before)  # not recomputed on the fly
    model.load_state_dict(model.state_dict())
    assert torch.allclose(model.pos_embed_tokens, before + 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "change, phrase",
    [
        (lambda d: d.pop("signature"), "This is not a Birder model file (it lacks"),
        (lambda d: d.update(task="object_detection"), "This is a model for object detection; birdid needs an image classification model."),
        (lambda d: d["state"].pop("pos_embed_win"), "This is not a Hiera AbsWin network"),
        (lambda d: d["state"].pop("body.stage3.1.mlp.3.bias"), "It lacks 1 tensor the network needs: body.stage3.1.mlp.3.bias."),
        (lambda d: d["state"].update({"body.stage2.0.attn.proj.weight": torch.zeros(3, 3)}), "Its tensor body.stage2.0.attn.proj.weight has shape [3, 3] where [64, 64] was expected."),
        (lambda d: d["state"].update({"extra.weight": torch.zeros(1)}), "It has 1 tensor a Hiera AbsWin does not use: extra.weight."),
        (lambda d: d["signature"]["outputs"][0].update(data_shape=[0, 11]), "It names 10 classes but its signature has 11."),
        (lambda d: d["class_to_idx"].update({"Great Tit": 0}), "Its class list does not number the classes 0 to 9 once each."),
        (lambda d: d.pop("rgb_stats") and d.update(rgb_stats={"mean": [0.5]}), "It has no usable colour statistics"),
        (lambda d: d["signature"]["inputs"][0].update(data_shape=[0, 3, 256, 256]), "does not fit its (256, 256) input size."),
        (lambda d: d["state"].update({"classifier.weight": torch.zeros(5, 256), "classifier.bias": torch.zeros(5)}), "It names 10 classes but its classifier has 5 outputs."),
        (lambda d: d.update(config={"num_heads": 3}), "do not split into 3 heads"),
    ],
)
def test_each_malformed_file_is_named_and_explained(small_model_file, tmp_path, change, phrase):
    assert_refused(rewrite(small_model_file, tmp_path, change), phrase)


def test_width_without_known_heads_needs_a_config(small_model_file, tmp_path):
    assert_refused(rewrite(small_model_file, tmp_path, lambda d: d.pop("config")), "attention heads")


def test_missing_empty_folder_text_and_truncated_files(small_model_file, tmp_path):
    assert_refused(tmp_path / "absent.pt", "absent.pt: There is no such file.")
    assert_refused(tmp_path, ": This is a folder, not a model file.")
    (tmp_path / "empty.pt").write_bytes(b"")
    assert_refused(tmp_path / "empty.pt", "empty.pt: The file is empty.")
    (tmp_path / "notes.pt").write_text("these are not weights\n")
    assert_refused(tmp_path / "notes.pt", "notes.pt: This is not a PyTorch model file.")
    data = small_model_file.read_bytes()
    (tmp_path / "half.pt").write_bytes(data[: len(data) // 2])
    assert_refused(tmp_path / "half.pt", "half.pt: The model file is truncated or damaged; download or copy it again.")


class Payload:
    """Anything a pickle would run code to rebuild."""

    def __reduce__(self):
        return (shutil.rmtree, ("/nonexistent-birdid-test-folder",))


def test_a_file_with_code_in_it_is_refused_without_running_it(small_model_file, tmp_path):
    data = raw(small_model_file)
    data["note"] = Payload()
    path = tmp_path / "with-code.pt"
    torch.save(data, path)
    assert_refused(path, "with-code.pt: The file holds Python objects or code beyond plain weights, which birdid refuses to load.")
