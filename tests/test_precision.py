"""Precision genes: string, JSON and genome round trips, the space's allowed precisions, exact
``size_bytes`` (genome tables against the per-architecture rule, and the rule's INT8 part against
the QDQ file ONNX Runtime writes), latency-table keys per precision."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.arch import Architecture
from nas.costs import costs, quantized_weights, size_bytes
from nas.errors import SpaceError
from nas.precision import FP32, INT8, WEIGHT_BYTES
from nas.spaces import canonical, cardinalities, decode, encode, load_space, space_from_dict
from nas.spaces.cells import size_rule
from nas.spaces.tables import GenomeTables
from nas.units import arch_keys, arch_units, precision_units

TINY = load_space("hybrid-tiny")
MIXED = TINY.with_precisions("fp32,int8")


@given(seed=st.integers(0, 2**32 - 1))
@settings(max_examples=40, deadline=None)
def test_round_trips_with_precision_genes(seed):
    rng = np.random.default_rng(seed)
    arch = MIXED.sample(rng)
    assert Architecture.from_str(arch.to_str()) == arch
    assert Architecture.from_json(arch.to_json()) == arch
    assert decode(MIXED, encode(MIXED, arch)) == arch
    child = MIXED.mutate(arch, rng)
    assert MIXED.contains(child) and decode(MIXED, encode(MIXED, child)) == child
    assert MIXED.contains(MIXED.crossover(arch, child, rng))
    assert arch.at_precision(FP32).to_str() == arch.to_str().replace("@int8", "").replace(
        " stem", "").replace(" head", "")


def test_fp32_only_spaces_keep_strings_json_genomes_and_hash():
    text = "r16 | w8: ir_k3_e1 | w16: at_h1_m2 mx_t1_c2"
    arch = Architecture.from_str(text)
    assert arch.to_str() == text
    assert "precision" not in arch.to_json()
    assert len(cardinalities(TINY)) == len(cardinalities(MIXED)) - (2 + 2 + 2)
    assert TINY.hash() == MIXED.hash()  # quantization shares the weights
    # the precision genes are drawn after the architecture's
    assert TINY.sample(np.random.default_rng(3)) == MIXED.sample(
        np.random.default_rng(3)).at_precision(FP32)


def test_suffixes_parse_and_bad_precisions_are_named():
    arch = Architecture.from_str("r16 stem@int8 | w8: ir_k3_e1@int8 | w16: at_h1_m2 mx_t1_c2@int8")
    assert arch.stem_precision == INT8 and arch.head_precision == FP32
    assert arch.stages[0].precisions == (INT8,) and arch.stages[1].precisions == (FP32, INT8)
    with pytest.raises(SpaceError, match="precision 'int8' not allowed in hybrid-tiny"):
        TINY.validate(arch)
    with pytest.raises(SpaceError, match="unknown precision 'fp16'"):
        Architecture.from_str("r16 | w8: ir_k3_e1@fp16 | w16: at_h1_m2")
    with pytest.raises(SpaceError, match="stem@<precision>"):
        Architecture.from_str("r16 tail@int8 | w8: ir_k3_e1 | w16: at_h1_m2")


def test_space_yaml_precisions():
    from nas.train.rundir import space_to_dict

    data = space_to_dict(MIXED)
    assert data["precisions"] == ["fp32", "int8"]
    assert space_from_dict(data) == MIXED
    assert "precisions" not in space_to_dict(TINY)
    for bad in (["fp16"], ["int8"], []):
        with pytest.raises(SpaceError, match="precisions"):
            space_from_dict({**data, "precisions": bad})


def test_space_size_counts_precision_genes():
    """The count agrees with enumerating every canonical genome of a small mixed space."""
    small = space_from_dict({
        "name": "small", "in_channels": 1, "num_classes": 3, "resolutions": [8],
        "stem": {"width": 4}, "head": {"width": 8}, "precisions": ["fp32", "int8"],
        "stages": [{"widths": [4], "depths": [1, 2], "stride": 2,
                    "blocks": {"conv": {"kernels": [3], "expands": [1, 2]}}}]})
    card = cardinalities(small)
    genomes = np.array(list(itertools.product(*(range(c) for c in card))))
    assert len({tuple(g) for g in canonical(small, genomes)}) == small.size()


@given(seed=st.integers(0, 2**32 - 1))
@settings(max_examples=20, deadline=None)
def test_genome_tables_size_bytes_equals_the_rule(seed):
    rng = np.random.default_rng(seed)
    archs = [MIXED.sample(rng) for _ in range(20)]
    tables = GenomeTables(MIXED, {"size_bytes": size_rule()})
    got = tables.costs(np.stack([encode(MIXED, a) for a in archs]))["size_bytes"]
    want = [size_bytes(MIXED, a) for a in archs]
    assert got.tolist() == want == [costs(MIXED, a).size_bytes for a in archs]
    for a in archs:
        fp32 = a.at_precision(FP32)
        assert size_bytes(MIXED, fp32) == WEIGHT_BYTES[FP32] * costs(MIXED, fp32).params
        assert size_bytes(MIXED, a.at_precision(INT8)) < size_bytes(MIXED, fp32)
        assert costs(MIXED, a).macs == costs(MIXED, fp32).macs  # precision changes no MACs


def test_latency_keys_carry_the_precision():
    arch = Architecture.from_str("r16 head@int8 | w8: ir_k3_e1@int8 | w16: at_h1_m2 mx_t1_c2")
    keys = arch_keys(MIXED, arch)
    plain = [u.key for u in arch_units(MIXED, arch)]
    precisions = [p for _, p in precision_units(MIXED, arch)]
    assert keys[:len(plain)] == [k if p == FP32 else f"{k}@int8" for k, p in zip(plain, precisions)]
    # then the boundaries (r16, stride-1 stem, two stride-2 stages): into the int8 first layer,
    # out of it, into the int8 head, the logits
    assert keys[len(plain):] == ["quant:c8:h16", "dequant:c8:h8", "quant:c16:h4", "dequant:c10:h1"]
    assert precisions[-1] == INT8 and precisions[1] == INT8 and precisions[2] == FP32


@pytest.mark.parametrize("seed", [0, 1])
def test_size_rule_counts_the_int8_weights_and_scales_of_the_qdq_file(tmp_path, seed):
    """The INT8 part of ``size_bytes`` (weights at 1 byte, one float32 scale per output channel)
    equals the int8 weight tensors and their scales in the file ``quantize_static`` writes."""
    import onnx
    import torch
    from onnx import numpy_helper

    from nas.quantize import quantize_subnet
    from nas.supernet import Supernet

    torch.manual_seed(seed)
    arch = MIXED.sample(np.random.default_rng(seed + 10))
    model = Supernet(TINY).eval().extract(arch.at_precision(FP32))
    calibration = [torch.randn(4, 3, arch.resolution, arch.resolution) for _ in range(2)]
    path = quantize_subnet(model, MIXED, arch, calibration, tmp_path / "q.onnx")
    graph = onnx.load(str(path)).graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    elements = channels = 0
    for node in graph.node:
        weight = inits.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if weight is not None and weight.dtype == np.int8 and weight.ndim >= 2:
            elements += weight.size
            channels += inits[node.input[1]].size
    want = [quantized_weights(u) for u, p in precision_units(MIXED, arch) if p == INT8]
    assert (elements, channels) == (sum(e for e, _ in want), sum(c for _, c in want))
    assert elements > 0
