"""Task events fanned out to WatchTasks streams."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from .records import TaskView

_CLOSED = object()


@dataclass(frozen=True)
class TaskEvent:
    type: str  # "snapshot", "registered", "published", "rolled_back", "deleted", "status"
    view: TaskView
    version: int
    time: float


class Subscription:
    """One watcher's queue of events; iterate with `events(poll)` until the hub closes or `closed()` says stop."""

    def __init__(self, hub: EventHub, task: str, max_queued: int) -> None:
        self.task = task
        self._hub = hub
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_queued)

    def offer(self, event: TaskEvent) -> None:
        if self.task and event.view.task.name != self.task:
            return
        try:
            self._queue.put_nowait(event)
        except queue.Full:  # a stalled watcher loses events rather than stalling the server
            pass

    def close(self) -> None:
        try:
            self._queue.put_nowait(_CLOSED)
        except queue.Full:
            self._queue.get_nowait()
            self._queue.put_nowait(_CLOSED)

    def events(self, alive: threading.Event | None = None, poll: float = 0.5) -> Iterator[TaskEvent]:
        try:
            while True:
                try:
                    item = self._queue.get(timeout=poll)
                except queue.Empty:
                    if alive is not None and not alive.is_set():
                        return
                    continue
                if item is _CLOSED:
                    return
                yield item  # type: ignore[misc]
        finally:
            self._hub.unsubscribe(self)


class EventHub:
    def __init__(self, max_queued: int = 1024) -> None:
        self._subscriptions: set[Subscription] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._max_queued = max_queued

    def subscribe(self, task: str = "") -> Subscription:
        subscription = Subscription(self, task, self._max_queued)
        with self._lock:
            if self._closed:
                subscription.close()
            else:
                self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions.discard(subscription)

    def emit(self, type: str, view: TaskView, version: int = 0) -> None:
        """Publishes an event of the task as `view` shows it, stamped now."""
        self.publish(TaskEvent(type=type, view=view, version=version, time=time.time()))

    def publish(self, event: TaskEvent) -> None:
        with self._lock:
            targets = list(self._subscriptions)
        for subscription in targets:
            subscription.offer(event)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            targets = list(self._subscriptions)
            self._subscriptions.clear()
        for subscription in targets:
            subscription.close()
