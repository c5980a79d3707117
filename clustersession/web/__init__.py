"""The web floor: ASGI middleware and cookie handling."""
