"""Append-only security audit: every denial and every privileged change."""
