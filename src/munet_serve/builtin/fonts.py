"""Font discovery: the font faces under a few directories, what characters each covers, and their families.

Discovery is deterministic: files are walked in sorted order, symbolic links to the same file count once, and the
index (family names and cmaps, read with fontTools) is cached on disk keyed by the files' paths, sizes and times.

Faces are grouped into families by name first: style words (Bold, Italic, Light, Condensed, ...), UI variants, CJK
regional variants (JP/KR/SC/TC/HK), the proportional IPA and VL variants and "Classical"/"Slanted" variants all
name one family. `render.design_groups` then merges families whose glyphs for a script look the same.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cache import atomic_write_bytes, default_cache_dir

DEFAULT_FONT_DIRS = (Path("/usr/share/fonts"),)
FONT_DIRS_ENV = "MUNET_SERVE_FONT_DIRS"
FONT_SUFFIXES = (".ttf", ".otf", ".ttc")
INDEX_VERSION = 1

_STYLE_WORDS = {
    "bold", "italic", "oblique", "light", "extralight", "ultralight", "thin", "medium", "semibold", "demibold",
    "extrabold", "black", "heavy", "regular", "rg", "book", "normal", "condensed", "narrow", "display", "slanted",
    "classical",
}
_REGULAR_STYLES = ("regular", "book", "normal", "medium", "roman", "")


@dataclass(frozen=True)
class Face:
    """One face of a font file (`index` is its number inside a .ttc collection)."""

    path: str
    index: int
    family: str  # the family key (see family_key)
    name: str  # the face's own family name as the font states it
    style: str
    codes: np.ndarray = field(repr=False, compare=False)  # sorted int32 code points of its cmap

    def covers(self, chars: str) -> bool:
        wanted = np.fromiter((ord(c) for c in chars), dtype=np.int32, count=len(chars))
        pos = np.searchsorted(self.codes, wanted)
        pos = np.minimum(pos, len(self.codes) - 1)
        return bool(len(self.codes)) and bool(np.all(self.codes[pos] == wanted))

    @property
    def is_regular(self) -> bool:
        return self.style.strip().lower() in _REGULAR_STYLES

    @property
    def label(self) -> str:
        return f"{Path(self.path).name}#{self.index}" if self.path.endswith(".ttc") else Path(self.path).name


def family_key(name: str) -> str:
    """The family a face belongs to, from its (typographic) family name."""
    key = re.sub(r"\s+", " ", name).strip()
    key = re.sub(r"-(Bold|Medium|Regular|Italic).*$", "", key)  # "padmaa-Bold.1.1"
    key = re.sub(r"\bCJK (JP|KR|SC|TC|HK)\b", "CJK", key)  # CJK regional variants
    key = re.sub(r"^IPAP", "IPA", key)  # IPAPGothic -> IPAGothic
    key = re.sub(r"^VL P", "VL ", key)  # VL PGothic -> VL Gothic
    key = re.sub(r"^NotoSerifTamilSlanted$", "Noto Serif Tamil", key)
    words = [w for w in key.split(" ") if w.lower() not in _STYLE_WORDS and w != "UI"]
    return " ".join(words) or key


def font_dirs(dirs: Sequence[Path | str] | None = None) -> tuple[Path, ...]:
    """The directories to search: `dirs`, else $MUNET_SERVE_FONT_DIRS (os.pathsep-separated), else /usr/share/fonts."""
    if dirs is not None:
        return tuple(Path(d) for d in dirs)
    env = os.environ.get(FONT_DIRS_ENV)
    if env is not None:
        return tuple(Path(d) for d in env.split(os.pathsep) if d)
    return DEFAULT_FONT_DIRS


def font_files(dirs: Iterable[Path]) -> list[Path]:
    """Font files under `dirs`, in sorted order, each real file once."""
    seen: set[str] = set()
    out: list[Path] = []
    for top in dirs:
        if not top.is_dir():
            continue
        for root, subdirs, files in os.walk(top, followlinks=False):
            subdirs.sort()
            for name in sorted(files):
                if not name.lower().endswith(FONT_SUFFIXES):
                    continue
                path = Path(root, name)
                real = os.path.realpath(path)
                if real in seen or not os.path.isfile(real):
                    continue
                seen.add(real)
                out.append(Path(real))
    return out


def fingerprint(files: Sequence[Path]) -> str:
    """Names the exact set of font files (paths, sizes, modification times)."""
    h = hashlib.sha256(f"fonts/{INDEX_VERSION}".encode())
    for path in files:
        st = path.stat()
        h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


_CMAP_PREFERENCE = ((3, 10), (0, 6), (0, 4), (3, 1), (0, 3), (0, 2), (0, 1), (0, 0))  # as fontTools' getBestCmap


def _expand(first: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All integers of the ranges [first_i, last_i], and for each the index i of its range."""
    lengths = last - first + 1
    which = np.repeat(np.arange(len(first)), lengths)
    starts = np.cumsum(lengths) - lengths
    return first[which] + (np.arange(int(lengths.sum())) - starts[which]), which


