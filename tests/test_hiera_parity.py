"""Our Hiera equals Birder's reference implementation, output for output, on random weights."""

from __future__ import annotations

import pytest
import torch
from birder.common import fs_ops
from birder.conf import settings as birder_settings
from birder.net.hiera import Hiera as ReferenceHiera

from birdid_app.core.model import hiera
from birdid_app.core.model.checkpoint import read_checkpoint, write_checkpoint
from birdid_app.core.model.hiera import Hiera, HieraConfig, attention
from conftest import RGB_MEAN, RGB_STD, SMALL_CONFIG, SPECIES, randomise

TOLERANCE = 1e-4  # max abs difference, fp32
STAGES = ["stage1", "stage2", "stage3", "stage4"]
BASE_384 = HieraConfig(embed_dim=96, depths=(2, 3, 16, 3), num_heads=1, num_classes=707, image_size=(384, 384))


def reference_model(config: HieraConfig) -> ReferenceHiera:
    reference_config = {
        "depths": list(config.depths),
        "embed_dim": config.embed_dim,
        "num_heads": config.num_heads,
        "abs_win_pos_embed": True,
        "drop_path_rate": 0.0,
    }
    model = ReferenceHiera(3, config.num_classes, config=reference_config, size=config.image_size)
    model.return_stages = STAGES
    return model.eval()


def reference_outputs(model: ReferenceHiera, images: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.inference_mode():
        outputs = {"logits": model(images), "embedding": model.embedding(images)}
        outputs.update(model.detection_features(images))
    return outputs


def assert_same_outputs(ours: Hiera, reference: ReferenceHiera, images: torch.Tensor) -> None:
    """Every way of asking our model gives Birder's answer: forward with maps, forward without
    (forward_features then forward_head), forward_intermediates for some stages."""
    expected = reference_outputs(reference, images)
    with torch.inference_mode():
        got = ours(images)
        without_maps = ours(images, stage_maps=False)
        tokens, some_maps = ours.forward_intermediates(images, stages=(4, 2))
    assert got.logits.shape == expected["logits"].shape
    for logits in (got.logits, without_maps.logits):
        assert (logits - expected["logits"]).abs().max() <= TOLERANCE
    for embedding in (got.embedding, without_maps.embedding):
        assert (embedding - expected["embedding"]).abs().max() <= TOLERANCE
    assert without_maps.stage_maps == ()
    for stage, stage_map in zip(STAGES, got.stage_maps, strict=True):
        assert stage_map.shape == expected[stage].shape, stage
        assert (stage_map - expected[stage]).abs().max() <= TOLERANCE, stage
    # In the order asked, each equal to the full forward's map of that stage.
    assert [m.shape for m in some_maps] == [expected["stage4"].shape, expected["stage2"].shape]
    assert torch.equal(some_maps[0], got.stage_maps[3]) and torch.equal(some_maps[1], got.stage_maps[1])
    assert torch.equal(ours.forward_head(tokens)[0], got.logits)
    # The outputs carry signal: a broken comparison of two zero tensors would also pass above.
    assert expected["logits"].std() > 0.1
    assert expected["stage1"].std() > 0.1


@pytest.mark.parametrize(
    "config",
    [
        pytest.param(BASE_384, id="base-384", marks=pytest.mark.slow),  # the published size: about 10 s
        pytest.param(SMALL_CONFIG, id="small-128"),
        pytest.param(
            HieraConfig(embed_dim=96, depths=(1, 2, 7, 2), num_heads=1, num_classes=20, image_size=(256, 192)),
            id="tiny-256x192",
        ),
    ],
)
def test_same_logits_embedding_and_stage_maps_as_birder(config):
    reference = randomise(reference_model(config), seed=7)
    ours = Hiera(config).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    images = torch.randn(2, 3, *config.image_size, generator=torch.Generator().manual_seed(1))
    assert_same_outputs(ours, reference, images)


def test_a_forward_without_maps_rerolls_nothing_and_answers_bit_for_bit_the_same(monkeypatch):
    model = randomise(Hiera(SMALL_CONFIG), seed=11).eval()
    model.refresh_position_embedding()
    images = torch.randn(3, 3, 128, 128, generator=torch.Generator().manual_seed(12))
    rerolled = []
    real_reroll = hiera.reroll

    def counting_reroll(x, grid, levels):
        rerolled.append(tuple(x.shape))
        return real_reroll(x, grid, levels)

    monkeypatch.setattr(hiera, "reroll", counting_reroll)
    with torch.inference_mode():
        with_maps = model(images)
        assert len(rerolled) == 4  # the spy sees the real forward's rerolls
        rerolled.clear()
        without = model(images, stage_maps=False)
        assert rerolled == []
        _, maps = model.forward_intermediates(images, stages=(3,))
        assert rerolled == [(3, 64, 128)]  # stage 3 only: [B, 8 * 8 tokens, C_3]
    assert without.stage_maps == () and len(maps) == 1
    assert torch.equal(without.logits, with_maps.logits)
    assert torch.equal(without.embedding, with_maps.embedding)
    assert torch.equal(maps[0], with_maps.stage_maps[2])
    with pytest.raises(ValueError, match="stages are numbered 1 to 4"):
        model.forward_intermediates(images, stages=(0,))


def test_state_dict_is_key_for_key_birders():
    ours = Hiera(BASE_384).state_dict()
    reference = reference_model(BASE_384).state_dict()
    assert list(ours) == list(reference)
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in reference.items()}
    assert sum(v.numel() for v in ours.values()) == pytest.approx(51.1e6, rel=0.002)


