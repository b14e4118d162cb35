"""IMAP polling: the protocol, one session, the mailbox cursor and the poller."""
