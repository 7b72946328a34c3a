"""Export to state_dict / torch.export / TorchScript / ONNX, standalone loading, model cards."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from torch import nn

from nas.errors import UserError
from nas.export import (
    ExportError,
    StandaloneCheckError,
    export_model,
    parse_formats,
    verify_standalone,
    write_model_card,
)
from nas.export.benchmark import randomize_
from nas.export.formats import sha256_file
from nas.export.model_card import MEASURED_FIELDS, TEST_POLICY, build_card

torch.set_num_threads(1)


# ---------------------------------------------------------------------------------------------
# A model with every construct our extracted subnets use.


class ConvBNAct(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, k: int, s: int = 1, groups: int = 1,
                 act: type[nn.Module] = nn.ReLU) -> None:
        super().__init__(nn.Conv2d(c_in, c_out, k, s, k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(c_out), act())


class SqueezeExcite(nn.Module):
    def __init__(self, c: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, hidden, 1), nn.Conv2d(hidden, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))


class MBConv(nn.Module):
    def __init__(self, c: int, expand: int, k: int) -> None:
        super().__init__()
        h = c * expand
        self.expand = ConvBNAct(c, h, 1, act=nn.Hardswish)
        self.dw = ConvBNAct(h, h, k, groups=h, act=nn.Hardswish)  # depthwise
        self.se = SqueezeExcite(h, max(1, h // 4))
        self.project = nn.Sequential(nn.Conv2d(h, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.project(self.se(self.dw(self.expand(x))))


class Attention(nn.Module):
    """Pre-norm multi-head self-attention over the H*W tokens, then an MLP; both residual."""

    def __init__(self, c: int, heads: int, head_dim: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.norm1, self.qkv = nn.LayerNorm(c), nn.Linear(c, 3 * heads * head_dim)
        self.proj = nn.Linear(heads * head_dim, c)
        self.norm2 = nn.LayerNorm(c)
        self.mlp = nn.Sequential(nn.Linear(c, 2 * c), nn.GELU(), nn.Linear(2 * c, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        t = x.reshape(b, c, h * w).permute(0, 2, 1)  # (B, T, C)
        qkv = self.qkv(self.norm1(t)).reshape(b, h * w, 3, self.heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, nh, T, hd)
        a = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * self.head_dim**-0.5, dim=-1)
        t = t + self.proj(torch.matmul(a, v).transpose(1, 2).reshape(b, h * w, -1))
        t = t + self.mlp(self.norm2(t))
        return t.permute(0, 2, 1).reshape(b, c, h, w)


class WindowMixer(nn.Module):
    """Token-mixing MLP inside w x w windows (zero-padded to fit), then a channel MLP."""

    def __init__(self, c: int, window: int) -> None:
        super().__init__()
        self.window, tokens = window, window * window
        self.norm1 = nn.LayerNorm(c)
        self.tok = nn.Sequential(nn.Linear(tokens, 2 * tokens), nn.GELU(), nn.Linear(2 * tokens, tokens))
        self.norm2 = nn.LayerNorm(c)
        self.ch = nn.Sequential(nn.Linear(c, 2 * c), nn.GELU(), nn.Linear(2 * c, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.permute(0, 2, 3, 1)  # (B, H, W, C)
        b, h, w, c = t.shape
        win = self.window
        ph, pw = -(-h // win) * win, -(-w // win) * win
        y = self.norm1(t)
        if ph != h or pw != w:
            y = nn.functional.pad(y, (0, 0, 0, pw - w, 0, ph - h))
        nh, nw = ph // win, pw // win
        z = y.reshape(b, nh, win, nw, win, c).permute(0, 1, 3, 5, 2, 4)
        z = self.tok(z.reshape(b, nh, nw, c, win * win))
        z = z.reshape(b, nh, nw, c, win, win).permute(0, 1, 4, 2, 5, 3).reshape(b, ph, pw, c)
        t = t + z[:, :h, :w, :]
        t = t + self.ch(self.norm2(t))
        return t.permute(0, 3, 1, 2)


class MimicNet(nn.Module):
    def __init__(self, c_in: int = 3, c: int = 8, classes: int = 10, window: int = 4) -> None:
        super().__init__()
        self.stem = ConvBNAct(c_in, c, 3)
        self.blocks = nn.Sequential(
            MBConv(c, 2, 5), ConvBNAct(c, 2 * c, 3, 2), Attention(2 * c, 2, 8),
            WindowMixer(2 * c, window),  # 6 x 6 tokens; window 4 exercises the padding path
        )
        self.head = nn.Linear(2 * c, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))


def make_model(seed: int = 0, window: int = 4) -> MimicNet:
    torch.manual_seed(seed)
    model = MimicNet(window=window)
    for m in model.modules():  # non-trivial BN statistics, so eval mode matters
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model.train()  # export must switch to eval itself


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = make_model()
    x = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    out = tmp_path_factory.mktemp("export")
    paths = export_model(model, x, out, name="mimic")
    return model, x, out, paths


# ---------------------------------------------------------------------------------------------


def test_export_writes_every_format_and_a_manifest(exported):
    model, _, out, paths = exported
    assert set(paths) == {"state_dict", "pt2", "torchscript", "onnx", "example", "manifest"}
    assert model.training, "the caller's model must not be switched to eval"
    manifest = json.loads(paths["manifest"].read_text())
    expected = np.load(paths["example"])["output"]
    assert np.abs(expected).max() > 0.1, "outputs of order 1, so that 1e-4 differences mean something"
    assert manifest["input"]["shape"] == [2, 3, 12, 12]
    assert manifest["versions"]["torch"] == torch.__version__
    for kind, entry in manifest["files"].items():
        assert entry["sha256"] == sha256_file(out / entry["path"]), kind
    assert manifest["onnx"]["opset"] >= 17
    assert manifest["onnx"]["exporter"] in {"dynamo", "legacy"}
    assert manifest["onnx"]["dynamic_batch"] is True
    for kind in ("state_dict", "pt2", "torchscript", "onnx"):
        assert manifest["checks"][kind]["max_abs_diff"] <= 1e-4, kind
    assert set(manifest["standalone"]["max_abs_diff"]) == {"pt2", "torchscript", "onnx"}
    assert not any(p.name.startswith(".") for p in out.iterdir()), "staging folder left behind"


def test_state_dict_loads_weights_only_and_reproduces(exported):
    model, x, _, paths = exported
    fresh = make_model(seed=123).eval()
    fresh.load_state_dict(torch.load(paths["state_dict"], weights_only=True))
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), model.eval()(x))
    model.train()


def test_exported_files_run_at_other_batch_sizes(exported):
    import onnxruntime as ort

    model, _, _, paths = exported
    x5 = torch.randn(5, 3, 12, 12)
    with torch.no_grad():
        ref = model.eval()(x5)
        model.train()
        pt2 = torch.export.load(paths["pt2"]).module()(x5)
        ts = torch.jit.load(str(paths["torchscript"]))(x5)
    sess = ort.InferenceSession(str(paths["onnx"]), providers=["CPUExecutionProvider"])
    onnx_out = sess.run(None, {"input": x5.numpy()})[0]
    assert (pt2 - ref).abs().max() <= 1e-4
    assert (ts - ref).abs().max() <= 1e-4
    assert np.abs(onnx_out - ref.numpy()).max() <= 1e-4


def test_standalone_subprocess_cannot_import_nas_and_reproduces(exported):
    """export_model ran the standalone check on all three files; run it again directly on the
    ONNX file (quick: no torch import in the child), with a right and a wrong expected output."""
    model, x, _, paths = exported
    manifest = json.loads(paths["manifest"].read_text())
    assert max(manifest["standalone"]["max_abs_diff"].values()) <= 1e-4
    with torch.no_grad():
        y = model.eval()(x)
    model.train()
    assert verify_standalone({"onnx": paths["onnx"]}, x, y)["onnx"] <= 1e-4
    with pytest.raises(StandaloneCheckError, match="differ"):
        verify_standalone({"onnx": paths["onnx"]}, x, y + 1.0)


def test_standalone_check_really_hides_the_package(tmp_path):
    """The child's sys.path filter works: a script importing nas fails under the same rules."""
    import subprocess

    from nas.export.verify import package_roots

    roots = package_roots()
    assert roots, "the package should be found through a folder on sys.path (editable install)"
    code = ("import os, sys; roots = set(sys.argv[1:]); "
            "sys.path[:] = [p for p in sys.path if p and os.path.realpath(p) not in roots]; "
            "import onnxruntime; import nas")
    proc = subprocess.run([sys.executable, "-I", "-c", code, *roots], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "No module named 'nas'" in proc.stderr


def test_example_npz_is_plain_data(exported):
    model, x, _, paths = exported
    data = np.load(paths["example"], allow_pickle=False)
    np.testing.assert_array_equal(data["input"], x.numpy())
    with torch.no_grad():
        np.testing.assert_allclose(data["output"], model.eval()(x).numpy(), atol=1e-6)
    model.train()


def test_legacy_onnx_exporter_and_batch_one(tmp_path):
    """The fallback exporter works where windows tile the map, and a batch-1 example still gives a
    dynamic batch (the export traces with batch 2 to avoid specialising it)."""
    model = make_model(seed=2, window=3)  # 6 x 6 tokens in 3 x 3 windows: no padding
    x = torch.randn(1, 3, 12, 12)
    paths = export_model(model, x, tmp_path, formats="onnx", onnx_exporter="legacy",
                         standalone_check=False)
    manifest = json.loads(paths["manifest"].read_text())
    assert manifest["onnx"]["exporter"] == "legacy"
    assert manifest["onnx"]["dynamic_batch"] is True
    assert manifest["checks"]["onnx"]["batch_sizes"] == [1, 2]
    assert set(paths) == {"onnx", "example", "manifest"}


def test_legacy_onnx_exporter_bug_is_caught(tmp_path):
    """The legacy exporter turns the ceil idiom ``-(-h // w)`` on traced sizes into a truncating
    division, so the padded windowed mixer gets wrong shapes: verification must refuse the file."""
    with pytest.raises(ExportError, match="legacy"):
        export_model(make_model(seed=2, window=4), torch.randn(2, 3, 12, 12), tmp_path,
                     formats="onnx", onnx_exporter="legacy", standalone_check=False)
    assert list(tmp_path.iterdir()) == []


def test_mismatch_raises_and_leaves_out_dir_untouched(tmp_path):
    class Noisy(nn.Module):
        """Different output on every call: no exported file can reproduce it."""

        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x) + torch.rand(x.shape[0], 2)

    with pytest.raises(ExportError, match="differs"):
        export_model(Noisy(), torch.randn(2, 4), tmp_path, formats="pt", standalone_check=False)
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="unknown export format"):
        parse_formats("pt,tflite")
    assert parse_formats("onnx, pt,onnx") == ("onnx", "pt")
    with pytest.raises(UserError, match="batch"):
        export_model(nn.Linear(2, 2), torch.randn(()), tmp_path)
    with pytest.raises(UserError, match="opset"):
        export_model(nn.Linear(2, 2), torch.randn(2, 2), tmp_path, opset=13)
    with pytest.raises(UserError, match="name"):
        export_model(nn.Linear(2, 2), torch.randn(2, 2), tmp_path, name="../x")


