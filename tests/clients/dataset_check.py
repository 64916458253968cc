#!/usr/bin/env python3
"""Independent check of the dataset exports (COCO, YOLO, CSV) that medlabel serves to researchers.

Usage: python3 tests/clients/dataset_check.py BASE_URL ADMIN_USERNAME ADMIN_PASSWORD

It shares no code with the server: it builds its own images (Pillow PNG/JPEG, pydicom DICOM),
talks to the server only over HTTP (urllib), and reads the archives with the tools that training
code uses (zipfile, pycocotools, PyYAML, csv). The contract is shared/API.md, sections
"Annotations" and "Datasets".

As admin it creates a doctor and a researcher. The researcher creates labels (one non-ASCII,
one with a comma and quotes, plus one left unused); the doctor uploads PNGs and a JPEG of
various sizes (some naming a patient with `patient_id`/`issuer`) and DICOMs (CT 16-bit signed
with Rescale Slope/Intercept and two windows; unsigned without a window; MONOCHROME1; a
two-frame file), with canaries as patient name, ID, issuer, birth date, accession number and
filename; assigns diagnoses and posts boxes (touching the border, fractional), polygons (3 and
50 points), points (at corners), on frames 0 and 1, and leaves one image bare. Then:
- dataset: POST /datasets answers the counts and the used labels in name order; GET equals it.
- every format: each export is byte-identical on a second download, `application/zip`, a valid
  zip without duplicate entries and with only the entries the contract names; `dataset.json`
  holds the dataset (equal to GET /datasets/{id}), the format, `frozen_at` and the SHA-256 of
  every other entry (all verified, none missing); `images/` holds the researcher's copies byte
  for byte; DICOM copies carry the subject pseudonym as Patient's Name/ID; no entry (nor any
  entry name) contains a canary, in any letter case.
- coco: pycocotools loads `annotations.json`; images point at entries whose real size is the
  declared one (DICOM rendered as 8-bit grey PNG of Columns x Rows, pixels checked against
  PS3.3 C.11.2.1.2 within 1 grey level, MONOCHROME1 inverted); ids run 1..n; categories are the
  used labels in name order from id 1; every frame-0 annotation has the posted bbox, area and
  segmentation (points: 1x1 box centred on the point, clamped into the image, keypoints
  [x, y, 2]); frame-1 annotations are absent; annToMask works for all; `image_labels.csv` has
  one row per diagnosis.
- yolo: `data.yaml` names the classes in name order (nc = their count); every image has
  `labels/<id>.txt`, empty exactly when it has no box/polygon on frame 0; every line is the class
  and normalised coordinates in [0, 1] equal to the posted ones within 2e-6; no points.
- csv: `images.csv` and `annotations.csv` have the contract's headers, one row per image and per
  annotation (every frame), the posted geometry as JSON, labels with commas/quotes intact.
- frozen: after the doctor edits, deletes and re-labels annotations and diagnoses, deletes an
  image, and the researcher renames a label, every export (as researcher and as admin) is
  byte-identical to the first one and GET /datasets/{id} is unchanged; a new dataset sees the
  changes.
- filters: `label_id` and `modality` select the images that GET /images selects.
- access: doctors get 403 on every dataset route; `format=xml` is 422; an unknown id is 404.
Prints one line per check group and exits 1 on any failure.
"""
import contextlib
import csv
import hashlib
import http.client
import io
import json
import math
import os
import re
import secrets
import sys
import tempfile
import urllib.error
import urllib.request
import uuid
import warnings
import zipfile

import numpy
import pydicom
import yaml
from PIL import Image
from pycocotools.coco import COCO
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

warnings.filterwarnings("ignore", category=UserWarning)
RUN = secrets.token_hex(3)
PASSWORD = "dataset check passphrase " + RUN
FAILURES = []
FORMATS = ("coco", "yolo", "csv")
YOLO_TOL = 2e-6  # 6 printed decimals


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
            with urllib.request.urlopen(req, timeout=300) as r:
                try:
                    return r.status, r.headers, r.read()
                except http.client.IncompleteRead as e:  # a streamed body that the server broke off
                    return f"{r.status} cut off after {len(e.partial)} bytes", r.headers, e.partial
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def ok(self, method, path, body=None, want=(200, 201)):
        status, _, data = self.call(method, path, body)
        if status not in want:
            sys.exit(f"setup failed: {method} {path} -> {status} {data[:300]!r}")
        return json.loads(data) if data else None

    def upload(self, filename, data, fields=None):
        boundary = uuid.uuid4().hex
        body = b""
        for name, value in (fields or {}).items():
            body += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n').encode()
        body += (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"'
                 f"\r\nContent-Type: application/octet-stream\r\n\r\n").encode() + data \
            + f"\r\n--{boundary}--\r\n".encode()
        status, _, resp = self.call("POST", "/images", body, f"multipart/form-data; boundary={boundary}")
        return status, (json.loads(resp) if resp.startswith(b"{") else {})


def token_for(base, username, password):
    api = Api(base)
    status, headers, data = api.call("POST", "/auth/login", {"username": username, "password": password})
    if status != 200:
        sys.exit(f"login as {username} failed: {status} {data[:200]!r}")
    cookie = "; ".join(c.split(";")[0] for c in headers.get_all("Set-Cookie") or [])
    status, _, data = api.call("POST", "/auth/tokens", {"name": "dataset-check"}, headers={"Cookie": cookie})
    if status != 201:
        sys.exit(f"token for {username} failed: {status} {data[:200]!r}")
    return json.loads(data)["token"]


class Report:
    """Collects the errors of one check group and prints its summary line."""

    def __init__(self, name):
        self.name, self.errors = name, []

    def check(self, cond, msg):
        if not cond:
            self.errors.append(msg)
        return cond

    def done(self, summary):
        print(f"{'PASS' if not self.errors else 'FAIL'} {self.name}: {summary}")
        for e in self.errors[:40]:
            print("       - " + e)
        if len(self.errors) > 40:
            print(f"       - ... {len(self.errors) - 40} more")
        FAILURES.extend(f"{self.name}: {e}" for e in self.errors)


def close(a, b, tol=1e-9):
    return abs(float(a) - float(b)) <= tol * max(1.0, abs(float(a)), abs(float(b)))


def all_close(a, b, tol=1e-9):
    return len(a) == len(b) and all(close(x, y, tol) for x, y in zip(a, b))


