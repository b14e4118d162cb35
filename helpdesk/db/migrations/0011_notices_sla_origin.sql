-- A ticket opened by a channel notice nobody wrote (a reaction, a service message on a
-- conversation without a ticket) records its `created` event with origin `notice`: no
-- first response is owed (docs/sla.md 1.4, helpdesk/sla/clocks.py).
ALTER TABLE sla_events DROP CONSTRAINT sla_events_origin_check;
ALTER TABLE sla_events ADD CONSTRAINT sla_events_origin_check
    CHECK (origin IN ('customer', 'agent', 'notice'));
