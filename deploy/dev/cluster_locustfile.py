"""The citizens and map readers of the multi-node run (deploy/dev/cluster.sh): a locustfile.

Started by deploy/dev/cluster_load.py, one headless locust per phase, against nginx on
loopback. Each user uploads phone photos (real JPEGs with EXIF GPS, written beforehand by the
driver; the server reads the location from the photo) through the REST API and Open311 with an
API key, and reads the map GeoJSON, the Open311 feed and single reports, with no pause
between requests (a closed loop: the cluster's speed sets the pace). As a phone app would, a
user whose request met a 502/503/504 or no answer waits a second before its next request, and
sends an upload that failed so again later (the same photo: had the first attempt committed,
the server would answer 200 with the report it already made).

Every request is written as one JSON line to CLUSTER_RESULTS (its type, start, duration,
status and, when it failed, why), and every upload with the reference the server gave it, so
the driver can compute percentiles itself and check each accepted report in the database.
The HTTP client itself never retries: each attempt is recorded as a phone would have seen it.

Environment: CLUSTER_PHOTOS (folder of NNNNN.jpg), CLUSTER_PHOTO_START (first index this run
may use), CLUSTER_API_KEY, CLUSTER_PHASE (a label), CLUSTER_RESULTS (a .jsonl path).
"""
from __future__ import annotations

import itertools
import json
import os
import random
import uuid
from pathlib import Path

from locust import FastHttpUser, events, task

PHOTOS = sorted(Path(os.environ["CLUSTER_PHOTOS"]).glob("*.jpg"))
NEXT_PHOTO = itertools.count(int(os.environ.get("CLUSTER_PHOTO_START", "0")))
API_KEY = os.environ["CLUSTER_API_KEY"]
PHASE = os.environ.get("CLUSTER_PHASE", "")
RESULTS = open(os.environ["CLUSTER_RESULTS"], "a", buffering=1)  # noqa: SIM115 (closed at quit)

# Map boxes (min_lon,min_lat,max_lon,max_lat) and zooms a web map would ask for over the photos' area.
BOXES = [("-0.25,51.42,0.05,51.58", 12), ("-0.16,51.48,-0.08,51.52", 14), ("-0.13,51.50,-0.11,51.51", 17)]
CATEGORIES = ["pothole", "graffiti", "fly_tipping", ""]  # "" = leave it to the model

UPLOAD_REST, UPLOAD_OPEN311 = "POST /api/v1/reports/", "POST /open311/v2/requests.json"
READ_MAP, READ_OPEN311, READ_REPORT = ("GET /api/v1/reports/geojson/", "GET /open311/v2/requests.json",
                                       "GET /api/v1/reports/<ref>/")


def write(record: dict) -> None:
    RESULTS.write(json.dumps({"phase": PHASE, **record}) + "\n")


@events.request.add_listener
def record_request(request_type, name, response_time, response_length, response=None, exception=None,
                   start_time=None, **kwargs):
    status = getattr(response, "status_code", 0) or 0
    error = None
    if exception is not None or not 200 <= status < 300:
        body = ""
        try:
            body = (response.text or "")[:160] if response is not None and status else ""
        except Exception:  # a body cut off by a killed node
            pass
        error = f"{type(exception).__name__}: {exception}"[:160] if status == 0 else body
    write({"name": name, "t": start_time, "ms": round(response_time or 0, 1), "status": status, "error": error})


@events.quitting.add_listener
def close_results(**kwargs):
    write({"next_photo": next(NEXT_PHOTO)})  # where the next phase starts, so no photo is sent twice
    RESULTS.close()


def multipart(fields: dict[str, str], file_field: str, filename: str, content: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body with a Content-Length (the server refuses chunked uploads)."""
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{filename}"\r\n'
                 f"Content-Type: image/jpeg\r\n\r\n".encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


RETRYABLE = {0, 502, 503, 504}  # no answer, no node, the database away: try again later
BACKOFF_SECONDS = 1.0


class Citizen(FastHttpUser):
    network_timeout = 60.0  # seconds; as long as nginx waits for a node
    connection_timeout = 10.0

    def on_start(self) -> None:
        self.references: list[str] = []  # this user's accepted reports, read back by read_report
        self.resend: list[Path] = []  # photos whose upload met an outage, sent again later
        self.backoff = False

    def wait_time(self) -> float:
        backoff, self.backoff = self.backoff, False
        return BACKOFF_SECONDS if backoff else 0.0

    def _answered(self, response) -> None:
        if response.status_code in RETRYABLE:
            self.backoff = True

    def _upload(self, name: str, path: str, fields: dict, file_field: str, headers: dict) -> None:
        if self.resend:
            photo = self.resend.pop(0)
        else:
            index = next(NEXT_PHOTO)
            if index >= len(PHOTOS):  # out of photos: read instead, and say so (the report counts them)
                write({"out_of_photos": 1})
                return self.read_map()
            photo = PHOTOS[index]
        body, content_type = multipart(fields, file_field, photo.name, photo.read_bytes())
        reference = None
        with self.client.post(path, data=body, headers={"Content-Type": content_type, **headers}, name=name,
                              catch_response=True) as response:
            if response.status_code in (200, 201):
                try:
                    answer = response.json()
                    reference = answer[0]["service_request_id"] if isinstance(answer, list) else answer["reference"]
                except (ValueError, KeyError, IndexError, TypeError):
                    response.failure(f"2xx without a reference: {response.text[:120]}")
        write({"upload": photo.name, "name": name, "status": response.status_code, "reference": reference})
        self._answered(response)
        if reference:
            self.references.append(reference)
        elif response.status_code in RETRYABLE:
            self.resend.append(photo)

    @task(3)
    def upload_rest(self) -> None:
        fields = {"description": "Spotted on the way to work"}
        if category := random.choice(CATEGORIES):
            fields["category"] = category
        self._upload(UPLOAD_REST, "/api/v1/reports/", fields, "photo", {"X-Api-Key": API_KEY})

    @task(1)
    def upload_open311(self) -> None:
        # No lat/long: with only an address_string the location comes from the photo's GPS.
        fields = {"api_key": API_KEY, "service_code": random.choice(CATEGORIES[:3]),
                  "address_string": "By the bus stop", "description": "Reported from an Open311 app"}
        self._upload(UPLOAD_OPEN311, "/open311/v2/requests.json", fields, "media", {})

    @task(4)
    def read_map(self) -> None:
        box, zoom = random.choice(BOXES)
        self._answered(self.client.get(f"/api/v1/reports/geojson/?in_bbox={box}&zoom={zoom}", name=READ_MAP))

    @task(2)
    def read_open311(self) -> None:
        self._answered(self.client.get("/open311/v2/requests.json?page_size=50&status=open", name=READ_OPEN311))

    @task(2)
    def read_report(self) -> None:
        if not self.references:
            return self.read_open311()
        self._answered(self.client.get(f"/api/v1/reports/{random.choice(self.references)}/", name=READ_REPORT))
