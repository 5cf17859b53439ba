"""Items as users bring them (issue 10): Hugging Face datasets (``pixel_values``/``labels``,
``image``/``label``), PIL images and ``uint8`` arrays as torchvision's ``ToTensor`` gives them,
one-hot and probability labels read as their argmax, class names through ``label_names``.

The expectations are computed by hand: torchvision's ``to_tensor``, a real Hugging Face image
processor, the model's own logits and ``torch.nn.functional.cross_entropy``."""

from __future__ import annotations

import warnings

import datasets
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fakes import NAMES, Blobs, TinyNet
from PIL import Image
from torchvision.transforms.functional import to_tensor

from samplelens_widget import SampleLens
from samplelens_widget.cam import CamResult
from samplelens_widget.population.items import split_item

SIZE = 24


def make(data, model=None, **kw):
    kw.setdefault("background", False)
    kw.setdefault("projection", "pca")
    kw.setdefault("cache_dir", None)
    lens = SampleLens(model or TinyNet(), data, **kw)
    lens.sent = []
    lens.send = lambda content, buffers=None: lens.sent.append((content, list(buffers or [])))
    return lens


def rows(lens, ids):
    lens.sent.clear()
    lens._on_msg(lens, {"type": "rows", "model": lens.model_name, "slice": lens.slice,
                        "ids": list(ids)}, [])
    [table] = [c["rows"] for c, _ in lens.sent if c["type"] == "rows"]
    return table


def analysis(lens):
    lens.sent.clear()
    lens._on_msg(lens, {"type": "analyze", "rid": 1, "keys": [lens._key().as_dict()]}, [])
    [reply] = [c for c, _ in lens.sent if c["type"] in ("analysis", "error")]
    return reply


def slice_accuracy(lens):
    lens.sent.clear()
    lens._on_msg(lens, {"type": "stats", "model": lens.model_name, "slice": lens.slice}, [])
    [stats] = [c for c, _ in lens.sent if c["type"] == "stats"]
    return stats["accuracy"]


def logits(model, x):
    with torch.no_grad():
        return model.eval()(x)


def assert_opens_with_a_map(lens):
    res = lens.result
    assert isinstance(res, CamResult)
    assert res.heatmap().shape[-2:] == (SIZE, SIZE)


def pictures(n, mode="RGB", seed=0):
    rng = np.random.default_rng(seed)
    shape = (SIZE, SIZE) if mode == "L" else (SIZE, SIZE, len(mode))
    imgs = [Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)) for _ in range(n)]
    assert all(img.mode == mode for img in imgs)
    return imgs


# ----------------------------------------------------------------------------- split_item
def test_dicts_with_hugging_face_keys_split_like_ours_and_an_unknown_dict_names_the_pairs():
    x = torch.rand(3, 4, 4)
    for item in ({"inputs": x, "label": 2}, {"input": x, "label": 2},
                 {"pixel_values": x, "labels": 2}, {"pixel_values": x, "label": 2},
                 {"image": x, "label": 2}, {"img": x, "label": 2}):
        inputs, y = split_item(item)
        assert len(inputs) == 1 and torch.equal(inputs[0], x) and y == 2, item.keys()
    # the processed column wins over the raw one a Hugging Face map keeps beside it
    inputs, _ = split_item({"image": torch.zeros(3, 4, 4), "pixel_values": x, "label": 0})
    assert torch.equal(inputs[0], x)
    assert split_item({"pixel_values": x})[1] is None
    with pytest.raises(TypeError, match=r"keys \['pixels', 'target'\]; expected an input key and "
                                        r"a label key, one of the pairs \('inputs', 'label' or "
                                        r"'labels'\), .*\('pixel_values', 'label' or 'labels'\)"):
        split_item({"pixels": x, "target": 1})


