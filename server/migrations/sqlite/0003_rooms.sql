-- Every message belongs to one room; the messages from before rooms were in
-- the only one there was. Ids stay one sequence over all rooms: unique, and
-- strictly increasing within each room as well.
ALTER TABLE messages ADD COLUMN room TEXT NOT NULL DEFAULT 'general';
-- A room's pages and catch-ups read its messages in id order.
CREATE INDEX messages_room_id ON messages (room, id);