def shoelace(points):
    n = len(points)
    return abs(sum(points[i][0] * points[(i + 1) % n][1] - points[(i + 1) % n][0] * points[i][1]
                   for i in range(n))) / 2


# ----------------------------------------------------------------------------- test images
def png_bytes(size, mode="RGB"):
    w, h = size
    im = Image.new(mode, size)
    if mode == "L":
        im.putdata([(x * 5 + y * 3) % 256 for y in range(h) for x in range(w)])
    else:
        im.putdata([((x * 7) % 256, (y * 11) % 256, (x * y) % 256) for y in range(h) for x in range(w)])
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def jpeg_bytes(size):
    w, h = size
    im = Image.new("RGB", size)
    im.putdata([((x * 3) % 256, (y * 5) % 256, ((x + y) * 2) % 256) for y in range(h) for x in range(w)])
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


CT_IMAGE, CR_IMAGE, MF_GREY_BYTE = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.1", "1.2.840.10008.5.1.4.1.1.7.2"


def dicom_bytes(patient, sop_class, modality, photometric, frames, signed, slope="1", intercept="0",
                window=None, bits=16):
    """An uncompressed Explicit VR Little Endian file, `bits` (8 or 16) allocated and stored."""
    rows, cols = frames[0].shape
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop
    ds.PatientName, ds.PatientID, ds.IssuerOfPatientID = patient["name"], patient["id"], patient["issuer"]
    ds.PatientBirthDate, ds.PatientSex = patient["birth"], "F"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = patient["study"], generate_uid()
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber = "20240105", "101112", patient["accession"]
    ds.ReferringPhysicianName, ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "", "1", "1", "1"
    ds.Modality = modality
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 1 if signed else 0
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if modality == "CT":
        ds.RescaleType = "HU"
    if window:
        ds.WindowCenter, ds.WindowWidth = window
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
        ds.FrameIncrementPointer = 0x00181063
        ds.FrameTime = "100"
    dtype = {(16, True): "<i2", (16, False): "<u2", (8, True): "i1", (8, False): "u1"}[(bits, signed)]
    ds.PixelData = b"".join(f.astype(dtype).tobytes() for f in frames)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def expected_render(spec):
    """Frame 0 as PS3.3 C.11 says: Modality LUT, then the first linear VOI window (C.11.2.1.2.1) or
    the full range of the rescaled values; MONOCHROME1 inverted so that it shows as a viewer shows."""
    x = spec["frames"][0].astype(numpy.float64) * float(spec["slope"]) + float(spec["intercept"])
    if spec["window"]:
        c, w = float(spec["window"][0][0]), float(spec["window"][1][0])
        y = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255
        y = numpy.where(x <= c - 0.5 - (w - 1) / 2, 0, numpy.where(x > c - 0.5 + (w - 1) / 2, 255, y))
    else:
        y = (x - x.min()) / (x.max() - x.min()) * 255
    y = numpy.clip(y, 0, 255)
    return 255 - y if spec["photometric"] == "MONOCHROME1" else y


# ----------------------------------------------------------------------------- setup
def dicom_specs(p1, p2):
    """The DICOM uploads: name -> dicom_bytes arguments (window: ([centers], [widths]) or None)."""
    rng = numpy.random.default_rng(7)
    ct = rng.integers(-200, 1500, size=(60, 80))  # signed stored values, HU = v - 1024
    nowin = rng.integers(0, 60000, size=(70, 50))  # unsigned above 32767
    mono1 = numpy.fromfunction(lambda y, x: (x * 61 + y * 7) % 4000, (64, 64), dtype=numpy.int64)
    mf = [numpy.fromfunction(lambda y, x: x * 7 + y, (24, 32), dtype=numpy.int64),
          numpy.fromfunction(lambda y, x: 250 - y * 10, (24, 32), dtype=numpy.int64)]
    return {
        "ct": dict(patient=p1, sop_class=CT_IMAGE, modality="CT", photometric="MONOCHROME2", frames=[ct],
                   signed=True, slope="1", intercept="-1024", window=(["40", "300"], ["400", "1500"])),
        "ct-nowindow": dict(patient=p1, sop_class=CT_IMAGE, modality="CT", photometric="MONOCHROME2",
                            frames=[nowin], signed=False, slope="2", intercept="-100", window=None),
        "cr-mono1": dict(patient=p2, sop_class=CR_IMAGE, modality="CR", photometric="MONOCHROME1", frames=[mono1],
                         signed=False, slope="1", intercept="0", window=(["2000"], ["4000"])),
        "two-frames": dict(patient=p2, sop_class=MF_GREY_BYTE, modality="OT", photometric="MONOCHROME2", frames=mf,
                           signed=False, slope="1", intercept="0", window=None, bits=8),
    }


class World:
    """Everything posted, as posted."""

    def __init__(self):
        self.images = {}       # id -> {"name", "kind", "width", "height", "dicom"?: spec}
        self.order = []        # image ids in upload order
        self.labels = {}       # key -> {"id", "name"}
        self.diagnoses = {}    # image id -> set of label ids
        self.annotations = {}  # id -> {"image", "label", "shape", "geometry", "frame"}
        self.canaries = []
        self.copies = {}       # image id -> researcher's download
        self.meta = {}         # image id -> researcher's GET /images/{id}


