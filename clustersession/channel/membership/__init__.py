"""Membership: who is in the group (multicast heartbeats, static lists, DNS)."""
