"""The optional documents ZIP of a batch: ``<row ref>/<doc_type>.<jpg|png|pdf>`` per file.

Rows cannot carry pictures, so they travel beside the sheet and are matched to rows by the sheet's ``ref`` column.
The dry run reports here what ``document_add`` would refuse later (unknown type, size, not a whole JPEG, PNG or PDF:
the same ``document_content_type``), so the preview names the row; attaching is always ``document_add``'s job.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from aggpay.errors import InvalidRequest
from merchants.documents import MAX_DOCUMENT_BYTES, document_content_type
from merchants.models import DocumentType

EXTENSIONS = ("jpg", "jpeg", "png", "pdf")
MAX_ENTRIES = 20_000
_IGNORED_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}


def normalise_ref(ref: str | None) -> str:
    return (ref or "").strip().casefold()


def _entry_name(info: zipfile.ZipInfo) -> str:
    # ZIPs made on a Chinese Windows store names in GBK without the UTF-8 flag; zipfile then decodes them as cp437.
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("gb18030")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


@dataclass(frozen=True)
class ZipDocument:
    path: str
    ref: str
    doc_type: str
    size: int
    info: zipfile.ZipInfo


@dataclass
class DocumentsZip:
    archive: zipfile.ZipFile
    by_ref: dict[str, dict[str, ZipDocument]] = field(default_factory=dict)
    problems: dict[str, list[str]] = field(default_factory=dict)
    loose: list[str] = field(default_factory=list)  # files outside a <ref>/ folder

    @classmethod
    def from_bytes(cls, content: bytes) -> DocumentsZip:
        try:
            archive = zipfile.ZipFile(io.BytesIO(content))
            infos = archive.infolist()
        except (zipfile.BadZipFile, ValueError, OSError, EOFError):
            # A damaged directory can point outside the file (ValueError: negative seek): the clerk's file to fix,
            # named as such, not a server error (design §5 rule 12).
            raise InvalidRequest("the documents file is not a ZIP archive", param="documents")
        if len(infos) > MAX_ENTRIES:
            raise InvalidRequest(f"the documents ZIP holds more than {MAX_ENTRIES} files", param="documents")
        index = cls(archive=archive)
        for info in infos:
            if not info.is_dir():
                index._add(info)
        return index

    def _problem(self, ref: str, message: str) -> None:
        self.problems.setdefault(ref, []).append(message)

    def _add(self, info: zipfile.ZipInfo) -> None:
        name = _entry_name(info)
        parts = [part for part in PurePosixPath(name.replace("\\", "/")).parts if part not in ("", ".", "/")]
        if not parts or parts[0] == "__MACOSX" or parts[-1].startswith("._") or parts[-1].lower() in _IGNORED_NAMES:
            return
        if len(parts) < 2:
            self.loose.append(name)
            return
        # A ZIP of a folder adds that folder on top (batch/R001/licence.png): the last two parts are what count.
        ref, filename = normalise_ref(parts[-2]), parts[-1]
        stem, _, extension = filename.rpartition(".")
        doc_type, extension = stem.strip().lower(), extension.lower()
        if info.flag_bits & 0x1:
            return self._problem(ref, f"{name}: the file is password-protected")
        if extension not in EXTENSIONS:
            return self._problem(ref, f"{name}: only .jpg, .png or .pdf files are accepted")
        if doc_type not in DocumentType.values:
            return self._problem(ref, f"{name}: “{stem}” is not a document type; name the file one of "
                                      f"{', '.join(DocumentType.values)}")
        if info.file_size == 0:
            return self._problem(ref, f"{name}: the file is empty")
        if info.file_size > MAX_DOCUMENT_BYTES:
            return self._problem(ref, f"{name}: {info.file_size / 1024 / 1024:.1f} MB; the limit is "
                                      f"{MAX_DOCUMENT_BYTES // 1024 // 1024} MB")
        try:
            # Read it all: zipfile checks the CRC at the end, so a damaged file shows up now, not mid-import.
            with self.archive.open(info) as handle:
                content = handle.read(MAX_DOCUMENT_BYTES + 1)
        except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, ValueError, OSError, EOFError):
            # A damaged deflated file fails in zlib before zipfile can compare its CRC: the same damage, same words.
            return self._problem(ref, f"{name}: the file is damaged and cannot be unpacked")
        try:
            document_content_type(content)
        except InvalidRequest as exc:
            return self._problem(ref, f"{name}: {exc.message}")
        documents = self.by_ref.setdefault(ref, {})
        if doc_type in documents:
            return self._problem(ref, f"{documents[doc_type].path} and {name}: two files for the same document type")
        documents[doc_type] = ZipDocument(path=name, ref=ref, doc_type=doc_type, size=info.file_size, info=info)

    def for_ref(self, ref: str | None) -> list[ZipDocument]:
        return sorted(self.by_ref.get(normalise_ref(ref), {}).values(), key=lambda d: d.doc_type) if ref else []

    def problems_for(self, ref: str | None) -> list[str]:
        return list(self.problems.get(normalise_ref(ref), [])) if ref else []

    def warnings(self, refs) -> list[str]:
        """File-level notes: folders that match no row's ref, and files outside any folder."""
        known = {normalise_ref(ref) for ref in refs if ref}
        notes = [f"documents ZIP: folder “{ref}” matches no row's ref; its files were not used"
                 for ref in sorted(set(self.by_ref) | set(self.problems)) if ref not in known]
        notes += [f"documents ZIP: {name} is not inside a <ref>/ folder and was not used" for name in self.loose]
        return notes

    def read(self, document: ZipDocument) -> bytes:
        with self.archive.open(document.info) as handle:
            return handle.read(MAX_DOCUMENT_BYTES + 1)

    def upload(self, document: ZipDocument):
        """The file as an upload ``document_add`` accepts."""
        from django.core.files.uploadedfile import SimpleUploadedFile

        extension = document.path.rpartition(".")[2].lower()
        return SimpleUploadedFile(f"{document.doc_type}.{extension}", self.read(document))
