"""The merchant API's JSON parser (merchant-api.md "Conventions": JSON in, UTF-8; "Errors": a malformed field is
``400 invalid_request`` naming it).

DRF's ``JSONParser`` takes any text ``json.loads`` takes. Three kinds of body get past it and then fail later, or
mean something other than what the merchant's own tools read:

- **a name twice in one object** (``{"amount": 100, "amount": 10000}``): ``json.loads`` keeps the last one
  silently, while other parsers — the merchant's logging, a gateway that checked the request — may keep the
  first (RFC 8259 §4: the behaviour is then unpredictable). The request is refused, naming the field, rather
  than charged for an amount the merchant's side never saw;
- **a lone surrogate** (``"\\ud800"``): valid JSON syntax but no Unicode character, so not UTF-8 text; echoed
  back (an unknown field's name) or stored (``metadata``) it failed as a 500;
- **deep nesting**: past about a thousand levels ``json.loads`` raises ``RecursionError`` (a 500), and anything
  just under that limit fails later in whatever walks the value again (validation, the fingerprint, the
  database driver).
"""

from __future__ import annotations

import codecs
import re
from decimal import Decimal

from django.utils.http import parse_header_parameters
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.utils import json

from aggpay.api.errors import param_name
from aggpay.errors import InvalidRequest

# Far more than any request of the contract needs (an onboarding application nests three levels), far less than
# what recursion in Python or the database driver can take.
MAX_DEPTH = 32
# A JSON string (and whether a ':' follows it: then it is a name), or a bracket. Used only on a body too deep for
# json.loads, to say under which top-level name it nests too deep (_too_deep_under).
_NESTING_TOKEN = re.compile(r'("(?:[^"\\]|\\.)*")(\s*:)?|[\[\]{}]')
_SURROGATE = re.compile("[\ud800-\udfff]")
# In the text, a lone surrogate can only come from a \uD800-\uDFFF escape (decoding UTF-8 refuses encoded ones).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


# Python refuses to read an integer of more than 4,300 digits (sys.int_info.default_max_str_digits) and json.loads
# raised that as a ValueError for the whole body — a 400 with no param, whose message told the merchant to call
# sys.set_int_max_str_digits(). Such a number is read as a Decimal instead, which no integer field accepts: the field
# refuses it by name ("amount must be a positive integer"), as it refuses 1.5.
def _integer(digits: str) -> int | Decimal:
    return int(digits) if len(digits) <= 4000 else Decimal(digits)


class _Duplicated(dict):
    """An object that had a name more than once; ``name`` is the first repeated one."""

    name: str


def _object(pairs: list[tuple[str, object]]) -> dict:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen = set()
    duplicated = _Duplicated(obj)
    for name, _ in pairs:
        if name in seen:
            duplicated.name = name
            break
        seen.add(name)
    return duplicated


def _param(path: tuple) -> str | None:
    # Named like the param of any other invalid field (aggpay.api.errors.param_name); None for the top level.
    return param_name(path)


def _check(data, *, surrogates: bool) -> None:
    """Walk the parsed body once, depth first in document order: the first problem is the one reported."""
    stack = [(data, ())]
    while stack:
        value, path = stack.pop()
        if len(path) > MAX_DEPTH:
            raise InvalidRequest(f"{_param(path[:1]) or 'the body'}: JSON nested more than {MAX_DEPTH} levels deep",
                                 param=_param(path[:1]))
        if isinstance(value, dict):
            if surrogates and any(_SURROGATE.search(key) for key in value):
                # The name itself cannot be echoed (it is not text): name the object that holds it.
                param = _param(path)
                raise InvalidRequest(f"{param or 'the body'}: a field name is not valid Unicode text (a lone "
                                     "surrogate \\ud800-\\udfff)", param=param)
            if isinstance(value, _Duplicated):
                param = _param((*path, value.name))
                raise InvalidRequest(f"{param}: appears more than once in the same object", param=param)
            stack.extend(reversed([(child, (*path, key)) for key, child in value.items()]))
        elif isinstance(value, list):
            stack.extend(reversed([(child, (*path, index)) for index, child in enumerate(value)]))
        elif surrogates and isinstance(value, str) and _SURROGATE.search(value):
            param = _param(path)
            raise InvalidRequest(f"{param or 'the body'}: not valid Unicode text (a lone surrogate "
                                 "\\ud800-\\udfff)", param=param)


def _require_utf8(content_type: str) -> None:
    """merchant-api.md "Conventions": JSON in, UTF-8 (RFC 8259 §8.1: JSON exchanged between systems is UTF-8). A body
    declared in another charset (``Content-Type: application/json; charset=latin-1``) is refused, naming the header.
    Bug: it was read in that charset, so the same signed bytes gave other text than the merchant's UTF-8 tools
    show — a subject in Chinese came out as mojibake and went to the channel and into the statement — and an
    unknown charset was silently read as UTF-8."""
    charset = parse_header_parameters(content_type)[1].get("charset")
    if charset is None:
        return
    try:
        utf8 = codecs.lookup(charset).name == "utf-8"
    except LookupError:
        utf8 = False
    if not utf8:
        raise InvalidRequest(f"Content-Type: the body must be UTF-8 (application/json; charset=utf-8), not "
                             f"charset={charset[:40]}")


class StrictJSONParser(JSONParser):
    """``JSONParser`` that refuses repeated names, lone surrogates and nesting deeper than ``MAX_DEPTH``, each as
    ``invalid_request`` naming where."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        _require_utf8(media_type or "")
        duplicated = False

        def pairs_hook(pairs):
            nonlocal duplicated
            obj = _object(pairs)
            duplicated = duplicated or isinstance(obj, _Duplicated)
            return obj

        try:
            text = codecs.getreader("utf-8")(stream).read()
            data = json.loads(text, object_pairs_hook=pairs_hook, parse_int=_integer)
        except RecursionError:
            # Too deep for the parser itself, so the walk that names the field (_check) never runs: the top-level
            # name is found by counting brackets in the text. Bug: thousands of levels under "metadata" were refused
            # with no param, where 40 levels named it (docs/api.md "Errors": refused naming the field).
            name = _too_deep_under(text)
            raise InvalidRequest(f"{name or 'the body'}: JSON nested more than {MAX_DEPTH} levels deep",
                                 param=name) from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        surrogates = _SURROGATE_ESCAPE.search(text) is not None
        # Nesting needs an opening bracket per level: fewer brackets than MAX_DEPTH cannot nest too deep.
        if duplicated or surrogates or text.count("{") + text.count("[") > MAX_DEPTH:
            _check(data, surrogates=surrogates)
        return data


def _too_deep_under(text: str) -> str | None:
    """The top-level name of the object under which ``text`` nests deeper than MAX_DEPTH; None when the body is not
    an object or the nesting is not under a name."""
    depth, name = 0, None
    for token in _NESTING_TOKEN.finditer(text):
        if token.group(1) is not None:
            if depth == 1 and token.group(2):
                name = json.loads(token.group(1))
        elif token.group() in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return name if text.lstrip().startswith("{") else None
        else:
            depth -= 1
    return None
