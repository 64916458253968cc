#!/usr/bin/env python3
"""Writes the README walkthrough's sample images (standard library only; synthetic pixels,
a made-up patient, no real data):

- chest.png: 128 x 128 8-bit grey, a soft round shape on a gradient (PNG, ISO/IEC 15948);
- ct.dcm: one 64 x 64 CT slice as DICOM Part 10, explicit VR little endian, 16-bit
  MONOCHROME2 (PS3.10 section 7.1, PS3.5 section 7.1.2), of the fictitious patient
  "Walkthrough^Jane" (ID WALK-0001), whose name and ID a researcher's copy must not carry.

Run from anywhere: python3 examples/images/make_samples.py
"""
import math
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def png(width=128, height=128):
    rows = []
    for y in range(height):
        row = bytearray([0])  # filter type None
        for x in range(width):
            d = math.hypot(x - width * 0.6, y - height * 0.55) / (width * 0.22)
            value = 40 + x // 2 + (110 if d < 1 else int(110 * math.exp(-(d - 1) * 4)))
            row.append(min(255, value))
        rows.append(bytes(row))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(b"IEND", b""))


def element(group, elem, vr, value):
    if isinstance(value, str):
        value = value.encode()
        if len(value) % 2:
            value += b"\0" if vr == "UI" else b" "
    if vr in ("OB", "OW", "SQ", "UN", "UT"):
        return struct.pack("<HH2sHI", group, elem, vr.encode(), 0, len(value)) + value
    return struct.pack("<HH2sH", group, elem, vr.encode(), len(value)) + value


def dicom(rows=64, columns=64):
    us = lambda n: struct.pack("<H", n)  # noqa: E731
    ct_image = "1.2.840.10008.5.1.4.1.1.2"
    sop = "2.25.313393622385112411541386512384932816361"
    meta_body = (element(0x0002, 0x0001, "OB", b"\0\x01") + element(0x0002, 0x0002, "UI", ct_image)
                 + element(0x0002, 0x0003, "UI", sop)
                 + element(0x0002, 0x0010, "UI", "1.2.840.10008.1.2.1"))
    meta = element(0x0002, 0x0000, "UL", struct.pack("<I", len(meta_body))) + meta_body
    pixels = b"".join(
        struct.pack("<H", 1000 + int(800 * math.exp(-((x - 32) ** 2 + (y - 30) ** 2) / 300)))
        for y in range(rows) for x in range(columns))
    data = b"".join([
        element(0x0008, 0x0016, "UI", ct_image),
        element(0x0008, 0x0018, "UI", sop),
        element(0x0008, 0x0020, "DA", "20260105"),
        element(0x0008, 0x0050, "SH", "WALK0001"),
        element(0x0008, 0x0060, "CS", "CT"),
        element(0x0008, 0x1030, "LO", "CT chest"),
        element(0x0010, 0x0010, "PN", "Walkthrough^Jane"),
        element(0x0010, 0x0020, "LO", "WALK-0001"),
        element(0x0010, 0x0030, "DA", "19700101"),
        element(0x0010, 0x0040, "CS", "F"),
        element(0x0020, 0x000D, "UI", "2.25.99541186046530181939437066066409766519"),
        element(0x0020, 0x000E, "UI", "2.25.197463818374413092447826466004108447335"),
        element(0x0028, 0x0002, "US", us(1)),
        element(0x0028, 0x0004, "CS", "MONOCHROME2"),
        element(0x0028, 0x0010, "US", us(rows)),
        element(0x0028, 0x0011, "US", us(columns)),
        element(0x0028, 0x0100, "US", us(16)),
        element(0x0028, 0x0101, "US", us(12)),
        element(0x0028, 0x0102, "US", us(11)),
        element(0x0028, 0x0103, "US", us(0)),
        element(0x7FE0, 0x0010, "OW", pixels),
    ])
    return b"\0" * 128 + b"DICM" + meta + data


if __name__ == "__main__":
    with open(os.path.join(HERE, "chest.png"), "wb") as f:
        f.write(png())
    with open(os.path.join(HERE, "ct.dcm"), "wb") as f:
        f.write(dicom())
    print("wrote chest.png and ct.dcm in", HERE)
