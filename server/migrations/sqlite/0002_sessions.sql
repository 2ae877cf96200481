-- Who a resume token stood for, so that a page coming back after a restart
-- gets its nickname again. Only a digest of the token is kept: reading this
-- table does not let anyone become the person.
CREATE TABLE sessions (
    token_digest TEXT PRIMARY KEY,
    nickname     TEXT NOT NULL,
    -- RFC 3339 UTC, when the nickname was last chosen.
    saved_at     TEXT NOT NULL
);