def _cmap_format4(data: bytes, at: int) -> np.ndarray:
    seg_count = int.from_bytes(data[at + 6 : at + 8], "big") // 2
    arrays = at + 14
    end = np.frombuffer(data, ">u2", seg_count, arrays).astype(np.int64)
    start = np.frombuffer(data, ">u2", seg_count, arrays + 2 * seg_count + 2).astype(np.int64)
    delta = np.frombuffer(data, ">u2", seg_count, arrays + 4 * seg_count + 2).astype(np.int64)
    range_at = arrays + 6 * seg_count + 2
    range_offset = np.frombuffer(data, ">u2", seg_count, range_at).astype(np.int64)
    keep = (start <= end) & (start != 0xFFFF)
    chars, seg = _expand(start[keep], end[keep])
    seg = np.nonzero(keep)[0][seg]
    gids = (chars + delta[seg]) & 0xFFFF
    indirect = range_offset[seg] != 0
    if indirect.any():
        words = np.frombuffer(data, ">u2", (len(data) - range_at) // 2, range_at).astype(np.int64)
        where = (2 * seg + range_offset[seg] + 2 * (chars - start[seg])) // 2
        valid = where < len(words)
        raw = np.where(valid, words[np.minimum(where, len(words) - 1)], 0)
        gids = np.where(indirect, np.where(raw != 0, (raw + delta[seg]) & 0xFFFF, 0), gids)
    return chars[gids != 0]


def _cmap_format12(data: bytes, at: int) -> np.ndarray:
    groups = int.from_bytes(data[at + 12 : at + 16], "big")
    table = np.frombuffer(data, ">u4", 3 * groups, at + 16).reshape(groups, 3).astype(np.int64)
    chars, group = _expand(table[:, 0], table[:, 1])
    gids = table[group, 2] + (chars - table[group, 0])
    return chars[gids != 0]


def cmap_codes(data: bytes) -> np.ndarray | None:
    """The code points a raw 'cmap' table maps to a glyph other than .notdef (formats 4 and 12; None for others).
    Reading the table directly skips the glyph names fontTools would decode (seconds for large CFF fonts)."""
    count = int.from_bytes(data[2:4], "big")
    subtables: dict[tuple[int, int], int] = {}
    for i in range(count):
        rec = 4 + 8 * i
        platform, encoding = int.from_bytes(data[rec : rec + 2], "big"), int.from_bytes(data[rec + 2 : rec + 4], "big")
        subtables.setdefault((platform, encoding), int.from_bytes(data[rec + 4 : rec + 8], "big"))
    for key in _CMAP_PREFERENCE:
        if key in subtables:
            at = subtables[key]
            fmt = int.from_bytes(data[at : at + 2], "big")
            if fmt == 4:
                return _cmap_format4(data, at)
            if fmt == 12:
                return _cmap_format12(data, at)
            return None
    return np.zeros(0, np.int64)


def _read_faces(path: Path) -> list[tuple[int, str, str, np.ndarray]]:
    from fontTools.ttLib import TTCollection, TTFont, TTLibError

    try:
        count = len(TTCollection(str(path), lazy=True).fonts) if path.suffix.lower() == ".ttc" else 1
    except (TTLibError, OSError, AssertionError, ValueError, KeyError):
        return []
    out = []
    for index in range(count):
        try:
            font = TTFont(str(path), fontNumber=index, lazy=True)
            names = font["name"]
            name = names.getDebugName(16) or names.getDebugName(1) or path.stem
            style = names.getDebugName(17) or names.getDebugName(2) or ""
            codes = cmap_codes(font.reader["cmap"]) if "cmap" in font.reader else np.zeros(0, np.int64)
            if codes is None:
                codes = np.array(list((font.getBestCmap() or {}).keys()), dtype=np.int64)
        except Exception:  # a broken font is skipped, never fatal  # noqa: BLE001
            continue
        out.append((index, name, style, np.unique(codes).astype(np.int32)))
    return out


@dataclass(frozen=True)
class FontIndex:
    dirs: tuple[Path, ...]
    key: str  # fingerprint of the files
    faces: tuple[Face, ...]

    def covering(self, chars: str) -> list[Face]:
        return [face for face in self.faces if face.covers(chars)]


def _index_cache_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / f"font-index-{key}.npz"


def _save_index(path: Path, faces: Sequence[Face]) -> None:
    import io

    meta = [{"path": f.path, "index": f.index, "name": f.name, "style": f.style} for f in faces]
    lengths = np.array([len(f.codes) for f in faces], dtype=np.int64)
    codes = np.concatenate([f.codes for f in faces]) if faces else np.zeros(0, np.int32)
    buf = io.BytesIO()
    np.savez(buf, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), lengths=lengths, codes=codes)
    atomic_write_bytes(path, buf.getvalue())


