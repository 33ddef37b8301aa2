"""Vendor-published payloads fed through each native adapter's real listing loop."""