def build(doctor, researcher, rep):
    w = World()
    names = {"effusion": f"Effusion {RUN}", "nodule": f'Nodule, "spiculated" {RUN}', "oedem": f"Ödem {RUN}",
             "unused": f"Unused label {RUN}"}
    for key, name in names.items():
        w.labels[key] = researcher.ok("POST", "/labels", {"name": name})
    p1 = {"name": f"CANARY{RUN}^PATIENT{RUN}^MIDDLE{RUN}", "id": f"CANARY-ID-{RUN}", "issuer": f"ISSUERA{RUN}",
          "birth": "19270413", "study": generate_uid(), "accession": f"ACCA{RUN}"}
    p2 = {"name": f"CANARYB{RUN}^ZELDA{RUN}", "id": f"CANARY-ID2-{RUN}", "issuer": "",
          "birth": "19350822", "study": generate_uid(), "accession": f"ACCB{RUN}"}
    png_patient = {"patient_id": f"CANARY-PNG-{RUN}", "issuer": f"ISSUERP{RUN}"}
    for p in (p1, p2):
        dashed = f"{p['birth'][:4]}-{p['birth'][4:6]}-{p['birth'][6:]}"
        w.canaries += [p["id"], p["name"], p["birth"], dashed, p["accession"]]
        w.canaries += [part for part in p["name"].split("^")]
        if p["issuer"]:
            w.canaries.append(p["issuer"])
    w.canaries += list(png_patient.values()) + [f"FN{RUN}"]

    dicoms = dicom_specs(p1, p2)
    uploads = [
        ("png-64x48", "png", png_bytes((64, 48)), png_patient, (64, 48)),
        ("png-300x200", "png", png_bytes((300, 200), "L"), None, (300, 200)),
        ("png-17x31-bare", "png", png_bytes((17, 31)), png_patient, (17, 31)),
        ("png-40x40-points", "png", png_bytes((40, 40)), None, (40, 40)),
        ("jpeg-120x90", "jpg", jpeg_bytes((120, 90)), {"patient_id": png_patient["patient_id"]}, (120, 90)),
    ] + [(name, "dcm", dicom_bytes(**spec), None, (spec["frames"][0].shape[1], spec["frames"][0].shape[0]))
         for name, spec in dicoms.items()]
    ids = {}
    for i, (name, kind, data, fields, size) in enumerate(uploads):
        status, up = doctor.upload(f"FN{RUN}-{i}.{kind}", data, fields)
        if not rep.check(status == 201, f"upload {name} -> {status} {up}"):
            continue
        ids[name] = up["id"]
        w.order.append(up["id"])
        w.images[up["id"]] = {"name": name, "kind": kind, "width": size[0], "height": size[1],
                              "dicom": dicoms.get(name), "upload": up}
        w.diagnoses[up["id"]] = set()
        rep.check((up.get("width"), up.get("height")) == size,
                  f"{name}: Image width/height {up.get('width')}x{up.get('height')}, expected {size[0]}x{size[1]}")

    def diagnose(name, label):
        if name not in ids:
            return
        status, _, body = doctor.call("POST", f"/images/{ids[name]}/labels", {"label_id": w.labels[label]["id"]})
        if rep.check(status == 201, f"diagnosis {label} on {name} -> {status} {body[:200]!r}"):
            w.diagnoses[ids[name]].add(w.labels[label]["id"])

    def annotate(name, label, shape, geometry, frame=0, note=None):
        if name not in ids:
            return
        body = {"label_id": w.labels[label]["id"], "shape": shape, "geometry": geometry, "frame": frame}
        if note is not None:
            body["note"] = note
        status, _, resp = doctor.call("POST", f"/images/{ids[name]}/annotations", body)
        if rep.check(status == 201, f"annotation {shape} {geometry} on {name} frame {frame} -> {status} {resp[:300]!r}"):
            a = json.loads(resp)
            w.annotations[a["id"]] = {"image": ids[name], "label": w.labels[label]["id"], "shape": shape,
                                      "geometry": geometry, "frame": frame, "key": f"{name}/{shape}/{len(w.annotations)}"}
            rep.check(a.get("geometry") == geometry and a.get("frame") == frame,
                      f"annotation on {name}: answered geometry {a.get('geometry')} frame {a.get('frame')}")

    for name, labels in (("png-64x48", ["effusion", "nodule"]), ("png-300x200", ["nodule"]),
                         ("png-17x31-bare", ["effusion"]), ("jpeg-120x90", ["effusion", "nodule"]),
                         ("ct", ["nodule"]), ("cr-mono1", ["effusion"])):
        for label in labels:
            diagnose(name, label)
    circle = [[round(150 + 80 * math.cos(2 * math.pi * k / 50), 3), round(100 + 60 * math.sin(2 * math.pi * k / 50), 3)]
              for k in range(50)]
    annotate("png-64x48", "nodule", "box", {"x": 44, "y": 8, "width": 20, "height": 30})  # x + width == 64
    annotate("png-64x48", "oedem", "box", {"x": 10.25, "y": 5.5, "width": 20.5, "height": 12.75},
             note=f"compare with PATIENT{RUN} earlier")
    annotate("png-64x48", "oedem", "box", {"x": 3.3, "y": 0.1, "width": 33.3, "height": 47.9})  # y + height == 48
    annotate("png-64x48", "nodule", "point", {"x": 0, "y": 0})
    annotate("png-64x48", "oedem", "polygon", {"points": [[1.5, 2.25], [60.75, 3], [30, 47.5]]})
    annotate("png-300x200", "nodule", "polygon", {"points": circle})
    annotate("png-300x200", "oedem", "box", {"x": 0, "y": 150, "width": 300, "height": 50})
    annotate("png-300x200", "nodule", "point", {"x": 300, "y": 200})
    annotate("png-300x200", "nodule", "point", {"x": 12.7, "y": 199.8})
    annotate("png-40x40-points", "oedem", "point", {"x": 40, "y": 0})
    annotate("png-40x40-points", "oedem", "point", {"x": 20.5, "y": 19.25})
    annotate("jpeg-120x90", "nodule", "box", {"x": 0, "y": 0, "width": 120, "height": 90})
    annotate("jpeg-120x90", "oedem", "polygon", {"points": [[0, 0], [120, 0], [120, 90], [0, 90], [60, 45.5]]})
    annotate("ct", "nodule", "box", {"x": 60, "y": 40, "width": 20, "height": 20})  # bottom-right corner
    annotate("ct", "oedem", "polygon", {"points": [[5, 5], [25.5, 5], [25.5, 30.25], [5, 30.25]]})
    annotate("ct", "nodule", "point", {"x": 80, "y": 0})
    annotate("ct-nowindow", "oedem", "box", {"x": 0.5, "y": 0.5, "width": 49.5, "height": 69.5})
    annotate("cr-mono1", "nodule", "point", {"x": 0, "y": 64})
    annotate("cr-mono1", "nodule", "polygon", {"points": [[0, 0], [64, 0], [32, 64]]})
    annotate("two-frames", "oedem", "box", {"x": 2, "y": 2, "width": 10, "height": 10}, frame=1)
    annotate("two-frames", "nodule", "polygon", {"points": [[0, 0], [32, 0], [0, 24]]}, frame=0)
    annotate("two-frames", "oedem", "point", {"x": 31, "y": 23}, frame=1)
    w.ids = ids

    for image_id in w.order:
        status, _, data = researcher.call("GET", f"/images/{image_id}")
        if rep.check(status == 200, f"researcher GET /images/{image_id} -> {status}"):
            w.meta[image_id] = json.loads(data)
        status, _, data = researcher.call("GET", f"/images/{image_id}/file")
        if rep.check(status == 200, f"researcher GET /images/{image_id}/file -> {status} {data[:200]!r}"):
            w.copies[image_id] = data
    return w


