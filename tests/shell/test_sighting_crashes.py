"""Property: whatever the crash points, the total ``attribute_count`` OpenCTI holds per indicator
is the number of distinct matches (each open alert once, plus what it suppressed).

The real ``AlertPoller`` and ``SightingWriter`` run against alerts held in memory
(``MemoryAlerts``: written late, updated in place by suppression, some closed) and the OpenCTI
stand-in with the platform's upsert rules (reached in-process by the real pycti). Each poll may
crash just before or just after one of its sighting writes (the process dies: nothing in memory
survives); the connector state that survives is whatever the last of pycti's pings took, at any
moment before the crash. The next process starts from that state.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Mapping
from datetime import timedelta
from typing import cast

import msgspec
from elasticsearch import Elasticsearch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycti import OpenCTIApiClient

from elastic_connector.core.config import (
    Config,
    ConnectorSettings,
    KibanaSettings,
    OpenCTISettings,
    Secret,
    SightingsSettings,
)
from elastic_connector.demo.opencti_standin import OpenCTIStandin
from elastic_connector.shell.alerts import AlertPoller
from elastic_connector.shell.connector_state import ConnectorState
from elastic_connector.shell.metrics import Metrics
from elastic_connector.shell.sightings_writer import SightingPlan, SightingWriter, WriteOutcome
from tests.core.sightings.alert_strategies import (
    OUR_INDEX,
    RULES,
    AlertSpec,
    EnrichmentSpec,
    SuppressionSpec,
    iso,
    render_8x,
)
from tests.support.alert_loop import START, Clock
from tests.support.alerts import add_indicators
from tests.support.memory_alerts import IN_PROCESS_URL, MemoryAlerts, in_process_api

SETTLE = timedelta(seconds=SightingsSettings().settle_delay)
KIBANA = "https://kibana.example"


class Crash(BaseException):
    """The process dies (nothing catches it, nothing in memory survives)."""


@dataclasses.dataclass(frozen=True)
class AlertPlan:
    spec: AlertSpec
    visible_after: timedelta
    """How long after its ``@timestamp`` the alert becomes searchable (< the settle delay)."""
    updates: tuple[tuple[timedelta, int], ...] = ()
    """Suppressed matches Kibana folds into it in place: (when after ``@timestamp``, how many)."""

    @property
    def matches(self) -> int:
        return self.spec.matches + sum(count for _, count in self.updates)


@dataclasses.dataclass(frozen=True)
class PollPlan:
    at: timedelta
    crash: tuple[int, bool] | None
    """Crash at the n-th sighting write of this poll, before (False) or after (True) it."""
    ping_back: int
    """On a crash, how many state writes before the last one pycti's last ping took."""


@dataclasses.dataclass(frozen=True)
class Scenario:
    alerts: tuple[AlertPlan, ...]
    polls: tuple[PollPlan, ...]
    page_size: int
    links: bool
    references_at_creation: bool


