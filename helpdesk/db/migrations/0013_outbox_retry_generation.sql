-- An agent's retry of a failed delivery gives it a fresh set of attempts (with backoff)
-- instead of one last one. `attempts` keeps counting over the row's whole life, because
-- arq job ids and the fencing of every write after a claim are derived from it (a reused
-- job id is refused by arq while it keeps the old result); `attempts_base` is the count
-- at the last retry, so `attempts - attempts_base` is what the limit and backoff see.

ALTER TABLE outbox ADD COLUMN attempts_base integer NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD CONSTRAINT outbox_attempts_base_check
    CHECK (attempts_base >= 0 AND attempts_base <= attempts);
