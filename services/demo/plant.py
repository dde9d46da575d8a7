"""Synthetic sensor history for a small plant: centrifugal pumps that wear out, and turbines.

Kept whole (over 400 lines): every signal is a function of the same sample index and anchor, and
the failures the labels come from must stay beside the signals they bend.

A plant is pinned to an *anchor*, a Monday 00:00 UTC (`plant_anchor`: the one that starts the
week of the first load). Every asset has one fixed *domain* of samples around it,
``[anchor - DOMAIN_DAYS_BEFORE, anchor + DOMAIN_DAYS_AFTER)``, and everything is a vectorised
function of a sample's index in that domain. Two consequences:

* any slice of an asset renders on its own and matches the same slice of the whole domain bit
  for bit. That lets the loader stream months of 1 Hz data in bounded memory, and a running
  stack append the minutes that have just passed with exactly the rows a fresh load would hold;
* two plants of the same seed with different anchors hold the same data shifted by the
  difference of their anchors. How much history is loaded, and when, decides which slice is
  stored, never what it holds, so a notebook trained on "the 30 days before the anchor" gets
  the same figures on every machine. The anchor is a week boundary, not just a day boundary,
  because demand drops at weekends: a Monday anchor keeps both the daily and the weekly cycle
  at the same place relative to it.

Randomness comes from three places, all fixed by (seed, asset id) and indexed from the
domain's start:

* a per-asset *plan*: physical parameters, failure times and modes, sensor glitches, and slow
  "wander" processes sampled on hourly knots and interpolated;
* white measurement noise drawn per tag in fixed blocks of samples, each block seeded by its
  index, so a slice only draws the blocks it overlaps;
* nothing else: no state is carried from one sample to the next.

Pumps fail in three modes whose precursors build up over 2-7 days before the trip: bearing wear
(vibration and bearing temperature rise), cavitation (discharge pressure falls, flow oscillates,
vibration rises) and seal leaks (pressure and flow fall, vibration rises a little). A repair
(pump off, quality "uncertain") resets the wear. The signatures are the same on every pump up to
a per-pump scale, so a model trained on some pumps transfers to a held-out one.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
I16 = NDArray[np.int16]

# OPC UA style quality codes, as stored in tag_data.quality.
QUALITY_GOOD = 192
QUALITY_UNCERTAIN = 64
QUALITY_BAD = 0

PUMP = "pump"
TURBINE = "turbine"
KINDS = (PUMP, TURBINE)

BEARING = "bearing_failure"
CAVITATION = "cavitation"
SEAL = "seal_leak"
FAILURE_MODES = (BEARING, CAVITATION, SEAL)

_US = 1_000_000
_MINUTE_US = 60 * _US
_HOUR_US = 3600 * _US
_DAY_US = 24 * _HOUR_US
# The plant keeps local time at UTC+1 all year: demand follows the wall clock, and a fixed
# offset keeps the daily cycle stationary (no daylight-saving jumps in the training data).
_LOCAL_OFFSET_US = _HOUR_US
# Noise is drawn in blocks of this many samples; a slice draws only the blocks it overlaps.
NOISE_BLOCK = 8192
_N_WANDER = 8
_WANDER_TAU_HOURS = 12.0
_GLITCHES_PER_TAG_DAY = 0.05
_WEEK_US = 7 * _DAY_US
# 1970-01-01 was a Thursday: unix day d is a Monday when (d + 3) % 7 == 0.
_MONDAY_SHIFT_DAYS = 3

# The generator's domain around the anchor. Before it: at least the longest export window
# (366 days), so any history a load asks for exists. After it: how long a stack may keep the
# plant live before the next `mlplane up` re-anchors it.
DOMAIN_DAYS_BEFORE = 366
DOMAIN_DAYS_AFTER = 365
# Failures: at most this long between two trips of one pump, so every 30-day window holds one.
_MAX_TRIP_GAP_DAYS = 28.0

# Seed-sequence streams, so the plan, noise and glitches never share random numbers.
_STREAM_PLAN = 0
_STREAM_NOISE = 1
_STREAM_GLITCH = 2


@dataclass(frozen=True)
class TagSpec:
    name: str
    unit: str
    description: str


@dataclass(frozen=True)
class FailureEvent:
    start: datetime
    end: datetime | None  # None while the pump is still down (as failure_events stores it)
    failure_mode: str
    description: str


@dataclass(frozen=True, eq=False)  # arrays do not compare to a single bool
class AssetSeries:
    """One asset's generated data; ``values[i]`` and ``quality[i]`` belong to ``tags[i]``."""

    asset_id: str
    display_name: str
    kind: str
    tags: list[TagSpec]
    times: I64  # unix microseconds, shared by all tags
    values: F64  # (n_tags, n_times)
    quality: I16  # (n_tags, n_times)
    failures: list[FailureEvent]


