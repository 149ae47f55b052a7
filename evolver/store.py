"""Published components as frozen PyTorch modules, fetched from the server once and cached in memory by id."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from munet_serve.artifacts import ComponentKind, count_params

from .components import Component
from .export import load_module

if TYPE_CHECKING:
    from munet_serve.clients import Client
    from munet_serve.clients.types import ComponentArtifact

logger = logging.getLogger(__name__)

__all__ = ["ComponentStore", "StoredComponent"]


@dataclass(frozen=True)
class StoredComponent:
    id: str
    kind: ComponentKind
    module: Component  # frozen (requires_grad False), eval mode; shared by every path that uses it
    num_params: int
    lineage: dict = field(default_factory=dict)

    @property
    def derived(self) -> bool:
        """A root component resized for another image size: root-locked like the root itself."""
        return self.lineage.get("origin") == "derived"


class ComponentStore:
    """Component modules by id. Modules are frozen and shared by reference; training always works on copies."""

    def __init__(self, client: Client | None = None) -> None:
        self._client = client
        self._items: dict[str, StoredComponent] = {}
        self._lock = threading.Lock()

    def __contains__(self, component_id: str) -> bool:
        return component_id in self._items

    def __len__(self) -> int:
        return len(self._items)

    def add(self, artifact: ComponentArtifact, module: Component | None = None) -> StoredComponent:
        """Adds a component from its artifact (the module is rebuilt from the weights unless given)."""
        with self._lock:
            if artifact.id in self._items:
                return self._items[artifact.id]
            module = module if module is not None else load_module(artifact)
            module.requires_grad_(False).eval()
            item = StoredComponent(
                artifact.id, artifact.info.kind, module, count_params(artifact.weights), dict(artifact.info.lineage)
            )
            self._items[artifact.id] = item
            return item

    def get(self, component_id: str) -> StoredComponent:
        """The component, downloading its weights from the server the first time."""
        item = self._items.get(component_id)
        if item is not None:
            return item
        if self._client is None:
            raise KeyError(f"component {component_id} is not in the store and no client is set")
        logger.debug("fetching component %s", component_id[:12])
        return self.add(self._client.get_component(component_id))
