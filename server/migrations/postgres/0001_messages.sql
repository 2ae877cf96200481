CREATE TABLE messages (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sent_at   TIMESTAMPTZ NOT NULL,
    sender    BIGINT      NOT NULL,
    nickname  TEXT        NOT NULL,
    text      TEXT        NOT NULL,
    client_id TEXT        NULL UNIQUE
);
