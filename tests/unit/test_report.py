"""Study tables and plots from hand-made cell folders whose numbers are known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from sfsrnet.config import save_yaml, validate
from sfsrnet.report import build_report, read_study
from sfsrnet.stats import bootstrap_ci, paired_p_value

N_UTT = 12
CORPUS_KEY = "0123456789ab"
BANDS = [(0.0, 1000.0, False), (1000.0, 2000.0, False), (2000.0, 4000.0, True)]


def _write_cell(study: Path, axes: dict, si_snr_i: np.ndarray, band_offset: float = 0.0) -> Path:
    """A cell folder as train + evaluate leave it, with per-utterance SI-SNRi ``si_snr_i``
    (``(N_UTT, 2)``: utterance x source); SDRi is SI-SNRi + 1."""
    sr = axes.get("sr", False)
    config = validate(
        {
            "study": study.name,
            "seed": axes.get("seed", 0),
            "separator": {"name": axes["separator"]},
            "system": {"factor": axes["factor"], "mode": axes.get("mode", "resample")},
            "sr": {
                "enabled": sr,
                "args": {"heuristic": axes.get("heuristic", True)},
                "control": axes.get("control", "none"),
            },
        }
    )
    name = "/".join(
        [axes["separator"], f"ds{axes['factor']}"]
        + ([axes["mode"]] if "mode" in axes else [])
        + ([f"heuristic-{'on' if axes['heuristic'] else 'off'}"] if "heuristic" in axes else [])
        + [f"sr-{'on' if sr else 'off'}"]
        + ([axes["control"]] if "control" in axes else [])
        + [f"seed{axes.get('seed', 0)}"]
    )
    config["cell"] = {"name": name, "axes": axes}
    # The corpus the cell read, as resolve_corpus names it and make-corpus leaves it.
    corpus = study.parent / "data" / f"embedded-{CORPUS_KEY}"
    corpus.mkdir(parents=True, exist_ok=True)
    manifest = {"key": CORPUS_KEY, "corpus": "embedded", "engines": ["espeak"]}
    (corpus / "manifest.json").write_text(json.dumps(manifest))
    config["data"]["root"] = str(corpus)
    cell = study / "cells" / name
    cell.mkdir(parents=True)
    save_yaml(config, cell / "config.yaml")
    rows, band_rows = [], []
    for u in range(N_UTT):
        for s in range(2):
            value = float(si_snr_i[u, s])
            rows.append({"utterance": f"u{u:02d}", "source": s, "si_snr_i": value})
            rows[-1]["sdr_i"] = value + 1.0
            for lo, hi, above in BANDS:
                snr = value + (band_offset if above else 0.0) - lo / 1000
                band_rows.append(
                    {"utterance": f"u{u:02d}", "source": s, "band_lo_hz": lo, "band_hi_hz": hi}
                    | {"above_low_nyquist": above, "band_snr": snr}
                )
    pd.DataFrame(rows).to_csv(cell / "metrics.csv", index=False)
    pd.DataFrame(band_rows).to_csv(cell / "bands.csv", index=False)
    (cell / "summary.json").write_text(json.dumps({"si_snr_i": float(si_snr_i.mean())}))
    cost = {"params_separator": 1e6, "params_sr": 2e5 if sr else 0, "rtf": 0.1 + 0.05 * sr}
    cost |= {"macs_per_second_separator": 1e9 / axes["factor"], "macs_per_second_sr": 1e8 * sr}
    cost |= {"rtf_without_sr": 0.1 if sr else None, "peak_rss_mib": 900.0}
    (cell / "cost.json").write_text(json.dumps(cost))
    (cell / "train.json").write_text(json.dumps({"n_params": 10, "train_seconds": 60.0}))
    pd.DataFrame({"epoch": [1, 2], "train_loss": [3.0, 2.0], "valid_si_snr": [1.0, 2.0]}).to_csv(
        cell / "train_log.csv", index=False
    )
    return cell


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """ConvTasNet at factors 1 and 2 with SR off/on at factor 2, two seeds: SR adds 1 dB."""
    root = tmp_path_factory.mktemp("report") / "toy"
    rng = np.random.default_rng(0)
    base = rng.normal(5.0, 2.0, size=(N_UTT, 2))
    for seed in (0, 1):
        noise = rng.normal(0.0, 0.5, size=(N_UTT, 2))
        _write_cell(root, {"separator": "convtasnet", "factor": 1, "seed": seed}, base + noise)
        for sr in (False, True):
            values = base - 1.0 + noise + (1.0 + seed * 0.2 if sr else 0.0)
            axes = {"separator": "convtasnet", "factor": 2, "sr": sr, "seed": seed}
            _write_cell(root, axes, values, band_offset=2.0 if sr else 0.0)
    return root


@pytest.fixture(scope="module")
def paths(study):
    return build_report(study)


def test_ablation_row_is_recomputed_from_the_per_utterance_files(study, paths):
    table = pd.read_csv(paths["ablation_csv"])
    assert list(zip(table.separator, table.factor, strict=True)) == [
        ("convtasnet", 1),
        ("convtasnet", 2),
    ]
    row = table[table.factor == 2].iloc[0]
    per_utt = {}
    for sr in ("off", "on"):
        per_utt[sr] = pd.concat(
            [
                pd.read_csv(study / f"cells/convtasnet/ds2/sr-{sr}/seed{s}/metrics.csv")
                .groupby("utterance")
                .si_snr_i.mean()
                for s in (0, 1)
            ],
            axis=1,
        )
    assert row.si_snr_i_off == pytest.approx(per_utt["off"].to_numpy().mean(), abs=1e-5)
    assert row.si_snr_i_on == pytest.approx(per_utt["on"].to_numpy().mean(), abs=1e-5)
    assert row.si_snr_i_delta == pytest.approx(1.1, abs=1e-5)  # 1.0 and 1.2 on the two seeds
    assert row.si_snr_i_delta_low < 1.1 < row.si_snr_i_delta_high
    assert row.sdr_i_on == pytest.approx(row.si_snr_i_on + 1.0)
    assert row.n_seeds == 2 and row.n_utterances == N_UTT
    # Every pair improves by at least 1 dB: the rank test must say so.
    diff = (per_utt["on"] - per_utt["off"]).mean(axis=1)
    assert row.si_snr_i_p == pytest.approx(scipy_stats.wilcoxon(diff).pvalue)
    assert row.si_snr_i_p < 0.01
    # Factor 1 has no SR-on cell: its "on" and delta are empty, its "off" is there.
    first = table[table.factor == 1].iloc[0]
    assert np.isfinite(first.si_snr_i_off) and np.isnan(first.si_snr_i_on)


def test_band_table_shows_the_gain_above_the_low_nyquist_only(paths):
    bands = pd.read_csv(paths["bands_csv"])
    ds2 = bands[bands.factor == 2]
    assert len(ds2) == len(BANDS)
    high = ds2[ds2.above_low_nyquist].iloc[0]
    low = ds2[~ds2.above_low_nyquist].iloc[0]
    assert high.band_snr_delta == pytest.approx(2.0 + 1.1, abs=1e-5)
    assert low.band_snr_delta == pytest.approx(1.1, abs=1e-5)


def test_tables_are_written_as_csv_markdown_and_booktabs_latex(study, paths):
    for name in ("ablation", "bands", "cost", "paper", "cells"):
        tex = paths[f"{name}_tex"].read_text()
        assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex, name
        assert not any(ord(c) > 127 for c in tex), f"{name}.tex has non-ASCII characters"
        markdown = paths[f"{name}_md"].read_text()
        assert markdown.count("|") > 4, name
    ablation_md = paths["ablation_md"].read_text()
    assert "SI-SNRi Δ" in ablation_md and "+1.10 [" in ablation_md
    for name in ("bands", "cost", "curves"):
        for ext in ("png", "svg"):
            assert paths[f"plot_{name}_{ext}"].stat().st_size > 1000


def test_paper_table_marks_published_numbers_as_theirs(study, paths):
    paper = pd.read_csv(paths["paper_csv"])
    tasnet = paper[paper["published model"] == "Conv-TasNet"].iloc[0]
    assert tasnet["published SI-SNRi"] == 15.3
    ablation = pd.read_csv(paths["ablation_csv"])
    assert tasnet["our SI-SNRi"] == pytest.approx(ablation.si_snr_i_off[0])
    assert (
        paper[paper["published model"] == "SFSRNet"]["our configuration"] == "not in this study"
    ).all()
    assert "theirs" in paths["paper_md"].read_text()


def test_cost_table_keeps_separator_and_sr_apart(paths):
    cost = pd.read_csv(paths["cost_csv"])
    on = cost[(cost.factor == 2) & cost.sr].iloc[0]
    assert on.params_sr == 2e5 and on.macs_per_second_separator == 5e8
    assert on.trained == "SR only" and on.n_seeds == 2
    off = cost[(cost.factor == 2) & ~cost.sr].iloc[0]
    assert off.rtf_without_sr == off.rtf  # without SR, the system is the separator


def test_sr_only_axis_pairs_each_variant_with_the_one_sr_off_twin(tmp_path):
    root = tmp_path / "heur"
    values = np.full((N_UTT, 2), 4.0) + np.linspace(0, 1, N_UTT)[:, None]
    _write_cell(root, {"separator": "sepformer", "factor": 4, "sr": False}, values)
    for heuristic, gain in ((False, 0.5), (True, 1.5)):
        axes = {"separator": "sepformer", "factor": 4, "heuristic": heuristic, "sr": True}
        _write_cell(root, axes, values + gain)
    study = read_study(root)
    assert study.keys == ["separator", "factor", "heuristic"]
    table = pd.read_csv(build_report(root)["ablation_csv"])
    assert len(table) == 2
    assert table.si_snr_i_delta.round(5).tolist() == [0.5, 1.5]
    assert table.si_snr_i_off.nunique() == 1


def test_bootstrap_interval_widens_with_spread_between_seeds():
    rng = np.random.default_rng(1)
    utts = rng.normal(0, 1, size=200)
    same = bootstrap_ci(np.stack([utts, utts]))
    apart = bootstrap_ci(np.stack([utts - 2, utts + 2]))
    assert same[0] == pytest.approx(apart[0])
    assert (apart[2] - apart[1]) > 3 * (same[2] - same[1])
    # One seed: close to the t interval of the mean.
    mean, low, high = bootstrap_ci(utts)
    half = scipy_stats.t.ppf(0.975, 199) * utts.std(ddof=1) / np.sqrt(200)
    assert (high - low) / 2 == pytest.approx(half, rel=0.15)
    assert bootstrap_ci(utts) == (mean, low, high)  # seeded: reproducible to the last digit


def test_paired_p_value_drops_missing_pairs():
    on, off = np.arange(10.0) + 1, np.arange(10.0)
    on[3] = np.nan
    assert paired_p_value(on, off) == pytest.approx(scipy_stats.wilcoxon(np.ones(9)).pvalue)
    assert np.isnan(paired_p_value(off, off))


def test_tables_name_the_corpus_its_key_and_engines(paths):
    first = paths["ablation_md"].read_text().splitlines()[0]
    assert first == f"Corpus: embedded-{CORPUS_KEY} (engines: espeak)"
    cells = pd.read_csv(paths["cells_csv"], dtype=str)
    assert set(cells.corpus) == {f"embedded-{CORPUS_KEY}"}
    assert set(cells.corpus_key) == {CORPUS_KEY} and set(cells.engines) == {"espeak"}


# --- controls (issue 14) -------------------------------------------------------------------

# SI-SNRi above SR off, per control group: refine gains 0.6 dB (+ utterance noise), SR on 1.0.
GAINS = {("off", "none"): 0.0, ("off", "budget"): 0.3, ("on", "refine"): 0.6, ("on", "none"): 1.0}


@pytest.fixture(scope="module")
def controls(tmp_path_factory):
    """Factors 2 and 4, each with SR off, budget, refine and SR on, two seeds; per-utterance
    noise on every cell so the differences vary."""
    root = tmp_path_factory.mktemp("controls") / "ctl"
    rng = np.random.default_rng(3)
    base = rng.normal(5.0, 2.0, size=(N_UTT, 2))
    values = {}
    for factor in (2, 4):
        for seed in (0, 1):
            for (side, control), gain in GAINS.items():
                x = base + gain * factor / 2 + rng.normal(0.0, 0.3, size=(N_UTT, 2))
                axes = {"separator": "convtasnet", "factor": factor, "sr": side == "on"}
                axes |= {"control": control, "seed": seed}
                _write_cell(root, axes, x, band_offset=gain)
                values[factor, seed, side, control] = x
    return root, values


def _by_hand(values, factor, later, earlier):
    """Mean over seeds and utterances of later - earlier (sources averaged first), and the
    Wilcoxon p of the per-utterance differences averaged over seeds."""
    diffs = np.stack(
        [
            values[factor, s, *later].mean(axis=1) - values[factor, s, *earlier].mean(axis=1)
            for s in (0, 1)
        ]
    )
    return diffs.mean(), scipy_stats.wilcoxon(diffs.mean(axis=0)).pvalue


def test_ablation_splits_the_sr_gain_into_refinement_and_restoration(controls):
    root, values = controls
    paths = build_report(root)
    table = pd.read_csv(paths["ablation_csv"])
    assert table.factor.tolist() == [2, 4]  # one row per configuration, controls folded in
    on, off = ("on", "none"), ("off", "none")
    refine, budget = ("on", "refine"), ("off", "budget")
    for _, row in table.iterrows():
        f = row.factor
        for column, (later, earlier) in {
            "delta": (on, off),
            "refine_gain": (refine, off),
            "restoration": (on, refine),
            "budget_gain": (budget, off),
            "beyond_budget": (on, budget),
        }.items():
            mean, p = _by_hand(values, f, later, earlier)
            assert row[f"si_snr_i_{column}"] == pytest.approx(mean, abs=1e-5), column
            p_column = "si_snr_i_p" if column == "delta" else f"si_snr_i_{column}_p"
            assert row[p_column] == pytest.approx(p), column
            assert row[f"si_snr_i_{column}_low"] <= mean <= row[f"si_snr_i_{column}_high"]
        # Restoration is what SR adds beyond refining the band the separator covers.
        assert row.si_snr_i_restoration == pytest.approx(
            row.si_snr_i_delta - row.si_snr_i_refine_gain, abs=1e-5
        )
        assert row.si_snr_i_beyond_budget == pytest.approx(
            row.si_snr_i_delta - row.si_snr_i_budget_gain, abs=1e-5
        )
    md = paths["ablation_md"].read_text()
    for label in ("refine only", "Δ restoration (on - refine)", "Δ SR beyond budget", "(Holm)"):
        assert label in md


def test_holm_adjusts_each_p_column_across_the_rows(controls):
    root, _ = controls
    table = pd.read_csv(build_report(root)["ablation_csv"])
    for column in ("si_snr_i_p", "si_snr_i_restoration_p", "sdr_i_budget_gain_p"):
        p = table[column].to_numpy()
        first, second = np.sort(p)  # two rows: Holm multiplies the smaller by 2, the larger by 1
        lower = min(1.0, 2 * first)
        expected = {first: lower, second: max(lower, min(1.0, second))}
        assert table[f"{column}_holm"].tolist() == pytest.approx([expected[v] for v in p])


def test_control_columns_appear_only_with_control_cells(paths):
    table = pd.read_csv(paths["ablation_csv"])
    assert "si_snr_i_delta" in table.columns and "si_snr_i_p_holm" in table.columns
    assert not [c for c in table.columns if "refine" in c or "budget" in c or "restor" in c]


def test_band_table_places_each_gain_in_its_band(controls):
    root, _ = controls
    bands = pd.read_csv(build_report(root)["bands_csv"])
    high = bands[(bands.factor == 2) & bands.above_low_nyquist.astype(bool)].iloc[0]
    low = bands[(bands.factor == 2) & ~bands.above_low_nyquist.astype(bool)].iloc[0]
    # band_offset puts each group's gain a second time into the band above the low Nyquist.
    assert high.band_snr_restoration - low.band_snr_restoration == pytest.approx(0.4, abs=1e-5)
    assert high.band_snr_budget_gain - low.band_snr_budget_gain == pytest.approx(0.3, abs=1e-5)
    assert "band_snr_restoration_p_holm" in bands.columns


def test_stride_mode_bands_are_not_above_a_low_nyquist(tmp_path):
    root = tmp_path / "stride"
    rng = np.random.default_rng(4)
    for sr in (False, True):
        axes = {"separator": "convtasnet", "factor": 2, "mode": "stride", "sr": sr}
        _write_cell(root, axes, rng.normal(5.0, 1.0, size=(N_UTT, 2)))
    paths = build_report(root)
    assert pd.read_csv(paths["bands_csv"]).above_low_nyquist.isna().all()
    assert "n/a (stride)" in paths["bands_md"].read_text()


def test_cost_table_keeps_control_cells_apart(controls):
    root, _ = controls
    cost = pd.read_csv(build_report(root)["cost_csv"])
    two = cost[cost.factor == 2]
    assert sorted(zip(two.sr, two.control, strict=True)) == [
        (False, "budget"),
        (False, "none"),
        (True, "none"),
        (True, "refine"),
    ]
