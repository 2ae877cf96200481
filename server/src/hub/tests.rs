use std::{collections::HashMap, time::Duration};

use serde_json::Value;
use tokio::{io::AsyncReadExt, net::TcpStream};

use app::protocol::GENERAL_ROOM;

use super::*;
use crate::{
    commit::{Outcome, Pending},
    flush::{CHUNK, SHARED_FLUSH_CHUNKS},
    store::NewMessage,
    writer::tests::socket_pair,
};

const BUDGET: usize = 1 << 20;

/// A hub that announces presence only when a test says so, over a
/// store in memory.
async fn hub_listing(list_limit: usize, presence_interval: Duration) -> Arc<Hub> {
    hub_with(list_limit, presence_interval, Duration::ZERO).await
}

/// A hub that keeps a dropped client that can resume for `grace`.
async fn hub_with(list_limit: usize, presence_interval: Duration, grace: Duration) -> Arc<Hub> {
    let store = Store::open("sqlite::memory:").await.unwrap();
    Hub::new(
        list_limit,
        presence_interval,
        grace,
        Metrics::default(),
        store,
    )
}

async fn hub() -> Arc<Hub> {
    hub_listing(100, Duration::from_secs(3600)).await
}

/// A v1 client of `hub`, past its welcome: who it is and its end of
/// the socket.
async fn join(hub: &Arc<Hub>) -> (Joined<HubSeat>, TcpStream) {
    join_as(hub, None).await
}

/// The room everyone is in unless they asked for another.
fn general(hub: &Hub) -> Arc<Room> {
    hub.room(GENERAL_ROOM).expect("someone is in general")
}

/// A v1 client, or one resuming with `resume`, past its welcome.
async fn join_as(hub: &Arc<Hub>, resume: Option<Resume>) -> (Joined<HubSeat>, TcpStream) {
    let (server, mut client) = socket_pair().await;
    let writer = Arc::new(ClientWriter::new(ClientId::next(), server, BUDGET));
    let joined = hub.join(writer, resume).await.expect("admitted");
    // What a resuming client missed comes first; the room list follows.
    while next_frame(&mut client).await["type"] != "welcome" {}
    assert_eq!(next_frame(&mut client).await["type"], "rooms");
    (joined, client)
}

/// A client that can resume, past its welcome, with its token.
async fn join_resumable(hub: &Arc<Hub>) -> (Joined<HubSeat>, TcpStream, String) {
    let (server, mut client) = socket_pair().await;
    let writer = Arc::new(ClientWriter::new(ClientId::next(), server, BUDGET));
    let joined = hub.join(writer, Some(Resume::default())).await.unwrap();
    let token = next_frame(&mut client).await["payload"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    (joined, client, token)
}

/// The next server frame's JSON (frames of up to 64 KiB).
async fn next_frame(client: &mut TcpStream) -> Value {
    let read = async {
        let mut header = [0; 2];
        client.read_exact(&mut header).await.unwrap();
        let len = match header[1] {
            126 => usize::from(client.read_u16().await.unwrap()),
            len => usize::from(len),
        };
        let mut payload = vec![0; len];
        client.read_exact(&mut payload).await.unwrap();
        serde_json::from_slice(&payload).unwrap()
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("a frame in time")
}

async fn receives(client: &mut TcpStream, expected: &[u8]) {
    let mut received = vec![0; expected.len()];
    tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut received))
        .await
        .expect("the frame arrives in time")
        .unwrap();
    assert_eq!(received, expected);
}

fn say(hub: &Hub, from: &Joined<HubSeat>, text: &str, client_id: Option<&str>) {
    hub.post(
        from.id,
        &from.seat,
        &Nickname::default(),
        MessageText::parse(text).unwrap(),
        client_id.map(|id| ClientMessageId::parse(id).unwrap()),
    );
}

