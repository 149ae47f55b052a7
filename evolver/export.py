"""Turns a component module into its two files (safetensors weights, ONNX graph) and back into a module.

`export_component` exports with the dynamo ONNX exporter (input ``x``, output ``y``, dynamic axes per kind; each
kind and config is exported once per process and its graph reused with other weights), checks the graph against the
module with ONNX Runtime at shapes other than the export example, and serialises the weights with the component's
kind, config and lineage in the safetensors metadata. The component id is the sha256 of that
weights file. `load_module` rebuilds the module from a weights file alone.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import threading
import time
import uuid
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import safetensors.torch
import torch
from torch.export import Dim

from munet_serve.artifacts import (
    MOMENTUM_PREFIX,
    ComponentKind,
    ComponentMetadata,
    read_component_metadata,
    sha256_hex,
)
from munet_serve.clients.types import ComponentArtifact

from .components import Component, build_module
from .errors import ParityError

logger = logging.getLogger(__name__)

__all__ = [
    "PARITY_TOLERANCE",
    "check_parity",
    "clone_lineage",
    "component_id",
    "cpu_session",
    "export_component",
    "export_onnx",
    "fresh_lineage",
    "load_module",
    "probe_shape",
    "root_lineage",
    "serialize_weights",
]

# Max abs difference allowed between ONNX Runtime and PyTorch on the probe, relative to max(1, max |y|).
# Measured: 1e-7 to 1e-5 for every kind (blocks of width 768 included).
PARITY_TOLERANCE = 1e-4
_EXPORT_BATCH, _PROBE_BATCH = 2, 3
_EXPORT_TOKENS, _PROBE_TOKENS = 5, 9


def root_lineage(name: str) -> dict[str, Any]:
    """Lineage of a root component: deterministic, so rebuilding the same root gives the same ids."""
    return {"parent": None, "task": None, "origin": "root", "name": name, "salt": None}


def fresh_lineage(task: str, name: str) -> dict[str, Any]:
    """Lineage of a freshly initialised component; the salt keeps two fresh ones with equal weights distinct."""
    return {"parent": None, "task": task, "origin": "fresh", "name": name, "salt": uuid.uuid4().hex}


def clone_lineage(parent_id: str | None, task: str, name: str) -> dict[str, Any]:
    """Lineage of a trained copy of a component (parent: the published component it copies, if any)."""
    return {"parent": parent_id, "task": task, "origin": "clone", "name": name, "salt": uuid.uuid4().hex}


def derived_lineage(root_component_id: str, name: str, grid: Sequence[int]) -> dict[str, Any]:
    """Lineage of a root component resized to another grid: deterministic, so the same resize has the same id."""
    return {"parent": root_component_id, "task": None, "origin": "derived", "name": name, "grid": list(grid),
            "salt": None}


def serialize_weights(module: Component, lineage: Mapping[str, Any]) -> bytes:
    """The component's safetensors file: its parameters (and mu2Net's momentum trace, if it has one) plus
    {kind, config, lineage} metadata.

    The same module and lineage always give the same bytes (hence the same component id).
    """
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in module.state_dict().items()}
    for name, trace in (module.momentum or {}).items():
        state[MOMENTUM_PREFIX + name] = trace.detach().to("cpu", torch.float32).contiguous()
    meta = ComponentMetadata(kind=module.kind, config=module.config, lineage=dict(lineage))
    return _canonical(safetensors.torch.save(state, metadata=meta.to_safetensors()))


def _canonical(data: bytes) -> bytes:
    """Rewrites a safetensors header with sorted keys.

    safetensors writes the metadata map in hash order, which changes from run to run; the tensor data section is
    already in a fixed order and is kept byte for byte (offsets are relative to it).
    """
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # safetensors aligns the data section to 8 bytes
    return len(text).to_bytes(8, "little") + text + data[8 + n :]


def component_id(weights: bytes) -> str:
    return sha256_hex(weights)


def load_module(source: ComponentArtifact | bytes) -> Component:
    """Rebuilds a component module (eval mode, float32, CPU) from its weights file or artifact, with its momentum
    trace when the file holds one."""
    weights = source.weights if isinstance(source, ComponentArtifact) else source
    meta = read_component_metadata(weights)
    module = build_module(meta.kind, meta.config)
    tensors = safetensors.torch.load(weights)
    state = {k: v for k, v in tensors.items() if not k.startswith(MOMENTUM_PREFIX)}
    module.load_state_dict(state, strict=True)
    traces = {k[len(MOMENTUM_PREFIX) :]: v for k, v in tensors.items() if k.startswith(MOMENTUM_PREFIX)}
    if traces:
        module.momentum = traces
    return module.eval()


def _shapes(module: Component) -> tuple[tuple[int, ...], tuple[int, ...], dict[int, Dim]]:
    """(export example shape, probe shape, dynamic dims of x) for a module's kind."""
    cfg = module.config
    kind = module.kind
    batch = Dim("batch", min=1, max=1 << 16)
    tokens = Dim("tokens", min=1, max=1 << 16)
    if kind is ComponentKind.EMBEDDING:
        p, c = cfg["patch_size"], cfg["in_chans"]
        h = Dim("height", min=p, max=8192)
        w = Dim("width", min=p, max=8192)
        return (_EXPORT_BATCH, c, 2 * p, 2 * p), (_PROBE_BATCH, c, 3 * p, 4 * p), {0: batch, 2: h, 3: w}
    if kind is ComponentKind.POSEMBED:
        gh, gw = cfg["grid"]
        t = 1 + gh * gw
        return (_EXPORT_BATCH, t, cfg["embed_dim"]), (_PROBE_BATCH, t, cfg["embed_dim"]), {0: batch}
    dim = cfg["embed_dim"] if kind is ComponentKind.CLS else cfg["dim"]
    return (_EXPORT_BATCH, _EXPORT_TOKENS, dim), (_PROBE_BATCH, _PROBE_TOKENS, dim), {0: batch, 1: tokens}


