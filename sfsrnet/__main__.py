"""Command-line interface: every step of a study can be run by hand exactly as the workflow runs it.

python -m sfsrnet plan                                    # the default study's cells
python -m sfsrnet plan --configfile config/studies/wsj0-2mix.yaml
python -m sfsrnet make-corpus --config config/config.yaml
python -m sfsrnet make-corpus --config config/studies/libri2mix.yaml   # check and prepare
python -m sfsrnet train --config CELL/config.yaml --out CELL
python -m sfsrnet evaluate --config CELL/config.yaml --checkpoint CELL/checkpoint.pt --out CELL
python -m sfsrnet report --study-dir results/default
python -m sfsrnet report --from-mlflow --study default --out results/default-from-mlflow/tables
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import textwrap
from pathlib import Path

from sfsrnet.errors import SfsrnetError

log = logging.getLogger("sfsrnet")


def _write_provenance(out: Path, command: str, **extra: object) -> None:
    from sfsrnet.provenance import provenance

    out.mkdir(parents=True, exist_ok=True)
    record = {**provenance(), **extra}
    (out / f"provenance_{command}.json").write_text(json.dumps(record, indent=2))


def _threads(value: int | None) -> None:
    if value:
        import torch

        torch.set_num_threads(value)
        torch.set_num_interop_threads(1)


def cmd_make_corpus(args: argparse.Namespace) -> None:
    from sfsrnet import config as cfg
    from sfsrnet.data.identity import corpus_folder, resolve_corpus

    config = cfg.load(args.config)
    # The folder and the key come from resolve_corpus alone, as in the workflow and training.
    data = resolve_corpus(config)
    out = Path(args.out or corpus_folder(data))
    if data["corpus"] != "embedded":
        from sfsrnet.data.prepare import prepare_corpus

        manifest = prepare_corpus(data, out, jobs=args.jobs)
        print(
            f"corpus {out}: {data['corpus']} from {manifest['source_root']} at "
            f"{manifest['sample_rate']} Hz, {manifest['n_mixtures']} mixtures, "
            f"prepared in {manifest['seconds_to_build']} s, key {manifest['key']}"
        )
        return
    from sfsrnet.data.embedded import CorpusSpec, make_corpus

    manifest = make_corpus(CorpusSpec.from_config(data), out, jobs=args.jobs)
    print(
        f"corpus {out}: engines {', '.join(manifest['engines'])}, "
        f"built in {manifest['seconds_to_build']} s, key {manifest['key']}"
    )


def cmd_plan(args: argparse.Namespace) -> None:
    from sfsrnet.study import DEFAULT_STUDY, load_study, parse_overrides, plan_study

    base = None if args.no_default else DEFAULT_STUDY
    study = load_study(args.configfile, parse_overrides(args.config), base=base)
    plan = plan_study(study)
    path = plan.write(args.out)
    print(plan.table())
    print(f"\n{len(plan.cells)} cells, {len(plan.corpora)} corpus folder(s); plan: {path}")


def cmd_train(args: argparse.Namespace) -> None:
    from sfsrnet.study import load_cell_config
    from sfsrnet.train import train_cell

    config = load_cell_config(args.config)
    if args.no_resume:
        config["train"]["resume"] = False
    out = Path(args.out)
    _threads(args.threads)
    _write_provenance(out, "train", seed=config["seed"])
    summary = train_cell(config, out)
    print(
        f"trained: best valid SI-SNR {summary['best_valid_si_snr']:.2f} dB "
        f"at epoch {summary['best_epoch']}"
    )


def cmd_evaluate(args: argparse.Namespace) -> None:
    from sfsrnet.evaluate import evaluate_checkpoint
    from sfsrnet.study import load_cell_config

    _threads(args.threads)
    config = load_cell_config(args.config) if args.config else None
    ev = config["evaluate"] if config else {}
    if args.root is None and config is not None:
        from sfsrnet.data.loaders import corpus_root

        args.root = corpus_root(config)
    root = args.root
    if root is None:
        raise SfsrnetError("evaluate needs the corpus: give --root or a --config with data.root")
    out = Path(args.out)
    _write_provenance(out, "evaluate")
    kwargs = dict(
        split=args.split or ev.get("split", "test"),
        max_utterances=args.max_utterances or ev.get("max_utterances"),
        n_examples=ev.get("n_examples", 3) if args.examples is None else args.examples,
        sdr_backend=args.sdr_backend or ev.get("sdr_backend", "fast"),
        band_edges_hz=tuple(ev.get("band_edges", (500.0, 1000.0, 2000.0))),
        progress=not args.no_progress,
    )
    # The files first, MLflow after: a tracking failure must not cost the evaluation.
    _, summary = evaluate_checkpoint(args.checkpoint, root, out_dir=out, **kwargs)
    if config is not None:
        from sfsrnet.tracking import cell_run, log_training

        try:
            with cell_run(config, "evaluate") as run:
                # The training's files lie beside its checkpoint (the cell folder).
                log_training(run, Path(args.checkpoint).parent)
                run.log_metrics({k: v for k, v in summary.items() if isinstance(v, float)})
                run.log_cell_files(out, checkpoints=config["mlflow"]["log_checkpoints"])
        except Exception:
            log.error("logging to MLflow failed; the evaluation's files in %s are kept", out)
            raise
    print(
        f"{summary['split']}: SI-SNRi {summary['si_snr_i']:.2f} "
        f"± {summary['si_snr_i_ci95']:.2f} dB, "
        f"SDRi {summary['sdr_i']:.2f} ± {summary['sdr_i_ci95']:.2f} dB "
        f"({summary['n_utterances']} utterances)"
    )


def cmd_separate(args: argparse.Namespace) -> None:
    from sfsrnet.evaluate import separate_files

    _threads(args.threads)
    for path in separate_files(args.checkpoint, args.wavs, args.out):
        print(path)


def cmd_report(args: argparse.Namespace) -> None:
    from sfsrnet.report import build_report, report_from_mlflow

    if args.from_mlflow:
        if not args.study or not args.out:
            raise SfsrnetError("report --from-mlflow needs --study NAME and --out FOLDER")
        uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        uri = uri or f"sqlite:///{Path(args.results_dir).resolve() / 'mlflow.db'}"
        paths = report_from_mlflow(uri, args.study, args.out, args.experiment)
    else:
        if not args.study_dir:
            raise SfsrnetError("report needs --study-dir (or --from-mlflow --study NAME)")
        paths = build_report(args.study_dir, args.out)
        if not args.no_mlflow:
            _log_report(Path(args.study_dir), paths)
    print(paths["ablation_md"].read_text())


def _log_report(study_dir: Path, paths: dict[str, Path]) -> None:
    """Tables and plots as artifacts of the study's parent MLflow run (settings of the cells)."""
    from sfsrnet import config as cfg
    from sfsrnet.tracking import study_run

    configs = sorted((study_dir / "cells").rglob("config.yaml"))
    if not configs:
        return
    config = cfg.load(configs[0])
    with study_run(config) as run:
        for name, path in sorted(paths.items()):
            run.log_artifact(path, "plots" if name.startswith("plot_") else "tables")
        run.log_metrics({"n_cells": float(len(configs))})


