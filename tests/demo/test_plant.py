"""The synthetic plant: deterministic, sliceable, the same whatever its anchor, and with
failures a model can learn."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise

import numpy as np
import pytest

from services.demo.plant import (
    DOMAIN_DAYS_AFTER,
    DOMAIN_DAYS_BEFORE,
    FAILURE_MODES,
    NOISE_BLOCK,
    QUALITY_BAD,
    QUALITY_GOOD,
    QUALITY_UNCERTAIN,
    AssetGenerator,
    AssetSeries,
    demo_assets,
    generate_asset,
    plant_anchor,
    to_unix_us,
)

ANCHOR = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday: the anchor of these plants
HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US


@pytest.fixture(scope="module")
def plant_90d() -> dict[str, AssetSeries]:
    return {
        asset_id: generate_asset(asset_id, kind, anchor=ANCHOR, days=90, step_seconds=60, seed=7)
        for asset_id, kind in demo_assets()
    }


def _pumps(plant: dict[str, AssetSeries]) -> list[AssetSeries]:
    return [s for s in plant.values() if s.kind == "pump"]


def _failure_bounds(series: AssetSeries) -> list[tuple[int, int]]:
    """(trip, back in service) in unix microseconds; the series' end while still down."""
    end = int(series.times[-1]) + int(series.times[1] - series.times[0])
    return [
        (to_unix_us(f.start), end if f.end is None else to_unix_us(f.end)) for f in series.failures
    ]


def test_demo_assets() -> None:
    assets = demo_assets()
    assert [a for a, _ in assets] == [f"pump-{i:03d}" for i in range(1, 9)] + [
        "turbine-001",
        "turbine-002",
    ]
    assert {k for _, k in assets} == {"pump", "turbine"}


def test_plant_anchor_is_the_monday_midnight_starting_the_week() -> None:
    monday = datetime(2026, 11, 16, tzinfo=UTC)
    assert monday.weekday() == 0
    for moment in (
        monday,
        monday + timedelta(microseconds=1),
        monday + timedelta(days=3, hours=15, minutes=27),
        monday + timedelta(days=7) - timedelta(microseconds=1),
    ):
        assert plant_anchor(moment) == monday
    assert plant_anchor(monday - timedelta(microseconds=1)) == monday - timedelta(days=7)
    # Any time zone: the anchor is a UTC instant.
    assert plant_anchor(datetime(2026, 11, 16, 0, 30, tzinfo=timezone(timedelta(hours=2)))) == (
        monday - timedelta(days=7)
    )


def test_same_data_relative_to_any_anchor() -> None:
    # Two plants first loaded in different weeks (months apart): the same samples and
    # failures at the same offsets from their anchors, bit for bit.
    later = ANCHOR + timedelta(weeks=23)
    for asset_id, kind in [("pump-005", "pump"), ("turbine-001", "turbine")]:
        a = generate_asset(asset_id, kind, anchor=ANCHOR, days=20, step_seconds=60, seed=7)
        b = generate_asset(asset_id, kind, anchor=later, days=20, step_seconds=60, seed=7)
        assert np.array_equal(
            b.times - a.times, np.full(a.times.size, to_unix_us(later) - to_unix_us(ANCHOR))
        )
        assert np.array_equal(a.values, b.values)
        assert np.array_equal(a.quality, b.quality)
        shift = later - ANCHOR
        assert [(f.start + shift, f.end and f.end + shift, f.failure_mode) for f in a.failures] == [
            (f.start, f.end, f.failure_mode) for f in b.failures
        ]
        assert [f.description for f in a.failures] == [f.description for f in b.failures]


def test_history_length_does_not_change_the_data() -> None:
    # The domain is fixed by the anchor, not by how much of it is loaded: a 30-day plant is
    # the last 30 days of a 90-day one (the notebook gets the same figures from both).
    long = generate_asset("pump-002", "pump", anchor=ANCHOR, days=90, step_seconds=60, seed=7)
    short = generate_asset("pump-002", "pump", anchor=ANCHOR, days=30, step_seconds=60, seed=7)
    n = short.times.size
    assert np.array_equal(long.times[-n:], short.times)
    assert np.array_equal(long.values[:, -n:], short.values)
    assert np.array_equal(long.quality[:, -n:], short.quality)
    assert short.failures == [f for f in long.failures if f.start >= ANCHOR - timedelta(days=30)]


