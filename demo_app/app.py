"""A small FastAPI app whose cart and counter live in a clustersession session."""

from __future__ import annotations

import html
import os
import secrets
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from clustersession import ClusterConfig, ClusterSessionMiddleware, Session

config = ClusterConfig.from_env()
app = FastAPI(title="clustersession demo")
app.add_middleware(
    ClusterSessionMiddleware,
    secret_key=config.secret or os.environ.get("DEMO_SECRET_KEY") or secrets.token_urlsafe(32),
    config=config,
)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>clustersession demo</title>
<style>
 body {{ font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto;
        padding: 0 1rem; }}
 code {{ background: #f2f2f2; padding: 0 .3em; word-break: break-all; }}
 form {{ display: inline; }}
</style></head>
<body>
<h1>clustersession demo</h1>
<p>Served by node <strong>{node}</strong>. Session <code>{session_id}</code>
({state}).</p>
<p>Visits in this session: <strong>{visits}</strong></p>
<h2>Cart</h2>
<ul>{items}</ul>
<form method="post" action="/cart"><input name="item" placeholder="an item" required>
<button>Add</button></form>
<form method="post" action="/logout"><button>Forget me</button></form>
</body></html>
"""


@app.get("/", response_class=HTMLResponse)
def index(request: Request) -> str:
    session = request.session
    assert isinstance(session, Session)
    session["visits"] = session.get("visits", 0) + 1
    items = "".join(f"<li>{html.escape(item)}</li>" for item in session.get("cart", []))
    return PAGE.format(
        node=html.escape(config.jvm_route),
        session_id=html.escape(session.id),
        state="new" if session.is_new else "existing",
        visits=session["visits"],
        items=items or "<li><em>empty</em></li>",
    )


@app.post("/cart")
async def add_to_cart(request: Request) -> RedirectResponse:
    # A plain urlencoded body: no python-multipart needed for one field.
    fields = parse_qs((await request.body()).decode("utf-8", "replace"))
    item = fields.get("item", [""])[0].strip()
    if item:
        request.session.setdefault("cart", []).append(item[:100])
    return RedirectResponse("/", status_code=303)


@app.post("/logout")
def logout(request: Request) -> RedirectResponse:
    session = request.session
    assert isinstance(session, Session)
    session.invalidate()
    return RedirectResponse("/", status_code=303)


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok", "node": config.jvm_route}
