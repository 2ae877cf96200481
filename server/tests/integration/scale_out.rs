//! Two server processes sharing rooms through Redis, on one PostgreSQL
//! database: what clients on both see, when a process dies, and when
//! Redis goes away and comes back.

use std::time::Duration;

use serde_json::Value;

use crate::support::{
    cluster::{Redis, ServerProcess},
    resume_at, Client, Database, WAIT,
};

/// PostgreSQL, Redis and two server processes on them; `None` (the test
/// is skipped) without PostgreSQL or `redis-server`.
struct Cluster {
    processes: [ServerProcess; 2],
    redis: Redis,
    _database: Database,
}

impl Cluster {
    async fn start() -> Option<Self> {
        let database = Database::postgres().await?;
        let redis = Redis::start().await?;
        let (url, redis_url) = (database.url(), redis.url());
        let env = [
            ("DATABASE_URL", url.as_str()),
            ("REDIS_URL", redis_url.as_str()),
            ("RUST_LOG", "warn"),
            ("PARLEY_PRESENCE_INTERVAL_MS", "20"),
        ];
        let processes = [
            ServerProcess::start(&env).await,
            ServerProcess::start(&env).await,
        ];
        Some(Self {
            processes,
            redis,
            _database: database,
        })
    }

    /// A client of process `n` in `room`, past its `welcome` there.
    async fn client_in(&self, n: usize, room: &str) -> Client {
        let (client, _) = resume_at(self.processes[n].addr, room, None, None).await;
        client
    }
}

