"""Bearer-token checks for admin (and optionally scoring) routes."""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from predictor.service.errors import ApiError

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="foresight"'}


def ensure_token_file(path: Path) -> bool:
    """Create ``path`` with a random token (mode 0600) if it does not exist; True if created."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(32) + "\n")
    return True


class TokenAuth:
    """Checks ``Authorization: Bearer <token>`` against the token held in a file.

    The file is re-read when its modification time changes, so a token can be
    rotated without a restart. A missing or empty file locks the routes.
    """

    def __init__(self, token_file: Path) -> None:
        self.token_file = token_file
        self._mtime_ns: int | None = None
        self._token: bytes | None = None

    def _current_token(self) -> bytes | None:
        try:
            mtime = self.token_file.stat().st_mtime_ns
        except OSError:
            self._mtime_ns, self._token = None, None
            return None
        if mtime != self._mtime_ns:
            token = self.token_file.read_text().strip().encode()
            self._token = token or None
            self._mtime_ns = mtime
        return self._token

    def check(self, authorization: str | None) -> None:
        """Raise :class:`ApiError` (401/503) unless the header carries the right token."""
        expected = self._current_token()
        if expected is None:
            raise ApiError(
                503,
                f"admin token not configured: put a token in {self.token_file} "
                "(foresight serve creates one on first start)",
            )
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise ApiError(
                401, "missing 'Authorization: Bearer <token>' header", headers=_CHALLENGE
            )
        if not hmac.compare_digest(given.strip().encode(), expected):
            raise ApiError(401, "invalid bearer token", headers=_CHALLENGE)
