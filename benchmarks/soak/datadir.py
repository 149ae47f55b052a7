"""The data directory the soaked server starts on: a fleet built by the serving benchmark's `Fleet`, or a copy of an
existing data directory (the tests' fixture, a user's own). Either way the soak publishes into its own copy."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from benchmarks.serving.fleet import Fleet, FleetSpec
from benchmarks.serving.run import Profile, running, start_munet
from munet_serve.clients import Client

logger = logging.getLogger(__name__)

__all__ = ["SOAK", "prepare"]

SOAK = "soak"  # the soaked server's name: its data dir is <workdir>/soak-data, its log <workdir>/soak.log
_BUILD = "soak-build"


def data_dir(workdir: Path, name: str = SOAK) -> Path:
    """Where `benchmarks.serving.run.start_munet` puts the data of the server called `name`."""
    return workdir / f"{name}-data"


def prepare(workdir: Path, profile: Profile, source: Path | None = None) -> Path:
    """Fills <workdir>/soak-data: a copy of `source`, or else the profile's fleet (its root and `profile.tasks`
    tasks, each with a version 1), built through a server process of its own that is stopped afterwards, so that the
    soaked server starts from disk like any restarted one. Returns the directory."""
    target = data_dir(workdir)
    if target.exists():
        raise FileExistsError(f"{target} exists already")
    if source is not None:
        logger.info("copying %s", source)
        shutil.copytree(source, target)
        return target
    logger.info("building the fleet: %s, %d tasks", profile.root.model, profile.tasks)
    fleet = Fleet(FleetSpec(profile.root))
    with running(start_munet(workdir, profile, _BUILD)) as server, Client(server.target, timeout=600) as client:
        fleet.upload_root(client)
        for index in range(profile.tasks):
            fleet.add_task(client, f"task-{index:02d}", index)
    data_dir(workdir, _BUILD).rename(target)
    return target
