"""Every built-in dataset by name: what it is, what it needs, and how it is built and cached."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import chars, fonts, scans
from .cache import GENERATOR_VERSION, atomic_write_bytes, default_cache_dir, read_bytes
from .dataset import BuiltinDataset, MissingDataError, SplitSizes
from .scripts import CJK_PACKAGES, SCRIPTS, Script

CHARS_SIZES = SplitSizes(train=60, validation=15, test=15)
SOURCE_SIZES = SplitSizes(train=40, validation=5, test=5)
CJK_CLASSES = 500
CJK_MIN_FAMILIES = 5
INSTALL_SCRIPT = "scripts/install-system-packages.sh"


@dataclass(frozen=True)
class Entry:
    name: str
    kind: str  # "chars" | "scans" | "source"
    classes: int
    description: str
    requires: tuple[str, ...]  # Debian or PyPI package names
    default_sizes: SplitSizes
    install: str  # the command that makes it available
    script: Script | None = None


def _apt(packages: Sequence[str]) -> str:
    return f"apt-get install {' '.join(packages)}"


def _entries() -> dict[str, Entry]:
    out: dict[str, Entry] = {}
    for key, script in SCRIPTS.items():
        name = f"chars/{key}"
        out[name] = Entry(name, "chars", len(script.chars), f"{script.description}, rendered from system fonts",
                          script.packages, CHARS_SIZES, _apt(script.packages), script)
    out["source/cjk"] = Entry(
        "source/cjk", "source", CJK_CLASSES,
        f"{CJK_CLASSES} frequent CJK ideographs rendered from system fonts (a pretraining source: no kana, no hangul)",
        CJK_PACKAGES, SOURCE_SIZES, _apt(CJK_PACKAGES))
    out["scans/digits"] = Entry(
        "scans/digits", "scans", 10, "scikit-learn's handwritten digits (8x8 scans)", ("scikit-learn",),
        SplitSizes(train=120, validation=25, test=25), "pip install scikit-learn")
    out["scans/fashion-mnist"] = Entry(
        "scans/fashion-mnist", "scans", 10, "Fashion-MNIST (28x28 product photos; test split from t10k)",
        ("dataset-fashion-mnist",), SplitSizes(train=500, validation=100, test=100),
        _apt(["dataset-fashion-mnist"]))
    out["scans/animal-mnist"] = Entry(
        "scans/animal-mnist", "scans", 10, "Animal-MNIST (28x28 animal silhouettes)", ("animal-mnist",),
        SplitSizes(train=500, validation=100, test=100), "pip install --no-deps animal-mnist")
    return dict(sorted(out.items()))


CATALOG = _entries()


def entry(name: str) -> Entry:
    try:
        return CATALOG[name]
    except KeyError:
        raise KeyError(f"no built-in dataset {name!r}; built-ins: {', '.join(CATALOG)}") from None


# --- fonts -----------------------------------------------------------------------------------------------------


def _missing_fonts(e: Entry, what: str, found: Sequence[chars.FontFamily], dirs: Sequence[Path],
                   needed: int) -> MissingDataError:
    installed = fonts.installed_packages(e.requires)
    missing = [p for p in e.requires if not installed[p]] or list(e.requires)
    note = "" if any(not installed[p] for p in e.requires) else (
        f" (dpkg lists them as installed: the fonts must be under the directories searched, set with font_dirs= or "
        f"${fonts.FONT_DIRS_ENV})")
    more = e.script.more if e.script is not None else ()
    where = ", ".join(str(d) for d in dirs) or "(no font directories)"
    names = "; ".join(f.name for f in found) or "none"
    plural = "s" if len(missing) > 1 else ""
    also = f" (or for more families {', '.join(more)})" if more else ""
    return MissingDataError(
        f"{e.name} needs fonts covering {what} from at least {needed} font families, found {len(found)} ({names}) "
        f"under {where}: install the Debian package{plural} {' '.join(missing)}{also}{note}: run {INSTALL_SCRIPT} or "
        f"`{_apt(missing)}`"
    )


def _chars_families(e: Entry, font_dirs: Sequence[Path] | None, cache_dir: Path | None,
                    ) -> tuple[str, list[chars.FontFamily]]:
    index = fonts.font_index(font_dirs, cache_dir, use_cache=cache_dir is not None)
    if e.kind == "source":
        classes, _ = chars.cjk_classes(index, CJK_CLASSES, CJK_MIN_FAMILIES)
        if not classes:
            raise _missing_fonts(e, f"{CJK_CLASSES} frequent CJK ideographs", [], index.dirs, CJK_MIN_FAMILIES)
    else:
        assert e.script is not None
        classes = e.script.chars
    families = chars.families_for(classes, index, cache_dir)
    if len(families) < chars.MIN_FAMILIES:
        raise _missing_fonts(e, e.script.description if e.script else "CJK ideographs", families, index.dirs,
                             chars.MIN_FAMILIES)
    return classes, families


# --- building and caching ----------------------------------------------------------------------------------------


def _source_key(e: Entry, font_dirs: Sequence[Path] | None, data_dir: Path | None) -> str:
    """Names what a dataset is generated from, so the cache file changes when that does."""
    if e.kind in ("chars", "source"):
        return fonts.fingerprint(fonts.font_files(fonts.font_dirs(font_dirs)))
    if e.name == "scans/fashion-mnist":
        return hashlib.sha256(str(scans.fashion_dir(data_dir).resolve()).encode()).hexdigest()[:16]
    return "pkg"


def cache_path(name: str, sizes: SplitSizes, cache_dir: Path, source_key: str) -> Path:
    slug = name.replace("/", "-")
    return cache_dir / f"{slug}-{sizes.tag()}-g{GENERATOR_VERSION}-{source_key}.npz"


def build(e: Entry, sizes: SplitSizes, font_dirs: Sequence[Path] | None = None, data_dir: Path | None = None,
          cache_dir: Path | None = None) -> BuiltinDataset:
    """Generates a dataset. It reads no cached dataset; the font index and font plans are kept in `cache_dir` when
    one is given, and only in memory when it is None."""
    if e.kind in ("chars", "source"):
        classes, families = _chars_families(e, font_dirs, cache_dir)
        return chars.render_dataset(e.name, e.description, classes, families, sizes)
    if e.name == "scans/digits":
        return scans.load_digits_set(e.name, e.description, sizes)
    if e.name == "scans/fashion-mnist":
        return scans.load_fashion_set(e.name, e.description, sizes, data_dir)
    if e.name == "scans/animal-mnist":
        return scans.load_animal_set(e.name, e.description, sizes)
    raise KeyError(e.name)


def load(name: str, *, sizes: SplitSizes | None = None, cache_dir: Path | None = None, use_cache: bool = True,
         font_dirs: Sequence[Path | str] | None = None, data_dir: Path | None = None) -> BuiltinDataset:
    e = entry(name)
    sizes = sizes or e.default_sizes
    dirs = [Path(d) for d in font_dirs] if font_dirs is not None else None
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if not use_cache:
        return build(e, sizes, dirs, data_dir, None)
    path = cache_path(name, sizes, folder, _source_key(e, dirs, data_dir))
    data = read_bytes(path)
    if data is not None:
        try:
            return BuiltinDataset.from_npz_bytes(data)
        except (ValueError, KeyError, OSError):
            pass  # a damaged cache file is regenerated
    dataset = build(e, sizes, dirs, data_dir, folder)
    try:
        atomic_write_bytes(path, dataset.to_npz_bytes())
    except OSError:
        pass  # a read-only cache only costs time
    return dataset


def available(name: str, *, font_dirs: Sequence[Path | str] | None = None, data_dir: Path | None = None,
              cache_dir: Path | None = None) -> bool:
    e = entry(name)
    if e.kind in ("chars", "source"):
        dirs = [Path(d) for d in font_dirs] if font_dirs is not None else None
        try:
            _chars_families(e, dirs, Path(cache_dir) if cache_dir is not None else default_cache_dir())
        except MissingDataError:
            return False
        return True
    if e.name == "scans/digits":
        return scans.digits_available()
    if e.name == "scans/fashion-mnist":
        return scans.fashion_available(data_dir)
    return scans.animal_available()


def info(name: str, **where: object) -> dict:
    e = entry(name)
    return {
        "name": e.name,
        "kind": e.kind,
        "classes": e.classes,
        "description": e.description,
        "requires": list(e.requires),
        "available": available(name, **where),  # type: ignore[arg-type]
        "install": e.install,
        "default_sizes": {"train": e.default_sizes.train, "validation": e.default_sizes.validation,
                          "test": e.default_sizes.test},
    }
