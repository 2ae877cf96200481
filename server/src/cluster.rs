//! Who the other server processes have online, room by room.
//!
//! With a broker, every process announces, for each room whose roster
//! changed, everyone it has in that room (or only how many, in a room too
//! big to list). This keeps the latest announcement of each other process
//! and tells what changed, so the hub can pass it on to its own members as
//! ordinary `presence` frames and count everyone in `welcome` and the room
//! list. A process that stops announcing is forgotten after a timeout, and
//! its people leave.
//!
//! Pure data, no I/O: the hub owns it behind a lock.

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use app::protocol::{Nickname, Person, Presence, Rename, RoomName};

use crate::presence::NicknameKey;

/// A server process, as it calls itself on the broker.
pub type NodeId = u64;

/// One process's people in one room, as it last announced them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Occupants {
    pub online: u64,
    /// Everyone, by id; empty when the room is too big to list.
    pub people: BTreeMap<u64, String>,
}

#[derive(Debug, Default)]
pub struct Cluster {
    rooms: HashMap<RoomName, HashMap<NodeId, Occupants>>,
    /// When each other process was last heard from.
    heard: HashMap<NodeId, Instant>,
}

impl Cluster {
    /// `node` is alive; whether it was known.
    pub fn heard(&mut self, node: NodeId, now: Instant) -> bool {
        self.heard.insert(node, now).is_some()
    }

    /// `node` now has `occupants` in `room`: what changed for this room's
    /// members, with `online` left for the caller to fill in.
    pub fn update(
        &mut self,
        node: NodeId,
        room: RoomName,
        occupants: Occupants,
        now: Instant,
    ) -> Presence {
        self.heard(node, now);
        let nodes = self.rooms.entry(room.clone()).or_default();
        let before = if occupants.online == 0 {
            nodes.remove(&node)
        } else {
            nodes.insert(node, occupants.clone())
        }
        .unwrap_or_default();
        if nodes.is_empty() {
            self.rooms.remove(&room);
        }
        diff(&room, &before, &occupants)
    }

    /// Forgets the processes not heard from for `timeout`: for each room
    /// they had people in, what changed.
    pub fn expire(&mut self, timeout: Duration, now: Instant) -> Vec<Presence> {
        let silent: Vec<NodeId> = self
            .heard
            .iter()
            .filter(|(_, &heard)| now.duration_since(heard) > timeout)
            .map(|(&node, _)| node)
            .collect();
        let mut changes = Vec::new();
        for node in silent {
            self.heard.remove(&node);
            let rooms: Vec<RoomName> = self
                .rooms
                .iter()
                .filter(|(_, nodes)| nodes.contains_key(&node))
                .map(|(room, _)| room.clone())
                .collect();
            for room in rooms {
                changes.push(self.update(node, room, Occupants::default(), now));
            }
            self.heard.remove(&node);
        }
        changes
    }

    /// How many people the other processes have in `room`.
    pub fn online(&self, room: &RoomName) -> u64 {
        self.rooms
            .get(room)
            .map_or(0, |nodes| nodes.values().map(|o| o.online).sum())
    }

    /// The people the other processes list in `room`.
    pub fn people(&self, room: &RoomName) -> Vec<Person> {
        let Some(nodes) = self.rooms.get(room) else {
            return Vec::new();
        };
        nodes
            .values()
            .flat_map(|occupants| occupants.people.iter())
            .map(|(&id, nickname)| Person {
                id,
                nickname: nickname.clone(),
            })
            .collect()
    }

    /// Whether someone on another process has `nickname` in `room` (the
    /// shared default is never taken).
    pub fn has_nickname(&self, room: &RoomName, nickname: &Nickname) -> bool {
        if nickname.is_default() {
            return false;
        }
        let key = NicknameKey::of(nickname);
        self.rooms.get(room).is_some_and(|nodes| {
            nodes.values().any(|occupants| {
                occupants.people.values().any(|other| {
                    Nickname::parse(other).is_ok_and(|other| NicknameKey::of(&other) == key)
                })
            })
        })
    }

