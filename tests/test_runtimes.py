"""The runtime plugin table and the built-in runtimes, on the real Silero VAD files."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runanywhere import plugins, runtimes
from runanywhere.errors import ModelError, RuntimeUnavailableError
from runanywhere.runtimes import (
    Runtime,
    UnknownRuntimeError,
    available_runtimes,
    default_runtime_for,
    get_runtime,
)
from runanywhere.runtimes.onnx import OnnxRuntime
from runanywhere.runtimes.safetensors_rt import SafetensorsRuntime
from runanywhere.runtimes.tflite import TFLiteRuntime
from runanywhere.runtimes.torchscript import TorchScriptRuntime
from support.silero_wheel import silero_data_dir


@pytest.fixture(scope="session")
def silero_data() -> Path:
    return silero_data_dir()


# -- ONNX ------------------------------------------------------------------------------------------


def test_onnx_loads_real_silero_model(silero_data: Path) -> None:
    rt = get_runtime("onnx")
    assert isinstance(rt, OnnxRuntime) and isinstance(rt, Runtime)
    assert (rt.name, rt.extra) == ("onnx", "onnx")
    session = rt.load(silero_data / "silero_vad.onnx", None)
    assert [i.name for i in session.get_inputs()] == ["input", "state", "sr"]
    assert [o.name for o in session.get_outputs()] == ["output", "stateN"]
    assert session.get_providers() == ["CPUExecutionProvider"]
    out, state = session.run(None, {
        "input": np.zeros((1, 576), np.float32),
        "state": np.zeros((2, 1, 128), np.float32),
        "sr": np.array(16000, np.int64),
    })
    assert out.shape == (1, 1) and 0.0 <= float(out[0, 0]) < 0.5  # silence
    assert state.shape == (2, 1, 128)


def test_onnx_session_options_dict_and_object(silero_data: Path) -> None:
    import onnxruntime as ort

    model = silero_data / "silero_vad.onnx"
    s1 = OnnxRuntime().load(model, None, session_options={
        "intra_op_num_threads": 1, "graph_optimization_level": "ORT_ENABLE_BASIC"})
    assert s1.get_inputs()[0].name == "input"
    so = ort.SessionOptions()
    so.inter_op_num_threads = 1
    s2 = OnnxRuntime().load(model, None, session_options=so, providers=["CPUExecutionProvider"])
    assert s2.get_outputs()[0].name == "output"
    with pytest.raises(ModelError, match="no attribute 'intra_threads'"):
        OnnxRuntime().load(model, None, session_options={"intra_threads": 1})
    with pytest.raises(ModelError, match=r"unknown option.*provider"):
        OnnxRuntime().load(model, None, provider=["CPUExecutionProvider"])


def test_onnx_folder_needs_a_single_file_or_file_option(silero_data: Path, tmp_path: Path
                                                        ) -> None:
    rt = OnnxRuntime()
    with pytest.raises(ModelError, match=r"several .*silero_vad_half\.onnx.*file="):
        rt.load(silero_data, None)
    session = rt.load(silero_data, None, file="silero_vad_16k_op15.onnx")
    assert "input" in [i.name for i in session.get_inputs()]
    with pytest.raises(ModelError, match="outside the model folder"):
        rt.load(silero_data, None, file="../../silero_vad-6.2.3.dist-info/METADATA")
    with pytest.raises(ModelError, match="no file"):
        rt.load(silero_data, None, file="nope.onnx")
    # A folder with exactly one .onnx (in a sub-folder) loads it without file=.
    (tmp_path / "m" / "sub").mkdir(parents=True)
    (tmp_path / "m" / "sub" / "model.onnx").write_bytes((silero_data / "silero_vad.onnx")
                                                        .read_bytes())
    (tmp_path / "m" / "README.md").write_text("hi")
    assert rt.load(tmp_path / "m", None).get_inputs()[1].name == "state"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"no \.onnx/\.ort file"):
        rt.load(tmp_path / "empty", None)
    with pytest.raises(ModelError, match="does not exist"):
        rt.load(tmp_path / "missing.onnx", None)


def test_onnx_garbage_file_raises_the_runtime_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf")
    with pytest.raises(Exception) as info:
        OnnxRuntime().load(bad, None)
    assert not isinstance(info.value, RuntimeUnavailableError)


# -- safetensors, TorchScript, TFLite --------------------------------------------------------------


def test_safetensors_variant_returns_numpy_arrays(silero_data: Path) -> None:
    rt = get_runtime("safetensors")
    assert isinstance(rt, SafetensorsRuntime)
    tensors = rt.load(silero_data / "silero_vad_16k.safetensors", None)
    assert len(tensors) == 15
    assert all(isinstance(v, np.ndarray) for v in tensors.values())
    assert tensors["conv1.weight"].shape == (128, 129, 3)
    assert tensors["stft_conv.weight"].shape == (258, 1, 256)
    assert np.isfinite(tensors["conv1.weight"]).all() and tensors["conv1.weight"].std() > 0
    # The folder holds one .safetensors, so the folder loads too.
    assert set(rt.load(silero_data, None)) == set(tensors)


def test_safetensors_shards_merge(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    save_file({"a": np.ones(3, np.float32)}, str(tmp_path / "model-00001-of-00002.safetensors"))
    save_file({"b": np.zeros((2, 2), np.int64)},
              str(tmp_path / "model-00002-of-00002.safetensors"))
    tensors = SafetensorsRuntime().load(tmp_path, None)
    assert sorted(tensors) == ["a", "b"] and tensors["b"].dtype == np.int64
    save_file({"a": np.ones(1, np.float32)}, str(tmp_path / "model-00002-of-00002.safetensors"))
    with pytest.raises(ModelError, match="appears in two shards"):
        SafetensorsRuntime().load(tmp_path, None)


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="torch is installed")
def test_torchscript_without_torch_names_the_extra(silero_data: Path) -> None:
    with pytest.raises(RuntimeUnavailableError, match=r"pip install 'runanywhere\[torch\]'"):
        get_runtime("torchscript")
    with pytest.raises(RuntimeUnavailableError, match=r"runanywhere\[torch\]"):
        get_runtime("pytorch")  # alias
    with pytest.raises(RuntimeUnavailableError, match=r"runanywhere\[torch\]"):
        TorchScriptRuntime().load(silero_data / "silero_vad.jit", None)
    assert "torchscript" in available_runtimes()
    assert "torchscript" not in available_runtimes(installed_only=True)


def test_missing_onnxruntime_names_the_onnx_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = plugins.module_available
    monkeypatch.setattr(plugins, "module_available", lambda m: m != "onnxruntime" and real(m))
    with pytest.raises(RuntimeUnavailableError,
                       match=r"onnxruntime.*pip install 'runanywhere\[onnx\]'"):
        get_runtime("onnx")


def _build_add_tflite(path: Path) -> None:
    """A real TFLite flatbuffer: sum = a + b over float32 [1, 4] (built with LiteRT's schema)."""
    import flatbuffers  # type: ignore[import-untyped]
    from ai_edge_litert import schema_py_generated as s

    model = s.ModelT()
    model.version = 3
    code = s.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = s.BuiltinOperator.ADD
    code.version = 1
    model.operatorCodes = [code]
    tensors = []
    for i, name in enumerate(["a", "b", "sum"]):
        t = s.TensorT()
        t.shape, t.type, t.buffer, t.name = [1, 4], s.TensorType.FLOAT32, i + 1, name
        tensors.append(t)
    op = s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1], [2]
    op.builtinOptionsType, op.builtinOptions = s.BuiltinOptions.AddOptions, s.AddOptionsT()
    graph = s.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs, graph.operators = tensors, [0, 1], [2], [op]
    model.subgraphs = [graph]
    model.buffers = [s.BufferT() for _ in range(4)]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(builder.Output())


