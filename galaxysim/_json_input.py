"""JSON that other people wrote: bounded in size and depth, and checked for types before use.

A JSON file is data, but a hostile one can still hurt the reader: nested a
hundred thousand levels deep it ends the parser (and any code walking the
result) with a RecursionError; a number where an object is expected turns
into an AttributeError far from the file. :func:`parse_json` refuses text
nested deeper than ``max_depth`` and the non-standard constants ``NaN`` and
``Infinity``; :func:`check_schema` compares the parsed value with a small
description of the types expected, so that every later ``.get`` or
``.items`` meets what it expects. Both raise :class:`JSONInputError`, a
ValueError naming the file and the place in it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ._limits import check_regular_file

__all__ = ["MAX_DEPTH", "JSONInputError", "check_schema", "parse_json", "read_json"]

#: Deepest nesting of arrays and objects accepted; galaxysim's own files stay under 20.
MAX_DEPTH = 64


class JSONInputError(ValueError):
    """JSON from a file is malformed, nested too deeply, too large, or of the wrong types."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"the constant {name} is not JSON")


def _depth(value: Any) -> int:
    """The nesting depth of a parsed value, walked without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        children: Iterable[Any]
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def parse_json(text: str | bytes, what: str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON text, refusing nesting deeper than ``max_depth`` and NaN or Infinity.

    Parameters
    ----------
    text : str or bytes
        The JSON text (bytes are decoded as UTF-8).
    what : str
        What the text is, for error messages (e.g. ``"search.json 'idx/search.json'"``).
    max_depth : int, default=MAX_DEPTH
        Most levels of nested arrays and objects.

    Returns
    -------
    value : Any
        The parsed value.

    Raises
    ------
    JSONInputError
        The text is not JSON, not UTF-8, holds NaN or Infinity, or is nested
        too deeply (however deeply: the parser's RecursionError is caught).

    Examples
    --------
    >>> from galaxysim._json_input import parse_json
    >>> parse_json('{"a": [1, 2]}', "example")
    {'a': [1, 2]}
    >>> parse_json("[" * 100000, "example")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    galaxysim._json_input.JSONInputError: example is nested more than 64 levels deep; ...
    """
    too_deep = JSONInputError(
        f"{what} is nested more than {max_depth} levels deep; it was not written by galaxysim."
    )
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise too_deep from None
    except (UnicodeDecodeError, ValueError) as error:  # JSONDecodeError is a ValueError
        raise JSONInputError(f"{what} is not valid JSON: {error}") from None
    if _depth(value) > max_depth:
        raise too_deep
    return value


def read_json(
    path: str | Path, what: str, *, max_bytes: int = 1 << 20, max_depth: int = MAX_DEPTH
) -> Any:
    """Read a regular file of at most ``max_bytes`` as JSON, with :func:`parse_json`.

    Parameters
    ----------
    path : str or path-like
        The file; a FIFO or a device is refused without being opened.
    what : str
        What the file is, for error messages.
    max_bytes : int, default=1 MiB
        Largest file accepted.
    max_depth : int, default=MAX_DEPTH
        Most levels of nesting.

    Returns
    -------
    value : Any

    Raises
    ------
    FileNotFoundError, IsADirectoryError
        Nothing, or a folder, is at ``path``.
    JSONInputError
        The file is too large, or its text is refused by :func:`parse_json`.

    Examples
    --------
    >>> import os, tempfile
    >>> from galaxysim._json_input import read_json
    >>> path = os.path.join(tempfile.mkdtemp(), "a.json")
    >>> _ = open(path, "w").write('{"n": 3}')
    >>> read_json(path, "the test file")
    {'n': 3}
    """
    path = check_regular_file(path, what)
    size = path.stat().st_size
    if size > max_bytes:
        raise JSONInputError(
            f"{what} {str(path)!r} has {size:,} bytes, more than the {max_bytes:,} such a file "
            "can have."
        )
    return parse_json(path.read_bytes(), f"{what} {str(path)!r}", max_depth=max_depth)


def _type_names(types: tuple[type, ...]) -> str:
    names = {
        type(None): "null",
        dict: "an object",
        list: "an array",
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true or false",
    }
    return " or ".join(names.get(t, t.__name__) for t in types)


def _matches(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool):  # JSON true is not the number 1
        return bool in types
    if isinstance(value, int) and float in types:
        return True
    return isinstance(value, types)


def check_schema(value: Any, schema: Any, what: str) -> None:
    """Check that parsed JSON has the types ``schema`` describes.

    Parameters
    ----------
    value : Any
        Parsed JSON.
    schema : type, tuple of types, dict or list
        A type or tuple of types (``int`` excludes ``true``/``false``,
        ``float`` accepts integers, ``type(None)`` accepts null and a
        missing key); a dict of ``key: schema`` for an object (keys it does
        not name are allowed, and the key ``...`` gives the schema of every
        key not named); a one-item list ``[schema]`` for an array of such
        items.
    what : str
        What ``value`` is, for error messages.

    Raises
    ------
    JSONInputError
        Naming the place (``what.key.0``), the types expected and what came.

    Examples
    --------
    >>> from galaxysim._json_input import check_schema
    >>> schema = {"version": int, "params": {...: (int, type(None))}, "names": [str]}
    >>> check_schema({"version": 1, "params": {"M": 32}, "names": ["a"]}, schema, "search.json")
    >>> check_schema({"version": 1, "params": [], "names": []}, schema, "search.json")
    Traceback (most recent call last):
    ...
    galaxysim._json_input.JSONInputError: search.json: params must be an object, got an array.
    """
    _check(value, schema, what, "")


def _check(value: Any, schema: Any, what: str, place: str) -> None:
    where = f"{what}: {place}" if place else what
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            raise JSONInputError(f"{where} must be an object, got {_type_names((type(value),))}.")
        for key, item in value.items():
            if key in schema or ... in schema:
                _check(item, schema.get(key, schema.get(...)), what, f"{place}.{key}".lstrip("."))
        for key, item in schema.items():
            if key is not ... and key not in value:
                _check(None, item, what, f"{place}.{key}".lstrip("."))
        return
    if isinstance(schema, list):
        if not isinstance(value, list):
            raise JSONInputError(f"{where} must be an array, got {_type_names((type(value),))}.")
        for number, item in enumerate(value):
            _check(item, schema[0], what, f"{place}.{number}".lstrip("."))
        return
    types = schema if isinstance(schema, tuple) else (schema,)
    if not _matches(value, types):
        got = "nothing" if value is None else _type_names((type(value),))
        raise JSONInputError(f"{where} must be {_type_names(types)}, got {got}.")
