"""The pool of segment sessions: one ONNX Runtime session per component, or per segment of components fused into
one graph (segments.py), loaded once, shared by every route that runs through it, unloaded when none does."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from munet_serve.artifacts import ComponentKind
from munet_serve.errors import InvalidArgumentError

from .ort_env import OrtEnvironment
from .segments import fuse

logger = logging.getLogger(__name__)


@dataclass
class LoadedSegment:
    """One ONNX Runtime session for one component, or for a segment of components fused into one graph
    (segments.py), shared by every route that runs through it."""

    components: tuple[tuple[str, ComponentKind], ...]  # (id, kind) of each component it runs, in order
    session: ort.InferenceSession
    refs: int = 0
    id: str = field(init=False)  # the component's id, or "<first id>+<n>:<digest of all>" for a fused segment
    input_name: str = field(init=False)
    output_name: str = field(init=False)  # the last output (a fused graph also outputs the values at its joins)

    def __post_init__(self) -> None:
        self.id = segment_id(self.component_ids)
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[-1].name

    @property
    def component_ids(self) -> tuple[str, ...]:
        return tuple(cid for cid, _ in self.components)

    @property
    def kind(self) -> ComponentKind:
        """The first component's kind (metrics count a fused segment under it)."""
        return self.components[0][1]

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: x})[0]


def segment_id(component_ids: Sequence[str]) -> str:
    if len(component_ids) == 1:
        return component_ids[0]
    digest = hashlib.sha256("\n".join(component_ids).encode()).hexdigest()[:16]
    return f"{component_ids[0][:12]}+{len(component_ids) - 1}:{digest}"


Segment = Sequence[tuple[str, ComponentKind]]  # the (id, kind) of a run of components, fused into one session


class SessionPool:
    """segment id -> session, loaded once, reference-counted by live routes, unloaded at zero.

    A segment of several components gets one session of their fused graph; one that cannot be fused (or whose fused
    graph ONNX Runtime rejects) is remembered and comes back as one session per component.
    """

    def __init__(self, env: OrtEnvironment, onnx_path: Callable[[str], Path]):
        self._env = env
        self._onnx_path = onnx_path
        self._loaded: dict[str, LoadedSegment] = {}
        self._unfusable: set[tuple[str, ...]] = set()
        self._lock = threading.Lock()

    def acquire(self, segments: Sequence[Segment]) -> list[LoadedSegment]:
        """Returns the sessions of the segments in order, loading the missing ones; each is counted once more in
        use. Raises InvalidArgumentError if a component cannot be loaded, DataLossError if its file is corrupted."""
        acquired: list[LoadedSegment] = []
        try:
            for segment in segments:
                ids = tuple(cid for cid, _ in segment)
                pieces = [[c] for c in segment] if ids in self._unfusable else [segment]
                while pieces:
                    piece = tuple(pieces.pop(0))
                    try:
                        acquired.append(self._acquire_one(piece))
                    except _Unfusable as e:
                        logger.warning("segment %s runs unfused: %s", segment_id(ids), e)
                        self._unfusable.add(ids)
                        pieces = [[c] for c in piece] + pieces
        except BaseException:
            self.release([s.id for s in acquired])
            raise
        return acquired

    def _acquire_one(self, segment: tuple[tuple[str, ComponentKind], ...]) -> LoadedSegment:
        key = segment_id([cid for cid, _ in segment])
        with self._lock:
            loaded = self._loaded.get(key)
        if loaded is None:
            loaded = self._load(segment)
        with self._lock:
            loaded = self._loaded.setdefault(key, loaded)
            loaded.refs += 1
        return loaded

    def release(self, ids: Sequence[str]) -> None:
        """Counts the segments (by id) once less in use; unloads those no route uses."""
        with self._lock:
            for sid in ids:
                loaded = self._loaded.get(sid)
                if loaded is None:
                    continue
                loaded.refs -= 1
                if loaded.refs <= 0:
                    del self._loaded[sid]
                    logger.debug("unloaded segment %s", sid[:12])

    def loaded(self) -> list[LoadedSegment]:
        with self._lock:
            return list(self._loaded.values())

    def _load(self, segment: tuple[tuple[str, ComponentKind], ...]) -> LoadedSegment:
        paths = [self._onnx_path(cid) for cid, _ in segment]  # checked files: DataLossError for a corrupted one
        if len(segment) == 1:
            cid = segment[0][0]
            try:
                session = self._env.create_session(paths[0])
            except Exception as e:  # noqa: BLE001 - ORT raises several types
                raise InvalidArgumentError(f"component {cid} could not be loaded by ONNX Runtime: {e}") from e
        else:
            try:
                graph = fuse([onnx.load(str(path)) for path in paths]).SerializeToString()
                session = self._env.create_session(graph)
            except Exception as e:  # noqa: BLE001 - FuseError, protobuf's 2 GiB limit, ORT's several types
                raise _Unfusable(str(e)) from e
        logger.debug("loaded segment of %d components %s", len(segment), segment[0][0][:12])
        return LoadedSegment(components=segment, session=session)


class _Unfusable(Exception):
    pass
