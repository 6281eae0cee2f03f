"""Staging a big batch input in S3-compatible storage, so the job carries a URL, not the rows.

v1 §5.2: `inputs` may be the http(s) URL of a CSV or Parquet file, such as a presigned S3 URL:
the documented path for inputs too big for one request. `stage_rows` streams the rows into a
local Parquet file (never whole in memory), uploads it with a presigned PUT, and returns a
presigned GET URL for the deployment to download. The object is named by the batch's content
key, so staging the same rows again replaces that object instead of piling up copies.

Signing is AWS Signature V4 in query form, written here with hmac/hashlib (`presigned_url`)
rather than botocore: the same short function signs the upload and the download, and the
package gains no dependency (pyarrow's S3 filesystem could write the file but cannot presign
the URL the deployment needs). Credentials, region and endpoint come from the standard AWS
variables (`S3Settings.from_environment`); their values never appear in errors or logs, and
neither does a signed URL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import tempfile
import uuid
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import quote, urlsplit

import httpx
import pyarrow.parquet as pq

from . import environment
from .batch_input import batch_reader
from .errors import BackendUnavailableError, ConfigurationError, SutroSQLError, ValidationError
from .http import RetryPolicy

#: How long the deployment may take to start downloading a staged file (seconds; SigV4 allows 7 days).
DOWNLOAD_URL_SECONDS = 6 * 3600
#: How long an upload URL lives: it is used at once.
UPLOAD_URL_SECONDS = 900
MAX_URL_SECONDS = 7 * 24 * 3600
ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_STAGE = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(?P<prefix>.*))?$")


@dataclass(frozen=True)
class StageLocation:
    """Where staged files go: `s3://bucket/prefix` (the prefix may be empty)."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, stage: str) -> StageLocation:
        match = _STAGE.match(stage.strip()) if isinstance(stage, str) else None
        if match is None:
            raise ValidationError(f"stage: expected an S3 location such as 's3://bucket/prefix', got {stage!r}")
        prefix = (match["prefix"] or "").strip("/")
        return cls(match["bucket"], f"{prefix}/" if prefix else "")

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def checked_stage(stage: str | None) -> str | None:
    """`stage` itself once it reads as an S3 location (None: no staging): checked on every call,
    so a typo is refused where nothing would be staged too (the embedded deployment, every row
    cached, a re-attached job), not first on the day new rows reach a deployment."""
    if stage is not None:
        StageLocation.parse(stage)
    return stage


@dataclass(frozen=True)
class S3Settings:
    """Credentials and where the store is. `endpoint` None means AWS itself (virtual-host URLs);
    any other store (MinIO, R2, a local server) is addressed path-style at its endpoint."""

    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    region: str = "us-east-1"
    endpoint: str | None = None
    session_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_environment(cls) -> S3Settings:
        key_id = environment.get(environment.AWS_ACCESS_KEY_ID)
        secret = environment.get(environment.AWS_SECRET_ACCESS_KEY)
        if not key_id or not secret:
            raise ConfigurationError(
                f"stage: staging to S3 needs {environment.AWS_ACCESS_KEY_ID} and {environment.AWS_SECRET_ACCESS_KEY} "
                f"(and {environment.AWS_REGION}, and {environment.AWS_ENDPOINT_URL_S3} for a store other than AWS)"
            )
        region = environment.get(environment.AWS_REGION) or environment.get(environment.AWS_DEFAULT_REGION)
        endpoint = environment.get(environment.AWS_ENDPOINT_URL_S3) or environment.get(environment.AWS_ENDPOINT_URL)
        return cls(
            key_id,
            secret,
            region or "us-east-1",
            endpoint.rstrip("/") if endpoint else None,
            environment.get(environment.AWS_SESSION_TOKEN),
        )

    def object_url(self, bucket: str, key: str) -> str:
        """The object's unsigned URL."""
        path = quote(key, safe="/-_.~")
        if self.endpoint is None:
            host = "s3" if self.region == "us-east-1" else f"s3.{self.region}"
            return f"https://{bucket}.{host}.amazonaws.com/{path}"
        return f"{self.endpoint}/{bucket}/{path}"


