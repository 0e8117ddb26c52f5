//! `tunerpool serve`: open the store, start the scheduler, serve HTTP until
//! Ctrl-C or SIGTERM.

use std::time::Instant;

use anyhow::Context;
use tunerpool_catalog::Store;
use tunerpool_http::AppState;
use tunerpool_upstream::{HttpSettings, UpstreamHttp};

use crate::config::Config;

/// The upstream HTTP client as configured.
pub fn upstream_http(config: &Config) -> anyhow::Result<UpstreamHttp> {
    let settings = HttpSettings {
        timeout: config.upstream.timeout,
        connect_timeout: config.upstream.connect_timeout,
        user_agent: config.upstream.user_agent.clone(),
        max_redirects: config.upstream.max_redirects,
        spool_dir: config.data_dir.join("tmp"),
    };
    Ok(UpstreamHttp::new(settings)?)
}

pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    Ok(Store::open(&config.data_dir).await?)
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let http = upstream_http(&config)?;
    let listener = tokio::net::TcpListener::bind(config.listen).await.with_context(|| {
        format!("cannot listen on {} (is another program using the port? choose another with --listen)", config.listen)
    })?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "tunerpool listening");
    println!("tunerpool listening on http://{addr}");
    let _scheduler = crate::scheduler::spawn(store.clone(), http, config.sync.catalog_interval);
    let state = AppState { store: store.clone(), started: Instant::now() };
    tunerpool_http::serve(listener, state, shutdown_signal()).await?;
    store.close().await;
    tracing::info!("tunerpool stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
