"""Is a NIfTI file complete? ITK's reader fills a short file with zeros and its writer can stop
short on a full disk without an error, so both ends check the byte count against the header.

A .nii file must hold vox_offset + nvox * bitpix / 8 bytes. A .nii.gz stream must decompress
to that many: its gzip trailer (the length modulo 2^32) is compared first, which costs nothing;
only when it disagrees is the stream decompressed to count the bytes (a truncated stream fails
there). NIfTI-1 (348-byte header) and NIfTI-2 (540-byte header), either byte order.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

# (header size, dim format and offset, bitpix format and offset, vox_offset format and offset)
_LAYOUTS = {348: ("8h", 40, "h", 72, "f", 108), 540: ("8q", 16, "h", 14, "q", 168)}


def is_nifti(path: str | Path) -> bool:
    return str(path).lower().endswith((".nii", ".nii.gz"))


def expected_bytes(header: bytes) -> int | None:
    """The byte count (header, extensions and voxels) a NIfTI header announces; None if not NIfTI."""
    for size, (dim_fmt, dim_at, bit_fmt, bit_at, off_fmt, off_at) in _LAYOUTS.items():
        for order in "<>":
            if len(header) >= size and struct.unpack(order + "i", header[:4])[0] == size:
                dims = struct.unpack_from(order + dim_fmt, header, dim_at)
                bitpix = struct.unpack_from(order + bit_fmt, header, bit_at)[0]
                offset = struct.unpack_from(order + off_fmt, header, off_at)[0]
                if not 1 <= dims[0] <= 7 or bitpix <= 0 or min(dims[1:dims[0] + 1]) < 1:
                    return None
                voxels = 1
                for n in dims[1:dims[0] + 1]:
                    voxels *= int(n)
                return max(int(offset), size) + voxels * int(bitpix) // 8
    return None


def incompleteness(path: str | Path) -> str | None:
    """Why a NIfTI file is incomplete (a sentence), or None when its data is all there."""
    path = Path(path)
    compressed = path.name.lower().endswith(".gz")
    try:
        with (gzip.open(path, "rb") if compressed else open(path, "rb")) as stream:
            expected = expected_bytes(stream.read(540))
    except (OSError, EOFError, zlib.error) as exc:
        return f"its header cannot be read ({exc})"
    if expected is None:
        return None  # not a NIfTI header we can size: the reader decides
    found = _gzip_length(path, expected) if compressed else path.stat().st_size
    if found < expected:
        return f"it holds {found} of the {expected} bytes its header announces (truncated)"
    return None


def _gzip_length(path: Path, expected: int) -> int:
    """The uncompressed length of a gzip file (from its trailer when that matches `expected`)."""
    with open(path, "rb") as raw:
        raw.seek(-4, 2)
        if struct.unpack("<I", raw.read(4))[0] == expected % (1 << 32):
            return expected
    total = 0
    try:
        with gzip.open(path, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 22), b""):
                total += len(block)
    except (OSError, EOFError, zlib.error):
        pass  # a truncated stream: `total` is what could be read
    return total
