"""`mlplane token --url`: the web app's sign-in URL for a dev token, on the running gateway."""

from __future__ import annotations

from urllib.parse import urlsplit

import jwt

from tests.stack_runner import RunningStack, run_cli


def test_the_sign_in_url_carries_the_token_in_its_fragment(stack: RunningStack) -> None:
    done = run_cli(
        stack.state_dir, "token", "--role", "model_approver", "--subject", "bob", "--url"
    )
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip()
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == stack.gateway_url
    assert (parts.path, parts.query) == ("/", "")  # the token is never sent to a server
    assert parts.fragment.startswith("token=")
    claims = jwt.decode(parts.fragment.removeprefix("token="), options={"verify_signature": False})
    assert (claims["sub"], claims["roles"]) == ("bob", ["model_approver"])
