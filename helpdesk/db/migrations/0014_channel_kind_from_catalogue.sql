-- Which chat kinds an account may have is declared once, in helpdesk/channels/catalogue.py,
-- and checked by the API (issue 20: adding a channel = its package + one catalogue entry).
-- The CHECK listing the kinds made every new channel a migration as well.
ALTER TABLE channel_accounts DROP CONSTRAINT IF EXISTS channel_accounts_kind_check;
