"""Turn a pydantic ValidationError into located, actionable Problems.

Each pydantic error becomes one ``FILE:LINE:COL: path: message`` line that names the
field in the user's terms (``layers[3].units``, no discriminator tag) and, where a
name was mistyped, suggests the closest valid one.
"""

from __future__ import annotations

import enum
import re
import types
import typing
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from archspec.errors import Problem
from archspec.spec.common import written
from archspec.spec.source import SourceDocument, dotted, suggest


@dataclass
class _Target:
    """What the walk along an error location found."""

    annotation: Any  # the type expected at the location, or None where the walk got lost
    path: list[str | int]  # the location without discriminator tags
    noun: str  # what the value is called: 'spec', 'layer', 'optimizer', 'training'
    tag: str | None = None  # the discriminator value that chose the current model
    discriminator: str = "type"  # the tag field of the union at the location, if any

    @property
    def dotted(self) -> str:
        return dotted(self.path)

    @property
    def within(self) -> str:
        """`` in dense layer`` or `` in spec``; empty where the path already says it all."""
        if self.tag:
            return f" in {self.tag} {self.noun}"
        return "" if self.path else f" in {self.noun}"


def problems_from_validation_error(
    error: ValidationError, document: SourceDocument, root_model: type[BaseModel]
) -> list[Problem]:
    """One Problem per pydantic error, placed in ``document`` and sorted by position."""
    problems = [_problem(details, document, root_model) for details in error.errors()]
    return sorted(problems, key=lambda p: (p.line or 0, p.column or 0))


def _problem(details: Any, document: SourceDocument, root_model: type[BaseModel]) -> Problem:
    loc = tuple(details["loc"])
    kind = details["type"]
    ctx = details.get("ctx") or {}
    if kind in ("extra_forbidden", "missing") and loc:
        owner = _walk(root_model, loc[:-1])
        name = loc[-1]
        if kind == "missing":
            message = f"missing required field {_quote(name)}{owner.within}"
            return _at(document, loc, owner.path, message)
        allowed = _field_names(owner.annotation)
        message = f"unknown field {_quote(name)}{owner.within}"
        if allowed:
            message += "; " + (suggest(str(name), allowed) or f"allowed fields: {_quoted(allowed)}")
        return _at(document, loc, owner.path, message, key=True)

    target = _walk(root_model, loc)
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        discriminator = str(ctx.get("discriminator", target.discriminator)).strip("'\"")
        if "|" in target.discriminator:  # a union tagged by one of several keys
            keys = target.discriminator.split("|")
            given = details.get("input")
            present = [key for key in keys if isinstance(given, Mapping) and key in given]
            discriminator = present[0] if present else " or ".join(map(_quote, keys)).strip("'")
        tags = list(_variants(target.annotation, target.discriminator))
        tags = tags or _quoted_values(ctx.get("expected_tags", ""))
        if kind == "union_tag_not_found":
            message = f"missing '{discriminator}' in {target.noun}; expected one of {_quoted(tags)}"
            return _at(document, loc, target.path, message)
        tag = ctx.get("tag", "")
        hint = suggest(tag, tags) or f"expected one of {_quoted(tags)}"
        message = f"unknown {target.noun} {discriminator} {_quote(tag)}; {hint}"
        return _at(document, (*loc, discriminator), target.path, message)

    if kind in ("literal_error", "enum"):
        options = _choices(target.annotation) or _quoted_values(ctx.get("expected", ""))
        message = f"expected one of {_quoted(options)}, received {_show(details.get('input'))}"
        suggestion = suggest(str(details.get("input")), options)
        return _at(document, loc, target.path, f"{message}; {suggestion}" if suggestion else message)
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return _at(document, loc, target.path, str(ctx["error"]))  # the validator's own words
    return _at(document, loc, target.path, _mismatch(kind, details, target))


def _at(document: SourceDocument, loc: tuple, path: list[str | int], message: str, *, key: bool = False) -> Problem:
    return document.problem(message, loc, key=key, path=path)


def _mismatch(kind: str, details: Any, target: _Target) -> str:
    """``expected ..., received ...`` in plain words, from pydantic's message where possible."""
    ctx = details.get("ctx") or {}
    number = "integer" if target.annotation is int else "number"
    message = str(details["msg"])
    if kind == "greater_than" and ctx.get("gt") == 0:
        expected = f"a positive {number}"
    elif kind == "greater_than_equal" and ctx.get("ge") == 0:
        expected = f"a non-negative {number}"
    elif kind in ("dict_type", "model_type", "model_attributes_type"):
        expected = "a mapping"
    elif message.startswith("Input should be "):
        # pydantic adds why after a comma ("a valid integer, unable to parse string ...")
        expected = message.removeprefix("Input should be ").split(", ")[0]
    else:
        return message[:1].lower() + message[1:]
    return f"expected {expected}, received {_show(details.get('input'))}"


