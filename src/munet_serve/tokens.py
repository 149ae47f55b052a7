"""The tokens file the server reads (server/auth.py) and `munet-serve tokens` writes: each token's name, roles and
SHA-256 hash, never the token itself."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from munet_serve.errors import InvalidArgumentError, NotFoundError

__all__ = ["ADMIN", "EVOLVER", "MANAGE", "PREDICT", "ROLES", "TokenEntry", "TokensFile", "hash_token"]

PREDICT, MANAGE, EVOLVER, ADMIN = "predict", "manage", "evolver", "admin"
ROLES = (PREDICT, MANAGE, EVOLVER, ADMIN)
TOKEN_PREFIX = "munet_"


def hash_token(token: str) -> str:
    """The hash the tokens file keeps. Tokens are 256 random bits, so one SHA-256 is enough (no stretching)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenEntry:
    name: str
    roles: tuple[str, ...]
    sha256: str


class TokensFile:
    """The tokens file: {"tokens": [{"name", "roles", "sha256"}]}, written atomically and readable by its owner
    alone."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def read(self) -> list[TokenEntry]:
        if not self.path.exists():
            return []
        try:
            document = json.loads(self.path.read_text())
            entries = [TokenEntry(str(e["name"]), tuple(e["roles"]), str(e["sha256"])) for e in document["tokens"]]
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"tokens file {self.path} is not valid: {e}") from e
        for entry in entries:
            unknown = set(entry.roles) - set(ROLES)
            if unknown:
                raise ValueError(f"tokens file {self.path}: token {entry.name!r} has unknown roles {sorted(unknown)}")
        return entries

    def create(self, name: str, roles: tuple[str, ...]) -> str:
        """Adds a token; returns it (the only time it is seen: the file keeps its hash)."""
        if not name:
            raise InvalidArgumentError("a token needs a name")
        unknown = set(roles) - set(ROLES)
        if not roles or unknown:
            raise InvalidArgumentError(f"roles must be among {', '.join(ROLES)}; got {list(roles)}")
        entries = self.read()
        if any(e.name == name for e in entries):
            raise InvalidArgumentError(f"a token named {name!r} exists already; revoke it first")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        self._write([*entries, TokenEntry(name, tuple(roles), hash_token(token))])
        return token

    def revoke(self, name: str) -> None:
        entries = self.read()
        kept = [e for e in entries if e.name != name]
        if len(kept) == len(entries):
            raise NotFoundError(f"no token named {name!r} in {self.path}")
        self._write(kept)

    def _write(self, entries: list[TokenEntry]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        document = {"tokens": [{"name": e.name, "roles": list(e.roles), "sha256": e.sha256} for e in entries]}
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tokens-")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(document, f, indent=2)
                f.write("\n")
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
