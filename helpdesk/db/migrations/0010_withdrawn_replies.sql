-- A public agent reply whose delivery failed for good is withdrawn as a response: its
-- `agent_reply` event becomes `agent_reply_withdrawn`, kept for the record but never
-- replayed. A retried reply then counts by a new `agent_reply` at its new acceptance,
-- not again at the instant of the attempt that failed.
ALTER TABLE sla_events DROP CONSTRAINT sla_events_type_check;
ALTER TABLE sla_events ADD CONSTRAINT sla_events_type_check CHECK (type IN ('created',
    'customer_message', 'customer_auto_reply', 'agent_reply', 'agent_reply_withdrawn',
    'auto_reply', 'bot_reply', 'note', 'status', 'solved', 'reopened'));
CREATE INDEX sla_events_message_idx ON sla_events (message_id) WHERE message_id IS NOT NULL;