def test_an_input_that_is_no_input_names_its_field_its_type_and_what_is_allowed():
    allowed = r"expected a tensor, a numpy array of numbers, a PIL image"
    with pytest.raises(TypeError, match=rf"dataset item: 'image' is a str \('cat.png'\); "
                                        rf"{allowed}"):
        split_item({"image": "cat.png", "label": 0})
    with pytest.raises(TypeError, match=rf"'image' is a dict .*'path'.*; {allowed}"):
        split_item({"image": {"bytes": None, "path": "cat.png"}, "label": 0})
    with pytest.raises(TypeError, match=rf"dataset item: input\[1\] is a NoneType \(None\); "
                                        rf"{allowed}"):
        split_item(((torch.zeros(3, 4, 4), None), 0))
    with pytest.raises(TypeError, match=r"dataset item: input is a ndarray of dtype object"):
        split_item((np.array([object()]), 0))


def test_pil_images_and_uint8_arrays_become_what_to_tensor_gives():
    rgb, gray = pictures(1)[0], pictures(1, "L")[0]
    rgba = pictures(1, "RGBA")[0]
    for img, want in ((rgb, to_tensor(rgb)), (gray, to_tensor(gray)),
                      (rgba, to_tensor(rgba)[:3]),  # the alpha channel is dropped
                      (rgb.convert("P"), to_tensor(rgb.convert("P").convert("RGB")))):
        (x,), _ = split_item((img, 1))
        assert x.dtype == torch.float32 and x.shape == want.shape, img.mode
        torch.testing.assert_close(x, want, rtol=0, atol=0)
    hwc = np.array(rgb)  # writable: to_tensor warns of a read-only array
    for arr, want in ((hwc, to_tensor(hwc)), (hwc[:, :, :1], to_tensor(hwc[:, :, :1])),
                      (hwc[:, :, 0], to_tensor(hwc[:, :, 0])),
                      (np.array(rgba), to_tensor(np.array(rgba))[:3])):
        (x,), _ = split_item((arr, 1))
        torch.testing.assert_close(x, want, rtol=0, atol=0)
    # a uint8 tensor is channels first, as torchvision.io decodes pictures
    chw = torch.from_numpy(hwc).permute(2, 0, 1).contiguous()
    (x,), _ = split_item({"image": chw, "label": 1})
    torch.testing.assert_close(x, to_tensor(rgb), rtol=0, atol=0)
    # floats are taken as they are (channels first): nothing is scaled or transposed
    chw_float = np.random.default_rng(1).normal(size=(3, 5, 6))
    (x,), _ = split_item((chw_float, 0))
    np.testing.assert_array_equal(x.numpy(), chw_float)


# ------------------------------------------------------------------------ whole widgets
class PilData(torch.utils.data.Dataset):
    """(PIL image, int) items: no ToTensor in the data set."""

    def __init__(self, n=8, mode="RGB"):
        self.images = pictures(n, mode)
        self.labels = [i % 5 for i in range(n)]

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], self.labels[i]


def test_pil_items_and_hwc_uint8_arrays_open_and_predict_what_the_model_says_of_to_tensor():
    data = PilData()
    as_arrays = [(np.asarray(img), y) for img, y in zip(data.images, data.labels, strict=True)]
    model = TinyNet()
    want = logits(model, torch.stack([to_tensor(img) for img in data.images]))
    for ds in (data, as_arrays):
        lens = make(ds, model)
        assert_opens_with_a_map(lens)
        table = rows(lens, range(len(data)))
        assert [r["prediction"] for r in table] == want.argmax(1).tolist()
        want_loss = F.cross_entropy(want, torch.tensor(data.labels), reduction="none")
        np.testing.assert_allclose([r["loss"] for r in table], want_loss, rtol=1e-4)


def hf_images(n=8, seed=0):
    return datasets.Dataset.from_dict(
        {"image": pictures(n, seed=seed), "label": [(3 * i) % 5 for i in range(n)]},
        features=datasets.Features({"image": datasets.Image(),
                                    "label": datasets.ClassLabel(names=NAMES)}),
    )


def test_a_hugging_face_dataset_in_the_torch_format_opens_with_image_label_items():
    ds = hf_images().with_format("torch")
    raw = hf_images()  # the same pictures as PIL images, for the expectation
    model = TinyNet()
    want = logits(model, torch.stack([to_tensor(raw[i]["image"]) for i in range(len(raw))]))
    lens = make(ds, model, label_names=NAMES)
    assert_opens_with_a_map(lens)
    table = rows(lens, range(len(ds)))
    assert [r["label"] for r in table] == raw["label"]
    assert [r["prediction"] for r in table] == want.argmax(1).tolist()
    want_loss = F.cross_entropy(want, torch.tensor(raw["label"]), reduction="none")
    np.testing.assert_allclose([r["loss"] for r in table], want_loss, rtol=1e-4)