def cmd_bench(args: argparse.Namespace) -> None:
    from sfsrnet.bench import bench_separators

    if args.what == "separators":
        table = bench_separators(
            args.out,
            presets=tuple(args.presets),
            factors=tuple(args.factors),
            modes=tuple(args.modes),
            names=tuple(args.separators) if args.separators else None,
            steps=args.steps,
            threads=args.threads,
        )
    elif args.what == "loader":
        from sfsrnet.bench import bench_loader

        table = bench_loader(args.out, items=args.items, threads=args.threads)
    elif args.what == "sr":
        from sfsrnet.bench import bench_sr_cost

        table = bench_sr_cost(args.out, presets=tuple(args.presets), threads=args.threads)
    elif args.what == "sr-oracle":
        from sfsrnet.bench import bench_sr_oracle

        table = bench_sr_oracle(
            args.out, args.root, args.utterances or 20, args.checkpoint, config_path=args.config
        )
        print(table.to_markdown(index=False, floatfmt=".2f"))
        return
    else:
        from sfsrnet.bench import bench_metrics

        if not args.root:
            raise SfsrnetError("bench metrics needs --root, a corpus with a test split")
        table = bench_metrics(args.out, args.root, args.checkpoint, args.utterances or 200)
    print(table.to_markdown(index=False, floatfmt=".3f"))


