"""A file on a Canvas submission comment: the "File Uploads" workflow, three requests.

Canvas REST API documentation: Submission Comments API, "Upload a file"
(``POST /api/v1/courses/:course_id/assignments/:assignment_id/submissions/:user_id/comments/files``),
and the "File Uploads" page it points to ("Uploading via POST"):

1. ``POST`` the comment-files address with ``name``, ``size`` and ``content_type``: Canvas
   answers ``{"upload_url": ..., "upload_params": {...}}`` (a pending file).
2. ``POST`` ``multipart/form-data`` to ``upload_url``: every ``upload_params`` field as given
   (they are signed), then ``file`` last. The token is not sent (the upload address may be
   another host, e.g. a storage bucket); a redirect is not followed.
3. A 3xx answer: ``GET`` its ``Location`` to confirm the upload (with the token only when it
   is ``base_url``'s host) and read the File object. A 201 answer: the File object is its
   body, or is read from its ``Location`` the same way.

The File's ``id`` then goes into ``comment[file_ids][]`` of "Grade or comment on a
submission" (the ``PUT`` of :mod:`grader.lms.canvas_push`).
"""

from __future__ import annotations

import json
import secrets
import urllib.parse

from grader.lms.canvas_api import CanvasClient, CanvasError

HTML = "text/html"


def _quoted(text: str) -> str:
    """A value for a ``Content-Disposition`` parameter (quotes and line breaks escaped)."""
    text = text.replace("\r", " ").replace("\n", " ")
    return text.replace("\\", "\\\\").replace('"', '\\"')


def multipart(fields: list[tuple[str, str]], name: str, data: bytes,
              content_type: str) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body: ``fields`` in order, then the file as ``file``.

    Returns ``(body, Content-Type header)``.
    """
    boundary = "dlcourse-" + secrets.token_hex(16)
    parts = []
    for key, value in fields:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{_quoted(key)}"'
                     f"\r\n\r\n".encode() + value.encode("utf-8") + b"\r\n")
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename='
                 f'"{_quoted(name)}"\r\nContent-Type: {content_type}\r\n\r\n'.encode()
                 + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _field(value: object) -> str:
    return value if isinstance(value, str) else "" if value is None else json.dumps(value)


def _file_id(answer: object) -> int | None:
    fid = answer.get("id") if isinstance(answer, dict) else None
    return fid if isinstance(fid, int) and not isinstance(fid, bool) else None


def _ticket(client: CanvasClient, path: str, what: str, name: str, size: int,
            content_type: str) -> tuple[str, list[tuple[str, str]]]:
    """Step 1: ``(upload_url, upload_params in order)``."""
    answer = client.post_form(path, what, {"name": name, "size": str(size),
                                           "content_type": content_type})
    url = answer.get("upload_url") if isinstance(answer, dict) else None
    params = answer.get("upload_params") if isinstance(answer, dict) else None
    if not isinstance(url, str) or not isinstance(params, dict):
        raise CanvasError(f"Canvas's answer for {what} has no upload_url and upload_params"
                          " (the File Uploads step 1 shape)")
    return url, [(str(k), _field(v)) for k, v in params.items()]


def upload_comment_file(client: CanvasClient, course_id: int, assignment_id: int, user_id: int,
                        name: str, data: bytes, *, content_type: str = HTML,
                        what: str = "the file") -> int:
    """Upload ``data`` as a submission-comment file of ``user_id``; the new file's ``id``.

    Parameters
    ----------
    client : CanvasClient
        The course's client (its token goes to ``base_url``'s host only).
    course_id, assignment_id, user_id : int
        Whose submission the comment will be on.
    name : str
        The file name Canvas shows.
    data : bytes
        The file's bytes.
    content_type : str
        Its media type (``text/html``).
    what : str
        Names the upload in error messages.

    Raises
    ------
    CanvasError
        Any of the three steps failed; the message names the step.
    """
    path = (f"/api/v1/courses/{course_id}/assignments/{assignment_id}/submissions/{user_id}"
            "/comments/files")
    url, params = _ticket(client, path, f"the upload of {what} (step 1)", name, len(data),
                          content_type)
    body, ctype = multipart(params, name, data, content_type)
    answer, headers = client.post_upload(url, f"the upload of {what} (step 2)", body, ctype)
    try:
        found = json.loads(answer.decode("utf-8")) if answer.strip() else None
    except (UnicodeDecodeError, ValueError):
        found = None
    if _file_id(found) is None:
        location = headers.get("Location") if headers else None
        if not location:
            raise CanvasError(f"Canvas's answer to the upload of {what} (step 2) has neither the"
                              " file nor a Location to confirm it")
        confirm = urllib.parse.urljoin(url, location)
        if urllib.parse.urlsplit(confirm).scheme not in ("http", "https"):
            raise CanvasError(f"the upload of {what} (step 3): the confirmation address is not"
                              " http(s)")
        found = client.get(confirm, f"the upload of {what} (step 3, confirm)")
    fid = _file_id(found)
    if fid is None:
        raise CanvasError(f"Canvas's answer confirming the upload of {what} has no file id")
    return fid
