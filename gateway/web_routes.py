"""The web app on the gateway's own origin: `/config.json` and the built files of `web/dist`.

Envoy serves them itself, as direct responses read into memory when it starts: the build is a
couple of megabytes, so no file server process is needed, the app and the API share one origin
(no CORS outside development), and what the gateway already does (request ids, access logs,
TLS in front) applies to the app too. Text files are gzipped once here, at render time, and a
request that accepts gzip gets that copy (no compression work per request). Hashed files under
`assets/` are cached for a year; `index.html` and `config.json` are revalidated every time, so a
rebuild is picked up by the next page load. Any other GET outside `/api/` and the gRPC service
paths is a page of the single-page app: it gets `index.html`.

`/config.json` tells the app how to sign in and what the server accepts: the dev issuer's
sign-in URL (`mlplane token --url`) when no real issuer is configured, else the OpenID Connect
authority and client id for authorization code + PKCE; and the largest upload.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.common.settings import Settings

Json = dict[str, Any]

CONFIG_PATH = "/config.json"
INDEX = "index.html"
_COMPRESSIBLE = (".html", ".js", ".mjs", ".css", ".json", ".svg", ".txt", ".map", ".webmanifest")
_IMMUTABLE = "public, max-age=31536000, immutable"
_REVALIDATE = "no-cache"
# Envoy's own default (4 KiB) is for error pages; a bundle is larger.
_MARGIN = 64 * 1024
_SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    # Same origin only: OpenID Connect's silent renew loads the app in a hidden frame.
    "x-frame-options": "SAMEORIGIN",
}


@dataclass(frozen=True)
class WebFile:
    path: str  # URL path, e.g. /assets/index-3f2a.js
    file: Path
    gzipped: Path | None
    content_type: str
    cache_control: str


def web_config(settings: Settings) -> Json:
    """What the app learns from the server before anyone signs in."""
    oidc: Json | None = None
    if not settings.dev_issuer_enabled and settings.oidc_client_id:
        oidc = {
            "authority": settings.oidc_authority or settings.jwt_issuer,
            "clientId": settings.oidc_client_id,
            "scope": settings.oidc_scope,
        }
    return {
        "devSignIn": settings.dev_issuer_enabled,
        "oidc": oidc,
        "maxModelBytes": settings.max_model_bytes,
    }


def collect_web_files(dist: Path, cache: Path) -> list[WebFile]:
    """Every file of the build, with a gzipped copy of the text ones in `cache`."""
    files: list[WebFile] = []
    cache.mkdir(parents=True, exist_ok=True)
    for file in sorted(p for p in dist.rglob("*") if p.is_file()):
        relative = file.relative_to(dist).as_posix()
        if relative.endswith(".gz"):
            continue
        content_type = mimetypes.guess_type(relative)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type in (
            "application/javascript",
            "application/json",
        ):
            content_type += "; charset=utf-8"
        gzipped = None
        if file.suffix in _COMPRESSIBLE and file.stat().st_size > 1024:
            data = file.read_bytes()
            name = hashlib.sha256(data).hexdigest()[:24] + ".gz"
            gzipped = cache / name
            if not gzipped.exists():
                tmp = gzipped.with_suffix(".tmp")
                tmp.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
                tmp.replace(gzipped)
        immutable = relative.startswith("assets/")
        files.append(
            WebFile(
                path="/" + relative,
                file=file,
                gzipped=gzipped,
                content_type=content_type,
                cache_control=_IMMUTABLE if immutable else _REVALIDATE,
            )
        )
    return files


def _headers(values: dict[str, str]) -> list[Json]:
    return [
        {"header": {"key": key, "value": value}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
        for key, value in values.items()
    ]


def _file_routes(name: str, match: Json, web: WebFile) -> list[Json]:
    headers = {
        "content-type": web.content_type,
        "cache-control": web.cache_control,
        "vary": "accept-encoding",
        **_SECURITY_HEADERS,
    }
    routes: list[Json] = []
    if web.gzipped is not None:
        accepts_gzip = {"name": "accept-encoding", "string_match": {"contains": "gzip"}}
        routes.append(
            {
                "name": f"{name}.gz",
                "match": {**match, "headers": [*match.get("headers", []), accepts_gzip]},
                "direct_response": {"status": 200, "body": {"filename": str(web.gzipped)}},
                "response_headers_to_add": _headers({**headers, "content-encoding": "gzip"}),
            }
        )
    routes.append(
        {
            "name": name,
            "match": match,
            "direct_response": {"status": 200, "body": {"filename": str(web.file)}},
            "response_headers_to_add": _headers(headers),
        }
    )
    return routes


def web_routes(settings: Settings, files: list[WebFile]) -> list[Json]:
    """Routes for `/config.json` and the files; the app's page fallback is `page_routes`."""
    config = json.dumps(web_config(settings), separators=(",", ":"))
    routes: list[Json] = [
        {
            "name": "web-config",
            "match": {"path": CONFIG_PATH},
            "direct_response": {"status": 200, "body": {"inline_string": config}},
            "response_headers_to_add": _headers(
                {"content-type": "application/json", "cache-control": _REVALIDATE}
            ),
        }
    ]
    get = {"name": ":method", "string_match": {"exact": "GET"}}
    for number, web in enumerate(files):
        if web.path == "/" + INDEX:
            continue  # served as every page, below
        routes += _file_routes(f"web-{number}", {"path": web.path, "headers": [get]}, web)
    return routes


def page_routes(files: list[WebFile]) -> list[Json]:
    """Any other GET is a page of the app: index.html (after the API's routes)."""
    index = next((web for web in files if web.path == "/" + INDEX), None)
    if index is None:
        return []
    get = {"name": ":method", "string_match": {"exact": "GET"}}
    return _file_routes("web-pages", {"prefix": "/", "headers": [get]}, index)


def largest_body(files: list[WebFile]) -> int:
    sizes = [web.file.stat().st_size for web in files]
    return max(sizes, default=0) + _MARGIN
