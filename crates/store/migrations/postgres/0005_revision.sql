-- The store's revision. Keep in step with the other backend's 0005_revision.sql: same statements.
-- Every audited write adds one to it as the last statement of its transaction, so the row lock
-- (PostgreSQL) orders the increments as their commits: an instance that read revision n and
-- reads n again knows that no audited write committed in between, and skips re-reading its
-- cached keys and policies.
CREATE TABLE store_revision (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    revision BIGINT NOT NULL
);

INSERT INTO store_revision (id, revision) VALUES (1, 0);
