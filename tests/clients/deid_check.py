#!/usr/bin/env python3
"""Independent check of the de-identified copies that medlabel serves to researchers.

Usage: python3 tests/clients/deid_check.py BASE_URL ADMIN_USERNAME ADMIN_PASSWORD

It shares no code with the server: it reads the PS3.15 Table E.1-1 JSON (seeds/) itself with
pydicom's data dictionary, builds its own test files, and talks to the server only over HTTP
(urllib). The contract is shared/API.md, section "De-identification (what researchers download)".

As admin it creates a doctor and a researcher; the doctor uploads, the researcher downloads.
A. DICOM: pydicom's own test files (explicit/implicit VR little endian, explicit big endian, JPEG,
   JPEG 2000, RLE, RT dose, overlays), re-encoded by pydicom with canaries planted at top level,
   in the file meta, in private blocks and sequences, two levels deep in kept sequences, after
   Pixel Data, and in one file inside a public sequence encoded as UN; plus files without Patient
   ID and files exactly as shipped (defined-length sequences, many private tags). In every copy,
   at every depth: basic-profile `X` attributes are gone (except `C` dates of the Modified Dates
   option: DA/DT shifted back by one whole number of days in 1..3650, the same for every file of
   a subject or, without a patient, of a study; TM kept), `Z`/`D` emptied or dummied (removed
   only where `X` is a choice), `U` UIDs are `2.25.<int>`, differ from the original and map
   one-to-one across all files (cross-file references still match), attributes not in the table
   are unchanged, no private / curve / overlay data, no canary in the bytes, Patient's Name and
   ID are the subject pseudonym, the de-identification method attributes are set, the file meta
   is clean and consistent, transfer syntax and pixel data are unchanged, pydicom reads it back
   without new warnings. Burned In Annotation YES is withheld (403 /withheld); deflated and
   pixel-less DICOM are refused (415).
B. PNG (RGB, palette + tRNS, APNG): text/eXIf/caBX/private chunks and bytes after IEND never
   reach the copy, only render chunks remain (and those of the original are kept), pixels are
   unchanged; malformed PNGs are refused (415/422).
C. JPEG (baseline, progressive, with an appended JPEG): EXIF/XMP/IPTC/COM/APPn/JFIF and JFXX
   thumbnails, wherever they are (between progressive scans too), and data after the first EOI
   never reach the copy; ICC is kept; pixels are unchanged; a corrupt JPEG is refused.
Prints one line per file and exits 1 on any failure.
"""
import datetime
import hashlib
import io
import json
import os
import random
import re
import secrets
import struct
import sys
import urllib.error
import urllib.request
import uuid
import warnings
import zlib

import pydicom
import pydicom.encaps
from pydicom.dataset import Dataset
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid
from PIL import Image, ImageCms

warnings.filterwarnings("ignore", category=UserWarning)  # deliberately odd inputs; copies are read with warnings on
try:
    import numpy  # optional: pixel_array comparison of native DICOM
except ImportError:
    numpy = None

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TABLE_PATH = os.path.join(ROOT, "seeds", "dicom-ps3.15-e1-1-2024b.json")
RUN = secrets.token_hex(3)
PASSWORD = "deid check passphrase " + RUN
FAILURES = []
UN_SEQUENCE = 0x00081250  # Related Series Sequence, planted encoded as UN
SERVER_SET = {0x00120062, 0x00120063, 0x00120064, 0x00280303}  # written by the de-identifier


# ----------------------------------------------------------------------------- HTTP
class Api:
    def __init__(self, base, token=None):
        self.base, self.token = base.rstrip("/") + "/api/v1", token

    def call(self, method, path, body=None, ctype="application/json", headers=None):
        hdrs = dict(headers or {})
        if self.token:
            hdrs["Authorization"] = "Bearer " + self.token
        if body is not None and ctype == "application/json":
            body = json.dumps(body).encode()
        if body is not None:
            hdrs["Content-Type"] = ctype
        req = urllib.request.Request(self.base + path, data=body, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def ok(self, method, path, body=None, want=(200, 201)):
        status, _, data = self.call(method, path, body)
        if status not in want:
            sys.exit(f"setup failed: {method} {path} -> {status} {data[:300]!r}")
        return json.loads(data) if data else None

    def upload(self, filename, data):
        boundary = uuid.uuid4().hex
        body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"'
                f"\r\nContent-Type: application/octet-stream\r\n\r\n").encode() + data \
            + f"\r\n--{boundary}--\r\n".encode()
        status, _, resp = self.call("POST", "/images", body, f"multipart/form-data; boundary={boundary}")
        return status, (json.loads(resp) if resp.startswith(b"{") else {})



JPEG_PROCESSES = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
                  "1.2.840.10008.1.2.4.70"}


def jpeg_frame_segments(data):
    """A JPEG (T.81 Annex B) as [(marker, payload)] up to its first EOI; scan data is given as
    marker 0x100 with the entropy-coded bytes (stuffing and restart markers included)."""
    out, at = [], 2
    while at < len(data):
        while data[at] == 0xFF and data[at + 1] == 0xFF:
            at += 1
        marker = data[at + 1]
        at += 2
        if marker == 0xD9:
            out.append((marker, b""))
            return out
        if marker in (0x01,) or 0xD0 <= marker <= 0xD7:
            continue
        length = int.from_bytes(data[at:at + 2], "big")
        out.append((marker, data[at + 2:at + length]))
        at += length
        if marker == 0xDA:
            start = at
            while not (data[at] == 0xFF and data[at + 1] not in (0x00, 0xFF) and not 0xD0 <= data[at + 1] <= 0xD7):
                at += 1
            out.append((0x100, data[start:at]))
    return out


def image_segments(segments):
    """What decodes the image: tables, frame and scan headers, scan data, EOI."""
    keep = {0xC4, 0xCC, 0xDB, 0xDD, 0xDA, 0xD9, 0x100} | {m for m in range(0xC0, 0xD0) if m not in (0xC4, 0xC8, 0xCC)}
    return [(m, d) for m, d in segments if m in keep]


