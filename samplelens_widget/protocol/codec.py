"""Reading the page's requests and checking messages against their declarations.

``decode_request(content)`` checks a request against its ``TypedDict`` in ``messages.py`` and
returns it with numbers normalised (a JSON ``3.0`` id is ``3``); a missing or wrong field raises
:class:`ProtocolError`, which names the kind, the field, the value and what is allowed.
``check_message(message, REPLIES)`` is the same check, strict (no extra fields), for what the
kernel sends.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union, get_args, get_origin

from typing_extensions import NotRequired, is_typeddict

from samplelens_widget.protocol.messages import REQUESTS, Kind

__all__ = ["ProtocolError", "check_message", "decode_request", "fields_of"]


class ProtocolError(ValueError):
    """A message that does not match its declaration."""


def fields_of(message: type) -> dict[str, tuple[Any, bool]]:
    """``{field: (type, required)}`` of a message ``TypedDict``."""
    hints = typing.get_type_hints(message, include_extras=True)
    out: dict[str, tuple[Any, bool]] = {}
    for name, tp in hints.items():
        required = name in message.__required_keys__  # type: ignore[attr-defined]
        if get_origin(tp) is NotRequired:
            tp, required = get_args(tp)[0], False
        out[name] = (tp, required)
    return out


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if tp is type(None):
        return "null"
    if origin is Literal:
        return " or ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(tp))
    if origin is list:
        return f"a list of {_describe(get_args(tp)[0])}"
    if origin is tuple:
        return f"a pair ({', '.join(_describe(a) for a in get_args(tp))})"
    if origin is dict:
        return f"an object of {_describe(get_args(tp)[1])}"
    if is_typeddict(tp):
        return f"an object ({tp.__name__})"
    return getattr(tp, "__name__", str(tp))


def _check(value: Any, tp: Any, path: str, strict: bool) -> Any:
    """``value`` as type ``tp`` (ints from integral floats), or ProtocolError naming ``path``."""
    origin = get_origin(tp)
    bad = ProtocolError(f"{path}: {value!r} is not {_describe(tp)}")
    if tp is Any:
        return value
    if tp is type(None):
        if value is None:
            return None
        raise bad
    if origin is Literal:
        if value in get_args(tp) and not isinstance(value, bool):
            return value
        raise bad
    if origin in (Union, types.UnionType):
        for option in get_args(tp):
            try:
                return _check(value, option, path, strict)
            except ProtocolError:
                continue
        raise bad
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if tp is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float) and value.is_integer() and not strict:
            return int(value)
        raise bad
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise bad
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise bad
        (item,) = get_args(tp)
        return [_check(v, item, f"{path}[{i}]", strict) for i, v in enumerate(value)]
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise bad
        pairs = enumerate(zip(value, args, strict=True))
        return tuple(_check(v, a, f"{path}[{i}]", strict) for i, (v, a) in pairs)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise bad
        _, item = get_args(tp)
        return {str(k): _check(v, item, f"{path}[{k!r}]", strict) for k, v in value.items()}
    if is_typeddict(tp):
        if not isinstance(value, Mapping):
            raise bad
        return _check_fields(value, tp, path, strict)
    raise TypeError(f"{path}: the protocol has no check for {tp!r}")  # pragma: no cover


def _check_fields(
    value: Mapping[str, Any], message: type, path: str, strict: bool
) -> dict[str, Any]:
    fields = fields_of(message)
    out: dict[str, Any] = {}
    for name, (tp, required) in fields.items():
        if name not in value:
            if required:
                raise ProtocolError(f"{path}: the field {name!r} is missing")
            continue
        out[name] = _check(value[name], tp, f"{path}.{name}", strict)
    extra = sorted(set(value) - set(fields))
    if extra and strict:
        raise ProtocolError(f"{path}: fields {extra} are not declared (declared: {list(fields)})")
    return out


def decode_request(content: Any) -> tuple[str, dict[str, Any]]:
    """``(kind, request)`` of a message from the page, checked against its declaration."""
    if not isinstance(content, Mapping):
        raise ProtocolError(f"request: expected an object, got {type(content).__name__}")
    kind = content.get("type")
    if kind not in REQUESTS:
        raise ProtocolError(f"unknown request type {kind!r}; known: {sorted(REQUESTS)}")
    return kind, _check_fields(content, REQUESTS[kind].message, kind, strict=False)


def check_message(message: Mapping[str, Any], kinds: Mapping[str, Kind]) -> str:
    """Check a message strictly (declared fields only, exact types); returns its kind."""
    kind = message.get("type")
    if not isinstance(kind, str) or kind not in kinds:
        raise ProtocolError(f"unknown message type {kind!r}; known: {sorted(kinds)}")
    _check_fields(message, kinds[kind].message, str(kind), strict=True)
    return str(kind)
