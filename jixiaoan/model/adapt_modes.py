"""The ways a model can be adapted to a site (``eset_adapt``); torch-free, for argument parsers."""

from __future__ import annotations

ADAPT_MODES = ("gate", "retrain", "both")
DEFAULT_MODE = "gate"
ADAPT_MODE_HELP = (
    "gate (default): learn the site's normal traffic and let malicious verdicts stand only on "
    "packets unlike it (seconds; assumes the first minutes are attack-free); retrain: ESeT's "
    "rounds on the site's traffic with the labelled corpus mixed in (minutes); both"
)


def needs_labelled_corpus(mode: str) -> bool:
    """True when ``mode`` retrains the DET (and so mixes in the labelled corpus)."""
    return mode in ("retrain", "both")
