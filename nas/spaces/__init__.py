"""Search spaces: schema, YAML loading and operations."""

from nas.spaces.loader import load_space, shipped_spaces, space_from_dict
from nas.spaces.ops import (
    canonical,
    cardinalities,
    decode,
    encode,
    stage_layer_choices,
)
from nas.spaces.schema import SearchSpace, StageSpec, stage_input_sizes

__all__ = [
    "SearchSpace",
    "StageSpec",
    "canonical",
    "cardinalities",
    "decode",
    "encode",
    "load_space",
    "shipped_spaces",
    "space_from_dict",
    "stage_input_sizes",
    "stage_layer_choices",
]