def used_labels(w):
    used = set().union(*w.diagnoses.values()) | {a["label"] for a in w.annotations.values()}
    labels = [{"id": l["id"], "name": l["name"]} for l in w.labels.values() if l["id"] in used]
    return sorted(labels, key=lambda l: l["name"])  # the names chosen sort alike by code point, case fold and collation


# ----------------------------------------------------------------------------- archive checks
def archive_entries(zf, rep):
    names = zf.namelist()
    dups = sorted({n for n in names if names.count(n) > 1})
    rep.check(not dups, f"duplicate entries: {dups}")
    bad = zf.testzip()
    rep.check(bad is None, f"CRC error in {bad}")
    return {n: zf.read(n) for n in names}


def expected_paths(w, fmt):
    paths = {"dataset.json"}
    for image_id in w.order:
        kind = w.images[image_id]["kind"]
        paths.add(f"images/{image_id}.{kind}")
        if kind == "dcm" and fmt in ("coco", "yolo"):
            paths.add(f"images/{image_id}.png")
        if fmt == "yolo":
            paths.add(f"labels/{image_id}.txt")
    paths |= {"coco": {"annotations.json", "image_labels.csv"}, "yolo": {"data.yaml"},
              "csv": {"images.csv", "annotations.csv"}}[fmt]
    return paths


