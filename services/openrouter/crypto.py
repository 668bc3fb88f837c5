"""Keys at rest: Fernet encryption through MultiFernet, so keys can be rotated.

OPENROUTER_FERNET_KEYS is a comma-separated list; the first encrypts, all of
them decrypt. Rotation re-encrypts under the first, after which the others can
be removed from the list.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from services.common.config import ConfigError


class KeyBox:
    def __init__(self, fernet_keys: tuple[str, ...]) -> None:
        if not fernet_keys:
            raise ConfigError("OPENROUTER_FERNET_KEYS is required: comma-separated Fernet keys, primary first")
        try:
            self._fernet = MultiFernet([Fernet(k.encode()) for k in fernet_keys])
        except ValueError:
            # Never echo the value: it is a secret.
            raise ConfigError("OPENROUTER_FERNET_KEYS holds a value that is not a Fernet key") from None

    def seal(self, secret: str) -> bytes:
        return self._fernet.encrypt(secret.encode())

    def open(self, sealed: bytes) -> str:
        try:
            return self._fernet.decrypt(sealed).decode()
        except InvalidToken:
            raise RuntimeError("a stored key cannot be decrypted with the configured Fernet keys") from None

    def rotate(self, sealed: bytes) -> bytes:
        return self._fernet.rotate(sealed)


def generate_key() -> str:
    return Fernet.generate_key().decode()
