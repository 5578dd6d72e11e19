"""WeChat message encryption (消息加解密) against the vector of WeChat's own sample code (WXBizMsgCryptTest:
EncodingAESKey ``abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG``, AppID ``wxb11529c136998cb6``, random
``aaaabbbbccccdddd``, message ``我是中文abcd123``), and every way an encrypted callback is refused."""

from __future__ import annotations

import base64

import pytest
from pydantic import SecretStr, ValidationError

from laifaxin_notify.settings import NotifySettings
from laifaxin_notify.wechat_crypto import (
    WeChatCryptoError,
    aes_key,
    check_msg_signature,
    decrypt,
    encrypt,
    msg_signature,
)

KEY_TEXT = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APPID = "wxb11529c136998cb6"
MESSAGE = "我是中文abcd123".encode()
ENCRYPTED = "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="


def test_the_vector_of_wechats_sample_decrypts_and_encrypts() -> None:
    key = aes_key(KEY_TEXT)
    assert len(key) == 32
    assert decrypt(key, APPID, ENCRYPTED) == MESSAGE
    assert encrypt(key, APPID, MESSAGE, random16=b"aaaabbbbccccdddd") == ENCRYPTED
    inner = b"<xml><Event><![CDATA[subscribe]]></Event></xml>" * 7  # several 32-byte blocks
    assert decrypt(key, APPID, encrypt(key, APPID, inner)) == inner


def test_msg_signature_is_the_sha1_of_the_four_sorted_values() -> None:
    sig = msg_signature("token", "1409304348", "xxxxxx", ENCRYPTED)
    check_msg_signature("token", "1409304348", "xxxxxx", ENCRYPTED, sig)
    with pytest.raises(WeChatCryptoError) as refused:
        check_msg_signature("token", "1409304348", "xxxxxx", ENCRYPTED + "x", sig)
    assert refused.value.reason == "bad_signature"


@pytest.mark.parametrize(
    "text", ["", KEY_TEXT[:-1], KEY_TEXT + "H", "!" * 43, base64.b64encode(b"k" * 24).decode().rstrip("=")]
)
def test_a_malformed_encoding_aes_key_is_refused(text: str) -> None:
    with pytest.raises(WeChatCryptoError) as refused:
        aes_key(text)
    assert refused.value.reason == "bad_key"


@pytest.mark.parametrize(
    ("key_text", "appid", "encrypted", "reason"),
    [
        (KEY_TEXT, "wx0000000000000000", ENCRYPTED, "wrong_appid"),
        ("A" * 43, APPID, ENCRYPTED, "undecryptable"),  # another key: the padding does not come out
        (KEY_TEXT, APPID, "not base64 at all", "undecryptable"),
        (KEY_TEXT, APPID, base64.b64encode(b"x" * 20).decode(), "undecryptable"),  # not whole blocks
        (KEY_TEXT, APPID, "", "undecryptable"),
    ],
)
def test_what_cannot_be_decrypted_for_this_account_is_refused(
    key_text: str, appid: str, encrypted: str, reason: str
) -> None:
    with pytest.raises(WeChatCryptoError) as refused:
        decrypt(aes_key(key_text), appid, encrypted)
    assert refused.value.reason == reason
    assert KEY_TEXT not in str(refused.value) and "我是中文" not in str(refused.value)


def test_the_setting_is_checked_when_the_service_starts() -> None:
    NotifySettings(wechat_encoding_aes_key=SecretStr(KEY_TEXT))
    with pytest.raises(ValidationError) as refused:
        NotifySettings(wechat_encoding_aes_key=SecretStr(KEY_TEXT[:40]))
    assert "43 Base64 characters" in str(refused.value) and KEY_TEXT[:40] not in str(refused.value)
