"""Run the example by hand: the bundled IdP and the FastAPI service, both on loopback.

    python examples/fastapi_service/serve.py [--idp-port 9000] [--api-port 8000]

Then open http://127.0.0.1:8000/docs, click "Authorize", sign in at the IdP (any user name;
pick "Password" first, then try POST /payments to see the step-up challenge).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from app import SCOPES, SWAGGER_CLIENT_ID, create_app

from rs_guard.idp import IdP


def build(idp_url: str, api_url: str) -> tuple[IdP, Any]:
    """The IdP, with Swagger UI registered as a public PKCE client, and the service."""
    idp = IdP(idp_url, dev=True)
    idp.register_client(
        SWAGGER_CLIENT_ID,
        redirect_uris=[f"{api_url}/docs/oauth2-redirect"],
        token_endpoint_auth_method="none",  # a browser app keeps no secret: PKCE instead
        scope=" ".join(SCOPES),
        client_name="Example items API (Swagger UI)",
    )
    return idp, create_app(issuer=idp_url, resource=api_url)


async def main(argv: list[str] | None = None) -> None:
    """Serve both apps until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idp-port", type=int, default=9000)
    parser.add_argument("--api-port", type=int, default=8000)
    args = parser.parse_args(argv)
    idp_url = f"http://127.0.0.1:{args.idp_port}"
    api_url = f"http://127.0.0.1:{args.api_port}"
    idp, api = build(idp_url, api_url)
    servers = [
        uvicorn.Server(uvicorn.Config(idp.app, host="127.0.0.1", port=args.idp_port)),
        uvicorn.Server(uvicorn.Config(api, host="127.0.0.1", port=args.api_port)),
    ]
    print(f"IdP: {idp_url}   Swagger UI: {api_url}/docs")
    await asyncio.gather(*(server.serve() for server in servers))


if __name__ == "__main__":
    asyncio.run(main())
