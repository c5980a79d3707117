"""The clustersession demo app."""
