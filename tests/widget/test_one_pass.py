"""One pass over the slice: the page's statistics and the population's features come from the
same forwards, each item read once (issue 10). The data set counts its real item reads; the
expectations are computed by hand (the model's argmax, cross entropy, a forward hook)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from samplelens_widget import SampleLens

N = 5000
MAX_READS = 5100  # one read per item, plus the fingerprint, the first sample and the rows


class CountingData(torch.utils.data.Dataset):
    """``n`` small 3x16x16 images with labels; ``reads`` counts ``__getitem__`` calls."""

    def __init__(self, n: int = N, classes: int = 4, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.rand(n, 3, 16, 16, generator=g)
        self.y = torch.randint(0, classes, (n,), generator=g)
        for i in range(n):  # a little signal, so that the accuracy is no constant
            self.x[i, int(self.y[i]) % 3, :8, :8] += 0.5
        self.reads = 0
        self._lock = threading.Lock()

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        with self._lock:
            self.reads += 1
        return self.x[i], int(self.y[i])


class Tiny(nn.Module):
    def __init__(self, classes: int = 4):
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes))

    def forward(self, x):
        return self.head(self.features(x))


def make(model, ds, **kw):
    kw.setdefault("projection", "pca")
    lens = SampleLens(model, ds, **kw)
    lens.sent = []
    lock = threading.Lock()

    def send(content, buffers=None):
        with lock:
            lens.sent.append((content, list(buffers or [])))

    lens.send = send
    return lens


def of_type(lens, kind):
    return [(c, b) for c, b in lens.sent if c.get("type") == kind]


def start_page(lens, order=("rows", "analyze", "stats", "population")):
    """What the page asks for when it shows: the first rows, the viewed sample's analysis, the
    slice's statistics and the population."""
    where = {"model": lens.model_name, "slice": lens.slice}
    requests = {
        "rows": {"type": "rows", **where, "ids": list(range(12))},
        "analyze": {"type": "analyze", "rid": 1, "keys": [lens._key().as_dict()]},
        "stats": {"type": "stats", **where},
        "population": {"type": "population", **where},
    }
    for kind in order:
        lens._on_msg(lens, requests[kind], [])
    assert lens.wait(300)


def by_hand(model, ds):
    """Logits and the embed layer's pooled features of every item, from one hand forward."""
    kept = []
    h = model.features.register_forward_hook(lambda m, a, o: kept.append(o.mean(dim=(2, 3))))
    with torch.no_grad():
        logits = model.eval()(ds.x)
    h.remove()
    return logits, kept[0].numpy()


def check_answers(lens, ds):
    model = lens._session.models[lens.model_name]
    logits, feats = by_hand(model, ds)
    preds, labels = logits.argmax(1).numpy(), ds.y.numpy()
    [(stats, _)] = of_type(lens, "stats")
    assert stats["n"] == N
    assert stats["accuracy"] == pytest.approx(float((preds == labels).mean()))
    conf = np.zeros((4, 4), np.int64)
    np.add.at(conf, (labels, preds), 1)
    assert stats["confusion"] == conf.tolist()
    s = lens._session.stats.of_slice(lens.model_name, lens.slice)
    np.testing.assert_array_equal(s["predictions"], preds)
    np.testing.assert_array_equal(s["labels"], labels)
    loss = F.cross_entropy(logits, ds.y, reduction="none").numpy()
    np.testing.assert_allclose(s["losses"], loss, rtol=1e-4, atol=1e-6)
    [(pop, _)] = of_type(lens, "population")
    assert pop["n"] == N and pop["layer"] == "features"
    np.testing.assert_allclose(lens.population()["features"], feats, rtol=1e-4, atol=1e-5)
    [(rows, _)] = of_type(lens, "rows")
    assert [r["id"] for r in rows["rows"]] == list(range(12))
    assert [r["prediction"] for r in rows["rows"]] == preds[:12].tolist()
    assert [r["label"] for r in rows["rows"]] == labels[:12].tolist()
    [(analysis, _)] = of_type(lens, "analysis")
    assert analysis["key"]["id"] == 0
    assert not of_type(lens, "error") and not of_type(lens, "population_error")


@pytest.mark.parametrize(
    "order",
    [("rows", "analyze", "stats", "population"), ("population", "stats", "rows", "analyze")],
)
def test_the_page_start_reads_each_item_once(order, tmp_path):
    ds = CountingData()
    lens = make(Tiny(), ds, background=False, cache_dir=tmp_path)
    start_page(lens, order)
    assert ds.reads <= MAX_READS, ds.reads
    check_answers(lens, ds)
    # answering again reads nothing: statistics, features and rows are known
    before = ds.reads
    start_page(lens, ("stats", "population", "rows"))
    assert ds.reads == before


