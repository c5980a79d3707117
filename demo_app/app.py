"""The demo: a cart and a counter kept in a replicated session, and the cluster around it.

Every page says which node served it, the session id and its route, and who the
members are; kill the node that served you and reload through the balancer (or
another port): the cart is still there, and the id's route now names the new node.
Configured from ``CLUSTERSESSION_*`` variables (``python -m demo_app`` sets them).
"""

from __future__ import annotations

import html
import os
import secrets
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from clustersession import ClusterConfig, ClusterSessionMiddleware
from clustersession.web.fastapi import ClusterDep, SessionDep

config = ClusterConfig.from_env()
app = FastAPI(title="clustersession demo")
app.add_middleware(
    ClusterSessionMiddleware,
    secret_key=config.secret or os.environ.get("DEMO_SECRET_KEY") or secrets.token_urlsafe(32),
    config=config,
)

STYLE = """
 body { font-family: system-ui, sans-serif; max-width: 44rem; margin: 1.5rem auto;
        padding: 0 1rem; line-height: 1.4; }
 .node { font-size: 1.4rem; padding: .6rem 1rem; border-radius: .5rem; background: #e8f1ff; }
 code { background: #f2f2f2; padding: 0 .3em; word-break: break-all; }
 ul.members li.me { font-weight: bold; }
 form { display: inline-block; margin: .2rem .4rem .2rem 0; }
 input, button { font-size: 1rem; padding: .35rem .6rem; }
 footer { margin-top: 2rem; color: #666; font-size: .9rem; }
"""


@app.get("/", response_class=HTMLResponse)
def index(session: SessionDep, cluster: ClusterDep) -> str:
    session["visits"] = session.get("visits", 0) + 1
    cart = session.get("cart", [])
    view = cluster.status()  # members and counters, as the status page sees them
    esc = html.escape
    items = "".join(f"<li>{esc(str(item))}</li>" for item in cart) or "<li><em>empty</em></li>"
    members = [f'<li class="me">{esc(config.jvm_route)} (this node)</li>']
    members += [
        f"<li>{esc(m['route'])} &middot; {esc(m['host'])}:{m['port']} &middot; "
        f"up {m['alive_s']:.0f} s</li>"
        for m in view["members"]
    ]
    token, _, route = session.id.partition(".")
    state = "new" if session.is_new else "existing"
    mode = "replicated" if view["distributable"] else "local only"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>clustersession demo: {esc(config.jvm_route)}</title><style>{STYLE}</style></head>
<body>
<h1>clustersession demo</h1>
<p class="node">Served by <strong id="node">{esc(config.jvm_route)}</strong></p>
<p>Session <code id="session-id">{esc(token)}.<strong>{esc(route)}</strong></code> ({state},
{mode}); visits in this session: <strong id="visits">{session["visits"]}</strong></p>
<h2>Cart</h2>
<ul id="cart">{items}</ul>
<form method="post" action="/cart"><input name="item" placeholder="an item" required
 aria-label="item"> <button>Add to cart</button></form>
<form method="post" action="/logout"><button>Log out (invalidate)</button></form>
<h2>Cluster</h2>
<ul class="members" id="members">{"".join(members)}</ul>
<p><a href="/cluster-status">Cluster status</a> (members, replication counters)</p>
<footer>Kill the node that served you, then reload: the cart stays, the route changes.</footer>
</body></html>
"""


@app.post("/cart")
async def add_to_cart(request: Request, session: SessionDep) -> RedirectResponse:
    # A plain urlencoded body: no python-multipart needed for one field.
    fields = parse_qs((await request.body()).decode("utf-8", "replace"))
    item = fields.get("item", [""])[0].strip()
    if item:
        session.setdefault("cart", []).append(item[:100])
    return RedirectResponse("/", status_code=303)


@app.post("/logout")
def logout(session: SessionDep) -> RedirectResponse:
    session.invalidate()
    return RedirectResponse("/", status_code=303)


@app.get("/api/session")
def session_json(session: SessionDep) -> dict[str, Any]:
    return {"node": config.jvm_route, "id": session.id if session else None, "data": dict(session)}