def _load_index(path: Path) -> list[Face] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes().decode())
            lengths, codes = z["lengths"], z["codes"]
    except (OSError, ValueError, KeyError):
        return None
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return [
        Face(m["path"], m["index"], family_key(m["name"]), m["name"], m["style"], codes[offsets[i] : offsets[i + 1]])
        for i, m in enumerate(meta)
    ]


_INDEXES: dict[tuple[tuple[Path, ...], str], FontIndex] = {}


def _index_for(dirs: tuple[Path, ...], key: str, cache_dir: Path | None) -> FontIndex:
    if (dirs, key) not in _INDEXES:
        _INDEXES[(dirs, key)] = _read_index(dirs, key, cache_dir)
    return _INDEXES[(dirs, key)]


def _read_index(dirs: tuple[Path, ...], key: str, cache_dir: Path | None) -> FontIndex:
    cache_path = _index_cache_path(cache_dir, key) if cache_dir is not None else None
    faces = _load_index(cache_path) if cache_path is not None and cache_path.exists() else None
    if faces is None:
        faces = []
        for path in font_files(dirs):
            for index, name, style, codes in _read_faces(path):
                faces.append(Face(str(path), index, family_key(name), name, style, codes))
        if cache_path is not None:
            try:
                _save_index(cache_path, faces)
            except OSError:
                pass  # a read-only cache only costs time
    return FontIndex(dirs, key, tuple(faces))


def font_index(dirs: Sequence[Path | str] | None = None, cache_dir: Path | None = None,
               use_cache: bool = True) -> FontIndex:
    """Every face under the font directories (see `font_dirs`): read once per process, and kept on disk in
    `cache_dir` (default: the dataset cache) unless use_cache is False."""
    resolved = font_dirs(dirs)
    key = fingerprint(font_files(resolved))
    return _index_for(resolved, key, (cache_dir or default_cache_dir()) if use_cache else None)


def installed_packages(packages: Iterable[str]) -> dict[str, bool]:
    """Whether each Debian package is installed (all False where there is no dpkg)."""
    names = list(packages)
    try:
        proc = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Abbrev}\n", *names],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return {name: False for name in names}
    status = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            status[parts[0]] = parts[1].startswith("ii")
    return {name: status.get(name, False) for name in names}
