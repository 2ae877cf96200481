-- A client's message id is only unique for its sender: the column now holds
-- "<sender>:<client_id>", the sender being a digest of their resume token,
-- so that someone else's choice of id can never make the server take your
-- message for one it already has. Earlier rows keep their bare id (which
-- never contains ':', so it cannot collide with a scoped one).
ALTER TABLE messages RENAME COLUMN client_id TO client_key;
