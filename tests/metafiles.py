"""Image files with EXIF, XMP and IPTC written the way cameras and photo software write them.

Why in the tests and not the package: mwingest only *reads* metadata. Pillow writes EXIF (with
its GPS IFD) and XMP; IPTC-IIM it cannot write, so :func:`iptc_app13` builds the Photoshop APP13
segment byte by byte (IPTC IIM 4.2 §1.5, Photoshop's 8BIM resource 0x0404), as newsroom
software does, and :func:`jpeg_with_metadata` splices it after the JPEG's SOI marker.
"""

from __future__ import annotations

import io
import random
import secrets
import struct
from collections.abc import Mapping, Sequence
from fractions import Fraction


def _dms(value: float) -> tuple[Fraction, Fraction, Fraction]:
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = Fraction(round((value - degrees - minutes / 60) * 3600 * 10000), 10000)
    return Fraction(degrees), Fraction(minutes), seconds


def xmp_packet(*, creator: str | None = None, title: str | None = None,
               description: str | None = None, subjects: Sequence[str] = (),
               created: str | None = None, rights: str | None = None) -> bytes:
    """An XMP packet as Lightroom and darktable write it (``rdf:Alt``/``Seq``/``Bag``)."""
    parts = []
    if creator:
        parts.append(f"<dc:creator><rdf:Seq><rdf:li>{creator}</rdf:li></rdf:Seq></dc:creator>")
    if title:
        parts.append(f'<dc:title><rdf:Alt><rdf:li xml:lang="x-default">{title}</rdf:li></rdf:Alt></dc:title>')
    if description:
        parts.append(f'<dc:description><rdf:Alt><rdf:li xml:lang="x-default">{description}'
                     "</rdf:li></rdf:Alt></dc:description>")
    if rights:
        parts.append(f'<dc:rights><rdf:Alt><rdf:li xml:lang="x-default">{rights}'
                     "</rdf:li></rdf:Alt></dc:rights>")
    if subjects:
        items = "".join(f"<rdf:li>{s}</rdf:li>" for s in subjects)
        parts.append(f"<dc:subject><rdf:Bag>{items}</rdf:Bag></dc:subject>")
    if created:
        parts.append(f"<photoshop:DateCreated>{created}</photoshop:DateCreated>")
    return ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
            'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
            'xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/">'
            + "".join(parts) + '</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
            ).encode("utf-8")


def iptc_app13(records: Mapping[tuple[int, int], str | Sequence[str]]) -> bytes:
    """A JPEG APP13 segment holding IPTC-IIM datasets (UTF-8, declared by dataset 1:90)."""
    iim = b"\x1c\x01\x5a\x00\x03\x1b\x25\x47"  # 1:90 coded character set = ESC % G (UTF-8)
    for (record, dataset), values in records.items():
        for value in [values] if isinstance(values, str) else values:
            data = value.encode("utf-8")
            iim += struct.pack(">BBBH", 0x1C, record, dataset, len(data)) + data
    if len(iim) % 2:
        iim += b"\x00"
    resource = b"8BIM" + struct.pack(">H", 0x0404) + b"\x00\x00" + struct.pack(">I", len(iim)) + iim
    body = b"Photoshop 3.0\x00" + resource
    return b"\xff\xed" + struct.pack(">H", len(body) + 2) + body


def jpeg_with_metadata(*, size: tuple[int, int] = (40, 30), artist: str | bytes | None = None,
                       date: str | None = None, gps: tuple[float, float] | None = None,
                       orientation: int | None = None, make: str | None = None,
                       model: str | None = None, copyright: str | bytes | None = None,
                       description: str | bytes | None = None, xmp: bytes | None = None,
                       iptc: Mapping[tuple[int, int], str | Sequence[str]] | None = None) -> bytes:
    """A unique JPEG with the EXIF tags given (``date`` as EXIF's ``2024:05:06 07:08:09``),
    an XMP packet and an IPTC block. A text tag given as bytes is written as those bytes (UTF-8
    as cameras and Lightroom write it, or cp1252); Pillow writes a ``str`` as ASCII."""
    from PIL import Image

    rng = random.Random(secrets.randbits(64))
    image = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    exif = Image.Exif()
    for tag, value in ((0x013B, artist), (0x0112, orientation), (0x010F, make), (0x0110, model),
                       (0x8298, copyright), (0x010E, description), (0x0132, date)):
        if value is not None:
            exif[tag] = value
    if date:
        exif.get_ifd(0x8769)[0x9003] = date
    if gps:
        lat, lon = gps
        exif.get_ifd(0x8825).update({0: b"\x02\x03\x00\x00", 1: "N" if lat >= 0 else "S",
                                     2: _dms(lat), 3: "E" if lon >= 0 else "W", 4: _dms(lon)})
    buf = io.BytesIO()
    kwargs = {"xmp": xmp} if xmp else {}
    image.save(buf, format="JPEG", quality=90, exif=exif, comment=rng.randbytes(8).hex().encode(),
               **kwargs)
    data = buf.getvalue()
    if iptc:
        data = data[:2] + iptc_app13(iptc) + data[2:]
    return data