def check_common(fmt, raw, entries, w, dataset, rep):
    want = expected_paths(w, fmt)
    rep.check(set(entries) == want, f"entries missing {sorted(want - set(entries))}, unexpected {sorted(set(entries) - want)}")
    try:
        meta = json.loads(entries.get("dataset.json", b""))
    except ValueError as e:
        rep.errors.append(f"dataset.json does not parse: {e}")
        meta = {}
    rep.check(set(meta) >= {"dataset", "format", "frozen_at", "files"}, f"dataset.json keys {sorted(meta)}")
    rep.check(meta.get("dataset") == dataset, f"dataset.json dataset {meta.get('dataset')} != GET /datasets/{{id}} {dataset}")
    rep.check(meta.get("format") == fmt, f"dataset.json format {meta.get('format')!r}")
    rep.check(isinstance(meta.get("frozen_at"), str) and re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", meta.get("frozen_at", "")), f"frozen_at {meta.get('frozen_at')!r}")
    files = meta.get("files") or {}
    others = set(entries) - {"dataset.json"}
    rep.check(set(files) == others,
              f"files lists {sorted(set(files) - others)} not in the zip; misses {sorted(others - set(files))}")
    wrong = [p for p in others & set(files) if files[p] != hashlib.sha256(entries[p]).hexdigest()]
    rep.check(not wrong, f"sha256 in dataset.json does not match the entry: {sorted(wrong)}")
    # the researcher's copies, byte for byte; DICOM copies carry the pseudonym
    for image_id in w.order:
        kind = w.images[image_id]["kind"]
        path = f"images/{image_id}.{kind}"
        if path in entries and image_id in w.copies:
            rep.check(entries[path] == w.copies[image_id], f"{path} differs from the researcher's download "
                                                           f"({len(entries[path])} vs {len(w.copies[image_id])} bytes)")
        if kind == "dcm" and path in entries:
            subject = w.meta.get(image_id, {}).get("subject_id")
            rep.check(isinstance(subject, str) and re.fullmatch(r"S-[A-Z2-7]{16}", subject), f"{path}: subject_id {subject!r}")
            try:
                ds = pydicom.dcmread(io.BytesIO(entries[path]))
                rep.check(str(ds.PatientName) == subject and ds.PatientID == subject,
                          f"{path}: PatientName {str(ds.PatientName)!r} / PatientID {ds.PatientID!r}, subject {subject!r}")
            except Exception as e:  # noqa: BLE001
                rep.errors.append(f"{path}: pydicom cannot read it: {e!r}")
    # the rendered PNG of each DICOM (COCO and YOLO read pixels)
    renders = []
    for image_id in w.order:
        info = w.images[image_id]
        if info["kind"] == "dcm" and f"images/{image_id}.png" in entries:
            renders.append((info["name"], check_render(image_id, info["dicom"], entries[f"images/{image_id}.png"], rep)))
    # no canary anywhere (entry contents, entry names, the raw archive)
    for name, data in list(entries.items()) + [("<entry names>", "\n".join(entries).encode()), ("<raw zip>", raw)]:
        low = data.lower()
        found = [c for c in w.canaries if c.lower().encode() in low]
        rep.check(not found, f"canary {found} in {name}")
    return renders


def check_render(image_id, spec, data, rep):
    """The rendered PNG of a DICOM: 8-bit grey, Columns x Rows, pixels as PS3.3 C.11 says."""
    try:
        im = Image.open(io.BytesIO(data))
        im.load()
    except Exception as e:  # noqa: BLE001
        rep.errors.append(f"images/{image_id}.png does not open: {e!r}")
        return None
    rows, cols = spec["frames"][0].shape
    rep.check(im.mode == "L", f"images/{image_id}.png mode {im.mode}, expected L")
    rep.check(im.size == (cols, rows), f"images/{image_id}.png size {im.size}, expected {cols}x{rows}")
    if im.mode != "L" or im.size != (cols, rows):
        return None
    got = numpy.asarray(im, dtype=numpy.float64)
    diff = numpy.abs(got - expected_render(spec))
    # A window is PS3.3's formula (rounding: 1 level). "The full range" has no formula: the extremes
    # must reach 0 and 255, and a linear map of min..max may differ by a rounding and by the
    # (w - 1) of C.11.2.1.2.1 when the range is narrow (1.5 levels).
    tol = 1.0 if spec["window"] else 1.5
    if not spec["window"]:
        rep.check(got.min() == 0 and got.max() == 255,
                  f"images/{image_id}.png (no window) spans {got.min():.0f}..{got.max():.0f}, not 0..255")
    rep.check(diff.max() <= tol, f"images/{image_id}.png ({spec['photometric']}, window {spec['window']}) differs from "
                                 f"PS3.3 C.11 by up to {diff.max():.2f} grey levels ({int((diff > tol).sum())} pixels)")
    return diff.max()


def check_coco(entries, w, rep):
    labels = used_labels(w)
    try:
        doc = json.loads(entries["annotations.json"])
    except (KeyError, ValueError) as e:
        rep.errors.append(f"annotations.json: {e!r}")
        return "unreadable"
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(doc, f)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(f.name)
    except Exception as e:  # noqa: BLE001
        rep.errors.append(f"pycocotools cannot load annotations.json: {e!r}")
        return "unloadable"
    finally:
        os.unlink(f.name)
    images = doc.get("images", [])
    rep.check([i.get("id") for i in images] == list(range(1, len(images) + 1)), f"image ids {[i.get('id') for i in images]}")
    by_uuid = {i.get("medlabel_id"): i for i in images}
    rep.check(set(by_uuid) == set(w.order) and len(images) == len(w.order),
              f"COCO images {sorted(by_uuid)} != dataset images {sorted(w.order)}")
    for image_id in w.order:
        entry = by_uuid.get(image_id)
        if entry is None:
            continue
        info = w.images[image_id]
        want_file = f"images/{image_id}.{'jpg' if info['kind'] == 'jpg' else 'png'}"
        rep.check(entry.get("file_name") == want_file,
                  f"{info['name']}: file_name {entry.get('file_name')!r}, expected {want_file}")
        rep.check((entry.get("width"), entry.get("height")) == (info["width"], info["height"]),
                  f"{info['name']}: COCO size {entry.get('width')}x{entry.get('height')}")
        data = entries.get(entry.get("file_name"))
        if not rep.check(data is not None, f"{info['name']}: {entry.get('file_name')} is not in the zip"):
            continue
        try:
            im = Image.open(io.BytesIO(data))
            rep.check(im.size == (entry.get("width"), entry.get("height")),
                      f"{info['name']}: file is {im.size[0]}x{im.size[1]}, COCO says {entry.get('width')}x{entry.get('height')}")
            rep.check(info["kind"] != "dcm" or im.mode == "L", f"{info['name']}: rendered PNG mode {im.mode}")
        except Exception as e:  # noqa: BLE001
            rep.errors.append(f"{info['name']}: {entry.get('file_name')} does not open: {e!r}")
    cats = doc.get("categories", [])
    rep.check([(c.get("id"), c.get("name"), c.get("medlabel_id")) for c in cats]
              == [(i + 1, l["name"], l["id"]) for i, l in enumerate(labels)],
              f"categories {[(c.get('id'), c.get('name')) for c in cats]}, expected {[l['name'] for l in labels]} from 1")
    cat_of = {l["id"]: i + 1 for i, l in enumerate(labels)}
    anns = doc.get("annotations", [])
    rep.check([a.get("id") for a in anns] == list(range(1, len(anns) + 1)), f"annotation ids {[a.get('id') for a in anns]}")
    posted = {k: a for k, a in w.annotations.items() if a["frame"] == 0}
    got = {a.get("medlabel_id"): a for a in anns}
    rep.check(set(got) == set(posted) and len(anns) == len(posted),
              f"COCO annotations: missing {[posted[k]['key'] for k in set(posted) - set(got)]}, "
              f"unexpected {[w.annotations.get(k, {}).get('key', k) for k in set(got) - set(posted)]}")
    coco_id_of = {i.get("medlabel_id"): i.get("id") for i in images}
    for key, p in posted.items():
        a = got.get(key)
        if a is None:
            continue
        where = p["key"]
        info = w.images[p["image"]]
        W, H = info["width"], info["height"]
        g = p["geometry"]
        rep.check(a.get("image_id") == coco_id_of.get(p["image"]), f"{where}: image_id {a.get('image_id')}")
        rep.check(a.get("category_id") == cat_of.get(p["label"]), f"{where}: category_id {a.get('category_id')}")
        rep.check(a.get("iscrowd") == 0, f"{where}: iscrowd {a.get('iscrowd')!r}")
        bbox, area, seg = a.get("bbox") or [], a.get("area"), a.get("segmentation")
        if p["shape"] == "box":
            rep.check(all_close(bbox, [g["x"], g["y"], g["width"], g["height"]]), f"{where}: bbox {bbox}, posted {g}")
            rep.check(area is not None and close(area, g["width"] * g["height"]),
                      f"{where}: area {area}, expected {g['width'] * g['height']}")
        elif p["shape"] == "polygon":
            xs, ys = [q[0] for q in g["points"]], [q[1] for q in g["points"]]
            want = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
            rep.check(all_close(bbox, want), f"{where}: bbox {bbox}, expected {want}")
            rep.check(area is not None and close(area, shoelace(g["points"]), 1e-7),
                      f"{where}: area {area}, shoelace {shoelace(g['points'])}")
            flat = [c for q in g["points"] for c in q]
            rep.check(isinstance(seg, list) and len(seg) == 1 and all_close(seg[0], flat),
                      f"{where}: segmentation {str(seg)[:120]} is not the posted points")
        else:
            px, py = g["x"], g["y"]
            rep.check(a.get("keypoints") == [px, py, 2], f"{where}: keypoints {a.get('keypoints')}")
            ok = len(bbox) == 4 and close(bbox[2], 1) and close(bbox[3], 1)
            ok = ok and bbox[0] - 1e-9 <= px <= bbox[0] + 1 + 1e-9 and bbox[1] - 1e-9 <= py <= bbox[1] + 1 + 1e-9
            ok = ok and bbox[0] >= -1e-9 and bbox[1] >= -1e-9 and bbox[0] + 1 <= W + 1e-9 and bbox[1] + 1 <= H + 1e-9
            want = [min(max(px - 0.5, 0), W - 1), min(max(py - 0.5, 0), H - 1), 1, 1]
            rep.check(ok and all_close(bbox, want), f"{where}: point ({px}, {py}) in {W}x{H} has bbox {bbox}, expected {want}")
            rep.check(area is not None and close(area, 1), f"{where}: area {area}, expected 1")
        if p["shape"] in ("box", "point") and rep.check(isinstance(seg, list) and len(seg) == 1 and len(seg[0]) >= 8,
                                                         f"{where}: segmentation {seg!r} is not a rectangle"):
            pts = list(zip(seg[0][0::2], seg[0][1::2]))
            xs, ys = [q[0] for q in pts], [q[1] for q in pts]
            rep.check(all_close([min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)], bbox)
                      and close(shoelace(pts), bbox[2] * bbox[3] if len(bbox) == 4 else -1),
                      f"{where}: segmentation {seg} is not the bbox rectangle {bbox}")
        try:
            mask = coco.annToMask(coco.anns[a["id"]])
            rep.check(mask.shape == (H, W), f"{where}: annToMask shape {mask.shape}, image {W}x{H}")
        except Exception as e:  # noqa: BLE001
            rep.errors.append(f"{where}: annToMask failed: {e!r}")
    rows = read_csv(entries.get("image_labels.csv"), "image_labels.csv", rep)
    if rows is not None:
        rep.check(rows[:1] == [["image_id", "label_id", "label_name"]], f"image_labels.csv header {rows[:1]}")
        name_of = {l["id"]: l["name"] for l in w.labels.values()}
        want = sorted((i, l, name_of[l]) for i, ls in w.diagnoses.items() for l in ls)
        got_rows = sorted(tuple(r) for r in rows[1:])
        rep.check(got_rows == want, f"image_labels.csv rows {got_rows} != diagnoses {want}")
    return f"{len(images)} images, {len(anns)} annotations (frame 0 of {len(w.annotations)}), {len(cats)} categories"


