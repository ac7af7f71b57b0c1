"""Reusable blocks: expand a spec's ``blocks:`` section and its ``type: block`` layers into the
flat list of layers that validation sees, keeping where every value was written.

A block is data, not a template: its layers are copied with ``${param}`` references replaced by
values, its layer ids prefixed by the use (``encoder_2/attention``) and its references rewired.
The expanded document keeps the YAML nodes of the block definition, so a mistake inside a block
is placed on the line that wrote it and names the use that instantiated it.
"""

from __future__ import annotations

from archspec.spec.blocks._definitions import BLOCK_FIELDS, PARAM_FIELDS, Block
from archspec.spec.blocks._expansion import MAX_EXPANDED_LAYERS, expand_blocks
from archspec.spec.blocks._locations import BlockProblems, Keys
from archspec.spec.blocks._naming import copy_names, layer_names
from archspec.spec.blocks._parameters import NAME, PARAM_TYPES, Param, check_value
from archspec.spec.blocks._references import REFERENCE, WHOLE_REFERENCE
from archspec.spec.blocks._uses import USE_FIELDS

__all__ = [
    "BLOCK_FIELDS",
    "MAX_EXPANDED_LAYERS",
    "NAME",
    "PARAM_FIELDS",
    "PARAM_TYPES",
    "REFERENCE",
    "USE_FIELDS",
    "WHOLE_REFERENCE",
    "Block",
    "BlockProblems",
    "Keys",
    "Param",
    "check_value",
    "copy_names",
    "expand_blocks",
    "layer_names",
]
