"""Errors the user's model raises, reported as the model's: never as a fault of the inputs.

``model_raised(err, tensors)`` is what the engine raises when the model's forward (or its
backward) fails: "the model raised on the inputs (input (1, 3, 112, 112) float32): RuntimeError:
...", with the original chained as ``__cause__`` and, where that type can carry the message,
the original's type (else ``RuntimeError``). ``said_of(exc, "sample 12")`` says the same of a
named sample, for callers that know which one it was (the widget's analyses and slice passes).
Malformed inputs, decided before the model is called, are ``inputs: ...`` errors instead
(``inputs.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["describe", "model_raised", "said_of"]

#: the original's type is kept for these (and their subclasses, where the message round-trips):
#: the ones callers catch; anything else becomes a RuntimeError with the original as its cause
KEPT = (RuntimeError, ValueError, TypeError, IndexError)


@dataclass(frozen=True)
class _Raised:
    """What a model error was raised on, kept on the exception so that it can be said again."""

    inputs: str
    backward: bool
    cause: BaseException


def describe(tensors: Sequence[torch.Tensor]) -> str:
    """``input (1, 3, 112, 112) float32``, or ``input 0 (...) float32, input 1 (...) int64``."""

    def one(t: torch.Tensor) -> str:
        return f"{tuple(t.shape)} {str(t.dtype).replace('torch.', '')}"

    if len(tensors) == 1:
        return f"input {one(tensors[0])}"
    return ", ".join(f"input {i} {one(t)}" for i, t in enumerate(tensors))


def model_raised(
    err: BaseException, tensors: Sequence[torch.Tensor], where: str = "the inputs",
    backward: bool = False,
) -> Exception:
    """The error to raise (``raise model_raised(err, batch) from err``) when the model raised
    ``err`` on ``tensors`` in its forward (``backward=True``: in the backward)."""
    return _build(_Raised(describe(tensors), backward, err), where)


def said_of(exc: BaseException, where: str) -> Exception | None:
    """``exc`` said of ``where`` (``"sample 12"``) instead of "the inputs" if it is a model
    error of ``model_raised``; else ``None``. Raise it ``from`` its ``__cause__``."""
    raised = getattr(exc, "_model_raised", None)
    return _build(raised, where) if isinstance(raised, _Raised) else None


def _build(raised: _Raised, where: str) -> Exception:
    who = "the model's backward" if raised.backward else "the model"
    err = raised.cause
    message = f"{who} raised on {where} ({raised.inputs}): {type(err).__name__}: {err}"
    new = _same_type(err, message)
    new._model_raised = raised  # type: ignore[attr-defined]
    new.__cause__ = err
    return new


def _same_type(err: BaseException, message: str) -> Exception:
    if isinstance(err, KEPT):
        try:
            new = type(err)(message)
        except Exception:  # a constructor that wants other arguments
            new = None
        if isinstance(new, Exception) and str(new) == message:
            return new
    return RuntimeError(message)
