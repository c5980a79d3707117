"""The session floor: the request's session, the session table, managers, codec."""