def presigned_url(
    settings: S3Settings,
    method: str,
    bucket: str,
    key: str,
    *,
    expires_in: int,
    now: dt.datetime | None = None,
) -> str:
    """`method` on the object, authorized by the query string alone for `expires_in` seconds from
    `now` (AWS Signature V4, query form; the payload unsigned, as S3 allows for presigned URLs)."""
    if not 1 <= expires_in <= MAX_URL_SECONDS:
        raise ValidationError(f"a presigned URL lives 1 s to 7 days, not {expires_in} s")
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    stamp, day = moment.strftime("%Y%m%dT%H%M%SZ"), moment.strftime("%Y%m%d")
    scope = f"{day}/{settings.region}/s3/aws4_request"
    url = urlsplit(settings.object_url(bucket, key))
    query = {
        "X-Amz-Algorithm": ALGORITHM,
        "X-Amz-Credential": f"{settings.access_key_id}/{scope}",
        "X-Amz-Date": stamp,
        "X-Amz-Expires": str(expires_in),
        "X-Amz-SignedHeaders": "host",
    }
    if settings.session_token:
        query["X-Amz-Security-Token"] = settings.session_token
    canonical_query = "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(query.items()))
    canonical_request = "\n".join([method, url.path, canonical_query, f"host:{url.netloc}\n", "host", UNSIGNED_PAYLOAD])
    to_sign = "\n".join([ALGORITHM, stamp, scope, hashlib.sha256(canonical_request.encode()).hexdigest()])
    signing_key = f"AWS4{settings.secret_access_key}".encode()
    for part in (day, settings.region, "s3", "aws4_request"):
        signing_key = hmac.new(signing_key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(signing_key, to_sign.encode(), hashlib.sha256).hexdigest()
    return f"{url.scheme}://{url.netloc}{url.path}?{canonical_query}&X-Amz-Signature={signature}"


def _encode(text: str) -> str:
    """SigV4's URI encoding: everything but unreserved characters, '/' included."""
    return quote(text, safe="-_.~")


def stage_rows(
    rows: Any,
    stage: str,
    *,
    name: str | None = None,
    settings: S3Settings | None = None,
    expires_in: int = DOWNLOAD_URL_SECONDS,
    retry: RetryPolicy | None = None,
) -> str:
    """Write `rows` (any batch input: row dicts, Arrow, a DataFrame, a .csv/.parquet path) as one
    Parquet file under `stage`, named `name` (the content key; random when None), and return a
    presigned GET URL of it. Raises ValidationError for no rows or a bad location,
    ConfigurationError for missing credentials or a refused upload, BackendUnavailableError
    when the store cannot be reached."""
    location = StageLocation.parse(stage)
    settings = settings or S3Settings.from_environment()
    key = f"{location.prefix}{name or uuid.uuid4().hex}.parquet"
    with tempfile.TemporaryFile() as spool:
        _write_parquet(rows, spool)
        _upload(settings, location, key, spool, retry or RetryPolicy())
    return presigned_url(settings, "GET", location.bucket, key, expires_in=expires_in)


def _write_parquet(rows: Any, out: IO[bytes]) -> None:
    reader = batch_reader(rows)
    count = 0
    with pq.ParquetWriter(out, reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)
            count += batch.num_rows
    if count == 0:
        raise ValidationError("inputs: a batch needs at least one row")


def _upload(settings: S3Settings, location: StageLocation, key: str, body: IO[bytes], retry: RetryPolicy) -> None:
    """PUT the file (streamed; re-read from its start on every attempt: a PUT of the same object
    is idempotent). Errors name the location and S3's error code, never the signed URL."""
    what = f"stage {location}"
    url = presigned_url(settings, "PUT", location.bucket, key, expires_in=UPLOAD_URL_SECONDS)
    size = body.seek(0, 2)
    with httpx.Client(timeout=httpx.Timeout(300.0, connect=10.0), trust_env=True) as client:

        def send() -> httpx.Response:
            body.seek(0)
            return client.put(url, content=body, headers={"Content-Length": str(size)})

        try:
            response = retry.send(send, idempotent=True, what=what)
        except SutroSQLError as exc:
            raise BackendUnavailableError(f"{exc.detail} (storage endpoint {_origin(url)})") from None
        except httpx.HTTPError as exc:
            raise BackendUnavailableError(f"{what}: the upload failed ({type(exc).__name__})") from None
    if not response.is_success:
        code = _s3_error_code(response.text)
        raise ConfigurationError(f"{what}: the store refused the upload (HTTP {response.status_code} {code})")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _s3_error_code(body: str) -> str:
    """S3's `<Code>` (AccessDenied, NoSuchBucket, ...): says what is wrong without echoing anything."""
    match = re.search(r"<Code>([A-Za-z0-9.]{1,64})</Code>", body)
    return match.group(1) if match else "no error code"
