"""Korean text in charts: a font with Hangul glyphs when one is installed (found by name, or by
its cmap on disk), else client names romanized, so a chart never shows tofu boxes."""

from __future__ import annotations

import re
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

from runbook.record.lazy import font_manager

BASE_FONT = "DejaVu Sans"  # matplotlib's own font: Latin, Greek, Cyrillic, ✓ ✗, no Hangul
# Fonts known to cover Hangul, in order of preference (Debian: fonts-noto-cjk, fonts-nanum,
# fonts-unfonts-core, fonts-baekmuk); any other installed font with Hangul is found by its cmap.
CJK_FONTS = (
    "Noto Sans CJK KR",
    "Noto Sans KR",
    "NanumGothic",
    "NanumBarunGothic",
    "Malgun Gothic",
    "Apple SD Gothic Neo",
    "AppleGothic",
    "UnDotum",
    "Baekmuk Gulim",
    "Noto Sans CJK JP",
    "Noto Sans CJK SC",
)
_HANGUL_SYLLABLES = re.compile("[\uac00-\ud7a3]+")
_OTHER_CJK = re.compile("[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u9fff\uf900-\ufaff]+")
_INITIALS = ("g", "kk", "n", "d", "tt", "r", "m", "b", "pp", "s", "ss", "", "j", "jj", "ch",
             "k", "t", "p", "h")  # fmt: skip
_VOWELS = ("a", "ae", "ya", "yae", "eo", "e", "yeo", "ye", "o", "wa", "wae", "oe", "yo", "u",
           "wo", "we", "wi", "yu", "eu", "ui", "i")  # fmt: skip
_FINALS = ("", "k", "k", "k", "n", "n", "n", "t", "l", "k", "m", "l", "l", "l", "p", "l", "m",
           "p", "p", "t", "t", "ng", "t", "t", "k", "t", "p", "t")  # fmt: skip


def romanize(text: str) -> str:
    """Hangul syllables in the Revised Romanization (syllable by syllable, without the sound
    changes across syllables), each run of them capitalized: `서울식품` → `Seoulsikpum`."""

    def syllables(match: re.Match[str]) -> str:
        out = []
        for char in match.group(0):
            code = ord(char) - 0xAC00
            initial, vowel, final = code // 588, code % 588 // 28, code % 28
            out.append(_INITIALS[initial] + _VOWELS[vowel] + _FINALS[final])
        return "".join(out).capitalize()

    return _HANGUL_SYLLABLES.sub(syllables, text)


def _has_hangul(path: str) -> bool:
    try:
        return 0xAC00 in font_manager.get_font(path).get_charmap()
    except (OSError, RuntimeError, ValueError):
        return False


def _font_files() -> list[str]:
    """Font files in the folders matplotlib knows, listed directly: without folders,
    findSystemFonts asks fc-list, and a kernel holding pandas and matplotlib that starts a
    process is counted twice by the tree's summed RSS until the child execs (measured: a whole
    run's peak 377 MiB instead of 283)."""
    if sys.platform == "win32":
        return font_manager.findSystemFonts()
    folders = [*font_manager.X11FontDirectories, *font_manager.OSXFontDirectories]
    return font_manager.findSystemFonts(fontpaths=[f for f in folders if Path(f).is_dir()])


@lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """The family of an installed font that has Hangul glyphs, or None. Fonts installed after
    matplotlib cached its font list are found on disk and added."""
    installed = {f.name: f.fname for f in font_manager.fontManager.ttflist}
    candidates = [name for name in CJK_FONTS if name in installed]
    candidates += sorted(n for n in installed if "CJK" in n or "Nanum" in n or n.endswith(" KR"))
    for name in dict.fromkeys(candidates):
        if _has_hangul(installed[name]):
            return name
    hints = ("nanum", "cjk", "kr", "unfonts", "baekmuk", "hangul", "malgun", "gothic")
    for path in sorted(_font_files()):
        if any(hint in Path(path).name.lower() for hint in hints) and _has_hangul(path):
            font_manager.fontManager.addfont(path)
            return font_manager.FontProperties(fname=path).get_name()
    return None


def label(text: Any, font: str | None = None) -> str:
    """A chart label that renders without tofu boxes: as is when a CJK font is installed (or
    `font` is given), else Hangul romanized and other CJK characters left out. Bytes that are
    not UTF-8 (kept as surrogates by the source reader) show as U+FFFD."""
    text = str(text).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if (font or cjk_font()) or not (_HANGUL_SYLLABLES.search(text) or _OTHER_CJK.search(text)):
        return text
    text = _OTHER_CJK.sub("", romanize(text))
    return re.sub(r"\s{2,}", " ", text).strip() or "?"