def test_tflite_runtime_runs_a_real_model(tmp_path: Path) -> None:
    pytest.importorskip("ai_edge_litert")
    _build_add_tflite(tmp_path / "add.tflite")
    rt = get_runtime("tflite")
    assert isinstance(rt, TFLiteRuntime) and rt.extra == "tflite"
    interp = rt.load(tmp_path, None, num_threads=1)  # the folder's only .tflite
    a, b = interp.get_input_details()
    interp.set_tensor(a["index"], np.array([[1, 2, 3, 4]], np.float32))
    interp.set_tensor(b["index"], np.array([[10, 20, 30, 40]], np.float32))
    interp.invoke()
    out = interp.get_tensor(interp.get_output_details()[0]["index"])
    assert out.tolist() == [[11, 22, 33, 44]]


# -- the table -------------------------------------------------------------------------------------


def test_unknown_runtime_lists_the_known_ones() -> None:
    with pytest.raises(UnknownRuntimeError) as info:
        get_runtime("tensorrt")
    msg = str(info.value)
    for name in ("onnx", "tflite", "torchscript", "safetensors"):
        assert name in msg
    assert isinstance(info.value, ModelError)
    with pytest.raises(UnknownRuntimeError, match="did you mean 'onnx'"):
        get_runtime("onx")