def token_for(base, username, password):
    api = Api(base)
    status, headers, data = api.call("POST", "/auth/login", {"username": username, "password": password})
    if status != 200:
        sys.exit(f"login as {username} failed: {status} {data[:200]!r}")
    cookie = "; ".join(c.split(";")[0] for c in headers.get_all("Set-Cookie") or [])
    status, _, data = api.call("POST", "/auth/tokens", {"name": "deid-check"}, headers={"Cookie": cookie})
    if status != 201:
        sys.exit(f"token for {username} failed: {status} {data[:200]!r}")
    return json.loads(data)["token"]


class Report:
    """Collects the errors of one file and prints its summary line."""

    def __init__(self, kind, name):
        self.kind, self.name, self.errors = kind, name, []

    def check(self, cond, msg):
        if not cond:
            self.errors.append(msg)
        return cond

    def done(self, summary):
        print(f"{'PASS' if not self.errors else 'FAIL'} {self.kind:5} {self.name}: {summary}")
        for e in self.errors[:40]:
            print("       - " + e)
        if len(self.errors) > 40:
            print(f"       - ... {len(self.errors) - 40} more")
        FAILURES.extend(f"{self.name}: {e}" for e in self.errors)


def download(researcher, image_id, rep):
    status, headers, data = researcher.call("GET", f"/images/{image_id}/file")
    if not rep.check(status == 200, f"researcher download -> {status} {data[:200]!r}"):
        return None
    etag = '"' + hashlib.sha256(data).hexdigest() + '"'
    rep.check(headers.get("ETag") == etag, f"ETag {headers.get('ETag')} is not the served bytes' {etag}")
    return data


def expect_refused(doctor, name, data, allowed=(415, 422)):
    rep = Report("upload", name)
    status, body = doctor.upload(f"{name}.bin", data)
    rep.check(status in allowed, f"upload -> {status}, expected one of {allowed} ({body})")
    rep.done(f"refused at upload with {status} (expected {'/'.join(map(str, allowed))})")


# ----------------------------------------------------------------------------- DICOM table
def load_table():
    exact, masks = {}, []
    for row in json.load(open(TABLE_PATH, encoding="utf-8")):
        m = re.fullmatch(r"\(([0-9A-FX]{4}),([0-9A-FX]{4})\)", row["tag"].upper())
        if not m:
            continue  # "(GGGG,EEEE) where GGGG is odd": private attributes, checked on their own
        rule = (row["basicProfile"].strip(), row.get("rtnLongModifDatesOpt"), row["name"])
        key = m[1] + m[2]
        if "X" in key:
            masks.append((re.compile(key.replace("X", "[0-9A-F]")), rule))
        else:
            exact[int(key, 16)] = rule
    return exact, masks


EXACT, MASKS = load_table()


def rule_for(tag):
    if int(tag) in EXACT:
        return EXACT[int(tag)]
    return next((r for rx, r in MASKS if rx.fullmatch(f"{int(tag):08X}")), None)


def values(elem):
    v = elem.value
    if v is None or v == "":
        return []
    return [str(x) for x in v] if isinstance(v, (list, pydicom.multival.MultiValue)) else [str(v)]


def is_dicom_uid_replacement(u):
    m = re.fullmatch(r"2\.25\.(0|[1-9][0-9]*)", u)
    return bool(m) and int(m[1]) < 2 ** 128 and len(u) <= 64


# ----------------------------------------------------------------------------- DICOM planting
class Planter:
    def __init__(self):
        self.canaries, self.planted = [], 0

    def c(self):
        s = f"Q{RUN}{len(self.canaries):03d}"
        self.canaries.append(s)
        return s

    def put(self, ds, keyword, value):
        setattr(ds, keyword, value)
        self.planted += 1

    def private(self, ds):
        block = ds.private_block(0x0099, "DEID CHECK " + self.c(), create=True)
        block.add_new(0x01, "LO", self.c())
        inner = Dataset()  # a private sequence too (undefined length: a trap in implicit VR)
        inner.PatientName, inner.ReferringPhysicianAddress = self.c(), self.c()
        block.add_new(0x02, "SQ", Sequence([inner]))
        self.planted += 5


def implicit_le_item(elements):
    """One sequence item, encoded Implicit VR Little Endian (the encoding of a UN sequence)."""
    body = b""
    for tag, value in elements:
        value += b" " * (len(value) % 2)
        body += struct.pack("<HHI", tag >> 16, tag & 0xFFFF, len(value)) + value
    return struct.pack("<HHI", 0xFFFE, 0xE000, len(body)) + body


