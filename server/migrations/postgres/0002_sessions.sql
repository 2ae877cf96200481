-- Who a resume token stood for, so that a page coming back after a restart
-- gets its nickname again. Only a digest of the token is kept: reading this
-- table does not let anyone become the person.
CREATE TABLE sessions (
    token_digest TEXT PRIMARY KEY,
    nickname     TEXT        NOT NULL,
    saved_at     TIMESTAMPTZ NOT NULL
);