def test_anchor_must_be_a_monday_midnight() -> None:
    for bad in (ANCHOR + timedelta(days=1), ANCHOR + timedelta(hours=1)):
        with pytest.raises(ValueError, match="Monday"):
            AssetGenerator("pump-001", "pump", anchor=bad, step_seconds=60, seed=7)


def test_domain_bounds() -> None:
    gen = AssetGenerator("pump-001", "pump", anchor=ANCHOR, step_seconds=60, seed=7)
    assert gen.time_of(0) == ANCHOR - timedelta(days=DOMAIN_DAYS_BEFORE)
    assert gen.n_times == (DOMAIN_DAYS_BEFORE + DOMAIN_DAYS_AFTER) * 24 * 60
    assert gen.domain_end == ANCHOR + timedelta(days=DOMAIN_DAYS_AFTER)
    assert gen.index(ANCHOR) == DOMAIN_DAYS_BEFORE * 24 * 60
    assert gen.index_through(ANCHOR) == gen.index(ANCHOR) + 1
    assert gen.index(ANCHOR + timedelta(seconds=30)) == gen.index(ANCHOR) + 1
    assert gen.index(ANCHOR + timedelta(days=10 * 365)) == gen.n_times  # clamped
    assert gen.history_start(DOMAIN_DAYS_BEFORE) == 0
    with pytest.raises(ValueError, match="at most"):
        gen.history_start(DOMAIN_DAYS_BEFORE + 1)
    with pytest.raises(IndexError):
        gen.render(gen.n_times - 1, gen.n_times + 1)
    # A step that does not divide a day keeps one grid over the whole domain.
    odd = AssetGenerator("x-001", "pump", anchor=ANCHOR, step_seconds=1 / 3, seed=7, n_tags=2)
    i = odd.index(ANCHOR)
    times = odd.times(i - 2, i + 2)
    assert np.all(np.diff(times) == 333_333)
    assert times[1] < to_unix_us(ANCHOR) <= times[2]


def test_failures_are_known_once_they_start_and_end_once_they_end() -> None:
    gen = AssetGenerator("pump-003", "pump", anchor=ANCHOR, step_seconds=60, seed=7)
    i0 = gen.history_start(90)
    whole = gen.failure_events(i0, gen.index(ANCHOR + timedelta(days=60)))
    trip = next(f for f in whole if f.start > ANCHOR)
    assert trip.end is not None
    at = gen.index(trip.start)  # the trip's own sample is the first one missing
    assert trip.start not in {f.start for f in gen.failure_events(i0, at)}
    (during,) = [f for f in gen.failure_events(i0, at + 1) if f.start == trip.start]
    assert during.end is None
    assert "under way" in during.description
    (still,) = [f for f in gen.failure_events(i0, gen.index(trip.end)) if f.start == trip.start]
    assert still.end is None
    (done,) = [f for f in gen.failure_events(i0, gen.index(trip.end) + 1) if f.start == trip.start]
    assert done == trip
    assert "h down" in done.description


def test_every_30_days_hold_a_trip_of_every_pump() -> None:
    # The notebook trains on the 30 days before the anchor and holds out a pump that failed
    # in them; whatever the seed, every pump has a trip in any 30 days of its domain.
    for seed in (7, 1, 2, 3):
        for asset_id, kind in demo_assets()[:8]:
            gen = AssetGenerator(asset_id, kind, anchor=ANCHOR, step_seconds=600, seed=seed)
            trips = [to_unix_us(f.start) for f in gen.failure_events(0, gen.n_times)]
            edges = [to_unix_us(gen.time_of(0)), *trips, to_unix_us(gen.domain_end)]
            assert max(np.diff(edges)) <= 28 * DAY_US, (seed, asset_id)