def read_csv(data, name, rep):
    if not rep.check(data is not None, f"{name} missing"):
        return None
    try:
        return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    except (UnicodeDecodeError, csv.Error) as e:
        rep.errors.append(f"{name} does not parse: {e!r}")
        return None


def yolo_numbers(p, W, H):
    g = p["geometry"]
    if p["shape"] == "box":
        return [(g["x"] + g["width"] / 2) / W, (g["y"] + g["height"] / 2) / H, g["width"] / W, g["height"] / H]
    return [c / d for x, y in g["points"] for c, d in ((x, W), (y, H))]


def check_yolo(entries, w, rep):
    labels = used_labels(w)
    try:
        data = yaml.safe_load(entries["data.yaml"].decode("utf-8"))
    except Exception as e:  # noqa: BLE001
        rep.errors.append(f"data.yaml: {e!r}")
        return "unreadable"
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, list):
        names = dict(enumerate(names))
    want = {i: l["name"] for i, l in enumerate(labels)}
    rep.check(names == want, f"data.yaml names {names}, expected {want}")
    nc = data.get("nc") if isinstance(data, dict) else None
    rep.check(nc == len(labels), f"data.yaml nc {nc!r}, expected {len(labels)}")
    cls = {l["id"]: i for i, l in enumerate(labels)}
    nlines = 0
    for image_id in w.order:
        info = w.images[image_id]
        path = f"labels/{image_id}.txt"
        if not rep.check(path in entries, f"{info['name']}: {path} missing"):
            continue
        W, H = info["width"], info["height"]
        wanted = [(cls[p["label"]], yolo_numbers(p, W, H), p["key"]) for p in w.annotations.values()
                  if p["image"] == image_id and p["frame"] == 0 and p["shape"] != "point"]
        text = entries[path].decode("utf-8", "replace")
        lines = [ln for ln in text.splitlines() if ln.strip()]
        rep.check((text.strip() == "") == (not wanted),
                  f"{info['name']}: {path} is {'empty' if not text.strip() else 'not empty'}, "
                  f"{len(wanted)} boxes/polygons on frame 0")
        parsed = []
        for ln in lines:
            parts = ln.split()
            try:
                c, nums = int(parts[0]), [float(x) for x in parts[1:]]
            except (ValueError, IndexError):
                rep.errors.append(f"{path}: unparseable line {ln!r}")
                continue
            rep.check(0 <= c < len(labels), f"{path}: class {c} out of range")
            rep.check(all(0 <= x <= 1 for x in nums), f"{path}: coordinate outside [0, 1] in {ln!r}")
            rep.check(len(nums) == 4 or (len(nums) >= 6 and len(nums) % 2 == 0), f"{path}: {len(nums)} numbers in {ln!r}")
            parsed.append((c, nums, ln))
        nlines += len(parsed)
        rest = list(parsed)
        for c, nums, key in wanted:
            hit = next((r for r in rest if r[0] == c and all_close_abs(r[1], nums, YOLO_TOL)), None)
            if rep.check(hit is not None, f"{key}: no line '{c} {' '.join(f'{x:.6f}' for x in nums)[:120]}' in {path}"):
                rest.remove(hit)
        rep.check(not rest, f"{path}: lines that match no posted box/polygon (points must be left out): "
                            f"{[r[2][:80] for r in rest]}")
    return f"{len(names or {})} classes, {nlines} lines in {len(w.order)} label files"


def all_close_abs(a, b, tol):
    return len(a) == len(b) and all(abs(x - y) <= tol for x, y in zip(a, b))


