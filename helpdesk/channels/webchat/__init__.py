"""Web chat: public endpoints for a website widget (no provider, no webhook).

The widget starts a conversation, posts messages with a visitor token and reads agent
replies by polling or over SSE; agents answer on the ticket like on any other channel.
"""