def test_same_seed_same_data_other_seed_other_data() -> None:
    a = generate_asset("pump-001", "pump", anchor=ANCHOR, days=3, step_seconds=60, seed=7)
    b = generate_asset("pump-001", "pump", anchor=ANCHOR, days=3, step_seconds=60, seed=7)
    c = generate_asset("pump-001", "pump", anchor=ANCHOR, days=3, step_seconds=60, seed=8)
    assert np.array_equal(a.times, b.times)
    assert np.array_equal(a.values, b.values)
    assert np.array_equal(a.quality, b.quality)
    assert a.failures == b.failures
    assert a.tags == b.tags
    assert not np.array_equal(a.values, c.values)
    # Assets differ from one another under the same seed.
    d = generate_asset("pump-002", "pump", anchor=ANCHOR, days=3, step_seconds=60, seed=7)
    assert not np.array_equal(a.values, d.values)


def test_slices_render_exactly_the_whole_series() -> None:
    gen = AssetGenerator("pump-004", "pump", anchor=ANCHOR, step_seconds=60, seed=3)
    first, last = gen.history_start(20), gen.index(ANCHOR + timedelta(days=2))
    whole_t, whole_v, whole_q = gen.render(first, last)
    # Odd cut points, including ones inside and exactly on noise blocks, and the anchor.
    block = (first // NOISE_BLOCK + 1) * NOISE_BLOCK
    cuts = [first, first + 1, first + 5000, block, block + 1, first + 20_000]
    cuts += [block + 3 * NOISE_BLOCK - 7, gen.index(ANCHOR), last]
    parts = [gen.render(a, b) for a, b in pairwise(sorted(cuts))]
    assert np.array_equal(np.concatenate([p[0] for p in parts]), whole_t)
    assert np.array_equal(np.concatenate([p[1] for p in parts], axis=1), whole_v)
    assert np.array_equal(np.concatenate([p[2] for p in parts], axis=1), whole_q)


@pytest.mark.parametrize(("asset_id", "kind"), demo_assets())
def test_shapes_units_and_time_grid(asset_id: str, kind: str) -> None:
    s = generate_asset(asset_id, kind, anchor=ANCHOR, days=3, step_seconds=60, seed=7)
    n = 3 * 24 * 60
    assert s.asset_id == asset_id
    assert s.kind == kind
    assert s.display_name
    assert len(s.tags) == 5
    assert len({t.name for t in s.tags}) == 5
    assert all(t.unit and t.description for t in s.tags)
    assert s.times.dtype == np.int64
    assert s.times.shape == (n,)
    assert s.values.dtype == np.float64
    assert s.values.shape == (5, n)
    assert s.quality.dtype == np.int16
    assert s.quality.shape == (5, n)
    assert np.all(np.diff(s.times) == 60_000_000)
    # [end - days, end): the last sample is one step before end.
    assert s.times[-1] == to_unix_us(ANCHOR) - 60_000_000
    assert s.times[0] == to_unix_us(ANCHOR - timedelta(days=3))
    assert np.isfinite(s.values).all()
    assert set(np.unique(s.quality)) <= {QUALITY_GOOD, QUALITY_UNCERTAIN, QUALITY_BAD}


def test_natural_tags() -> None:
    pump = generate_asset("pump-001", "pump", anchor=ANCHOR, days=1, step_seconds=600, seed=7)
    turbine = generate_asset(
        "turbine-001", "turbine", anchor=ANCHOR, days=1, step_seconds=600, seed=7
    )
    assert [(t.name, t.unit) for t in pump.tags] == [
        ("vibration_rms", "mm/s"),
        ("bearing_temp", "degC"),
        ("discharge_pressure", "bar"),
        ("flow", "m3/h"),
        ("motor_current", "A"),
    ]
    assert [(t.name, t.unit) for t in turbine.tags] == [
        ("rotor_speed", "rpm"),
        ("exhaust_temp", "degC"),
        ("vibration_rms", "mm/s"),
        ("power_output", "MW"),
        ("lube_oil_pressure", "bar"),
    ]


@pytest.mark.parametrize("kind", ["pump", "turbine"])
@pytest.mark.parametrize("n_tags", [1, 3, 10, 20])
def test_n_tags(kind: str, n_tags: int) -> None:
    s = generate_asset(
        "x-001", kind, anchor=ANCHOR, days=0.5, step_seconds=1, seed=7, n_tags=n_tags
    )
    assert len(s.tags) == n_tags
    assert len({t.name for t in s.tags}) == n_tags
    assert s.values.shape == (n_tags, 43_200)
    assert np.isfinite(s.values).all()
    natural = generate_asset("x-001", kind, anchor=ANCHOR, days=0.5, step_seconds=1, seed=7)
    shared = min(n_tags, 5)
    assert s.tags[:shared] == natural.tags[:shared]
    # Extra tags do not change the natural ones.
    assert np.array_equal(s.values[:shared], natural.values[:shared])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="naive"):
        generate_asset(
            "pump-001", "pump", anchor=datetime(2026, 3, 2), days=1, step_seconds=60, seed=1
        )
    with pytest.raises(ValueError, match="kind"):
        generate_asset("pump-001", "boiler", anchor=ANCHOR, days=1, step_seconds=60, seed=1)
    with pytest.raises(ValueError, match="no sample"):
        generate_asset("pump-001", "pump", anchor=ANCHOR, days=0, step_seconds=60, seed=1)
    with pytest.raises(ValueError, match="positive"):
        generate_asset("pump-001", "pump", anchor=ANCHOR, days=1, step_seconds=0, seed=1)


