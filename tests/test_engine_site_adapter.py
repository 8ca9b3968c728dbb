"""Live site adaptation: the window is collected, adaptation runs in the background, the engine
swaps the site model in at a batch boundary, and a failure keeps the original model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_model_eset_support import TINY_ESET, synthetic_files

from jixiaoan.capture.pcapfile import read_capture
from jixiaoan.config import Config
from jixiaoan.engine import site_adapter as sa
from jixiaoan.engine.pipeline import Engine
from jixiaoan.model.eset import ESeT
from jixiaoan.runtime.engine_setup import live_adapter
from jixiaoan.runtime.options import MonitorOptions
from jixiaoan.runtime.session import MonitorSession

DEMO = Path(__file__).parent.parent / "assets" / "demo" / "capture.pcap"


@pytest.fixture(scope="module")
def site():
    files, _ = synthetic_files(1, 60, seed=5)
    return files[0]


def _feed(adapter, batch, step=200):
    for start in range(0, len(batch), step):
        adapter.observe(batch.take(np.arange(start, min(start + step, len(batch)))))


def test_the_window_is_collected_then_the_site_model_is_handed_over_once(
    tiny_eset, tiny_eset_data, site
):
    after = float(np.quantile(site.ts - site.ts.min(), 0.5))
    adapter = sa.LiveAdapter(tiny_eset, after, labelled=lambda: tiny_eset_data, rounds=1,
                             mode="retrain")
    assert adapter.state == sa.COLLECTING and adapter.take_ready() is None
    _feed(adapter, site)
    assert adapter.state in (sa.ADAPTING, sa.READY)
    assert adapter.join(timeout=120)
    assert adapter.state == sa.READY, adapter.error
    model = adapter.take_ready()
    assert isinstance(model, ESeT) and model is not tiny_eset and model.name.endswith("-site")
    expected = int((site.ts <= site.ts.min() + after).sum())
    assert model.info["site_packets"] == expected
    assert model.info["labelled_files"] > 0 and model.gate is None
    assert adapter.take_ready() is None and adapter.state == sa.ACTIVE
    assert "site model active" in adapter.describe()


def test_the_default_gate_mode_never_loads_the_labelled_corpus(tiny_eset, site):
    def never():
        raise AssertionError("the gate needs no labelled corpus")

    adapter = sa.LiveAdapter(tiny_eset, 1e9, labelled=never, max_packets=400)
    assert adapter.mode == "gate"
    _feed(adapter, site)
    assert adapter.join(timeout=120) and adapter.state == sa.READY, adapter.error
    model = adapter.take_ready()
    assert model.gate is not None and model.gate.packets == 400
    assert model.info["mode"] == "gate" and model.info["labelled_files"] == 0
    assert model.det is not tiny_eset.det  # a copy: the running model is never changed


def test_the_packet_cap_ends_the_window_early(tiny_eset, site, tmp_path):
    adapter = sa.LiveAdapter(tiny_eset, 1e9, labelled=None, max_packets=300, rounds=1,
                             out_dir=tmp_path / "site")
    _feed(adapter, site, step=128)
    assert adapter.join(timeout=120) and adapter.state == sa.READY, adapter.error
    assert adapter.take_ready().info["site_packets"] == 300
    assert (tmp_path / "site" / "card.json").exists()  # saved where asked


def test_a_quiet_network_stretches_the_window_to_enough_packets(tiny_eset, site):
    from jixiaoan.model.site_gate import MIN_BASELINE_PACKETS

    after = float(site.ts[49] - site.ts[0])  # only 50 packets fall inside the window
    adapter = sa.LiveAdapter(tiny_eset, after)
    _feed(adapter, site, step=30)
    assert adapter.join(timeout=120) and adapter.state == sa.READY, adapter.error
    model = adapter.take_ready()
    assert model.info["site_packets"] == model.gate.packets == MIN_BASELINE_PACKETS
    assert model.info["until_s"] >= after


def test_a_failed_adaptation_is_reported_and_the_original_model_stays(tiny_eset, site):
    def broken():
        raise OSError("labelled corpus unreadable")

    adapter = sa.LiveAdapter(tiny_eset, 1.0, labelled=broken, rounds=1, mode="retrain")
    _feed(adapter, site)
    assert adapter.join(timeout=60)
    assert adapter.state == sa.FAILED and "labelled corpus unreadable" in adapter.error
    assert adapter.take_ready() is None


def test_only_a_trained_eset_can_be_adapted(tiny_eset):
    with pytest.raises(ValueError, match="ESeT"):
        sa.LiveAdapter(ESeT(TINY_ESET), 10.0)
    with pytest.raises(ValueError, match="longer than 0"):
        sa.LiveAdapter(tiny_eset, 0.0)


def test_the_engine_swaps_the_site_model_in_at_a_batch_boundary(tiny_eset):
    adapter = sa.LiveAdapter(tiny_eset, 20.0, labelled=None, rounds=1)
    engine = Engine([], tiny_eset, adapter=adapter)
    batches = list(read_capture(str(DEMO), batch_size=2048))
    engine.process(batches[0])
    while adapter.state == sa.COLLECTING:
        engine.process(batches.pop(1))
    assert engine.detector is tiny_eset
    assert adapter.join(timeout=120) and adapter.state == sa.READY, adapter.error
    out = engine.process(batches[1])
    assert engine.detector is not tiny_eset and engine.detector.name.endswith("-site")
    assert adapter.state == sa.ACTIVE and len(out.is_bad) == len(batches[1])
    # the gate's zero-day class gets a name in the stored rows
    assert engine.attack_names == out.attack_names == (*tiny_eset.classes, "anomaly")


def test_a_monitor_without_a_model_cannot_adapt(tmp_path):
    opts = MonitorOptions(replay=str(DEMO), db_path=str(tmp_path / "x.db"), adapt_after_s=30.0)
    with pytest.raises(ValueError, match="needs a model"):
        MonitorSession(Config(), opts)


def test_the_saved_setting_turns_adaptation_on_and_the_option_overrides_it(tiny_eset):
    saved = Config(adapt_after_s=120.0)
    assert live_adapter(tiny_eset, MonitorOptions(), saved.adapt_after_s).after_s == 120.0
    assert live_adapter(tiny_eset, MonitorOptions(adapt_after_s=30.0), 120.0).after_s == 30.0
    assert live_adapter(tiny_eset, MonitorOptions(adapt_after_s=0.0), 120.0) is None  # off
    assert live_adapter(tiny_eset, MonitorOptions(), 0.0) is None
    # a saved setting never stops a monitor that cannot adapt (no model, or not an ESeT)
    assert live_adapter(None, MonitorOptions(), 120.0) is None
    assert live_adapter(ESeT(TINY_ESET), MonitorOptions(), 120.0) is None
    with pytest.raises(ValueError, match="ESeT"):
        live_adapter(ESeT(TINY_ESET), MonitorOptions(adapt_after_s=30.0), 0.0)


def test_alerts_wait_for_the_site_model(tiny_eset, tmp_path):
    # threshold 0: every watched device would alert on its first evaluation
    opts = MonitorOptions(replay=str(DEMO), speed=20.0, db_path=str(tmp_path / "a.db"),
                          detector=tiny_eset, adapt_after_s=20.0, threshold=0.0, min_packets=1)
    session = MonitorSession(Config(), opts)
    events = []
    session.add_alert_callback(events.append)
    start = float(next(iter(read_capture(str(DEMO), batch_size=1))).ts[0])
    assert session.alerts_held()
    session.start()
    try:
        assert session.wait_finished(timeout=120)
    finally:
        session.stop()
    assert session.adapter.state == sa.ACTIVE, session.adapter.error
    assert not session.alerts_held()
    assert events, "the site model's verdicts raise alerts"
    assert min(e.time for e in events) > start + 20.0  # none from the learning period


def test_a_replayed_monitor_adapts_and_reports_it(tiny_eset, tmp_path):
    opts = MonitorOptions(replay=str(DEMO), speed=0.0, db_path=str(tmp_path / "m.db"),
                          detector=tiny_eset, adapt_after_s=30.0)
    session = MonitorSession(Config(), opts).start()
    try:
        assert session.wait_finished(timeout=120)
        assert session.adapter.join(timeout=120)
        status = session.status()
    finally:
        session.stop()
    assert session.adapter.state in (sa.READY, sa.ACTIVE), session.adapter.error
    assert "site" in status.adaptation and status.adaptation in status.line()
    assert not status.errors