def cmd_list_separators(args: argparse.Namespace) -> None:
    from sfsrnet.separators import list_separators

    print("\n".join(list_separators()))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sfsrnet", description=__doc__.splitlines()[0])
    p.add_argument("--debug", action="store_true", help="show Python tracebacks of errors")
    p.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser(
        "plan",
        help="the study's cells (grid, presets, SR-off twins, corpus folders, training identities) "
        "as the workflow runs them; writes <results_dir>/<study>/plan.json",
    )
    s.add_argument(
        "--configfile",
        nargs="*",
        default=[],
        metavar="FILE",
        help="study files applied in order on top of config/config.yaml, as snakemake "
        "--configfile does",
    )
    s.add_argument(
        "--config",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="top-level keys set last, as snakemake --config does (values read as YAML)",
    )
    s.add_argument(
        "--no-default",
        action="store_true",
        help="do not start from config/config.yaml (only the given files)",
    )
    s.add_argument("--out", help="plan file (default: <results_dir>/<study>/plan.json)")
    s.set_defaults(func=cmd_plan)

    s = sub.add_parser(
        "make-corpus",
        help="build the embedded corpus, or check and prepare a real one (cached by its settings)",
    )
    s.add_argument("--config", required=True, help="config YAML; its data section is used")
    s.add_argument(
        "--out",
        help="corpus folder (default: data.root or results/data/embedded-<key>; real corpora: "
        "data.prepared or results/data/<corpus>-<key>)",
    )
    s.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="processes (synthesis; resampling a real corpus)",
    )
    s.set_defaults(func=cmd_make_corpus)

    s = sub.add_parser("train", help="train one cell")
    s.add_argument("--config", required=True, help="the cell's resolved config YAML")
    s.add_argument("--out", required=True, help="cell folder for checkpoint, log and summary")
    s.add_argument("--threads", type=int, help="torch CPU threads")
    s.add_argument(
        "--no-resume",
        action="store_true",
        help="start over even when OUT/last.pt holds an unfinished training of this config",
    )
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("evaluate", help="score a checkpoint on a corpus split")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--out", required=True, help="folder for metrics.csv, summary.json, examples/")
    s.add_argument("--config", help="cell config: evaluation options, corpus root and MLflow run")
    s.add_argument("--root", help="corpus folder in the generic mix/s1/s2 layout")
    s.add_argument("--split", choices=["train", "valid", "test"])
    s.add_argument("--max-utterances", type=int)
    s.add_argument("--examples", type=int, help="number of separated examples to write")
    s.add_argument("--sdr-backend", choices=["fast", "mir_eval"])
    s.add_argument("--threads", type=int, help="torch CPU threads")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("separate", help="separate the sources of your own wav files")
    s.add_argument("wavs", nargs="+", help="mono audio files (resampled to the model's rate)")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--out", required=True, help="folder for <name>_s1.wav, <name>_s2.wav, ...")
    s.add_argument("--threads", type=int, help="torch CPU threads")
    s.set_defaults(func=cmd_separate)

    s = sub.add_parser(
        "report", help="tables and plots of a study from its cell folders or from MLflow"
    )
    s.add_argument("--study-dir", help="e.g. results/default")
    s.add_argument("--out", help="tables folder (default: <study-dir>/tables); plots beside it")
    s.add_argument("--no-mlflow", action="store_true", help="do not log to the study's run")
    s.add_argument("--from-mlflow", action="store_true", help="rebuild from an MLflow store alone")
    s.add_argument("--study", help="--from-mlflow: study name")
    s.add_argument("--experiment", help="--from-mlflow: experiment (default: the study name)")
    s.add_argument(
        "--tracking-uri",
        help="--from-mlflow: store (default: MLFLOW_TRACKING_URI, else "
        "sqlite:///<results-dir>/mlflow.db)",
    )
    s.add_argument("--results-dir", default="results", help="--from-mlflow: see --tracking-uri")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("bench", help="benchmarks (speed, memory); not tests")
    s.add_argument(
        "what",
        choices=["separators", "sr", "metrics", "loader", "sr-oracle"],
        help="separators: training step time and memory; sr: SR params, MACs and CPU time next "
        "to each separator's; metrics: our evaluator against Asteroid's and mir_eval; loader: "
        "training items per second on a fake Libri2Mix tree (static and dynamic mixing); "
        "sr-oracle: band SNR above the low-rate Nyquist of oracle magnitudes and each SR phase "
        "rule (results/bench/sr_oracle.{csv,md})",
    )
    s.add_argument("--items", type=int, default=320, help="loader: items read per case")
    s.add_argument(
        "--root",
        help="metrics, sr-oracle: corpus folder (its test split is used); sr-oracle's default: "
        "the --config corpus, built if missing",
    )
    s.add_argument(
        "--checkpoint",
        help="metrics: estimates from this model (default: synthetic); sr-oracle: adds the "
        "magnitude of this checkpoint's SR (at its factor and mode)",
    )
    s.add_argument("--utterances", type=int, help="test utterances (metrics: 200, sr-oracle: 20)")
    s.add_argument(
        "--config", default="config/config.yaml", help="sr-oracle: corpus and default SR phase"
    )
    s.add_argument("--out", default="results/bench", help="folder for the CSV and Markdown table")
    s.add_argument("--separators", nargs="*", help="default: every registered separator")
    s.add_argument("--presets", nargs="*", default=["tiny", "published"])
    s.add_argument("--factors", nargs="*", type=int, default=[1, 2, 4, 8])
    s.add_argument("--modes", nargs="*", default=["resample", "stride"])
    s.add_argument("--steps", type=int, default=3, help="timed training steps per case")
    s.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    s.set_defaults(func=cmd_bench)

    s = sub.add_parser("list-separators", help="registered separator names")
    s.set_defaults(func=cmd_list_separators)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        args.func(args)
    except SfsrnetError as err:
        if args.debug:
            raise
        # Paths stay whole (no breaks at hyphens), so they can be copied from the terminal.
        message = textwrap.fill(
            f"error: {err}",
            width=100,
            subsequent_indent="  ",
            break_long_words=False,
            break_on_hyphens=False,
        )
        print(f"{message}\n  (run with --debug for the traceback)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
