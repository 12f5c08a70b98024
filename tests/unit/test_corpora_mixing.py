"""Dynamic mixing, padded batches and the masked SI-SNR that keeps padding out of the loss."""

import numpy as np
import pandas as pd
import pytest
import torch
from asteroid.losses import pairwise_neg_sisdr
from torch.utils.data import DataLoader, default_collate

from sfsrnet.config import validate
from sfsrnet.data.fake import write_fake_corpus
from sfsrnet.data.folder import SeparationFolder
from sfsrnet.data.loaders import pad_collate, train_loaders
from sfsrnet.data.mixing import DynamicMixing, EpochSampler
from sfsrnet.data.prepare import prepare_corpus
from sfsrnet.errors import DataError
from sfsrnet.losses import SeparationLoss, masked_pairwise_neg_si_snr


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A fake Libri2Mix tree prepared at 8 kHz, and the config that reads it."""
    base = tmp_path_factory.mktemp("librimix")
    root = write_fake_corpus("libri2mix", base / "LibriMix", n_mixtures=(10, 3, 3))
    config = validate(
        {
            "data": {
                "corpus": "libri2mix",
                "root": str(root),
                "prepared": str(base / "prepared"),
                "dynamic_mixing": {"enabled": True},
            },
            "train": {"batch_size": 4, "segment": 0.5},
        }
    )
    prepare_corpus(config["data"], base / "prepared")
    return base / "prepared", config


def dm(folder, **kwargs):
    args = {"segment": 0.5, "gain_db": 2.5, "seed": 0, **kwargs}
    return DynamicMixing(folder, "train", 2, 8000, **args)


def test_dynamic_mixing_is_seeded_by_epoch_and_item(prepared):
    folder, _ = prepared
    data = dm(folder)
    assert len(data) == 10
    mix, ref, _ = data[(1, 3)]
    again, _, _ = dm(folder)[(1, 3)]
    assert torch.equal(mix, again)
    assert not torch.equal(mix, data[(2, 3)][0])  # another epoch, another mixture
    assert not torch.equal(mix, data[(1, 4)][0])
    assert not torch.equal(mix, dm(folder, seed=1)[(1, 3)][0])
    assert ref.shape == (2, mix.shape[0]) and mix.shape[0] <= 4000
    assert torch.allclose(mix, ref.sum(0), atol=1e-6)


def test_dynamic_mixtures_pair_different_speakers_with_the_drawn_gains(prepared):
    folder, _ = prepared
    data = dm(folder, gain_db=3.0)
    table = pd.read_csv(folder / "train.csv", dtype=str)
    speaker_of = {}
    for row in table.itertuples():
        for c in (1, 2):
            speaker_of[f"{folder}/train/s{c}/{row.mixture_id}.wav"] = getattr(row, f"s{c}_speaker")
    for index in range(20):
        rng = np.random.default_rng([0, 1, index])
        chosen = data._draw(rng)
        assert speaker_of[data.paths[chosen[0]]] != speaker_of[data.paths[chosen[1]]]
        _, ref, _ = data[(1, index)]
        rms = ref.pow(2).mean(-1).sqrt()
        levels = 20 * torch.log10(rms[0] / rms[1])
        assert abs(levels) <= 6.0 + 0.5  # two sources at +-3 dB around their mean


def test_dynamic_mixing_gives_the_same_batches_with_or_without_workers(prepared):
    folder, _ = prepared
    batches = []
    for workers in (0, 2):
        sampler = EpochSampler(10)
        loader = DataLoader(
            dm(folder),
            batch_size=4,
            sampler=sampler,
            num_workers=workers,
            collate_fn=pad_collate,
        )
        epochs = [[b[0] for b in loader] for _ in range(2)]
        assert sampler.epoch == 2
        batches.append(epochs)
    for a, b in zip(batches[0], batches[1], strict=True):
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(batches[0][0][0], batches[0][1][0])


def test_dynamic_mixing_needs_enough_speakers(prepared):
    folder, _ = prepared
    with pytest.raises(DataError, match="at least n_src=2 speakers"):
        dm(folder, min_length=100.0)


def test_train_loaders_switch_to_dynamic_mixing(prepared):
    _, config = prepared
    train, valid = train_loaders(config, torch.Generator().manual_seed(0))
    assert isinstance(train.dataset, DynamicMixing)
    assert isinstance(train.sampler, EpochSampler)
    mix, ref, lengths = next(iter(train))
    assert mix.shape[0] == 4 and ref.shape[:2] == (4, 2) and lengths.shape == (4,)
    assert isinstance(valid.dataset, SeparationFolder) and valid.batch_size == 1
    static = validate({**config, "data": {**config["data"], "dynamic_mixing": {}}})
    train, _ = train_loaders(static, torch.Generator().manual_seed(0))
    assert isinstance(train.dataset, SeparationFolder)


def test_min_train_length_leaves_short_mixtures_out(prepared):
    folder, _ = prepared
    lengths = pd.read_csv(folder / "train.csv").length
    cut = float(np.median(lengths)) / 8000
    data = SeparationFolder(folder, "train", 2, 8000, min_length=cut)
    assert len(data) == int((lengths >= round(cut * 8000)).sum()) < len(lengths)


def test_pad_collate_pads_and_keeps_lengths():
    items = [(torch.ones(5), torch.ones(2, 5), "a"), (torch.ones(3), 2 * torch.ones(2, 3), "b")]
    mix, ref, lengths = pad_collate(items)
    assert lengths.tolist() == [5, 3]
    assert mix[1].tolist() == [1, 1, 1, 0, 0] and ref[1, 0].tolist() == [2, 2, 2, 0, 0]
    same = [(torch.randn(4), torch.randn(2, 4), n) for n in "ab"]
    mix, ref, _ = pad_collate(same)
    reference = default_collate(same)
    assert torch.equal(mix, reference[0]) and torch.equal(ref, reference[1])


def test_masked_si_snr_equals_asteroid_without_padding():
    torch.manual_seed(0)
    est, ref = torch.randn(3, 2, 800), torch.randn(3, 2, 800)
    masked = masked_pairwise_neg_si_snr(est, ref, torch.full((3,), 800))
    assert torch.allclose(masked, pairwise_neg_sisdr(est, ref), atol=1e-4)


@pytest.mark.parametrize("multiloss", ["off", "rising-rate"])
def test_padding_does_not_change_the_loss(multiloss):
    """A short item's loss is the same alone or padded in a batch, whatever the padding holds."""
    torch.manual_seed(0)
    loss = SeparationLoss(8000, multiloss)
    ref = torch.randn(1, 2, 600)
    est = ref + 0.3 * torch.randn(1, 2, 600)
    blocks = [ref + torch.randn(1, 2, 600) for _ in range(2)]
    alone = loss(est, ref, blocks if multiloss != "off" else None)
    garbage = torch.randn(1, 2, 400) * 10
    padded_est = torch.cat([est, garbage], -1)
    padded_ref = torch.cat([ref, torch.zeros(1, 2, 400)], -1)
    padded_blocks = [torch.cat([b, garbage], -1) for b in blocks]
    lengths = torch.tensor([600])
    in_batch = loss(
        padded_est, padded_ref, padded_blocks if multiloss != "off" else None, lengths=lengths
    )
    tolerance = 1e-4 if multiloss == "off" else 0.05  # band-limiting sees the end differently
    assert in_batch.item() == pytest.approx(alone.item(), abs=tolerance)
    unmasked = loss(padded_est, padded_ref, padded_blocks if multiloss != "off" else None)
    assert abs(unmasked.item() - alone.item()) > 1.0  # without the lengths the padding counts
