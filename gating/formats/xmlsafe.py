"""Untrusted XML (Gating-ML, FlowJo workspaces) is checked here before any parser sees it.

FlowKit parses with lxml's *global* default parser, so its safety depends on settings any
code in the process can change. Neither Gating-ML nor a FlowJo workspace needs a DTD, so any
``<!DOCTYPE`` or ``<!ENTITY`` (external entities that read local files, entity expansion
bombs) is refused outright, documents over a size cap are refused, and well-formedness is
checked with an explicit no-entities, no-network, no-DTD parser. FlowKit then receives the
checked bytes in memory, never the path.
"""
from __future__ import annotations

import codecs
import io
import re
from pathlib import Path

from lxml import etree

#: Largest XML document read (bytes); FlowJo workspaces of thousands of samples stay below it.
MAX_XML_BYTES = 64 * 2**20
_DECL = re.compile(r"<!\s*(DOCTYPE|ENTITY|ELEMENT|ATTLIST)", re.IGNORECASE)
_XINCLUDE = re.compile(r"www\.w3\.org/(2001|2003)/XInclude", re.IGNORECASE)
_SAFE_PARSER = dict(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                    huge_tree=False, remove_pis=True)


class UnsafeXMLError(ValueError):
    """An XML document was refused before parsing; the message says why."""


def _as_text(data: bytes) -> str:
    """The document as text for scanning, whatever its encoding (BOMs, UTF-16/32)."""
    for bom, enc in ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
                     (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                     (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(bom):
            return data.decode(enc, errors="replace")
    if data[:4] in (b"<\x00?\x00", b"<\x00!\x00"):
        return data.decode("utf-16-le", errors="replace")
    if data[:4] in (b"\x00<\x00?", b"\x00<\x00!"):
        return data.decode("utf-16-be", errors="replace")
    return data.decode("utf-8", errors="replace")


def checked_xml(source, what: str = "XML document", max_bytes: int | None = None) -> bytes:
    """The bytes of ``source`` (a path or bytes) after the checks above; raises :class:`UnsafeXMLError`."""
    max_bytes = MAX_XML_BYTES if max_bytes is None else max_bytes
    if isinstance(source, (bytes, bytearray)):
        data, name = bytes(source), what
    else:
        path = Path(source)
        name = f"{what} {path}"
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise UnsafeXMLError(f"{name}: cannot be read ({exc.strerror})") from exc
        if size > max_bytes:
            raise UnsafeXMLError(f"{name}: {size / 2**20:.1f} MiB is over the {max_bytes / 2**20:.0f} MiB limit "
                                 f"for XML documents (gating.formats.xmlsafe.MAX_XML_BYTES)")
        data = path.read_bytes()
    if len(data) > max_bytes:
        raise UnsafeXMLError(f"{name}: {len(data) / 2**20:.1f} MiB is over the {max_bytes / 2**20:.0f} MiB limit")
    text = _as_text(data)
    m = _DECL.search(text)
    if m:
        line = text.count("\n", 0, m.start()) + 1
        raise UnsafeXMLError(
            f"{name}, line {line}: refused: it declares '<!{m.group(1).upper()}'. Gating-ML and FlowJo workspaces "
            f"never need a DTD or entities, and entities can read local files (XXE) or expand without bound")
    if _XINCLUDE.search(text):
        raise UnsafeXMLError(f"{name}: refused: it uses XInclude, which can pull in other files")
    try:
        etree.parse(io.BytesIO(data), etree.XMLParser(**_SAFE_PARSER))
    except etree.XMLSyntaxError as exc:
        raise UnsafeXMLError(f"{name}: not well-formed XML ({exc})") from exc
    return data
