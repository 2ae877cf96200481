//! Who is online: nicknames, their uniqueness, and coalesced presence diffs.
//!
//! Announcing each join to everyone costs O(people²) frames when many people
//! arrive at once (100 million for 10,000 connections). The roster instead
//! remembers what changed since the last announcement and, once per short
//! interval, turns it into one `presence` diff for everyone: O(people) per
//! interval however many joined. A room bigger than the list limit is
//! announced by count alone; its members would not read a list of thousands
//! anyway, and listing it in every `welcome` would cost O(people²) bytes.
//!
//! Pure data, no I/O: the hub owns a roster behind a lock and does the
//! sending.

use std::collections::{hash_map::Entry, BTreeMap, HashMap};

use app::protocol::{Nickname, Person, Presence, Rename};
use unicode_normalization::UnicodeNormalization;

use crate::client_id::ClientId;

/// A nickname as compared for uniqueness: NFKC-normalised and lowercased,
/// so `Alice`, `ALICE` and a full-width `Ａlice` are one name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NicknameKey(String);

impl NicknameKey {
    pub fn of(nickname: &Nickname) -> Self {
        // NFKC, lowercase, NFKC again: lowercasing can produce text that is
        // no longer normalised (Unicode's NFKC_Casefold does the same dance).
        let folded: String = nickname.as_str().nfkc().collect::<String>().to_lowercase();
        Self(folded.nfkc().collect())
    }
}

/// The nickname is in use by someone else online.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("that nickname is taken by someone online")]
pub struct NicknameTaken;

#[derive(Debug)]
pub struct Roster {
    /// Everyone online, in the order they came.
    people: BTreeMap<ClientId, Nickname>,
    /// Who holds each chosen nickname; the shared default is not held.
    holders: HashMap<NicknameKey, ClientId>,
    default_key: NicknameKey,
    /// For everyone touched since the last diff: their nickname then (`None`:
    /// not online then).
    before: HashMap<ClientId, Option<Nickname>>,
    /// Largest room whose members are listed in `welcome` and diffs.
    list_limit: usize,
    /// Whether the last diff listed the members (the room was small enough).
    listed: bool,
}

impl Roster {
    pub fn new(list_limit: usize) -> Self {
        Self {
            people: BTreeMap::new(),
            holders: HashMap::new(),
            default_key: NicknameKey::of(&Nickname::default()),
            before: HashMap::new(),
            list_limit,
            listed: true,
        }
    }

    pub fn len(&self) -> usize {
        self.people.len()
    }

    pub fn is_empty(&self) -> bool {
        self.people.is_empty()
    }

    pub fn nickname(&self, id: ClientId) -> Option<&Nickname> {
        self.people.get(&id)
    }

    /// Adds someone under the default nickname.
    pub fn join(&mut self, id: ClientId) {
        self.touch(id);
        self.people.insert(id, Nickname::default());
    }

    pub fn leave(&mut self, id: ClientId) {
        self.touch(id);
        if let Some(nickname) = self.people.remove(&id) {
            self.release(id, &nickname);
        }
    }

    /// Gives `id` a new nickname, unless someone else online holds it.
    pub fn rename(&mut self, id: ClientId, nickname: Nickname) -> Result<(), NicknameTaken> {
        let key = NicknameKey::of(&nickname);
        if key != self.default_key {
            match self.holders.entry(key) {
                Entry::Occupied(holder) if *holder.get() != id => return Err(NicknameTaken),
                Entry::Occupied(_) => {}
                Entry::Vacant(free) => {
                    free.insert(id);
                }
            }
        }
        self.touch(id);
        if let Some(old) = self.people.insert(id, nickname.clone()) {
            if NicknameKey::of(&old) != NicknameKey::of(&nickname) {
                self.release(id, &old);
            }
        }
        Ok(())
    }

    /// The list for a `welcome`: everyone, or nobody in a room too big to list.
    pub fn listing(&self) -> Vec<Person> {
        if self.people.len() > self.list_limit {
            return Vec::new();
        }
        self.people
            .iter()
            .map(|(id, nickname)| person(*id, nickname))
            .collect()
    }

    /// What changed since the last call, as one `presence` payload; `None`
    /// if nothing did.
    pub fn take_diff(&mut self) -> Option<Presence> {
        if self.before.is_empty() {
            return None;
        }
        let touched = std::mem::take(&mut self.before);
        let online = self.people.len() as u64;
        if self.people.len() > self.list_limit {
            self.listed = false;
            return Some(Presence {
                online,
                ..Presence::default()
            });
        }
        if !self.listed {
            self.listed = true;
            return Some(Presence {
                online,
                people: Some(self.listing()),
                ..Presence::default()
            });
        }
        let mut diff = Presence {
            online,
            ..Presence::default()
        };
        let mut touched: Vec<_> = touched.into_iter().collect();
        touched.sort_by_key(|(id, _)| *id);
        for (id, before) in touched {
            match (before, self.people.get(&id)) {
                (None, Some(now)) => diff.joined.push(person(id, now)),
                (Some(then), None) => diff.left.push(person(id, &then)),
                (Some(then), Some(now)) if then != *now => diff.renamed.push(Rename {
                    id: id.get(),
                    previous: then.to_string(),
                    nickname: now.to_string(),
                }),
                _ => {}
            }
        }
        let changed = !(diff.joined.is_empty() && diff.left.is_empty() && diff.renamed.is_empty());
        changed.then_some(diff)
    }

