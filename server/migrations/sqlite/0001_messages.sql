-- AUTOINCREMENT: an id is never reused, even after the newest rows are
-- deleted, so a client holding "the last id I saw" can never be confused.
CREATE TABLE messages (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    -- RFC 3339 UTC with milliseconds, as sent to clients.
    sent_at   TEXT    NOT NULL,
    sender    BIGINT  NOT NULL,
    nickname  TEXT    NOT NULL,
    text      TEXT    NOT NULL,
    client_id TEXT    NULL UNIQUE
);
