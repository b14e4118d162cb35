"""The agent and supervisor console: static pages served by the API, built on its
public endpoints only (anything the console needs is an API endpoint first)."""