    /// Remembers how `id` was before this interval's first change to it.
    fn touch(&mut self, id: ClientId) {
        let now = self.people.get(&id).cloned();
        self.before.entry(id).or_insert(now);
    }

    fn release(&mut self, id: ClientId, nickname: &Nickname) {
        if let Entry::Occupied(holder) = self.holders.entry(NicknameKey::of(nickname)) {
            if *holder.get() == id {
                holder.remove();
            }
        }
    }
}

fn person(id: ClientId, nickname: &Nickname) -> Person {
    Person {
        id: id.get(),
        nickname: nickname.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(raw: &str) -> Nickname {
        Nickname::parse(raw).unwrap()
    }

    fn id(n: u64) -> ClientId {
        ClientId::from(n)
    }

    fn p(n: u64, nickname: &str) -> Person {
        Person {
            id: n,
            nickname: nickname.into(),
        }
    }

    #[test]
    fn nicknames_compare_case_insensitively_after_nfkc() {
        let alice = NicknameKey::of(&name("Alice"));
        assert_eq!(NicknameKey::of(&name("ALICE")), alice);
        assert_eq!(NicknameKey::of(&name("Ａlice")), alice, "full-width A");
        assert_eq!(NicknameKey::of(&name("ａｌｉｃｅ")), alice);
        assert_ne!(NicknameKey::of(&name("Alice2")), alice);
        // The ﬁ ligature folds to "fi".
        assert_eq!(
            NicknameKey::of(&name("ﬁona")),
            NicknameKey::of(&name("Fiona"))
        );
    }

    #[test]
    fn a_nickname_in_use_is_refused_until_its_holder_lets_go() {
        let mut roster = Roster::new(100);
        roster.join(id(1));
        roster.join(id(2));
        roster.rename(id(1), name("Alice")).unwrap();
        assert_eq!(roster.rename(id(2), name("ALICE")), Err(NicknameTaken));
        assert_eq!(roster.rename(id(2), name("Ａlice")), Err(NicknameTaken));
        // Its holder may change its case.
        roster.rename(id(1), name("alice")).unwrap();
        roster.rename(id(1), name("bob")).unwrap();
        roster.rename(id(2), name("Alice")).unwrap();
        assert_eq!(roster.rename(id(1), name("alice")), Err(NicknameTaken));
        roster.leave(id(2));
        roster.rename(id(1), name("alice")).unwrap();
    }

    #[test]
    fn everyone_may_be_anonymous() {
        let mut roster = Roster::new(100);
        for n in 1..=3 {
            roster.join(id(n));
            roster.rename(id(n), name("anonymous")).unwrap();
        }
        assert_eq!(roster.len(), 3);
    }

    #[test]
    fn changes_within_an_interval_coalesce_into_one_diff() {
        let mut roster = Roster::new(100);
        roster.join(id(1));
        roster.join(id(2));
        roster.rename(id(2), name("bob")).unwrap();
        roster.join(id(3));
        roster.leave(id(3));
        let diff = roster.take_diff().unwrap();
        assert_eq!(diff.online, 2);
        assert_eq!(diff.joined, [p(1, "Anonymous"), p(2, "bob")]);
        assert!(diff.left.is_empty() && diff.renamed.is_empty());
        assert_eq!(roster.take_diff(), None, "nothing new");

        roster.rename(id(2), name("robert")).unwrap();
        roster.rename(id(1), name("alice")).unwrap();
        roster.rename(id(1), name("Anonymous")).unwrap();
        roster.leave(id(2));
        let diff = roster.take_diff().unwrap();
        assert_eq!(diff.left, [p(2, "bob")], "left under the name others knew");
        assert!(diff.joined.is_empty() && diff.renamed.is_empty());

        roster.rename(id(1), name("alice")).unwrap();
        let diff = roster.take_diff().unwrap();
        assert_eq!(
            diff.renamed,
            [Rename {
                id: 1,
                previous: "Anonymous".into(),
                nickname: "alice".into()
            }]
        );
    }

    #[test]
    fn a_room_too_big_to_list_is_counted_then_listed_again_when_it_shrinks() {
        let mut roster = Roster::new(2);
        roster.join(id(1));
        roster.join(id(2));
        assert_eq!(roster.listing().len(), 2);
        roster.take_diff();
        roster.join(id(3));
        assert!(roster.listing().is_empty());
        let diff = roster.take_diff().unwrap();
        assert_eq!((diff.online, diff.joined.len(), diff.people), (3, 0, None));
        roster.leave(id(3));
        let diff = roster.take_diff().unwrap();
        assert_eq!(
            diff.people,
            Some(vec![p(1, "Anonymous"), p(2, "Anonymous")])
        );
        roster.leave(id(2));
        assert_eq!(roster.take_diff().unwrap().left, [p(2, "Anonymous")]);
    }
}