def plant(ds, p, patient, ref_sop=None, un_sequence=False):
    """Plants canaries, known dates and a reference to ref_sop (default: itself); p records them."""
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ref_sop = ref_sop or ds.SOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = patient["study"], patient["series"]
    ds.PatientID, ds.PatientName, ds.IssuerOfPatientID = patient["id"], patient["name"], patient["issuer"]
    p.canaries += [patient["id"], patient["name"], patient["issuer"]]
    p.put(ds, "PatientBirthDate", "19310217")
    p.canaries.append("19310217")
    p.put(ds, "PatientAge", "092Y")
    for kw in ("OtherPatientNames", "PatientComments", "Occupation", "AccessionNumber", "StudyID",
               "ReferringPhysicianName", "ReferringPhysicianAddress", "ReferringPhysicianTelephoneNumbers",
               "InstitutionName", "InstitutionAddress", "StudyDescription", "SeriesDescription",
               "OperatorsName", "PerformingPhysicianName", "ProtocolName", "DeviceSerialNumber",
               "AcquisitionFieldOfViewLabel"):
        p.put(ds, kw, p.c())
    for kw, v in (("StudyDate", "20230314"), ("SeriesDate", "20230314"), ("AcquisitionDate", "20230315"),
                  ("ContentDate", "20230316"), ("InstanceCreationDate", "20230317"),
                  ("DateOfSecondaryCapture", "20230301"), ("LastMenstrualDate", "20230201"),
                  ("AcquisitionDateTime", "20230315101112.123456+0100"), ("StudyTime", "101112"),
                  ("TimeOfSecondaryCapture", "091500")):
        p.put(ds, kw, v)
    p.private(ds)
    ds.add_new(0x50003000, "OB", p.c().encode() * 2)
    ds.add_new(0x50002500, "LO", p.c())
    ds.add_new(0x60043000, "OW", p.c().encode() * 2)
    ds.add_new(0x60044000, "LT", p.c())
    p.planted += 4
    ds.file_meta.SourceApplicationEntityTitle = p.c()
    ds.file_meta.PrivateInformationCreatorUID = generate_uid()
    ds.file_meta.PrivateInformation = p.c().encode()
    # Original Attributes Sequence > Modified Attributes Sequence > Patient's Name (all X)
    inner = Dataset()
    p.put(inner, "PatientName", p.c() + "^Old")
    p.put(inner, "PatientID", p.c())
    orig = Dataset()
    orig.ModifiedAttributesSequence = Sequence([inner])
    p.put(orig, "ModifyingSystem", p.c())
    p.put(orig, "AttributeModificationDateTime", "20230314101010")
    ds.OriginalAttributesSequence = Sequence([orig])
    who = Dataset()
    for kw in ("InstitutionAddress", "PersonTelephoneNumbers", "PersonAddress", "InstitutionName"):
        p.put(who, kw, p.c())
    ds.ReferringPhysicianIdentificationSequence = Sequence([who])
    # Referenced Image Sequence (X/Z/U*): a reference to another uploaded file, plus a private block
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = ds.SOPClassUID, ref_sop
    p.private(ref)
    ds.ReferencedImageSequence = Sequence(list(ds.get("ReferencedImageSequence", [])) + [ref])
    # Two levels deep in sequences that are not in the table (so they must be kept)
    lvl2 = Dataset()
    lvl2.ReferencedSOPClassUID, lvl2.ReferencedSOPInstanceUID = ds.SOPClassUID, ref_sop
    for kw in ("PatientName", "ReferringPhysicianAddress", "AccessionNumber", "InstitutionName",
               "AcquisitionFieldOfViewLabel", "StudyDescription"):
        p.put(lvl2, kw, p.c())
    p.put(lvl2, "StudyDate", "20230314")
    p.put(lvl2, "InstanceCreationTime", "101010")
    p.private(lvl2)
    other = Dataset()
    p.put(other, "PatientID", p.c())
    lvl2.OtherPatientIDsSequence = Sequence([other])
    lvl1 = Dataset()
    lvl1.SeriesInstanceUID = ds.SeriesInstanceUID
    lvl1.ReferencedInstanceSequence = Sequence([lvl2])
    ds.ReferencedSeriesSequence = Sequence([lvl1])
    # After Pixel Data (a streaming de-identifier must not stop there): private, signatures, padding
    block = ds.private_block(0x7FE1, "AFTER PIXELS " + p.c(), create=True)
    block.add_new(0x01, "LO", p.c())
    sig = Dataset()
    sig.PatientName = p.c()
    ds.DigitalSignaturesSequence = Sequence([sig])
    ds.DataSetTrailingPadding = p.c().encode() * 2
    p.planted += 4
    if un_sequence:  # a public sequence that reached us as UN (PS3.5 6.2.2): still attributes
        value = implicit_le_item([(0x00100010, p.c().encode()), (0x00080092, p.c().encode()),
                                  (0x00081155, ref_sop.encode()), (0x00190010, p.c().encode())])
        ds[UN_SEQUENCE] = RawDataElement(Tag(UN_SEQUENCE), "UN", len(value), value, 0, False, True)
        p.planted += 5


def dicom_bytes(ds):
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


# ----------------------------------------------------------------------------- DICOM checks
class DicomState:
    def __init__(self):
        self.uid_map, self.uid_back = {}, {}
        self.shifts = {}  # subject_id -> {shift: [where]}


def walk_copy(ds, rep, path="", stats=None):
    """Checks that apply to the copy alone, at every depth."""
    stats = stats if stats is not None else {"elements": 0, "depth": 0, "private": 0, "x": 0}
    stats["depth"] = max(stats["depth"], path.count(">"))
    for elem in ds:
        stats["elements"] += 1
        where = f"{path}({elem.tag.group:04X},{elem.tag.element:04X}) {elem.keyword}"
        if elem.tag.is_private:
            stats["private"] += 1
            rep.errors.append(f"private element kept: {where}")
            continue
        rule = rule_for(elem.tag)
        if rule and rule[0] == "X" and not (rule[1] == "C" and elem.VR in ("DA", "DT", "TM")):
            stats["x"] += 1
            rep.errors.append(f"X attribute kept: {where} ({rule[2]}) = {str(elem.value)[:60]!r}")
        if rule and "U" in rule[0] and elem.VR == "UI":
            for u in values(elem):
                rep.check(is_dicom_uid_replacement(u), f"U attribute not a 2.25 UID: {where} = {u}")
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value):
                walk_copy(item, rep, f"{where}[{i}] > ", stats)
    return stats


def shift_of(orig, copy):
    d0 = datetime.datetime.strptime(orig[:8], "%Y%m%d").date()
    d1 = datetime.datetime.strptime(copy[:8], "%Y%m%d").date()
    return (d0 - d1).days


