"""Text files in the encoding they were written in: a BOM (UTF-8, UTF-16 or UTF-32, either byte
order) decides; else UTF-8 if the bytes are UTF-8; else the encoding charset-normalizer finds
(GB2312/GB18030, Big5, Shift-JIS, cp1252, cp1251 …). The encoding used is returned with the text,
so the build can say which it used."""

from __future__ import annotations

import codecs

import charset_normalizer
import fsspec

from .common import Malformed

# Longest first: UTF-32 LE's BOM starts with UTF-16 LE's.
BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def decode(data: bytes, encoding: str | None = None) -> tuple[str, str]:
    """(text, encoding) of a whole file's bytes; Malformed when no encoding reads them. With
    ``encoding`` (``input.subtitles.encoding``), that one, after a BOM of its own."""
    if encoding is not None:
        name = codecs.lookup(encoding).name
        try:
            return data.decode("utf-8-sig" if name == "utf-8" else name), name
        except UnicodeDecodeError as e:
            line = data[: e.start].count(b"\n") + 1
            raise Malformed(line, f"not {encoding} text (input.subtitles.encoding)") from None
    for bom, name in BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(name), name
            except UnicodeDecodeError as e:
                raise Malformed(None, f"not {name} text after its BOM (byte {e.start})") from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    best = charset_normalizer.from_bytes(data).best()
    if best is None:
        raise Malformed(None, "not text in any encoding charset-normalizer knows")
    return str(best), codecs.lookup(best.encoding).name


def read_decoded(url: str, encoding: str | None = None) -> tuple[str, str]:
    """A whole (possibly compressed) text file, decoded: (text, encoding)."""
    with fsspec.open(url, "rb", compression="infer") as f:
        return decode(f.read(), encoding)