def test_supernet_extracted_subnet_exports(tmp_path):
    """A real extracted subnet of the shipped tiny space (every block kind) exports and verifies."""
    supernet_mod = pytest.importorskip("nas.supernet")
    spaces = pytest.importorskip("nas.spaces")
    space = spaces.load_space("hybrid-tiny")
    net = supernet_mod.Supernet(space).eval()
    rng = np.random.default_rng(0)
    kinds: set[str] = set()
    for _ in range(200):  # find a subnet with attention and mixer layers
        arch = space.sample(rng)
        kinds = {layer.kind for stage in arch.stages for layer in stage.layers}
        if {"attn", "mixer"} <= kinds:
            break
    assert {"attn", "mixer"} <= kinds
    model = randomize_(net.extract(arch))  # untrained outputs are ~1e-8: diffs would mean nothing
    x = torch.randn(2, space.in_channels, arch.resolution, arch.resolution)
    with torch.no_grad():
        assert model(x).abs().max() > 0.1
    paths = export_model(model, x, tmp_path, formats="pt,onnx", standalone_check=False)
    manifest = json.loads(paths["manifest"].read_text())
    assert manifest["checks"]["onnx"]["max_abs_diff"] <= 1e-4
    assert manifest["checks"]["pt2"]["max_abs_diff"] <= 1e-4


