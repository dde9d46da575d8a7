"""The restart policy of `mlplane up` (services/stack/supervisor.py), on a fake clock."""

from __future__ import annotations

from services.stack.supervisor import Backoff, Child, Supervisor


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeChild:
    def __init__(self, fail_starts: int = 0) -> None:
        self.alive = True
        self.fail_starts = fail_starts
        self.starts = 0

    def restart(self) -> None:
        self.starts += 1
        if self.fail_starts:
            self.fail_starts -= 1
            raise RuntimeError("port in use")
        self.alive = True


def supervise(child: FakeChild, clock: Clock) -> Supervisor:
    backoff = Backoff(first=0.5, cap=4.0, healthy_after=60.0)
    return Supervisor([Child("query service", lambda: child.alive, child.restart)], backoff, clock)


def test_backoff_doubles_and_stops_at_its_cap() -> None:
    backoff = Backoff(first=0.5, cap=4.0)
    assert [backoff.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_a_crashed_child_is_restarted_after_the_first_delay_and_says_so() -> None:
    clock, child = Clock(), FakeChild()
    supervisor = supervise(child, clock)
    assert supervisor.tick() == []
    child.alive = False
    (down,) = supervisor.tick()
    assert (down.kind, down.message) == ("down", "query service exited; restarting in 0.5s")
    clock.now += 0.4
    assert supervisor.tick() == []
    assert child.starts == 0
    clock.now += 0.1
    (back,) = supervisor.tick()
    assert back.kind == "restarted"
    assert back.downtime == 0.5
    assert back.message == "query service is back after 0.5s (restart 1)"
    assert supervisor.tick() == []


def test_failed_starts_wait_longer_each_time() -> None:
    clock, child = Clock(), FakeChild(fail_starts=2)
    supervisor = supervise(child, clock)
    child.alive = False
    supervisor.tick()  # down: 0.5 s
    clock.now += 0.5
    (failed,) = supervisor.tick()
    assert failed.kind == "failed"
    assert "port in use" in failed.message
    assert failed.message.endswith("next attempt in 1.0s")
    clock.now += 1.0
    (failed,) = supervisor.tick()
    assert failed.message.endswith("next attempt in 2.0s")
    clock.now += 1.9
    assert supervisor.tick() == []
    clock.now += 0.1
    (back,) = supervisor.tick()
    assert back.kind == "restarted"
    assert back.downtime == 3.5
    assert child.starts == 3


def test_a_child_that_keeps_crashing_backs_off_until_it_stays_up() -> None:
    clock, child = Clock(), FakeChild()
    supervisor = supervise(child, clock)
    delays = []
    for _ in range(4):
        child.alive = False
        (down,) = supervisor.tick()
        delays.append(down.message.rsplit(" ", 1)[1])
        clock.now += 10
        supervisor.tick()
    assert delays == ["0.5s", "1.0s", "2.0s", "4.0s"]
    # A minute up: the next crash starts from the first delay again.
    clock.now += 60
    assert supervisor.tick() == []
    child.alive = False
    (down,) = supervisor.tick()
    assert down.message.endswith("restarting in 0.5s")
