"""Live site adaptation: the engine's first minutes of traffic adapt the model, in the background.

``LiveAdapter.observe`` (engine worker thread) keeps a copy of the features of the first
``after_s`` seconds of capture time (at most ``max_packets``); once that window is complete a
background thread adapts the model (``eset_adapt.adapt``; by default the site baseline gate, a
KitNET fitted to the window in seconds; ``retrain`` runs ESeT's rounds with the labelled corpus
mixed in when one is available) and optionally saves the site model. The engine swaps it in at
the next batch boundary (``take_ready``, worker thread). Until then, and for good if adaptation
fails, the original model keeps classifying: nothing is lost and a failure is only reported.

Retraining trains a DET on the same cores as capture and inference, so for the tens of seconds
it runs the engine has less headroom; run it in a quiet period, or offline with
``jixiaoan adapt``. The gate assumes the window is attack-free (an attack in it becomes normal).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from jixiaoan.features.batch import FeatureBatch
from jixiaoan.model.adapt_modes import DEFAULT_MODE, needs_labelled_corpus
from jixiaoan.model.eset import ESeT
from jixiaoan.model.eset_adapt import DEFAULT_ROUNDS, adapt
from jixiaoan.model.site_gate import MIN_BASELINE_PACKETS
from jixiaoan.model.verdict import Detector, TrainingData

log = logging.getLogger(__name__)

LabelledLoader = Callable[[], TrainingData | None]
COLLECTING, ADAPTING, READY, ACTIVE, FAILED = "collecting", "adapting", "ready", "active", "failed"
LEARNING_STATES = (COLLECTING, ADAPTING, READY)  # the site model is not classifying yet


class LiveAdapter:
    """Collects a site window, adapts in the background, hands the site model over once."""

    def __init__(
        self,
        model: Detector,
        after_s: float,
        labelled: LabelledLoader | None = None,
        out_dir: str | Path | None = None,
        max_packets: int = 96_000,
        rounds: int = DEFAULT_ROUNDS,
        mode: str = DEFAULT_MODE,
    ) -> None:
        if not isinstance(model, ESeT) or model.det is None:
            raise ValueError("live adaptation needs a trained ESeT model")
        if after_s <= 0:
            raise ValueError("the adaptation window must be longer than 0 s")
        self.model, self.after_s, self.max_packets = model, float(after_s), int(max_packets)
        self.rounds, self.out_dir, self._labelled = rounds, out_dir, labelled
        self.mode = mode
        self._parts: list[FeatureBatch] = []
        self._packets = 0
        self._start_ts: float | None = None
        self._lock = threading.Lock()
        self._state = COLLECTING
        self._error = ""
        self._site_model: ESeT | None = None
        self._thread: threading.Thread | None = None
        self._seconds = 0.0

    # ---- worker thread ----------------------------------------------------------------------

    def observe(self, features: FeatureBatch) -> None:
        """Keep the packets of the adaptation window; start adapting once it is complete. A
        quiet network's window stretches until it holds ``MIN_BASELINE_PACKETS``."""
        if self._state != COLLECTING or len(features) == 0:
            return
        ts = features.ts if len(features.ts) == len(features) else np.full(len(features), 0.0)
        if self._start_ts is None:
            self._start_ts = float(ts.min())
        inside = np.flatnonzero(ts <= self._start_ts + self.after_s)
        short = MIN_BASELINE_PACKETS - self._packets - len(inside)
        if short > 0 and len(inside) < len(features):  # too few packets yet: stretch
            inside = np.arange(min(len(features), len(inside) + short))
        inside = inside[: self.max_packets - self._packets]
        if len(inside):
            self._parts.append(features.take(inside))
            self._packets += len(inside)
        if self._packets >= self.max_packets or len(inside) < len(features):
            self._begin()

    def take_ready(self) -> ESeT | None:
        """The site model, once, when it is ready (the caller starts using it)."""
        with self._lock:
            if self._state != READY:
                return None
            self._state = ACTIVE
            model, self._site_model = self._site_model, None
        return model

    # ---- background -------------------------------------------------------------------------

    def _begin(self) -> None:
        site = FeatureBatch.concat(self._parts)
        self._parts = []
        with self._lock:
            self._state = ADAPTING
        self._thread = threading.Thread(
            target=self._run, args=(site,), name="jixiaoan-adapt", daemon=True
        )
        self._thread.start()

    def _run(self, site: FeatureBatch) -> None:
        t0 = time.monotonic()
        try:
            labelled = None
            if needs_labelled_corpus(self.mode):
                labelled = self._labelled() if self._labelled is not None else None
                if labelled is None:
                    log.warning("site adaptation without a labelled corpus (site traffic only)")
            span = float(site.ts.max() - site.ts.min()) if len(site.ts) else 0.0
            until = max(self.after_s, span)  # the window may have stretched
            model = adapt(self.model, site, labelled, until, self.rounds, mode=self.mode)
            if self.out_dir:
                data = getattr(self.model, "card_data", {}).get("data", {})
                extra = {"data": {**data, "site_capture": "live", "until_s": self.after_s}}
                model.save(self.out_dir, extra)
        except Exception as exc:  # noqa: BLE001 - the original model keeps running
            log.exception("site adaptation failed")
            with self._lock:
                self._state, self._error = FAILED, f"site adaptation failed: {exc}"
            return
        with self._lock:
            self._seconds = time.monotonic() - t0
            self._site_model, self._state = model, READY
        log.info("site model ready after %.0f s (%d site packets)", self._seconds, len(site))

    def join(self, timeout: float | None = None) -> bool:
        """Wait for a running adaptation; False if it is still running after ``timeout``."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # ---- status -----------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """collecting, adapting, ready, active (site model in use) or failed."""
        with self._lock:
            return self._state

    @property
    def error(self) -> str:
        """Why adaptation failed ('' otherwise)."""
        with self._lock:
            return self._error

    def describe(self) -> str:
        """A few words for the status line."""
        state = self.state
        if state == COLLECTING:
            return (f"site: learning normal traffic, {self._packets:,} pkts of {self.after_s:g} s "
                    "(alerts held)")
        if state == ACTIVE:
            return f"site model active ({self._seconds:.0f} s to adapt)"
        if state in LEARNING_STATES:
            return f"site: {state} (alerts held)"
        return f"site: {state}"
