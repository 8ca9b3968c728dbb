"""The SMTP password: kept in the OS keyring, else an environment variable; never in the
config file."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import Any

KEYRING_SERVICE = "jixiaoan-smtp"
PASSWORD_ENV = "JIXIAOAN_SMTP_PASSWORD"


class PasswordStore:
    """Where the SMTP password lives: the OS keyring (service ``jixiaoan-smtp``), or, when no
    keyring backend works, the environment variable ``JIXIAOAN_SMTP_PASSWORD``.

    ``backend`` is anything with keyring's ``get_password`` / ``set_password`` /
    ``delete_password`` (default: the ``keyring`` module); ``environ`` defaults to os.environ.
    """

    def __init__(
        self,
        account: str,
        backend: Any = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.account = account
        self._backend = backend
        self._environ = environ if environ is not None else os.environ
        self.last_problem = ""

    def for_account(self, account: str) -> PasswordStore:
        """The same store (backend, environment) for another account."""
        return PasswordStore(account, self._backend, self._environ)

    def _keyring(self) -> Any:
        if self._backend is None:
            import keyring

            self._backend = keyring
        return self._backend

    def _no_keyring(self, exc: BaseException) -> str:
        self.last_problem = (
            f"No working OS keyring ({type(exc).__name__}: {exc}). The SMTP password cannot be "
            f"stored; set the environment variable {PASSWORD_ENV} instead."
        )
        return self.last_problem

    def keyring_works(self) -> tuple[bool, str]:
        """Whether a keyring backend answers; the message says what to do when not."""
        try:
            self._keyring().get_password(KEYRING_SERVICE, self.account)
        except Exception as exc:  # noqa: BLE001 - any backend failure means "no keyring"
            return False, self._no_keyring(exc)
        return True, "The SMTP password is kept in the OS keyring."

    def get(self) -> str | None:
        """The password: the keyring's, else the environment variable's, else None."""
        try:
            value = self._keyring().get_password(KEYRING_SERVICE, self.account)
        except Exception as exc:  # noqa: BLE001
            self._no_keyring(exc)
            value = None
        if value:
            return value
        return self._environ.get(PASSWORD_ENV) or None

    def set(self, password: str) -> tuple[bool, str]:
        """Store the password in the keyring; (False, why) when no keyring works."""
        try:
            self._keyring().set_password(KEYRING_SERVICE, self.account, password)
        except Exception as exc:  # noqa: BLE001
            return False, self._no_keyring(exc)
        return True, "Password saved in the OS keyring."

    def delete(self) -> None:
        """Forget the stored password (no error when there is none or no keyring)."""
        with contextlib.suppress(Exception):
            self._keyring().delete_password(KEYRING_SERVICE, self.account)

    def source(self) -> str:
        """Where ``get`` finds the password now: 'keyring', 'environment' or 'none'."""
        try:
            if self._keyring().get_password(KEYRING_SERVICE, self.account):
                return "keyring"
        except Exception as exc:  # noqa: BLE001
            self._no_keyring(exc)
        return "environment" if self._environ.get(PASSWORD_ENV) else "none"
