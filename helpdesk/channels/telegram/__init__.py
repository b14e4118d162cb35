"""Telegram bots: webhook verification, update normalizing, replies via the Bot API."""
