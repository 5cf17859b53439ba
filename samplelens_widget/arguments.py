"""Checking what a user passes: ``SampleLens``'s arguments and the values set on its traits.

Every error names the argument (or trait), the value and what is allowed. Trait checks are
pure: they are given what is known (the slice's length, the model's classes and depths) and
never run a model.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from torch import nn

from samplelens_widget.population_view import PROJECTIONS, check_metadata

__all__ = [
    "BUILTIN_TABS",
    "algorithm",
    "check_embed_layer",
    "check_keywords",
    "check_label_names",
    "check_models",
    "check_projection",
    "check_slices",
    "check_visualizers",
    "contrast",
    "depth",
    "label",
    "metadata_by_slice",
    "one_of",
    "selected",
]

CAM_TAB, INPUT_TAB = "CAM", "Input"
BUILTIN_TABS = (CAM_TAB, INPUT_TAB)


# ------------------------------------------------------------------ arguments
#: keywords of other tools that users try, and what does their job here
_HINTS = {
    "mean": "display=fn (a Normalize in the dataset's transform is inverted on its own)",
    "std": "display=fn (a Normalize in the dataset's transform is inverted on its own)",
    "denormalize": "display=fn (a Normalize in the dataset's transform is inverted on its own)",
    "classes": "label_names",
    "class_names": "label_names",
    "dataset": "data (or slices={name: dataset})",
    "target_layer": "embed_layer (the population's features); the maps cover every layer",
}


def check_keywords(kwargs: Mapping[str, Any], params: Sequence[str], traits: Sequence[str]) -> None:
    """A ``TypeError`` for a keyword that is neither a parameter of ``SampleLens`` nor one of
    its public traits, naming it and the nearest known one (a typo is never ignored)."""
    known = [*params, *traits]
    for name in kwargs:
        if name in traits:
            continue
        hint = _HINTS.get(name)
        if hint is None:
            near = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = repr(near[0]) if near else None
        raise TypeError(
            f"SampleLens: unknown keyword argument {name!r}"
            + (f"; did you mean {hint}?" if hint else "")
            + f" The arguments are {list(params)}; the traits that may be set too are "
            f"{list(traits)}"
        )


def check_label_names(names: Any) -> list[str] | dict[int, str] | None:
    """``label_names`` as a list of names or ``{class index: name}`` (keys ints or digit
    strings); a string, or a mapping from names to indices, is a ``TypeError``."""
    if names is None:
        return None
    if isinstance(names, (str, bytes)):
        raise TypeError(
            f"label_names: expected a list of class names or {{index: name}}, got the string "
            f"{names!r}; for one class write [{names!r}]"
        )
    if isinstance(names, Mapping):
        out: dict[int, str] = {}
        for key, value in names.items():
            index = key
            if isinstance(key, str) and key.strip().isdigit():
                index = int(key)
            elif isinstance(key, np.integer):
                index = int(key)
            if isinstance(index, bool) or not isinstance(index, int) or index < 0:
                flipped = " (it looks like {name: index}: flip it)" if isinstance(
                    value, (int, np.integer)) else ""
                raise TypeError(
                    f"label_names: the key {key!r} is not a class index; expected "
                    f"{{index: name}} with int or digit-string keys{flipped}"
                )
            out[index] = str(value)
        return out
    try:
        return [str(n) for n in names]
    except TypeError:
        raise TypeError(
            f"label_names: expected a list of class names or {{index: name}}, got "
            f"{type(names).__name__}"
        ) from None


def check_models(
    model: Any, models: Mapping[str, Any] | None
) -> tuple[dict[str, nn.Module], str]:
    """``(name -> model, the initial model's name)`` from ``model`` and ``models``."""
    all_models: dict[str, nn.Module] = {}
    initial = None
    for name, m in (models or {}).items():
        if not isinstance(m, nn.Module):
            raise TypeError(f"models[{name!r}]: expected an nn.Module, got {type(m)}")
        all_models[str(name)] = m
        if m is model:
            initial = str(name)
    if model is not None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        if initial is None:
            initial = "model" if "model" not in all_models else "model (arg)"
            all_models = {initial: model, **all_models}
    if not all_models:
        raise ValueError("model: expected an nn.Module (or models={name: module}), got None")
    return all_models, initial if initial is not None else next(iter(all_models))


def check_slices(data: Any, slices: Mapping[str, Any] | None) -> tuple[dict[str, Any], str]:
    """``(name -> dataset, the initial slice's name)`` from ``data`` and ``slices``."""
    all_slices: dict[str, Any] = {}
    initial = None
    for name, ds in (slices or {}).items():
        all_slices[str(name)] = ds
        if ds is data:
            initial = str(name)
    if data is not None and initial is None:
        initial = "data" if "data" not in all_slices else "data (arg)"
        all_slices = {initial: data, **all_slices}
    if not all_slices:
        raise ValueError("data: expected a map-style dataset (or slices={name: dataset})")
    return all_slices, initial if initial is not None else next(iter(all_slices))


def check_visualizers(visualizers: Mapping[str, Callable[..., Any]] | None) -> dict[str, Any]:
    vis = dict(visualizers or {})
    for name in vis:
        if name in BUILTIN_TABS:
            raise ValueError(
                f"visualizers: the name {name!r} is reserved; the built-in tabs are "
                f"{CAM_TAB!r} and {INPUT_TAB!r}"
            )
    return vis


def check_projection(projection: str | None) -> str:
    """``None``: ``$SAMPLELENS_PROJECTION`` or ``"umap"``."""
    if projection is None:
        projection = os.environ.get("SAMPLELENS_PROJECTION", "umap")
    if projection not in PROJECTIONS:
        raise ValueError(f"projection: {projection!r} is unknown; allowed: {list(PROJECTIONS)}")
    return projection


def check_embed_layer(embed_layer: Any) -> str | None:
    if embed_layer is not None and not isinstance(embed_layer, str):
        raise TypeError(
            "embed_layer: expected a layer name (str) or None, got "
            f"{type(embed_layer).__name__}"
        )
    return embed_layer


def metadata_by_slice(
    metadata: Any, slices: Mapping[str, Any], initial: str, slice_len: Callable[[str], int]
) -> dict[str, dict[str, dict[str, Any]]]:
    """``metadata`` (columns of the initial slice, or ``{slice: columns}``) checked and
    encoded per slice."""
    if metadata is None:
        return {}
    if isinstance(metadata, Mapping) and metadata and all(k in slices for k in metadata):
        return {
            name: check_metadata(m, slice_len(name), f"metadata[{name!r}]")
            for name, m in metadata.items()
        }
    return {initial: check_metadata(metadata, slice_len(initial))}


# --------------------------------------------------------------------- traits
def one_of(value: object, allowed: Sequence[str]) -> str:
    """``value`` if it is one of the names ``allowed``."""
    if isinstance(value, str) and value in allowed:
        return value
    raise ValueError(f"{value!r} is not one of {list(allowed)}")


def selected(value: Any, n: int, check_id: Callable[[Any], int]) -> list[int]:
    """Ids in ``0..n-1`` without duplicates (first occurrence kept); ``check_id`` explains a
    bad one (raises ``ValueError``)."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    out: list[int] = []
    seen: set[int] = set()
    for i in value:
        if not (type(i) is int and 0 <= i < n):  # the common case stays fast for 100k ids
            i = check_id(i)
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out


def algorithm(value: Any, titles: Mapping[str, str]) -> str:
    """An algorithm's name, or its title in any case and spacing (``"Focus Layer CAM"``)."""
    by_title = {v.lower().replace(" ", ""): k for k, v in titles.items()}
    norm = by_title.get(str(value).lower().replace(" ", ""), value)
    if norm not in titles:
        raise ValueError(f"algorithm: {value!r} is not one of {list(titles)}")
    return str(norm)


LOSS = "loss"


def label(value: int | str | None, num_classes: int | None, from_page: bool) -> int | str | None:
    """A class of the model, ``None`` (the prediction) or ``"loss"``; a class is unchecked while
    the number of classes is unknown. A class from the page that does not fit (sent just before
    a model switch) is the prediction."""
    if isinstance(value, str):
        if value == LOSS:
            return value
        raise ValueError(
            f"label: {value!r} is not allowed; expected a class index, None (the predicted "
            f"class) or {LOSS!r} (the loss against the true label)"
        )
    return _class(value, num_classes, from_page, "label",
                  f", None (the predicted class) or {LOSS!r}")


def contrast(value: int | None, num_classes: int | None, from_page: bool) -> int | None:
    """The second class of a contrast, or ``None`` (no contrast)."""
    return _class(value, num_classes, from_page, "contrast", " or None (no contrast)")


def _class(
    value: int | None, num_classes: int | None, from_page: bool, name: str, others: str
) -> int | None:
    """A class index of the model or None; unchecked while the number of classes is unknown.
    One from the page that does not fit (sent just before a model switch) becomes None."""
    if value is None or num_classes is None or 0 <= value < num_classes:
        return value
    if from_page:
        return None
    raise ValueError(
        f"{name}: {value} is not a class of the model; expected 0..{num_classes - 1}{others}"
    )


def depth(
    value: int | None, depths: Sequence[int] | None, model_name: str, from_page: bool
) -> int | None:
    """A depth of the model, or ``None`` (the last layer); unchecked while its depths are
    unknown. A value from the page that does not fit (the slider of another model) is clamped
    to the nearest depth below it."""
    if value is None or not depths or value in depths:
        return value
    if from_page:
        return max([d for d in depths if d <= value] or [depths[0]])
    raise ValueError(
        f"depth: {value} is not a depth of model {model_name!r}; expected "
        f"{depths[0]}..{depths[-1]} or None (the last layer)"
    )
