"""Tickets: the conversation with a customer, its messages, events and changes."""
