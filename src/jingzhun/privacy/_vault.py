"""Keys and encryption at rest: a master key, per-person data keys wrapped by it, AES-GCM.

- The **master key** (32 bytes) comes from ``JINGZHUN_MASTER_KEY`` (hex or URL-safe base64)
  or from the key file ``privacy.yml`` names (default ``state/keys/master.key``, created with
  32 random bytes and mode 0600 on first use). It only ever wraps data keys.
- **Data keys** (32 random bytes each) live in the store's ``privacy_keys`` table, wrapped with
  AES-GCM under the master key (the key's name is the associated data, so a wrapped key cannot
  be moved to another name). ``subject:<hash>`` keys encrypt one person's archives;
  ``system:pseudonym`` keys the analytics pseudonyms; ``system:warehouse`` encrypts the
  warehouse's personal columns (``warehouse_cipher``), ``system:store`` the operational
  store's addresses and consent subjects (``seal_store``).
- **Crypto-shredding**: ``shred(name)`` deletes a data key; everything encrypted under it is
  unreadable from then on, wherever the copies went.
- **Rotation**: ``rotate(new_master)`` re-wraps every data key under a new master key in one
  transaction; data encrypted under the data keys is untouched.

An encrypted blob is ``JZV1`` + the data key's name + a newline + a 12-byte nonce + the AES-GCM
ciphertext and tag (NIST SP 800-38D; a random 96-bit nonce per message).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from datetime import UTC, datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import delete, select

from jingzhun.core import EngineKind, NotFoundError, Project, RefusedError
from jingzhun.engine import ColumnCipher
from jingzhun.privacy._settings import PrivacySettings, load_privacy_settings
from jingzhun.store import OperationalStore, PrivacyKey, StoreCipher

MASTER_KEY_ENV = "JINGZHUN_MASTER_KEY"
NEW_MASTER_KEY_ENV = "JINGZHUN_NEW_MASTER_KEY"
MAGIC = b"JZV1"
PSEUDONYM_KEY = "system:pseudonym"
WAREHOUSE_KEY = "system:warehouse"
STORE_KEY = "system:store"
_NONCE = 12


def parse_key(text: str, where: str) -> bytes:
    """32 key bytes from hex (64 digits) or URL-safe base64 (43 or 44 characters)."""
    value = text.strip()
    try:
        key = bytes.fromhex(value) if len(value) == 64 else base64.urlsafe_b64decode(value + "==")
    except (ValueError, binascii.Error):
        key = b""
    if len(key) != 32:
        raise RefusedError(
            f"{where} is not a 32-byte key: give 64 hex digits or 43 URL-safe base64 characters "
            "(python -c 'import secrets; print(secrets.token_hex(32))')"
        )
    return key


def key_id(key: bytes) -> str:
    """A public fingerprint of a master key (16 hex digits), stored beside what it wrapped."""
    return hashlib.sha256(b"jingzhun master key\x00" + key).hexdigest()[:16]


def load_master_key(project: Project, key_file: str, *, create: bool = True) -> bytes:
    """The master key from ``JINGZHUN_MASTER_KEY`` or the key file (made on first use)."""
    env = os.environ.get(MASTER_KEY_ENV)
    if env:
        return parse_key(env, MASTER_KEY_ENV)
    path = project.resolve(key_file)
    if not path.exists():
        if not create:
            raise NotFoundError(f"no master key: set {MASTER_KEY_ENV} or create {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_bytes(secrets.token_bytes(32))
        partial.chmod(0o600)
        os.replace(partial, path)
    data = path.read_bytes()
    if len(data) == 32:
        return data
    return parse_key(data.decode("ascii", errors="replace"), str(path))


def _wrap(master: bytes, name: str, data_key: bytes) -> str:
    nonce = secrets.token_bytes(_NONCE)
    sealed = AESGCM(master).encrypt(nonce, data_key, name.encode())
    return base64.b64encode(nonce + sealed).decode("ascii")


def _unwrap(master: bytes, name: str, wrapped: str) -> bytes:
    raw = base64.b64decode(wrapped)
    return AESGCM(master).decrypt(raw[:_NONCE], raw[_NONCE:], name.encode())


class Vault:
    """Data keys wrapped by a master key in the operational store; AES-GCM with them."""

    def __init__(self, store: OperationalStore, master_key: bytes) -> None:
        self.store = store
        self.master_key = master_key

    @property
    def master_id(self) -> str:
        """Fingerprint of the master key in use."""
        return key_id(self.master_key)

    def data_key(self, name: str, *, create: bool = True) -> bytes:
        """The data key called ``name``, made and stored wrapped when missing and ``create``."""
        with self.store.session(write=create) as session:
            row = session.scalar(select(PrivacyKey).where(PrivacyKey.key_name == name))
            if row is None:
                if not create:
                    raise NotFoundError(
                        f"data key '{name}' does not exist (it was never made, or it was shredded "
                        "when the person was erased): what it encrypted cannot be read"
                    )
                key = secrets.token_bytes(32)
                session.add(
                    PrivacyKey(
                        key_name=name,
                        wrapped=_wrap(self.master_key, name, key),
                        master_id=self.master_id,
                        created_at=datetime.now(UTC),
                    )
                )
                return key
            if row.master_id != self.master_id:
                raise RefusedError(
                    f"data key '{name}' is wrapped with master key {row.master_id}, but the master "
                    f"key in use is {self.master_id}: set {MASTER_KEY_ENV} (or the key file) to "
                    "the key that wrapped it, or finish 'jingzhun privacy keys rotate'"
                )
            try:
                return _unwrap(self.master_key, name, row.wrapped)
            except InvalidTag:
                raise RefusedError(
                    f"data key '{name}' does not open with the master key {self.master_id}: the "
                    "stored key was changed or the master key is wrong"
                ) from None

    def has_key(self, name: str) -> bool:
        """Whether a data key of that name exists (not shredded)."""
        with self.store.session() as session:
            found = session.scalar(select(PrivacyKey.id).where(PrivacyKey.key_name == name))
        return found is not None

    def encrypt(self, plaintext: bytes, key_name: str) -> bytes:
        """Seal ``plaintext`` with the data key ``key_name`` (made when missing)."""
        key = self.data_key(key_name)
        nonce = secrets.token_bytes(_NONCE)
        header = MAGIC + key_name.encode() + b"\n"
        return header + nonce + AESGCM(key).encrypt(nonce, plaintext, header)

    def decrypt(self, blob: bytes) -> bytes:
        """Open a blob ``encrypt`` made; a shredded key is a ``NotFoundError``."""
        if not blob.startswith(MAGIC) or b"\n" not in blob[:200]:
            raise RefusedError("not a jingzhun encrypted file (it does not start with JZV1)")
        end = blob.index(b"\n")
        header, body = blob[: end + 1], blob[end + 1 :]
        key = self.data_key(header[len(MAGIC) : end].decode(), create=False)
        try:
            return AESGCM(key).decrypt(body[:_NONCE], body[_NONCE:], header)
        except InvalidTag:
            raise RefusedError("the encrypted file was changed or cut short") from None

    def shred(self, key_name: str) -> bool:
        """Delete a data key (crypto-shredding); False when there was none."""
        with self.store.session(write=True) as session:
            result = session.execute(delete(PrivacyKey).where(PrivacyKey.key_name == key_name))
        return bool(getattr(result, "rowcount", 0))

    def rotate(self, new_master: bytes) -> int:
        """Re-wrap every data key under ``new_master`` (one transaction); returns how many.

        Afterwards this vault uses the new key; the caller stores it (key file or environment).
        """
        if new_master == self.master_key:
            raise RefusedError("the new master key is the one in use; rotation needs a new key")
        now = datetime.now(UTC)
        new_id = key_id(new_master)
        with self.store.session(write=True) as session:
            rows = session.scalars(select(PrivacyKey)).all()
            for row in rows:
                if row.master_id == new_id:
                    continue  # a rotation that stopped half-way: already re-wrapped
                if row.master_id != self.master_id:
                    raise RefusedError(
                        f"data key '{row.key_name}' is wrapped with master key {row.master_id}, "
                        f"neither the current ({self.master_id}) nor the new one ({new_id})"
                    )
                key = _unwrap(self.master_key, row.key_name, row.wrapped)
                row.wrapped = _wrap(new_master, row.key_name, key)
                row.master_id = new_id
                row.rotated_at = now
            count = len(rows)
        self.master_key = new_master
        return count

    def pseudonymise(self, identifier: str, kind: str = "") -> str:
        """A stable pseudonym for analytics (``ps_`` + 24 hex of HMAC-SHA256 under the
        ``system:pseudonym`` data key); the same identifier always gives the same pseudonym,
        and without the key it cannot be reversed or recomputed.
        """
        key = self.data_key(PSEUDONYM_KEY)
        text = identifier.strip().lower() if "@" in identifier else identifier.strip()
        digest = hmac.new(key, f"{kind}\x1f{text}".encode(), hashlib.sha256).hexdigest()
        return "ps_" + digest[:24]


def rotate_master_key(
    project: Project, store: OperationalStore, key_file: str, *, new_key: bytes | None = None
) -> dict[str, object]:
    """Re-wrap every data key under a new master key and put the new key in place.

    With ``JINGZHUN_MASTER_KEY`` set, the new key must come from ``JINGZHUN_NEW_MASTER_KEY``
    (the caller then swaps the variables); otherwise a new key is generated and the key file
    replaced only after the store committed (a ``.new`` file bridges a crash in between).
    """
    from_env = bool(os.environ.get(MASTER_KEY_ENV))
    path = project.resolve(key_file)
    staged = path.with_name(path.name + ".new")
    old = load_master_key(project, key_file)
    if new_key is None:
        env_new = os.environ.get(NEW_MASTER_KEY_ENV)
        if env_new:
            new_key = parse_key(env_new, NEW_MASTER_KEY_ENV)
        elif from_env:
            raise RefusedError(
                f"the master key comes from {MASTER_KEY_ENV}: put the new key in "
                f"{NEW_MASTER_KEY_ENV}, rotate, then move it to {MASTER_KEY_ENV}"
            )
        elif staged.exists():
            new_key = staged.read_bytes()  # a rotation that stopped after staging
        else:
            new_key = secrets.token_bytes(32)
    if not from_env:
        staged.write_bytes(new_key)
        staged.chmod(0o600)
    vault = Vault(store, old)
    count = vault.rotate(new_key)
    if not from_env:
        os.replace(staged, path)
    return {
        "keys_rewrapped": count,
        "old_master_id": key_id(old),
        "new_master_id": key_id(new_key),
        "key_file": None if from_env else str(path),
        "next_step": (
            f"set {MASTER_KEY_ENV} to the value of {NEW_MASTER_KEY_ENV} now" if from_env else None
        ),
    }


def warehouse_cipher(
    project: Project, store: OperationalStore, settings: PrivacySettings | None = None
) -> ColumnCipher | None:
    """The cipher of the warehouse's personal columns, or None when encryption is off.

    Its key is the ``system:warehouse`` data key (made on first use, wrapped by the master
    key, so ``keys rotate`` re-wraps it with the rest).
    """
    settings = settings or load_privacy_settings(project.root)
    duckdb = project.settings.engine.kind is EngineKind.DUCKDB
    wanted = settings.encrypt_at_rest if settings.encrypt_at_rest is not None else duckdb
    if not wanted:
        return None
    if not duckdb:
        raise RefusedError(
            "privacy.yml sets encrypt_at_rest: true, but column encryption is only available "
            "on the DuckDB engine; on Spark use Parquet modular encryption or encrypted storage "
            "and set encrypt_at_rest: false"
        )
    vault = Vault(store, load_master_key(project, settings.master_key_file))
    return ColumnCipher(vault.data_key(WAREHOUSE_KEY), key_name=WAREHOUSE_KEY)


def seal_store(
    project: Project, store: OperationalStore, settings: PrivacySettings | None = None
) -> StoreCipher | None:
    """Give the operational store its cipher (addresses and consent subjects sealed at rest,
    ``jingzhun.store._sealed``) unless ``privacy.yml`` says ``encrypt_at_rest: false``.

    Its key is the ``system:store`` data key, wrapped by the master key like the others.
    """
    settings = settings or load_privacy_settings(project.root)
    if settings.encrypt_at_rest is False:
        store.seal_with(None)
        return None
    vault = Vault(store, load_master_key(project, settings.master_key_file))
    cipher = StoreCipher(vault.data_key(STORE_KEY), key_name=STORE_KEY)
    store.seal_with(cipher)
    return cipher
