"""Blobs in S3-compatible object storage (BLOB_STORE=s3://bucket/prefix), through boto3.

The same contract as the file store: put() returns only once the object store has
confirmed the object, keys are the SHA-256 of the content, and a row never points at a
missing object. S3 has no atomic rename and no mtime to touch, so what the file store
does with them (see FileBlobStore.discard_if_stale) is done with the blob's row in the
database, which every node shares:

- put() first claims the key: it inserts the blob's row, or moves its created_at to now,
  in its own short transaction; then it uploads the object unless it is already there.
  The orphan collector leaves a blob alone for grace seconds after its created_at.
- The collector deletes an object only inside a transaction that holds a placeholder
  row for its key, which it inserts for the purpose and removes again: a concurrent claim
  waits for that transaction (the primary key), then finds no object and uploads it anew.
  If a claim got in first, the placeholder cannot be inserted and the object stays.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import connection
from django.utils import timezone

from mailcore import dbpool
from mailcore.models import Blob
from mailcore.store import sql

log = logging.getLogger("mailcore.store")

_KEY = re.compile(r"[0-9a-f]{64}")
_LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


class BlobStoreError(OSError):
    """The object store failed or could not be reached."""


@dataclass(frozen=True)
class Location:
    bucket: str
    prefix: str  # "" or ending in "/"

    @classmethod
    def parse(cls, url: str) -> Location:
        """Read s3://bucket/prefix; raise ValueError for anything else."""
        match = re.fullmatch(r"s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(.*))?", url)
        if match is None:
            raise ValueError(f"not an s3://bucket/prefix location: {url!r}")
        prefix = (match.group(2) or "").strip("/")
        return cls(match.group(1), f"{prefix}/" if prefix else "")


@dataclass(frozen=True)
class Connection:
    """Where the object store answers: endpoint URL ("" for AWS), region, addressing."""

    endpoint: str = ""
    region: str = "us-east-1"
    addressing: str = "path"
    access_key_id: str = ""  # "" for boto3's own sources (environment, profile, role)
    secret_access_key: str = field(default="", repr=False)


