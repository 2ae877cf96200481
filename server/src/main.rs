use std::time::Duration;

use clap::Parser;
use server::{config::Config, store::Store, AppState};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// How long shutdown waits for a scrape of `/metrics` in progress.
const METRICS_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&config.log)?)
        .init();

    // cargo-leptos bakes the output name in at build time and passes the rest
    // through LEPTOS_* variables; the defaults serve `target/site`.
    let mut leptos_options = leptos::config::get_configuration(None)?.leptos_options;
    leptos_options.site_addr = config.addr;

    config.check()?;
    let store = Store::open(&config.store.database_url).await?;
    // Said before the page's address: whoever waits for that line (the
    // tests) has this one too by then.
    let metrics_listener = match config.metrics_addr {
        Some(addr) => {
            let listener = TcpListener::bind(addr).await?;
            tracing::info!("metrics on http://{}/metrics", listener.local_addr()?);
            Some(listener)
        }
        None => None,
    };
    let listener = server::bind(config.addr)?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    let state = AppState::new(
        leptos_options,
        config.connection,
        config.chat,
        config.http,
        store.clone(),
    );
    if let Some(url) = &config.redis_url {
        server::join_cluster(&state, url).await?;
    }
    if let Some(age) = config.store.retention {
        tracing::info!(retention = %humantime::format_duration(age), "deleting older messages");
        tokio::spawn(server::retention::run(
            store.clone(),
            age,
            state.shutdown.clone(),
        ));
    }
    // Stops with the page's server, whose shutdown cancels `state.shutdown`.
    let metrics = metrics_listener.map(|listener| {
        tokio::spawn(server::metrics::serve(
            listener,
            state.prometheus.clone(),
            state.shutdown.clone(),
        ))
    });
    server::serve(listener, state, shutdown_signal()).await?;
    if let Some(metrics) = metrics {
        match tokio::time::timeout(METRICS_SHUTDOWN_GRACE, metrics).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(err))) => tracing::warn!(%err, "the metrics listener failed"),
            Ok(Err(err)) => tracing::warn!(%err, "the metrics task failed"),
            Err(_) => tracing::warn!("a scrape of /metrics did not finish in time"),
        }
    }
    store.close().await;
    tracing::info!("shut down");
    Ok(())
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received");
}