def _walk(root_model: type[BaseModel], loc: tuple) -> _Target:
    """Follow ``loc`` through the type annotations of ``root_model``."""
    target = _Target(root_model, [], root_model.__name__.lower())
    for part in loc:
        annotation, discriminator = _strip(target.annotation)
        target.annotation, target.discriminator = annotation, discriminator
        origin = typing.get_origin(annotation)
        is_model = _is_model(annotation)
        if is_model and _field(annotation, part) is None and part in _variants(annotation, discriminator):
            target.tag = str(part)  # the tag of a one-variant discriminated union
        elif is_model:
            target.annotation = _field(annotation, part)
            target.noun, target.tag = str(part).replace("_", " "), None
            target.path.append(part)
        elif origin in (typing.Union, types.UnionType):
            variants = _variants(annotation, discriminator)
            by_name = {arg.__name__: arg for arg in typing.get_args(annotation) if isinstance(arg, type)}
            # a discriminator tag, a model's name, or pydantic's label for a plain union member
            target.annotation = variants.get(part, by_name.get(part))
            if part in variants:
                target.tag = str(part)
        elif isinstance(origin, type) and issubclass(origin, Mapping):
            target.annotation = (typing.get_args(annotation) or (Any, Any))[-1]
            target.noun = _singular(target.noun)
            target.path.append(part)
        elif isinstance(origin, type) and issubclass(origin, (Sequence, Set)) and isinstance(part, int):
            target.annotation = (typing.get_args(annotation) or (Any,))[0]
            target.noun = _singular(target.noun)
            target.path.append(part)
        else:
            target.annotation = None
            target.path.append(part)
    annotation, discriminator = _strip(target.annotation)
    target.annotation, target.discriminator = annotation, discriminator
    return target


def _strip(annotation: Any) -> tuple[Any, str]:
    """Remove ``Annotated[...]`` and ``| None``; return the type and its discriminator field."""
    discriminator = "type"
    while True:
        if typing.get_origin(annotation) is typing.Annotated:
            for meta in annotation.__metadata__:
                if isinstance(getattr(meta, "discriminator", None), str):
                    discriminator = meta.discriminator
                elif isinstance(getattr(getattr(meta, "discriminator", None), "fields", None), tuple):
                    discriminator = "|".join(meta.discriminator.fields)  # a callable over several keys
            annotation = annotation.__origin__
        elif typing.get_origin(annotation) in (typing.Union, types.UnionType):
            members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if len(members) != 1:
                return annotation, discriminator
            annotation = members[0]
        else:
            return annotation, discriminator


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _field(model: type[BaseModel], name: Any) -> Any:
    """The annotation of ``model``'s field called ``name`` (or aliased so), else None."""
    for field_name, info in model.model_fields.items():
        if name in (field_name, info.alias, info.validation_alias):
            if isinstance(info.discriminator, str):
                return typing.Annotated[info.annotation, info]
            return info.annotation
    return None


def _field_names(annotation: Any) -> list[str]:
    annotation = _strip(annotation)[0]
    if not _is_model(annotation):
        return []
    return [info.alias or name for name, info in annotation.model_fields.items()]


def _variants(annotation: Any, discriminator: str) -> dict[str, type[BaseModel]]:
    """Tag value -> model, for each member of a union that has a Literal ``discriminator`` field."""
    variants: dict[str, type[BaseModel]] = {}
    annotation = _strip(annotation)[0]
    for member in typing.get_args(annotation) or (annotation,):
        if typing.get_origin(member) is typing.Annotated:
            tags = [meta.tag for meta in member.__metadata__ if isinstance(getattr(meta, "tag", None), str)]
            if tags and _is_model(member.__origin__):
                variants[tags[0]] = member.__origin__
                continue
        if _is_model(member) and discriminator in member.model_fields:
            for tag in _choices(member.model_fields[discriminator].annotation):
                variants[tag] = member
    return variants


def _choices(annotation: Any) -> list[str]:
    """The allowed values of a Literal or Enum annotation, as text."""
    annotation = _strip(annotation)[0]
    if typing.get_origin(annotation) is Literal:
        return [str(getattr(value, "value", value)) for value in typing.get_args(annotation)]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return [str(member.value) for member in annotation]
    return []


def _quoted_values(text: str) -> list[str]:
    """Values pydantic quoted in a message ("'relu' or 'tanh'")."""
    return re.findall(r"'([^']*)'", str(text))


def _quoted(values: list[str]) -> str:
    return ", ".join(_quote(value) for value in values)


def _quote(value) -> str:
    """A user-supplied name in quotes, control characters escaped so a message stays one line."""
    text = str(value).encode("unicode_escape").decode("ascii")
    return f"'{text}'"


def _singular(noun: str) -> str:
    return noun[:-1] if noun.endswith("s") and not noun.endswith("ss") else noun


def _show(value: Any) -> str:
    """A received value as the user wrote it in YAML, kept short."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    text = written(value)
    return text if len(text) <= 40 else text[:37] + "..."