def compare(orig, copy, rep, st, subject, stats, path=""):
    """Walks the original and the copy side by side and checks each table action."""
    for elem in orig:
        tag = elem.tag
        if tag.is_private or tag.element == 0 or int(tag) == 0x7FE00010 or (not path and int(tag) in SERVER_SET):
            continue
        if not path and int(tag) in (0x00100010, 0x00100020):
            continue  # checked against the subject pseudonym
        where = f"{path}{elem.keyword or tag}"
        rule = rule_for(tag)
        c = copy.get(tag)
        if rule is None:
            if c is None and int(tag) == UN_SEQUENCE:
                continue  # removing a sequence that came as UN is a safe choice
            if not rep.check(c is not None, f"attribute not in the table was removed: {where}"):
                continue
            if elem.VR == "SQ":
                if rep.check(len(c.value) == len(elem.value), f"sequence not in the table lost items: {where}"):
                    for i, (a, b) in enumerate(zip(elem.value, c.value)):
                        compare(a, b, rep, st, subject, stats, f"{where}[{i}] > ")
            else:
                rep.check(c.value == elem.value, f"attribute not in the table changed: {where}: "
                                                  f"{str(elem.value)[:50]!r} -> {str(c.value)[:50]!r}")
            continue
        choices, date_opt, name = set(rule[0].split("/")), rule[1], rule[2]
        if date_opt == "C" and elem.VR in ("DA", "DT", "TM"):
            if c is None:
                rep.check("X" in choices and not values(elem), f"C date/time not kept: {where} ({name})")
                continue
            a, b = values(elem), values(c)
            if elem.VR == "TM" or any(len(v) < 8 for v in a):
                rep.check(a == b, f"time changed: {where}: {a} -> {b}")
                continue
            if not rep.check(len(a) == len(b), f"date multiplicity changed: {where}: {a} -> {b}"):
                continue
            for va, vb in zip(a, b):
                try:
                    s = shift_of(va, vb)
                except ValueError:
                    rep.errors.append(f"unparseable shifted date {where}: {va} -> {vb}")
                    continue
                rep.check(va[8:] == vb[8:], f"time part of a date-time changed: {where}: {va} -> {vb}")
                st.shifts.setdefault(subject, {}).setdefault(s, []).append(f"{rep.name}:{where}")
                stats["dates"] += 1
            continue
        if c is None:
            rep.check("X" in choices, f"{rule[0]} attribute removed (must stay present): {where} ({name})")
            continue
        if choices == {"X"}:
            continue  # present although X: walk_copy reports it
        if elem.VR == "SQ":
            if len(c.value) == 0:
                rep.check(choices & {"Z", "D", "U*"}, f"sequence emptied: {where}")
            elif rep.check(len(c.value) == len(elem.value), f"sequence item count changed: {where}"):
                for i, (a, b) in enumerate(zip(elem.value, c.value)):
                    compare(a, b, rep, st, subject, stats, f"{where}[{i}] > ")
            continue
        if "U" in choices:
            a, b = values(elem), values(c)
            if not b and "Z" in choices:
                continue
            if not rep.check(len(a) == len(b), f"UID multiplicity changed: {where}: {a} -> {b}"):
                continue
            for va, vb in zip(a, b):
                if not rep.check(va != vb, f"UID not replaced: {where} = {va}"):
                    continue
                if st.uid_map.setdefault(va, vb) != vb:
                    rep.errors.append(f"UID {va} replaced inconsistently: {vb} here, {st.uid_map[va]} before")
                if st.uid_back.setdefault(vb, va) != va:
                    rep.errors.append(f"two UIDs replaced by one: {va} and {st.uid_back[vb]} -> {vb}")
                stats["uids"] += 1
            continue
        if not values(c):
            rep.check("Z" in choices, f"{rule[0]} attribute emptied (needs a dummy value): {where}")
        elif values(elem):
            rep.check(c.value != elem.value, f"{rule[0]} attribute kept its value: {where} = {str(c.value)[:60]!r}")


