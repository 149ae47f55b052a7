"""Where the values between components live while a batch runs through a chain of component sessions.

- `HostValues` (CPU execution provider): NumPy arrays; splitting a batch is a view, joining one a copy.
- `DeviceValues` (CUDA execution provider): ONNX Runtime `OrtValue`s that stay on the device from the first
  component to the last. Each component runs with IOBinding (its input bound to the previous output, its output
  allocated on the device), and joining or splitting a cross-task batch runs a tiny Concat or Slice graph on the same
  device, so there is no host round trip between components: the images go up once and the logits come down once.
  It works on any device ONNX Runtime binds, so the CPU test suite exercises the same code with device "cpu".
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

from .ort_env import CUDA, OrtEnvironment
from .sessions import LoadedSegment

__all__ = ["DeviceValues", "HostValues", "ValueOps", "value_ops"]


class ValueOps(Protocol):
    """What the batcher needs from the values it passes between components."""

    def from_host(self, x: np.ndarray) -> Any: ...
    def to_host(self, value: Any) -> np.ndarray: ...
    def shape(self, value: Any) -> tuple[int, ...]: ...
    def concat(self, values: Sequence[Any]) -> Any: ...
    def split(self, value: Any, rows: Sequence[int]) -> list[Any]: ...
    def run(self, component: LoadedSegment, value: Any) -> Any: ...


class HostValues:
    """Values are float32 NumPy arrays in host memory."""

    def from_host(self, x: np.ndarray) -> np.ndarray:
        return x

    def to_host(self, value: np.ndarray) -> np.ndarray:
        return value

    def shape(self, value: np.ndarray) -> tuple[int, ...]:
        return tuple(value.shape)

    def concat(self, values: Sequence[np.ndarray]) -> np.ndarray:
        return values[0] if len(values) == 1 else np.concatenate(values)

    def split(self, value: np.ndarray, rows: Sequence[int]) -> list[np.ndarray]:
        bounds = np.cumsum([0, *rows])
        return [value[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    def run(self, component: LoadedSegment, value: np.ndarray) -> np.ndarray:
        return component.run(value)


def _concat_graph(n: int) -> bytes:
    inputs = [helper.make_tensor_value_info(f"x{i}", TensorProto.FLOAT, None) for i in range(n)]
    node = helper.make_node("Concat", [f"x{i}" for i in range(n)], ["y"], axis=0)
    graph = helper.make_graph([node], f"concat{n}", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                                                           None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString()


def _slice_graph() -> bytes:
    graph = helper.make_graph(
        [helper.make_node("Slice", ["x", "starts", "ends", "axes"], ["y"])],
        "rows",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("starts", TensorProto.INT64, [1]),
            helper.make_tensor_value_info("ends", TensorProto.INT64, [1]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[helper.make_tensor("axes", TensorProto.INT64, [1], [0])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString()


class DeviceValues:
    """Values are `OrtValue`s on one device; components run with IOBinding, outputs stay where they were made."""

    def __init__(self, env: OrtEnvironment, device: str = "cuda", device_id: int = 0) -> None:
        self._env = env
        self.device = device
        self.device_id = device_id
        self._slice = env.create_session(_slice_graph())
        self._concats: dict[int, ort.InferenceSession] = {}
        self._lock = threading.Lock()

    def from_host(self, x: np.ndarray) -> ort.OrtValue:
        return ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(x, dtype=np.float32), self.device,
                                                self.device_id)

    def to_host(self, value: ort.OrtValue) -> np.ndarray:
        return value.numpy()

    def shape(self, value: ort.OrtValue) -> tuple[int, ...]:
        return tuple(value.shape())

    def run(self, component: LoadedSegment, value: ort.OrtValue) -> ort.OrtValue:
        return self._bound_run(component.session, {component.input_name: value}, component.output_name)

    def concat(self, values: Sequence[ort.OrtValue]) -> ort.OrtValue:
        if len(values) == 1:
            return values[0]
        return self._bound_run(self._concat_session(len(values)), {f"x{i}": v for i, v in enumerate(values)}, "y")

    def split(self, value: ort.OrtValue, rows: Sequence[int]) -> list[ort.OrtValue]:
        if len(rows) == 1:
            return [value]
        pieces, start = [], 0
        for n in rows:
            bounds = {"starts": np.array([start], np.int64), "ends": np.array([start + n], np.int64)}
            pieces.append(self._bound_run(self._slice, {"x": value}, "y", bounds))
            start += n
        return pieces

    def _bound_run(self, session: ort.InferenceSession, inputs: dict[str, ort.OrtValue], output: str,
                   host_inputs: dict[str, np.ndarray] | None = None) -> ort.OrtValue:
        binding = session.io_binding()
        for name, value in inputs.items():
            binding.bind_ortvalue_input(name, value)
        for name, array in (host_inputs or {}).items():
            binding.bind_cpu_input(name, array)
        binding.bind_output(output, self.device, self.device_id)
        session.run_with_iobinding(binding)
        return binding.get_outputs()[0]

    def _concat_session(self, n: int) -> ort.InferenceSession:
        with self._lock:
            session = self._concats.get(n)
            if session is None:
                session = self._concats[n] = self._env.create_session(_concat_graph(n))
            return session


def value_ops(env: OrtEnvironment) -> ValueOps:
    """Device-resident values when the sessions run on CUDA, host arrays otherwise."""
    return DeviceValues(env, "cuda", 0) if CUDA in env.providers else HostValues()