def test_a_hugging_face_dataset_with_an_image_processor_transform_gives_pixel_values_labels():
    from transformers import ViTImageProcessor

    processor = ViTImageProcessor(size={"height": SIZE, "width": SIZE})
    ds = hf_images(seed=2)
    raw = hf_images(seed=2)
    ds.set_transform(lambda b: {
        "pixel_values": processor(b["image"], return_tensors="pt")["pixel_values"],
        "labels": b["label"],
    })
    assert set(ds[0]) == {"pixel_values", "labels"}
    model = TinyNet()
    x = processor([raw[i]["image"] for i in range(len(raw))], return_tensors="pt")["pixel_values"]
    want = logits(model, x)
    lens = make(ds, model)
    assert_opens_with_a_map(lens)
    table = rows(lens, range(len(ds)))
    assert [r["label"] for r in table] == raw["label"]
    assert [r["prediction"] for r in table] == want.argmax(1).tolist()
    want_loss = F.cross_entropy(want, torch.tensor(raw["label"]), reduction="none")
    np.testing.assert_allclose([r["loss"] for r in table], want_loss, rtol=1e-4)


def test_a_hugging_face_array_column_without_a_format_is_one_input_not_a_list_of_inputs():
    x = np.random.default_rng(3).random((4, 3, SIZE, SIZE), dtype=np.float32)
    ds = datasets.Dataset.from_dict({"pixel_values": x.tolist(), "labels": [0, 1, 2, 3]})
    assert isinstance(ds[0]["pixel_values"], list)  # nested lists of floats
    (inputs, y) = split_item(ds[1])
    assert len(inputs) == 1 and y == 1
    np.testing.assert_allclose(inputs[0].numpy(), x[1], rtol=1e-6)
    assert_opens_with_a_map(make(ds))


# ----------------------------------------------------------------------------- labels
class SoftLabels(torch.utils.data.Dataset):
    """Blobs whose labels are one-hot rows (even ids) or probability rows (odd ids); the rows
    of ids 0, 1 (mod 4) point at ``classes[i]``, the others at the class after it."""

    def __init__(self, classes, n=12):
        self.ds = Blobs(n, size=SIZE)
        g = torch.Generator().manual_seed(5)
        self.rows = []
        for i in range(n):
            c = int(classes[i]) if i % 4 < 2 else (int(classes[i]) + 1) % 5
            if i % 2 == 0:
                self.rows.append(F.one_hot(torch.tensor(c), 5).float())
            else:  # a soft row whose largest value is c
                p = torch.softmax(torch.randn(5, generator=g), 0) * 0.5
                p[c] += 0.5
                self.rows.append(p / p.sum())

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        return self.ds[i][0], self.rows[i]


def test_one_hot_and_probability_labels_are_their_argmax_in_rows_stats_loss_and_analysis():
    model = TinyNet()
    blobs = Blobs(12, size=SIZE)
    lg = logits(model, torch.stack([blobs[i][0] for i in range(12)]))
    data = SoftLabels(lg.argmax(1))  # half the rows point at the prediction, half elsewhere
    ids = list(range(len(data)))
    truth = torch.stack(data.rows).argmax(1)
    want_loss = F.cross_entropy(lg, truth, reduction="none")
    right = (lg.argmax(1) == truth).tolist()
    assert right == [i % 4 < 2 for i in ids]

    lens = make(data, model, label_names=NAMES)
    assert_opens_with_a_map(lens)
    table = rows(lens, ids)
    assert [r["label"] for r in table] == truth.tolist()
    assert [r["label"] == r["prediction"] for r in table] == right
    np.testing.assert_allclose([r["loss"] for r in table], want_loss, rtol=1e-4)
    assert slice_accuracy(lens) == pytest.approx(np.mean(right))

    for i in (0, 1):  # a one-hot row and a probability row
        lens.viewed = i
        meta = analysis(lens)
        assert meta["type"] == "analysis" and meta["true_label"] == int(truth[i])
        assert meta["loss"] == pytest.approx(float(want_loss[i]), rel=1e-4)
        lens.label = "loss"  # the loss map explains the cross entropy against the argmax
        res = lens.result
        assert res.targets.tolist() == [int(truth[i])]
        np.testing.assert_allclose(res.scores, [float(want_loss[i])], rtol=1e-4)
        assert analysis(lens)["target"] == int(truth[i])
        lens.label = None


