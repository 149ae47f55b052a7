"""Built-in datasets, generated deterministically offline and cached.

- ``chars/<script>``: one task per script (Latin, Greek, Cyrillic, Arabic, Hebrew, five Indic scripts, kana,
  Hangul, Thai, Georgian, Armenian, Ethiopic; classes are the characters), rendered from system fonts (Debian
  packages) and split by font family: the test split is drawn only in designs training never saw.
- ``source/cjk``: 500 CJK ideographs rendered the same way, a pretraining source disjoint from every task above.
- ``scans/digits``, ``scans/fashion-mnist``, ``scans/animal-mnist``: real scans shipped in packages.

    from munet_serve.builtin import load, names, info, SplitSizes

    data = load("chars/greek", sizes=SplitSizes(train=60, validation=15, test=15))
    images, labels = data.split(Split.TRAIN)

The same name and sizes on the same fonts / data files always give the same bytes (`BuiltinDataset.to_npz_bytes`).
Generated datasets are cached under $MUNET_SERVE_CACHE/builtin or ~/.cache/munet-serve/builtin. Fonts are looked
for under /usr/share/fonts, or the directories in $MUNET_SERVE_FONT_DIRS (os.pathsep-separated), or `font_dirs=`.
A dataset whose fonts or package are missing raises `MissingDataError` naming what to install.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from . import catalog
from .catalog import GENERATOR_VERSION
from .dataset import BuiltinDataset, MissingDataError, SplitSizes

__all__ = ["GENERATOR_VERSION", "BuiltinDataset", "MissingDataError", "SplitSizes", "default_sizes", "info", "load",
           "names"]


def names() -> list[str]:
    """Every built-in name, sorted."""
    return sorted(catalog.CATALOG)


def info(name: str, *, font_dirs: Sequence[Path | str] | None = None, data_dir: Path | None = None) -> dict:
    """{"name", "kind": "chars"|"scans"|"source", "classes", "description", "requires": [package names],
    "available": bool, "install": the command that makes it available, "default_sizes"}. Raises KeyError for an
    unknown name. Checking a font-rendered dataset reads the fonts once (cached afterwards)."""
    return catalog.info(name, font_dirs=font_dirs, data_dir=data_dir)


def default_sizes(name: str) -> SplitSizes:
    return catalog.entry(name).default_sizes


def load(name: str, *, sizes: SplitSizes | None = None, cache_dir: Path | None = None, use_cache: bool = True,
         font_dirs: Sequence[Path | str] | None = None, data_dir: Path | None = None) -> BuiltinDataset:
    """Loads a built-in dataset, generating it (and caching it under `cache_dir`) when needed.

    sizes: examples per class in each split (default: the dataset's own, see `default_sizes`).
    cache_dir: default $MUNET_SERVE_CACHE/builtin or ~/.cache/munet-serve/builtin. use_cache=False always
    regenerates and writes nothing.
    font_dirs: where to look for fonts (default $MUNET_SERVE_FONT_DIRS or /usr/share/fonts).
    data_dir: the folder of a scans set's files where it has one (scans/fashion-mnist; default
    $MUNET_SERVE_FASHION_MNIST_DIR or /usr/share/datasets/fashion-mnist).
    Raises KeyError for an unknown name, MissingDataError when fonts or a package are missing, and ValueError when
    `sizes` asks for more distinct examples than a scans set has."""
    return catalog.load(name, sizes=sizes, cache_dir=cache_dir, use_cache=use_cache, font_dirs=font_dirs,
                        data_dir=data_dir)
