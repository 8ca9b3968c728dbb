"""``jixiaoan lab``: record real, labelled IoT hotspot traffic with real attack tools.

    jixiaoan lab --out run1 --benign 20 --attack port-scan:camera \\
        --attack syn-flood:camera:rate=2000,count=20000 --gap 5 --benign 10
    jixiaoan lab --list          # attacks, targets and their parameters
    jixiaoan lab --cleanup       # remove namespaces left by dead runs
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jixiaoan.lab.attacks import ATTACKS
from jixiaoan.lab.devices import BenignConfig
from jixiaoan.lab.topology import TARGETS, LabError, cleanup_stale, netns_probe


class _Append(argparse.Action):
    """Append ``(kind, value)`` to ``args.schedule`` keeping the command-line order."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # noqa: ANN001
        from jixiaoan.lab.runner import parse_attack, parse_benign

        try:
            phase = parse_benign(values) if self.dest == "benign" else parse_attack(values)
        except ValueError as exc:
            parser.error(f"{option_string} {values}: {exc}")
        schedule = list(getattr(namespace, "schedule", None) or [])
        schedule.append(phase)
        namespace.schedule = schedule


def add_lab_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``lab`` sub-command to ``subparsers``."""
    s = subparsers.add_parser(
        "lab", help="record labelled IoT traffic with real attack tools (root, Linux)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--out", type=Path, help="output folder (capture.pcap, segments/, "
                   "labels.csv, capture.labels.csv, phases.csv, phases.json)")
    s.add_argument("--benign", action=_Append, metavar="SECONDS",
                   help="a benign-only period (repeatable, in order with --attack)")
    s.add_argument("--attack", action=_Append, metavar="NAME[:TARGET[:K=V,...]]",
                   help="an attack phase (repeatable); see --list")
    s.add_argument("--gap", type=float, default=5.0,
                   help="benign seconds after every attack (default 5)")
    s.add_argument("--warmup", type=float, default=3.0,
                   help="benign seconds recorded before the first phase (default 3)")
    s.add_argument("--tv-rate", type=int, default=BenignConfig.tv_rate_kbps,
                   help="TV stream rate limit in KiB/s (default %(default)s)")
    s.add_argument("--snaplen", type=int, default=0, help="tcpdump snap length (0: whole frames)")
    s.add_argument("--no-install", action="store_true",
                   help="fail instead of running tools/lab-deps.sh when a program is missing")
    s.add_argument("--keep-logs", action="store_true", help="copy daemon/tool logs to OUT/logs")
    s.add_argument("--list", action="store_true", help="list attacks, targets and parameters")
    s.add_argument("--cleanup", action="store_true",
                   help="remove namespaces and processes left by lab runs that are gone")
    s.add_argument("--all", action="store_true",
                   help="with --cleanup: remove every lab namespace, also of running labs")
    s.set_defaults(func=cmd_lab, schedule=None)
    return s


def _list() -> None:
    print("attacks (NAME[:TARGET[:KEY=VALUE,...]]):")
    for a in ATTACKS.values():
        params = ",".join(f"{k}={v}" for k, v in a.defaults.items())
        print(f"  {a.name:15s} {a.help}\n  {'':15s} target {a.default_target}; {params}")
    print("targets: " + ", ".join(f"{k}={v}" for k, v in TARGETS.items()))


def cmd_lab(args: argparse.Namespace) -> int:
    """Run ``jixiaoan lab``."""
    if args.list:
        _list()
        return 0
    problem = netns_probe()
    if problem:
        print(f"jixiaoan lab: {problem}", file=sys.stderr)
        return 2
    if args.cleanup:
        removed = cleanup_stale(everything=args.all)
        names = (": " + " ".join(removed)) if removed else ""
        print(f"lab: removed {len(removed)} namespace(s){names}")
        return 0
    if not args.schedule:
        print("jixiaoan lab: give a schedule (--benign SECONDS / --attack NAME...), --list or "
              "--cleanup", file=sys.stderr)
        return 2
    if args.out is None:
        print("jixiaoan lab: --out is required", file=sys.stderr)
        return 2
    from jixiaoan.lab.runner import LabRun, run_lab

    run = LabRun(args.schedule, args.out, gap=args.gap, warmup=args.warmup,
                 benign=BenignConfig(tv_rate_kbps=args.tv_rate), install=not args.no_install,
                 snaplen=args.snaplen, keep_logs=args.keep_logs)
    try:
        phases = run_lab(run)
    except (LabError, RuntimeError, ValueError) as exc:
        print(f"jixiaoan lab: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("jixiaoan lab: interrupted; namespaces and processes removed", file=sys.stderr)
        return 130
    for i, p in enumerate(phases):
        what = f"{p.attack} -> {p.target}" if p.kind == "attack" else "benign"
        print(f"{i:2d} {what:28s} {p.end - p.start:7.1f} s {p.packets:8d} packets "
              f"({p.attacker_packets} attacker)")
    print(f"lab: wrote {args.out}/capture.pcap, labels.csv, capture.labels.csv, phases.csv")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry: ``python -m jixiaoan.lab.cli ...``."""
    parser = argparse.ArgumentParser(prog="jixiaoan")
    add_lab_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
