"""Hiera with the absolute-window position embedding ("AbsWin"), for 2-D images.

The module tree and parameter names follow Birder's published checkpoints key for key, so a
Birder `state` dict loads with `strict=True`. The maths is Hiera's (Ryali et al. 2023, with the
AbsWin embedding of Bolya et al. 2023); the layout of tokens between stages is ours:

Hiera keeps tokens "unrolled": for a token grid of H x W and k pooling steps still to come, a
token's row is split into bits `row = y1 + 2*y2 + ... + 2**(k-1)*yk + 2**k * Y` (likewise the
column), and tokens are stored in the order (y1, x1, y2, x2, ..., yk, xk, Y, X). A 2x2 max-pool
is then a max over the leading (y1, x1) block, and the (Y, X) index, innermost, names the mask
unit (attention window) a token belongs to. `unroll` and `reroll` below are one permute each.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

PATCH_KERNEL = 7
PATCH_STRIDE = 4
PATCH_PADDING = 3
MASK_UNIT_SIZE = 8  # tokens per side of an attention window in stage 1
Q_STRIDE = 2  # per side; a pooled token covers Q_STRIDE x Q_STRIDE tokens
POOLED_STAGES = 3  # q-pooling happens when entering stages 2, 3 and 4
MASK_UNIT_ATTENTION = (True, True, False, False)  # per stage; see HieraConfig.blocks
MLP_RATIO = 4
LAYER_NORM_EPS = 1e-6
# The global position embedding is stored at 1/16 of the image size, whatever the patch stride.
GLOBAL_POS_EMBED_STRIDE = 16


@dataclass(frozen=True)
class HieraConfig:
    embed_dim: int  # channels of stage 1; each later stage doubles it
    depths: tuple[int, ...]  # blocks per stage; exactly four stages
    num_heads: int  # heads of stage 1; each later stage doubles it
    num_classes: int
    image_size: tuple[int, int]  # (H, W); both must be multiples of PATCH_STRIDE * MASK_UNIT_SIZE

    def __post_init__(self) -> None:
        if len(self.depths) != 4 or min(self.depths) < 1:
            raise ValueError(f"Hiera needs four stages of at least one block, got depths {self.depths}")
        unit = PATCH_STRIDE * MASK_UNIT_SIZE
        if self.image_size[0] % unit or self.image_size[1] % unit:
            raise ValueError(f"image size {self.image_size} is not a multiple of {unit}")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"{self.embed_dim} channels do not split into {self.num_heads} heads")

    @property
    def token_grid(self) -> tuple[int, int]:
        return (self.image_size[0] // PATCH_STRIDE, self.image_size[1] // PATCH_STRIDE)

    @property
    def mask_unit_grid(self) -> tuple[int, int]:
        return (self.token_grid[0] // MASK_UNIT_SIZE, self.token_grid[1] // MASK_UNIT_SIZE)

    @property
    def stage_dims(self) -> tuple[int, ...]:
        return tuple(self.embed_dim * 2**s for s in range(len(self.depths)))

    @property
    def embedding_dim(self) -> int:
        return self.stage_dims[-1]

    def blocks(self) -> list[BlockConfig]:
        """One entry per block, in order.

        The first block of a stage does the change of width and the q-pooling, and it still
        attends the way the previous stage did (windowed after stages 1 and 2, global after 3):
        it runs at the previous stage's resolution, so its windows are the previous stage's.
        """
        num_units = math.prod(self.mask_unit_grid)
        blocks = []
        for stage, depth in enumerate(self.depths):
            for index in range(depth):
                entering = stage > 0 and index == 0
                windowed = MASK_UNIT_ATTENTION[stage - 1 if entering else stage]
                blocks.append(
                    BlockConfig(
                        stage=stage,
                        dim_in=self.stage_dims[stage - 1] if entering else self.stage_dims[stage],
                        dim_out=self.stage_dims[stage],
                        heads=self.num_heads * 2**stage,
                        q_pool=entering and stage <= POOLED_STAGES,
                        num_windows=num_units if windowed else 1,
                    )
                )
        return blocks


@dataclass(frozen=True)
class BlockConfig:
    stage: int
    dim_in: int
    dim_out: int
    heads: int
    q_pool: bool
    num_windows: int  # 1 for global attention


@dataclass
class HieraOutput:
    logits: torch.Tensor  # [B, num_classes]
    embedding: torch.Tensor  # [B, embed_dim * 8]: the token mean after the final LayerNorm
    # Four [B, C_s, H/stride_s, W/stride_s], NCHW; () from `forward(..., stage_maps=False)`.
    stage_maps: tuple[torch.Tensor, ...]


def unroll(x: torch.Tensor, levels: int) -> torch.Tensor:
    """[B, H, W, C] in raster order -> [B, H*W, C] in unrolled order with `levels` pooling bits."""
    b, h, w, c = x.shape
    s = 2**levels
    # [B, Y, yk..y1, X, xk..x1, C]: a raster row index is Y*s + (yk..y1 as a binary number),
    # so bit y_i sits at dim levels + 2 - i and bit x_i at dim 2 * levels + 3 - i.
    x = x.reshape(b, h // s, *([2] * levels), w // s, *([2] * levels), c)
    order = [0]
    for i in range(1, levels + 1):
        order += [levels + 2 - i, 2 * levels + 3 - i]
    order += [1, levels + 2, 2 * levels + 3]
    return x.permute(order).reshape(b, h * w, c)


def reroll(x: torch.Tensor, grid: tuple[int, int], levels: int) -> torch.Tensor:
    """Inverse of `unroll`: [B, H*W, C] unrolled with `levels` bits -> [B, H, W, C] raster."""
    b, _, c = x.shape
    h, w = grid
    s = 2**levels
    # [B, y1, x1, ..., yk, xk, Y, X, C]
    x = x.reshape(b, *([2] * (2 * levels)), h // s, w // s, c)
    y_dims = [1 + 2 * i for i in reversed(range(levels))]  # yk .. y1
    x_dims = [2 + 2 * i for i in reversed(range(levels))]
    order = [0, 2 * levels + 1, *y_dims, 2 * levels + 2, *x_dims, 2 * levels + 3]
    return x.permute(order).reshape(b, h, w, c)


class PatchEmbed(nn.Module):
    def __init__(self, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim_out, PATCH_KERNEL, stride=PATCH_STRIDE, padding=PATCH_PADDING)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.proj(images).permute(0, 2, 3, 1)  # [B, H/4, W/4, C]


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Softmax attention, q [B, G, Nq, d], k and v [B, G, Nk, d] -> [B, G, Nq, d].

    Heads and windows come folded into G: with 4-D input the CPU takes SDPA's fused (flash)
    kernel, with 5-D its slow unfused maths. In bf16 on a CPU two plain batched matmuls around a
    softmax beat the fused kernel at every Hiera shape (about twice as fast at stage 3's 576
    tokens, where the matmuls run on the bf16 matrix units); in fp32 the fused kernel wins.
    benchmarks/attention.py measures both."""
    if q.device.type == "cpu" and q.dtype == torch.bfloat16:
        scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # [B, G, Nq, Nk]
        return scores.softmax(dim=-1) @ v
    return F.scaled_dot_product_attention(q, k, v)


