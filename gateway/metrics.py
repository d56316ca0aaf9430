"""What ``GET /metrics`` shows (CONTRACT §11): counters kept where things happen, gauges read from the database.

**Counters and the apply histogram** are counted in the process where they are known: the mails the
SMTP listeners accepted and refused in the serving process (the listeners tell it over their pipe,
and stay small), a message applied in the processor process. One ``gateway serve`` is several
processes, so it keeps them in prometheus-client's multiprocess files:
``runtime.count_in`` names the folder (``<data>/metrics``, emptied at each start, so counters start
at zero as Prometheus expects of a restarted target) before this module is imported, and the
processes ``serve`` starts inherit it. A scrape sums them all. Any other process (a command, a test)
counts in its own memory.

**Gauges** (what waits, and since when) are what the database says at the scrape
(``gateway.web.metrics`` reads them): right after a restart, and the same whichever host is asked.
This module imports no database code: an SMTP listener process stays small.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

_COUNTED = CollectorRegistry()  # this process's own counts (read when there is no multiprocess folder)
CONTENT_TYPE = CONTENT_TYPE_LATEST

ACCEPTED = Counter("gateway_mails_accepted", "Mails answered 250 (kept on disk) by this gateway's SMTP listeners.",
                   registry=_COUNTED)
REFUSED = Counter("gateway_mails_refused", "Mails or recipients refused by SMTP, by reason.", ["reason"],
                  registry=_COUNTED)
APPLIED = Counter("gateway_messages_applied",
                  "Stored messages done with by the processor, by outcome (processed, duplicate, degraded, failed).",
                  ["outcome"], registry=_COUNTED)
APPLY_SECONDS = Histogram("gateway_apply_seconds", "Seconds from a message's storing (its 250) to its being applied.",
                          buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800), registry=_COUNTED)


@dataclass(frozen=True)
class Gauge:
    """A value read at the scrape (by ``gateway.web.metrics``, from the database): one number, or one by label."""

    name: str
    help: str
    values: float | dict[str, float]
    label: str = ""


class _InThisProcess(Collector):
    def collect(self) -> Iterator[Metric]:
        yield from _COUNTED.collect()


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
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_InThisProcess())
    registry.register(_Gauges(gauges))
    return generate_latest(registry)
