"""The feature cache: in memory (LRU) and on disk (npz, written atomically, verified on load).

A cache entry is one feature matrix ``(N, D) float32`` and the name of the layer it came from,
stored under a key that hashes the model's weights, a fingerprint of the data set and the layer
(``feature_key``). Files hold plain arrays only and load with ``allow_pickle=False``; each holds a
SHA-256 of the feature bytes, its shape, the layer and the key, and a file that does not match
(truncated, bytes flipped, another key) is discarded with a warning: the caller recomputes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from samplelens_widget.population.items import dataset_length, split_item

__all__ = [
    "FORMAT_VERSION",
    "USER_CACHE_DIR",
    "FeatureCache",
    "dataset_fingerprint",
    "default_cache_dir",
    "feature_key",
    "model_hash",
    "resolve_cache_dir",
]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1  # bump when what a feature file means changes
FINGERPRINT_ITEMS = 32  # evenly spaced items read for a data set's fingerprint (plus the last)


class _UserCacheDir:
    """Sentinel: the user's cache directory (``default_cache_dir()``), resolved when used."""

    def __repr__(self) -> str:
        return "USER_CACHE_DIR"


USER_CACHE_DIR: Any = _UserCacheDir()


def default_cache_dir() -> Path:
    """``$SAMPLELENS_CACHE_DIR``, else ``$XDG_CACHE_HOME/samplelens``, else
    ``~/.cache/samplelens`` (``%LOCALAPPDATA%\\samplelens`` on Windows)."""
    explicit = os.environ.get("SAMPLELENS_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "samplelens"
    if os.name == "nt" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "samplelens"
    return Path.home() / ".cache" / "samplelens"


def resolve_cache_dir(cache_dir: Any) -> Path | None:
    """``USER_CACHE_DIR`` -> ``default_cache_dir()``; ``None`` -> ``None`` (memory only);
    a ``str``/``os.PathLike`` -> that path. Anything else: ``TypeError`` naming ``cache_dir``."""
    if cache_dir is USER_CACHE_DIR:
        return default_cache_dir()
    if cache_dir is None:
        return None
    if isinstance(cache_dir, (str, os.PathLike)):
        return Path(cache_dir).expanduser()
    raise TypeError(
        f"cache_dir: expected a path (str or os.PathLike) or None to switch the disk cache off, "
        f"got {type(cache_dir).__name__} {cache_dir!r}"[:300]
    )


# ------------------------------------------------------------------------------------ hashing
def _update_tensor(h: hashlib._Hash, t: torch.Tensor) -> None:
    t = t.detach()
    h.update(f"{tuple(t.shape)}|{t.dtype}|".encode())
    if t.numel() == 0:
        return
    t = t.cpu().contiguous()
    if t.is_quantized or t.is_sparse:
        t = t.dequantize() if t.is_quantized else t.to_dense()
    if t.is_complex():
        t = torch.view_as_real(t).contiguous()
    if t.dtype == torch.bool:
        t = t.to(torch.uint8)
    # a byte view of the storage: numpy cannot hold bfloat16 & co., bytes are bytes
    h.update(t.reshape(-1).view(torch.uint8).numpy().data)  # a view, no copy


def model_hash(model: nn.Module) -> str:
    """SHA-256 (hex) of the model's class and of every ``state_dict`` entry in order: name,
    shape, dtype and bytes. Changing any weight or buffer (running statistics too) changes it."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    h = hashlib.sha256()
    cls = type(model)
    h.update(f"{cls.__module__}.{cls.__qualname__}\n".encode())
    for name, value in model.state_dict().items():
        h.update(f"{name}\n".encode())
        if isinstance(value, torch.Tensor):
            _update_tensor(h, value)
        else:  # extra state: hash its repr
            h.update(repr(value).encode())
    return h.hexdigest()


def _fingerprint_indices(n: int, count: int = FINGERPRINT_ITEMS) -> list[int]:
    if n <= count + 1:
        return list(range(n))
    return sorted({round(i * (n - 1) / count) for i in range(count + 1)})


def dataset_fingerprint(dataset: Any) -> str:
    """SHA-256 (hex) of a data set's length and of a deterministic sample of its items (the
    first, the last and evenly spaced ones in between: ``FINGERPRINT_ITEMS + 1`` at most): their
    input tensors' shapes, dtypes and bytes and their labels.

    A fingerprint, not a full hash: two data sets that differ only in items it does not read get
    the same one. Reading every item would cost as much as a pass of the model on the CPU."""
    n = dataset_length(dataset)
    h = hashlib.sha256()
    h.update(f"{n}\n".encode())
    for i in _fingerprint_indices(n):
        inputs, label = split_item(dataset[i])
        h.update(f"{i}|{len(inputs)}|{label}|".encode())
        for t in inputs:
            _update_tensor(h, t)
    return h.hexdigest()


def feature_key(model_digest: str, data_digest: str, layer: str) -> str:
    """The cache key of one feature matrix: SHA-256 (hex) over the format version, the model
    hash, the data set fingerprint and the layer name."""
    h = hashlib.sha256()
    for part in (f"samplelens-features-v{FORMAT_VERSION}", model_digest, data_digest, layer):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def _checksum(features: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(features).data.cast("B")).hexdigest()


# ------------------------------------------------------------------------------------- cache
class FeatureCache:
    """Feature matrices by key: an in-memory LRU of ``max_items`` entries on top of a folder of
    npz files (``cache_dir``; ``None``: memory only, nothing is written).

    ``get(key)`` returns ``(features, layer)`` or ``None``, ``lookup(key)`` ``(features, layer,
    source)`` with source ``"memory"`` or ``"disk"``; ``put(key, features, layer)`` stores
    (returned arrays are read-only: share them, do not change them). ``last_source`` tells where
    the last ``get`` found its entry (``None``: a miss).
    Thread-safe. A file that fails any check on load is deleted and reported as a miss.
    """

    def __init__(self, cache_dir: Any = USER_CACHE_DIR, *, max_items: int = 8) -> None:
        if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 0:
            raise ValueError(f"max_items: expected an int >= 0, got {max_items!r}")
        root = resolve_cache_dir(cache_dir)
        self.dir: Path | None = None if root is None else root / "features"
        self.max_items = max_items
        self.last_source: str | None = None
        self._memory: OrderedDict[str, tuple[np.ndarray, str]] = OrderedDict()
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        where = "memory only" if self.dir is None else str(self.dir)
        return f"FeatureCache({where}, {len(self._memory)} in memory)"

    def path_for(self, key: str) -> Path | None:
        """The file of ``key`` (``None`` without a disk cache)."""
        _check_key(key)
        return None if self.dir is None else self.dir / f"{key}.npz"

    def get(self, key: str) -> tuple[np.ndarray, str] | None:
        """``(features, layer)`` of ``key``, or ``None``."""
        found = self.lookup(key)
        return None if found is None else found[:2]

    def lookup(self, key: str) -> tuple[np.ndarray, str, str] | None:
        """``(features, layer, source)`` of ``key`` (source: ``"memory"`` or ``"disk"``), or
        ``None``. Unlike ``last_source``, safe to read when several threads share the cache."""
        _check_key(key)
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                self.last_source = "memory"
                return (*self._memory[key], "memory")
            self.last_source = None
            path = self.path_for(key)
            if path is None or not path.exists():
                return None
            entry = self._load(path, key)
            if entry is None:
                return None
            self._remember(key, entry)
            self.last_source = "disk"
            return (*entry, "disk")

    def put(self, key: str, features: np.ndarray, layer: str) -> tuple[np.ndarray, str]:
        """Store ``features`` (made a read-only float32 C-contiguous copy if it is not one) under
        ``key``; returns the stored ``(features, layer)``. A failed disk write is logged, not
        raised: the entry then lives in memory only."""
        _check_key(key)
        arr = np.ascontiguousarray(features, dtype=np.float32)
        if arr.ndim != 2:
            raise ValueError(f"features: expected a 2-D (N, D) array, got shape {arr.shape}")
        if arr is features and arr.flags.writeable:
            arr = arr.copy()
        arr.flags.writeable = False
        entry = (arr, str(layer))
        with self._lock:
            self._remember(key, entry)
            path = self.path_for(key)
            if path is not None:
                try:
                    self._save(path, key, arr, entry[1])
                except OSError as err:
                    log.warning("samplelens: could not write the feature cache %s: %s", path, err)
        return entry

    def may_hold(self) -> bool:
        """Whether a ``get`` could find anything: a folder, or entries in memory."""
        return self.dir is not None or bool(self._memory)

    def clear_memory(self) -> None:
        with self._lock:
            self._memory.clear()

    # ------------------------------------------------------------------ internals
    def _remember(self, key: str, entry: tuple[np.ndarray, str]) -> None:
        if self.max_items == 0:
            return
        self._memory[key] = entry
        self._memory.move_to_end(key)
        while len(self._memory) > self.max_items:
            self._memory.popitem(last=False)

    @staticmethod
    def _save(path: Path, key: str, features: np.ndarray, layer: str) -> None:
        """Write to a temporary file in the same folder, flush it to disk, then rename it over
        ``path``: a reader sees the old file, the new one or none, never a partial one."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{key[:16]}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(
                    f,
                    features=features,
                    shape=np.asarray(features.shape, dtype=np.int64),
                    sha256=np.asarray(_checksum(features)),
                    layer=np.asarray(layer),
                    key=np.asarray(key),
                    version=np.asarray(FORMAT_VERSION, dtype=np.int64),
                )
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    @staticmethod
    def _load(path: Path, key: str) -> tuple[np.ndarray, str] | None:
        try:
            with np.load(path, allow_pickle=False) as z:
                version = int(z["version"])
                if version != FORMAT_VERSION:
                    raise ValueError(f"format version {version}, expected {FORMAT_VERSION}")
                if str(z["key"]) != key:
                    raise ValueError("the key stored in the file is another one")
                features = z["features"]
                shape = tuple(int(s) for s in z["shape"])
                checksum = str(z["sha256"])
                layer = str(z["layer"])
            if features.dtype != np.float32 or features.ndim != 2 or features.shape != shape:
                raise ValueError(
                    f"features of shape {features.shape} {features.dtype}, expected {shape} float32"
                )
            if _checksum(features) != checksum:
                raise ValueError("checksum mismatch")
        except Exception as err:  # truncated, not a zip, bad CRC, missing member, mismatch, ...
            log.warning(
                "samplelens: discarding the corrupt feature cache file %s (%s: %s); recomputing",
                path,
                type(err).__name__,
                err,
            )
            try:
                path.unlink()
            except OSError:
                pass
            return None
        features = np.ascontiguousarray(features)
        features.flags.writeable = False
        return features, layer


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key or not all(c in "0123456789abcdef" for c in key):
        raise ValueError(f"key: expected a lowercase hex digest, got {key!r}"[:200])
