"""The character sets of the rendered datasets: one class per character, and the Debian packages that supply fonts.

Sets are chosen so that every class stays distinguishable after a glyph is cropped to its ink and scaled to a fixed
size: small kana (ぁ, っ, ...) and Hebrew final forms are left out because, scaled up, they are their full-size letters.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass


def _letters(first: int, last: int, exclude: str = "") -> str:
    """Every assigned letter (category L*) from `first` to `last` inclusive, minus `exclude`."""
    return "".join(
        chr(c) for c in range(first, last + 1) if unicodedata.category(chr(c)).startswith("L") and chr(c) not in exclude
    )


SMALL_HIRAGANA = "ぁぃぅぇぉっゃゅょゎ"
SMALL_KATAKANA = "ァィゥェォッャュョヮ"
HEBREW_FINALS = "ךםןףץ"


@dataclass(frozen=True)
class Script:
    """A rendered character set: the characters (one class each), a description, and the Debian packages whose fonts
    cover it (`packages`: enough for three families here; `more`: packages that add further families)."""

    key: str
    chars: str
    description: str
    packages: tuple[str, ...]
    more: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(set(self.chars)) != len(self.chars):
            raise ValueError(f"{self.key}: repeated characters")


LATIN_PACKAGES = ("fonts-dejavu-core", "fonts-freefont-ttf", "fonts-liberation", "fonts-noto-core")
INDIC_PACKAGES = ("fonts-indic", "fonts-noto-core")
JAPANESE_PACKAGES = ("fonts-noto-cjk", "fonts-ipafont", "fonts-vlgothic")

SCRIPTS: dict[str, Script] = {
    s.key: s
    for s in [
        Script("latin-upper", _letters(0x41, 0x5A), "Latin capital letters A-Z", LATIN_PACKAGES,
               ("fonts-urw-base35", "fonts-noto-extra")),
        Script("latin-lower", _letters(0x61, 0x7A), "Latin small letters a-z", LATIN_PACKAGES,
               ("fonts-urw-base35", "fonts-noto-extra")),
        Script("digits", "0123456789", "decimal digits 0-9", LATIN_PACKAGES, ("fonts-urw-base35", "fonts-noto-extra")),
        Script("greek", _letters(0x3B1, 0x3C9, exclude="ς"), "Greek small letters α-ω (no final sigma)",
               ("fonts-dejavu-core", "fonts-freefont-ttf", "fonts-noto-core", "fonts-gfs-didot"),
               ("fonts-urw-base35",)),
        Script("cyrillic", _letters(0x430, 0x44F), "Cyrillic small letters а-я",
               ("fonts-dejavu-core", "fonts-freefont-ttf", "fonts-liberation", "fonts-noto-core"),
               ("fonts-urw-base35",)),
        Script("arabic", "ابتثجحخدذرزسشصضطظعغفقكلمنهوي", "Arabic letters, isolated forms",
               ("fonts-hosny-amiri", "fonts-kacst", "fonts-noto-core"), ("fonts-arabeyes",)),
        Script("hebrew", _letters(0x5D0, 0x5EA, exclude=HEBREW_FINALS), "Hebrew letters א-ת (no final forms)",
               ("fonts-noto-core", "fonts-freefont-ttf", "fonts-dejavu-core"), ("culmus",)),
        Script("devanagari", _letters(0x915, 0x939), "Devanagari consonants क-ह", INDIC_PACKAGES),
        Script("bengali", _letters(0x995, 0x9B9), "Bengali consonants ক-হ", INDIC_PACKAGES),
        Script("telugu", _letters(0xC15, 0xC39, exclude="ఴ"), "Telugu consonants క-హ", INDIC_PACKAGES),
        Script("tamil", "கஙசஞடணதநபமயரலவழளறன", "Tamil consonants", INDIC_PACKAGES),
        Script("gujarati", _letters(0xA95, 0xAB9), "Gujarati consonants ક-હ", INDIC_PACKAGES),
        Script("hiragana", _letters(0x3041, 0x3093, exclude=SMALL_HIRAGANA), "Hiragana あ-ん (no small kana)",
               JAPANESE_PACKAGES, ("fonts-takao", "fonts-noto-cjk-extra")),
        Script("katakana", _letters(0x30A1, 0x30F3, exclude=SMALL_KATAKANA), "Katakana ア-ン (no small kana)",
               JAPANESE_PACKAGES, ("fonts-takao", "fonts-noto-cjk-extra")),
        Script("hangul", "가나다라마바사아자차카타파하고노도로모보소오조호", "a sample of 24 Hangul syllables",
               ("fonts-noto-cjk", "fonts-nanum"), ("fonts-unfonts-core", "fonts-baekmuk")),
        Script("thai", _letters(0xE01, 0xE2E), "Thai consonants ก-ฮ", ("fonts-noto-core", "fonts-freefont-ttf"),
               ("fonts-thai-tlwg",)),
        Script("georgian", _letters(0x10D0, 0x10F0), "Georgian Mkhedruli letters ა-ჰ",
               ("fonts-noto-core", "fonts-dejavu-core", "fonts-freefont-ttf")),
        Script("armenian", _letters(0x561, 0x586), "Armenian small letters ա-ֆ",
               ("fonts-noto-core", "fonts-dejavu-core", "fonts-freefont-ttf")),
        Script("ethiopic", "".join(chr(c) for c in (
            0x1200, 0x1208, 0x1210, 0x1218, 0x1220, 0x1228, 0x1230, 0x1238, 0x1240, 0x1260, 0x1270, 0x1278, 0x1280,
            0x1290, 0x1298, 0x12A0, 0x12A8, 0x12B8, 0x12C8, 0x12D0, 0x12D8, 0x12E0, 0x12E8, 0x12F0, 0x1300, 0x1308,
            0x1320, 0x1328, 0x1330, 0x1338, 0x1340, 0x1348, 0x1350)),
            "Ethiopic syllables, first order of 33 consonants (ሀ, ለ, ሐ, ...)",
            ("fonts-noto-core", "fonts-freefont-ttf"), ("fonts-sil-abyssinica",)),
    ]
}

# Ideographs that look like kana (ロ/口, エ/工, カ/力, ...) are kept out of the pretraining source.
KANA_LOOKALIKES = "一二三口工力夕八卜千才丁乂夂匕乙了"
CJK_PACKAGES = JAPANESE_PACKAGES


def frequent_ideographs() -> str:
    """CJK unified ideographs (U+4E00..U+9FFF) that are in the first, most-used level of all three of GB 2312,
    JIS X 0208 and Big5, in code-point order: common in Chinese and Japanese alike, found with stdlib codecs only."""
    out = []
    for code in range(0x4E00, 0xA000):
        ch = chr(code)
        if ch in KANA_LOOKALIKES or not _level1(ch):
            continue
        out.append(ch)
    return "".join(out)


def _level1(ch: str) -> bool:
    try:
        gb, jis, big5 = ch.encode("gb2312"), ch.encode("euc_jp"), ch.encode("big5")
    except UnicodeEncodeError:
        return False
    # GB 2312 level 1: rows 16-55 (lead byte 0xB0-0xD7); JIS X 0208 level 1: rows 16-47 (EUC lead 0xB0-0xCF);
    # Big5 frequent hanzi: 0xA440-0xC67E.
    big5_code = int.from_bytes(big5, "big")
    return 0xB0 <= gb[0] <= 0xD7 and len(jis) == 2 and 0xB0 <= jis[0] <= 0xCF and 0xA440 <= big5_code <= 0xC67E
