"""TCP transport: frames, authenticated connections, the receiver and the sender."""
