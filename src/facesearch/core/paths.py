"""How a file's path is written wherever text must be valid UTF-8: the catalog, reports, JSON, messages.

POSIX file names are bytes; Python holds the bytes that are not UTF-8 as lone surrogates (``os.fsdecode``'s
``surrogateescape``), which SQLite, JSON and a UTF-8 terminal refuse. ``path_text`` keeps every name that is
valid UTF-8 as it is and writes each byte of a name that is not as ``\\xNN`` (``caf\\xe9.jpg`` for the Latin-1
``café.jpg``): valid UTF-8 always, and lossless for names with no backslash of their own, which can be turned
back into the bytes with ``path_bytes``.
"""

from __future__ import annotations

import os
from pathlib import Path


def path_text(path: Path | str) -> str:
    """``path`` as valid UTF-8 text: unchanged when its name is UTF-8, ``\\xNN`` for each byte that is not."""
    return utf8_text(os.fsdecode(path))


def utf8_text(text: str) -> str:
    """``text`` unchanged when it is valid UTF-8; else with its undecodable bytes (and any lone surrogate)
    written as ``\\xNN``/``\\udNNN``: the last guard before JSON, SQL or a terminal."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape" if _escapes_only(text) else "backslashreplace").decode(
            "utf-8", "backslashreplace"
        )
    return text


def _escapes_only(text: str) -> bool:
    """Whether every lone surrogate in ``text`` is one ``surrogateescape`` made from an undecodable byte."""
    return all(not 0xD800 <= ord(char) <= 0xDFFF or 0xDC80 <= ord(char) <= 0xDCFF for char in text)


def path_bytes(text: str) -> bytes:
    """The file name bytes that ``path_text`` wrote as ``text`` (for names without a backslash of their own)."""
    out = bytearray()
    index = 0
    while index < len(text):
        if text.startswith("\\x", index) and index + 4 <= len(text):
            out.append(int(text[index + 2 : index + 4], 16))
            index += 4
        else:
            out += text[index].encode("utf-8")
            index += 1
    return bytes(out)
