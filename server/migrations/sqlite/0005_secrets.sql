-- Random secrets made once per database, shared by every process that uses
-- it and kept across restarts: the server signs its resume tokens with one,
-- so that it only ever takes back a token it issued.
CREATE TABLE secrets (
    name  TEXT PRIMARY KEY,
    -- Hex.
    value TEXT NOT NULL
);
