use clap::Parser;
use server::{config::Config, store::Store, AppState};
use tracing_subscriber::EnvFilter;

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
    server::serve(listener, state, shutdown_signal()).await?;
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
