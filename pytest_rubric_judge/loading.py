"""Untrusted text -> plain data: YAML with a safe loader only, or JSON.

The judge's answer is untrusted. Loading it can only ever build dicts, lists, strings,
numbers, booleans and None, and every way it can fail is a `ParseError`:

- YAML anchors, aliases and explicit tags are refused on the token stream, before
  anything is composed ("billion laughs" costs nothing), and so is nesting deeper than
  `MAX_DEPTH`. A merge key (`<<`) is refused too.
- A key given twice in one mapping is refused (YAML and JSON alike): "last wins" would
  let a second `preference:` decide silently.
- Numbers longer than `MAX_NUMBER_CHARS` characters are refused before Python converts
  them (a 5000-digit integer raises ValueError in `int()`, a long hexadecimal one becomes
  an integer no message can print). Date-like scalars stay text.
- Lone surrogates are not valid Unicode and are refused.
- Lines split on "\\n" only: before YAML reads a document, the other characters YAML 1.1
  would take as line breaks (a lone "\\r", U+0085, U+2028, U+2029) become spaces, so
  quoted text cannot start a line of its own inside the judge's YAML.
- Characters YAML does not allow in a document (C0 and C1 controls other than tab and
  line breaks, U+FFFE, U+FFFF) become U+FFFD instead of making the whole document
  unreadable, and JSON strings may hold them raw: a judge that quotes a response
  containing a form feed still gives a readable answer. Free text drops them later.
"""

from __future__ import annotations

import json
import re
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

import yaml
from yaml.constructor import FullConstructor, SafeConstructor

from .errors import ParseError

#: Longest judge answer accepted, in characters.
MAX_ANSWER_CHARS = 100_000
#: Deepest nesting of collections accepted; a judge answer needs about four levels.
MAX_DEPTH = 32
#: Longest number accepted, in characters: scores and weights never need more.
MAX_NUMBER_CHARS = 40

_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_OTHER_BREAKS_RE = re.compile("\r(?!\n)|[\x85\u2028\u2029]")
_NOT_IN_YAML_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ufffe\uffff]")
_OPENING_TOKENS = (
    yaml.BlockMappingStartToken,
    yaml.BlockSequenceStartToken,
    yaml.FlowMappingStartToken,
    yaml.FlowSequenceStartToken,
)
_CLOSING_TOKENS = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)
_MERGE_TAG = "tag:yaml.org,2002:merge"

if TYPE_CHECKING:
    _Base = yaml.SafeLoader
else:
    # libyaml's safe loader when PyYAML was built with it (several times faster), else the
    # pure-Python one. Both build plain data only.
    _Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def check_unicode(text: str, what: str = "answer") -> None:
    """Raise ParseError when `text` holds a lone surrogate (not valid Unicode)."""
    match = _SURROGATE_RE.search(text)
    if match is not None:
        raise ParseError(
            f"{what} contains a lone surrogate (U+{ord(match[0]):04X}) at character "
            f"{match.start()}: it is not valid Unicode; answer in plain UTF-8 text"
        )


def replace_surrogates(text: str) -> str:
    """`text` with each lone surrogate replaced by U+FFFD (for text already decoded)."""
    return _SURROGATE_RE.sub("\ufffd", text)


def _number_too_long(text: str, where: str) -> ParseError:
    return ParseError(
        f"number {text[:12]}... ({len(text)} characters){where} is too long; "
        "scores are integers 1-5 and weights small numbers"
    )


