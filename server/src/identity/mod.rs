//! Who a connection is: the person behind a resume token.
//!
//! Every `welcome` carries a fresh [`ResumeToken`]. A client that connects
//! again and shows it gets the same person back: the same id and nickname,
//! with no leave and join for anyone to see. A person whose connection
//! dropped is *away*: still listed, nickname reserved, until they come back
//! or a grace period runs out. The newest connection showing a token wins;
//! the one it displaces is closed.
//!
//! How many people may be away is capped in total and per client address
//! ([`ClientNet`]): connecting and dropping in a loop from one address
//! fills only that address's share, so people elsewhere who drop are still
//! kept.
//!
//! This module only keeps the books, in memory; the [hub](crate::hub) acts
//! on them (roster, timers, closing the displaced connection) and keeps the
//! nickname each token last chose in the store, under the token's digest,
//! so that a token from before a restart gets it back.

mod token;

use std::collections::HashMap;

pub use token::{digest, ResumeToken, TokenKey, TOKEN_HEX_LEN};

use crate::{client_id::ClientId, limits::ClientNet};

/// Most people kept away at once who dropped from one client address:
/// enough for a household or an office whose network blinked, and a
/// connect-and-drop loop from that address can take no more.
pub const AWAY_PER_ADDRESS: usize = 16;

/// One connection's hold on a person: a later connection with the same
/// token gets a new seat, and whatever the old one does after that is
/// ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seat(u64);

/// The person a connection is, from [`Identities::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub id: ClientId,
    pub token: ResumeToken,
    pub seat: Seat,
    /// The token was known: the same person as before, already in the roster.
    pub resumed: bool,
    /// The client showed a token the server issued but this process does
    /// not hold, and keeps it: the store may know the nickname it stood for
    /// before a restart.
    pub presented: bool,
    /// Another connection held this person until now; it must be closed.
    pub displaced: bool,
}

/// `P` is where each person is (the hub keeps their room there).
#[derive(Debug)]
pub struct Identities<P> {
    by_token: HashMap<ResumeToken, Person<P>>,
    /// Issues tokens, and tells the ones it issued from made-up ones.
    key: TokenKey,
    next_seat: u64,
    /// People away now, and how many may be: past that, someone who drops
    /// leaves at once, so that connecting and dropping in a loop cannot
    /// fill the online list with ghosts.
    away: usize,
    away_limit: usize,
    /// People away now by the address they dropped from (only addresses
    /// with someone away); at most [`AWAY_PER_ADDRESS`] each.
    away_from: HashMap<ClientNet, usize>,
}

/// What became of a person whose connection dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Kept for the grace period.
    Away,
    /// Gone for good: too many people are away already, in all or from
    /// their address. The one who dropped is let go rather than someone
    /// away before them: from a loop's address that is the loop's own
    /// newest ghost, and nobody else's state changes.
    Forgotten,
    /// A newer connection holds them: nothing to do.
    NotHeld,
}

#[derive(Debug)]
struct Person<P> {
    id: ClientId,
    seat: Seat,
    away: bool,
    /// The address of the connection that holds them, or last did;
    /// `None` if it is not known (then only the total caps them away).
    from: Option<ClientNet>,
    place: P,
}

impl<P> Identities<P> {
    /// At most `away_limit` people are kept away at once, and
    /// [`AWAY_PER_ADDRESS`] from one address; tokens are issued and checked
    /// with `key`.
    pub fn new(away_limit: usize, key: TokenKey) -> Self {
        Self {
            by_token: HashMap::new(),
            key,
            next_seat: 0,
            away: 0,
            away_limit,
            away_from: HashMap::new(),
        }
    }

