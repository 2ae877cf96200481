//! Where each client goes: the server process it connects to, and the room
//! it joins (`fanout --rooms`).
//!
//! Client `i` is in room `i mod R` (`bench-0` … `bench-{R-1}`), as the
//! `j = i div R`-th client of that room, and connects to server
//! `(room + j) mod S`. So each room's clients alternate between the
//! processes, the first clients of consecutive rooms (the senders, since the
//! first clients send) alternate too, and without rooms (`R = 1`) it is plain
//! round-robin: client `i` on server `i mod S`.

/// Prefix of the rooms' names: `bench-0`, `bench-1`, ...
pub const ROOM_PREFIX: &str = "bench-";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Rooms the clients are spread over; `None`: every client stays in the
    /// server's default room.
    rooms: Option<usize>,
    /// Server processes (`--addr` values).
    servers: usize,
}

impl Layout {
    pub fn new(rooms: Option<usize>, servers: usize) -> Self {
        assert!(servers > 0, "at least one server");
        assert!(rooms != Some(0), "at least one room");
        Self { rooms, servers }
    }

    /// Whether clients join named rooms.
    pub fn has_rooms(&self) -> bool {
        self.rooms.is_some()
    }

    /// Server processes.
    pub fn servers(&self) -> usize {
        self.servers
    }

    /// Rooms, counting the default room as one.
    pub fn room_count(&self) -> usize {
        self.rooms.unwrap_or(1)
    }

    /// The room number of client (or sender) `client`.
    pub fn room_of(&self, client: usize) -> usize {
        client % self.room_count()
    }

    /// The name of room `room`, or `None` for the default room.
    pub fn room_name(&self, room: usize) -> Option<String> {
        self.rooms.map(|_| format!("{ROOM_PREFIX}{room}"))
    }

    /// The place of `client` among its room's clients (and of a sender among
    /// its room's senders, since the senders are the first clients).
    pub fn rank_in_room(&self, client: usize) -> usize {
        client / self.room_count()
    }

    /// Which server (index into `--addr`) client `client` connects to.
    pub fn server_of(&self, client: usize) -> usize {
        (self.room_of(client) + self.rank_in_room(client)) % self.servers
    }

    /// How many of the first `count` clients are in room `room`: the room's
    /// clients when `count` is every client, its senders when it is the
    /// senders.
    pub fn in_room(&self, count: usize, room: usize) -> usize {
        let rooms = self.room_count();
        count / rooms + usize::from(room < count % rooms)
    }

    /// The `rank`-th client (or sender) of room `room`.
    pub fn client(&self, room: usize, rank: usize) -> usize {
        room + rank * self.room_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_rooms_clients_go_round_robin() {
        let layout = Layout::new(None, 3);
        let servers: Vec<usize> = (0..7).map(|i| layout.server_of(i)).collect();
        assert_eq!(servers, [0, 1, 2, 0, 1, 2, 0]);
        assert_eq!(layout.room_name(0), None);
        assert_eq!(layout.in_room(7, 0), 7);
        assert_eq!(layout.rank_in_room(5), 5);
    }

    #[test]
    fn rooms_are_spread_evenly_and_each_spans_every_server() {
        let layout = Layout::new(Some(4), 2);
        // 10 clients in 4 rooms: rooms 0 and 1 get 3, rooms 2 and 3 get 2.
        let sizes: Vec<usize> = (0..4).map(|room| layout.in_room(10, room)).collect();
        assert_eq!(sizes, [3, 3, 2, 2]);
        assert_eq!(layout.room_name(3).as_deref(), Some("bench-3"));
        // Room 0 is clients 0, 4, 8; room 1 is 1, 5, 9.
        assert_eq!(layout.client(0, 2), 8);
        assert_eq!(layout.rank_in_room(9), 2);
        let servers = |room: usize| -> Vec<usize> {
            (0..layout.in_room(10, room))
                .map(|rank| layout.server_of(layout.client(room, rank)))
                .collect()
        };
        assert_eq!(servers(0), [0, 1, 0]);
        assert_eq!(servers(1), [1, 0, 1]);
        // The first client of each room (the senders) alternate too.
        let first: Vec<usize> = (0..4).map(|i| layout.server_of(i)).collect();
        assert_eq!(first, [0, 1, 0, 1]);
        // And the servers share the clients evenly.
        let on_first = (0..10).filter(|&i| layout.server_of(i) == 0).count();
        assert_eq!(on_first, 5);
    }

    #[test]
    fn an_even_number_of_rooms_still_spans_both_servers() {
        // With plain round-robin (i mod 2) and 1,000 rooms (i mod 1,000),
        // every room would sit on one server.
        let layout = Layout::new(Some(1_000), 2);
        for room in [0, 1, 999] {
            let on: Vec<usize> = (0..10)
                .map(|rank| layout.server_of(layout.client(room, rank)))
                .collect();
            assert_eq!(
                on.iter().filter(|&&server| server == 0).count(),
                5,
                "{on:?}"
            );
        }
    }
}