def probe_shape(module: Component) -> tuple[int, ...]:
    """The input shape the parity check runs a module at (another batch size and token count than the export's)."""
    return _shapes(module)[1]


def _export_program(module: Component) -> Any:
    """The dynamo exporter's ONNX model proto of the module (input "x", output "y", dynamic axes for its kind)."""
    example_shape, _, dynamic = _shapes(module)
    example = torch.randn(example_shape, generator=torch.Generator().manual_seed(0))
    module = module.eval()
    quiet = io.StringIO()
    with torch.no_grad(), contextlib.redirect_stdout(quiet), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            input_names=["x"],
            output_names=["y"],
            dynamic_shapes=(dynamic,),
            verbose=False,
            report=False,
        )
    if program is None:  # pragma: no cover - dynamo export always returns a program
        raise RuntimeError("torch.onnx.export returned no program")
    return program.model_proto


@dataclass(frozen=True)
class _Template:
    """The exported graph of one (kind, config), and where each parameter's values sit in it.

    The exporter names some initializers after the parameters and folds others (a Linear's weight becomes its
    transpose under a generated name); `places` maps every initializer that holds a parameter to (parameter name,
    transposed). Every other initializer is a constant of the graph's shape arithmetic, the same for every module
    of this kind and config.
    """

    model: Any  # onnx.ModelProto
    places: dict[str, tuple[str, bool]]

    def render(self, state: Mapping[str, torch.Tensor]) -> bytes:
        from onnx import numpy_helper

        model = type(self.model)()
        model.CopyFrom(self.model)
        for init in model.graph.initializer:
            place = self.places.get(init.name)
            if place is not None:
                name, transposed = place
                value = state[name].detach().to("cpu", torch.float32).numpy()
                init.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(value.T if transposed else value),
                                                      init.name))
        return model.SerializeToString()


def _make_template(module: Component) -> _Template | None:
    """Exports a copy of the module holding distinct random values and finds each parameter in the graph; None
    when some parameter cannot be found (the graph then always comes from a full export)."""
    from onnx import numpy_helper

    probe = copy.deepcopy(module)
    probe.momentum = None
    generator = torch.Generator().manual_seed(12345)
    with torch.no_grad():
        for p in probe.parameters():
            p.copy_(torch.randn(p.shape, generator=generator))
    state = {k: v.detach().numpy() for k, v in probe.state_dict().items()}
    model = _export_program(probe)
    places: dict[str, tuple[str, bool]] = {}
    for init in model.graph.initializer:
        value = numpy_helper.to_array(init)
        for name, param in state.items():
            if value.shape == param.shape and np.array_equal(value, param):
                places[init.name] = (name, False)
                break
            if value.ndim == 2 and value.shape == param.T.shape and np.array_equal(value, param.T):
                places[init.name] = (name, True)
                break
    if {name for name, _ in places.values()} != set(state):
        logger.debug("%s: not every parameter is an initializer of the exported graph; no template",
                     module.kind.value)
        return None
    return _Template(model, places)