    /// The person `token` names, now held by a new seat at `place` from the
    /// address `from`, with the place they were at; else someone new, with
    /// the id `fresh`, under the token shown if the server issued it (before
    /// a restart, or in another process), or a new one: a client cannot
    /// choose its token.
    pub fn claim(
        &mut self,
        token: Option<&str>,
        fresh: ClientId,
        from: Option<ClientNet>,
        place: P,
    ) -> (Claim, Option<P>) {
        self.next_seat += 1;
        let seat = Seat(self.next_seat);
        let token = token.and_then(|raw| self.key.verify(raw));
        if let Some(token) = &token {
            if let Some(person) = self.by_token.get_mut(token) {
                let displaced = !person.away;
                if person.away {
                    self.away -= 1;
                    back_from(&mut self.away_from, person.from);
                }
                person.seat = seat;
                person.away = false;
                person.from = from;
                let previous = std::mem::replace(&mut person.place, place);
                let claim = Claim {
                    id: person.id,
                    token: token.clone(),
                    seat,
                    resumed: true,
                    presented: false,
                    displaced,
                };
                return (claim, Some(previous));
            }
        }
        let id = fresh;
        let presented = token.is_some();
        let token = token.unwrap_or_else(|| self.key.issue());
        self.by_token.insert(
            token.clone(),
            Person {
                id,
                seat,
                away: false,
                from,
                place,
            },
        );
        let claim = Claim {
            id,
            token,
            seat,
            resumed: false,
            presented,
            displaced: false,
        };
        (claim, None)
    }

    /// Moves the person `seat` holds to `place`, returning where they were;
    /// `None` (and `place` is dropped) if a newer connection holds them.
    pub fn move_to(&mut self, token: &ResumeToken, seat: Seat, place: P) -> Option<P> {
        match self.by_token.get_mut(token) {
            Some(person) if person.seat == seat => {
                Some(std::mem::replace(&mut person.place, place))
            }
            _ => None,
        }
    }

    /// The connection in `seat` is gone; its person, if it still held
    /// them, is away and kept, room permitting.
    pub fn release(&mut self, token: &ResumeToken, seat: Seat) -> Release {
        match self.by_token.get_mut(token) {
            Some(person) if person.seat == seat && !person.away => {
                let away_from_there = person
                    .from
                    .and_then(|from| self.away_from.get(&from))
                    .copied()
                    .unwrap_or(0);
                if self.away < self.away_limit && away_from_there < AWAY_PER_ADDRESS {
                    person.away = true;
                    self.away += 1;
                    if let Some(from) = person.from {
                        *self.away_from.entry(from).or_default() += 1;
                    }
                    Release::Away
                } else {
                    self.by_token.remove(token);
                    Release::Forgotten
                }
            }
            _ => Release::NotHeld,
        }
    }

    /// Lets the person go for good if `seat` still holds them (returning
    /// where they were): when their connection could never resume, or the
    /// grace period after [`release`](Self::release) ran out while they
    /// stayed away.
    pub fn forget(&mut self, token: &ResumeToken, seat: Seat) -> Option<P> {
        let held = self
            .by_token
            .get(token)
            .is_some_and(|person| person.seat == seat);
        if !held {
            return None;
        }
        let person = self.by_token.remove(token)?;
        if person.away {
            self.away -= 1;
            back_from(&mut self.away_from, person.from);
        }
        Some(person.place)
    }

    /// Whether `seat` holds the person `token` names (no newer connection
    /// took them over, and they were not forgotten).
    pub fn holds(&self, token: &ResumeToken, seat: Seat) -> bool {
        self.by_token
            .get(token)
            .is_some_and(|person| person.seat == seat)
    }

    /// People known, connected or away.
    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }
}

