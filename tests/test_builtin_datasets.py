"""Built-in datasets (munet_serve.builtin) from the real fonts and data files on this machine: deterministic bytes,
the cache, family-disjoint and image-disjoint splits, balanced classes, readable errors for missing packages, real
glyphs for every script, and `munet-serve tasks register --builtin` against a real server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from munet_serve import builtin
from munet_serve.artifacts import Split
from munet_serve.builtin import BuiltinDataset, MissingDataError, SplitSizes, catalog, chars, fonts, render
from munet_serve.builtin.cache import CACHE_ENV
from munet_serve.builtin.scripts import SCRIPTS
from munet_serve.clients import Client
from munet_serve.clients.datasets import from_builtin

CLI = str(Path(sys.executable).with_name("munet-serve"))
SMALL = SplitSizes(train=4, validation=2, test=2)
NONE_FOR_SPLITS = (Split.TRAIN, Split.VALIDATION, Split.TEST)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the module: the font index and per-script font plans are computed once."""
    return tmp_path_factory.mktemp("builtin-cache")


@pytest.fixture(autouse=True)
def default_cache(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Calls that take no cache_dir (info, the default of load) use the module's cache, not the user's."""
    monkeypatch.setenv(CACHE_ENV, str(cache))


def assert_balanced(data: BuiltinDataset, sizes: SplitSizes) -> None:
    k = data.num_classes
    assert data.labels.dtype == np.int64 and data.splits.dtype == np.uint8 and data.images.dtype == np.uint8
    assert data.sources.dtype == np.int32 and int(data.sources.max()) < len(data.source_names)
    for split in NONE_FOR_SPLITS:
        _, labels = data.split(split)
        assert np.bincount(labels, minlength=k).tolist() == [sizes.of(split)] * k, split


def assert_same(a: BuiltinDataset, b: BuiltinDataset) -> None:
    assert a.to_npz_bytes() == b.to_npz_bytes()


def test_chars_are_deterministic_cached_and_split_by_family(cache: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "untouched"))
    first = builtin.load("chars/greek", sizes=SMALL, use_cache=False)
    again = builtin.load("chars/greek", sizes=SMALL, use_cache=False)
    assert_same(first, again)
    assert not (tmp_path / "untouched").exists()  # use_cache=False writes nothing, not even the font index
    fresh = builtin.load("chars/greek", sizes=SMALL, cache_dir=cache)  # generates and writes the cache
    (cached_file,) = cache.glob("chars-greek-4-2-2-*.npz")
    assert f"-g{builtin.GENERATOR_VERSION}-" in cached_file.name
    cached = builtin.load("chars/greek", sizes=SMALL, cache_dir=cache)  # reads it
    assert_same(first, fresh)
    assert_same(first, cached)
    assert cached_file.read_bytes() == first.to_npz_bytes()

    assert first.images.shape == (24 * 8, 32, 32)
    assert first.label_names == list("αβγδεζηθικλμνξοπρστυφχψω")
    assert_balanced(first, SMALL)
    by_split = {s: first.sources_of(s) for s in NONE_FOR_SPLITS}
    assert all(by_split.values())
    assert not by_split[Split.TRAIN] & by_split[Split.TEST]
    assert not by_split[Split.TRAIN] & by_split[Split.VALIDATION]
    assert not by_split[Split.VALIDATION] & by_split[Split.TEST]
    test_fonts = {first.source_names[i] for i in by_split[Split.TEST]}
    train_fonts = {first.source_names[i] for i in by_split[Split.TRAIN]}
    assert not test_fonts & train_fonts
    # no face name appears in two families (bold/italic/UI/regional variants were merged by family)
    members = [name for family in first.source_names for name in family.split(" / ")]
    assert len(members) == len(set(members))

    bigger = builtin.load("chars/greek", sizes=SplitSizes(5, 2, 2), cache_dir=cache)
    assert len(list(cache.glob("chars-greek-*.npz"))) == 2  # the sizes are in the file name
    assert_balanced(bigger, SplitSizes(5, 2, 2))


def test_every_script_draws_real_distinct_glyphs(cache: Path) -> None:
    """Every character set with its Debian packages installed has >= 3 families, and each family draws real glyphs:
    inked, not the .notdef box, and different for different characters (a missing glyph would draw the same tofu)."""
    index = fonts.font_index(cache_dir=cache)
    checked = []
    for key, script in SCRIPTS.items():
        families = chars.families_for(script.chars, index, cache)
        if len(families) < chars.MIN_FAMILIES:
            assert not all(fonts.installed_packages(script.packages).values()), f"{key}: {len(families)} families"
            continue
        sample = script.chars[:: max(1, len(script.chars) // 4)][:4]
        for family in families:
            face = family.faces[0]
            notdef = render.glyph(face.path, face.index, render.NOTDEF_PROBE)
            crops = [render.glyph(face.path, face.index, ch) for ch in sample]
            images = []
            for ch, crop in zip(sample, crops, strict=True):
                assert crop is not None and not render.is_tofu(crop, notdef), (key, family.name, ch)
                images.append(render.fit(crop))
                assert not render.is_blank(images[-1]), (key, family.name, ch)
            for i in range(len(images)):
                for j in range(i + 1, len(images)):
                    assert np.abs(images[i].astype(int) - images[j]).mean() > 3, (key, family.name, sample)
        checked.append(key)
    assert {"latin-upper", "digits", "greek", "cyrillic", "devanagari", "hiragana"} <= set(checked)


def test_a_generated_script_has_no_blank_images(cache: Path) -> None:
    data = builtin.load("chars/devanagari", sizes=SplitSizes(3, 1, 1), cache_dir=cache)
    assert_balanced(data, SplitSizes(3, 1, 1))
    ink = (data.images > 96).sum(axis=(1, 2))
    assert ink.min() >= 20
    assert builtin.info("chars/devanagari")["available"] is True


def test_source_cjk_is_deterministic_and_disjoint_from_the_tasks(cache: Path) -> None:
    sizes = SplitSizes(train=2, validation=1, test=1)
    first = builtin.load("source/cjk", sizes=sizes, use_cache=False)
    again = builtin.load("source/cjk", sizes=sizes, use_cache=False)
    assert_same(first, again)
    assert first.num_classes == catalog.CJK_CLASSES
    assert all(0x4E00 <= ord(ch) <= 0x9FFF for ch in first.label_names)
    task_chars = {ch for script in SCRIPTS.values() for ch in script.chars}
    assert not task_chars & set(first.label_names)
    assert_balanced(first, sizes)
    by_split = {s: first.sources_of(s) for s in NONE_FOR_SPLITS}
    assert not by_split[Split.TRAIN] & by_split[Split.TEST]
    assert not by_split[Split.VALIDATION] & (by_split[Split.TRAIN] | by_split[Split.TEST])
    assert len(first.source_names) >= 5


def _image_keys(images: np.ndarray) -> set[bytes]:
    return {image.tobytes() for image in images}


@pytest.mark.parametrize("name", ["scans/digits", "scans/fashion-mnist", "scans/animal-mnist"])
def test_scans_are_balanced_image_disjoint_and_deterministic(name: str, cache: Path) -> None:
    if not builtin.info(name)["available"]:
        with pytest.raises(MissingDataError, match=builtin.info(name)["requires"][0]):
            builtin.load(name, use_cache=False)
        pytest.skip(f"{name}: {builtin.info(name)['install']}")
    sizes = builtin.default_sizes(name)
    data = builtin.load(name, use_cache=False)
    assert data.num_classes == 10
    assert_balanced(data, sizes)
    keys = {split: _image_keys(data.split(split)[0]) for split in NONE_FOR_SPLITS}
    assert len(keys[Split.TRAIN]) == 10 * sizes.train  # distinct inside a split too
    assert not keys[Split.TRAIN] & keys[Split.TEST]
    assert not keys[Split.TRAIN] & keys[Split.VALIDATION]
    assert not keys[Split.VALIDATION] & keys[Split.TEST]
    if name == "scans/digits":
        assert data.images.shape[1:] == (8, 8) and int(data.images.max()) == 255
        assert_same(data, builtin.load(name, use_cache=False))
        assert_same(data, builtin.load(name, cache_dir=cache))
        assert_same(data, builtin.load(name, cache_dir=cache))
    if name == "scans/fashion-mnist":
        assert all(s.startswith("t10k#") for s in np.array(data.source_names)[data.splits == Split.TEST])
        assert all(s.startswith("train#") for s in np.array(data.source_names)[data.splits != Split.TEST])
    with pytest.raises(ValueError, match="distinct images"):
        builtin.load(name, sizes=SplitSizes(10000, 1000, 1000), use_cache=False)


def test_missing_fonts_and_data_name_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "no-fonts"
    empty.mkdir()
    with pytest.raises(MissingDataError) as caught:
        builtin.load("chars/devanagari", font_dirs=[empty], use_cache=False)
    message = str(caught.value)
    assert "chars/devanagari" in message and "fonts-indic" in message and "apt-get install" in message
    assert "scripts/install-system-packages.sh" in message and str(empty) in message

    monkeypatch.setenv(fonts.FONT_DIRS_ENV, str(empty))  # the environment variable points discovery too
    with pytest.raises(MissingDataError, match="fonts-noto-cjk"):
        builtin.load("source/cjk", cache_dir=tmp_path / "cache")
    assert builtin.info("chars/greek")["available"] is False
    assert builtin.info("chars/greek")["requires"] == list(SCRIPTS["greek"].packages)
    monkeypatch.delenv(fonts.FONT_DIRS_ENV)

    with pytest.raises(MissingDataError, match="apt-get install dataset-fashion-mnist"):
        builtin.load("scans/fashion-mnist", data_dir=empty, use_cache=False)
    assert builtin.info("scans/fashion-mnist", data_dir=empty)["available"] is False
    with pytest.raises(KeyError, match="chars/greek"):
        builtin.load("chars/klingon")


def test_catalog_names_and_info() -> None:
    names = builtin.names()
    assert names == sorted(names)
    assert {"chars/latin-upper", "chars/hangul", "chars/ethiopic", "source/cjk", "scans/digits",
            "scans/fashion-mnist", "scans/animal-mnist"} <= set(names)
    about = builtin.info("scans/animal-mnist")
    assert about["kind"] == "scans" and about["classes"] == 10 and about["requires"] == ["animal-mnist"]
    assert {catalog.entry(n).kind for n in names if n.startswith("chars/")} == {"chars"}
    assert SplitSizes.parse("60,15,15") == SplitSizes(60, 15, 15)
    with pytest.raises(ValueError):
        SplitSizes.parse("60,15")


def test_cli_registers_a_builtin_task_and_lists_datasets(start_server, cache: Path) -> None:
    server = start_server()
    env = {**os.environ, "COLUMNS": "250", "TERM": "dumb", "MUNET_SERVE_CACHE": str(cache)}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=180, env=env)

    done = cli("tasks", "register", "greek", "--builtin", "chars/greek", "--sizes", "4,2,2",
               "--server", server.target)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "registered 'greek': 24 labels, state pending" in done.stdout
    with Client(server.target, timeout=60) as client:
        task = client.get_task("greek")
        assert task.labels == list("αβγδεζηθικλμνξοπρστυφχψω")
        assert (task.dataset.train_examples, task.dataset.validation_examples, task.dataset.test_examples) == (
            96, 48, 48)
        client.register(from_builtin("digits-scans", "scans/digits", sizes=SplitSizes(10, 3, 3), cache_dir=cache))
        assert client.get_task("digits-scans").dataset.test_examples == 30

    failed = cli("tasks", "register", "nope", "--builtin", "chars/klingon", "--server", server.target)
    assert failed.returncode == 2 and "no built-in dataset 'chars/klingon'" in failed.stdout
    listing = cli("datasets", "list")
    assert listing.returncode == 0, listing.stdout + listing.stderr
    lines = {line.split()[1]: line for line in listing.stdout.splitlines() if line.startswith("│ ")}
    assert set(builtin.names()) <= set(lines)
    assert "yes" in lines["chars/greek"] and " 24 " in lines["chars/greek"]
