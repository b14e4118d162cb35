"""Omnichannel helpdesk and ticketing backend."""

__version__ = "0.1.0"
