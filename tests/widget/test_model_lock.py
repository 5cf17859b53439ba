"""The model lock lets a waiting analysis go before the next batch of a background pass, and the
pass's batches are sized by the time they take (counted, not timed against a budget)."""

from __future__ import annotations

import threading
import time

from samplelens_widget.model_lock import BatchClock, ModelLock


def _batches_before_the_waiter_gets_in(lock, enter_background) -> int:
    """A background loop takes the lock per batch (a 20 ms batch); another thread asks for it
    plainly. How many batches start after it began to wait?"""
    started, stop = threading.Event(), threading.Event()
    batches, at_wait, at_acquire = [0], [None], [None]

    def loop():
        while not stop.is_set():
            with enter_background():
                batches[0] += 1
                started.set()
                time.sleep(0.02)

    t = threading.Thread(target=loop)
    t.start()
    started.wait(5)
    time.sleep(0.05)
    at_wait[0] = batches[0]
    with lock:
        at_acquire[0] = batches[0]
    stop.set()
    t.join(5)
    return at_acquire[0] - at_wait[0]


def test_a_waiting_analysis_goes_before_the_next_background_batch():
    lock = ModelLock()
    assert _batches_before_the_waiter_gets_in(lock, lock.background) <= 1


def test_the_lock_is_reentrant_and_counts_its_waiters():
    lock = ModelLock()
    with lock, lock:
        assert lock.waiting == 0
        got = []
        t = threading.Thread(target=lambda: got.append(lock.acquire(timeout=0.2)))
        t.start()
        for _ in range(100):
            if lock.waiting:
                break
            time.sleep(0.005)
        assert lock.waiting == 1
        t.join()
    assert got == [False] and lock.waiting == 0


def test_batch_sizes_follow_the_time_they_take():
    clock = BatchClock(256, target=0.15, first=16)
    assert clock.size == 16
    clock.took(0.015, 16)  # 1 ms an item: 150 wanted, at most double: 32
    assert clock.size == 32
    clock.took(0.032, 32)
    assert clock.size == 64
    clock.took(0.6, 64)  # ~9 ms an item: 16
    assert clock.size == 16
    clock.took(10.0, 16)  # very slow: the smallest
    assert clock.size == 4
    assert BatchClock(2).size == 2  # never more than the largest


def test_give_way_lets_a_waiter_in_between_two_steps_of_one_background_hold():
    """A long background computation (a sanity check's stages) holds the lock once and calls
    ``give_way()`` between its steps: a thread waiting meanwhile runs before the next step; with
    nobody waiting, ``give_way()`` keeps the lock."""
    lock = ModelLock()
    order: list[str] = []
    holding = threading.Event()

    def waiter():
        holding.wait(5)
        with lock:
            order.append("analysis")

    t = threading.Thread(target=waiter)
    t.start()
    with lock.background():
        order.append("step 1")
        holding.set()
        deadline = time.monotonic() + 5
        while lock.waiting == 0 and time.monotonic() < deadline:  # the waiter is in acquire
            time.sleep(0.005)
        lock.give_way()
        order.append("step 2")
        lock.give_way()  # nobody waits: nothing happens
        assert lock._lock._is_owned()  # still held by this thread
        order.append("step 3")
    t.join(5)
    assert order == ["step 1", "analysis", "step 2", "step 3"]