def test_failures_per_pump_and_spread(plant_90d: dict[str, AssetSeries]) -> None:
    end_us = to_unix_us(ANCHOR)
    start_us = end_us - 90 * DAY_US
    for s in _pumps(plant_90d):
        assert 3 <= len(s.failures) <= 5, (s.asset_id, s.failures)
        bounds = _failure_bounds(s)
        for (a, b), (c, _) in pairwise(bounds):
            assert a < b < c, "failures overlap or are out of order"
        # Overlapping the window; a repair under way at its end has no end yet.
        assert all(a < end_us and b > start_us for a, b in bounds)
        assert all(f.failure_mode in FAILURE_MODES for f in s.failures)
        assert all(f.description for f in s.failures)
        # The notebook exports the last 30 days: every pump has a trip in them, with
        # at least a day of build-up before it.
        assert any(a > end_us - 29 * DAY_US for a, _ in bounds), s.asset_id
        # No gap between trips (or from the ends) is much longer than a month.
        trips = [start_us] + [a for a, _ in bounds] + [end_us]
        assert max(np.diff(trips)) < 40 * DAY_US, s.asset_id
    modes = {f.failure_mode for s in _pumps(plant_90d) for f in s.failures}
    assert modes == set(FAILURE_MODES)


def test_turbines_have_no_failures(plant_90d: dict[str, AssetSeries]) -> None:
    for s in plant_90d.values():
        if s.kind == "turbine":
            assert s.failures == []
            assert not (s.quality == QUALITY_UNCERTAIN).any()


def test_repairs_stop_the_pump(plant_90d: dict[str, AssetSeries]) -> None:
    for s in _pumps(plant_90d):
        flow = s.values[3]
        for a, b in _failure_bounds(s):
            down = (s.times >= a) & (s.times < b)
            assert down.any()
            assert (s.quality[:, down] != QUALITY_GOOD).all()
            assert np.median(flow[down]) < 1.0
        up = s.quality[3] == QUALITY_GOOD
        assert np.median(flow[up]) > 50.0


def test_glitches_are_rare_and_flagged(plant_90d: dict[str, AssetSeries]) -> None:
    bad = np.mean([(s.quality == QUALITY_BAD).mean() for s in plant_90d.values()])
    assert 0 < bad < 0.005


def _normal_and_pre_failure(s: AssetSeries, hours: int) -> tuple[np.ndarray, np.ndarray]:
    """Masks: far from any failure (healthy), and the last ``hours`` before each trip."""
    normal = s.quality[0] == QUALITY_GOOD
    pre = np.zeros_like(normal)
    for a, b in _failure_bounds(s):
        normal &= ~((s.times >= a - 7 * DAY_US) & (s.times < b))
        pre |= (s.times >= a - hours * HOUR_US) & (s.times < a)
    return normal, pre & (s.quality[0] == QUALITY_GOOD)


