"""Email channel: turning raw RFC 5322 mail into helpdesk messages and back."""