def check_csv(entries, w, rep):
    name_of = {l["id"]: l["name"] for l in w.labels.values()}
    rows = read_csv(entries.get("images.csv"), "images.csv", rep)
    if rows is not None:
        rep.check(rows[:1] == [["image_id", "subject_id", "study_id", "modality", "width", "height", "content_type", "labels"]],
                  f"images.csv header {rows[:1]}")
        got = {r[0]: r for r in rows[1:] if r}
        rep.check(sorted(got) == sorted(w.order) and len(rows) - 1 == len(w.order), f"images.csv ids {sorted(got)}")
        for image_id in w.order:
            r, m = got.get(image_id), w.meta.get(image_id, {})
            if r is None or not rep.check(len(r) == 8, f"images.csv row {r}"):
                continue
            info = w.images[image_id]
            want = [image_id, m.get("subject_id") or "", (m.get("study") or {}).get("id") or "", m.get("modality") or "",
                    str(info["width"]), str(info["height"]), m.get("content_type")]
            rep.check(r[:7] == want, f"{info['name']}: images.csv row {r[:7]}, expected {want}")
            rep.check(sorted(filter(None, r[7].split(";"))) == sorted(name_of[l] for l in w.diagnoses[image_id]),
                      f"{info['name']}: labels cell {r[7]!r}, diagnoses {sorted(name_of[l] for l in w.diagnoses[image_id])}")
    rows = read_csv(entries.get("annotations.csv"), "annotations.csv", rep)
    if rows is not None:
        rep.check(rows[:1] == [["annotation_id", "image_id", "label_name", "shape", "geometry", "frame"]],
                  f"annotations.csv header {rows[:1]}")
        got = {r[0]: r for r in rows[1:] if r}
        rep.check(set(got) == set(w.annotations) and len(rows) - 1 == len(w.annotations),
                  f"annotations.csv: missing {[w.annotations[k]['key'] for k in set(w.annotations) - set(got)]}, "
                  f"unexpected {sorted(set(got) - set(w.annotations))}")
        for key, p in w.annotations.items():
            r = got.get(key)
            if r is None or not rep.check(len(r) == 6, f"annotations.csv row {r}"):
                continue
            try:
                geometry = json.loads(r[4])
            except ValueError:
                geometry = f"unparseable {r[4]!r}"
            want = [p["image"], name_of[p["label"]], p["shape"], p["geometry"], str(p["frame"])]
            rep.check([r[1], r[2], r[3], geometry, r[5]] == want, f"{p['key']}: annotations.csv row {r[1:]}, posted {want}")
    return f"{len(w.order)} images, {len(w.annotations)} annotations (every frame)"


def unzip(data, rep):
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        return {n: zf.read(n) for n in zf.namelist()}
    except (zipfile.BadZipFile, OSError) as e:
        rep.errors.append(f"not a zip: {e}")
        return {}


def export(api, dataset_id, fmt):
    status, headers, data = api.call("GET", f"/datasets/{dataset_id}/export?format={fmt}")
    return status, (headers.get("Content-Type") or "").split(";")[0].strip(), data


def check_format(fmt, researcher, w, dataset, first):
    rep = Report(f"export {fmt}")
    s1, t1, b1 = export(researcher, dataset["id"], fmt)
    s2, t2, b2 = export(researcher, dataset["id"], fmt)
    if not rep.check(s1 == 200 and s2 == 200, f"export -> {s1}/{s2} {b1[:300]!r}"):
        return rep.done("no archive")
    rep.check(t1 == t2 == "application/zip", f"Content-Type {t1!r}/{t2!r}")
    rep.check(b1 == b2, f"two downloads differ ({len(b1)} vs {len(b2)} bytes)")
    first[fmt] = b1
    try:
        zf = zipfile.ZipFile(io.BytesIO(b1))
    except zipfile.BadZipFile as e:
        rep.errors.append(f"not a zip: {e}")
        return rep.done("not a zip")
    entries = archive_entries(zf, rep)
    renders = check_common(fmt, b1, entries, w, dataset, rep)
    shown = ", ".join(f"{n} {'-' if d is None else round(float(d), 2)}" for n, d in renders)
    rep.done(f"{len(b1)} bytes, {len(entries)} entries, identical twice; dataset.json and sha256 of every entry; "
             f"{len(w.copies)} researcher copies byte for byte; {len(w.canaries)} canaries absent"
             + (f"; DICOM renders off PS3.3 C.11 by at most ({shown}) grey levels" if renders else ""))
    rep = Report(fmt)
    summary = {"coco": check_coco, "yolo": check_yolo, "csv": check_csv}[fmt](entries, w, rep)
    rep.done(summary)


