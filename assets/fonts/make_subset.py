#!/usr/bin/env python3
"""Rebuilds the two label fonts from Debian's Noto packages.

The Rust build only reads the committed font files; this script is for
whoever wants to change their coverage. It needs apt-get and dpkg (to fetch
and unpack the packages) and fontTools (`pip install fonttools`).

    python3 assets/fonts/make_subset.py             # fetch, unpack, subset
    python3 assets/fonts/make_subset.py UNPACKED    # use packages already
                                                    # unpacked under UNPACKED

The CJK character lists come from the legacy national encodings, decoded
with Python's own codecs, so no list has to be typed in or downloaded.
"""

import pathlib
import subprocess
import sys
import tempfile

from fontTools import subset

HERE = pathlib.Path(__file__).resolve().parent
PACKAGES = ["fonts-noto-core=20201225-1", "fonts-noto-cjk=1:20220127+repack1-1"]


def decoded(codec, rows):
    """Every character of the 94×94 double-byte table `codec` in `rows`."""
    out = []
    for row in rows:
        for col in range(0xA1, 0xFF):
            try:
                out.append(bytes([row, col]).decode(codec))
            except UnicodeDecodeError:
                pass
    return out


def spans(*ranges):
    return [chr(c) for lo, hi in ranges for c in range(lo, hi + 1)]


def latin_characters():
    return spans(
        (0x0020, 0x007E),  # ASCII
        (0x00A0, 0x024F),  # Latin-1 Supplement, Latin Extended-A and -B
        (0x0370, 0x03FF),  # Greek
        (0x0400, 0x04FF),  # Cyrillic
        (0x1E00, 0x1EFF),  # Latin Extended Additional (Vietnamese)
        (0x2010, 0x205E),  # general punctuation: dashes, quotes, ellipsis
        (0x20A0, 0x20BF),  # currency signs
        (0x2116, 0x2116),  # numero sign
        (0x2122, 0x2122),  # trade mark sign
    )


def cjk_characters():
    chars = spans(
        (0x3000, 0x303F),  # CJK symbols and punctuation
        (0x3040, 0x30FF),  # hiragana, katakana
        (0x31F0, 0x31FF),  # katakana phonetic extensions
        (0xFF01, 0xFF5E),  # fullwidth ASCII forms
        (0xFF61, 0xFF9F),  # halfwidth kana
    )
    # GB 2312: the symbol rows, then the 3755 level-1 hanzi, the most
    # common simplified characters.
    chars += decoded("gb2312", range(0xA1, 0xAA))
    chars += decoded("gb2312", range(0xB0, 0xD8))
    # JIS X 0208 level 1: 2965 kanji, nearly all of the jōyō list.
    chars += decoded("euc_jp", range(0xB0, 0xD0))
    # KS X 1001: the 2350 common Hangul syllables.
    chars += decoded("euc_kr", range(0xB0, 0xC9))
    return chars


# (font inside the unpacked packages, face of a collection, characters, output)
FONTS = [
    (
        "usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
        0,
        latin_characters,
        "NotoSans-Regular-subset.ttf",
    ),
    (
        # Face 2 of the collection is Noto Sans CJK SC: Chinese glyph forms,
        # since Qwen models name things in Chinese most often.
        "usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
        2,
        cjk_characters,
        "NotoSansCJKsc-Regular-subset.otf",
    ),
]


def unpack(workdir):
    subprocess.run(["apt-get", "download", *PACKAGES], cwd=workdir, check=True)
    for deb in sorted(pathlib.Path(workdir).glob("*.deb")):
        subprocess.run(["dpkg", "-x", str(deb), "root"], cwd=workdir, check=True)
    return pathlib.Path(workdir) / "root"


def make(source, face, characters, output):
    options = subset.Options()
    options.font_number = face
    # Labels are drawn glyph by glyph: no shaping tables, hints or vertical
    # metrics are read, so they are dropped to keep the files small.
    options.layout_features = []
    options.hinting = False
    options.drop_tables += ["GSUB", "GPOS", "GDEF", "BASE", "DSIG", "gasp"]
    options.drop_tables += ["vhea", "vmtx", "VORG"]
    options.name_IDs = [0, 1, 2, 3, 4, 5, 6, 7, 13, 14]
    font = subset.load_font(str(source), options)
    subsetter = subset.Subsetter(options)
    wanted = sorted({ord(c) for c in characters})
    subsetter.populate(unicodes=wanted)
    subsetter.subset(font)
    out = HERE / output
    subset.save_font(font, str(out), options)
    present = len(set(wanted) & set(font.getBestCmap()))
    print(f"{output}: {present} of {len(wanted)} characters, {out.stat().st_size} bytes")


def main():
    with tempfile.TemporaryDirectory() as workdir:
        root = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else unpack(workdir)
        for path, face, characters, output in FONTS:
            make(root / path, face, characters(), output)


if __name__ == "__main__":
    main()
