"""The SFSRNet separator (Rixen & Renz 2022): a SepFormer with 8 blocks of 2 intra- and 2
inter-chunk transformers, chunks of 50 frames, a convolutional feed-forward, and an estimate after
every block for the multi-resolution loss. Registered as ``sfsrnet``.

After a forward pass in training mode, ``intermediate_estimates`` holds the estimates of blocks
1..K-1, each ``(batch, n_src, time)`` at the separator's rate (the optional capability the
multi-resolution loss looks for).
"""

from __future__ import annotations

import torch
from asteroid.utils.torch_utils import pad_x_to_y

from sfsrnet.models.dual_path import DualPathTransformerSeparator
from sfsrnet.registry import register_separator


class SFSRNetSeparator(DualPathTransformerSeparator):
    """Maps ``(batch, time)`` to ``(batch, n_src, time)`` at ``sample_rate``.

    >>> model = SFSRNetSeparator(2, n_filters=16, n_blocks=3, n_heads=2, d_ffn=32, chunk_size=10)
    >>> est = model(torch.randn(2, 801))
    >>> est.shape, [e.shape for e in model.intermediate_estimates]
    (torch.Size([2, 2, 801]), [torch.Size([2, 2, 801]), torch.Size([2, 2, 801])])
    """

    def __init__(
        self,
        n_src: int,
        sample_rate: int = 8000,
        n_filters: int = 256,
        kernel_size: int = 16,
        stride: int = 8,
        n_blocks: int = 8,
        n_intra: int = 2,
        n_inter: int = 2,
        n_heads: int = 8,
        d_ffn: int = 512,
        dropout: float = 0.0,
        chunk_size: int = 50,
        shared_heads: bool = True,
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
            feed_forward="conv2d",
            intermediate=True,
            shared_heads=shared_heads,
        )
        self.intermediate_estimates: list[torch.Tensor] = []

    def _decode(self, tf_rep: torch.Tensor, masks: torch.Tensor, wav: torch.Tensor) -> torch.Tensor:
        return pad_x_to_y(self.forward_decoder(self.apply_masks(tf_rep, masks)), wav)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """``(batch, time)`` -> ``(batch, n_src, time)``; intermediate estimates in training."""
        if wav.dim() != 2:
            raise ValueError(f"expected (batch, time), got shape {tuple(wav.shape)}")
        wav3 = wav[:, None, :]
        tf_rep = self.forward_encoder(wav3)
        masks = self.forward_masker(tf_rep)
        if self.training:
            self.intermediate_estimates = [
                self._decode(tf_rep, m, wav3) for m in self.masker.intermediate_masks
            ]
        else:
            self.intermediate_estimates = []
        return self._decode(tf_rep, masks, wav3)


build_sfsrnet = register_separator(
    "sfsrnet", SFSRNetSeparator, stride_args=("kernel_size", "stride")
)