/// Someone away from `from` came back or was let go.
fn back_from(away_from: &mut HashMap<ClientNet, usize>, from: Option<ClientNet>) {
    let Some(from) = from else {
        return;
    };
    if let Some(away) = away_from.get_mut(&from) {
        *away -= 1;
        if *away == 0 {
            // Only addresses with someone away are kept: the map is no
            // bigger than the away list.
            away_from.remove(&from);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TokenKey {
        TokenKey::new(&[7; 32])
    }

    #[test]
    fn without_a_known_token_everyone_is_someone_new() {
        let mut identities = Identities::new(10, key());
        let a = identities.claim(None, ClientId::next(), None, ()).0;
        let b = identities
            .claim(Some("not a token"), ClientId::next(), None, ())
            .0;
        let from_before = key().issue();
        let c = identities
            .claim(Some(from_before.as_str()), ClientId::next(), None, ())
            .0;
        let made_up = TokenKey::new(&[8; 32]).issue();
        let d = identities
            .claim(Some(made_up.as_str()), ClientId::next(), None, ())
            .0;
        assert!(![&a, &b, &c, &d].iter().any(|claim| claim.resumed));
        assert_ne!(a.id, b.id);
        assert_ne!(a.token, b.token);
        assert_ne!(c.id, b.id);
        assert_eq!(identities.len(), 4);
        // A token the server issued before a restart is kept; one it did not
        // issue is replaced.
        assert!(c.presented && !a.presented && !b.presented && !d.presented);
        assert_eq!(c.token, from_before);
        assert_ne!(d.token, made_up);
        assert_eq!(key().verify(d.token.as_str()), Some(d.token.clone()));
    }

    #[test]
    fn a_released_person_comes_back_with_their_token() {
        let mut identities = Identities::new(10, key());
        let first = identities.claim(None, ClientId::next(), None, ()).0;
        assert_eq!(identities.release(&first.token, first.seat), Release::Away);
        let again = identities
            .claim(Some(first.token.as_str()), ClientId::next(), None, ())
            .0;
        assert_eq!(
            (again.id, again.resumed, again.displaced),
            (first.id, true, false)
        );
        assert_ne!(again.seat, first.seat);
        // The old connection's late goodbye changes nothing.
        assert_eq!(
            identities.release(&first.token, first.seat),
            Release::NotHeld
        );
        assert!(identities.forget(&first.token, first.seat).is_none());
        assert!(identities.forget(&again.token, again.seat).is_some());
        assert!(identities.is_empty());
    }

    #[test]
    fn a_second_connection_with_the_token_displaces_the_first() {
        let mut identities = Identities::new(10, key());
        let first = identities.claim(None, ClientId::next(), None, ()).0;
        let second = identities
            .claim(Some(first.token.as_str()), ClientId::next(), None, ())
            .0;
        assert!(second.resumed && second.displaced);
        assert_eq!(second.id, first.id);
        assert_eq!(
            identities.release(&first.token, first.seat),
            Release::NotHeld
        );
    }

    #[test]
    fn an_expired_person_is_gone_and_their_token_starts_someone_new() {
        let mut identities = Identities::new(10, key());
        let first = identities.claim(None, ClientId::next(), None, ()).0;
        identities.release(&first.token, first.seat);
        assert!(identities.forget(&first.token, first.seat).is_some());
        let later = identities
            .claim(Some(first.token.as_str()), ClientId::next(), None, ())
            .0;
        assert!(!later.resumed);
        assert_ne!(later.id, first.id);
    }

    #[test]
    fn past_the_limit_of_people_away_a_dropped_person_is_forgotten() {
        let mut identities = Identities::new(2, key());
        let claims: Vec<_> = (0..3)
            .map(|_| identities.claim(None, ClientId::next(), None, ()).0)
            .collect();
        let releases: Vec<_> = claims
            .iter()
            .map(|claim| identities.release(&claim.token, claim.seat))
            .collect();
        assert_eq!(releases, [Release::Away, Release::Away, Release::Forgotten]);
        // One comes back: room for another to be away.
        let back = identities
            .claim(Some(claims[0].token.as_str()), ClientId::next(), None, ())
            .0;
        assert!(back.resumed);
        let late = identities.claim(None, ClientId::next(), None, ()).0;
        assert_eq!(identities.release(&late.token, late.seat), Release::Away);
        assert_eq!(identities.len(), 3);
    }

    fn net(ip: &str) -> Option<ClientNet> {
        Some(ClientNet::from(ip.parse::<std::net::IpAddr>().unwrap()))
    }

    /// Someone new from `from` who drops at once: how that went.
    fn connect_and_drop(
        identities: &mut Identities<()>,
        from: Option<ClientNet>,
    ) -> (Claim, Release) {
        let claim = identities.claim(None, ClientId::next(), from, ()).0;
        let release = identities.release(&claim.token, claim.seat);
        (claim, release)
    }

    #[test]
    fn a_connect_and_drop_loop_from_one_address_fills_only_its_share() {
        let loop_from = net("192.0.2.66");
        // Room in the total for the loop's share and two more.
        let mut identities = Identities::new(AWAY_PER_ADDRESS + 2, key());
        let releases: Vec<_> = (0..AWAY_PER_ADDRESS * 3)
            .map(|_| connect_and_drop(&mut identities, loop_from).1)
            .collect();
        assert!(releases[..AWAY_PER_ADDRESS]
            .iter()
            .all(|&release| release == Release::Away));
        assert!(releases[AWAY_PER_ADDRESS..]
            .iter()
            .all(|&release| release == Release::Forgotten));
        // Someone elsewhere who drops is kept, and comes back as themselves.
        let (victim, release) = connect_and_drop(&mut identities, net("198.51.100.7"));
        assert_eq!(release, Release::Away);
        let back = identities
            .claim(
                Some(victim.token.as_str()),
                ClientId::next(),
                net("198.51.100.7"),
                (),
            )
            .0;
        assert!(back.resumed);
        assert_eq!(back.id, victim.id);
        // The total still holds: one more elsewhere, then nobody.
        let others = [net("198.51.100.8"), net("198.51.100.9"), None];
        let releases: Vec<_> = others
            .iter()
            .map(|&from| connect_and_drop(&mut identities, from).1)
            .collect();
        assert_eq!(releases, [Release::Away, Release::Away, Release::Forgotten]);
    }

    #[test]
    fn an_ipv6_64_has_one_share() {
        let mut identities = Identities::new(1000, key());
        for host in 0..AWAY_PER_ADDRESS {
            let from = net(&format!("2001:db8::{host:x}"));
            assert_eq!(connect_and_drop(&mut identities, from).1, Release::Away);
        }
        let same_64 = net("2001:db8::ffff:ffff:ffff:ffff");
        assert_eq!(
            connect_and_drop(&mut identities, same_64).1,
            Release::Forgotten
        );
        let next_64 = net("2001:db8:0:1::1");
        assert_eq!(connect_and_drop(&mut identities, next_64).1, Release::Away);
    }

    #[test]
    fn coming_back_or_being_let_go_gives_the_share_back() {
        let home = net("192.0.2.1");
        let mut identities = Identities::new(1000, key());
        let away: Vec<_> = (0..AWAY_PER_ADDRESS)
            .map(|_| connect_and_drop(&mut identities, home).0)
            .collect();
        assert_eq!(
            connect_and_drop(&mut identities, home).1,
            Release::Forgotten
        );
        // One comes back from elsewhere: home has room for one more.
        let moved = identities
            .claim(
                Some(away[0].token.as_str()),
                ClientId::next(),
                net("203.0.113.5"),
                (),
            )
            .0;
        assert_eq!(connect_and_drop(&mut identities, home).1, Release::Away);
        assert_eq!(
            connect_and_drop(&mut identities, home).1,
            Release::Forgotten
        );
        // Their grace period runs out: room again.
        assert!(identities.forget(&away[1].token, away[1].seat).is_some());
        assert_eq!(connect_and_drop(&mut identities, home).1, Release::Away);
        // Dropping from where they are now counts there, not at home.
        assert_eq!(identities.release(&moved.token, moved.seat), Release::Away);
        assert_eq!(
            connect_and_drop(&mut identities, home).1,
            Release::Forgotten
        );
        // Once everyone is back or gone, nothing is left of the addresses.
        let tokens: Vec<_> = identities
            .by_token
            .iter()
            .map(|(token, person)| (token.clone(), person.seat))
            .collect();
        for (token, seat) in tokens {
            identities.forget(&token, seat);
        }
        assert!(identities.is_empty());
        assert!(identities.away_from.is_empty());
        assert_eq!(identities.away, 0);
    }

    #[test]
    fn people_from_an_unknown_address_count_only_in_the_total() {
        let mut identities = Identities::new(AWAY_PER_ADDRESS + 1, key());
        for _ in 0..=AWAY_PER_ADDRESS {
            assert_eq!(connect_and_drop(&mut identities, None).1, Release::Away);
        }
        assert_eq!(
            connect_and_drop(&mut identities, None).1,
            Release::Forgotten
        );
        assert!(identities.away_from.is_empty());
    }

    #[test]
    fn a_person_is_where_they_last_went_and_a_resume_says_where_that_was() {
        let mut identities = Identities::new(10, key());
        let (first, previous) = identities.claim(None, ClientId::next(), None, "general");
        assert_eq!(previous, None);
        assert_eq!(
            identities.move_to(&first.token, first.seat, "rust"),
            Some("general")
        );
        identities.release(&first.token, first.seat);
        let (again, previous) =
            identities.claim(Some(first.token.as_str()), ClientId::next(), None, "go");
        assert_eq!(previous, Some("rust"));
        // The old connection can move nobody.
        assert_eq!(identities.move_to(&first.token, first.seat, "elm"), None);
        assert_eq!(identities.forget(&again.token, again.seat), Some("go"));
    }
}
