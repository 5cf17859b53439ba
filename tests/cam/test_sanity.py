"""CamEngine.sanity_check: the cascading randomisation test on a copy; Spearman by hand."""

from __future__ import annotations

import copy
import threading

import numpy as np
import pytest
import torch
from torch import nn

from samplelens_widget import CamEngine
from samplelens_widget.cam.sanity import default_stages, rank_average, reinitialise, spearman
from tests.cam.archs import TinyResNet, seeded
from tests.cam.test_cam_engine import assert_untouched, mixed_mode_model, snapshot


def test_ranks_and_spearman_by_hand():
    np.testing.assert_allclose(rank_average(np.array([10.0, 30.0, 20.0, 20.0])),
                               [1, 4, 2.5, 2.5])
    assert spearman(np.array([1.0, 2.0, 3.0]), np.array([3.0, 5.0, 9.0])) == pytest.approx(1.0)
    assert spearman(np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0])) == pytest.approx(-1.0)
    # ranks [1, 2, 3, 4] vs [1.5, 1.5, 4, 3]: Pearson of those by hand
    a, b = np.array([1.0, 2, 3, 4]), np.array([0.0, 0, 7, 5])
    ra, rb = np.array([1, 2, 3, 4.0]) - 2.5, np.array([1.5, 1.5, 4, 3]) - 2.5
    want = (ra * rb).sum() / np.sqrt((ra**2).sum() * (rb**2).sum())
    assert spearman(a, b) == pytest.approx(want)
    assert spearman(np.zeros(4), np.zeros(4)) == 1.0  # equal maps
    assert spearman(np.zeros(4), a) == 0.0  # a constant map ranks nothing


def test_spearman_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    g = np.random.default_rng(0)
    for _ in range(20):
        a = g.integers(0, 5, size=50).astype(float)  # many ties
        b = a + g.integers(0, 3, size=50)
        assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)
        c, d = g.normal(size=(2, 200))
        assert spearman(c, d) == pytest.approx(stats.spearmanr(c, d).statistic, abs=1e-12)


def test_the_cascade_on_a_copy():
    model = mixed_mode_model()
    before = snapshot(model)
    x = torch.randn(2, 3, 16, 16)
    rng = torch.get_rng_state()
    calls = []
    out = CamEngine(model).sanity_check(x, progress=lambda done, total: calls.append((done,
                                                                                      total)))
    names = [n for n, _ in out]
    assert names == ["fc", "layer2", "layer1", "bn1", "conv1"]  # called last, first
    assert calls == [(i, 5) for i in range(1, 6)]
    assert all(-1 <= rho <= 1 for _, rho in out)
    assert out[-1][1] < 0.9  # everything random: the map is not the model's any more
    assert_untouched(model, before)
    torch.testing.assert_close(torch.get_rng_state(), rng)  # the global RNG is left alone
    # seeded: the same numbers again
    again = CamEngine(model).sanity_check(x)
    assert again == out


def test_reinitialising_the_last_stage_changes_the_map():
    model = seeded(TinyResNet)
    out = CamEngine(model).sanity_check(torch.randn(1, 3, 16, 16), stages=["fc"], depth=1)
    assert len(out) == 1 and out[0][0] == "fc" and out[0][1] < 1.0


class WithSpare(nn.Module):
    """TinyResNet and a parameterised module that the forward never calls."""

    def __init__(self) -> None:
        super().__init__()
        self.net = seeded(TinyResNet)
        self.spare = nn.Linear(3, 3)

    def forward(self, x):
        return self.net(x)


def test_an_unchanged_model_gives_rho_one():
    model = WithSpare()
    x = torch.randn(2, 3, 16, 16)
    assert CamEngine(model).sanity_check(x, stages=["spare"]) == [("spare", 1.0)]
    # the default stages skip what is never called and descend into the one child
    twin = copy.deepcopy(model)
    names = [n for n, _, _ in default_stages(twin, [x])]
    assert names == ["net.fc", "net.layer2", "net.layer1", "net.bn1", "net.conv1"]


class Locked(nn.Module):
    """A model holding a lock: copy.deepcopy fails on it."""

    def __init__(self) -> None:
        super().__init__()
        self.net = seeded(TinyResNet)
        self.lock = threading.Lock()

    def forward(self, x):
        with self.lock:
            return self.net(x)


def test_a_model_that_cannot_be_copied_needs_a_factory():
    model = Locked()
    x = torch.randn(1, 3, 16, 16)
    with pytest.raises(TypeError, match=r"model: it cannot be deep-copied \(TypeError: .*lock"
                                        r".*model_factory="):
        CamEngine(model).sanity_check(x)
    before = snapshot(model)

    def fresh():
        m = Locked()
        m.load_state_dict(model.state_dict())
        return m

    out = CamEngine(model).sanity_check(x, model_factory=fresh)
    assert [n for n, _ in out] == ["net.fc", "net.layer2", "net.layer1", "net.bn1", "net.conv1"]
    assert out[-1][1] < 1.0
    assert_untouched(model, before)


def test_bad_factories_and_stages():
    model = seeded(TinyResNet)
    engine = CamEngine(model)
    x = torch.randn(1, 3, 16, 16)
    with pytest.raises(ValueError, match="model_factory: returned the model itself"):
        engine.sanity_check(x, model_factory=lambda: model)

    class Shallow(nn.Module):  # shares the weights: re-initialising it would change the model
        def __init__(self) -> None:
            super().__init__()
            self.net = model

        def forward(self, x):
            return self.net(x)

    with pytest.raises(ValueError, match="model_factory: the model it returned shares storage"):
        engine.sanity_check(x, model_factory=Shallow)
    with pytest.raises(ValueError, match="model_factory: the model it returned gives another map"):
        engine.sanity_check(x, model_factory=lambda: seeded(TinyResNet, seed=5))
    with pytest.raises(TypeError, match="model_factory: returned int"):
        engine.sanity_check(x, model_factory=lambda: 3)
    with pytest.raises(ValueError, match=r"stages: 'layer9' is not a module of the model; "
                                         r"allowed: .*'layer1'"):
        engine.sanity_check(x, stages=["fc", "layer9"])
    with pytest.raises(ValueError, match="stages: 'relu' has no parameters"):
        engine.sanity_check(x, stages=["relu"])
    with pytest.raises(TypeError, match="stages: expected a list of module names"):
        engine.sanity_check(x, stages="fc")
    with pytest.raises(ValueError, match="depth: 99 is not a depth"):
        engine.sanity_check(x, depth=99)


def test_reinitialise_touches_every_parameter():
    class Tokenish(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.token = nn.Parameter(torch.ones(4))
            self.fc = nn.Linear(4, 4)
            self.bn = nn.BatchNorm1d(4)

    m = Tokenish()
    with torch.no_grad():
        m.bn.weight.fill_(3.0)
        m.bn.running_mean.fill_(2.0)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    reinitialise(m)
    after = m.state_dict()
    for k in ("token", "fc.weight", "fc.bias", "bn.weight", "bn.running_mean"):
        assert not torch.equal(before[k], after[k]), k