def test_with_background_threads_the_page_start_reads_each_item_once():
    ds = CountingData()
    lens = make(Tiny(), ds, background=True, cache_dir=None)
    start_page(lens)
    assert ds.reads <= MAX_READS, ds.reads
    check_answers(lens, ds)
    lens.close()


def test_a_second_widget_on_the_same_disk_cache_reads_at_most_one_pass(tmp_path):
    ds = CountingData()
    first = make(Tiny(), ds, background=False, cache_dir=tmp_path)
    start_page(first)
    features = first.population()["features"]
    ds.reads = 0
    again = make(Tiny(), ds, background=False, cache_dir=tmp_path)
    start_page(again)
    assert ds.reads <= MAX_READS, ds.reads
    check_answers(again, ds)
    st = again._population.state(again.model_name, again.slice)
    assert st.source == "disk"
    np.testing.assert_array_equal(again.population()["features"], features)


def hand_accuracy(lens, ds):
    logits, _ = by_hand(lens._session.models[lens.model_name], ds)
    return float((logits.argmax(1) == ds.y).float().mean())


def test_the_population_follows_the_pass_that_the_stats_thread_runs():
    n = 1000
    ds = CountingData(n)
    lens = make(Tiny(), ds, background=False, cache_dir=None)
    where = {"model": lens.model_name, "slice": lens.slice}
    chunk = lens._population.chunk
    inside, gate, batches = threading.Event(), threading.Event(), []

    def slow(_module, args):  # the pass's second batch waits until the population follows
        if args[0].shape[0] > 1:  # a batch of the pass (analyses are of one sample)
            batches.append(int(args[0].shape[0]))
            if len(batches) == 2:
                inside.set()
                gate.wait(30)

    model = lens._session.models[lens.model_name]
    hook = model.register_forward_pre_hook(slow)
    try:
        stats = threading.Thread(target=lens._on_msg, args=(lens, {"type": "stats", **where}, []))
        stats.start()
        assert inside.wait(30)
        pop = threading.Thread(
            target=lens._on_msg, args=(lens, {"type": "population", **where}, [])
        )
        pop.start()
        for _ in range(300):  # the follower is told where the pass is at once
            if of_type(lens, "population_progress"):
                break
            threading.Event().wait(0.1)
        gate.set()
        stats.join(60)
        pop.join(60)
    finally:
        gate.set()
        hook.remove()
    done = [c["done"] for c, _ in of_type(lens, "population_progress")]
    # the pass's batches are timed (model_lock.BatchClock), at most `chunk` items each
    assert done[0] == batches[0] and done[-1] == n, done
    assert done == sorted(set(done)), done
    assert max(batches) <= chunk and sum(batches) == n  # one pass: each item once
    assert ds.reads <= n + 50, ds.reads
    [(reply, _)] = of_type(lens, "stats")
    assert reply["accuracy"] == pytest.approx(hand_accuracy(lens, ds))
    [(scatter, _)] = of_type(lens, "population")
    assert scatter["n"] == n and scatter["source"] == "computed"


@pytest.mark.parametrize(
    "layer, message",
    [
        ("features.9", "embed_layer: 'features.9' does not exist"),  # known before the pass
        ("features#2", "embed_layer: 'features#2' is never computed"),  # found in its forwards
    ],
)
def test_a_bad_embed_layer_leaves_the_statistics_whole_and_the_items_read_once(layer, message):
    n = 1000
    ds = CountingData(n)
    lens = make(Tiny(), ds, background=False, cache_dir=None)
    lens._population.embed_layer = layer
    start_page(lens, ("population", "stats"))
    [(err, _)] = of_type(lens, "population_error")
    assert err["message"].startswith(f"ValueError: {message}")
    [(reply, _)] = of_type(lens, "stats")
    assert reply["n"] == n and reply["accuracy"] == pytest.approx(hand_accuracy(lens, ds))
    assert ds.reads <= n + 50, ds.reads
    with pytest.raises(ValueError, match=message):
        lens.population()


def test_rows_before_the_pass_read_their_own_items_only():
    ds = CountingData()
    lens = make(Tiny(), ds, background=False, cache_dir=None)
    where = {"model": lens.model_name, "slice": lens.slice}
    lens._on_msg(lens, {"type": "rows", **where, "ids": [0, 7, 4999]}, [])
    [(rows, _)] = of_type(lens, "rows")
    logits, _ = by_hand(lens._session.models[lens.model_name], ds)
    assert [r["prediction"] for r in rows["rows"]] == logits.argmax(1)[[0, 7, 4999]].tolist()
    assert ds.reads <= 3 and lens._session.stats.known(lens.model_name, lens.slice) is None
