"""Datasets and DataLoaders of a cell, built from its validated config in one place.

Training batches are ``(mix, ref, lengths)``: ``mix`` ``(batch, time)``, ``ref``
``(batch, n_src, time)`` zero-padded to the longest item, and ``lengths`` ``(batch,)`` the number
of real samples of each item, so that the loss can leave the padding out
(:class:`sfsrnet.losses.SeparationLoss`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from sfsrnet.data.folder import SeparationFolder
from sfsrnet.data.identity import corpus_folder, corpus_key, read_manifest, resolve_corpus
from sfsrnet.data.mixing import DynamicMixing, EpochSampler
from sfsrnet.errors import ConfigError, DataError


def pad_collate(
    items: list[tuple[torch.Tensor, torch.Tensor, str]],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch ``(mix, ref, name)`` items of any lengths: ``(mix, ref, lengths)``, zero-padded.

    >>> mix, ref, lengths = pad_collate([(torch.ones(5), torch.ones(2, 5), "a"),
    ...                                  (torch.ones(3), torch.ones(2, 3), "b")])
    >>> mix.shape, ref.shape, lengths.tolist()
    (torch.Size([2, 5]), torch.Size([2, 2, 5]), [5, 3])
    """
    lengths = torch.tensor([mix.shape[-1] for mix, _, _ in items])
    time = int(lengths.max())
    if bool((lengths == time).all()):  # the common case: as torch's default collate does
        return (
            torch.stack([mix for mix, _, _ in items]),
            torch.stack([ref for _, ref, _ in items]),
            lengths,
        )
    mix = torch.zeros(len(items), time, dtype=items[0][0].dtype)
    ref = torch.zeros(len(items), items[0][1].shape[0], time, dtype=items[0][1].dtype)
    for b, (m, r, _) in enumerate(items):
        mix[b, : m.shape[-1]] = m
        ref[b, :, : r.shape[-1]] = r
    return mix, ref, lengths


def corpus_root(config: dict[str, Any]) -> Path:
    """The generic-layout folder that a cell's training and evaluation read.

    The folder comes from :func:`sfsrnet.data.identity.resolve_corpus`. embedded: ``data.root``;
    when it is null, the default folder ``<results_dir>/data/embedded-<key>`` must hold the
    corpus. Real corpora: ``data.prepared`` (default ``<results_dir>/data/<corpus>-<key>``),
    which must hold the corpus prepared with the config's settings (``python -m sfsrnet
    make-corpus``). Anything else is an error that says so, raised before any training.
    """
    data = resolve_corpus(config)
    folder = Path(corpus_folder(data))
    manifest = read_manifest(folder)
    if data["corpus"] == "embedded":
        # A data.root given by hand may be any folder in the generic layout, manifest or not.
        if config["data"]["root"] is None and manifest is None:
            raise ConfigError(
                f"data.root is not set and the default corpus folder {folder} holds no corpus: "
                "make the corpus first (python -m sfsrnet make-corpus --config <this config>)"
            )
        return folder
    key = corpus_key(data)
    if manifest is None:
        raise DataError(
            f"the {data['corpus']} corpus is not prepared in {folder}: run "
            "python -m sfsrnet make-corpus --config <this config> first (the workflow does)"
        )
    if manifest["key"] != key:
        raise DataError(
            f"{folder} holds the {manifest['corpus']} corpus prepared with other settings "
            f"(key {manifest['key']}, this config's is {key}): prepare it again "
            "(python -m sfsrnet make-corpus) or set data.prepared to another folder"
        )
    return folder


def train_loaders(
    config: dict[str, Any], generator: torch.Generator
) -> tuple[DataLoader, DataLoader]:
    """Training and validation loaders of a validated cell config.

    Training: the static mixtures of the ``train`` split, shuffled with ``generator`` and cropped
    at random to ``train.segment``, or, with ``data.dynamic_mixing.enabled``, new mixtures every
    epoch (:class:`~sfsrnet.data.mixing.DynamicMixing`; training tells its sampler which
    epoch with ``set_epoch``).
    Validation: the static ``valid`` split, full length, batch 1. Both yield
    ``(mix, ref, lengths)`` (:func:`pad_collate`).
    """
    root = corpus_root(config)
    data, train = config["data"], config["train"]
    n_src, rate = data["n_src"], data["sample_rate"]
    segment = train["segment"] or None
    dm = data["dynamic_mixing"]
    workers = train["num_workers"]
    if dm["enabled"]:
        train_set = DynamicMixing(
            root,
            "train",
            n_src,
            rate,
            segment=segment,
            gain_db=dm["gain_db"],
            seed=int(config["seed"]),
            min_length=data["min_train_length"],
            n_items=dm["n_items"],
        )
        order = {"sampler": EpochSampler(len(train_set))}
    else:
        train_set = SeparationFolder(
            root,
            "train",
            n_src,
            rate,
            segment=segment,
            random_crop=True,
            min_length=data["min_train_length"],
        )
        order = {"shuffle": True, "generator": generator}
    valid_set = SeparationFolder(root, "valid", n_src, rate)
    train_loader = DataLoader(
        train_set,
        batch_size=train["batch_size"],
        drop_last=len(train_set) > train["batch_size"],
        num_workers=workers,
        collate_fn=pad_collate,
        **order,
    )
    valid_loader = DataLoader(valid_set, batch_size=1, num_workers=workers, collate_fn=pad_collate)
    return train_loader, valid_loader
