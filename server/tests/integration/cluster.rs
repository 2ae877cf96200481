//! Several server processes (the real binary) on one PostgreSQL database
//! and one Redis, and the support that runs them.

use crate::support::{
    cluster::{Redis, ServerProcess},
    Database,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stops_and_starts_again_on_its_port() {
    let Some(mut redis) = Redis::start().await else {
        return;
    };
    assert!(redis.answers().await);
    let port = redis.port();
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}"));
    redis.stop().await;
    assert!(!redis.answers().await, "stopped");
    redis.start_again().await;
    assert_eq!(redis.port(), port);
    assert!(redis.answers().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_database_and_redis_serve_welcome_and_share_a_room() {
    let Some(database) = Database::postgres().await else {
        return;
    };
    let Some(redis) = Redis::start().await else {
        return;
    };
    let (database, redis) = (database.url(), redis.url());
    let env = [
        ("DATABASE_URL", database.as_str()),
        ("REDIS_URL", redis.as_str()),
        ("RUST_LOG", "warn"),
    ];
    let mut first = ServerProcess::start(&env).await;
    let mut second = ServerProcess::start(&env).await;
    assert_ne!(first.addr, second.addr);
    for server in [&first, &second] {
        let health = reqwest::get(server.url("/healthz")).await.unwrap();
        assert_eq!(health.status(), 200);
        assert_eq!(health.text().await.unwrap(), "ok\n");
        let client = server.client().await;
        assert_eq!(
            client.welcome["payload"]["room"], "general",
            "{}",
            client.welcome
        );
    }

    // Redis shares the room: a message said on one process reaches a
    // client of the other, both ways.
    let mut alice = first.client().await;
    let mut bob = second.client().await;
    alice.say("from the first process").await;
    bob.expect_message("Anonymous", "from the first process")
        .await;
    bob.say("from the second one").await;
    alice
        .expect_message("Anonymous", "from the second one")
        .await;

    // A graceful stop, and a crash.
    assert!(first.stop().await.success(), "SIGTERM is a clean exit");
    second.kill().await;
    assert!(reqwest::get(second.url("/healthz")).await.is_err());
}
