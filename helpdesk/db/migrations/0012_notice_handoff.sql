-- SLA notices are delivered like the outbox's messages: claimed with a lease, their
-- hand-off point (right before SMTP DATA or the Slack POST) recorded durably, and an
-- attempt that dies or loses its connection after it ends 'possibly_sent' instead of
-- being sent again (a dropped SMTP connection after DATA sent the same notice twice).

ALTER TABLE sla_notices DROP CONSTRAINT sla_notices_status_check;
ALTER TABLE sla_notices ADD CONSTRAINT sla_notices_status_check
    CHECK (status IN ('pending', 'sending', 'sent', 'possibly_sent', 'failed'));
ALTER TABLE sla_notices ADD COLUMN locked_until timestamptz;
ALTER TABLE sla_notices ADD COLUMN handed_off_at timestamptz;
CREATE INDEX sla_notices_sending_idx ON sla_notices (locked_until) WHERE status = 'sending';