_TEMPLATES: dict[str, _Template | None] = {}
_TEMPLATES_LOCK = threading.Lock()


def export_onnx(module: Component, *, reuse: bool = True) -> bytes:
    """The module's ONNX graph (dynamo exporter): input "x", output "y", dynamic axes for its kind.

    The exporter takes seconds per call, and every module of one kind and config has the same graph with other
    weights; so the graph of each (kind, config) is exported once per process and later modules get a copy of it
    holding their own weights (`reuse=False` always exports). `export_component` checks every graph against its
    module either way.
    """
    if not reuse:
        return _export_program(module).SerializeToString()
    key = f"{module.kind.value}:{json.dumps(module.config, sort_keys=True)}"
    with _TEMPLATES_LOCK:
        if key not in _TEMPLATES:
            _TEMPLATES[key] = _make_template(module)
        template = _TEMPLATES[key]
    if template is None:
        return _export_program(module).SerializeToString()
    return template.render(module.state_dict())


def cpu_session(onnx_bytes: bytes) -> Any:
    """A small ONNX Runtime CPU session (used for the parity probe).

    It uses its own single thread unless the process has an ORT global thread pool (a server in the same
    process sets one), which then must be used.
    """
    import onnxruntime as ort

    def options(per_session: bool) -> Any:
        o = ort.SessionOptions()
        o.log_severity_level = 3
        if per_session:
            o.intra_op_num_threads = 1
            o.inter_op_num_threads = 1
            o.add_session_config_entry("session.intra_op.allow_spinning", "0")
        else:
            o.use_per_session_threads = False
        return o

    global _GLOBAL_POOL
    providers = ["CPUExecutionProvider"]
    if not _GLOBAL_POOL:
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # ORT prints its provider fallback attempts
                return ort.InferenceSession(onnx_bytes, sess_options=options(True), providers=providers)
        except RuntimeError as e:
            if "global thread pool" not in str(e):
                raise
            _GLOBAL_POOL = True
    return ort.InferenceSession(onnx_bytes, sess_options=options(False), providers=providers)


_GLOBAL_POOL = False  # set once a session creation showed the process has an ORT global thread pool


def check_parity(module: Component, onnx_bytes: bytes) -> tuple[float, float]:
    """Runs graph and module on a probe (other batch size and token count than the export example).

    Returns:
        (max abs error, max |y| of the module's output).
    """
    _, probe_shape, _ = _shapes(module)
    probe = torch.randn(probe_shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = module.eval()(probe).numpy()
    (actual,) = cpu_session(onnx_bytes).run(["y"], {"x": probe.numpy()})
    if actual.shape != expected.shape:
        raise ParityError(
            f"{module.kind.value} graph gives shape {list(actual.shape)} at input {list(probe_shape)}, "
            f"PyTorch gives {list(expected.shape)}"
        )
    return float(np.max(np.abs(actual - expected), initial=0.0)), float(np.max(np.abs(expected), initial=0.0))


def export_component(
    module: Component, lineage: Mapping[str, Any], *, tolerance: float = PARITY_TOLERANCE
) -> ComponentArtifact:
    """Exports, checks and packages one component for upload.

    Raises:
        ParityError: the graph differs from the module by more than tolerance x max(1, max |y|).
    """
    start = time.perf_counter()
    onnx_bytes = export_onnx(module)
    error, scale = check_parity(module, onnx_bytes)
    if not error <= tolerance * max(1.0, scale):  # a reused graph is checked like any other; should it ever fail,
        logger.warning("%s: the reused graph fails its parity check; exporting it anew", module.kind.value)
        onnx_bytes = export_onnx(module, reuse=False)
        error, scale = check_parity(module, onnx_bytes)
    if not error <= tolerance * max(1.0, scale):
        raise ParityError(
            f"{module.kind.value} component ({lineage.get('name')}) ONNX output differs from PyTorch by {error:.3g} "
            f"(allowed {tolerance * max(1.0, scale):.3g})"
        )
    artifact = ComponentArtifact.create(serialize_weights(module, lineage), onnx_bytes, error)
    logger.debug(
        "exported %s %s (%s): %d params, parity %.2g, %.2f s", module.kind.value, lineage.get("name"),
        artifact.id[:12], artifact.info.num_params, error, time.perf_counter() - start,
    )
    return artifact