def test_default_runtime_for_each_format() -> None:
    assert default_runtime_for("onnx") == "onnx"
    assert default_runtime_for("tflite") == "tflite"
    assert default_runtime_for("tensorflow") == "tflite"
    assert default_runtime_for("pytorch") == "torchscript"
    assert default_runtime_for("safetensors") == "safetensors"
    assert default_runtime_for("gguf") == "llama"  # from the llm-llamacpp package
    with pytest.raises(ModelError, match="no default runtime for format 'custom'"):
        default_runtime_for("custom")


def _fake_entry_points(monkeypatch: pytest.MonkeyPatch, *eps: importlib.metadata.EntryPoint
                       ) -> None:
    real = importlib.metadata.entry_points

    def entry_points(**kw: Any) -> Any:
        if kw.get("group") == runtimes.ENTRY_POINT_GROUP:
            return importlib.metadata.EntryPoints(eps)
        return real(**kw)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


def test_plugin_runtime_found_through_entry_points(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    (tmp_path / "ra_echo_plugin.py").write_text(textwrap.dedent("""
        class EchoRuntime:
            name = "echo"
            extra = "echo"
            def load(self, path, meta, **options):
                return ("echo", path.read_text(), options)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    _fake_entry_points(
        monkeypatch,
        importlib.metadata.EntryPoint("echo", "ra_echo_plugin:EchoRuntime",
                                      runtimes.ENTRY_POINT_GROUP),
        importlib.metadata.EntryPoint("broken", "ra_no_such_module:Thing",
                                      runtimes.ENTRY_POINT_GROUP),
    )
    assert "echo" in available_runtimes() and "onnx" in available_runtimes()
    rt = get_runtime("echo")
    assert rt.name == "echo"
    model = tmp_path / "m.txt"
    model.write_text("weights")
    assert rt.load(model, None, k=1) == ("echo", "weights", {"k": 1})
    with pytest.raises(RuntimeUnavailableError, match=r"'broken'.*cannot be imported"):
        get_runtime("broken")
    with pytest.raises(UnknownRuntimeError, match="echo"):
        get_runtime("nothing-like-it")


def test_importing_runtimes_and_adapters_stays_light() -> None:
    code = ("import sys, runanywhere, runanywhere.runtimes, runanywhere.adapters;"
            "from runanywhere.runtimes import get_runtime; get_runtime('onnx');"
            "print(sorted(m for m in ('numpy', 'onnxruntime', 'torch', 'safetensors')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_a_packaged_runtime_that_is_not_installed_names_its_extra(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_entry_points(monkeypatch)  # no plugin installed at all
    with pytest.raises(RuntimeUnavailableError,
                       match=r"runtime 'llama' is not installed: pip install"
                             r" runanywhere-llm-llamacpp \(or pip install 'runanywhere\[llm\]'\)"):
        get_runtime("llama")
    from runanywhere.adapters import ADAPTERS, get_adapter

    monkeypatch.setattr(type(ADAPTERS), "entry_points", lambda self: {})
    with pytest.raises(RuntimeUnavailableError, match=r"adapter 'llama' is not installed"):
        get_adapter("llama")