class _AnswerLoader(_Base):
    """A safe loader that refuses repeated and merge keys and keeps dates as text."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        if not isinstance(node, yaml.MappingNode):
            raise yaml.constructor.ConstructorError(
                None, None, f"expected a mapping, found {node.id}", node.start_mark
            )
        mapping: dict[Hashable, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == _MERGE_TAG:
                raise ParseError(
                    f"YAML merge keys (<<) are not allowed (line {line}); write every key out"
                )
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                raise yaml.constructor.ConstructorError(
                    None, None, "found a mapping key that is not a plain value", key_node.start_mark
                )
            if key in mapping:
                raise ParseError(
                    f"key {_shown_key(key)} is given twice in one mapping (line {line}); give "
                    "each key once"
                )
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


def _shown_key(key: object) -> str:
    text = repr(key) if isinstance(key, str) else str(key)
    return text if len(text) <= 40 else text[:37] + "..."


def _construct_number(loader: _AnswerLoader, node: yaml.ScalarNode) -> object:
    text = loader.construct_scalar(node)
    if len(text) > MAX_NUMBER_CHARS:
        raise _number_too_long(text, f" (line {node.start_mark.line + 1})")
    if node.tag.endswith(":int"):
        return loader.construct_yaml_int(node)
    return loader.construct_yaml_float(node)


def _construct_text(loader: _AnswerLoader, node: yaml.ScalarNode) -> str:
    return loader.construct_scalar(node)


_AnswerLoader.add_constructor("tag:yaml.org,2002:int", _construct_number)
_AnswerLoader.add_constructor("tag:yaml.org,2002:float", _construct_number)
_AnswerLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_text)
_AnswerLoader.add_constructor("tag:yaml.org,2002:value", _construct_text)


def yaml_error_message(error: yaml.YAMLError, document: str = "") -> str:
    """A one-line description of a YAML error, with its position and a hint when one helps."""
    if not isinstance(error, yaml.MarkedYAMLError):
        return f"answer is not valid YAML: {error}"
    problem = ", ".join(part for part in (error.context, error.problem) if part) or "syntax error"
    mark = error.problem_mark or error.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    hint = ""
    if "mapping values are not allowed" in problem:
        hint = "; put text that contains ': ' in double quotes"
    elif "'\\t'" in problem or (
        # libyaml does not name the character; look at the line it points to
        mark is not None and "\t" in (document.split("\n")[mark.line : mark.line + 1] or [""])[0]
    ):
        hint = "; indent with spaces, not tabs"
    return f"answer is not valid YAML: {problem}{where} of the YAML block{hint}"


def _check_tokens(text: str) -> None:
    """Refuse anchors, aliases, tags and deep nesting by scanning tokens, before composing.

    Composing is where aliases expand ("billion laughs"), so the check must come first.
    """
    depth = 0
    try:
        for token in yaml.scan(text, Loader=_AnswerLoader):
            if isinstance(token, (yaml.AnchorToken, yaml.AliasToken)):
                line = token.start_mark.line + 1
                raise ParseError(
                    f"YAML anchors and aliases (& and *) are not allowed (line {line} of the "
                    "YAML block); write every value out in full"
                )
            if isinstance(token, yaml.TagToken):
                line = token.start_mark.line + 1
                raise ParseError(
                    f"YAML tags (such as !!int) are not allowed (line {line} of the YAML "
                    "block); write plain values"
                )
            if isinstance(token, _OPENING_TOKENS):
                depth += 1
                if depth > MAX_DEPTH:
                    raise ParseError(
                        f"YAML is nested more than {MAX_DEPTH} levels deep; "
                        "answer in the flat shape the instructions give"
                    )
            elif isinstance(token, _CLOSING_TOKENS):
                depth -= 1
    except yaml.YAMLError as error:
        if "nesting depth" in str(error):  # libyaml's own depth limit, in newer releases
            raise ParseError(
                "YAML is nested too deeply; answer in the flat shape the instructions give"
            ) from None
        raise ParseError(yaml_error_message(error, text)) from None


def safe_load(text: str, loader: type[Any]) -> object:
    """One YAML document read by `loader`, which must be a safe loader: plain data only,
    never a Python object (what `yaml.safe_load` does, with a loader of the caller's, such
    as libyaml's `CSafeLoader` or one that refuses more). Raises TypeError for any other."""
    safe = issubclass(loader, SafeConstructor) and not issubclass(loader, FullConstructor)
    if not safe:
        raise TypeError(f"{loader.__name__} is not a safe YAML loader")
    reader: Any = loader(text)
    try:
        return reader.get_single_data()
    finally:
        reader.dispose()


def load_yaml(text: str) -> object:
    """One YAML document as plain data, safely (see the module's rules); ParseError else."""
    check_unicode(text)
    text = _NOT_IN_YAML_RE.sub("\ufffd", _OTHER_BREAKS_RE.sub(" ", text))
    _check_tokens(text)
    try:
        return safe_load(text, _AnswerLoader)
    except ParseError:
        raise
    except yaml.YAMLError as error:
        raise ParseError(yaml_error_message(error, text)) from None
    except RecursionError:
        raise ParseError(
            "YAML is nested too deeply; answer in the shape the instructions give"
        ) from None
    except (ValueError, TypeError, ArithmeticError, LookupError, AttributeError) as error:
        # a constructor refusing a value PyYAML's resolver let through
        raise ParseError(f"answer is not valid YAML: a value cannot be read ({error})") from None


def _json_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise _number_too_long(text, " in the JSON")
    return int(text)


def _json_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise _number_too_long(text, " in the JSON")
    return float(text)


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    mapping: dict[str, Any] = {}
    for key, value in pairs:
        if key in mapping:
            raise ParseError(
                f"key {_shown_key(key)} is given twice in one JSON object; give each key once"
            )
        mapping[key] = value
    return mapping


def load_json_object(text: str) -> dict[str, Any] | None:
    """The JSON object that `text` is (whitespace around it aside), or None when it is not
    one. A text that is JSON but breaks a rule (a repeated key, a huge number, nesting
    deeper than `MAX_DEPTH`) is a ParseError, not None: it is read as JSON only."""
    stripped = text.strip()
    if not (stripped.startswith("{") and stripped.endswith("}")):
        return None
    try:
        data = json.loads(
            stripped,
            strict=False,  # control characters raw in strings: kept, dropped from free text later
            object_pairs_hook=_json_object,
            parse_int=_json_int,
            parse_float=_json_float,
        )
    except json.JSONDecodeError:
        return None
    except RecursionError:
        raise ParseError(
            "JSON is nested too deeply; answer in the flat shape the instructions give"
        ) from None
    if not isinstance(data, dict):
        return None
    if stripped.count("{") + stripped.count("[") > MAX_DEPTH:  # else it cannot nest deeper
        check_depth(data)
    return data


def check_depth(data: object) -> None:
    """Raise ParseError when `data` nests lists and mappings deeper than `MAX_DEPTH`."""
    pending: list[tuple[object, int]] = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            children: list[object] = list(value.values())
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > MAX_DEPTH:
            raise ParseError(
                f"answer is nested more than {MAX_DEPTH} levels deep; "
                "answer in the flat shape the instructions give"
            )
        pending.extend((child, depth + 1) for child in children)


def load_document(text: str) -> object:
    """A document as plain data: JSON when it is one JSON object, else YAML."""
    data = load_json_object(text)
    return data if data is not None else load_yaml(text)