/// Waits until `/healthz` of `process` answers `expected` (it changes a
/// moment after Redis does).
async fn health_becomes(process: &ServerProcess, expected: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let body = reqwest::get(process.url("/healthz"))
            .await
            .expect("healthz answers")
            .text()
            .await
            .unwrap();
        if body.starts_with(expected) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "healthz still says {body:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `message` payloads `client` receives until it has `n` of them.
async fn messages(client: &mut Client, n: usize) -> Vec<Value> {
    let mut received = Vec::new();
    while received.len() < n {
        let frame = client.next_json().await;
        assert_ne!(frame["type"], "error", "{frame}");
        if frame["type"] == "message" {
            received.push(frame["payload"].clone());
        }
    }
    received
}

fn texts(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|message| message["text"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_two_processes_see_one_room_in_one_order_each_message_once() {
    let Some(cluster) = Cluster::start().await else {
        return;
    };
    let mut clients = Vec::new();
    for n in [0, 1, 0, 1] {
        clients.push(cluster.client_in(n, "shared").await);
    }
    let mut elsewhere = cluster.client_in(1, "elsewhere").await;
    const EACH: usize = 15;
    for round in 0..EACH {
        for (who, client) in clients.iter_mut().enumerate() {
            client
                .say_with_id(&format!("{who}/{round}"), &format!("c{who}-{round}"))
                .await;
        }
    }
    let mut orders = Vec::new();
    for (who, client) in clients.iter_mut().enumerate() {
        let received = messages(client, 3 * EACH).await;
        let texts = texts(&received);
        assert!(
            !texts
                .iter()
                .any(|text| text.starts_with(&format!("{who}/"))),
            "never its own: {texts:?}"
        );
        let ids: Vec<u64> = received.iter().map(|m| m["id"].as_u64().unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "in id order: {ids:?}");
        assert!(received.iter().all(|m| m["room"] == "shared"));
        orders.push(received);
    }
    // Everyone saw the others' messages in one order: the order of ids,
    // which is the same on both processes.
    let everyone = |received: &Vec<Value>| -> Vec<(u64, String)> {
        received
            .iter()
            .map(|m| {
                (
                    m["id"].as_u64().unwrap(),
                    m["text"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let mut all: Vec<(u64, String)> = orders.iter().flat_map(everyone).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 4 * EACH, "every message, under one id each");
    for received in &orders {
        let mine = everyone(received);
        let expected: Vec<_> = all.iter().filter(|m| mine.contains(m)).cloned().collect();
        assert_eq!(mine, expected);
    }
    // Another room on one of the processes heard none of it.
    elsewhere.say_with_id("only here", "e-1").await;
    assert_eq!(
        elsewhere.next_of("ack").await["payload"]["client_id"],
        "e-1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_counts_and_nicknames_are_cluster_wide() {
    let Some(cluster) = Cluster::start().await else {
        return;
    };
    let mut alice = cluster.client_in(0, "lobby").await;
    alice.set_nickname("alice").await;
    let mut bob = cluster.client_in(1, "lobby").await;
    let has_alice = |people: &Value| {
        people
            .as_array()
            .is_some_and(|people| people.iter().any(|p| p["nickname"] == "alice"))
    };
    // Bob hears of alice on the other process (in his welcome, or in
    // presence as soon as her process announces her), and his room list
    // counts both. One loop over every frame: these come in no fixed order,
    // and waiting for one kind would skip the other.
    let mut knows_alice = has_alice(&bob.welcome["payload"]["people"]);
    let mut counts_both = false;
    while !(knows_alice && counts_both) {
        let frame = bob.next_frame().await;
        match frame["type"].as_str() {
            Some("presence") => {
                assert_eq!(frame["payload"]["room"], "lobby");
                knows_alice |= has_alice(&frame["payload"]["joined"])
                    || has_alice(&frame["payload"]["renamed"]);
            }
            Some("rooms") => {
                counts_both |= frame["payload"]["rooms"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|room| room["name"] == "lobby" && room["online"] == 2);
            }
            _ => {}
        }
    }
    // Alice hears of bob, counted with her.
    loop {
        let presence = alice.next_of("presence").await;
        if presence["payload"]["online"] == 2 {
            break;
        }
    }
    bob.set_nickname("ALICE").await;
    bob.expect_error("nickname_taken").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_process_drops_its_people_and_they_resume_elsewhere_losing_nothing() {
    let Some(mut cluster) = Cluster::start().await else {
        return;
    };
    let (mut alice, _) = resume_at(cluster.processes[0].addr, "general", None, None).await;
    let token = alice.token();
    let mut bob = cluster.client_in(1, "general").await;
    // Bob knows alice is here (her process has announced her) before her
    // process dies.
    let listed = |people: &Value| {
        people
            .as_array()
            .is_some_and(|people| people.iter().any(|p| p["id"] == alice.id))
    };
    let mut knows_alice = listed(&bob.welcome["payload"]["people"]);
    while !knows_alice {
        knows_alice = listed(&bob.next_of("presence").await["payload"]["joined"]);
    }
    bob.say_with_id("before", "b-0").await;
    let seen = alice.expect_message("Anonymous", "before").await["id"].as_u64();

    cluster.processes[0].kill().await;
    // Alice's process is gone: bob sees her leave once it is forgotten
    // (5 s of silence, checked every second).
    loop {
        let presence = bob
            .next_of_within("presence", Duration::from_secs(10))
            .await;
        let left = presence["payload"]["left"].as_array().unwrap().clone();
        if left.iter().any(|person| person["id"] == alice.id) {
            break;
        }
    }
    for i in 1..=3 {
        bob.say_with_id(&format!("missed {i}"), &format!("b-{i}"))
            .await;
        bob.next_of("ack").await;
    }
    let (alice, missed) = resume_at(cluster.processes[1].addr, "general", Some(&token), seen).await;
    assert_eq!(texts(&missed), ["missed 1", "missed 2", "missed 3"]);
    assert_eq!(alice.welcome["payload"]["room"], "general");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_away_everyone_keeps_chatting_and_nothing_goes_missing() {
    let Some(mut cluster) = Cluster::start().await else {
        return;
    };
    let mut alice = cluster.client_in(0, "general").await;
    let mut bob = cluster.client_in(1, "general").await;
    alice.say_with_id("hello", "a-0").await;
    bob.expect_message("Anonymous", "hello").await;

    cluster.redis.stop().await;
    for process in &cluster.processes {
        health_becomes(process, "degraded").await;
    }
    for i in 1..=3 {
        alice.say_with_id(&format!("a{i}"), &format!("a-{i}")).await;
        bob.say_with_id(&format!("b{i}"), &format!("b-{i}")).await;
    }
    // Relayed from the store meanwhile, across processes too.
    assert_eq!(texts(&messages(&mut bob, 3).await), ["a1", "a2", "a3"]);
    assert_eq!(texts(&messages(&mut alice, 3).await), ["b1", "b2", "b3"]);

    cluster.redis.start_again().await;
    for process in &cluster.processes {
        health_becomes(process, "ok").await;
    }
    alice.say_with_id("after", "a-4").await;
    bob.say_with_id("after too", "b-4").await;
    assert_eq!(texts(&messages(&mut bob, 1).await), ["after"]);
    assert_eq!(texts(&messages(&mut alice, 1).await), ["after too"]);
    // Someone new on either process sees the whole conversation once.
    let (_, everything) = resume_at(cluster.processes[0].addr, "general", None, Some(0)).await;
    let mut all = texts(&everything);
    all.sort();
    assert_eq!(
        all,
        [
            "a1",
            "a2",
            "a3",
            "after",
            "after too",
            "b1",
            "b2",
            "b3",
            "hello"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_garbled_frames_on_redis_do_not_silence_the_cluster() {
    let Some(cluster) = Cluster::start().await else {
        return;
    };
    let mut alice = cluster.client_in(0, "general").await;
    let mut bob = cluster.client_in(1, "general").await;
    alice.say_with_id("before", "a-0").await;
    bob.expect_message("Anonymous", "before").await;

    // Whoever reaches Redis publishes ids far ahead of the store (the
    // largest one too: `last + 1` must not overflow), and what is not a
    // batch of messages at all.
    let forged = |id: u64| {
        serde_json::json!([{
            "id": id,
            "room": "general",
            "sent_at": "2026-01-01T00:00:00.000Z",
            "from": 1,
            "nickname": "mallory",
            "text": format!("forged {id}"),
            "client_key": null,
        }])
        .to_string()
    };
    let redis = redis::Client::open(cluster.redis.url()).unwrap();
    let mut connection = redis.get_multiplexed_async_connection().await.unwrap();
    for payload in [
        forged(u64::MAX),
        forged(1 << 40),
        "not json".to_owned(),
        r#"[{"id": -1}]"#.to_owned(),
    ] {
        redis::AsyncCommands::publish::<_, _, ()>(&mut connection, "parley:messages", payload)
            .await
            .unwrap();
    }
    redis::AsyncCommands::publish::<_, _, ()>(&mut connection, "parley:presence", "[{")
        .await
        .unwrap();

    // Published after the forgeries, on the same channel: each process
    // relays the real messages next, and none of the forged ones.
    alice.say_with_id("after", "a-1").await;
    bob.say_with_id("after too", "b-1").await;
    assert_eq!(texts(&messages(&mut bob, 1).await), ["after"]);
    assert_eq!(texts(&messages(&mut alice, 1).await), ["after too"]);
}
