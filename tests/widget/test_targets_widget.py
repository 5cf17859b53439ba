"""What the widget's maps explain: a class, the loss against the true label, or one class
rather than another; single-logit and multi-label models with sigmoid probabilities."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import traitlets
from fakes import NAMES, Blobs, TinyNet

from samplelens_widget import SampleLens
from samplelens_widget.targets import Contrast, Loss


def make(model=None, data=None, **kw):
    kw.setdefault("background", False)
    kw.setdefault("projection", "pca")
    kw.setdefault("cache_dir", None)
    lens = SampleLens(model or TinyNet(), data or Blobs(20), **kw)
    lens.sent = []
    lens.send = lambda content, buffers=None: lens.sent.append((content, list(buffers or [])))
    return lens


def logits_of(lens, i):
    x, _ = lens._session.slices[lens.slice][i]
    model = lens._session.models[lens.model_name]
    with torch.no_grad():
        return model.eval()(x[None])[0]


def analysis(lens):
    lens._on_msg(lens, {"type": "analyze", "rid": 1, "keys": [lens._key().as_dict()]}, [])
    replies = [c for c, _ in lens.sent if c["type"] in ("analysis", "error")]
    return replies[-1]


def test_label_loss_explains_the_samples_own_loss():
    lens = make(label_names=NAMES)
    lens.viewed = 3
    lens.label = "loss"
    res = lens.result
    _, y = lens._session.slices[lens.slice][3]
    assert isinstance(res.target, Loss) and res.targets.tolist() == [y]
    want = F.cross_entropy(logits_of(lens, 3)[None], torch.tensor([y]))
    np.testing.assert_allclose(res.scores, [float(want)], rtol=1e-5)
    meta = analysis(lens)
    assert meta["type"] == "analysis" and meta["explained"] == "loss (true label)"
    assert meta["key"]["label"] == "loss" and meta["target"] == y
    assert meta["loss"] == pytest.approx(float(want), rel=1e-4)


def test_contrast_explains_the_label_or_the_prediction_rather_than_a_second_class():
    lens = make(label_names=NAMES)
    logits = logits_of(lens, 0)
    lens.contrast = 2
    res = lens.result
    pred = int(logits.argmax())
    assert isinstance(res.target, Contrast)
    np.testing.assert_allclose(res.scores, [float(logits[pred] - logits[2])], rtol=1e-5)
    lens.label = 4
    np.testing.assert_allclose(lens.result.scores, [float(logits[4] - logits[2])], rtol=1e-5)
    assert analysis(lens)["explained"] == "class 4 rather than class 2"
    lens.contrast = None
    np.testing.assert_allclose(lens.result.scores, [float(logits[4])], rtol=1e-5)


def test_bad_labels_and_contrasts_name_the_trait_and_keep_the_old_value():
    lens = make()
    with pytest.raises(traitlets.TraitError, match=r"label: 'lost' is not allowed; expected a "
                                                   r"class index, None .* or 'loss'"):
        lens.label = "lost"
    with pytest.raises(traitlets.TraitError, match=r"contrast: 9 is not a class of the model; "
                                                   r"expected 0\.\.4 or None"):
        lens.contrast = 9
    assert lens.label is None and lens.contrast is None


class Unlabelled(Blobs):
    def __getitem__(self, i):
        return self.x[i], None


def test_the_loss_of_a_sample_without_a_label_is_an_error_and_the_widget_stays_usable():
    lens = make(data=Unlabelled(10))
    lens.label = "loss"
    err = analysis(lens)
    assert err["type"] == "error" and err["key"]["label"] == "loss"
    assert "label: 'loss' needs the sample's true label; sample 0" in err["message"]
    lens.label = None
    assert analysis(lens)["type"] == "analysis"


def test_a_single_logit_model_shows_sigmoid_probabilities_everywhere():
    data = Blobs(24, classes=2)
    lens = make(TinyNet(classes=1), data, label_names=["negative", "positive"])
    assert lens._info["num_classes"] == 2
    meta = analysis(lens)
    logit = float(logits_of(lens, 0)[0])
    p = 1 / (1 + np.exp(-logit))
    assert meta["task"] == "binary" and meta["num_classes"] == 2
    np.testing.assert_allclose(meta["probabilities"], [1 - p, p], rtol=1e-5)
    assert meta["prediction"] == int(logit > 0)
    y = data[0][1]
    assert meta["loss"] == pytest.approx(-np.log(p if y == 1 else 1 - p), rel=1e-4)
    lens.label = 0  # class 0 (negative) is allowed and explains the negated logit
    np.testing.assert_allclose(lens.result.scores, [-logit], rtol=1e-5)
    lens._on_msg(lens, {"type": "rows", "model": lens.model_name, "slice": lens.slice,
                        "ids": [0, 1, 2]}, [])
    [rows] = [c["rows"] for c, _ in lens.sent if c["type"] == "rows"]
    for r in rows:
        z = float(logits_of(lens, r["id"])[0])
        assert r["prediction"] == int(z > 0)
        y = data[r["id"]][1]
        want = F.binary_cross_entropy_with_logits(torch.tensor(z), torch.tensor(float(y)))
        assert r["loss"] == pytest.approx(float(want), rel=1e-4)


def test_a_multilabel_model_has_sigmoid_probabilities_when_told():
    lens = make(task="multilabel")
    meta = analysis(lens)
    logits = logits_of(lens, 0)
    assert meta["task"] == "multilabel"
    np.testing.assert_allclose(meta["probabilities"], torch.sigmoid(logits).numpy(), rtol=1e-5)
    with pytest.raises(ValueError, match=r"task: 'nonsense' is unknown"):
        make(task="nonsense")


class _MultiHot(torch.utils.data.Dataset):
    """Blobs with a multi-hot label: the blob's class and (for some samples) the next one."""

    def __init__(self, n=24):
        self.ds = Blobs(n)

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        x, y = self.ds[i]
        hot = torch.zeros(5)
        hot[y] = 1
        if i % 3 == 0:
            hot[(y + 1) % 5] = 1
        return x, hot


