"""The HTML the authorization endpoint shows: the sign-in form and refusal pages.

Self-contained (no external assets, inline style only) and locked down by headers: no caching,
no framing, no referrer, a CSP that allows nothing but the inline style.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from starlette.responses import HTMLResponse

from .._users import ACR_AMR, ACR_LABELS

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:34rem;margin:2rem auto;padding:0 1rem;"
    "line-height:1.5;color:#111;background:#fff}label{display:block;margin-top:1rem;"
    "font-weight:600}input,select,button{font-size:1rem;padding:.45rem;margin-top:.25rem}"
    "button{margin:1.25rem .5rem 0 0}fieldset{margin-top:1rem}.error{color:#a00000}"
)


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    """A complete page around `body` (HTML, already escaped)."""
    doc = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)} - rs_guard test IdP</title><style>{STYLE}</style></head>"
        f"<body><main><h1>{html.escape(title)}</h1>{body}</main></body></html>"
    )
    return HTMLResponse(doc, status_code=status, headers=PAGE_HEADERS)


def error_page(description: str) -> HTMLResponse:
    """A refusal that must not be redirected (bad client_id or redirect_uri)."""
    body = f'<p class="error" role="alert">{html.escape(description)}</p>'
    return page("Authorization request refused", body, 400)


def login_page(
    *,
    action: str,
    form_id: str,
    client_name: str,
    scopes: Sequence[str],
    user: str,
    acr: str,
    phone: bool,
    error: str | None,
) -> HTMLResponse:
    """The sign-in and consent form: `acr` is preselected, `phone` adds phone verification."""
    name = html.escape(client_name)
    items = "".join(f"<li>{html.escape(s)}</li>" for s in scopes) or "<li>(no scopes)</li>"
    options = "".join(
        f'<option value="{value}"{" selected" if value == acr else ""}>'
        f"{html.escape(ACR_LABELS[value])} ({value})</option>"
        for value in ACR_AMR
    )
    phone_fields = ""
    if phone:
        phone_fields = (
            "<fieldset><legend>Phone verification required</legend>"
            '<label for="phone_number">Phone number</label>'
            '<input id="phone_number" name="phone_number" type="tel" autocomplete="tel">'
            '<label><input type="checkbox" name="phone_ok" value="1"> '
            "I entered the code sent to this number</label></fieldset>"
        )
    err = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    body = (
        f"{err}<p><strong>{name}</strong> asks to access your account with these scopes:</p>"
        f"<ul>{items}</ul>"
        f'<form method="post" action="{html.escape(action)}">'
        f'<input type="hidden" name="form_id" value="{form_id}">'
        '<label for="login_user">User name</label>'
        f'<input id="login_user" name="login_user" value="{html.escape(user)}" required '
        'autocomplete="username" autofocus>'
        '<label for="login_acr">Authentication method</label>'
        f'<select id="login_acr" name="login_acr">{options}</select>{phone_fields}'
        '<div><button type="submit" name="decision" value="approve">Sign in and allow</button>'
        '<button type="submit" name="decision" value="deny">Deny</button></div></form>'
    )
    return page("Sign in", body)
