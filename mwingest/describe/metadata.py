"""What a file says about itself: EXIF, XMP and IPTC read into the fields a description needs.

Why: archivists' tools (UploadWizard, Pattypan) fill date, author and place from the file, and a
person who has already typed a caption into their photo software should not type it again. The
fields (:data:`FIELDS`) are offered to the text template next to the manifest's columns; a
column with a value always wins over the file (:func:`template_values`).

Sources, first found wins per field: EXIF (the camera's own record), then XMP (what editing
software writes), then IPTC-IIM (what older newsroom software writes). MediaWiki reads the same
three blocks (``BitmapMetadataHandler``) and shows them as ``iiprop=commonmetadata``; the
integration tests check that it reads the same date, author and position we do.

GPS is a field like the others, but it becomes a ``{{Location}}`` line only when the caller asks
(:func:`add_location`): a photo's position can say where someone lives. Reading never raises:
a file Pillow cannot open has no metadata (validation says what is wrong with it). XMP is parsed
with ``defusedxml``: the packet comes from the file, and files come from strangers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

#: The template fields read from a file, in the order a spreadsheet shows them.
FIELDS = ("date", "author", "copyright", "title", "description", "keywords", "gps.lat", "gps.lon",
          "camera", "width", "height")
#: Extensions Pillow opens for metadata; other types (PDF, audio, SVG) have none here.
_IMAGE_EXTS = {"jpg", "jpeg", "jpe", "png", "tif", "tiff", "webp"}

# EXIF tags (TIFF/EXIF 2.32): IFD0, the Exif sub-IFD and the GPS IFD.
_IMAGE_DESCRIPTION, _MAKE, _MODEL, _ORIENTATION = 0x010E, 0x010F, 0x0110, 0x0112
_DATETIME, _ARTIST, _COPYRIGHT = 0x0132, 0x013B, 0x8298
_EXIF_IFD, _GPS_IFD, _DATETIME_ORIGINAL = 0x8769, 0x8825, 0x9003
_XP_TITLE = 0x9C9B
# IPTC-IIM record 2 datasets.
_IPTC = {"title": (2, 5), "keywords": (2, 25), "date": (2, 55), "time": (2, 60), "author": (2, 80),
         "copyright": (2, 116), "description": (2, 120)}
_NS = {"rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#", "dc": "http://purl.org/dc/elements/1.1/",
       "xmp": "http://ns.adobe.com/xap/1.0/", "photoshop": "http://ns.adobe.com/photoshop/1.0/",
       "exif": "http://ns.adobe.com/exif/1.0/", "tiff": "http://ns.adobe.com/tiff/1.0/"}


@dataclass(frozen=True)
class FileMetadata:
    """The fields found in one file (missing ones are absent), and where each came from."""

    values: Mapping[str, Any] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)  # field -> "exif" | "xmp" | "iptc"

    def fields(self) -> dict[str, Any]:
        """Every field of :data:`FIELDS`, ``""`` where the file says nothing (a template that
        names ``{author}`` works for files without one)."""
        return {name: self.values.get(name, "") for name in FIELDS}

    @property
    def gps(self) -> tuple[float, float] | None:
        lat, lon = self.values.get("gps.lat"), self.values.get("gps.lon")
        return (lat, lon) if isinstance(lat, float) and isinstance(lon, float) else None


def read_metadata(path: str) -> FileMetadata:
    """EXIF, XMP and IPTC of the image at ``path``; an empty result for anything else."""
    if path.rsplit(".", 1)[-1].lower() not in _IMAGE_EXTS:
        return FileMetadata()
    try:
        from PIL import Image, IptcImagePlugin

        with Image.open(path) as im:  # header only: no pixel is decoded
            exif = im.getexif()
            found = [("exif", _from_exif(exif)), ("xmp", _from_xmp(_xmp_packet(im, exif))),
                     ("iptc", _from_iptc(IptcImagePlugin.getiptcinfo(im) or {}))]
            width, height = im.size
    except Exception:  # noqa: BLE001 - a file Pillow cannot read has no metadata to offer
        return FileMetadata()
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for origin, got in found:
        for name, value in got.items():
            if name not in values and value not in ("", None, ()):
                values[name], sources[name] = value, origin
    if exif.get(_ORIENTATION) in (5, 6, 7, 8):  # rotated a quarter turn: shown the other way round
        width, height = height, width
    values["width"], values["height"] = width, height
    return FileMetadata(values, sources)


# --- EXIF ------------------------------------------------------------------------------------------

def _text(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).strip("\x00 \t\r\n") if value is not None else ""


def _exif_text(value: Any) -> str:
    """An EXIF ASCII tag as the file means it. The standard says 7-bit ASCII; cameras and photo
    software (Lightroom, exiftool, phones) write UTF-8, older Windows software cp1252. Pillow hands
    the bytes over decoded as latin-1 (``Zoë`` arrives as ``ZoÃ«``), so they are taken back to bytes
    and read as UTF-8 when they are valid UTF-8, else as cp1252 (latin-1 for its five unassigned
    bytes). MediaWiki 1.39 drops such tags instead (``Exif::isASCII``): it shows no Artist then."""
    if isinstance(value, str):
        if value.isascii() or any(ord(c) > 0xFF for c in value):
            return _text(value)
        value = value.encode("latin-1")
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            value = "".join(_cp1252(b) for b in value)
    return _text(value)


def _cp1252(byte: int) -> str:
    try:
        return bytes([byte]).decode("cp1252")
    except UnicodeDecodeError:  # 0x81, 0x8D, 0x8F, 0x90, 0x9D: unassigned in cp1252
        return chr(byte)


def _camera(make: str, model: str) -> str:
    """``Canon`` + ``Canon EOS 5D`` is ``Canon EOS 5D``: many cameras repeat the make in the
    model; so does ``NIKON CORPORATION`` + ``NIKON D750`` (its first word) → ``NIKON D750``."""
    if not make or not model:
        return make or model
    said, first = model.casefold(), make.split()[0].casefold()
    if said == make.casefold() or said.startswith(make.casefold() + " ") or said.split()[0] == first:
        return model
    return f"{make} {model}"


def _exif_date(value: Any) -> str:
    """``2024:05:06 07:08:09`` (EXIF's form) as ISO ``2024-05-06 07:08:09``."""
    text = _text(value)
    match = re.fullmatch(r"(\d{4}):(\d{2}):(\d{2})(?:[ T](\d{2}:\d{2}(?::\d{2})?))?", text)
    if not match:
        return text
    year, month, day, clock = match.groups()
    return f"{year}-{month}-{day}" + (f" {clock}" if clock else "")


def _from_exif(exif: Any) -> dict[str, Any]:
    sub = exif.get_ifd(_EXIF_IFD)
    out: dict[str, Any] = {
        "date": _exif_date(sub.get(_DATETIME_ORIGINAL) or exif.get(_DATETIME)),
        "author": _exif_text(exif.get(_ARTIST)), "copyright": _exif_text(exif.get(_COPYRIGHT)),
        "description": _exif_text(exif.get(_IMAGE_DESCRIPTION)),
        "camera": _camera(_exif_text(exif.get(_MAKE)), _exif_text(exif.get(_MODEL))),
    }
    if exif.get(_XP_TITLE):  # Windows' own title tag, UTF-16
        out["title"] = bytes(exif[_XP_TITLE]).decode("utf-16-le", "replace").strip("\x00")
    gps = exif.get_ifd(_GPS_IFD)
    lat, lon = _gps_degrees(gps.get(2), gps.get(1)), _gps_degrees(gps.get(4), gps.get(3))
    if lat is not None and lon is not None:
        out["gps.lat"], out["gps.lon"] = lat, lon
    return out


def _gps_degrees(dms: Any, ref: Any) -> float | None:
    """Degrees, minutes, seconds (three rationals) and a hemisphere letter as signed degrees."""
    try:
        d, m, s = (Fraction(str(float(x))) if not isinstance(x, tuple) else Fraction(*x) for x in dms)
        degrees = float(d + m / 60 + s / 3600)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return round(-degrees if _text(ref).upper() in ("S", "W") else degrees, 6)


# --- XMP -------------------------------------------------------------------------------------------

def _xmp_packet(im: Any, exif: Any) -> bytes | None:
    """The raw XMP packet wherever Pillow keeps it for this format (JPEG APP1, PNG iTXt, TIFF 700)."""
    for key in ("xmp", "XML:com.adobe.xmp"):
        packet = im.info.get(key)
        if packet:
            return packet if isinstance(packet, bytes) else str(packet).encode("utf-8")
    packet = exif.get(700)
    return bytes(packet) if packet else None


def _from_xmp(packet: bytes | None) -> dict[str, Any]:
    if not packet:
        return {}
    from defusedxml import ElementTree

    try:
        root = ElementTree.fromstring(packet.strip(b"\x00 \r\n\t"))
    except Exception:  # noqa: BLE001 - malformed or hostile XML (entities): no XMP
        return {}
    first = lambda ns, name: next(iter(_xmp_values(root, ns, name)), "")  # noqa: E731
    out: dict[str, Any] = {
        "date": _iso_date(first("exif", "DateTimeOriginal") or first("photoshop", "DateCreated")
                          or first("xmp", "CreateDate")),
        "author": "; ".join(_xmp_values(root, "dc", "creator")),
        "copyright": first("dc", "rights"), "title": first("dc", "title"),
        "description": first("dc", "description"),
        "keywords": ", ".join(_xmp_values(root, "dc", "subject")),
    }
    lat, lon = _xmp_gps(first("exif", "GPSLatitude")), _xmp_gps(first("exif", "GPSLongitude"))
    if lat is not None and lon is not None:
        out["gps.lat"], out["gps.lon"] = lat, lon
    return out


def _xmp_values(root: Any, ns: str, name: str) -> list[str]:
    """A property's values: an attribute of ``rdf:Description``, plain element text, or the
    ``rdf:li`` items of an ``Alt``/``Seq``/``Bag`` (for ``Alt``, the default language first)."""
    tag = f"{{{_NS[ns]}}}{name}"
    values: list[str] = []
    for desc in root.iter(f"{{{_NS['rdf']}}}Description"):
        if tag in desc.attrib:
            values.append(desc.attrib[tag].strip())
    for element in root.iter(tag):
        items = list(element.iter(f"{{{_NS['rdf']}}}li"))
        items.sort(key=lambda li: li.get("{http://www.w3.org/XML/1998/namespace}lang") != "x-default")
        values.extend((li.text or "").strip() for li in items)
        if not items and (element.text or "").strip():
            values.append(element.text.strip())
    return [v for v in values if v]


def _iso_date(text: str) -> str:
    """An XMP date (``2024-05-06T07:08:09+02:00``) as ``2024-05-06 07:08:09`` (zone dropped, as
    EXIF has none)."""
    match = re.match(r"(\d{4}-\d{2}-\d{2})(?:T(\d{2}:\d{2}(?::\d{2})?))?", text)
    if not match:
        return text
    return match.group(1) + (f" {match.group(2)}" if match.group(2) else "")


def _xmp_gps(text: str) -> float | None:
    """XMP's ``52,31.2N`` or ``52,31,12N`` (degrees, minutes[, seconds], hemisphere) in degrees."""
    match = re.fullmatch(r"(\d+),(\d+(?:\.\d+)?)(?:,(\d+(?:\.\d+)?))?([NSEW])", text.strip())
    if not match:
        return None
    deg, minutes, seconds, ref = match.groups()
    value = int(deg) + float(minutes) / 60 + float(seconds or 0) / 3600
    return round(-value if ref in "SW" else value, 6)


# --- IPTC ------------------------------------------------------------------------------------------

def _from_iptc(info: Mapping[tuple[int, int], Any]) -> dict[str, Any]:
    def values(key: str) -> list[str]:
        raw = info.get(_IPTC[key])
        items = raw if isinstance(raw, list) else [raw] if raw else []
        return [_text(item) for item in items if _text(item)]

    first = lambda key: next(iter(values(key)), "")  # noqa: E731
    date = first("date")
    if re.fullmatch(r"\d{8}", date):
        date = f"{date[:4]}-{date[4:6]}-{date[6:]}"
        clock = first("time")
        if re.match(r"\d{6}", clock):
            date += f" {clock[:2]}:{clock[2:4]}:{clock[4:6]}"
    return {"date": date, "author": "; ".join(values("author")), "copyright": first("copyright"),
            "title": first("title"), "description": first("description"),
            "keywords": ", ".join(values("keywords"))}


# --- in the page text ------------------------------------------------------------------------------

def location_line(meta: FileMetadata) -> str | None:
    """``{{Location|lat|lon}}`` (Commons' template for where a photo was taken), or None."""
    if meta.gps is None:
        return None
    lat, lon = meta.gps
    return f"{{{{Location|{lat:.6f}|{lon:.6f}}}}}"


def add_location(text: str, meta: FileMetadata) -> str:
    """The page text with a ``{{Location}}`` line before its first category (or at its end), when
    the file has a position and the text has no ``{{Location`` yet."""
    line = location_line(meta)
    if line is None or "{{location" in text.lower():
        return text
    match = re.search(r"^\s*\[\[\s*category\s*:", text, re.I | re.M)
    if match:
        return text[:match.start()] + line + "\n" + text[match.start():]
    return text.rstrip("\n") + "\n" + line + "\n"


def _number(name: str, value: Any) -> Any:
    """A sheet gives text back: ``gps.lat`` as a float and ``width`` as an int again, so that
    ``{gps.lat:.4f}`` works for a corrected position too."""
    if isinstance(value, str):
        try:
            if name in ("gps.lat", "gps.lon"):
                return float(value)
            if name in ("width", "height"):
                return int(value)
        except ValueError:
            return value
    return value


def template_values(row: Mapping[str, Any], meta: FileMetadata) -> dict[str, Any]:
    """What a text template is filled from: the file's fields, then every column of the row that
    has a value (a column wins over the file; an empty cell does not hide the file's value), and
    ``category_links`` made from a ``categories`` column (``a; b`` or ``a|b``)."""
    values: dict[str, Any] = {k: "" for k in row}
    values.update(meta.fields())
    values.update({k: _number(k, v) for k, v in row.items() if v is not None and str(v).strip()})
    categories = [c.strip() for c in re.split(r"[;|\n]", str(values.get("categories") or "")) if c.strip()]
    values["category_links"] = "\n".join(
        f"[[Category:{c.removeprefix('Category:').strip()}]]" for c in categories)
    return values
