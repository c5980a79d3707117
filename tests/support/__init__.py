"""What several test packages share: the demo-like app, loopback configs, polling."""
