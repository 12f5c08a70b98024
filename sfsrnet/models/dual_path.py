"""Dual-path transformer masker (SepFormer, Subakan et al. 2021; SFSRNet, Rixen & Renz 2022).

The encoder output ``(batch, n_filters, frames)`` is cut into overlapping chunks with Asteroid's
:class:`~asteroid.dsp.overlap_add.DualPathProcessing`; each block runs transformers within chunks
(intra) and across chunks (inter). A head turns the chunk grid into one mask per source. SepFormer
uses one head after its last block; SFSRNet puts a head after every block and scores each block's
estimate (multi-resolution loss), with the feed-forward of each layer ending in a 2-D convolution
over the chunk grid.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from asteroid.dsp.overlap_add import DualPathProcessing
from asteroid.models.base_models import BaseEncoderMaskerDecoder
from asteroid_filterbanks import make_enc_dec
from torch import nn

FeedForward = Literal["linear", "conv2d"]


class PositionalEncoding(nn.Module):
    """Sinusoidal positions added to ``(batch, length, d_model)`` sequences."""

    def __init__(self, d_model: int, max_len: int = 20000) -> None:
        super().__init__()
        position = torch.arange(max_len)[:, None]
        freq = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        table = torch.zeros(max_len, d_model)
        table[:, 0::2] = torch.sin(position * freq)
        table[:, 1::2] = torch.cos(position * freq[: d_model // 2])
        self.register_buffer("table", table, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.table[: x.shape[1]]


class ConvFFNLayer(nn.Module):
    """Pre-norm transformer layer whose feed-forward is Linear(d_ffn) then Conv2d(kernel 3) over
    the chunk grid (PAPER.md, SFSRNet separator). Works on the grid ``(batch, d_model, K, S)``."""

    def __init__(self, d_model: int, n_heads: int, d_ffn: int, dropout: float, axis: str) -> None:
        super().__init__()
        self.axis = axis
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(d_model)
        self.linear = nn.Linear(d_model, d_ffn)
        self.conv = nn.Conv2d(d_ffn, d_model, kernel_size=3, padding=1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, seq: torch.Tensor, grid_shape: tuple[int, int, int]) -> torch.Tensor:
        """``seq`` ``(batch * other, length, d_model)`` -> same shape."""
        h = self.norm1(seq)
        seq = seq + self.dropout(self.attn(h, h, h, need_weights=False)[0])
        h = torch.relu(self.linear(self.norm2(seq)))
        grid = _to_grid(h, grid_shape, self.axis)
        h = _to_sequences(self.conv(grid), self.axis)
        return seq + self.dropout(h)


def _to_sequences(grid: torch.Tensor, axis: str) -> torch.Tensor:
    """``(B, N, K, S)`` -> intra: ``(B*S, K, N)``; inter: ``(B*K, S, N)``."""
    b, n, k, s = grid.shape
    if axis == "intra":
        return grid.permute(0, 3, 2, 1).reshape(b * s, k, n)
    return grid.permute(0, 2, 3, 1).reshape(b * k, s, n)


def _to_grid(seq: torch.Tensor, grid_shape: tuple[int, int, int], axis: str) -> torch.Tensor:
    """Inverse of :func:`_to_sequences`; ``grid_shape`` is ``(B, K, S)``."""
    b, k, s = grid_shape
    n = seq.shape[-1]
    if axis == "intra":
        return seq.reshape(b, s, k, n).permute(0, 3, 2, 1)
    return seq.reshape(b, k, s, n).permute(0, 3, 1, 2)


class PathTransformer(nn.Module):
    """``n_layers`` transformer layers along one axis of the chunk grid, with positions, a final
    norm and a residual connection around the whole stack."""

    def __init__(
        self,
        axis: str,
        d_model: int,
        n_layers: int,
        n_heads: int,
        d_ffn: int,
        dropout: float,
        feed_forward: FeedForward,
    ) -> None:
        super().__init__()
        self.axis = axis
        self.feed_forward = feed_forward
        self.positions = PositionalEncoding(d_model)
        if feed_forward == "linear":
            self.layers = nn.ModuleList(
                nn.TransformerEncoderLayer(
                    d_model, n_heads, d_ffn, dropout, batch_first=True, norm_first=True
                )
                for _ in range(n_layers)
            )
        else:
            self.layers = nn.ModuleList(
                ConvFFNLayer(d_model, n_heads, d_ffn, dropout, axis) for _ in range(n_layers)
            )
        self.norm = nn.LayerNorm(d_model)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        """``(B, N, K, S)`` -> ``(B, N, K, S)``."""
        b, _, k, s = grid.shape
        seq = self.positions(_to_sequences(grid, self.axis))
        for layer in self.layers:
            seq = layer(seq) if self.feed_forward == "linear" else layer(seq, (b, k, s))
        return grid + _to_grid(self.norm(seq), (b, k, s), self.axis)


class MaskHead(nn.Module):
    """Chunk grid -> one mask per source: PReLU, 1x1 conv to ``n_src`` copies, overlap-add,
    gated output and ReLU (SepFormer's head)."""

    def __init__(self, d_model: int, n_src: int) -> None:
        super().__init__()
        self.n_src = n_src
        self.prelu = nn.PReLU()
        self.to_sources = nn.Conv2d(d_model, d_model * n_src, kernel_size=1)
        self.gate_tanh = nn.Conv1d(d_model, d_model, 1)
        self.gate_sigmoid = nn.Conv1d(d_model, d_model, 1)
        self.out = nn.Conv1d(d_model, d_model, 1, bias=False)

    def forward(self, grid: torch.Tensor, chunker: DualPathProcessing, frames: int) -> torch.Tensor:
        """``(B, N, K, S)`` -> masks ``(B, n_src, N, frames)``."""
        b, n, k, s = grid.shape
        x = self.to_sources(self.prelu(grid)).reshape(b * self.n_src, n, k, s)
        x = chunker.fold(x, output_size=frames)
        x = torch.tanh(self.gate_tanh(x)) * torch.sigmoid(self.gate_sigmoid(x))
        return torch.relu(self.out(x)).reshape(b, self.n_src, n, frames)


class DualPathTransformer(nn.Module):
    """The masker: encoder features ``(B, N, frames)`` -> masks ``(B, n_src, N, frames)``.

    Args:
        in_chan: encoder filters N. n_src: sources. n_blocks: dual-path blocks.
        n_intra, n_inter: transformer layers per block within / across chunks.
        n_heads, d_ffn, dropout: transformer sizes. chunk_size: frames per chunk (50 % overlap).
        feed_forward: ``linear`` (SepFormer) or ``conv2d`` (SFSRNet).
        intermediate: also compute masks after every block (``self.intermediate_masks``).
        shared_heads: with ``intermediate``, one head serves every block (else one per block).
    """

    def __init__(
        self,
        in_chan: int,
        n_src: int,
        n_blocks: int = 2,
        n_intra: int = 8,
        n_inter: int = 8,
        n_heads: int = 8,
        d_ffn: int = 1024,
        dropout: float = 0.0,
        chunk_size: int = 250,
        feed_forward: FeedForward = "linear",
        intermediate: bool = False,
        shared_heads: bool = True,
    ) -> None:
        super().__init__()
        self.n_src = n_src
        self.intermediate = intermediate
        self.norm = nn.GroupNorm(1, in_chan, eps=1e-8)
        self.bottleneck = nn.Conv1d(in_chan, in_chan, 1, bias=False)
        self.chunker = DualPathProcessing(chunk_size, chunk_size // 2)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                PathTransformer("intra", in_chan, n_intra, n_heads, d_ffn, dropout, feed_forward),
                PathTransformer("inter", in_chan, n_inter, n_heads, d_ffn, dropout, feed_forward),
            )
            for _ in range(n_blocks)
        )
        n_heads_out = 1 if (shared_heads or not intermediate) else n_blocks
        self.heads = nn.ModuleList(MaskHead(in_chan, n_src) for _ in range(n_heads_out))
        self.intermediate_masks: list[torch.Tensor] = []

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, N, frames)`` -> ``(B, n_src, N, frames)`` (the last block's masks)."""
        frames = features.shape[-1]
        grid = self.chunker.unfold(self.bottleneck(self.norm(features)))
        masks = []
        for i, block in enumerate(self.blocks):
            grid = block(grid)
            if self.intermediate or i == len(self.blocks) - 1:
                head = self.heads[min(i, len(self.heads) - 1)]
                masks.append(head(grid, self.chunker, frames))
        self.intermediate_masks = masks[:-1] if self.intermediate else []
        return masks[-1]


class DualPathTransformerSeparator(BaseEncoderMaskerDecoder):
    """Asteroid's free filterbank encoder -> :class:`DualPathTransformer` masker -> decoder.

    The shared body of SepFormer and the SFSRNet separator; ``masker_kwargs`` go to the masker.
    Maps ``(batch, time)`` to ``(batch, n_src, time)`` at ``sample_rate``.
    """

    def __init__(
        self,
        n_src: int,
        sample_rate: int,
        n_filters: int,
        kernel_size: int,
        stride: int,
        **masker_kwargs: Any,
    ) -> None:
        encoder, decoder = make_enc_dec(
            "free",
            n_filters=n_filters,
            kernel_size=kernel_size,
            stride=stride,
            sample_rate=sample_rate,
        )
        masker = DualPathTransformer(n_filters, n_src, **masker_kwargs)
        super().__init__(encoder, masker, decoder, encoder_activation="relu")
        self.n_src = n_src
        self._args: dict[str, Any] = {
            "n_src": n_src,
            "sample_rate": sample_rate,
            "n_filters": n_filters,
            "kernel_size": kernel_size,
            "stride": stride,
            **masker_kwargs,
        }

    def get_model_args(self) -> dict[str, Any]:
        """Constructor arguments (Asteroid's serialisation contract)."""
        return dict(self._args)