#[tokio::test]
async fn a_message_reaches_everyone_but_its_sender_who_gets_an_ack() {
    let hub = hub().await;
    let (alice, mut alice_client) = join(&hub).await;
    let (_bob, mut bob_client) = join(&hub).await;
    let (_carol, mut carol_client) = join(&hub).await;
    hub.announce_presence(&general(&hub));
    for client in [&mut alice_client, &mut bob_client, &mut carol_client] {
        assert_eq!(next_frame(client).await["type"], "presence");
    }

    say(&hub, &alice, "hi", Some("c1"));
    for client in [&mut bob_client, &mut carol_client] {
        let frame = next_frame(client).await;
        assert_eq!(frame["payload"]["text"], "hi");
        assert_eq!(frame["payload"]["from"], alice.id.get());
    }
    // The ack is alice's first frame: no copy of her message came before.
    let ack = next_frame(&mut alice_client).await;
    assert_eq!(ack["type"], "ack");
    assert_eq!(ack["payload"]["client_id"], "c1");
}

#[tokio::test]
async fn a_resent_client_id_is_acked_again_and_not_relayed() {
    let hub = hub().await;
    let (alice, mut alice_client) = join(&hub).await;
    let (_bob, mut bob_client) = join(&hub).await;
    say(&hub, &alice, "once", Some("c1"));
    say(&hub, &alice, "once", Some("c1"));
    say(&hub, &alice, "after", None);
    let first = next_frame(&mut alice_client).await;
    let again = next_frame(&mut alice_client).await;
    assert_eq!(first["type"], "ack");
    assert_eq!(first, again, "the same id and time");

    let mut texts = Vec::new();
    while texts.last().map(String::as_str) != Some("after") {
        let frame = next_frame(&mut bob_client).await;
        if frame["type"] == "message" {
            texts.push(frame["payload"]["text"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(texts, ["once", "after"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_reach_a_room_bigger_than_a_chunk_in_one_id_order() {
    let hub = hub().await;
    let mut senders = Vec::new();
    for _ in 0..4 {
        senders.push(join(&hub).await);
    }
    let mut clients = Vec::new();
    for _ in 0..3 * CHUNK {
        clients.push(join(&hub).await.1);
    }
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|(sender, _client)| {
            let hub = Arc::clone(&hub);
            tokio::task::spawn_blocking(move || {
                for i in 0..25 {
                    say(&hub, &sender, &format!("{}/{i}", sender.id), None);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    for client in &mut clients {
        let mut ids = Vec::new();
        let mut per_sender: HashMap<u64, Vec<u64>> = HashMap::new();
        while ids.len() < 100 {
            let frame = next_frame(client).await;
            if frame["type"] != "message" {
                continue;
            }
            let payload = &frame["payload"];
            ids.push(payload["id"].as_u64().unwrap());
            let text = payload["text"].as_str().unwrap();
            let seq: u64 = text.rsplit('/').next().unwrap().parse().unwrap();
            per_sender
                .entry(payload["from"].as_u64().unwrap())
                .or_default()
                .push(seq);
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in order: {ids:?}");
        for seqs in per_sender.values() {
            assert_eq!(*seqs, (0..25).collect::<Vec<_>>());
        }
    }
}

#[tokio::test]
async fn a_huge_room_is_written_by_every_flusher_and_reaches_everyone() {
    let hub = hub_listing(0, Duration::from_secs(3600)).await;
    let (sender, _sender_client) = join(&hub).await;
    let mut clients = Vec::new();
    for _ in 0..SHARED_FLUSH_CHUNKS * CHUNK {
        clients.push(join(&hub).await.1);
    }
    hub.broadcast_except(&general(&hub), Some(sender.id), &Bytes::from_static(b"all"));
    for client in &mut clients {
        receives(client, b"all").await;
    }
}

#[tokio::test]
async fn presence_changes_between_announcements_are_coalesced() {
    let hub = hub().await;
    let (watcher, mut watcher_client) = join(&hub).await;
    hub.announce_presence(&general(&hub));
    let first = next_frame(&mut watcher_client).await;
    assert_eq!(first["payload"]["joined"][0]["id"], watcher.id.get());

    let (bob, _bob_client) = join_as(&hub, None).await;
    let (carol, carol_client) = join_as(&hub, None).await;
    hub.rename(bob.id, &bob.seat, Nickname::parse("bob").unwrap())
        .unwrap();
    hub.leave(carol.id, &carol.seat);
    drop(carol_client);
    hub.announce_presence(&general(&hub));
    let diff = next_frame(&mut watcher_client).await;
    assert_eq!(diff["type"], "presence");
    assert_eq!(diff["payload"]["online"], 2);
    assert_eq!(
        diff["payload"]["joined"],
        serde_json::json!([{"id": bob.id.get(), "nickname": "bob"}]),
        "one join under the final name; carol came and went unseen"
    );
    assert_eq!(diff["payload"]["left"], serde_json::json!([]));
}

#[tokio::test]
async fn a_change_is_announced_by_itself_after_the_interval() {
    let hub = hub_listing(100, Duration::from_millis(20)).await;
    let (alice, mut alice_client) = join(&hub).await;
    let mut diff = next_frame(&mut alice_client).await;
    // The room list changed at the same time.
    if diff["type"] == "rooms" {
        diff = next_frame(&mut alice_client).await;
    }
    assert_eq!(diff["type"], "presence");
    assert_eq!(diff["payload"]["joined"][0]["id"], alice.id.get());
}

#[tokio::test]
async fn leaving_the_hub_is_seen_by_the_next_broadcast() {
    let hub = hub().await;
    let (alice, _alice_client) = join(&hub).await;
    let (bob, _bob_client) = join_as(&hub, None).await;
    let frame = Bytes::from_static(b"x");
    assert_eq!(
        hub.broadcast_except(&general(&hub), Some(alice.id), &frame)
            .queued,
        1
    );
    hub.leave(bob.id, &bob.seat);
    assert_eq!(hub.len(), 1);
    assert!(!hub.contains(bob.id));
    assert_eq!(
        hub.broadcast_except(&general(&hub), Some(alice.id), &frame),
        Fanout::default()
    );
    let (_carol, mut carol_client) = join(&hub).await;
    assert_eq!(
        hub.broadcast_except(&general(&hub), Some(alice.id), &frame)
            .queued,
        1
    );
    receives(&mut carol_client, b"x").await;
}

#[tokio::test]
async fn a_departed_clients_socket_is_closed_at_once() {
    let hub = hub().await;
    let (alice, _alice_client) = join(&hub).await;
    let (bob, mut bob_client) = join_as(&hub, None).await;
    // The broadcast builds the snapshot that still lists bob.
    hub.broadcast_except(&general(&hub), Some(alice.id), &Bytes::from_static(b"x"));
    receives(&mut bob_client, b"x").await;
    // The connection's task ends, dropping its seat.
    hub.leave(bob.id, &bob.seat);
    drop(bob);
    let mut buf = [0; 1];
    let read = tokio::time::timeout(Duration::from_secs(1), bob_client.read(&mut buf)).await;
    assert_eq!(read.expect("closed, not left hanging").unwrap(), 0);
}

/// Texts of the `message` frames `client` gets until `last` arrives.
async fn texts_until(client: &mut TcpStream, last: &str) -> Vec<String> {
    let mut texts = Vec::new();
    while texts.last().map(String::as_str) != Some(last) {
        let frame = next_frame(client).await;
        if frame["type"] == "message" {
            texts.push(frame["payload"]["text"].as_str().unwrap().to_owned());
        }
    }
    texts
}

#[tokio::test]
async fn a_resuming_client_gets_what_it_missed_in_order_then_welcome_then_live() {
    let hub = hub_listing(100, Duration::from_secs(3600)).await;
    let (alice, mut alice_client) = join(&hub).await;
    for text in ["one", "two", "three"] {
        say(&hub, &alice, text, None);
    }
    // Once alice hears the ack of a fourth, the three are stored.
    say(&hub, &alice, "four", Some("c4"));
    while next_frame(&mut alice_client).await["type"] != "ack" {}

    let (server, mut client) = socket_pair().await;
    let writer = Arc::new(ClientWriter::new(ClientId::next(), server, BUDGET));
    let resume = Resume {
        token: None,
        after: Some(1),
        room: None,
    };
    let joined = hub.join(writer, Some(resume)).await.unwrap();
    let mut kinds = Vec::new();
    for _ in 0..4 {
        let frame = next_frame(&mut client).await;
        kinds.push(match frame["type"].as_str().unwrap() {
            "message" => frame["payload"]["text"].as_str().unwrap().to_owned(),
            other => other.to_owned(),
        });
    }
    assert_eq!(kinds, ["two", "three", "four", "welcome"]);
    say(&hub, &alice, "live", None);
    assert_eq!(texts_until(&mut client, "live").await, ["live"]);
    assert_ne!(joined.id, alice.id);
}

#[tokio::test]
async fn a_token_brings_back_the_same_person_without_a_leave_or_a_join() {
    let hour = Duration::from_secs(3600);
    let hub = hub_with(100, hour, hour).await;
    let (_watcher, mut watcher_client) = join(&hub).await;
    let (first, client, token) = join_resumable(&hub).await;
    hub.rename(first.id, &first.seat, Nickname::parse("alice").unwrap())
        .unwrap();
    hub.announce_presence(&general(&hub));
    assert_eq!(next_frame(&mut watcher_client).await["type"], "presence");

    hub.leave(first.id, &first.seat);
    drop(client);
    let resume = Resume {
        token: Some(token),
        after: None,
        room: None,
    };
    let (again, mut client) = {
        let (server, client) = socket_pair().await;
        let writer = Arc::new(ClientWriter::new(ClientId::next(), server, BUDGET));
        (hub.join(writer, Some(resume)).await.unwrap(), client)
    };
    assert_eq!((again.id, again.nickname.as_str()), (first.id, "alice"));
    let _ = next_frame(&mut client).await;
    // Nothing changed for anyone else: no presence is due.
    hub.announce_presence(&general(&hub));
    say(&hub, &again, "back", None);
    let frame = next_frame(&mut watcher_client).await;
    assert_eq!(frame["type"], "message", "no presence frame before it");
    assert_eq!(frame["payload"]["from"], first.id.get());
}

#[tokio::test]
async fn a_second_connection_with_a_token_closes_the_first() {
    let hub = hub().await;
    let (server, mut client) = socket_pair().await;
    let first_writer = Arc::new(ClientWriter::new(ClientId::next(), server, BUDGET));
    let first = hub
        .join(Arc::clone(&first_writer), Some(Resume::default()))
        .await
        .unwrap();
    let token = next_frame(&mut client).await["payload"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (server, _client) = socket_pair().await;
    let writer = Arc::new(ClientWriter::new(ClientId::next(), server, BUDGET));
    let resume = Resume {
        token: Some(token),
        after: None,
        room: None,
    };
    let second = hub.join(writer, Some(resume)).await.unwrap();
    assert_eq!(second.id, first.id);
    let trouble = tokio::time::timeout(Duration::from_secs(5), first_writer.attention()).await;
    assert_eq!(trouble.unwrap(), crate::writer::Trouble::Displaced);
    // The displaced connection's goodbye does not take the person away.
    hub.leave(first.id, &first.seat);
    assert!(hub.contains(second.id));
}

#[tokio::test]
async fn a_connection_taken_over_while_catching_up_is_closed_and_leaves_nothing_behind() {
    let hub = hub_with(100, Duration::from_secs(3600), Duration::from_secs(3600)).await;
    // Someone who dropped, and whose token two connections then show.
    let (first, _gone, token) = join_resumable(&hub).await;
    hub.leave(first.id, &first.seat);
    // More missed messages than a connection that does not read can
    // take: the first connection stays catching up.
    let text = "x".repeat(app::protocol::MESSAGE_MAX_CHARS);
    let missed = (0..4_000).map(|_| NewMessage {
        room: GENERAL_ROOM.into(),
        from: 1,
        nickname: "bob".into(),
        text: text.clone(),
        client_key: None,
    });
    hub.store.append(missed.collect()).await.unwrap();
    let resume = |after| {
        Some(Resume {
            token: Some(token.clone()),
            after,
            room: None,
        })
    };
    const SMALL: usize = 64 * 1024;
    let (server, _not_reading) = socket_pair().await;
    let overtaken = Arc::new(ClientWriter::new(ClientId::next(), server, SMALL));
    let catching_up = tokio::spawn({
        let (hub, writer, resume) = (Arc::clone(&hub), Arc::clone(&overtaken), resume(Some(0)));
        async move { hub.join(writer, resume).await.map(|joined| joined.id) }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while overtaken.queued_bytes() <= SMALL / 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "it waits for its client"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    let (server, _client) = socket_pair().await;
    let writer = Arc::new(ClientWriter::new(ClientId::next(), server, BUDGET));
    let second = hub.join(Arc::clone(&writer), resume(None)).await.unwrap();
    assert_eq!(second.id, first.id);
    let trouble = tokio::time::timeout(Duration::from_secs(5), overtaken.attention()).await;
    assert_eq!(trouble.unwrap(), crate::writer::Trouble::Displaced);
    assert_eq!(catching_up.await.unwrap(), None, "never admitted");
    assert_eq!(hub.len(), 1, "no second member");
    assert!(general(&hub)
        .remove(second.id)
        .is_some_and(|member| Arc::ptr_eq(&member, &writer)));
}

#[tokio::test]
async fn a_client_that_does_not_come_back_leaves_after_the_grace_period() {
    let hub = hub_with(100, Duration::from_millis(10), Duration::from_millis(50)).await;
    let (watcher, mut watcher_client) = join(&hub).await;
    let (server, client) = socket_pair().await;
    let writer = Arc::new(ClientWriter::new(ClientId::next(), server, BUDGET));
    let gone = hub.join(writer, Some(Resume::default())).await.unwrap();
    hub.leave(gone.id, &gone.seat);
    drop(client);
    loop {
        let frame = next_frame(&mut watcher_client).await;
        if frame["payload"]["left"]
            .as_array()
            .is_some_and(|left| !left.is_empty())
        {
            assert_eq!(frame["payload"]["left"][0]["id"], gone.id.get());
            assert_eq!(frame["payload"]["online"], 1);
            break;
        }
    }
    assert!(hub.contains(watcher.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_resuming_during_a_flood_get_every_message_once_in_order() {
    const MESSAGES: u64 = 1500;
    let hub = hub().await;
    let (alice, mut alice_client) = join(&hub).await;
    let sender = {
        let hub = Arc::clone(&hub);
        tokio::spawn(async move {
            for i in 1..=MESSAGES {
                say(&hub, &alice, &i.to_string(), Some(&format!("c{i}")));
                if i % 50 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    // Resumers join all along the flood: while batches are being
    // stored, and between storing and relaying them.
    let mut resumers = Vec::new();
    let mut acked = 0;
    while acked < MESSAGES {
        let (server, client) = socket_pair().await;
        let writer = Arc::new(ClientWriter::new(ClientId::next(), server, BUDGET));
        let resume = Resume {
            token: None,
            after: Some(0),
            room: None,
        };
        hub.join(writer, Some(resume)).await.unwrap();
        resumers.push(client);
        for _ in 0..25 {
            if acked < MESSAGES && next_frame(&mut alice_client).await["type"] == "ack" {
                acked += 1;
            }
        }
    }
    sender.await.unwrap();
    let last = MESSAGES.to_string();
    for client in &mut resumers {
        let texts = texts_until(client, &last).await;
        let expected: Vec<String> = (1..=MESSAGES).map(|i| i.to_string()).collect();
        assert_eq!(texts, expected, "every message once, in order");
    }
    assert!(resumers.len() > 20);
}

#[tokio::test]
async fn messages_read_while_catching_up_are_not_relayed_again() {
    let hub = hub().await;
    // Stored, but (as if the group commit were slow to hand them on)
    // not relayed yet when the client catches up.
    let message = |text: &str| NewMessage {
        room: "general".into(),
        from: 99,
        nickname: "bob".into(),
        text: text.into(),
        client_key: None,
    };
    let stored = hub
        .store
        .append(vec![message("one"), message("two")])
        .await
        .unwrap();
    let (_resumer, mut client) = join_as(
        &hub,
        Some(Resume {
            token: None,
            after: Some(0),
            room: None,
        }),
    )
    .await;
    let pending = Pending {
        from: ClientId::from(99),
        client_id: None,
        reply: None,
    };
    for appended in stored {
        hub.deliver_batch(vec![(
            pending.clone(),
            Outcome::Stored(appended.message().clone()),
        )]);
    }
    let three = hub.store.append(vec![message("three")]).await.unwrap();
    hub.deliver_batch(vec![(pending, Outcome::Stored(three[0].message().clone()))]);
    let frame = next_frame(&mut client).await;
    assert_eq!(frame["payload"]["text"], "three", "one and two not again");
}

#[tokio::test]
async fn an_id_a_client_only_claims_does_not_hold_back_new_messages() {
    let hub = hub().await;
    let (alice, _alice_client) = join(&hub).await;
    // As if the page kept ids from a store since wiped.
    let resume = Resume {
        token: None,
        after: Some(1_000),
        room: None,
    };
    let (_resumer, mut client) = join_as(&hub, Some(resume)).await;
    say(&hub, &alice, "new", None);
    assert_eq!(next_frame(&mut client).await["payload"]["text"], "new");
}

/// A client that asked for `room`, past its welcome.
async fn join_room(hub: &Arc<Hub>, room: &str) -> (Joined<HubSeat>, TcpStream) {
    let resume = Resume {
        room: Some(room.into()),
        ..Resume::default()
    };
    join_as(hub, Some(resume)).await
}

/// The next frame of type `kind`, skipping others.
async fn next_of(client: &mut TcpStream, kind: &str) -> Value {
    loop {
        let frame = next_frame(client).await;
        if frame["type"] == kind {
            return frame;
        }
    }
}

#[tokio::test]
async fn messages_and_typing_stay_in_their_room() {
    let hub = hub().await;
    let (alice, _alice_client) = join(&hub).await;
    let (_bob, mut bob_client) = join(&hub).await;
    let (carol, mut carol_client) = join_room(&hub, "rust").await;
    let (dave, _dave_client) = join_room(&hub, "rust").await;
    hub.typing(alice.id, &alice.seat, &Nickname::default(), true);
    say(&hub, &alice, "general only", None);
    let typing = next_of(&mut bob_client, "typing").await;
    assert_eq!(typing["payload"]["room"], "general");
    let message = next_of(&mut bob_client, "message").await;
    assert_eq!(message["payload"]["text"], "general only");
    assert_eq!(message["payload"]["room"], "general");

    hub.typing(dave.id, &dave.seat, &Nickname::default(), true);
    say(&hub, &dave, "rust only", None);
    let typing = next_of(&mut carol_client, "typing").await;
    assert_eq!(typing["payload"]["id"], dave.id.get(), "not alice's");
    let message = next_of(&mut carol_client, "message").await;
    assert_eq!(message["payload"]["text"], "rust only", "not general's");
    assert_eq!(message["payload"]["room"], "rust");
    assert_ne!(carol.id, dave.id);
}

#[tokio::test]
async fn switching_rooms_leaves_one_and_joins_the_other_as_the_same_person() {
    let hub = hub().await;
    let (mut alice, mut alice_client) = join(&hub).await;
    hub.rename(alice.id, &alice.seat, Nickname::parse("alice").unwrap())
        .unwrap();
    let (_bob, mut bob_client) = join(&hub).await;
    let (carol, mut carol_client) = join_room(&hub, "rust").await;
    say(&hub, &carol, "before alice came", Some("c1"));
    next_of(&mut carol_client, "ack").await;
    hub.announce_presence(&general(&hub));
    let rust = hub.room("rust").unwrap();
    hub.announce_presence(&rust);
    next_of(&mut bob_client, "presence").await;
    next_of(&mut carol_client, "presence").await;

    let nickname = Nickname::parse("alice").unwrap();
    let rust_name = RoomName::parse("rust").unwrap();
    alice = hub
        .switch(alice.id, &alice.seat, &nickname, rust_name)
        .await
        .unwrap();
    assert_eq!(alice.nickname, nickname);
    let history = next_of(&mut alice_client, "history").await;
    assert_eq!(history["payload"]["room"], "rust");
    assert_eq!(
        history["payload"]["messages"][0]["text"],
        "before alice came"
    );
    let welcome = next_frame(&mut alice_client).await;
    assert_eq!(welcome["type"], "welcome", "right after the page");
    assert_eq!(welcome["payload"]["room"], "rust");
    assert_eq!(welcome["payload"]["id"], alice.id.get());
    assert_eq!(welcome["payload"]["online"], 2);

    hub.announce_presence(&general(&hub));
    let left = next_of(&mut bob_client, "presence").await;
    assert_eq!(left["payload"]["left"][0]["nickname"], "alice");
    hub.announce_presence(&rust);
    let joined = next_of(&mut carol_client, "presence").await;
    assert_eq!(joined["payload"]["joined"][0]["nickname"], "alice");

    say(&hub, &carol, "welcome alice", None);
    let message = next_of(&mut alice_client, "message").await;
    assert_eq!(message["payload"]["text"], "welcome alice");
}

#[tokio::test]
async fn a_nickname_taken_in_the_new_room_becomes_anonymous_there() {
    let hub = hub().await;
    let (alice, _alice_client) = join(&hub).await;
    let (other, _other_client) = join_room(&hub, "rust").await;
    let nickname = Nickname::parse("alice").unwrap();
    hub.rename(alice.id, &alice.seat, nickname.clone()).unwrap();
    hub.rename(other.id, &other.seat, nickname.clone()).unwrap();
    let moved = hub
        .switch(
            alice.id,
            &alice.seat,
            &nickname,
            RoomName::parse("rust").unwrap(),
        )
        .await
        .unwrap();
    assert!(moved.nickname.is_default());
}

#[tokio::test]
async fn the_room_list_counts_people_busiest_first_and_a_room_closes_when_empty() {
    let hub = hub().await;
    let (_a, _a_client) = join(&hub).await;
    let (b, _b_client) = join_room(&hub, "rust").await;
    let (c, _c_client) = join_room(&hub, "rust").await;
    let (_d, _d_client) = join_room(&hub, "go").await;
    let counts = |hub: &Hub| -> Vec<(String, u64)> {
        hub.room_list()
            .rooms
            .into_iter()
            .map(|count| (count.name, count.online))
            .collect()
    };
    let expected = [("rust", 2), ("general", 1), ("go", 1)];
    assert_eq!(
        counts(&hub),
        expected.map(|(name, online)| (name.to_owned(), online))
    );
    assert_eq!(hub.rooms(), 3);
    hub.leave(b.id, &b.seat);
    hub.leave(c.id, &c.seat);
    assert_eq!(hub.rooms(), 2, "rust closed with its last member");
    assert!(hub.room("rust").is_none());
    let expected = [("general", 1), ("go", 1)];
    assert_eq!(
        counts(&hub),
        expected.map(|(name, online)| (name.to_owned(), online))
    );
}

#[tokio::test]
async fn everyone_hears_of_a_change_in_the_room_list() {
    let hub = hub_listing(100, Duration::from_millis(10)).await;
    let (_alice, mut alice_client) = join(&hub).await;
    let (_bob, _bob_client) = join_room(&hub, "rust").await;
    loop {
        let rooms = next_of(&mut alice_client, "rooms").await;
        if rooms["payload"]["rooms"][0]["name"] == "general"
            && rooms["payload"]["rooms"][1]["name"] == "rust"
        {
            break;
        }
    }
}

#[tokio::test]
async fn a_person_resuming_into_another_room_leaves_the_one_they_were_in() {
    let hour = Duration::from_secs(3600);
    let hub = hub_with(100, hour, hour).await;
    let (_watcher, mut watcher_client) = join(&hub).await;
    let (first, client, token) = join_resumable(&hub).await;
    hub.announce_presence(&general(&hub));
    next_of(&mut watcher_client, "presence").await;
    hub.leave(first.id, &first.seat);
    drop(client);

    let resume = Resume {
        token: Some(token),
        room: Some("rust".into()),
        ..Resume::default()
    };
    let (again, _client) = join_as(&hub, Some(resume)).await;
    assert_eq!(again.id, first.id);
    hub.announce_presence(&general(&hub));
    let left = next_of(&mut watcher_client, "presence").await;
    assert_eq!(left["payload"]["left"][0]["id"], first.id.get());
    assert_eq!(hub.room_list().rooms.len(), 2);
}
