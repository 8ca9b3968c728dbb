"""``jixiaoan robustness``: FGSM and traffic-mutation attacks on a trained ESeT model.

This module is the argument parser only (it loads neither torch nor the feature kernels); the
work is in ``robust_run.run_robustness``.

Runs on the test split of the fixed file-disjoint split (``commands.split_corpus``):

1. FGSM on the frequency features of the malicious packets for each ``--eps``
   (``robust_fgsm``) over whole test files by default (``--fgsm-max-packets``), so ``eps = 0``
   is the model card's test figure; benign files are unchanged by construction;
2. clean scores of every test file's first ``--max-packets`` packets (the traffic attacks'
   baseline: the swarm search re-extracts every candidate, so captures are cut);
3. for each budget ``l_c:l_t`` and each search target, a particle swarm
   (``features.mutate_search``) mutates the malicious test captures (at most ``--max-files``);
   the mutated frames are written to a pcap, read back and re-extracted by the normal pipeline
   (``extract_capture``), relabelled by the labels.csv rule, and scored by ESeT and by KitNET
   alone (``KitNETDetector`` on the model's own KitNET, threshold from the train split's
   labelled packets). Search targets: ``grey`` (distance to the benign mimic set in our
   FeatureBatch space) and ``black`` (RMSE of a surrogate KitNET the attacker fits on the mimic
   set's AfterImage features, seed 1, not the model's).

The mimic set: benign packets of benign *train* files (features sampled, UDP/ICMP payloads).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from jixiaoan.features.mutate import Budget

DEFAULT_EPS = (0.0, 0.01, 0.05, 0.10)
DEFAULT_BUDGETS = (Budget(0.2, 2.0), Budget(0.5, 5.0))


def parse_budgets(text: str) -> list[Budget]:
    """``"0.2:2,0.5:5"`` -> budgets (l_c:l_t); ``"none"`` or empty: no traffic attacks."""
    out = []
    if text.strip().lower() in ("", "none"):
        return out
    for part in text.split(","):
        lc, lt = part.split(":")
        out.append(Budget(float(lc), float(lt)))
    return out


def add_robustness_parser(subparsers) -> None:
    """Register ``robustness`` on the main parser's subparsers."""
    s = subparsers.add_parser("robustness", help="FGSM and traffic-mutation robustness tests")
    s.add_argument("--labels", required=True, help="labels.csv of the corpus")
    s.add_argument("--model", required=True, help="trained ESeT model folder")
    s.add_argument("--json", required=True, help="where to write the results (JSON)")
    s.add_argument("--png", default=None, help="plot of F1 and PDR against the budgets")
    s.add_argument("--eps", default=",".join(f"{e:g}" for e in DEFAULT_EPS))
    s.add_argument("--fgsm-mode", default="relative", choices=("relative", "range"))
    s.add_argument("--fgsm-max-packets", type=int, default=0,
                   help="first packets of each file for FGSM (0: whole files, as the card)")
    s.add_argument("--budgets", default="0.2:2,0.5:5", help="l_c:l_t pairs")
    s.add_argument("--search", default="grey,black", help="search targets: grey, black")
    s.add_argument("--max-files", type=int, default=40, help="malicious test files mutated")
    s.add_argument("--max-packets", type=int, default=1500, help="first packets of each file")
    s.add_argument("--particles", type=int, default=10)
    s.add_argument("--iterations", type=int, default=10)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--cache-dir", default=None, help="corpus feature cache folder")
    s.add_argument("--harden", default=None, metavar="DIR",
                   help="first fine-tune the model adversarially (robust_harden) on the train "
                        "split, save it to DIR and attack that one")
    s.add_argument("--harden-search", action="store_true",
                   help="harden on swarm-searched (grey-box) mutations instead of random ones")
    s.set_defaults(func=cmd_robustness)


def cmd_robustness(args: argparse.Namespace) -> int:
    """Entry point of ``jixiaoan robustness``."""
    from jixiaoan.model.robust_report import plot_robustness
    from jixiaoan.model.robust_run import run_robustness

    result = run_robustness(
        args.labels, args.model, [float(e) for e in args.eps.split(",")],
        parse_budgets(args.budgets), [s for s in args.search.split(",") if s],
        args.max_files, args.max_packets, args.particles, args.iterations, args.seed,
        args.cache_dir, args.fgsm_mode, args.harden, args.fgsm_max_packets, args.harden_search,
    )
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1))
    if args.png:
        plot_robustness(result, args.png)
    print(f"wrote {args.json}" + (f" and {args.png}" if args.png else ""))
    return 0
