"""An S3-compatible server on loopback for the tests (and anyone who needs one: `python -m
tests.s3server --port 9000`): moto's server mode, in a thread, behind a gate that checks
presigned URLs as S3 does.

moto accepts any presigned URL, expired or forged alike (it checks query-string signatures
nowhere), so the gate verifies them itself from the SigV4 spec: recompute the signature with
the secret key, and refuse a URL past X-Amz-Date + X-Amz-Expires with S3's 403 AccessDenied
"Request has expired". Everything else (buckets, objects, bucket policies, ACLs on anonymous
GETs) is moto's own behaviour.
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import logging
import threading
import time
from datetime import datetime, timezone
from urllib.parse import parse_qsl, quote

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

ACCESS_KEY = "civic-test-key"
SECRET_KEY = "civic-test-secret"
REGION = "us-east-1"


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def presigned_refusal(method: str, raw_uri: str, headers: dict, secret_key: str, now: float) -> str | None:
    """Why S3 would refuse this SigV4 query-signed request (raw_uri as sent: path?query), or None.

    Canonical request per the spec: method, the path as sent, the query without the signature
    sorted and URI-encoded, the signed headers, UNSIGNED-PAYLOAD."""
    path, _, query = raw_uri.partition("?")
    params = parse_qsl(query, keep_blank_values=True)
    given = dict(params)
    try:
        signed_at = datetime.strptime(given["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        expires = int(given["X-Amz-Expires"])
        _, date, region, service, _ = given["X-Amz-Credential"].split("/")
        signed_headers = given["X-Amz-SignedHeaders"].split(";")
    except (KeyError, ValueError):
        return "AuthorizationQueryParametersError"
    enc = lambda s: quote(s, safe="-_.~")  # noqa: E731
    canonical_query = "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted(params) if k != "X-Amz-Signature")
    canonical_headers = "".join(f"{h}:{' '.join(headers.get(h, '').split())}\n" for h in signed_headers)
    canonical = "\n".join([method, path, canonical_query, canonical_headers, ";".join(signed_headers),
                           "UNSIGNED-PAYLOAD"])
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", given["X-Amz-Date"], scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret_key}".encode(), date), region), service), "aws4_request")
    if not hmac.compare_digest(hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest(),
                               given.get("X-Amz-Signature", "")):
        return "SignatureDoesNotMatch"
    if now > signed_at.timestamp() + expires:
        return "Request has expired"
    return None


def presign_gate(app, secret_key: str):
    """WSGI middleware: presigned requests must carry a valid, unexpired signature."""
    def gate(environ, start_response):
        raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "")
        if "X-Amz-Signature=" in raw_uri:
            headers = {k[5:].lower().replace("_", "-"): v for k, v in environ.items() if k.startswith("HTTP_")}
            refusal = presigned_refusal(environ["REQUEST_METHOD"], raw_uri, headers, secret_key, time.time())
            if refusal is not None:
                code = "SignatureDoesNotMatch" if refusal == "SignatureDoesNotMatch" else "AccessDenied"
                body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                        f"<Message>{refusal}</Message></Error>").encode()
                start_response("403 Forbidden", [("Content-Type", "application/xml"),
                                                 ("Content-Length", str(len(body)))])
                return [body]
        return app(environ, start_response)
    return gate


class S3Server:
    """moto's S3 (and friends) on 127.0.0.1:`port` (0: a free one), in a daemon thread."""

    def __init__(self, port: int = 0, secret_key: str = SECRET_KEY, *, quiet: bool = True):
        if quiet:  # werkzeug logs every request at INFO
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._secret_key = secret_key
        app = presign_gate(DomainDispatcherApplication(create_backend_app), secret_key)
        self._server = make_server("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="s3server")

    @property
    def endpoint_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> S3Server:
        self._thread.start()
        return self

    def client(self):
        """A boto3 S3 client for this server, signing with the test credentials."""
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=REGION, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=self._secret_key,
                            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))

    def create_photo_buckets(self, private: str, public: str, client=None) -> None:
        """The two buckets PHOTO_STORAGE=s3 needs, set up as README says: the public one readable
        by anyone through its policy, the private one with no public access."""
        client = client or self.client()
        client.create_bucket(Bucket=private)
        client.create_bucket(Bucket=public)
        client.put_bucket_policy(Bucket=public, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{public}/*"}]}))

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--secret-key", default=SECRET_KEY, help="the S3_SECRET_ACCESS_KEY clients sign with")
    parser.add_argument("--private-bucket", help="create it (S3_PRIVATE_BUCKET) ...")
    parser.add_argument("--public-bucket", help="... and this one, readable by anyone (S3_PUBLIC_BUCKET)")
    parser.add_argument("--quiet", action="store_true", help="do not log every request")
    args = parser.parse_args()
    server = S3Server(args.port, args.secret_key, quiet=args.quiet).start()
    if args.private_bucket and args.public_bucket:
        server.create_photo_buckets(args.private_bucket, args.public_bucket)
    print(f"S3 on {server.endpoint_url} (any access key; secret {args.secret_key!r})", flush=True)
    try:
        server._thread.join()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
