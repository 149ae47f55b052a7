"""The munet-serve Python SDK (sync `Client`, asyncio `AsyncClient`) and the `munet-serve` command line."""

from .aio import AsyncClient
from .client import Client, TaskWatch
from .errors import MunetError
from .streams import TaskUpload

__all__ = ["AsyncClient", "Client", "MunetError", "TaskUpload", "TaskWatch"]
