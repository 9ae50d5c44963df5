"""A thin client for the few Canvas REST calls the course loop makes (standard library only).

The calls (Canvas REST API documentation, Assignments, Submissions and Files pages):

* ``GET /api/v1/courses/:course_id/assignments/:id`` ("Get a single assignment": ``due_at``)
* ``GET /api/v1/courses/:course_id/assignments/:id/submissions?include[]=user``
  ("List assignment submissions", paginated by the ``Link`` header)
* ``GET`` an attachment's ``url`` (the Files API's download address, with its verifier)
* ``PUT /api/v1/courses/:course_id/assignments/:id/submissions/:user_id``
  ("Grade or comment on a submission": ``submission[posted_grade]``, ``comment[text_comment]``,
  ``comment[file_ids][]``)
* the "File Uploads" workflow for a comment's file (:mod:`grader.lms.canvas_upload`):
  a ``POST`` of form fields, a multipart ``POST`` to the ``upload_url`` it names (no token,
  redirects not followed) and a ``GET`` of the confirmation address

Throttling (Canvas's ``doc/api/throttling.md``): "In the event that your API request is
throttled, you will receive a ``403 Forbidden (Rate Limit Exceeded)`` response. Your
application should be prepared for this error, and retry the request at a later time." A 403
whose body says ``Rate Limit Exceeded`` is therefore tried again like a 429 and, when the
tries run out, reported as throttling, not as a permission problem (:func:`throttled`).

Why not ``canvasapi``: four calls do not need a dependency (and its ``requests`` stack), and
the two things the grader must control are not its defaults: retries on 429, on Canvas's
throttling 403 (honouring ``Retry-After``) and on 5xx, and where the token goes. The token
comes from ``CANVAS_TOKEN`` only, is sent as an ``Authorization`` header that is never
forwarded on a redirect and never sent to another host than ``base_url`` (a ``Link`` header
or attachment elsewhere gets no token), and no message or exception text this module makes
contains it (:func:`_scrub`).
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from grader.base.errors import GraderError

TOKEN_ENV = "CANVAS_TOKEN"
RETRIES = 4
"""Further tries after a 429, a 5xx or a broken connection (so 5 tries in all)."""
MAX_RETRY_AFTER_S = 60.0
MAX_PAGES = 1000
TIMEOUT_S = 60.0
FORM = "application/x-www-form-urlencoded"


class CanvasError(GraderError):
    """A Canvas request failed; the message names the request and what to fix (never the token)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def token_from_env() -> str:
    """The API token from ``CANVAS_TOKEN``, or a :class:`CanvasError` saying how to set it."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise CanvasError(f"no Canvas API token: set the environment variable {TOKEN_ENV} to an"
                          " access token (Canvas: Account > Settings > New Access Token); it is"
                          " read from the environment only, never from a file")
    return token


def _fix(status: int, what: str, challenge: bool = True) -> str:
    if status == 401 and not challenge:
        return (f"Canvas does not let this user do {what} now (401 Unauthorized without a token"
                " challenge: the token was accepted, the action was not). Fix: check the"
                " assignment in Canvas: moderated grading with grades not yet published, or a"
                " closed grading period, refuse grades")
    if status == 401:
        return (f"Canvas refused the token (401 Unauthorized) for {what}. Fix: set {TOKEN_ENV}"
                " to a valid, unexpired access token of a teacher of the course")
    if status == 403:
        return (f"Canvas forbids {what} to this token's user (403 Forbidden). Fix: use the token"
                " of a teacher (or TA with grading rights) of the course, check canvas.course_id")
    if status == 404:
        return (f"Canvas has no {what} (404 Not Found). Fix: check canvas.base_url, canvas.course_id"
                " and canvas.assignments in the course file")
    return f"Canvas answered {status} for {what}"


def throttled(status: int, body: bytes) -> bool:
    """Whether an answer is Canvas's throttling (throttling.md: ``403 Forbidden (Rate Limit
    Exceeded)``), not a refusal."""
    return status == 403 and b"rate limit exceeded" in body[:2000].lower()


def _throttled_fix(what: str, tries: int) -> str:
    return (f"Canvas throttled {what} (403 Forbidden (Rate Limit Exceeded)) {tries} times; the"
            " token's quota refills over time. Fix: run the same command again in a few minutes"
            " (nothing was sent twice), and do not run other Canvas scripts with this token"
            " meanwhile")


def _next_link(header: str | None) -> str | None:
    """The ``rel="next"`` address of a ``Link`` header (Canvas's pagination), or None."""
    for part in (header or "").split(","):
        pieces = part.split(";")
        url = pieces[0].strip()
        rels = {p.strip().replace(" ", "") for p in pieces[1:]}
        if url.startswith("<") and url.endswith(">") and ('rel="next"' in rels or "rel=next" in rels):
            return url[1:-1]
    return None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are not followed: the 3xx comes back as an ``HTTPError`` to read."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class CanvasClient:
    """The Canvas calls of the course loop.

    Parameters
    ----------
    base_url : str
        ``[canvas] base_url`` (``https://canvas.example.edu``).
    token : str
        The access token (from :func:`token_from_env`).
    retries : int
        Further tries after a 429, a 5xx or a broken connection.
    sleep : callable
        Waits between tries (``time.sleep``).
    """

    def __init__(self, base_url: str, token: str, *, retries: int = RETRIES,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.base_url = base_url.rstrip("/")
        self._origin = self._origin_of(self.base_url)
        self._token = token
        self.retries = retries
        self.sleep = sleep
        self._opener = urllib.request.build_opener()  # redirects drop the token (unredirected)
        self._no_redirect = urllib.request.build_opener(_NoRedirect)

    @staticmethod
    def _origin_of(url: str) -> tuple[str, str]:
        parts = urllib.parse.urlsplit(url)
        return parts.scheme.lower(), parts.netloc.lower()

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "[token]") if self._token else text

    def _url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        url = path if "://" in path else self.base_url + path
        if params:
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode(list(params.items()))
        return url

    def _request(self, method: str, url: str, what: str, data: bytes | None = None,
                 limit: int | None = None, retry_5xx: bool = True, *, content_type: str = FORM,
                 token: bool = True, follow: bool = True) -> tuple[bytes, Any]:
        """One request with retries: ``(body, headers)``; :class:`CanvasError` on failure.

        A 429 (nothing was done) is always tried again; a 5xx only when ``retry_5xx`` (a
        ``PUT`` that failed with 500 may have posted its comment: not sent twice). With
        ``token=False`` no ``Authorization`` goes out even to ``base_url``'s host; with
        ``follow=False`` a 3xx answer is returned (its ``Location`` in the headers)."""
        for attempt in range(self.retries + 1):
            req = urllib.request.Request(url, data=data, method=method)
            req.add_header("Accept", "application/json")
            if data is not None:
                req.add_header("Content-Type", content_type)
            if token and self._origin_of(url) == self._origin:  # the token: base_url's host only
                req.add_unredirected_header("Authorization", f"Bearer {self._token}")
            wait = min(2.0 ** attempt * 0.5, 30.0)
            try:
                with (self._opener if follow else self._no_redirect).open(req, timeout=TIMEOUT_S) as resp:
                    body = resp.read() if limit is None else resp.read(limit + 1)
                    return body, resp.headers
            except urllib.error.HTTPError as exc:
                status = exc.code
                if not follow and 300 <= status < 400:
                    headers = exc.headers
                    exc.close()
                    return b"", headers
                retry_after = exc.headers.get("Retry-After") if exc.headers else None
                challenge = bool(exc.headers and exc.headers.get("WWW-Authenticate"))
                try:
                    body = exc.read(4096) if status == 403 else b""
                except OSError:
                    body = b""
                exc.close()
                throttle = throttled(status, body)
                again = status == 429 or throttle or (status >= 500 and retry_5xx)
                if throttle and attempt == self.retries:
                    raise CanvasError(self._scrub(_throttled_fix(what, attempt + 1)), 403) from None
                if not again or attempt == self.retries:
                    raise CanvasError(self._scrub(_fix(status, what, challenge) + (
                        f" (after {attempt + 1} tries)" if attempt else "")), status) from None
                if status in (429, 403) and retry_after:
                    try:
                        wait = min(max(float(retry_after), 0.0), MAX_RETRY_AFTER_S)
                    except ValueError:
                        pass
            except (urllib.error.URLError, OSError) as exc:
                if attempt == self.retries or not retry_5xx:
                    reason = getattr(exc, "reason", exc)
                    raise CanvasError(self._scrub(
                        f"cannot reach Canvas for {what}: {reason} (after {attempt + 1} tries)."
                        " Fix: check canvas.base_url in the course file and the network")) from None
            self.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _json(self, body: bytes, what: str) -> Any:
        try:
            return json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise CanvasError(f"Canvas's answer for {what} is not JSON. Fix: check that"
                              " canvas.base_url is the Canvas address (no path)") from None

    def get(self, path: str, what: str, params: Mapping[str, Any] | None = None) -> Any:
        """``GET`` one JSON object."""
        body, _ = self._request("GET", self._url(path, params), what)
        return self._json(body, what)

    def get_all(self, path: str, what: str, params: Mapping[str, Any] | None = None) -> list:
        """``GET`` a paginated list, following ``Link: <...>; rel="next"`` to the end."""
        url: str | None = self._url(path, {"per_page": 100, **(params or {})})
        items: list = []
        for _ in range(MAX_PAGES):
            if url is None:
                return items
            body, headers = self._request("GET", url, what)
            page = self._json(body, what)
            if not isinstance(page, list):
                raise CanvasError(f"Canvas's answer for {what} is not a list")
            items.extend(page)
            url = _next_link(headers.get("Link"))
        raise CanvasError(f"{what}: more than {MAX_PAGES} pages; stopped")

    def download(self, url: str, what: str, limit: int) -> bytes:
        """The bytes at an attachment ``url``; :class:`CanvasError` when over ``limit`` bytes."""
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise CanvasError(f"{what}: the download address is not http(s)")
        body, _ = self._request("GET", url, what, limit=limit)
        if len(body) > limit:
            raise CanvasError(f"{what} is larger than {limit / 1e6:.0f} MB; not downloaded")
        return body

    def put_form(self, path: str, what: str, fields: Mapping[str, str]) -> Any:
        """``PUT`` form fields (Canvas's ``submission[posted_grade]`` style); the JSON answer."""
        data = urllib.parse.urlencode(list(fields.items())).encode("ascii")
        body, _ = self._request("PUT", self._url(path), what, data=data, retry_5xx=False)
        return self._json(body, what)

    def post_form(self, path: str, what: str, fields: Mapping[str, str] | list) -> Any:
        """``POST`` form fields; the JSON answer (a 5xx is tried again: nothing is posted twice
        that matters, e.g. step 1 of a file upload only makes a pending file)."""
        items = list(fields.items()) if isinstance(fields, Mapping) else list(fields)
        data = urllib.parse.urlencode(items).encode("ascii")
        body, _ = self._request("POST", self._url(path), what, data=data)
        return self._json(body, what)

    def post_upload(self, url: str, what: str, body: bytes, content_type: str) -> tuple[bytes, Any]:
        """``POST`` a multipart body to an ``upload_url``: never with the token (the File Uploads
        page: "The access token is not sent with this request"), a 3xx is returned, not
        followed. ``(body, headers)``."""
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise CanvasError(f"{what}: the upload address is not http(s)")
        return self._request("POST", url, what, data=body, content_type=content_type,
                             token=False, follow=False)