# ----------------------------------------------------------------------------- main
def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__.split("\n\n")[1])
    base, admin_user, admin_password = sys.argv[1:]
    admin = Api(base, token_for(base, admin_user, admin_password))
    users = {}
    for role in ("doctor", "researcher"):
        name = f"dataset-{role}-{RUN}"
        admin.ok("POST", "/users", {"username": name, "password": PASSWORD, "roles": [role]})
        users[role] = Api(base, token_for(base, name, PASSWORD))
    doctor, researcher = users["doctor"], users["researcher"]
    print(f"dataset_check: run {RUN}, pydicom {pydicom.__version__}, numpy {numpy.__version__}")

    rep = Report("setup")
    w = build(doctor, researcher, rep)
    rep.done(f"{len(w.order)} images ({', '.join(w.images[i]['name'] for i in w.order)}), "
             f"{sum(map(len, w.diagnoses.values()))} diagnoses, {len(w.annotations)} annotations, "
             f"{len(w.copies)} researcher copies")

    rep = Report("dataset")
    status, _, body = researcher.call("POST", "/datasets", {"name": f"dataset check {RUN}", "filter": {}})
    if not rep.check(status == 201, f"POST /datasets -> {status} {body[:300]!r}"):
        rep.done("not created")
        sys.exit(1)
    dataset = json.loads(body)
    status, _, body = researcher.call("GET", f"/datasets/{dataset['id']}")
    got = json.loads(body) if status == 200 else None
    rep.check(got == dataset, f"GET /datasets/{{id}} -> {status} {body[:300]!r} differs from the 201 body {dataset}")
    rep.check(dataset.get("image_count") == len(w.order), f"image_count {dataset.get('image_count')}, expected {len(w.order)}")
    rep.check(dataset.get("annotation_count") == len(w.annotations),
              f"annotation_count {dataset.get('annotation_count')}, expected {len(w.annotations)}")
    rep.check(dataset.get("labels") == used_labels(w), f"labels {dataset.get('labels')}, expected {used_labels(w)}")
    status, _, body = admin.call("GET", "/datasets")
    listed = [d.get("id") for d in json.loads(body).get("items", [])] if status == 200 else []
    rep.check(dataset["id"] in listed, f"admin GET /datasets -> {status}, ids {listed}")
    rep.done(f"{dataset.get('image_count')} images, {dataset.get('annotation_count')} annotations, "
             f"labels {[l['name'] for l in dataset.get('labels', [])]}")

    first = {}
    for fmt in FORMATS:
        check_format(fmt, researcher, w, dataset, first)

    # later changes must not change the dataset nor its exports
    rep = Report("frozen")
    changes = []
    box = next(k for k, a in w.annotations.items() if a["key"].startswith("png-64x48/box") and a["geometry"]["x"] == 10.25)
    poly = next(k for k, a in w.annotations.items() if a["key"].startswith("png-300x200/polygon"))
    img_a, jpeg = w.ids["png-64x48"], w.ids["jpeg-120x90"]
    new_geometry = {"x": 1, "y": 2, "width": 3, "height": 4}
    for who, method, path, body, want in (
            (doctor, "PATCH", f"/annotations/{box}", {"geometry": new_geometry}, 200),
            (doctor, "DELETE", f"/annotations/{poly}", None, 204),
            (doctor, "DELETE", f"/images/{img_a}/labels/{w.labels['effusion']['id']}", None, 204),
            (doctor, "POST", f"/images/{img_a}/labels", {"label_id": w.labels["oedem"]["id"]}, 201),
            (doctor, "DELETE", f"/images/{jpeg}", None, 204),
            (researcher, "PATCH", f"/labels/{w.labels['nodule']['id']}", {"name": f"Nodule renamed {RUN}"}, 200)):
        status, _, resp = who.call(method, path, body)
        rep.check(status == want, f"{method} {path} -> {status} {resp[:200]!r}")
        changes.append(f"{method} {path.split('/')[1]}")
    status, _, body = admin.call("GET", f"/datasets/{dataset['id']}")
    rep.check(status == 200 and json.loads(body) == dataset, f"GET /datasets/{{id}} after the changes -> {status} {body[:300]!r}")
    for fmt in FORMATS:
        if fmt not in first:
            continue
        for name, api in (("researcher", researcher), ("admin", admin)):
            status, ctype, data = export(api, dataset["id"], fmt)
            rep.check(status == 200 and data == first[fmt],
                      f"{fmt} export as {name} after the changes -> {status}, {len(data)} bytes, "
                      f"{'identical' if data == first[fmt] else 'DIFFERENT from the first'} "
                      f"{data[:200] if status != 200 else b''!r}")
    # a new dataset sees the changes
    status, _, body = admin.call("POST", "/datasets", {"name": f"after changes {RUN}", "filter": {}})
    if rep.check(status == 201, f"admin POST /datasets -> {status} {body[:300]!r}"):
        second = json.loads(body)
        gone = {poly} | {k for k, a in w.annotations.items() if a["image"] == jpeg}
        rep.check(second.get("image_count") == len(w.order) - 1, f"new dataset image_count {second.get('image_count')}")
        rep.check(second.get("annotation_count") == len(w.annotations) - len(gone),
                  f"new dataset annotation_count {second.get('annotation_count')}, expected {len(w.annotations) - len(gone)}")
        status, _, data = export(admin, second["id"], "csv")
        if rep.check(status == 200, f"new dataset csv export -> {status}"):
            entries = unzip(data, rep)
            rows = read_csv(entries.get("annotations.csv"), "annotations.csv", rep) or []
            geo = {r[0]: r[4] for r in rows[1:] if len(r) == 6}
            rep.check(json.loads(geo.get(box, "null")) == new_geometry, f"edited box in the new dataset: {geo.get(box)}")
            rep.check(not gone & set(geo), "deleted annotations in the new dataset")
            rows = read_csv(entries.get("images.csv"), "images.csv", rep) or []
            cells = {r[0]: r[7] for r in rows[1:] if len(r) == 8}
            rep.check(jpeg not in cells, "deleted image in the new dataset")
            rep.check(sorted(cells.get(img_a, "").split(";")) == sorted([f"Nodule renamed {RUN}", w.labels["oedem"]["name"]]),
                      f"re-labelled image's labels in the new dataset: {cells.get(img_a)!r}")
    rep.done(f"after {len(changes)} changes ({', '.join(changes)}): {len(first)} exports compared byte for byte as "
             f"researcher and admin; GET /datasets/{{id}} unchanged; a new dataset sees the changes")

    # filters select as GET /images does
    rep = Report("filters")
    for flt, query in (({"label_id": w.labels["effusion"]["id"]}, f"label_id={w.labels['effusion']['id']}"),
                       ({"modality": "CT"}, "modality=CT")):
        status, _, body = researcher.call("GET", f"/images?{query}&limit=200")
        want = sorted(i["id"] for i in json.loads(body).get("items", [])) if status == 200 else None
        status, _, body = researcher.call("POST", "/datasets", {"name": f"filter {query} {RUN}", "filter": flt})
        if not rep.check(status == 201, f"POST /datasets filter {flt} -> {status} {body[:300]!r}"):
            continue
        ds = json.loads(body)
        status, _, data = export(researcher, ds["id"], "csv")
        if not rep.check(status == 200, f"csv export of filter {flt} -> {status}"):
            continue
        rows = read_csv(unzip(data, rep).get("images.csv"), "images.csv", rep) or []
        got = sorted(r[0] for r in rows[1:] if r)
        rep.check(got == want and ds.get("image_count") == len(got),
                  f"filter {flt}: dataset images {got} (image_count {ds.get('image_count')}), GET /images?{query} {want}")
        rep.check(ds.get("filter", {}).items() >= flt.items(), f"filter echoed as {ds.get('filter')}")
    rep.done("label_id and modality select what GET /images selects")

    # who may do what
    rep = Report("access")
    probe = {"name": f"doctor {RUN}", "filter": {}}
    for who, method, path, body, want in (
            (doctor, "POST", "/datasets", probe, 403),
            (doctor, "GET", "/datasets", None, 403),
            (doctor, "GET", f"/datasets/{dataset['id']}", None, 403),
            (doctor, "GET", f"/datasets/{dataset['id']}/export?format=coco", None, 403),
            (researcher, "GET", f"/datasets/{dataset['id']}/export?format=xml", None, 422),
            (admin, "GET", f"/datasets/{dataset['id']}/export?format=xml", None, 422),
            (researcher, "GET", f"/datasets/{uuid.uuid4()}", None, 404),
            (researcher, "GET", f"/datasets/{uuid.uuid4()}/export?format=csv", None, 404)):
        status, headers, resp = who.call(method, path, body)
        rep.check(status == want, f"{method} {path} -> {status}, expected {want} {resp[:200]!r}")
        rep.check((headers.get("Content-Type") or "").startswith("application/problem+json"),
                  f"{method} {path}: error Content-Type {headers.get('Content-Type')!r}")
    rep.done("doctor 403 on every dataset route; format=xml 422; unknown dataset 404")

    if FAILURES:
        print(f"dataset_check: {len(FAILURES)} failure(s)")
        sys.exit(1)
    print("dataset_check: all checks passed")


if __name__ == "__main__":
    main()