def test_vibration_rises_before_failures(plant_90d: dict[str, AssetSeries]) -> None:
    rises = []
    for s in _pumps(plant_90d):
        normal, pre = _normal_and_pre_failure(s, 24)
        vibration = s.values[0]
        healthy = float(np.median(vibration[normal]))
        before = float(vibration[pre].mean())
        # Healthy pumps run at 1.6-2.4 mm/s; a day before a trip they are clearly above that
        # (the margin is smaller on pumps whose failures are mostly seal leaks).
        assert before > healthy + 0.6, (s.asset_id, healthy, before)
        rises.append(before - healthy)
    assert np.mean(rises) > 1.2, rises


def test_bearing_temperature_rises_before_bearing_failures(
    plant_90d: dict[str, AssetSeries],
) -> None:
    rises = []
    for s in _pumps(plant_90d):
        temp = s.values[1]
        good = s.quality[1] == QUALITY_GOOD
        for f in s.failures:
            if f.failure_mode != "bearing_failure":
                continue
            a = to_unix_us(f.start)
            if a - 9 * DAY_US < s.times[0]:
                continue  # its build-up began before the series
            week_before = good & (s.times >= a - 9 * DAY_US) & (s.times < a - 7 * DAY_US)
            last_day = good & (s.times >= a - 24 * HOUR_US) & (s.times < a)
            rises.append(float(temp[last_day].mean() - temp[week_before].mean()))
    assert len(rises) >= 5
    assert np.median(rises) > 5.0, rises


def test_one_vibration_threshold_predicts_failures_on_every_pump(
    plant_90d: dict[str, AssetSeries],
) -> None:
    # The precursor has the same meaning on every pump, which is what lets a model trained on
    # some pumps work on a held-out one: here even a raw hourly mean, with no fitting, ranks
    # "fails within 24 h" hours above the rest on each pump.
    for s in _pumps(plant_90d):
        hour = (s.times - s.times[0]) // HOUR_US
        good = (s.quality[0] == QUALITY_GOOD).astype(np.float64)
        n = int(hour.max()) + 1
        count = np.bincount(hour, weights=good, minlength=n)
        mean = np.bincount(hour, weights=s.values[0] * good, minlength=n) / np.maximum(count, 1)
        hour_end = s.times[0] + (np.arange(n) + 1) * HOUR_US
        label = np.zeros(n, dtype=bool)
        skip = count == 0
        for a, b in _failure_bounds(s):
            label |= (hour_end <= a) & (hour_end > a - 24 * HOUR_US)
            skip |= (hour_end > a) & (hour_end <= b + HOUR_US)
        x, y = mean[~skip], label[~skip]
        ranks = np.argsort(np.argsort(x)) + 1
        auc = (ranks[y].sum() - y.sum() * (y.sum() + 1) / 2) / (y.sum() * (~y).sum())
        assert auc > 0.85, (s.asset_id, auc)


def test_daily_demand_cycle_in_flow(plant_90d: dict[str, AssetSeries]) -> None:
    for s in _pumps(plant_90d):
        flow = s.values[3]
        good = s.quality[3] == QUALITY_GOOD
        local_hour = ((s.times + HOUR_US) % DAY_US) // HOUR_US
        means = np.array([flow[good & (local_hour == h)].mean() for h in range(24)])
        # Demand swings by roughly +-20% over the day: high by day, low at night.
        assert (means.max() - means.min()) / means.mean() > 0.2, means
        assert 9 <= int(np.argmax(means)) <= 16, means
        assert int(np.argmin(means)) <= 5 or int(np.argmin(means)) >= 23, means
        phase = 2 * np.pi * local_hour / 24
        r = np.corrcoef(flow[good], np.cos(phase[good] - 2 * np.pi * 12 / 24))[0, 1]
        assert r > 0.5, r


def test_turbine_power_follows_the_day(plant_90d: dict[str, AssetSeries]) -> None:
    s = plant_90d["turbine-001"]
    power = s.values[3]
    local_hour = ((s.times + HOUR_US) % DAY_US) // HOUR_US
    means = np.array([power[local_hour == h].mean() for h in range(24)])
    assert means.max() > 1.3 * means.min()
    assert np.all((s.values[0] > 2950) & (s.values[0] < 3050) | (s.quality[0] == QUALITY_BAD))