def client(where: Connection):
    """Return a boto3 S3 client (thread-safe; credentials from boto3's usual sources)."""
    import boto3
    from botocore.config import Config

    config = Config(
        region_name=where.region,
        s3={"addressing_style": where.addressing},
        retries={"mode": "standard", "max_attempts": 4},
        connect_timeout=5, read_timeout=60,
        max_pool_connections=32,  # mailcore's database threads each may read a blob
        # The payload is signed (SHA-256) over plain HTTP anyway; no extra CRC trailers,
        # which not every S3-compatible server understands.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    keys = {}
    if where.access_key_id:
        keys = {"aws_access_key_id": where.access_key_id,
                "aws_secret_access_key": where.secret_access_key}
    return boto3.client("s3", endpoint_url=where.endpoint or None, config=config, **keys)


class S3BlobStore:
    """Blobs as objects <prefix>ab/cd/<sha256> in one bucket."""

    def __init__(self, location: Location, where: Connection, part_size: int,
                 cache=None) -> None:
        self.location = location
        self.part_size = part_size
        self.cache = cache  # a BlobCache, or None
        self._client = client(where)

    def _name(self, key: str) -> str:
        return f"{self.location.prefix}{key[:2]}/{key[2:4]}/{key}"

    # The contract -------------------------------------------------------------------------

    def put(self, data: bytes) -> str:
        """Store data durably and return its key (module docstring: the claim first)."""
        key = hashlib.sha256(data).hexdigest()
        _claim(key, len(data))
        if self.size(key) != len(data):
            self.write(key, data)
        return key

    def get(self, key: str) -> bytes:
        if self.cache is not None:
            cached = self.cache.get(key)
            if cached is not None:
                return cached
        data = self.read(key)
        if self.cache is not None:
            self.cache.add(key, data)
        return data

    def discard_if_stale(self, key: str, seconds: float) -> bool:
        """Delete the object unless a writer has claimed its key; return if deleted.

        Call once the key's row is gone; seconds is the file store's and not needed here:
        a claim is a row, and a row held by a placeholder cannot be claimed meanwhile.
        """
        with dbpool.writing(durable=False), connection.cursor() as cursor:
            cursor.execute(_sql().placeholder, [key, sql.prep(Blob, "created_at", _LONG_AGO)])
            if cursor.rowcount != 1:
                return False  # claimed since the collector chose it
            self.delete(key)
            cursor.execute(_sql().forget, [key])
        if self.cache is not None:
            self.cache.discard(key)
        return True

    def keys_older_than(self, seconds: float) -> Iterator[str]:
        """Yield keys of objects stored more than seconds ago."""
        cutoff = _now() - timedelta(seconds=seconds)
        for key, _, modified in self.listing():
            if modified < cutoff:
                yield key

    def create_bucket(self) -> bool:
        """Create the bucket unless it exists; return whether it was created."""
        bucket = self.location.bucket
        try:
            self._client.head_bucket(Bucket=bucket)
            return False
        except Exception as exc:
            if _status(exc) != 404:
                raise BlobStoreError(f"cannot look up bucket {bucket}: {exc}") from exc
        try:
            self._client.create_bucket(Bucket=bucket)
        except Exception as exc:
            raise BlobStoreError(f"cannot create bucket {bucket}: {exc}") from exc
        return True

    # Objects ------------------------------------------------------------------------------

    def size(self, key: str) -> int | None:
        """Return the object's size, or None if there is none."""
        try:
            head = self._client.head_object(Bucket=self.location.bucket, Key=self._name(key))
        except Exception as exc:
            if _status(exc) == 404:
                return None
            raise BlobStoreError(f"cannot look up blob {key}: {exc}") from exc
        return head["ContentLength"]

    def read(self, key: str) -> bytes:
        try:
            reply = self._client.get_object(Bucket=self.location.bucket, Key=self._name(key))
            return reply["Body"].read()
        except Exception as exc:
            if _status(exc) == 404:
                raise FileNotFoundError(f"no blob {key}") from exc
            raise BlobStoreError(f"cannot read blob {key}: {exc}") from exc

    def write(self, key: str, data: bytes) -> None:
        """Upload data as key's object; return once the store has confirmed it."""
        bucket, name = self.location.bucket, self._name(key)
        try:
            if len(data) <= self.part_size:
                self._client.put_object(Bucket=bucket, Key=name, Body=data)
            else:
                self._write_parts(name, data)
        except Exception as exc:
            raise BlobStoreError(f"cannot store blob {key}: {exc}") from exc

    def _write_parts(self, name: str, data: bytes) -> None:
        """Upload data in parts of part_size, each read from data itself, not a copy."""
        bucket, view = self.location.bucket, memoryview(data)
        upload = self._client.create_multipart_upload(Bucket=bucket, Key=name)["UploadId"]
        try:
            parts = []
            for number, start in enumerate(range(0, len(data), self.part_size), 1):
                reply = self._client.upload_part(
                    Bucket=bucket, Key=name, UploadId=upload, PartNumber=number,
                    Body=_Part(view[start:start + self.part_size]))
                parts.append({"PartNumber": number, "ETag": reply["ETag"]})
            self._client.complete_multipart_upload(
                Bucket=bucket, Key=name, UploadId=upload, MultipartUpload={"Parts": parts})
        except BaseException:
            try:
                self._client.abort_multipart_upload(Bucket=bucket, Key=name, UploadId=upload)
            except Exception:
                log.warning("could not abort multipart upload of %s", name, exc_info=True)
            raise

    def delete(self, key: str) -> None:
        try:
            self._client.delete_object(Bucket=self.location.bucket, Key=self._name(key))
        except Exception as exc:
            raise BlobStoreError(f"cannot delete blob {key}: {exc}") from exc

    def listing(self, after: str = "") -> Iterator[tuple[str, int, datetime]]:
        """Yield (key, size, last modified) of every blob object, in key order."""
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.location.bucket, Prefix=self.location.prefix,
            **({"StartAfter": self._name(after)} if after else {}))
        try:
            for page in pages:
                for item in page.get("Contents", ()):
                    key = item["Key"].rsplit("/", 1)[-1]
                    if _KEY.fullmatch(key) and item["Key"] == self._name(key):
                        yield key, item["Size"], item["LastModified"]
        except Exception as exc:
            raise BlobStoreError(f"cannot list blobs: {exc}") from exc


class _Part(io.RawIOBase):
    """A read-only file over a memoryview: botocore takes bytes or files, not views."""

    def __init__(self, view: memoryview) -> None:
        super().__init__()
        self._view = view
        self._at = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._at

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._at, io.SEEK_END: len(self._view)}[whence]
        self._at = max(0, base + offset)
        return self._at

    def readinto(self, buffer) -> int:
        chunk = self._view[self._at:self._at + len(buffer)]
        buffer[:len(chunk)] = chunk
        self._at += len(chunk)
        return len(chunk)

    def __len__(self) -> int:
        return len(self._view)


def _now() -> datetime:
    return timezone.now()


def _status(exc: Exception) -> int | None:
    response = getattr(exc, "response", None) or {}
    return response.get("ResponseMetadata", {}).get("HTTPStatusCode")


@dataclass(frozen=True)
class _Statements:
    claim: str
    placeholder: str
    forget: str


@sql.statements
def _sql() -> _Statements:
    insert = ("INSERT INTO {blob} ({blob.key}, {blob.size}, {blob.created_at}) "
              "VALUES (%s, %s, %s) ON CONFLICT ({blob.key}) ")
    return _Statements(
        claim=sql.render(insert + "DO UPDATE SET {blob.created_at} = EXCLUDED.{blob.created_at}",
                         blob=Blob),
        placeholder=sql.render(
            "INSERT INTO {blob} ({blob.key}, {blob.size}, {blob.created_at}) "
            "VALUES (%s, 0, %s) ON CONFLICT ({blob.key}) DO NOTHING", blob=Blob),
        forget=sql.render("DELETE FROM {blob} WHERE {blob.key} = %s", blob=Blob),
    )


def _claim(key: str, size: int) -> None:
    """Record the blob as in use now, so the collector leaves it for the grace period."""
    with dbpool.writing(durable=False), connection.cursor() as cursor:
        cursor.execute(_sql().claim, [key, size, sql.prep(Blob, "created_at", timezone.now())])
