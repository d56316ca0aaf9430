"""What ``GET /metrics`` shows (CONTRACT §11): counters kept where things happen, gauges read from the database.

**Counters and the apply histogram** are counted in the process where the thing happens: a mail
accepted or refused in an SMTP listener process, a message applied in the processor process. One
``gateway serve`` is several processes, so they are kept in prometheus-client's multiprocess files:
each process writes its own in one folder, and a scrape sums them all. prometheus-client takes
that folder from ``PROMETHEUS_MULTIPROC_DIR`` when it is first imported, so this module, the only
one that imports it, settles the folder first (``_settle_folder``). Counters start at zero with each
``serve``, as Prometheus expects of a restarted target.

**Gauges** (what waits, and since when) are what the database says at the scrape
(``gateway.web.metrics`` reads them): right after a restart, and the same whichever host is asked.
This module imports no database code: an SMTP listener process stays small.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

_MADE = "GATEWAY_METRICS_FOLDER"  # set while the folder is this process's own, not its children's too


def _settle_folder() -> None:
    """A folder named by the operator, or by the ``serve`` that started this process, is used as it is;
    any other process makes a folder of its own, removed when it exits. A folder that another gateway
    process made for itself is not shared: a test that imported this module and then starts
    ``gateway serve`` would otherwise hand it the test's folder."""
    named = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if named and named != os.environ.get(_MADE):
        return
    folder = tempfile.mkdtemp(prefix="gateway-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ[_MADE] = folder
    atexit.register(shutil.rmtree, folder, ignore_errors=True)


def count_with_children() -> None:
    """The processes this one starts from now on count into its folder: ``serve`` calls it before it
    starts its SMTP listeners and its processor."""
    os.environ.pop(_MADE, None)


_settle_folder()

# ruff: noqa: E402  (prometheus-client reads the variable above when it is imported)
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

CONTENT_TYPE = CONTENT_TYPE_LATEST

ACCEPTED = Counter("gateway_mails_accepted", "Mails answered 250 (kept on disk) by this gateway's SMTP listeners.")
REFUSED = Counter("gateway_mails_refused", "Mails or recipients refused by SMTP, by reason.", ["reason"])
APPLIED = Counter("gateway_messages_applied",
                  "Stored messages done with by the processor, by outcome (processed, duplicate, degraded, failed).",
                  ["outcome"])
APPLY_SECONDS = Histogram("gateway_apply_seconds", "Seconds from a message's storing (its 250) to its being applied.",
                          buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800))


@dataclass(frozen=True)
class Gauge:
    """A value read at the scrape (by ``gateway.web.metrics``, from the database): one number, or one by label."""

    name: str
    help: str
    values: float | dict[str, float]
    label: str = ""


class _Gauges(Collector):
    def __init__(self, gauges: Iterable[Gauge]) -> None:
        self.gauges = gauges

    def collect(self) -> Iterator[Metric]:
        for gauge in self.gauges:
            if isinstance(gauge.values, dict):
                family = GaugeMetricFamily(gauge.name, gauge.help, labels=[gauge.label])
                for label, value in gauge.values.items():
                    family.add_metric([label], value)
                yield family
            else:
                yield GaugeMetricFamily(gauge.name, gauge.help, gauge.values)


def exposition(gauges: Iterable[Gauge]) -> bytes:
    """The text a scrape gets: every process's counters summed, and these gauges."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    registry.register(_Gauges(gauges))
    return generate_latest(registry)
