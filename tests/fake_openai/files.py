"""The Files API: uploads, metadata, lists, downloads and deletes, over typed file records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .faults import FaultSwitches
from .wire import ApiError, ApiObject, Response, json_response, page, parse_multipart

FILE_RETENTION_SECONDS = 30 * 86_400
FILE_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


@dataclass
class FileRecord(ApiObject):
    """A stored file: an upload (purpose ``batch``) or a batch's output or error file (``batch_output``)."""

    id: str
    filename: str
    purpose: str
    content: bytes
    size: int  # bytes at upload, what the API reports (even if a caller drops ``content`` later)
    created_at: int
    status: str  # "uploaded" until ``ready_at``, then "processed" (only then usable by a batch)
    ready_at: float  # fake time at which an upload is processed
    seq: int  # position in upload order, for listing
    deleted: bool = False

    def view(self) -> dict:
        """The file object as the API answers it."""
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.size,
            "created_at": self.created_at,
            "expires_at": self.created_at + FILE_RETENTION_SECONDS,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": self.status,
            "status_details": None,
        }


class FilesAPI(FaultSwitches):
    """``/v1/files`` and its content downloads (which ``cut_downloads`` can cut short)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.file_processing_seconds = 0.0  # fake seconds an upload stays "uploaded"
        self.max_file_bytes = 200_000_000
        self._files: dict[str, FileRecord] = {}

    def _upload(self, *, headers: dict[str, str], body: bytes, **_: object) -> Response:
        fields = parse_multipart(headers.get("content-type", ""), body)
        purpose = fields.get("purpose")
        if "file" not in fields:
            raise ApiError(400, "Missing required parameter: 'file'.", param="file", code="missing_required_parameter")
        if purpose is None:
            raise ApiError(
                400, "Missing required parameter: 'purpose'.", param="purpose", code="missing_required_parameter"
            )
        purpose_value = purpose[1].decode("utf-8", "replace")
        if purpose_value != "batch":
            raise ApiError(
                400,
                f"Invalid value for purpose: '{purpose_value}'. This fake server only accepts 'batch'.",
                param="purpose",
                code="invalid_value",
            )
        filename, content = fields["file"]
        filename = filename or "upload"
        if not filename.endswith(".jsonl"):
            raise ApiError(400, f"Invalid file format for Batch API. Must be .jsonl (got '{filename}').", param="file")
        if len(content) > self.max_file_bytes:
            raise ApiError(400, "File is too large.")
        file = self._add_file(filename, "batch", content, ready_after=self.file_processing_seconds)
        return json_response(200, file.view())

    def _add_file(self, filename: str, purpose: str, content: bytes, *, ready_after: float = 0.0) -> FileRecord:
        file = FileRecord(
            id=self._new_id("file-", FILE_ID_ALPHABET, 22),
            filename=filename,
            purpose=purpose,
            content=content,
            size=len(content),
            created_at=int(self._clock),
            status="processed" if ready_after <= 0 else "uploaded",
            ready_at=self._clock + ready_after,
            seq=len(self._files),
        )
        self._files[file.id] = file
        return file

    def _process_uploads(self) -> None:
        """Mark processed the uploads whose processing time is over."""
        for file in self._files.values():
            if file.status == "uploaded" and file.ready_at <= self._clock:
                file.status = "processed"

    def _file(self, file_id: str) -> FileRecord:
        file = self._files.get(file_id)
        if file is None or file.deleted:
            raise ApiError(404, f"No such File object: {file_id}", param="id")
        return file

    def _get_file(self, file_id: str, **_: object) -> Response:
        return json_response(200, self._file(file_id).view())

    def _list_files(self, *, query: dict[str, str], **_: object) -> Response:
        files = [f for f in self._files.values() if not f.deleted]
        if "purpose" in query:
            files = [f for f in files if f.purpose == query["purpose"]]
        files.sort(key=lambda f: f.seq, reverse=query.get("order", "desc") != "asc")
        return json_response(200, page([f.view() for f in files], query, default=10_000, maximum=10_000))

    def _file_content(self, file_id: str, **_: object) -> Response:
        file = self._file(file_id)
        return Response(200, file.content, content_type="application/octet-stream", cut=self._take_cut())

    def _delete_file(self, file_id: str, **_: object) -> Response:
        self._file(file_id).deleted = True
        return json_response(200, {"id": file_id, "object": "file", "deleted": True})
