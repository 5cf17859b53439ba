"""The widget's first minute (issue 12): with the features on disk the scatter shows before the
slice's statistics are done (its colours follow them, each phase with its own progress), and a
thumbnail never waits for a background batch's forward. The model's batches are gated by a
forward pre-hook, so that "before" is an order of messages, not a time."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from test_one_pass import CountingData, Tiny, by_hand, make, of_type, start_page

from samplelens_widget import SampleLens

N = 600


def gate_second_batch(lens):
    """A forward pre-hook on the lens's model: the pass's second batch waits for ``gate``;
    ``inside`` is set when it does."""
    inside, gate, batches = threading.Event(), threading.Event(), []

    def slow(_module, args):
        if args[0].shape[0] > 1:  # a batch of the pass (analyses and rows are smaller here)
            batches.append(int(args[0].shape[0]))
            if len(batches) == 2:
                inside.set()
                gate.wait(30)

    model = lens._session.models[lens.model_name]
    return model.register_forward_pre_hook(slow), inside, gate


def test_with_features_on_disk_the_scatter_comes_before_the_statistics(tmp_path):
    ds = CountingData(N)
    first = make(Tiny(), ds, background=False, cache_dir=tmp_path)
    start_page(first)
    features = first.population()["features"]
    again = make(Tiny(), ds, background=False, cache_dir=tmp_path)
    where = {"model": again.model_name, "slice": again.slice}
    hook, inside, gate = gate_second_batch(again)
    try:
        stats = threading.Thread(target=again._on_msg, args=(again, {"type": "stats", **where}, []))
        stats.start()  # the page asks for the statistics first: that thread runs the pass
        assert inside.wait(30)
        pop = threading.Thread(
            target=again._on_msg, args=(again, {"type": "population", **where}, [])
        )
        pop.start()
        for _ in range(300):  # the scatter is sent while the pass is held in its second batch
            if of_type(again, "population"):
                break
            threading.Event().wait(0.05)
        early = of_type(again, "population")
        assert not of_type(again, "stats")  # the pass is still held
    finally:
        gate.set()
        hook.remove()
    stats.join(60)
    pop.join(60)
    assert len(early) == 1
    scatter, buffers = early[0]
    assert scatter["source"] == "disk" and scatter["n"] == N
    # its dots are where the cached features put them; no prediction colours yet
    assert np.frombuffer(buffers[0], "<f4").shape == (2 * N,)
    assert [c["key"] for c in scatter["columns"]] == []
    np.testing.assert_array_equal(again.population()["features"], features)
    # then the statistics' phase, with its own progress, and the scatter with its colours
    phases = [(c["phase"], c["done"]) for c, _ in of_type(again, "population_progress")]
    assert phases and {p for p, _ in phases} == {"statistics"}
    assert phases[-1] == ("statistics", N)
    done = [d for _, d in phases]
    assert done == sorted(done)
    second = of_type(again, "population")
    assert len(second) == 2
    full, bufs = second[1]
    assert [c["key"] for c in full["columns"]] == ["label", "prediction", "correct", "loss"]
    logits, _ = by_hand(again._session.models[again.model_name], ds)
    assert full["columns"][1]["dtype"] == "uint8"  # 4 classes: one byte a sample
    np.testing.assert_array_equal(np.frombuffer(bufs[2], np.uint8), logits.argmax(1).numpy())
    np.testing.assert_array_equal(np.frombuffer(bufs[1], np.uint8), ds.y.numpy())
    again.close()
    first.close()


def test_a_cold_pass_names_its_phase_features_and_sends_the_scatter_once():
    ds = CountingData(N)
    lens = make(Tiny(), ds, background=False, cache_dir=None)
    start_page(lens, ("population", "stats"))
    phases = {c["phase"] for c, _ in of_type(lens, "population_progress")}
    assert phases == {"features"}
    [(scatter, _)] = of_type(lens, "population")
    assert scatter["source"] == "computed"
    assert [c["key"] for c in scatter["columns"]] == ["label", "prediction", "correct", "loss"]


@pytest.mark.parametrize("what", ["thumbnail", "image"])
def test_pictures_do_not_wait_for_the_model_lock(what):
    ds = CountingData(50)
    lens = SampleLens(Tiny(), ds, projection="pca", cache_dir=None, background=False)
    s = lens._session
    held, release = threading.Event(), threading.Event()

    def hold():  # a background batch's forward, as long as we like
        with s.lock:
            held.set()
            release.wait(30)

    t = threading.Thread(target=hold)
    t.start()
    assert held.wait(10)
    got = []
    reader = threading.Thread(
        target=lambda: got.append(
            s.thumbnail(lens.slice, 7) if what == "thumbnail" else s.image(lens.slice, 7)
        )
    )
    reader.start()
    reader.join(20)  # returns while the model lock is still held
    finished = not reader.is_alive()
    release.set()
    t.join(10)
    reader.join(10)
    assert finished, f"{what} waited for the model lock"
    assert len(got) == 1
    lens.close()
