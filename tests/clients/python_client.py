"""Drives a running medlabel with the Python client generated from openapi/openapi.json.

Usage: python_client.py BASE_URL ADMIN_USERNAME ADMIN_PASSWORD
(the server must run with MEDLABEL_INSECURE_COOKIES=1: plain HTTP). Every call must answer its
documented status and parse into the generated models without error.
"""
import io
import struct
import sys
import uuid
import zlib

from medlabel_client import AuthenticatedClient, Client
from medlabel_client.api.auth import create_token, get_me, login
from medlabel_client.api.diagnoses import assign_label
from medlabel_client.api.events import list_events
from medlabel_client.api.history import list_image_history
from medlabel_client.api.images import download_image, get_image, list_images, upload_image
from medlabel_client.api.labels import create_label
from medlabel_client.api.patients import list_patients, list_subjects
from medlabel_client.api.service import health
from medlabel_client.models import (
    AssignLabelRequest,
    CreatedToken,
    CreateLabelRequest,
    CreateTokenRequest,
    Health,
    Image,
    LabelAssignment,
    Label,
    LoginRequest,
    LoginResponse,
    UploadImageForm,
    User,
)
from medlabel_client.types import File


def png() -> bytes:
    raw = b"".join(b"\x00" + bytes([x * 16, 0, 0] * 4) for x in range(4))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def expect(response, status: int, model=None):
    assert response.status_code == status, f"{response.status_code}: {response.content[:300]!r}"
    if model is not None:
        assert isinstance(response.parsed, model), f"parsed as {type(response.parsed)}"
    return response.parsed


def main() -> None:
    base, username, password = sys.argv[1:4]
    anonymous = Client(base_url=base, raise_on_unexpected_status=True)
    expect(health.sync_detailed(client=anonymous), 200, Health)
    logged_in = expect(login.sync_detailed(client=anonymous, body=LoginRequest(username=username, password=password)), 200, LoginResponse)
    assert "admin" in logged_in.user.roles
    # The session cookie now rides on this client; make an API token with it.
    token = expect(create_token.sync_detailed(client=anonymous, body=CreateTokenRequest(name="python client")), 201, CreatedToken)

    client = AuthenticatedClient(base_url=base, token=token.token, raise_on_unexpected_status=True)
    me = expect(get_me.sync_detailed(client=client), 200, User)
    assert me.username == username

    data = png()
    form = UploadImageForm(file=File(payload=io.BytesIO(data), file_name="client.png", mime_type="image/png"), description="from the generated client")
    image = expect(upload_image.sync_detailed(client=client, body=form), 201, Image)
    assert image.content_type == "image/png" and image.size_bytes == len(data)
    expect(get_image.sync_detailed(id=image.id, client=client), 200, Image)
    downloaded = download_image.sync_detailed(id=image.id, client=client)
    assert downloaded.status_code == 200 and downloaded.content == data, "download round trip"
    page = expect(list_images.sync_detailed(client=client, limit=10), 200)
    assert any(item.id == image.id for item in page.items)

    label = expect(create_label.sync_detailed(client=client, body=CreateLabelRequest(name=f"Client finding {uuid.uuid4().hex[:8]}")), 201, Label)
    assigned = expect(
        assign_label.sync_detailed(id=image.id, client=client, body=AssignLabelRequest(label_id=label.id, note="generated client")),
        201,
        LabelAssignment,
    )
    assert assigned.label.id == label.id

    history = expect(list_image_history.sync_detailed(id=image.id, client=client), 200)
    assert [e.action for e in history.items] == ["create", "update"], [e.action for e in history.items]
    # Image snapshots are at schema version 2 (issue 12: patient, study and series fields).
    assert all(e.entity_id == image.id and e.schema_version == 2 for e in history.items)
    assert history.items[1].snapshot.additional_properties["labels"][0]["label"]["id"] == label.id

    # A list's items are the same class as a single read (the page schema references it).
    listed = expect(list_images.sync_detailed(client=client, limit=5), 200)
    assert listed.items and all(isinstance(i, Image) for i in listed.items), type(listed.items[0])

    patients = expect(list_patients.sync_detailed(client=client, limit=5), 200)
    subjects = expect(list_subjects.sync_detailed(client=client, limit=5), 200)
    assert isinstance(patients.items, list) and isinstance(subjects.items, list)

    events = list_events.sync_detailed(client=client, limit=5)
    assert events.status_code == 200, events.content[:300]
    assert len(events.parsed.items) == 5 and events.parsed.next_cursor
    assert all(e.method and e.path.startswith("/api/v1/") and e.status for e in events.parsed.items)
    print("generated Python client: 15 calls answered and parsed")


if __name__ == "__main__":
    main()
