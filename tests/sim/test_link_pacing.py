"""Token-bucket pacing and jittered capped backoff of the serial link (pure, clock passed in)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.link_pacing import Backoff, TokenBucket, bytes_per_second


@pytest.mark.parametrize(("baud", "rate"), [(9600, 960.0), (115200, 11520.0), (921600, 92160.0)])
def test_8n1_carries_a_tenth_of_the_baud_rate_in_bytes(baud: int, rate: float) -> None:
    assert bytes_per_second(baud) == rate


def test_bad_baud_and_bucket_settings_are_refused_with_the_value() -> None:
    with pytest.raises(ValueError, match="got 0"):
        bytes_per_second(0)
    with pytest.raises(ValueError, match="rate=0"):
        TokenBucket(0, 10, now=0.0)
    with pytest.raises(ValueError, match="base=2"):
        Backoff(base=2.0, cap=1.0)


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.tuples(st.floats(0, 0.5), st.integers(0, 400)), min_size=1, max_size=60))
def test_bucket_never_lets_more_than_rate_times_time_plus_burst_through(
    steps: list[tuple[float, int]],
) -> None:
    rate, burst = 960.0, 200.0
    bucket = TokenBucket(rate, burst, now=0.0)
    now = 0.0
    sent = 0
    for dt, want in steps:
        now += dt
        n = min(want, bucket.available(now))
        if n > 0:
            bucket.consume(n, now)
            sent += n
        assert sent <= rate * now + burst + 1e-6


def test_bucket_delay_until_is_exactly_the_refill_time() -> None:
    bucket = TokenBucket(1000.0, 100.0, now=0.0)
    bucket.consume(100, 0.0)
    assert bucket.available(0.0) == 0
    assert bucket.delay_until(50, 0.0) == pytest.approx(0.05)
    assert bucket.available(0.05) == 50
    assert bucket.delay_until(500, 0.05) == pytest.approx(0.05)  # capped at the burst
    assert bucket.available(10.0) == 100  # never saves up more than the burst


def test_backoff_grows_is_capped_jittered_and_resets() -> None:
    b = Backoff(base=0.1, cap=1.0, rng=random.Random(7))
    delays = [b.next_delay() for _ in range(12)]
    for n, d in enumerate(delays):
        full = min(1.0, 0.1 * 2**n)
        assert full / 2 <= d <= full
    assert max(delays) <= 1.0
    assert len({round(d, 6) for d in delays[6:]}) > 1  # capped delays are still jittered
    b.reset()
    assert b.next_delay() <= 0.1
