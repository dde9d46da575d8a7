"""Download links for a model version's ONNX file (see services/common/links.py).

A model link carries the caller and the version; it may be used more than once while it lasts
(a download is a read, and the bytes hash to the version's recorded SHA-256 every time).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from services.common.auth import Principal
from services.common.links import LinkSigner, link_refused

LINK_PATH = "/api/v1/models/{model_id}/versions/{version}/download?link={link}"


@dataclass(frozen=True)
class ModelLink:
    url: str
    expires: datetime


class ModelLinks:
    def __init__(self, page_token_key: bytes, ttl: timedelta) -> None:
        self._signer = LinkSigner(page_token_key, "mlplane model link v1")
        self._ttl = ttl

    def issue(self, principal: Principal, model_id: str, version: int, now: datetime) -> ModelLink:
        expires = now + self._ttl
        token = self._signer.sign(principal, expires, m=model_id, v=version)
        url = LINK_PATH.format(model_id=model_id, version=version, link=token)
        return ModelLink(url, expires)

    def verify(self, token: str, model_id: str, version: int, now: datetime) -> Principal:
        principal, payload = self._signer.verify(token, now)
        if (payload.get("m"), payload.get("v")) != (model_id, version):
            raise link_refused("this download link is for another version; create a new one")
        return principal
