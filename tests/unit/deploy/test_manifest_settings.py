"""Each service's settings load from exactly what its Deployment gives it, in production.

The base Deployments (deploy/k8s/base) set ``LAIFAXIN_ENVIRONMENT=production``, where the services refuse
placeholder secrets; a setting the code requires but the manifest does not provide (a Secret not mounted for
that service) stops the pod at start. Here the environment of each container is assembled from its ConfigMaps,
literal env values and secretKeyRefs (required Secrets get fresh random values, optional ones are left out, as
when an operator does not create them) and the service's settings class is built from it.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from laifaxin_binding.settings import BindingSettings
from laifaxin_classifier.service import ClassifierSettings
from laifaxin_notify.settings import NotifySettings
from laifaxin_sync.settings import SyncSettings

BASE = Path(__file__).resolve().parents[3] / "deploy" / "k8s" / "base"
SETTINGS: dict[str, Any] = {
    "binding": BindingSettings,
    "sync": SyncSettings,
    "classifier": ClassifierSettings,
    "notify": NotifySettings,
}


def _secret_value(key: str) -> str:
    if key == "LAIFAXIN_CREDENTIAL_KEYS":
        return "k1:" + base64.b64encode(secrets.token_bytes(32)).decode()
    if key == "NOTIFY_SECRETS_KEYS":
        return "n1:" + base64.b64encode(secrets.token_bytes(32)).decode()
    if key == "LAIFAXIN_REPLY_TOKEN_KEYS":
        return "r1:" + base64.b64encode(secrets.token_bytes(32)).decode()
    if key == "LAIFAXIN_REPLY_TOKEN_ACTIVE_KEY_ID":
        return "r1"
    if key == "MONGODB_URL":
        return "mongodb://mongo.example:27017/"
    if key == "NOTIFY_VAPID_PRIVATE_KEY":
        return (
            ec.generate_private_key(ec.SECP256R1())
            .private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            .decode()
        )
    return secrets.token_urlsafe(48)


def _env_file(name: str) -> dict[str, str]:
    out = {}
    for line in (BASE / "config" / f"{name}.env").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value
    return out


def container_env(name: str) -> dict[str, str]:
    docs = yaml.safe_load_all((BASE / f"{name}.yaml").read_text(encoding="utf-8"))
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for ref in container.get("envFrom", []):
        cm = ref["configMapRef"]["name"]
        env |= _env_file("common" if cm == "laifaxin-common" else cm)
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        elif (ref := var["valueFrom"].get("secretKeyRef")) and not ref.get("optional"):
            env[var["name"]] = _secret_value(ref["key"])
    return env


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_settings_load_from_the_deployment_env_in_production(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefixes = ("LAIFAXIN_", "BINDING_", "SYNC_", "CLASSIFIER_", "NOTIFY_", "KAFKA_", "MONGODB_")
    for key in list(os.environ):
        if key.startswith(prefixes):
            monkeypatch.delenv(key)
    env = container_env(name)
    assert env["LAIFAXIN_ENVIRONMENT"] == "production"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = SETTINGS[name]()
    assert settings.environment == "production"


def test_only_the_services_that_decrypt_get_the_key_ring() -> None:
    given = {name for name in SETTINGS if "LAIFAXIN_CREDENTIAL_KEYS" in container_env(name)}
    assert given == {"binding", "sync"}
