#!/usr/bin/env python3
"""Writes tests/data/dicom/recovered/jpeg_in_native_syntax.dcm: the SIIM-ACR chest CR of
tests/data/dicom/siim_cr (JPEG baseline, 1.2.840.10008.1.2.4.50) with its file meta Transfer
Syntax UID rewritten to Explicit VR Little Endian (1.2.840.10008.1.2.1, a native syntax) while
the Pixel Data stays encapsulated JPEG, undefined length, byte for byte: the mislabelled files
some exporters write when they rewrite the header only. Nothing else changes (the meta group
length is corrected), so the file must decode to the original's pixels, with a warning.

The bytes are patched directly (pydicom re-encodes the Pixel Data element when the syntax says
native); pydicom 2.3.1 (Debian 12 python3-pydicom, /usr/bin/python3) then checks the result.
"""
import pathlib
import struct

import pydicom
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit

root = pathlib.Path(__file__).resolve().parents[2]
src = root / "data/dicom/siim_cr/1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm"
out = root / "data/dicom/recovered/jpeg_in_native_syntax.dcm"

data = bytearray(src.read_bytes())
assert data[128:132] == b"DICM"
# File meta group: explicit VR little endian elements from byte 132.
off, group_length_at, ts_at = 132, None, None
while struct.unpack_from("<H", data, off)[0] == 0x0002:
    element = struct.unpack_from("<H", data, off + 2)[0]
    vr = bytes(data[off + 4:off + 6])
    if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN"):
        length, header = struct.unpack_from("<I", data, off + 8)[0], 12
    else:
        length, header = struct.unpack_from("<H", data, off + 6)[0], 8
    if element == 0x0000:
        group_length_at = off + header
    if element == 0x0010:
        ts_at = (off, header, length)
    off += header + length
old_off, header, old_len = ts_at
old_uid = bytes(data[old_off + header:old_off + header + old_len]).rstrip(b"\0 ")
assert old_uid.decode() == JPEGBaseline8Bit, old_uid
new_value = ExplicitVRLittleEndian.encode() + b"\0"  # 19 characters, padded to even length
data[old_off + header:old_off + header + old_len] = new_value
struct.pack_into("<H", data, old_off + 6, len(new_value))
group_length = struct.unpack_from("<I", data, group_length_at)[0]
struct.pack_into("<I", data, group_length_at, group_length + len(new_value) - old_len)
out.parent.mkdir(parents=True, exist_ok=True)
out.write_bytes(bytes(data))

back = pydicom.dcmread(out)
assert back.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
assert back["PixelData"].is_undefined_length  # still encapsulated
print(out, out.stat().st_size, "bytes")