def demo_assets() -> list[tuple[str, str]]:
    """(asset_id, kind) for the demo plant: eight pumps and two turbines."""
    pumps = [(f"pump-{i:03d}", PUMP) for i in range(1, 9)]
    turbines = [(f"turbine-{i:03d}", TURBINE) for i in range(1, 3)]
    return pumps + turbines


def plant_anchor(moment: datetime) -> datetime:
    """The Monday 00:00 UTC on or before ``moment``: the anchor of a plant first loaded then."""
    day = to_unix_us(moment) // _DAY_US
    monday = day - (day + _MONDAY_SHIFT_DAYS) % 7
    return from_unix_us(monday * _DAY_US)


def generate_asset(
    asset_id: str,
    kind: str,
    *,
    anchor: datetime,
    days: float,
    step_seconds: float,
    seed: int,
    until: datetime | None = None,
    n_tags: int | None = None,
) -> AssetSeries:
    """One asset's samples from ``days`` before the anchor up to ``until`` (default: the anchor),
    with the failures a load up to ``until`` would record."""
    generator = AssetGenerator(
        asset_id, kind, anchor=anchor, step_seconds=step_seconds, seed=seed, n_tags=n_tags
    )
    i0 = generator.history_start(days)
    i1 = generator.index(anchor if until is None else until)
    return generator.series(i0, i1)


def to_unix_us(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} is naive; pass an aware datetime (UTC)")
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * _US + delta.microseconds


