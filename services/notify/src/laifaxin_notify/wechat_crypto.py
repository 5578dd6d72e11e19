"""WeChat Official Account message encryption (WeChat docs "消息加解密说明"; the 安全模式 / safe and 兼容模式 /
compatible modes of 基本配置 → 服务器配置 → 消息加解密方式).

In those modes WeChat posts ``<xml><ToUserName>…</ToUserName><Encrypt>…</Encrypt></xml>`` with the query
parameters ``encrypt_type=aes`` and ``msg_signature`` (besides ``signature``, ``timestamp``, ``nonce``):

- ``msg_signature`` = SHA-1 hex of the sorted concatenation of the callback Token, ``timestamp``, ``nonce`` and
  the ``Encrypt`` text;
- ``Encrypt`` = Base64 of AES-256-CBC over ``random(16) + len(msg) as 4 bytes big-endian + msg + AppID``,
  PKCS#7-padded to a multiple of 32 bytes; the key is the 43-character EncodingAESKey Base64-decoded (with one
  ``=`` appended: 32 bytes), the IV its first 16 bytes.

The URL verification (GET with ``echostr``) is plain in every mode for an Official Account. A passive reply may
stay the plain ``success`` WeChat documents for "no reply", so only decryption is needed to receive events;
:func:`encrypt` is the inverse (the loopback WeChat server of the tests sends with it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

_BLOCK_BITS = 256  # WeChat pads to 32 bytes (its PKCS7Encoder block_size = 32), not AES's 16


class WeChatCryptoError(ValueError):
    """An encrypted callback that cannot be accepted. ``reason``: ``bad_key`` (the EncodingAESKey is not 43
    Base64 characters), ``bad_signature`` (``msg_signature`` does not match), ``undecryptable`` (not Base64, not
    a whole number of blocks, bad padding or length) or ``wrong_appid`` (encrypted for another Official
    Account). The message never contains the key or the plaintext."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def aes_key(encoding_aes_key: str) -> bytes:
    """The 32-byte AES key of an EncodingAESKey (43 characters of Base64, without its trailing ``=``).

    Raises:
        WeChatCryptoError: ``bad_key``.
    """
    text = encoding_aes_key.strip()
    try:
        key = base64.b64decode(text + "=", validate=True)
    except binascii.Error:
        key = b""
    if len(text) != 43 or len(key) != 32:
        raise WeChatCryptoError("bad_key", "an EncodingAESKey is 43 Base64 characters (32 bytes)")
    return key


def msg_signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    """SHA-1 hex of the sorted concatenation of the four values (WeChat's ``msg_signature``)."""
    joined = "".join(sorted([token, timestamp, nonce, encrypted]))
    return hashlib.sha1(joined.encode()).hexdigest()  # noqa: S324  # WeChat's protocol


def check_msg_signature(token: str, timestamp: str, nonce: str, encrypted: str, signature: str) -> None:
    """Compare ``signature`` with :func:`msg_signature` in constant time.

    Raises:
        WeChatCryptoError: ``bad_signature``.
    """
    if not hmac.compare_digest(msg_signature(token, timestamp, nonce, encrypted), signature):
        raise WeChatCryptoError("bad_signature", "msg_signature does not match")


def decrypt(key: bytes, appid: str, encrypted: str) -> bytes:
    """The message inside an ``Encrypt`` value (the inner XML, as bytes).

    Args:
        key: :func:`aes_key` of the EncodingAESKey.
        appid: this Official Account's AppID; the message must end with it.
        encrypted: the ``Encrypt`` element's text.

    Raises:
        WeChatCryptoError: ``undecryptable`` or ``wrong_appid``.
    """
    try:
        data = base64.b64decode(encrypted, validate=True)
    except binascii.Error:
        raise WeChatCryptoError("undecryptable", "Encrypt is not Base64") from None
    if not data or len(data) % 16:
        raise WeChatCryptoError("undecryptable", "Encrypt is not a whole number of AES blocks")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    padded = decryptor.update(data) + decryptor.finalize()
    unpadder = padding.PKCS7(_BLOCK_BITS).unpadder()
    try:
        plain = unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise WeChatCryptoError("undecryptable", "bad padding (wrong EncodingAESKey?)") from None
    if len(plain) < 20:
        raise WeChatCryptoError("undecryptable", "too short")
    size = int.from_bytes(plain[16:20], "big")
    message, sender = plain[20 : 20 + size], plain[20 + size :]
    if len(message) != size:
        raise WeChatCryptoError("undecryptable", "length field beyond the message")
    if sender != appid.encode():
        raise WeChatCryptoError("wrong_appid", "encrypted for another AppID")
    return message


def encrypt(key: bytes, appid: str, message: bytes, random16: bytes | None = None) -> str:
    """The ``Encrypt`` value WeChat would send for ``message`` (inverse of :func:`decrypt`).

    Args:
        random16: the 16 leading random bytes (fresh ones by default).
    """
    prefix = random16 if random16 is not None else os.urandom(16)
    if len(prefix) != 16:
        raise ValueError("random16 must be 16 bytes")
    padder = padding.PKCS7(_BLOCK_BITS).padder()
    padded = (
        padder.update(prefix + len(message).to_bytes(4, "big") + message + appid.encode()) + padder.finalize()
    )
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode("ascii")
