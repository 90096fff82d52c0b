"""The circuit of one Marketo instance, as a pure state machine (stored by ``connector.circuit_store``).

::

    closed --(failures consecutive outage failures)--> open --(probe due)--> probing
      ^                                                 ^                      |
      |                                                 +----(probe fails)-----+  next probe later
      +-------------------(any success: a probe or a call still in flight)-----+

*Outage failures* are those ``retry_policy.is_outage`` names: no connection, no answer, HTTP 5xx.
While the circuit is open nothing is sent to the instance: events wait (their retries are not used
up) and one probe at a time checks the instance, first ``first_probe`` seconds after it opened,
then at doubling intervals capped at ``max_probe``. The first success closes the circuit.

Pure: every function takes the time and returns a new ``Circuit``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class CircuitSettings:
    """``failures`` consecutive outage failures open the circuit (0: never); probe intervals; auto replay."""

    failures: int = 5
    first_probe: float = 5.0
    max_probe: float = 60.0
    replay_after_outage: bool = True


@dataclass(frozen=True)
class Circuit:
    """The state of one instance's circuit; ``Circuit(instance)`` is closed and healthy."""

    instance: str
    failures: int = 0  # consecutive outage failures
    since: float | None = None  # first failure of the current streak: "unreachable since"
    opened_at: float | None = None
    next_probe_at: float | None = None
    probes: int = 0  # failed probes since it opened
    integration_id: str | None = None  # whose credentials the probe uses
    last_error: str | None = None

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None

    @property
    def healthy(self) -> bool:
        """Closed with no failure on record (nothing worth storing)."""
        return not self.is_open and self.failures == 0


def probe_interval(settings: CircuitSettings, probes: int) -> float:
    """Seconds before the next probe after *probes* failed ones: doubling from ``first_probe``, capped."""
    return min(settings.max_probe, settings.first_probe * 2.0 ** max(0, probes))


def failed(circuit: Circuit, settings: CircuitSettings, now: float, error: str, integration_id: str) -> Circuit:
    """A call (not a probe) failed with an outage failure at *now*; opens the circuit at the threshold."""
    failures = circuit.failures + 1
    changed = replace(
        circuit,
        failures=failures,
        since=circuit.since if circuit.since is not None else now,
        integration_id=integration_id,
        last_error=error,
    )
    if circuit.is_open or settings.failures <= 0 or failures < settings.failures:
        return changed
    return replace(changed, opened_at=now, next_probe_at=now + probe_interval(settings, 0), probes=0)


def succeeded(circuit: Circuit) -> Circuit:
    """Any call or probe succeeded: the circuit closes and forgets the streak."""
    return Circuit(circuit.instance)


def take_probe(circuit: Circuit, settings: CircuitSettings, now: float) -> Circuit | None:
    """If a probe is due, the circuit with the probe taken (the next one pushed out); else None.

    Taking the probe moves ``next_probe_at`` on at once, so concurrent workers let one probe through.
    """
    if not circuit.is_open or circuit.next_probe_at is None or circuit.next_probe_at > now:
        return None
    return replace(circuit, next_probe_at=now + probe_interval(settings, circuit.probes + 1))


def probe_failed(circuit: Circuit, settings: CircuitSettings, now: float, error: str) -> Circuit:
    """The probe failed at *now*: stay open, probe again after a longer interval."""
    probes = circuit.probes + 1
    return replace(
        circuit,
        failures=circuit.failures + 1,
        probes=probes,
        next_probe_at=now + probe_interval(settings, probes),
        last_error=error,
    )


def hold_until(settings: CircuitSettings, now: float) -> float:
    """Until when events behind an open circuit wait: ``max_probe`` seconds from *now*.

    Closing the circuit makes them due at once (``CircuitBoard``), in the same transaction, so the
    bound only matters if no probe can close it; then they look again, unhurried, once a
    ``max_probe`` interval, and are held again without using up a retry.
    """
    return now + max(1.0, settings.max_probe)
