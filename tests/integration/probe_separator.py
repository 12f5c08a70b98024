"""A separator of a user's own (registered through ``separator.module``) that can be told to go
wrong at one training step: a NaN estimate (non-finite loss) or an infinite gradient."""

from __future__ import annotations

import torch
from torch import nn

import sfsrnet


class ProbeSeparator(nn.Module):
    """Learned filterbank, 1x1 conv masks, transposed-conv decoder: ``(B, T)`` -> ``(B, n_src, T)``.

    ``fail_at``: the training forward call (1-based, counted over the module's life) whose
    output is poisoned; 0 = never. ``poison``: ``loss`` (the estimate is NaN) or ``grad`` (the
    estimate is fine, its gradient infinite).
    """

    def __init__(
        self,
        n_src: int,
        sample_rate: int,
        filters: int = 16,
        stride: int = 8,
        fail_at: int = 0,
        poison: str = "loss",
    ) -> None:
        super().__init__()
        self.n_src, self.sample_rate = n_src, sample_rate
        self.fail_at, self.poison = fail_at, poison
        self.calls = 0
        self.encoder = nn.Conv1d(1, filters, 2 * stride, stride, bias=False)
        self.masker = nn.Conv1d(filters, n_src * filters, 1)
        self.decoder = nn.ConvTranspose1d(filters, 1, 2 * stride, stride, bias=False)

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        feats = torch.relu(self.encoder(mix[:, None]))
        masks = torch.sigmoid(self.masker(feats)).view(
            mix.shape[0], self.n_src, -1, feats.shape[-1]
        )
        est = self.decoder((masks * feats[:, None]).flatten(0, 1))
        est = nn.functional.pad(est, (0, mix.shape[-1] - est.shape[-1]))
        est = est.view(mix.shape[0], self.n_src, -1)
        if self.training:
            self.calls += 1
            if self.calls == self.fail_at and self.poison == "loss":
                est = est * float("nan")
            elif self.calls == self.fail_at and self.poison == "grad":
                est.register_hook(lambda grad: grad * float("inf"))
        return est


sfsrnet.register_separator("probe", ProbeSeparator)