def from_unix_us(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


# --- the plan -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Failure:
    onset_us: int  # precursor starts building up
    start_us: int  # the trip
    end_us: int  # back in service after the repair
    mode: str
    severity: float
    shape: float  # exponent of the build-up curve: >1 means slow at first, fast at the end
    temp_excess: float  # bearing temperature above ambient at the trip, for the cool-down


@dataclass(frozen=True)
class _PumpParams:
    q0: float  # design flow, m3/h
    p0: float  # design discharge pressure, bar
    i0: float  # full-load motor current, A
    v0: float  # healthy vibration, mm/s
    t0: float  # bearing temperature rise over ambient at full load, degC
    phase_h: float  # shift of this pump's demand profile, hours


@dataclass(frozen=True)
class _TurbineParams:
    rated_mw: float
    v0: float
    phase_h: float


@dataclass
class _State:
    """Shared signals for one slice; every field is a function of the sample times alone."""

    times: I64
    t_s: F64  # seconds since the series start
    hour: F64  # local hour of day
    weekend: F64  # 1.0 on Saturdays and Sundays
    ambient: F64
    wander: list[F64]  # _N_WANDER slow unit-variance processes
    on: NDArray[np.bool_]
    off_elapsed_h: F64  # hours since the trip, during repairs
    off_excess: F64  # bearing temperature excess at the trip, during repairs
    bearing: F64  # wear indicators, 0 (healthy) .. ~severity at the trip
    cavitation: F64
    seal: F64
    vib_factor: F64  # each repair leaves a slightly different baseline


def _cos_h(hour: F64, peak_h: float, harmonic: int = 1) -> F64:
    result: F64 = np.cos(harmonic * 2.0 * math.pi * (hour - peak_h) / 24.0)
    return result


class _PumpCtx:
    def __init__(self, p: _PumpParams, st: _State) -> None:
        self.p = p
        self.st = st
        w = st.wander
        self.demand = (
            1.0
            + 0.18 * _cos_h(st.hour, 13.0 + p.phase_h)
            + 0.06 * _cos_h(st.hour, 8.0 + p.phase_h, 2)
            - 0.07 * st.weekend
            + 0.04 * w[0]
        )
        # Cavitation makes the flow surge at a period of minutes, visible at 1/min sampling.
        surge = 1.0 + 0.05 * st.cavitation * np.sin(2.0 * math.pi * st.t_s / 1380.0)
        self.flow = p.q0 * self.demand * (1.0 - 0.12 * st.seal) * surge
        self.pressure = (
            p.p0
            * (0.92 + 0.08 * self.demand)
            * (1.0 - 0.15 * st.cavitation - 0.10 * st.seal)
            * (1.0 + 0.02 * w[4])
        )
        self.load = self.flow / p.q0
        self.current = (
            p.i0 * (0.3 + 0.7 * self.load * self.pressure / p.p0) * (1.0 + 0.05 * st.bearing)
        )
        self.cool = np.exp(-st.off_elapsed_h / 1.5)


class _TurbineCtx:
    def __init__(self, p: _TurbineParams, st: _State) -> None:
        self.p = p
        self.st = st
        self.load: F64 = np.clip(
            0.62
            + 0.22 * _cos_h(st.hour, 15.0 + p.phase_h)
            + 0.08 * _cos_h(st.hour, 9.0 + p.phase_h, 2)
            - 0.08 * st.weekend
            + 0.06 * st.wander[0],
            0.25,
            1.0,
        )


def _on(st: _State, running: F64, stopped: F64) -> F64:
    result: F64 = np.where(st.on, running, stopped)
    return result


# --- pump tags ------------------------------------------------------------------------------
# Each takes the slice context and this tag's own standard-normal noise.


def _pump_vibration(c: _PumpCtx, z: F64) -> F64:
    st, p = c.st, c.p
    # Damaged bearings and cavitation make the RMS value spikier, not just higher.
    sd = 0.1 * (1.0 + 1.5 * st.bearing + 2.0 * st.cavitation)
    running = (
        p.v0 * st.vib_factor * (0.8 + 0.2 * c.load)
        + 3.0 * st.bearing
        + 1.3 * st.cavitation
        + 1.0 * st.seal
        + 0.08 * st.wander[2]
        + sd * z
    )
    return np.maximum(_on(st, running, 0.05 + 0.02 * np.abs(z)), 0.02)


def _pump_bearing_temp(c: _PumpCtx, z: F64) -> F64:
    st, p = c.st, c.p
    running = (
        st.ambient
        + p.t0 * (0.6 + 0.4 * c.current / p.i0)
        + 16.0 * st.bearing
        + 4.0 * st.seal
        + 0.5 * st.wander[3]
    )
    return _on(st, running, st.ambient + st.off_excess * c.cool) + 0.25 * z


def _pump_pressure(c: _PumpCtx, z: F64) -> F64:
    st = c.st
    running = c.pressure + 0.04 * (1.0 + 3.0 * st.cavitation) * z
    return _on(st, running, 0.35 + 0.02 * z)


def _pump_flow(c: _PumpCtx, z: F64) -> F64:
    st, p = c.st, c.p
    running = c.flow + p.q0 * (0.012 + 0.04 * st.cavitation) * z
    return np.maximum(_on(st, running, 0.3 * np.abs(z)), 0.0)


def _pump_current(c: _PumpCtx, z: F64) -> F64:
    return np.maximum(_on(c.st, c.current + 0.3 * z, 0.05 * np.abs(z)), 0.0)


def _pump_suction_pressure(c: _PumpCtx, z: F64) -> F64:
    st = c.st
    running = 1.4 - 0.3 * (c.load - 1.0) - 0.35 * st.cavitation + 0.03 * st.wander[5]
    return _on(st, running, np.full_like(z, 1.5)) + 0.02 * z


def _pump_winding_temp(c: _PumpCtx, z: F64) -> F64:
    st, p = c.st, c.p
    running = st.ambient + 20.0 + 40.0 * (c.current / p.i0) ** 2
    return _on(st, running, st.ambient + 60.0 * c.cool) + 0.3 * z


def _pump_axial_vibration(c: _PumpCtx, z: F64) -> F64:
    st, p = c.st, c.p
    running = (
        0.55 * p.v0 * st.vib_factor * (0.8 + 0.2 * c.load)
        + 1.6 * st.bearing
        + 0.7 * st.cavitation
        + 0.4 * st.seal
        + 0.06 * z
    )
    return np.maximum(_on(st, running, 0.03 + 0.01 * np.abs(z)), 0.01)


def _pump_voltage(c: _PumpCtx, z: F64) -> F64:
    st = c.st
    sag = _on(st, 1.5 * c.current / c.p.i0, np.zeros_like(z))
    return 400.0 + 2.5 * st.wander[7] - sag + 0.8 * z


def _pump_power(c: _PumpCtx, z: F64) -> F64:
    # sqrt(3) * 0.4 kV * cos(phi) 0.86
    return np.maximum(_on(c.st, 0.596 * c.current + 0.2 * z, 0.02 * np.abs(z)), 0.0)


def _pump_speed(c: _PumpCtx, z: F64) -> F64:
    return np.maximum(_on(c.st, 1485.0 - 10.0 * c.load + 0.8 * z, 0.5 * np.abs(z)), 0.0)


def _pump_oil_temp(c: _PumpCtx, z: F64) -> F64:
    st = c.st
    running = st.ambient + 18.0 + 8.0 * st.bearing
    return _on(st, running, st.ambient + 18.0 * c.cool) + 0.3 * z


def _pump_valve(c: _PumpCtx, z: F64) -> F64:
    running = 50.0 + 120.0 * (c.demand - 1.0) + 0.3 * z
    return np.clip(_on(c.st, running, np.zeros_like(z)), 0.0, 100.0)


def _pump_ambient(c: _PumpCtx, z: F64) -> F64:
    return c.st.ambient + 0.15 * z


def _pump_power_factor(c: _PumpCtx, z: F64) -> F64:
    return _on(c.st, 0.86 - 0.05 * (1.0 - c.load) + 0.003 * z, np.zeros_like(z))


_PumpTag = tuple[TagSpec, Callable[[_PumpCtx, F64], F64]]

_PUMP_TAGS: list[_PumpTag] = [
    (
        TagSpec("vibration_rms", "mm/s", "Drive-end bearing vibration velocity, RMS 10-1000 Hz"),
        _pump_vibration,
    ),
    (TagSpec("bearing_temp", "degC", "Drive-end bearing temperature"), _pump_bearing_temp),
    (TagSpec("discharge_pressure", "bar", "Discharge pressure (gauge)"), _pump_pressure),
    (TagSpec("flow", "m3/h", "Volumetric flow at the discharge"), _pump_flow),
    (TagSpec("motor_current", "A", "Motor phase current, RMS"), _pump_current),
    # Extras for wider benchmark assets; plausible, mostly redundant with the five above.
    (TagSpec("suction_pressure", "bar", "Suction pressure (gauge)"), _pump_suction_pressure),
    (TagSpec("motor_winding_temp", "degC", "Motor stator winding temperature"), _pump_winding_temp),
    (TagSpec("axial_vibration", "mm/s", "Axial vibration velocity, RMS"), _pump_axial_vibration),
    (TagSpec("motor_voltage", "V", "Motor supply voltage, line to line"), _pump_voltage),
    (TagSpec("motor_power", "kW", "Motor active power"), _pump_power),
    (TagSpec("shaft_speed", "rpm", "Shaft speed"), _pump_speed),
    (TagSpec("lube_oil_temp", "degC", "Bearing housing oil temperature"), _pump_oil_temp),
    (TagSpec("valve_position", "%", "Discharge control valve opening"), _pump_valve),
    (TagSpec("ambient_temp", "degC", "Pump house air temperature"), _pump_ambient),
    (TagSpec("power_factor", "", "Motor power factor"), _pump_power_factor),
]


# --- turbine tags ---------------------------------------------------------------------------


def _turbine_speed(c: _TurbineCtx, z: F64) -> F64:
    # Grid-synchronous: the speed follows the grid frequency, which wanders by a few mHz.
    return 3000.0 * (1.0 + 0.0008 * c.st.wander[2]) + 0.6 * z


def _turbine_exhaust(c: _TurbineCtx, z: F64) -> F64:
    st = c.st
    return 390.0 + 170.0 * c.load + 0.4 * (st.ambient - 15.0) + 2.0 * st.wander[3] + 1.2 * z


def _turbine_vibration(c: _TurbineCtx, z: F64) -> F64:
    return c.p.v0 + 0.8 * c.load + 0.12 * c.st.wander[4] + 0.06 * z


def _turbine_power(c: _TurbineCtx, z: F64) -> F64:
    return c.p.rated_mw * c.load + 0.25 * z


def _turbine_lube_pressure(c: _TurbineCtx, z: F64) -> F64:
    return 2.45 - 0.12 * (c.load - 0.6) + 0.02 * c.st.wander[5] + 0.012 * z


def _turbine_inlet_temp(c: _TurbineCtx, z: F64) -> F64:
    return c.st.ambient + 0.2 * z


def _turbine_fuel_flow(c: _TurbineCtx, z: F64) -> F64:
    # MW / (efficiency 0.36 * lower heating value 48 MJ/kg) = kg/s
    return c.p.rated_mw * c.load / (0.36 * 48.0) + 0.01 * z


def _turbine_compressor_pressure(c: _TurbineCtx, z: F64) -> F64:
    return 9.0 + 7.0 * c.load + 0.05 * z


def _turbine_winding_temp(c: _TurbineCtx, z: F64) -> F64:
    return c.st.ambient + 40.0 + 35.0 * c.load**2 + 0.3 * z


def _turbine_bearing_temp(c: _TurbineCtx, z: F64) -> F64:
    return c.st.ambient + 55.0 + 10.0 * c.load + 0.3 * z


def _turbine_oil_temp(c: _TurbineCtx, z: F64) -> F64:
    return c.st.ambient + 35.0 + 8.0 * c.load + 0.2 * z


def _turbine_frequency(c: _TurbineCtx, z: F64) -> F64:
    return 50.0 * (1.0 + 0.0008 * c.st.wander[2]) + 0.005 * z


_TurbineTag = tuple[TagSpec, Callable[[_TurbineCtx, F64], F64]]

_TURBINE_TAGS: list[_TurbineTag] = [
    (TagSpec("rotor_speed", "rpm", "Rotor speed"), _turbine_speed),
    (TagSpec("exhaust_temp", "degC", "Exhaust gas temperature, average"), _turbine_exhaust),
    (TagSpec("vibration_rms", "mm/s", "Bearing vibration velocity, RMS"), _turbine_vibration),
    (TagSpec("power_output", "MW", "Generator active power"), _turbine_power),
    (TagSpec("lube_oil_pressure", "bar", "Lube oil header pressure"), _turbine_lube_pressure),
    (TagSpec("inlet_air_temp", "degC", "Compressor inlet air temperature"), _turbine_inlet_temp),
    (TagSpec("fuel_flow", "kg/s", "Fuel gas mass flow"), _turbine_fuel_flow),
    (
        TagSpec("compressor_discharge_pressure", "bar", "Compressor discharge pressure"),
        _turbine_compressor_pressure,
    ),
    (
        TagSpec("generator_winding_temp", "degC", "Generator stator winding temperature"),
        _turbine_winding_temp,
    ),
    (TagSpec("bearing_temp", "degC", "Turbine journal bearing temperature"), _turbine_bearing_temp),
    (TagSpec("lube_oil_temp", "degC", "Lube oil tank temperature"), _turbine_oil_temp),
    (TagSpec("generator_frequency", "Hz", "Generator output frequency"), _turbine_frequency),
]

_NATURAL_TAGS = 5


def _aux_spec(k: int) -> TagSpec:
    return TagSpec(f"aux_temp_{k:02d}", "degC", f"Auxiliary temperature sensor {k}")


def _aux_value(ambient: F64, k: int, z: F64) -> F64:
    return ambient + 5.0 + 0.5 * k + 0.3 * z


_FAILURE_TEXT = {
    BEARING: (
        "Drive-end bearing failure, pump tripped on high vibration",
        "bearing replaced, shaft alignment checked",
    ),
    CAVITATION: (
        "Cavitation damage to the impeller, discharge pressure lost",
        "impeller replaced, suction strainer cleaned",
    ),
    SEAL: (
        "Mechanical seal leak, pump stopped by operator",
        "mechanical seal replaced",
    ),
}


class AssetGenerator:
    """One asset's plan over its domain; renders any index range ``[i0, i1)`` on demand.

    Sample ``i`` is at ``domain_start + i * step``. Indices, not times, address the samples:
    a step need not divide a day (``--hz 3``), and the grid stays the same for every slice.
    """

    def __init__(
        self,
        asset_id: str,
        kind: str,
        *,
        anchor: datetime,
        step_seconds: float,
        seed: int,
        n_tags: int | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown asset kind {kind!r}; expected one of {KINDS}")
        if step_seconds <= 0:
            raise ValueError("step_seconds must be positive")
        if seed < 0:
            raise ValueError("seed must be non-negative")
        if n_tags is not None and n_tags < 1:
            raise ValueError("n_tags must be at least 1")
        self.anchor_us = to_unix_us(anchor)
        if to_unix_us(plant_anchor(anchor)) != self.anchor_us:
            raise ValueError(f"the anchor {anchor.isoformat()} is not a Monday 00:00 UTC")
        self.asset_id = asset_id
        self.kind = kind
        self.step_us = round(step_seconds * _US)
        if self.step_us < 1:
            raise ValueError("step_seconds must be at least one microsecond")
        self.domain_start_us = self.anchor_us - DOMAIN_DAYS_BEFORE * _DAY_US
        self.domain_end_us = self.anchor_us + DOMAIN_DAYS_AFTER * _DAY_US
        self.n_times = -(-(self.domain_end_us - self.domain_start_us) // self.step_us)
        self.n_tags = _NATURAL_TAGS if n_tags is None else n_tags
        label = "Centrifugal pump" if kind == PUMP else "Gas turbine"
        self.display_name = f"{label} {asset_id.rsplit('-', 1)[-1]}"
        self._seed = seed
        # crc32, not hash(): str hashes are salted per process.
        self._asset_key = zlib.crc32(asset_id.encode())
        rng = self._rng(_STREAM_PLAN)
        # Drawn in a fixed order, whatever the kind, so a parameter never shifts another's draw.
        self._pump = _PumpParams(
            q0=float(rng.uniform(90.0, 150.0)),
            p0=float(rng.uniform(5.0, 7.5)),
            i0=float(rng.uniform(38.0, 58.0)),
            v0=float(rng.uniform(1.6, 2.4)),
            t0=float(rng.uniform(28.0, 36.0)),
            phase_h=float(rng.uniform(-1.0, 1.0)),
        )
        self._turbine = _TurbineParams(
            rated_mw=float(rng.uniform(35.0, 60.0)),
            v0=float(rng.uniform(2.2, 3.0)),
            phase_h=float(rng.uniform(-1.0, 1.0)),
        )
        n_knots = math.ceil((self.domain_end_us - self.domain_start_us) / _HOUR_US) + 2
        self._knots = np.arange(n_knots, dtype=np.float64)
        self._wander = _smooth_noise(rng, _N_WANDER, n_knots, _WANDER_TAU_HOURS)
        self._failures = self._plan_failures(rng) if kind == PUMP else []
        # Each repair re-seats the bearings a little differently.
        self._repair_ends = np.array([f.end_us for f in self._failures], dtype=np.int64)
        self._vib_factors = np.concatenate(
            [[1.0], rng.uniform(0.9, 1.1, len(self._failures))]
        ).astype(np.float64)
        self._glitch_tag, self._glitch_start, self._glitch_stop, self._glitch_factor = (
            self._plan_glitches()
        )
        self.tags = self._tag_specs()

    # --- public ---------------------------------------------------------------------------

    @property
    def anchor(self) -> datetime:
        return from_unix_us(self.anchor_us)

    @property
    def domain_end(self) -> datetime:
        return from_unix_us(self.domain_end_us)

    def index(self, moment: datetime) -> int:
        """How many samples of the domain lie before ``moment`` (clamped to the domain)."""
        offset = to_unix_us(moment) - self.domain_start_us
        return min(max(0, -(-offset // self.step_us)), self.n_times)

    def index_through(self, moment: datetime) -> int:
        """How many samples lie at or before ``moment``: the end of a load made at that moment."""
        return self.index(moment + timedelta(microseconds=1))

    def history_start(self, days: float) -> int:
        """Index of the first sample of ``days`` of history before the anchor."""
        n = int(round(days * _DAY_US) // self.step_us)
        if n < 1:
            raise ValueError("the history holds no sample; raise days or lower step_seconds")
        first = self.index(self.anchor) - n
        if first < 0:
            raise ValueError(f"at most {DOMAIN_DAYS_BEFORE} days of history precede the anchor")
        return first

    def time_of(self, i: int) -> datetime:
        return from_unix_us(self.domain_start_us + i * self.step_us)

    def failure_events(self, i0: int, i1: int) -> list[FailureEvent]:
        """The failures a store holding samples ``[i0, i1)`` knows of.

        A failure is recorded once its trip is in the past (before the first missing sample),
        and its end once the pump runs again; until then ``end`` is None and the description
        says the repair is under way. The answer depends on ``i1`` only, never on how the
        samples got there, so one load and a load followed by appends record the same.
        """
        start_us = self.domain_start_us + i0 * self.step_us
        until_us = self.domain_start_us + i1 * self.step_us
        events = []
        for f in self._failures:
            if f.start_us >= until_us or f.end_us <= start_us:
                continue
            ended = f.end_us < until_us
            hours = (f.end_us - f.start_us) / _HOUR_US
            what, repair = _FAILURE_TEXT[f.mode]
            events.append(
                FailureEvent(
                    start=from_unix_us(f.start_us),
                    end=from_unix_us(f.end_us) if ended else None,
                    failure_mode=f.mode,
                    description=f"{what}; {repair} ({hours:.1f} h down)"
                    if ended
                    else f"{what}; repair under way",
                )
            )
        return events

    def times(self, i0: int, i1: int) -> I64:
        return self.domain_start_us + np.arange(i0, i1, dtype=np.int64) * self.step_us

    def render(self, i0: int, i1: int) -> tuple[I64, F64, I16]:
        """Times, values (n_tags, m) and quality (n_tags, m) of samples ``i0 .. i1 - 1``."""
        if not 0 <= i0 <= i1 <= self.n_times:
            raise IndexError(f"slice [{i0}, {i1}) outside the domain [0, {self.n_times})")
        st = self._state(i0, i1)
        m = i1 - i0
        values = np.empty((self.n_tags, m), dtype=np.float64)
        if self.kind == PUMP:
            pump = _PumpCtx(self._pump, st)
            for j in range(self.n_tags):
                z = self._noise(j, i0, i1)
                if j < len(_PUMP_TAGS):
                    values[j] = _PUMP_TAGS[j][1](pump, z)
                else:
                    values[j] = _aux_value(st.ambient, j - len(_PUMP_TAGS) + 1, z)
        else:
            turbine = _TurbineCtx(self._turbine, st)
            for j in range(self.n_tags):
                z = self._noise(j, i0, i1)
                if j < len(_TURBINE_TAGS):
                    values[j] = _TURBINE_TAGS[j][1](turbine, z)
                else:
                    values[j] = _aux_value(st.ambient, j - len(_TURBINE_TAGS) + 1, z)
        quality = np.full((self.n_tags, m), QUALITY_GOOD, dtype=np.int16)
        quality[:, ~st.on] = QUALITY_UNCERTAIN
        self._apply_glitches(i0, i1, values, quality)
        return st.times, values, quality

    def series(self, i0: int, i1: int) -> AssetSeries:
        times, values, quality = self.render(i0, i1)
        return AssetSeries(
            asset_id=self.asset_id,
            display_name=self.display_name,
            kind=self.kind,
            tags=list(self.tags),
            times=times,
            values=values,
            quality=quality,
            failures=self.failure_events(i0, i1),
        )

    # --- planning -------------------------------------------------------------------------

    def _tag_specs(self) -> list[TagSpec]:
        table = [spec for spec, _ in (_PUMP_TAGS if self.kind == PUMP else _TURBINE_TAGS)]
        specs = table[: self.n_tags]
        specs += [_aux_spec(k) for k in range(1, self.n_tags - len(table) + 1)]
        return specs

    def _plan_failures(self, rng: np.random.Generator) -> list[_Failure]:
        # A renewal process over the whole domain: 3-5 trips per 90 days on average, the gaps
        # between trips varying by +-25% around that and never over four weeks, so every
        # 30-day window holds a trip (the notebook trains on one and evaluates on a pump
        # that failed in it). Arrays are drawn for the most trips the domain can hold, so the
        # draws never depend on where the domain is cut.
        per_90_days = int(rng.choice([3, 4, 5], p=[0.3, 0.45, 0.25]))
        mean_gap = 90.0 / per_90_days * _DAY_US
        span = self.domain_end_us - self.domain_start_us
        most = int(span / (0.75 * mean_gap)) + 2
        gaps = np.minimum(rng.uniform(0.75, 1.25, most) * mean_gap, _MAX_TRIP_GAP_DAYS * _DAY_US)
        gaps[0] *= rng.uniform(0.2, 1.0)  # the domain starts somewhere in a gap
        modes = rng.choice(len(FAILURE_MODES), size=most, p=[0.5, 0.3, 0.2])
        severities = rng.uniform(0.7, 1.3, most)
        shapes = rng.uniform(1.5, 2.5, most)
        leads_us = rng.uniform(2.0, 7.0, most) * _DAY_US
        downtimes_us = rng.uniform(4.0, 16.0, most) * _HOUR_US

        starts = self.domain_start_us + np.cumsum(gaps).astype(np.int64)
        failures: list[_Failure] = []
        previous_end = self.domain_start_us
        for i in range(most):
            start = int(starts[i]) // _MINUTE_US * _MINUTE_US
            if start >= self.domain_end_us:
                break
            # Never let a build-up reach back into the previous repair.
            lead = min(int(leads_us[i]), int(0.6 * (start - previous_end)))
            end = start + int(downtimes_us[i]) // _MINUTE_US * _MINUTE_US
            mode = FAILURE_MODES[int(modes[i])]
            severity = float(severities[i])
            excess = self._pump.t0 + (
                16.0 * severity if mode == BEARING else 4.0 * severity if mode == SEAL else 0.0
            )
            failures.append(
                _Failure(
                    onset_us=start - lead,
                    start_us=start,
                    end_us=end,
                    mode=mode,
                    severity=severity,
                    shape=float(shapes[i]),
                    temp_excess=excess,
                )
            )
            previous_end = end
        return failures

    def _plan_glitches(self) -> tuple[I64, I64, I64, F64]:
        # Rare dropouts (value 0) and spikes, flagged bad; lengths are in time, not samples.
        # Each tag has its own stream, so adding tags leaves the others' glitches alone.
        days = (self.domain_end_us - self.domain_start_us) / _DAY_US
        tags, starts, stops, factors = [], [], [], []
        for tag in range(self.n_tags):
            rng = self._rng(_STREAM_GLITCH, tag)
            count = int(rng.poisson(_GLITCHES_PER_TAG_DAY * days))
            start = rng.integers(0, self.n_times, count).astype(np.int64)
            seconds = rng.uniform(60.0, 1200.0, count)
            length = np.maximum(1, np.round(seconds * _US / self.step_us)).astype(np.int64)
            factor = np.where(rng.random(count) < 0.5, 0.0, rng.uniform(2.0, 4.0, count))
            tags.append(np.full(count, tag, dtype=np.int64))
            starts.append(start)
            stops.append(np.minimum(start + length, self.n_times))
            factors.append(factor.astype(np.float64))
        return (
            np.concatenate(tags),
            np.concatenate(starts),
            np.concatenate(stops),
            np.concatenate(factors),
        )

    def _rng(self, *key: int) -> np.random.Generator:
        sequence = np.random.SeedSequence(self._seed, spawn_key=(self._asset_key, *key))
        return np.random.Generator(np.random.PCG64(sequence))

    # --- rendering ------------------------------------------------------------------------

    def _noise(self, tag: int, i0: int, i1: int) -> F64:
        if i0 == i1:
            return np.empty(0, dtype=np.float64)
        first, last = i0 // NOISE_BLOCK, (i1 - 1) // NOISE_BLOCK
        blocks = [
            self._rng(_STREAM_NOISE, tag, block).standard_normal(NOISE_BLOCK)
            for block in range(first, last + 1)
        ]
        joined = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
        offset = first * NOISE_BLOCK
        return joined[i0 - offset : i1 - offset]

    def _state(self, i0: int, i1: int) -> _State:
        times = self.times(i0, i1)
        m = times.size
        since_start = (times - self.domain_start_us).astype(np.float64)
        # The anchor is a Monday midnight, so the wall clock and the weekday are functions of
        # the time since the anchor too.
        local = times + _LOCAL_OFFSET_US
        hour = (local % _DAY_US).astype(np.float64) / _HOUR_US
        weekday = (local // _DAY_US + _MONDAY_SHIFT_DAYS) % 7  # Monday 0, Saturday 5
        knot_pos = since_start / _HOUR_US
        wander: list[F64] = [np.interp(knot_pos, self._knots, row) for row in self._wander]
        ambient = 14.0 + 5.0 * _cos_h(hour, 15.0) + 2.5 * wander[1]

        wear = np.zeros((len(FAILURE_MODES), m), dtype=np.float64)
        on = np.ones(m, dtype=np.bool_)
        off_elapsed_h = np.zeros(m, dtype=np.float64)
        off_excess = np.zeros(m, dtype=np.float64)
        for f in self._failures:
            if m == 0 or f.end_us <= times[0] or f.onset_us > times[-1]:
                continue
            a, b, c = np.searchsorted(times, [f.onset_us, f.start_us, f.end_us])
            if a < b:
                u = (times[a:b] - f.onset_us) / (f.start_us - f.onset_us)
                wear[FAILURE_MODES.index(f.mode), a:b] = f.severity * u**f.shape
            if b < c:
                on[b:c] = False
                off_elapsed_h[b:c] = (times[b:c] - f.start_us) / _HOUR_US
                off_excess[b:c] = f.temp_excess
        # Real wear does not grow smoothly: let it wobble with a slow process.
        wear *= np.clip(1.0 + 0.2 * wander[6], 0.5, None)
        segment = np.searchsorted(self._repair_ends, times, side="right")
        return _State(
            times=times,
            t_s=since_start / _US,
            hour=hour,
            weekend=(weekday >= 5).astype(np.float64),
            ambient=ambient,
            wander=wander,
            on=on,
            off_elapsed_h=off_elapsed_h,
            off_excess=off_excess,
            bearing=wear[0],
            cavitation=wear[1],
            seal=wear[2],
            vib_factor=self._vib_factors[segment],
        )

    def _apply_glitches(self, i0: int, i1: int, values: F64, quality: I16) -> None:
        hit = np.flatnonzero((self._glitch_stop > i0) & (self._glitch_start < i1))
        for g in hit:
            a = max(int(self._glitch_start[g]), i0) - i0
            b = min(int(self._glitch_stop[g]), i1) - i0
            tag = int(self._glitch_tag[g])
            values[tag, a:b] *= self._glitch_factor[g]
            quality[tag, a:b] = QUALITY_BAD


def _smooth_noise(rng: np.random.Generator, rows: int, n: int, tau: float) -> F64:
    """``rows`` unit-variance processes of length ``n`` with correlation time ``tau`` samples."""
    width = int(5 * tau)
    kernel = np.exp(-np.arange(width + 1) / tau)
    kernel /= math.sqrt(float(np.sum(kernel**2)))
    white = rng.standard_normal((rows, n + width))
    out = np.empty((rows, n), dtype=np.float64)
    for r in range(rows):
        out[r] = np.convolve(white[r], kernel, mode="valid")
    return out