class MaskUnitAttention(nn.Module):
    """Self-attention within each mask unit (or over all tokens when num_windows is 1), with
    optional max-pooling of the queries so that the output has a quarter of the tokens."""

    def __init__(self, block: BlockConfig) -> None:
        super().__init__()
        self.heads = block.heads
        self.head_dim = block.dim_out // block.heads
        self.num_windows = block.num_windows
        self.q_pool = block.q_pool
        self.qkv = nn.Linear(block.dim_in, 3 * block.dim_out)
        self.proj = nn.Linear(block.dim_out, block.dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        per_window = n // self.num_windows
        # The window index is the innermost part of the token index (see module docstring).
        qkv = self.qkv(x).reshape(b, per_window, self.num_windows, 3, self.heads, self.head_dim)
        q, k, v = qkv.permute(3, 0, 4, 2, 1, 5).unbind(0)  # each [B, heads, windows, per_window, d]
        if self.q_pool:
            # The leading (y1, x1) bits of each window's tokens are the 2x2 neighbourhood.
            q = q.reshape(b, self.heads, self.num_windows, Q_STRIDE**2, -1, self.head_dim).amax(dim=3)
        out = attention(q.flatten(1, 2), k.flatten(1, 2), v.flatten(1, 2))
        out = out.unflatten(1, (self.heads, self.num_windows))  # [B, heads, windows, tokens_out, d]
        out = out.permute(0, 3, 2, 1, 4).reshape(b, -1, self.heads * self.head_dim)
        return self.proj(out)


class HieraBlock(nn.Module):
    def __init__(self, block: BlockConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(block.dim_in, eps=LAYER_NORM_EPS)
        # The residual path needs a projection only where the width changes (first block of a stage).
        self.proj = nn.Linear(block.dim_in, block.dim_out) if block.dim_in != block.dim_out else None
        self.attn = MaskUnitAttention(block)
        self.norm2 = nn.LayerNorm(block.dim_out, eps=LAYER_NORM_EPS)
        hidden = block.dim_out * MLP_RATIO
        # Index 2 is a no-op slot so that the weights sit at mlp.0 and mlp.3, as in Birder's files
        # (torchvision's MLP puts a Dropout there).
        self.mlp = nn.Sequential(
            nn.Linear(block.dim_out, hidden), nn.GELU(), nn.Identity(), nn.Linear(hidden, block.dim_out)
        )
        self.q_pool = block.q_pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_norm = self.norm1(x)
        if self.proj is not None:
            x = self.proj(x_norm)
            if self.q_pool:
                x = x.reshape(x.shape[0], Q_STRIDE**2, -1, x.shape[-1]).amax(dim=1)
        x = x + self.attn(x_norm)
        return x + self.mlp(self.norm2(x))


class TokenMean(nn.Module):
    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens.mean(dim=1)


class Hiera(nn.Module):
    pos_embed_tokens: torch.Tensor  # a buffer, registered in __init__

    def __init__(self, config: HieraConfig) -> None:
        super().__init__()
        self.config = config
        c = config.embed_dim
        global_grid = (config.image_size[0] // GLOBAL_POS_EMBED_STRIDE, config.image_size[1] // GLOBAL_POS_EMBED_STRIDE)
        self.stem = PatchEmbed(c)
        self.pos_embed = nn.Parameter(torch.zeros(1, c, *global_grid))
        self.pos_embed_win = nn.Parameter(torch.zeros(1, c, MASK_UNIT_SIZE, MASK_UNIT_SIZE))
        # The sum of both embeddings in unrolled token order, [1, H/4 * W/4, C]. Derived from the two
        # parameters once per load (`refresh_position_embedding`), never saved.
        self.register_buffer("pos_embed_tokens", torch.zeros(1, math.prod(config.token_grid), c), persistent=False)

        blocks = config.blocks()
        self.body = nn.Sequential(
            OrderedDict(
                (f"stage{stage + 1}", nn.Sequential(*(HieraBlock(b) for b in blocks if b.stage == stage)))
                for stage in range(len(config.depths))
            )
        )

        self.features = nn.Sequential(
            TokenMean(), nn.LayerNorm(config.embedding_dim, eps=LAYER_NORM_EPS), nn.Flatten(1)
        )
        self.classifier = nn.Linear(config.embedding_dim, config.num_classes)
        self.register_load_state_dict_post_hook(lambda module, _keys: module.refresh_position_embedding())
        # On the meta device there is nothing to compute, and running ops there imports torch's
        # compiler stack (about 1.3 s): the load hook computes it once real weights arrive.
        if not self.pos_embed.is_meta:
            self.refresh_position_embedding()

    @torch.no_grad()
    def refresh_position_embedding(self) -> None:
        """AbsWin: the window embedding tiled over all mask units, plus the global embedding
        upsampled (bicubic) to the token grid. Computed in fp32 whatever the model's dtype."""
        grid = self.config.token_grid
        window = self.pos_embed_win.float().tile(1, 1, *self.config.mask_unit_grid)  # [1, C, H/4, W/4]
        global_ = F.interpolate(self.pos_embed.float(), size=grid, mode="bicubic", antialias=True)
        summed = (window + global_).permute(0, 2, 3, 1)  # [1, H/4, W/4, C]
        tokens = unroll(summed, POOLED_STAGES)
        if self.pos_embed_tokens.is_meta:  # built on the meta device, weights assigned since
            self.pos_embed_tokens = tokens.to(self.pos_embed.dtype)
        else:
            self.pos_embed_tokens.copy_(tokens.to(self.pos_embed_tokens.dtype))

    def stage_map(self, tokens: torch.Tensor, stage: int) -> torch.Tensor:
        """Stage `stage`'s (1-4) output tokens [B, N_s, C_s], unrolled -> [B, C_s, H_s, W_s], NCHW.
        For stages 1-3 the reroll is a copy (a permute that is not a view), the cost that a
        caller needing no maps skips."""
        pooled = min(stage - 1, POOLED_STAGES)
        grid = (self.config.token_grid[0] // Q_STRIDE**pooled, self.config.token_grid[1] // Q_STRIDE**pooled)
        levels = max(POOLED_STAGES - (stage - 1), 0)  # pooling bits still in the token order
        return reroll(tokens, grid, levels).permute(0, 3, 1, 2)

    def _tokens(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> [B, H/4 * W/4, C], unrolled, position embedding added."""
        return unroll(self.stem(images), POOLED_STAGES) + self.pos_embed_tokens

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """images: [B, 3, H, W], normalised -> the last stage's tokens [B, H/32 * W/32, C_4].
        Their order is the model's own; `forward_head` only averages them."""
        return self.body(self._tokens(images))

    def forward_intermediates(
        self, images: torch.Tensor, stages: Sequence[int] = (1, 2, 3, 4)
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """As timm's `forward_intermediates(output_fmt="NCHW")`, but `stages` are stage numbers
        1-4 (timm's `indices` count from 0). Returns the last stage's tokens, as
        `forward_features` does, and one [B, C_s, H_s, W_s] map per entry of `stages`, in that
        order. Only the stages asked for are rerolled."""
        wanted = set(stages)
        if not wanted <= set(range(1, len(self.body) + 1)):
            raise ValueError(f"stages are numbered 1 to {len(self.body)}, got {tuple(stages)}")
        x = self._tokens(images)
        maps = {}
        for stage, stage_module in enumerate(self.body, start=1):
            x = stage_module(x)
            if stage in wanted:
                maps[stage] = self.stage_map(x, stage)
        return x, [maps[stage] for stage in stages]

    def forward_head(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The last stage's tokens [B, N, C_4] -> (logits [B, num_classes], embedding [B, C_4])."""
        embedding = self.features(tokens)
        return self.classifier(embedding), embedding

    def forward(self, images: torch.Tensor, *, stage_maps: bool = True) -> HieraOutput:
        """images: [B, 3, H, W], normalised. Returns logits, embedding and, with `stage_maps`,
        the four stage maps; without, no map is built and `.stage_maps` is ()."""
        if stage_maps:
            tokens, maps = self.forward_intermediates(images)
        else:
            tokens, maps = self.forward_features(images), []
        logits, embedding = self.forward_head(tokens)
        return HieraOutput(logits, embedding, tuple(maps))