# ---------------------------------------------------------------------------------------------
# Model card


def test_model_card_shows_gaps_with_reasons_and_hashes(exported, tmp_path):
    _, _, out, _ = exported
    card = {
        "name": "mimic",
        "architecture": {"string": "r12 | w8: ir_k5_e2_se | w16: at_h2 mx_w4",
                         "json": {"resolution": 12}, "search_space": "test"},
        "costs": {"flops": 2_345_678, "params": 12_345},
        "latency": {"predicted_ms": 1.25, "predicted_source": "table cpu-test"},
        "accuracy": {"validation": 0.9125, "dataset": "digits"},
        "not_measured": {"latency.measured_ms": "no device was given to `nas export`"},
    }
    md_path, json_path = write_model_card(out, card)
    data = json.loads(json_path.read_text())
    md = md_path.read_text()
    assert data["not_measured"]["latency.measured_ms"] == "no device was given to `nas export`"
    assert "costs.peak_memory_bytes" in data["not_measured"]
    assert "accuracy.test" in data["not_measured"]
    assert "not measured (no device was given to `nas export`)" in md
    assert data["accuracy"]["test_policy"] == TEST_POLICY and TEST_POLICY in md
    assert data["input_shape"] == [2, 3, 12, 12]  # taken from manifest.json
    for entry in data["files"].values():
        assert entry["sha256"] == sha256_file(out / entry["path"])
        assert entry["sha256"] in md
    for snippet in ("torch.jit.load", "torch.export.load", "ort.InferenceSession",
                    "weights_only=True"):
        assert snippet in md
    assert "2.346 M" in md and "0.9125 (91.25 %)" in md


def test_model_card_snippets_run_without_nas(exported, tmp_path):
    """The ONNX and TorchScript snippets printed in the card work as written."""
    import subprocess

    _, _, out, _ = exported
    md, _ = write_model_card(out, {"name": "mimic"})
    text = md.read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    code = "\n".join(b for b in blocks if "jit.load" in b or "InferenceSession" in b)
    assert "jit.load" in code and "InferenceSession" in code
    proc = subprocess.run([sys.executable, "-I", "-c", code], cwd=out, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_model_card_rejects_unknown_keys_and_nan(tmp_path):
    with pytest.raises(UserError, match="unknown keys"):
        build_card(tmp_path, {"name": "x", "latency": {"mesured_ms": 3.0}})
    with pytest.raises(UserError, match="finite"):
        build_card(tmp_path, {"name": "x", "latency": {"measured_ms": float("nan")}})
    with pytest.raises(UserError, match="name"):
        build_card(tmp_path, {})
    data = build_card(tmp_path, {"name": "x"})
    assert set(data["not_measured"]) == set(MEASURED_FIELDS)
    assert data["files"] == {}