def read_all(data):
    """Reads a DICOM file fully; returns it and the set of pydicom's warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = pydicom.dcmread(io.BytesIO(data))
        for _ in ds.iterall():
            pass
    return ds, {str(w.message)[:120] for w in caught}


def check_dicom(name, orig_bytes, doctor, researcher, st, p, refs=None, has_patient=True):
    rep = Report("DICOM", name)
    status, up = doctor.upload(f"{p.c()}.dcm", orig_bytes)
    if not rep.check(status in (200, 201), f"upload -> {status} {up}"):
        return rep.done("not uploaded")
    orig = pydicom.dcmread(io.BytesIO(orig_bytes))
    subject = up.get("subject_id")
    if has_patient:
        rep.check(re.fullmatch(r"S-[A-Z2-7]{16}", subject or ""), f"subject_id {subject!r}")
    else:
        rep.check(subject is None, f"subject_id {subject!r} for a file without Patient ID")
    shift_key = subject or f"study {orig.StudyInstanceUID}"  # API.md: no patient -> derived from the study
    status, _, meta = researcher.call("GET", f"/images/{up['id']}")
    meta = json.loads(meta) if status == 200 else {}
    rep.check(status == 200 and meta.get("subject_id") == subject and meta.get("withheld") is False
              and meta.get("patient") is None and meta.get("original_filename") is None
              and meta.get("sop_instance_uid") is None, f"researcher image JSON {status}: {meta}")
    data = download(researcher, up["id"], rep)
    if data is None:
        return rep.done("no copy")
    try:
        copy, warned = read_all(data)
    except Exception as e:  # noqa: BLE001 - any read error is a failure
        rep.errors.append(f"copy does not read back with pydicom: {e!r}")
        return rep.done("unreadable copy")
    new = warned - read_all(orig_bytes)[1]
    rep.check(not new, f"pydicom warns reading the copy (not the original): {sorted(new)[:3]}")
    if any("VR for reading" in w for w in new):  # the data set is garbled: the rest would only be noise
        start = 144 + struct.unpack("<I", data[140:144])[0]
        rep.errors.append(f"data set after the file meta starts with {data[start:start + 8].hex(' ')}, "
                          f"the original's with {orig_bytes[144 + struct.unpack('<I', orig_bytes[140:144])[0]:][:8].hex(' ')}")
        return rep.done(f"{orig.file_meta.TransferSyntaxUID.name}; copy garbled")
    ts = orig.file_meta.TransferSyntaxUID
    rep.check(copy.file_meta.TransferSyntaxUID == ts, f"transfer syntax {copy.file_meta.TransferSyntaxUID} != {ts}")
    stats = walk_copy(copy, rep)
    for tag in (0x00020016, 0x00020102):
        rep.check(tag not in copy.file_meta, f"file meta ({tag >> 16:04X},{tag & 0xFFFF:04X}) kept")
    rep.check(not any(e.tag.is_private for e in copy.file_meta), "private element in file meta")
    rep.check(copy.file_meta.get("MediaStorageSOPInstanceUID") == copy.get("SOPInstanceUID"),
              "MediaStorageSOPInstanceUID != SOPInstanceUID")
    rep.check(copy.file_meta.get("MediaStorageSOPClassUID") == copy.get("SOPClassUID"),
              "MediaStorageSOPClassUID != SOPClassUID")
    pn, pid = str(copy.get("PatientName", "")), copy.get("PatientID", "")
    rep.check(pn == pid == subject or not has_patient, f"PatientName {pn!r} / PatientID {pid!r} != subject_id {subject!r}")
    rep.check(copy.get("PatientIdentityRemoved") == "YES", f"PatientIdentityRemoved {copy.get('PatientIdentityRemoved')!r}")
    method = str(copy.get("DeidentificationMethod", ""))
    rep.check("2024b" in method, f"DeidentificationMethod {method!r} does not name edition 2024b")
    codes = {(i.get("CodeValue"), i.get("CodingSchemeDesignator")) for i in copy.get("DeidentificationMethodCodeSequence", [])}
    rep.check({("113100", "DCM"), ("113107", "DCM")} <= codes, f"DeidentificationMethodCodeSequence {codes}")
    rep.check(copy.get("LongitudinalTemporalInformationModified") == "MODIFIED",
              f"LongitudinalTemporalInformationModified {copy.get('LongitudinalTemporalInformationModified')!r}")
    cmp_stats = {"uids": 0, "dates": 0}
    compare(orig, copy, rep, st, shift_key, cmp_stats)
    if str(ts) in JPEG_PROCESSES:
        # Frames are JPEG images cleaned by the allow-list: the image-defining segments and
        # scan data are the original's, and nothing else but JFIF/ICC/Adobe remains.
        n = int(orig.get("NumberOfFrames", 1) or 1)
        before = list(pydicom.encaps.generate_frames(orig.PixelData, number_of_frames=n))
        after = list(pydicom.encaps.generate_frames(copy.PixelData, number_of_frames=n))
        same_pixels = rep.check(len(before) == len(after), "frame count differs")
        for b, a in zip(before, after):
            kept = jpeg_frame_segments(a)
            same_pixels &= rep.check(image_segments(jpeg_frame_segments(b)) == image_segments(kept),
                                     "a frame's tables, frame header or scans differ")
            extra = [m for m, d in kept if (0xE0 <= m <= 0xEF or m == 0xFE)
                     and not (m, d[:5]) in ((0xE0, b"JFIF\0"), (0xEE, b"Adobe"))
                     and not (m == 0xE2 and d.startswith(b"ICC_PROFILE\0"))]
            same_pixels &= rep.check(not extra, f"a frame keeps segments {[hex(m) for m in extra]}")
    else:
        same_pixels = rep.check(copy.get("PixelData") == orig.PixelData, "pixel data bytes differ")
    if numpy is not None and same_pixels and not ts.is_compressed:
        rep.check(numpy.array_equal(orig.pixel_array, copy.pixel_array), "pixel_array differs")
    # Replaced UIDs are long random decimals: a short canary (a numeric patient ID) could
    # occur in one by chance, so they are not searched.
    scrubbed = re.sub(rb"2\.25\.\d+", b"", data.replace(orig.PixelData, b""))
    found = [c for c in p.canaries if c.encode() in scrubbed]
    rep.check(not found, f"canaries found in the copy: {found}")
    if refs is not None:
        refs[name] = copy
    shift = sorted(st.shifts.get(shift_key, {}))
    rep.done(f"{ts.name}; {stats['elements']} elements to depth {stats['depth']}; planted {p.planted} attrs "
             f"+ {len(p.canaries)} canaries / found {len(found)}; X kept {stats['x']}, private {stats['private']}; "
             f"{cmp_stats['uids']} UIDs replaced; {cmp_stats['dates']} dates shifted by {shift} d; "
             f"pixels {'identical' if same_pixels else 'DIFFER'}")


def dicom_part(doctor, researcher):
    from pydicom.data import get_testdata_file
    st, refs = DicomState(), {}
    patients = {}

    def patient(key):
        if key not in patients:
            patients[key] = {"id": f"PID{RUN}{key}", "name": f"Canary{RUN}^{key}^Pat",
                             "issuer": f"ISS{RUN}{key}", "study": generate_uid(), "series": generate_uid()}
        return patients[key]

    files = [("CT_small.dcm", "A"), ("MR_small.dcm", "B"), ("MR_small_implicit.dcm", "B"),
             ("MR_small_bigendian.dcm", "B"), ("MR_small_RLE.dcm", "B"), ("JPEG-lossy.dcm", "C"),
             ("JPEG2000.dcm", "C"), ("SC_rgb_jpeg_dcmtk.dcm", "D"), ("rtdose.dcm", "E"),
             ("examples_overlay.dcm", "F")]
    first_sop = None
    for name, key in files:
        ds = pydicom.dcmread(get_testdata_file(name))
        p = Planter()
        plant(ds, p, patient(key), first_sop)  # every file references CT_small, the first one
        first_sop = first_sop or ds.SOPInstanceUID
        check_dicom(name, dicom_bytes(ds), doctor, researcher, st, p, refs)
    # Explicit VR Little Endian with a public sequence encoded as UN (as an older system forwards it)
    ds, p = pydicom.dcmread(get_testdata_file("MR_small.dcm")), Planter()
    plant(ds, p, patient("U"), first_sop, un_sequence=True)
    check_dicom("MR_small.dcm with Related Series Sequence as UN", dicom_bytes(ds), doctor, researcher, st, p)
    # Without Patient ID: no subject; the shift is derived from the Study Instance UID, one per study
    for name in ("MR_small.dcm", "MR_small_implicit.dcm"):
        ds, p = pydicom.dcmread(get_testdata_file(name)), Planter()
        plant(ds, p, patient("N"), first_sop)
        del ds.PatientID, ds.PatientName, ds.IssuerOfPatientID
        check_dicom(f"{name} without Patient ID", dicom_bytes(ds), doctor, researcher, st, p, has_patient=False)
    # As shipped (not re-encoded by pydicom): defined-length sequences, many private tags, overlays
    for name in ("CT_small.dcm", "rtdose.dcm", "examples_overlay.dcm", "liver_1frame.dcm",
                 "SC_rgb_small_odd_big_endian.dcm", "examples_ybr_color.dcm"):
        data = open(get_testdata_file(name), "rb").read()
        ds, p = pydicom.dcmread(io.BytesIO(data)), Planter()
        # A fresh SOP Instance UID of the same length, so that reruns never collide (409) and no
        # length field changes: the bytes stay exactly as shipped otherwise.
        root = "1.2.826.0.1.3680043.8.498."
        new = root + str(random.randint(1, 9)) + "".join(random.choices("0123456789", k=len(ds.SOPInstanceUID) - len(root) - 1))
        data = data.replace(ds.SOPInstanceUID.encode(), new.encode())
        p.canaries += [v for v in (str(ds.get("PatientName", "")), ds.get("PatientID", "")) if len(v) >= 5]
        check_dicom(f"{name} (as shipped)", data, doctor, researcher, st, p)

    rep = Report("DICOM", "cross-file")
    for subject, by_shift in st.shifts.items():
        rep.check(len(by_shift) == 1, f"{subject} has several date shifts: {by_shift}")
        rep.check(all(1 <= s <= 3650 for s in by_shift), f"subject {subject} shift {list(by_shift)} not in 1..3650")
    ct = refs.get("CT_small.dcm")
    nrefs = 0
    for name, copy in refs.items():
        try:
            inner = copy.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID
        except (AttributeError, IndexError):
            inner = None
        rep.check(ct is not None and inner == ct.SOPInstanceUID,
                  f"{name}: nested reference to CT_small is {inner}, CT_small's copy is {ct and ct.SOPInstanceUID}")
        nrefs += 1
    mr = [refs[n].get("StudyInstanceUID") for n in refs if n.startswith("MR_small")]
    rep.check(len(set(mr)) == 1, f"MR files of one study got different Study UIDs: {mr}")
    rep.done(f"{len(st.uid_map)} distinct UIDs mapped one-to-one; {len(st.shifts)} subjects/studies with one shift each "
             f"({ {s[:6] + '..': list(v) for s, v in st.shifts.items()} }); {nrefs} cross-file references match; "
             f"{len(mr)} MR copies share one new Study UID")

    # Burned In Annotation YES: withheld from researchers
    rep = Report("DICOM", "burned-in MR_small.dcm")
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    p = Planter()
    plant(ds, p, patient("G"), first_sop)
    ds.BurnedInAnnotation = "YES"
    status, up = doctor.upload("burned.dcm", dicom_bytes(ds))
    if rep.check(status == 201, f"upload -> {status} {up}"):
        s1, _, meta = researcher.call("GET", f"/images/{up['id']}")
        rep.check(s1 == 200 and json.loads(meta).get("withheld") is True, f"image JSON {s1} {meta[:200]!r}")
        s2, _, body = researcher.call("GET", f"/images/{up['id']}/file")
        ptype = json.loads(body).get("type", "") if body.startswith(b"{") else ""
        rep.check(s2 == 403 and ptype.endswith("/withheld"), f"file -> {s2} {body[:200]!r}")
        rep.check(not any(c.encode() in body + meta for c in p.canaries), "canary in the 403 answer")
    rep.done("withheld: true, file 403 /withheld")

    expect_refused(doctor, "waveform_ecg.dcm (no Pixel Data)", open(get_testdata_file("waveform_ecg.dcm"), "rb").read(), (415,))
    expect_refused(doctor, "image_dfl.dcm (deflated)", open(get_testdata_file("image_dfl.dcm"), "rb").read(), (415,))
    sr = Dataset()
    sr.file_meta = pydicom.dataset.FileMetaDataset()
    sr.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    sr.SOPClassUID = sr.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    sr.SOPInstanceUID = sr.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    sr.PatientID, sr.StudyInstanceUID, sr.SeriesInstanceUID, sr.Modality = f"SR{RUN}", generate_uid(), generate_uid(), "SR"
    expect_refused(doctor, "basic text SR without Pixel Data", dicom_bytes(sr), (415,))


# ----------------------------------------------------------------------------- PNG
PNG_SIG = b"\x89PNG\r\n\x1a\n"
PNG_KEEP = {b"IHDR", b"PLTE", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT", b"pHYs", b"IDAT", b"IEND"}


def png_chunk(ctype, data):
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data))


def png_chunks(b):
    """[(type, data, crc_ok)], bytes after IEND; raises ValueError on a malformed structure."""
    if b[:8] != PNG_SIG:
        raise ValueError("no PNG signature")
    i, out = 8, []
    while i < len(b):
        if i + 12 > len(b):
            raise ValueError("truncated chunk header")
        (n,), ctype = struct.unpack(">I", b[i:i + 4]), b[i + 4:i + 8]
        if i + 12 + n > len(b):
            raise ValueError(f"chunk {ctype} runs past the end")
        data, crc = b[i + 8:i + 8 + n], struct.unpack(">I", b[i + 8 + n:i + 12 + n])[0]
        out.append((ctype, data, crc == zlib.crc32(ctype + data)))
        i += 12 + n
        if ctype == b"IEND":
            return out, b[i:]
    raise ValueError("no IEND")


def decode(b, mode="RGBA"):
    im = Image.open(io.BytesIO(b))
    im.load()
    return im.size, im.convert(mode).tobytes()


def make_png(mode, canary):
    im = Image.new("RGB", (67, 41))
    im.putdata([((x * 7) % 256, (y * 11) % 256, (x * y) % 256) for y in range(41) for x in range(67)])
    buf = io.BytesIO()
    if mode == "P":
        im = im.quantize(64)
        im.save(buf, "PNG", transparency=3)
    elif mode == "APNG":  # a second frame that a single-image copy must not carry
        im.save(buf, "PNG", save_all=True, append_images=[im.transpose(Image.Transpose.ROTATE_180)], duration=100)
    else:
        im.save(buf, "PNG")
    chunks, _ = png_chunks(buf.getvalue())
    extra = [png_chunk(b"gAMA", struct.pack(">I", 45455)), png_chunk(b"pHYs", struct.pack(">IIB", 2835, 2835, 1)),
             png_chunk(b"cHRM", struct.pack(">8I", 31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000)),
             png_chunk(b"sBIT", b"\x08\x08\x08"), png_chunk(b"sRGB", b"\x00"),
             png_chunk(b"tEXt", b"Author\0" + canary()), png_chunk(b"zTXt", b"Comment\0\0" + zlib.compress(canary())),
             png_chunk(b"iTXt", b"Description\0\0\0en\0Beschreibung\0" + canary()),
             png_chunk(b"eXIf", b"MM\0\x2a\0\0\0\x08" + canary()), png_chunk(b"caBX", b"jumb" + canary()),
             png_chunk(b"prVt", canary())]
    out = PNG_SIG + png_chunk(chunks[0][0], chunks[0][1]) + b"".join(extra)
    for t, d, _ in chunks[1:-1]:
        if t == b"IDAT":  # split into three chunks
            k = len(d) // 3
            out += png_chunk(t, d[:k]) + png_chunk(t, d[k:2 * k]) + png_chunk(t, d[2 * k:])
        else:
            out += png_chunk(t, d)
    out += png_chunk(b"tEXt", b"Comment\0" + canary()) + png_chunk(b"IEND", b"")
    return out + b"trailing " + canary()


def check_image(kind, name, data, canaries, doctor, researcher, structure, refusable=False):
    rep = Report(kind, name)
    status, up = doctor.upload(f"{canaries[0].decode()}.bin", data)
    if refusable and status in (415, 422):
        return rep.done(f"refused at upload with {status} (allowed by API.md)")
    if not rep.check(status == 201, f"upload -> {status} {up}"):
        return rep.done("not uploaded")
    copy = download(researcher, up["id"], rep)
    if copy is None:
        return rep.done("no copy")
    found = [c.decode() for c in canaries if c in copy]
    rep.check(not found, f"canaries found in the copy: {found}")
    detail = structure(data, copy, rep)
    try:
        same = decode(copy) == decode(data)
    except Exception as e:  # noqa: BLE001
        same = False
        rep.errors.append(f"copy does not decode with Pillow: {e!r}")
    rep.check(same, "decoded pixels differ from the original's")
    rep.done(f"planted {len(canaries)} canaries / found {len(found)}; {detail}; pixels {'identical' if same else 'DIFFER'}")


def png_structure(orig, copy, rep):
    try:
        chunks, trailing = png_chunks(copy)
    except ValueError as e:
        rep.errors.append(f"copy is not a well-formed PNG: {e}")
        return "malformed"
    types = [t for t, _, _ in chunks]
    bad = [t.decode() for t in types if t not in PNG_KEEP]
    rep.check(not bad, f"chunks that must go were kept: {bad}")
    rep.check(all(ok for _, _, ok in chunks), "bad CRC in the copy")
    rep.check(types[0] == b"IHDR" and types[-1] == b"IEND", f"chunk order {types}")
    rep.check(trailing == b"", f"{len(trailing)} bytes after IEND")
    kept = {t for t, _, _ in png_chunks(orig)[0]} & PNG_KEEP
    rep.check(kept <= set(types), f"render chunks lost: {sorted(t.decode() for t in kept - set(types))}")
    return f"chunks {'+'.join(sorted({t.decode() for t in types}))}, {len(trailing)} bytes after IEND"


def png_part(doctor, researcher):
    for mode in ("RGB", "P", "APNG"):
        canaries = []

        def canary():
            canaries.append(f"Q{RUN}png{mode}{len(canaries):02d}".encode())
            return canaries[-1]
        canary()  # the upload's filename
        data = make_png(mode, canary)
        check_image("PNG", f"{mode} with tEXt/zTXt/iTXt/eXIf/caBX/prVt + trailer", data, canaries,
                    doctor, researcher, png_structure)
    good = make_png("RGB", lambda: b"x")
    good = good[:good.rindex(b"IEND") + 8]
    ihdr = good[8:33]
    iend = png_chunk(b"IEND", b"")
    idat_at = good.index(b"IDAT") - 4
    (n,) = struct.unpack(">I", good[idat_at:idat_at + 4])
    expect_refused(doctor, "PNG: IHDR + <html> + IEND", PNG_SIG + ihdr + b"<html><script>alert(1)</script></html>" + iend)
    expect_refused(doctor, "PNG: chunk length past the end", good[:idat_at] + struct.pack(">I", n + 100000) + good[idat_at + 4:])
    expect_refused(doctor, "PNG: no IDAT", PNG_SIG + ihdr + iend)
    crc_at = idat_at + 8 + n
    expect_refused(doctor, "PNG: bad IDAT CRC", good[:crc_at] + bytes([good[crc_at] ^ 0xFF]) + good[crc_at + 1:])


# ----------------------------------------------------------------------------- JPEG
SOF = set(range(0xC0, 0xC4)) | set(range(0xC5, 0xC8)) | set(range(0xC9, 0xCC)) | set(range(0xCD, 0xD0))


def jpeg_segments(b):
    """[(marker, payload, offset)] up to and including the first EOI, and the offset after it."""
    if b[:2] != b"\xff\xd8":
        raise ValueError("no SOI")
    i, out = 2, [(0xD8, b"", 0)]
    while i + 1 < len(b):
        if b[i] != 0xFF:
            raise ValueError(f"expected a marker at {i}")
        m = b[i + 1]
        if m == 0xFF:
            i += 1
            continue
        if m == 0xD9:
            out.append((m, b"", i))
            return out, i + 2
        if 0xD0 <= m <= 0xD7 or m == 0x01:
            out.append((m, b"", i))
            i += 2
            continue
        (n,) = struct.unpack(">H", b[i + 2:i + 4])
        if n < 2 or i + 2 + n > len(b):
            raise ValueError(f"segment {m:02X} at {i} runs past the end")
        out.append((m, b[i + 4:i + 2 + n], i))
        i += 2 + n
        if m == 0xDA:
            while True:  # entropy-coded data: skip stuffed bytes and restart markers
                j = b.index(b"\xff", i)
                nxt = b[j + 1]
                if nxt == 0 or 0xD0 <= nxt <= 0xD7:
                    i = j + 2
                elif nxt == 0xFF:
                    i = j + 1
                else:
                    i = j
                    break
    raise ValueError("no EOI")


def seg(marker, payload):
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def base_jpeg(canary=None, **kw):
    im = Image.new("RGB", (64, 48))
    im.putdata([((x * 5) % 256, (y * 9) % 256, ((x + y) * 3) % 256) for y in range(48) for x in range(64)])
    if canary:
        exif = Image.Exif()
        exif[0x013B], exif[0x010E] = canary().decode(), canary().decode()  # Artist, ImageDescription
        kw["exif"] = exif.tobytes()
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90, icc_profile=SRGB_ICC, **kw)
    return buf.getvalue()


def junk_segments(canary):
    thumb = canary()
    return (seg(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01" + bytes([len(thumb), 1]) + thumb * 3)
            + seg(0xE0, b"JFXX\0\x13" + canary())
            + seg(0xE1, b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta><dc:creator>" + canary() + b"</dc:creator></x:xmpmeta>")
            + seg(0xED, b"Photoshop 3.0\x008BIM\x04\x04\0\0\0\0\0\x10\x1c\x02\x50\0\x0c" + canary())
            + seg(0xFE, b"comment " + canary()) + seg(0xE5, b"VENDOR\0" + canary())
            + seg(0xE1, b"Exif\0\0MM\0\x2a\0\0\0\x08" + canary()))


def jpeg_structure(orig, copy, rep):
    try:
        segs, end = jpeg_segments(copy)
    except ValueError as e:
        rep.errors.append(f"copy is not a well-formed JPEG: {e}")
        return "malformed"
    rep.check(end == len(copy), f"{len(copy) - end} bytes after the first EOI")
    for m, payload, at in segs:
        ok = (m in SOF or m in (0xD8, 0xD9, 0xDB, 0xC4, 0xDD, 0xDA) or 0xD0 <= m <= 0xD7
              or (m == 0xE0 and payload[:5] == b"JFIF\0" and len(payload) == 14 and payload[12:14] == b"\0\0")
              or (m == 0xE2 and payload.startswith(b"ICC_PROFILE\0"))
              or (m == 0xEE and payload.startswith(b"Adobe")))
        rep.check(ok, f"segment FF{m:02X} at {at} kept ({payload[:24]!r})")
    render = {(m, p[:5]) for m, p, _ in jpeg_segments(orig)[0] if m in (0xE2, 0xEE, 0xDD)}
    lost = render - {(m, p[:5]) for m, p, _ in segs}
    rep.check(not lost, f"render segments lost: {sorted(lost)}")
    scans = sum(1 for m, _, _ in segs if m == 0xDA)
    return f"segments {' '.join(sorted({f'{m:02X}' for m, _, _ in segs}))}, {scans} scans, {len(copy) - end} bytes after EOI"


def jpeg_part(doctor, researcher):
    canaries = []

    def canary():
        canaries.append(f"Q{RUN}jpg{len(canaries):02d}".encode())
        return canaries[-1]

    canary()
    b = base_jpeg(canary)
    sos = next(at for m, _, at in jpeg_segments(b)[0] if m == 0xDA)
    data = b[:2] + junk_segments(canary) + b[2:sos] + junk_segments(canary) + b[sos:]
    decode(data)
    check_image("JPEG", "baseline, EXIF/XMP/IPTC/COM/APP5/JFIF+JFXX thumbnails after SOI and before SOS", data, canaries[:], doctor,
                researcher, jpeg_structure)

    canaries.clear()
    canary()
    b = base_jpeg(canary, progressive=True)
    sos = [at for m, _, at in jpeg_segments(b)[0] if m == 0xDA]
    assert len(sos) > 1, "Pillow did not write a progressive JPEG"
    data = b[:sos[1]] + junk_segments(canary) + b[sos[1]:]
    decode(data)
    check_image("JPEG", f"progressive ({len(sos)} scans), metadata between scans 1 and 2", data, canaries[:],
                doctor, researcher, jpeg_structure)

    canaries.clear()
    canary()
    data = base_jpeg() + base_jpeg(canary) + seg(0xFE, canary())
    check_image("JPEG", "second JPEG (EXIF artist) appended after EOI", data, canaries[:], doctor, researcher,
                jpeg_structure, refusable=True)

    b = base_jpeg()
    sof_at = next(at for m, p, at in jpeg_segments(b)[0] if m in SOF)
    sof_end = sof_at + 2 + struct.unpack(">H", b[sof_at + 2:sof_at + 4])[0]
    noise = random.Random(1).randbytes(4000)
    expect_refused(doctor, "JPEG: SOF followed by random bytes", b[:sof_end] + noise + b"\xff\xd9")


# ----------------------------------------------------------------------------- main
def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__.split("\n\n")[1])
    base, admin_user, admin_password = sys.argv[1:]
    admin = Api(base, token_for(base, admin_user, admin_password))
    users = {}
    for role in ("doctor", "researcher"):
        name = f"deid-{role}-{RUN}"
        admin.ok("POST", "/users", {"username": name, "password": PASSWORD, "roles": [role]})
        users[role] = Api(base, token_for(base, name, PASSWORD))
    print(f"deid_check: run {RUN}, table {os.path.basename(TABLE_PATH)} ({len(EXACT)} tags + {len(MASKS)} masks), "
          f"pydicom {pydicom.__version__}, numpy {'yes' if numpy else 'no'}")
    dicom_part(users["doctor"], users["researcher"])
    png_part(users["doctor"], users["researcher"])
    jpeg_part(users["doctor"], users["researcher"])
    if FAILURES:
        print(f"deid_check: {len(FAILURES)} failure(s)")
        sys.exit(1)
    print("deid_check: all checks passed")


if __name__ == "__main__":
    main()
