-- Indexes on the foreign keys that point at customers and had none.
--
-- Merging two customers moves the source's messages, conversations and surveys, then
-- deletes the source row; that DELETE's foreign-key checks (and the moves themselves)
-- scanned these tables whole. Measured with 2,000,000 messages: a merge took 508 ms
-- (median) before and 6.7 ms after; building the messages index took 0.5 s.
-- Outbound messages have no customer author, so the messages index skips them.

CREATE INDEX messages_author_customer_idx ON messages (author_customer_id)
    WHERE author_customer_id IS NOT NULL;
CREATE INDEX conversations_customer_idx ON conversations (customer_id);
CREATE INDEX csat_surveys_customer_idx ON csat_surveys (customer_id);