    /// Every room the other processes have people in, with how many.
    pub fn counts(&self) -> impl Iterator<Item = (&RoomName, u64)> {
        self.rooms
            .iter()
            .map(|(room, nodes)| (room, nodes.values().map(|o| o.online).sum()))
    }
}

/// The `presence` diff from `before` to `after` in `room`; `online` is 0.
fn diff(room: &RoomName, before: &Occupants, after: &Occupants) -> Presence {
    let person = |id: u64, nickname: &String| Person {
        id,
        nickname: nickname.clone(),
    };
    let mut presence = Presence {
        room: room.to_string(),
        ..Presence::default()
    };
    for (&id, nickname) in &after.people {
        match before.people.get(&id) {
            None => presence.joined.push(person(id, nickname)),
            Some(previous) if previous != nickname => presence.renamed.push(Rename {
                id,
                previous: previous.clone(),
                nickname: nickname.clone(),
            }),
            Some(_) => {}
        }
    }
    for (&id, nickname) in &before.people {
        if !after.people.contains_key(&id) {
            presence.left.push(person(id, nickname));
        }
    }
    presence
}

#[cfg(test)]
mod tests {
    use super::*;

    fn occupants(people: &[(u64, &str)]) -> Occupants {
        Occupants {
            online: people.len() as u64,
            people: people.iter().map(|&(id, n)| (id, n.to_owned())).collect(),
        }
    }

    fn rust() -> RoomName {
        RoomName::parse("rust").unwrap()
    }

    #[test]
    fn an_update_tells_who_joined_left_and_renamed() {
        let mut cluster = Cluster::default();
        let now = Instant::now();
        let first = cluster.update(7, rust(), occupants(&[(1, "ann"), (2, "bo")]), now);
        assert_eq!(first.joined.len(), 2);
        assert_eq!(cluster.online(&rust()), 2);
        let next = cluster.update(7, rust(), occupants(&[(1, "anna"), (3, "cy")]), now);
        assert_eq!(
            next.joined,
            [Person {
                id: 3,
                nickname: "cy".into()
            }]
        );
        assert_eq!(
            next.left,
            [Person {
                id: 2,
                nickname: "bo".into()
            }]
        );
        assert_eq!(next.renamed[0].nickname, "anna");
        assert_eq!(next.room, "rust");
        assert_eq!(cluster.people(&rust()).len(), 2);
    }

    #[test]
    fn counts_add_up_over_processes_and_an_empty_room_is_forgotten() {
        let mut cluster = Cluster::default();
        let now = Instant::now();
        cluster.update(1, rust(), occupants(&[(1, "a")]), now);
        let crowd = Occupants {
            online: 5000,
            people: BTreeMap::new(),
        };
        cluster.update(2, rust(), crowd, now);
        assert_eq!(cluster.online(&rust()), 5001);
        cluster.update(1, rust(), Occupants::default(), now);
        cluster.update(2, rust(), Occupants::default(), now);
        assert_eq!(cluster.counts().count(), 0);
    }

    #[test]
    fn a_silent_process_is_forgotten_and_its_people_leave() {
        let mut cluster = Cluster::default();
        let start = Instant::now();
        cluster.update(1, rust(), occupants(&[(1, "a")]), start);
        cluster.update(2, rust(), occupants(&[(2, "b")]), start);
        let later = start + Duration::from_secs(4);
        cluster.heard(2, later);
        let gone = cluster.expire(Duration::from_secs(3), later);
        assert_eq!(gone.len(), 1);
        assert_eq!(
            gone[0].left,
            [Person {
                id: 1,
                nickname: "a".into()
            }]
        );
        assert_eq!(cluster.online(&rust()), 1);
    }

    #[test]
    fn nicknames_elsewhere_count_as_taken_whatever_their_case() {
        let mut cluster = Cluster::default();
        cluster.update(1, rust(), occupants(&[(1, "Alice")]), Instant::now());
        assert!(cluster.has_nickname(&rust(), &Nickname::parse("ALICE").unwrap()));
        assert!(!cluster.has_nickname(&RoomName::general(), &Nickname::parse("alice").unwrap()));
        assert!(!cluster.has_nickname(&rust(), &Nickname::default()));
    }
}
