"""Slack workspaces: Events API verification, message normalizing, replies via the Web API."""