@st.composite
def alert_plans(draw: st.DrawFn, index: int, indicators: int) -> AlertPlan:
    moment = START + timedelta(milliseconds=draw(st.integers(0, 6 * 60_000)))
    rule_name, rule_uuid = RULES[index % len(RULES)]
    chosen = sorted(draw(st.sets(st.integers(0, indicators - 1), min_size=1, max_size=2)))
    enrichments = tuple(
        EnrichmentSpec("ours", f"@{n}", "source.ip", "45.115.45.3", "ipv4-addr", OUR_INDEX)
        for n in chosen
    )
    spec = AlertSpec(
        uuid=f"{index:04d}-{draw(st.uuids())}",
        timestamp=moment,
        original_time=moment - timedelta(seconds=draw(st.integers(0, 90))),
        rule_name=rule_name,
        rule_uuid=rule_uuid,
        space="default",
        enrichments=enrichments,
        workflow_status=draw(st.sampled_from(("open", "open", "acknowledged", "closed"))),
        rule_interval=draw(st.sampled_from(("1m", "5m"))),
    )
    updates: tuple[tuple[timedelta, int], ...] = ()
    if draw(st.integers(0, 2)) == 0:
        window = draw(st.one_of(st.none(), st.integers(1, 20)))
        spec = dataclasses.replace(
            spec,
            suppression=SuppressionSpec(
                docs_count=draw(st.integers(0, 3)),
                start=moment - timedelta(seconds=20),
                end=moment,
                last_detected=moment,
                window=None if window is None else (window, "m"),
            ),
        )
        if window is not None:
            updates = tuple(
                sorted(
                    draw(
                        st.lists(
                            st.tuples(
                                st.integers(1, window * 60).map(lambda s: timedelta(seconds=s)),
                                st.integers(1, 4),
                            ),
                            max_size=3,
                        )
                    )
                )
            )
    lateness = timedelta(seconds=draw(st.integers(0, 8 * 60)))
    return AlertPlan(spec, lateness, updates)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    count = draw(st.integers(1, 10))
    alerts = tuple(draw(alert_plans(n, 3)) for n in range(count))
    times = sorted(draw(st.lists(st.integers(0, 50 * 60), min_size=1, max_size=6)))
    polls = tuple(
        PollPlan(
            at=timedelta(minutes=10, seconds=seconds),
            crash=draw(st.one_of(st.none(), st.tuples(st.integers(1, 6), st.booleans()))),
            ping_back=draw(st.integers(0, 4)),
        )
        for seconds in times
    )
    return Scenario(
        alerts=alerts,
        polls=polls,
        page_size=draw(st.integers(1, 5)),
        links=draw(st.booleans()),
        references_at_creation=draw(st.booleans()),
    )


class PingedStore:
    """pycti's state: ``live`` in the process, ``history`` of what it held, so that a crash can
    fall back to whatever a ping took at any moment."""

    def __init__(self, state: dict[str, object] | None) -> None:
        self.live = copy.deepcopy(state)
        self.history: list[dict[str, object] | None] = [copy.deepcopy(state)]

    def get_state(self) -> dict[str, object] | None:
        return msgspec.json.decode(msgspec.json.encode(self.live)) if self.live else None

    def set_state(self, state: dict[str, object] | None) -> None:
        self.live = copy.deepcopy(state) if isinstance(state, dict) else None
        self.history.append(copy.deepcopy(self.live))

    def force_ping(self) -> None:
        return None

    def pinged(self, back: int) -> dict[str, object] | None:
        return copy.deepcopy(self.history[max(0, len(self.history) - 1 - back)])


class CrashingWriter(SightingWriter):
    """The real writer, armed to crash the process around its n-th write of a poll."""

    def __init__(self, api: OpenCTIApiClient, config: Config) -> None:
        super().__init__(api, config.sightings, config.kibana)
        self.arm(None)

    def arm(self, crash: tuple[int, bool] | None) -> None:
        self._crash = crash
        self._writes = 0

    def write(self, plan: SightingPlan, *, verify: bool = False) -> WriteOutcome:
        self._writes += 1
        crash_here = self._crash is not None and self._crash[0] == self._writes
        after = self._crash is not None and self._crash[1]
        if crash_here and not after:
            raise Crash
        outcome = super().write(plan, verify=verify)
        if crash_here:
            raise Crash
        return outcome