def test_a_row_that_is_no_probability_row_is_no_class_and_a_multilabel_model_keeps_rows():
    data = SoftLabels([0, 1, 2, 3, 4, 0], 6)
    data.rows[0] = torch.tensor([1.0, 1.0, 0, 0, 0])  # two classes: no class of a 5-way model
    data.rows[1] = torch.tensor([0.5, 0.5, 0, 0])  # 4 values for 5 classes
    model = TinyNet()
    table = rows(make(data, model), range(6))
    assert [r["label"] for r in table[:2]] == [None, None]
    assert [r["loss"] for r in table[:2]] == [None, None]
    # a multi-label model reads the same one-hot rows as label sets, its loss the mean BCE
    lens = make(data, model, task="multilabel")
    table = rows(lens, range(6))
    hot = torch.stack([data.rows[i] for i in (2, 4)])
    assert [table[i]["label_set"] for i in (2, 4)] == [hot[0].nonzero()[0].tolist(),
                                                       hot[1].nonzero()[0].tolist()]
    lg = logits(model, torch.stack([data[i][0] for i in (2, 4)]))
    want = F.binary_cross_entropy_with_logits(lg, hot, reduction="none").mean(1)
    np.testing.assert_allclose([table[i]["loss"] for i in (2, 4)], want, rtol=1e-4)


class NamedLabels(torch.utils.data.Dataset):
    """Blobs labelled by class name, as a folder or CSV data set often is."""

    def __init__(self, names, n=10):
        self.ds = Blobs(n, size=SIZE)
        self.names = names

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        x, y = self.ds[i]
        return {"image": x, "label": self.names[y]}


def test_string_labels_are_mapped_through_label_names():
    data = NamedLabels(NAMES)
    model = TinyNet()
    ids = list(range(len(data)))
    truth = [data.ds[i][1] for i in ids]
    lg = logits(model, torch.stack([data.ds[i][0] for i in ids]))
    want_loss = F.cross_entropy(lg, torch.tensor(truth), reduction="none")
    for names in (NAMES, dict(enumerate(NAMES))):
        lens = make(data, model, label_names=names)
        assert_opens_with_a_map(lens)
        table = rows(lens, ids)
        assert [r["label"] for r in table] == truth
        np.testing.assert_allclose([r["loss"] for r in table], want_loss, rtol=1e-4)
    lens.viewed = 3
    assert analysis(lens)["true_label"] == truth[3]
    lens.label = "loss"
    np.testing.assert_allclose(lens.result.scores, [float(want_loss[3])], rtol=1e-4)


def test_a_string_label_that_is_no_name_warns_once_and_reads_as_no_label():
    renamed = ["circle", "square", "triangel", "cross", "ring"]  # a typo in the data set
    data = NamedLabels(renamed)
    typo = [i for i in range(len(data)) if data.ds[i][1] == 2]
    assert len(typo) >= 2
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        lens = make(data, label_names=NAMES)
        table = rows(lens, range(len(data)))
        lens.viewed = typo[0]  # the sample stays viewable: its map needs no label
        assert_opens_with_a_map(lens)
    said = [str(w.message) for w in seen if "triangel" in str(w.message)]
    assert len(said) == 1
    assert "label 'triangel' of sample" in said[0] and str(NAMES) in said[0]
    for i, r in enumerate(table):
        assert (r["label"] is None and r["loss"] is None) == (i in typo), i
    with pytest.warns(UserWarning, match=r"label '\w+' of sample \d+ of slice .* no "
                                         r"label_names were given"):
        lens = make(NamedLabels(NAMES))
        table = rows(lens, range(len(data)))
    assert [r["label"] for r in table] == [None] * len(data)
