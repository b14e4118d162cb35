"""Messenger, Instagram and WhatsApp Cloud API (Meta)."""