def test_loads_a_checkpoint_written_by_birder(tmp_path, monkeypatch):
    monkeypatch.setattr(birder_settings, "MODELS_DIR", tmp_path)
    config = HieraConfig(embed_dim=96, depths=(1, 2, 7, 2), num_heads=1, num_classes=len(SPECIES), image_size=(224, 224))
    reference = randomise(reference_model(config), seed=3)
    signature = {"inputs": [{"data_shape": [0, 3, 224, 224]}], "outputs": [{"data_shape": [0, len(SPECIES)]}]}
    rgb_stats = {"mean": list(RGB_MEAN), "std": list(RGB_STD)}
    fs_ops.checkpoint_model(
        "hiera_abswin_tiny", 0, reference, signature, {n: i for i, n in enumerate(SPECIES)}, rgb_stats,
        None, None, None, None,
    )
    # Birder writes no config for a registered network: our loader reads the shape from the tensors.
    checkpoint = read_checkpoint(tmp_path / "hiera_abswin_tiny_0.pt")
    assert checkpoint.config == config
    assert checkpoint.class_names == SPECIES
    assert checkpoint.rgb_mean == RGB_MEAN and checkpoint.rgb_std == RGB_STD
    images = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    assert_same_outputs(checkpoint.build_model(), reference, images)


def test_birder_loads_a_checkpoint_we_wrote(tmp_path, monkeypatch):
    monkeypatch.setattr(birder_settings, "MODELS_DIR", tmp_path)
    ours = randomise(Hiera(SMALL_CONFIG), seed=5)
    ours.refresh_position_embedding()
    write_checkpoint(tmp_path / "custom_small.pt", ours, SPECIES, RGB_MEAN, RGB_STD)
    raw = torch.load(tmp_path / "custom_small.pt", weights_only=True)
    # Birder finds files by network name; ours is a custom configuration of its hiera_abswin_tiny.
    (tmp_path / "custom_small.pt").rename(tmp_path / "hiera_abswin_tiny.pt")
    states = fs_ops.load_checkpoint(torch.device("cpu"), "hiera_abswin_tiny", config=raw["config"])
    assert states.class_to_idx == {n: i for i, n in enumerate(SPECIES)}
    reference = states.net.eval()
    reference.return_stages = STAGES
    images = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(4))
    assert_same_outputs(ours.eval(), reference, images)


@pytest.mark.parametrize("shape", [(2, 144, 64, 64, 32), (1, 4, 576, 2304, 96), (1, 8, 144, 144, 96)])
def test_bf16_cpu_attention_agrees_with_fp32_fused_attention(shape):
    # birdid's bf16 CPU path is matmul-softmax-matmul, not SDPA: it must compute the same thing.
    batch, groups, queries, keys, dim = shape
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(batch, groups, n, dim, generator=generator) for n in (queries, keys, keys))
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    got = attention(q.bfloat16(), k.bfloat16(), v.bfloat16())
    assert got.dtype == torch.bfloat16 and got.shape == expected.shape
    torch.testing.assert_close(got.float(), expected, atol=0.02, rtol=0.02)
    torch.testing.assert_close(attention(q, k, v), expected)  # fp32 goes through SDPA itself
