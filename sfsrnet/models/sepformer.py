"""SepFormer (Subakan et al. 2021) on Asteroid's building blocks, registered as ``sepformer``.

Asteroid's free filterbank encoder/decoder and dual-path chunking around PyTorch transformer
layers, in SpeechBrain's published WSJ0-2mix configuration by default: N 256, kernel 16, stride 8,
chunks of 250 frames, 2 blocks of 8 intra- and 8 inter-chunk layers, 8 heads, d_ffn 1024.
"""

from __future__ import annotations

from sfsrnet.models.dual_path import DualPathTransformerSeparator
from sfsrnet.registry import register_separator


class SepFormer(DualPathTransformerSeparator):
    """Maps ``(batch, time)`` to ``(batch, n_src, time)`` at ``sample_rate``.

    >>> import torch
    >>> model = SepFormer(2, n_filters=16, n_blocks=1, n_intra=1, n_inter=1, n_heads=2,
    ...                   d_ffn=32, chunk_size=10)
    >>> model(torch.randn(3, 801)).shape
    torch.Size([3, 2, 801])
    """

    def __init__(
        self,
        n_src: int,
        sample_rate: int = 8000,
        n_filters: int = 256,
        kernel_size: int = 16,
        stride: int = 8,
        n_blocks: int = 2,
        n_intra: int = 8,
        n_inter: int = 8,
        n_heads: int = 8,
        d_ffn: int = 1024,
        dropout: float = 0.0,
        chunk_size: int = 250,
    ) -> None:
        super().__init__(
            n_src,
            sample_rate,
            n_filters,
            kernel_size,
            stride,
            n_blocks=n_blocks,
            n_intra=n_intra,
            n_inter=n_inter,
            n_heads=n_heads,
            d_ffn=d_ffn,
            dropout=dropout,
            chunk_size=chunk_size,
            feed_forward="linear",
        )


build_sepformer = register_separator("sepformer", SepFormer, stride_args=("kernel_size", "stride"))
