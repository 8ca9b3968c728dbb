"""The ``jixiaoan`` command line: import, analyze, train, evaluate, adapt, bench and more."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from jixiaoan import __version__
from jixiaoan.model.adapt_modes import ADAPT_MODE_HELP, ADAPT_MODES, DEFAULT_MODE

log = logging.getLogger("jixiaoan")
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "default"


class UserError(Exception):
    """A problem the user can fix; printed without a traceback."""


def parse_device(text: str):
    """``--device`` value: a MAC address, an IP address, or ``MAC,IP[,NAME]``."""
    from jixiaoan.engine.devices import parse_device as parse

    try:
        return parse(text)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _check_capture(path: str) -> str:
    if not os.path.isfile(path):
        raise UserError(f"capture not found: {path}")
    return path


def load_detector(model_dir: str | None):
    """Load a model directory (default: the shipped model) as a Detector."""
    from jixiaoan.model.eset import ESeT

    path = Path(model_dir) if model_dir else DEFAULT_MODEL
    if not (path / "card.json").exists():
        raise UserError(f"no model at {path} (expected card.json and weights.safetensors)")
    try:
        return ESeT.load(str(path))
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"cannot load the model at {path}: {exc}") from exc


def cmd_run_capture(args: argparse.Namespace, classify: bool) -> int:
    """``import`` (classify=False) and ``analyze`` (classify=True)."""
    from jixiaoan.engine.offline import discover_devices, run_capture
    from jixiaoan.engine.pipeline import Engine
    from jixiaoan.storage.store import PacketStore

    path = _check_capture(args.capture)
    if args.device:
        devices = [parse_device(d) for d in args.device]
    else:
        devices, error = discover_devices(path)
        if not devices:
            detail = f" ({error})" if error else ""
            raise UserError(f"no local device found in {path}{detail}; name one with --device")
    detector = load_detector(args.model) if classify else None
    engine = Engine(devices, detector)
    store = PacketStore(args.db, blocking=True)
    try:
        for dev in devices:
            store.register_device(dev)
        if detector is not None:
            store.set_meta("model", getattr(detector, "name", "model"))
        result = run_capture(path, engine, [store.submit], progress=not args.quiet)
        store.flush()
    finally:
        store.close()
    rate = result.packets / result.seconds if result.seconds > 0 else 0.0
    print(
        f"{path}: {result.packets} packets in {result.seconds:.2f} s "
        f"({rate:,.0f} pkt/s) -> {args.db}"
    )
    if result.error:
        print(f"warning: capture damaged, stopped early: {result.error}", file=sys.stderr)
    _print_summary(result, classify)
    return 0 if not result.error else 3


def _print_summary(result, classify: bool) -> None:
    summary = result.summary
    header = f"{'device':<28} {'mac':<17} {'packets':>9} {'bytes':>11} {'sessions':>8}"
    header += f" {'malicious':>9}  top attacks" if classify else "  protocols"
    print(header)
    for dev, tot in zip(result.devices, summary.totals):
        name = dev.label if not dev.name else f"{dev.name} ({dev.ip or dev.mac})"
        row = f"{name[:28]:<28} {dev.mac or '-':<17} {tot.packets:>9} {tot.bytes:>11}"
        row += f" {len(tot.sessions):>8}"
        if classify:
            top = ", ".join(f"{a} {c}" for a, c in tot.attacks.most_common(3)) or "-"
            row += f" {tot.malicious_share:>8.1%}  {top}"
        else:
            row += "  " + ", ".join(f"{p} {c}" for p, c in tot.protocols.most_common(5))
        print(row)
    if not classify:
        print("IsBad is NULL (not yet classified): run `jixiaoan analyze` to classify.")


def _research(run):
    """Run a train/evaluate/adapt step; bad labels, captures or models become user errors."""
    from jixiaoan.capture.batch import CaptureError

    try:
        return run()
    except (ValueError, OSError, CaptureError) as exc:  # LabelsError, ModelFileError included
        raise UserError(str(exc)) from exc


def cmd_train(args: argparse.Namespace) -> int:
    from jixiaoan.model import commands

    _research(lambda: commands.train(args.labels, args.labelled_fraction, args.out, seed=args.seed))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from jixiaoan.model import commands

    try:
        fractions = [float(f) for f in args.fractions.split(",")] if args.fractions else None
    except ValueError:
        raise UserError(f"--fractions {args.fractions!r}: give numbers like 0.01,0.1") from None
    methods = args.methods.split(",") if args.methods else None
    seeds = _seeds(args.seeds)
    if args.model and args.seeds:
        raise UserError("--seeds trains the methods once per seed; --model scores a trained model")
    _research(
        lambda: commands.evaluate(
            args.labels,
            model_dir=args.model,
            methods=methods,
            fractions=fractions,
            json_out=args.json,
            png_dir=args.png_dir,
            adapt_until_s=args.adapt_until,
            adapt_labels=args.adapt_labels,
            adapt_mode=args.adapt_mode,
            seeds=seeds,
        )
    )
    return 0


def _seeds(text: str | None) -> list[int]:
    from jixiaoan.model.seed_summary import parse_seeds

    try:
        return parse_seeds(text)
    except ValueError as exc:
        raise UserError(f"--seeds: {exc}") from None


def cmd_adapt(args: argparse.Namespace) -> int:
    from jixiaoan.model import commands

    capture = _check_capture(args.capture)
    _research(
        lambda: commands.adapt(
            args.model, capture, args.until, args.out, labels_csv=args.labels, mode=args.mode
        )
    )
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from jixiaoan.bench import run_bench

    return run_bench(args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    p = argparse.ArgumentParser(prog="jixiaoan", description="Ji XiaoAn IoT intrusion detection")
    p.add_argument("--version", action="version", version=f"jixiaoan {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = p.add_subparsers(dest="command", required=True)

    for name, helptext in (
        ("import", "store a capture's packets per device, unclassified"),
        ("analyze", "classify a capture's packets with a model and store them per device"),
    ):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("capture", help="pcap or pcapng file")
        s.add_argument("--db", required=True, help="SQLite file to write")
        s.add_argument("--device", action="append", help="MAC, IP or MAC,IP[,NAME]; repeatable")
        s.add_argument("--quiet", action="store_true", help="no progress bar")
        if name == "analyze":
            s.add_argument("--model", help="model directory (default: the shipped model)")
        s.set_defaults(func=lambda a, c=(name == "analyze"): cmd_run_capture(a, c))

    from jixiaoan.lab.cli import add_lab_parser
    from jixiaoan.model.robust_cli import add_robustness_parser
    from jixiaoan.runtime.cli import add_monitor_parser

    add_monitor_parser(sub)
    add_lab_parser(sub)
    add_robustness_parser(sub)

    s = sub.add_parser("train", help="train ESeT on labelled captures")
    s.add_argument("--labels", required=True, help="labels.csv (corpus format)")
    s.add_argument("--labelled-fraction", type=float, default=0.1)
    s.add_argument("--out", required=True, help="model directory to write")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("evaluate", help="evaluate ESeT and baselines, or a trained model")
    s.add_argument("--labels", required=True)
    s.add_argument("--model", help="score this trained model on every file of the CSV")
    s.add_argument("--methods", help="comma list: eset,det,kitnet,classic,eset-noselector,"
                   "eset-noenhance; eset-x3 (any K >= 2) trains a K-seed ESeT ensemble")
    s.add_argument("--fractions", help="comma list of labelled fractions, e.g. 0.01,0.1")
    s.add_argument("--json", help="write results here")
    s.add_argument("--png-dir", help="write confusion matrix and PR curve PNGs here")
    s.add_argument("--seeds", help="train every method once per seed (e.g. 0-8 or 0,3,5; default "
                   "0) and print the spread: one seed can move F1 by 0.2 on a corpus like ours")
    s.add_argument("--adapt-until", type=float, metavar="SECONDS",
                   help="with --model: adapt it on the first SECONDS of the CSV's captures and "
                   "report before/after on the rest and the whole")
    s.add_argument("--adapt-labels", help="labelled corpus mixed into a retraining adaptation "
                   "(default: the one named in the model card)")
    s.add_argument("--adapt-mode", choices=ADAPT_MODES, default=DEFAULT_MODE, help=ADAPT_MODE_HELP)
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("adapt", help="adapt a model to a site's own unlabelled traffic")
    s.add_argument("--model", required=True)
    s.add_argument("--capture", required=True)
    s.add_argument("--until", type=float, help="use only the first SECONDS of the capture")
    s.add_argument("--labels", help="labelled corpus to mix in when retraining (labels.csv)")
    s.add_argument("--mode", choices=ADAPT_MODES, default=DEFAULT_MODE, help=ADAPT_MODE_HELP)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_adapt)

    s = sub.add_parser("bench", help="measure throughput of every stage")
    s.add_argument("--capture", help="capture to use (default: build a 250k-packet one)")
    s.add_argument("--packets", type=int, default=250_000)
    s.add_argument("--model", help="model directory (default: the shipped model)")
    s.add_argument("--only", help="comma list of stages to run")
    s.add_argument("--repeats", type=int, default=3,
                   help="runs of the model and analyze stages; the best is reported")
    s.set_defaults(func=cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``jixiaoan`` command."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"jixiaoan: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("jixiaoan: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
