"""multipart/form-data uploads (RFC 7578), split from the whole body in memory.

The service takes a few small images per request and caps the body (MAX_BODY_BYTES), so cutting
the buffered body at its boundary is enough, and far cheaper than starlette's streaming form parser
(temporary files, callbacks) (docs/experiments/2026-11-27-serving-path.md).
"""

import re

from contract.errors import BadRequestError

# `; key=value` or `; key="quoted \" value"` in a Content-Type or Content-Disposition header.
PARAMETER = re.compile(r';\s*([A-Za-z0-9_*.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)')
ESCAPED = re.compile(r"\\(.)")


def header_parameter(header: str, key: str) -> str | None:
    for name, value in PARAMETER.findall(header):
        if name.lower() == key:
            if not value.startswith('"'):
                return value
            return ESCAPED.sub(r"\1", value[1:-1]) if "\\" in value else value[1:-1]
    return None


def part_disposition(head: bytes) -> str:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-disposition":
            return value.decode("latin-1")
    return ""


def form_files(body: bytes, content_type: str, field: str) -> list[bytes]:
    """The contents of the file parts (those with a filename) named `field`, in order."""
    boundary = header_parameter(content_type, "boundary")
    if not boundary:
        raise BadRequestError("multipart/form-data needs a boundary parameter in its Content-Type")
    # Every delimiter but the first starts on a new line; prefixing one makes the first alike.
    sections = (b"\r\n" + body).split(b"\r\n--" + boundary.encode("latin-1"))
    files = []
    for section in sections[1:]:
        if section.startswith(b"--"):  # the close delimiter: what follows is the epilogue
            return files
        head_end = section.find(b"\r\n\r\n")
        if head_end < 0:
            break
        disposition = part_disposition(section[:head_end])
        if header_parameter(disposition, "name") == field and header_parameter(disposition, "filename") is not None:
            files.append(section[head_end + 4 :])
    raise BadRequestError("malformed or truncated multipart/form-data body")
