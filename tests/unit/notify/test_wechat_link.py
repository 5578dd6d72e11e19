"""WeChat QR-code linking rules without a network: event parsing ("接收事件推送"), scene ids, the QR image URL
and request checks ("生成带参数的二维码"), secret scrubbing."""

from __future__ import annotations

import re

import pytest
from defusedxml import ElementTree

from laifaxin_notify.channels.wechat import QrCode, WeChatSender
from laifaxin_notify.wechat_link import WeChatEvent, new_scene_id, ref


def parse(xml: str) -> WeChatEvent:
    return WeChatEvent.from_xml(ElementTree.fromstring(xml))


def test_subscribe_through_a_code_carries_the_scene_after_qrscene() -> None:
    ev = parse(
        "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[oNEW]]></FromUserName>"
        "<CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        "<Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[qrscene_abc-DEF_1]]></EventKey>"
        "<Ticket><![CDATA[gQT]]></Ticket></xml>"
    )
    assert (ev.event, ev.openid, ev.create_time, ev.scene) == ("subscribe", "oNEW", 1700000000, "abc-DEF_1")


@pytest.mark.parametrize(
    ("event", "key", "scene"),
    [
        ("SCAN", "abc", "abc"),  # already following: EventKey is the scene itself
        ("subscribe", "", ""),  # followed by search: no scene
        ("subscribe", "abc", ""),  # no qrscene_ prefix: not from a parameter code
        ("unsubscribe", "", ""),
        ("CLICK", "qrscene_abc", ""),
    ],
)
def test_scene_by_event(event: str, key: str, scene: str) -> None:
    xml = f"<xml><FromUserName>o1</FromUserName><Event>{event}</Event><EventKey>{key}</EventKey></xml>"
    ev = parse(xml)
    assert ev.scene == scene and ev.create_time == 0


def test_scene_ids_are_random_urlsafe_and_fit_wechat() -> None:
    ids = {new_scene_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{48}", i) for i in ids)
    assert ref("oNEW") != "oNEW" and len(ref("oNEW")) == 12


def test_qrcode_image_url_encodes_the_ticket() -> None:
    code = QrCode("gQH4+8/ab==", 600, "http://weixin.qq.com/q/x")
    assert code.image_url == "https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=gQH4%2B8%2Fab%3D%3D"


async def test_create_qrcode_checks_the_scene_before_calling() -> None:
    sender = WeChatSender(base_url="http://127.0.0.1:9", appid="wx1", secret="s3cr3t-value", template_id="T")
    with pytest.raises(ValueError, match=r"1\.\.64"):
        await sender.create_qrcode("x" * 65, 600)
    with pytest.raises(ValueError, match=r"1\.\.64"):
        await sender.create_qrcode("", 600)
    assert sender.scrub("errmsg s3cr3t-value rid: 1") == "errmsg *** rid: 1"
    await sender.aclose()