class World:
    """Kibana's alerts over time and the connector's processes."""

    def __init__(self, scenario: Scenario, standin: OpenCTIStandin, indicators: list[str]) -> None:
        self.scenario = scenario
        self.standin = standin
        self.indicators = indicators
        self.alerts = MemoryAlerts()
        self.clock = Clock(START)
        self.config = Config(
            opencti=OpenCTISettings(url=IN_PROCESS_URL, token=Secret(standin.token)),
            connector=ConnectorSettings(id="00000000-0000-4000-8000-000000000001"),
            sightings=SightingsSettings(
                alerts_index=".alerts-security.alerts-*",
                page_size=scenario.page_size,
                initial_lookback=86_400.0,
                poll_interval=0.05,
            ),
            kibana=KibanaSettings(url=KIBANA if scenario.links else None),
        )
        self.api = in_process_api(standin)
        self.store = PingedStore(None)
        self.state = ConnectorState(self.store)
        self.writer = CrashingWriter(self.api, self.config)
        self.poller = self._process()
        self._written: set[str] = set()
        self._applied: set[tuple[str, int]] = set()

    def spec(self, plan: AlertPlan) -> AlertSpec:
        enrichments = tuple(
            dataclasses.replace(e, indicator=self.indicators[int(e.indicator[1:])])
            for e in plan.spec.enrichments
        )
        return dataclasses.replace(plan.spec, enrichments=enrichments)

    def _process(self) -> AlertPoller:
        """A connector process: its poller and writer, nothing shared with an earlier one."""
        self.writer = CrashingWriter(self.api, self.config)
        return AlertPoller(
            config=self.config,
            client=cast(Elasticsearch, self.alerts),
            api=self.api,
            state=self.state,
            metrics=Metrics(),
            clock=self.clock,
            writer=self.writer,
            max_write_rounds=3,
        )

    def kibana_until(self, moment: timedelta) -> None:
        """What Kibana has written (and made searchable) up to ``START + moment``."""
        now = START + moment
        for plan in self.scenario.alerts:
            spec = self.spec(plan)
            if spec.uuid not in self._written and spec.timestamp <= now:
                self.alerts.put(render_8x(spec), searchable=False)
                self._written.add(spec.uuid)
            if spec.uuid in self._written and spec.timestamp + plan.visible_after <= now:
                self.alerts.reveal(spec.uuid)
            total = spec.suppression.docs_count if spec.suppression is not None else 0
            for n, (after, count) in enumerate(plan.updates):
                total += count
                if (spec.uuid, n) in self._applied or spec.timestamp + after > now:
                    continue
                if spec.uuid not in self._written:
                    continue
                when = spec.timestamp + after
                self.alerts.update(
                    spec.uuid,
                    {
                        "kibana.alert.suppression.docs_count": total,
                        "kibana.alert.suppression.end": iso(when),
                        "kibana.alert.last_detected": iso(when),
                    },
                )
                self._applied.add((spec.uuid, n))

    def poll(self, plan: PollPlan) -> None:
        self.kibana_until(plan.at)
        self.clock.now = START + plan.at
        self.writer.arm(plan.crash)
        try:
            self.poller.poll_once()
        except Crash:
            # A new process, from what the platform held after pycti's last ping.
            self.store = PingedStore(self.store.pinged(plan.ping_back))
            self.state = ConnectorState(self.store)
            self.poller = self._process()

    def settle_all(self) -> None:
        end = timedelta(hours=3)
        self.kibana_until(end)
        self.clock.now = START + end
        self.writer.arm(None)
        for _ in range(3):
            report = self.poller.poll_once()
            assert report.complete, report

    def counts(self) -> Mapping[str, int]:
        totals = dict.fromkeys(self.indicators, 0)
        for sighting in self.standin.sightings:
            key = str(sighting["fromId"])
            if key in totals:
                count = sighting["attribute_count"]
                assert isinstance(count, int)
                totals[key] += count
        return totals

    def expected(self) -> Mapping[str, int]:
        totals = dict.fromkeys(self.indicators, 0)
        for plan in self.scenario.alerts:
            if plan.spec.workflow_status == "closed":
                continue
            for enrichment in self.spec(plan).enrichments:
                totals[enrichment.indicator] += plan.matches
        return totals


@settings(
    max_examples=int(os.environ.get("CRASH_EXAMPLES", "80")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenarios())
def test_the_total_count_is_the_number_of_distinct_matches_whatever_the_crashes(
    scenario: Scenario,
) -> None:
    standin = OpenCTIStandin(heartbeat_interval=0.2)  # answered in-process: never started
    standin.sighting_references_at_creation(scenario.references_at_creation)
    indicators = add_indicators(standin, 3)
    world = World(scenario, standin, indicators)

    for poll in scenario.polls:
        world.poll(poll)
    world.settle_all()

    assert world.counts() == world.expected()