def test_a_multilabel_model_has_label_sets_in_its_rows_stats_colours_and_analysis():
    data = _MultiHot()
    lens = make(data=data, task="multilabel", label_names=NAMES)
    ids = list(range(len(data)))
    # the expectation, from the model's logits and the multi-hot labels by hand
    logits = torch.stack([logits_of(lens, i) for i in ids])
    hots = torch.stack([data[i][1] for i in ids])
    want_pred = [[c for c in range(5) if logits[i, c] > 0] for i in ids]
    want_true = [[c for c in range(5) if hots[i, c] == 1] for i in ids]
    want_loss = F.binary_cross_entropy_with_logits(logits, hots, reduction="none").mean(1)

    lens._on_msg(lens, {"type": "rows", "model": lens.model_name, "slice": lens.slice,
                        "ids": ids}, [])
    [rows] = [c["rows"] for c, _ in lens.sent if c["type"] == "rows"]
    assert [r["label_set"] for r in rows] == want_true
    assert [r["prediction_set"] for r in rows] == want_pred
    np.testing.assert_allclose([r["loss"] for r in rows], want_loss.numpy(), rtol=1e-4)

    lens._on_msg(lens, {"type": "stats", "model": lens.model_name, "slice": lens.slice}, [])
    [stats] = [c for c, _ in lens.sent if c["type"] == "stats"]
    exact = np.mean([p == t for p, t in zip(want_pred, want_true, strict=True)])
    assert stats["accuracy"] == pytest.approx(exact)
    assert stats["accuracy_title"] == "Slice exact-match accuracy"
    assert stats["confusion"] is None

    # the scatter's "correct" column counts whole sets
    from samplelens_widget.protocol.buffers import slice_columns

    s = lens._session.stats.of_slice(lens.model_name, lens.slice)
    cols = {m["key"]: data_ for m, data_ in slice_columns(s, NAMES, {})}
    correct = np.frombuffer(cols["correct"], dtype=np.uint8)
    assert correct.tolist() == [int(p == t) for p, t in zip(want_pred, want_true, strict=True)]

    wrong = next(i for i in ids if want_pred[i] != want_true[i])
    lens.viewed = wrong
    meta = analysis(lens)
    assert meta["true_set"] == want_true[wrong] and meta["predicted_set"] == want_pred[wrong]
    assert meta["true_label"] is None
    assert meta["loss"] == pytest.approx(float(want_loss[wrong]), rel=1e-4)
    # the loss map explains the mean BCE against the multi-hot row
    lens.label = "loss"
    np.testing.assert_allclose(lens.result.scores, [float(want_loss[wrong])], rtol=1e-4)
