"""Short garbage-collector pauses in the GUI process.

CPython's cyclic collector stops every thread while it walks the objects of the generation it
collects, and the oldest generation holds everything the app built at start-up: Qt wrappers,
pyqtgraph items, module globals. Measured in ``benchmarks/bench_gui.py``, full collections of
55-100k objects, triggered by the poller thread's short-lived rows, held the GIL for 30-50 ms
and were the GUI thread's longest stalls. Moving the long-lived widgets out of the collector's
reach (``gc.freeze``) each time a batch of them has been built cuts those pauses to 4-26 ms.
Frozen objects are still freed by reference counting; only cycles among them are kept.
"""

from __future__ import annotations

import gc


def freeze_long_lived() -> int:
    """Exempt every object alive now from later collections; returns how many are exempt."""
    gc.freeze()
    return gc.get_freeze_count()
