"""The JSON Schema of the spec format as users write it: the validated spec (``Spec``) plus
the ``blocks:`` section and ``type: block`` layers, which expansion removes before validation.

The block models here only describe the syntax to editors; ``archspec.spec.blocks`` checks it
(``tests/spec/test_blocks.py`` holds the two to the same field names).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field
from pydantic.json_schema import models_json_schema

from archspec.spec.common import StrictModel
from archspec.spec.document import Spec


class BlockParam(StrictModel):
    """A block parameter: its type and, unless it is required, its default."""

    type: Literal["int", "float", "str", "bool", "list"]
    default: Any = None


class BlockDefinition(StrictModel):
    """A named sub-graph. ``layers`` are written like the spec's own and may refer to parameters
    as ``"${name}"``; ``inputs`` names the block's inputs; ``output`` is the id of the layer it
    returns (default: the last)."""

    params: dict[str, BlockParam | Literal["int", "float", "str", "bool", "list"]] = Field(default_factory=dict)
    inputs: list[str] = Field(default_factory=lambda: ["input"], min_length=1)
    layers: list[dict[str, Any]] = Field(min_length=1)
    output: str | None = None


class BlockUse(StrictModel):
    """A layer that copies a block ``repeat`` times, chained, with parameter values ``with``."""

    type: Literal["block"]
    block: str
    id: str | None = None
    inputs: list[str] | None = Field(None, min_length=1)
    repeat: int = Field(1, ge=1)
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")


def spec_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a spec file."""
    schema = Spec.model_json_schema()
    _, extra = models_json_schema(
        [(BlockUse, "validation"), (BlockDefinition, "validation")], ref_template="#/$defs/{model}"
    )
    schema.setdefault("$defs", {}).update(extra["$defs"])
    items = schema["properties"]["layers"]["items"]
    items["discriminator"]["mapping"]["block"] = "#/$defs/BlockUse"
    items["oneOf"].append({"$ref": "#/$defs/BlockUse"})
    schema["properties"]["blocks"] = {
        "type": "object",
        "title": "Blocks",
        "description": "Named, parameterized sub-graphs, used by layers of type 'block' (docs/blocks.md).",
        "additionalProperties": {"$ref": "#/$defs/BlockDefinition"},
    }
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema.setdefault("title", "archspec spec")
    return schema
