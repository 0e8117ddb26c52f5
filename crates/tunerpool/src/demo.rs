//! `tunerpool demo`: everything a newcomer needs to see tunerpool work, with
//! no provider of their own — a simulated Xtream provider in-process (2
//! accounts of 1 connection, 20 live channels), a temporary data dir, the
//! provider added and synced, a downstream user `demo` / `demo` to point a
//! player at, and the gateway serving.

use anyhow::Context;
use fakeprovider::{FakeConfig, FakeProvider};
use tunerpool_catalog::sync::sync_provider;
use tunerpool_catalog::{AccountPatch, NewProvider, ProviderKind, Secret, Store, UserPatch};

use crate::cli::DemoArgs;
use crate::config::Config;
use crate::serve::{shutdown_signal, upstream_http};

pub async fn run(mut config: Config, args: &DemoArgs) -> anyhow::Result<()> {
    let fake_config = FakeConfig::demo();
    let fake = FakeProvider::start(fake_config.clone()).await.context("cannot start the simulated provider")?;
    let (_tmp, data_dir) = match &args.keep_data {
        Some(dir) => (None, dir.clone()),
        None => {
            let tmp = tempfile::Builder::new().prefix("tunerpool-demo-").tempdir()?;
            let dir = tmp.path().to_path_buf();
            (Some(tmp), dir)
        }
    };
    config.data_dir = data_dir;
    let store = Store::open(&config.data_dir).await?;
    let http = upstream_http(&config)?;

    let mut accounts = fake_config.accounts.iter();
    let first = accounts.next().context("the demo provider has no accounts")?;
    let provider = match store.find_provider("Demo provider").await {
        Ok(p) => p,
        Err(_) => {
            let p = store
                .add_provider(&NewProvider {
                    name: "Demo provider".into(),
                    kind: Some(ProviderKind::Xtream),
                    url: fake.url(),
                    username: Some(first.username.clone()),
                    password: Some(Secret::new(first.password.clone())),
                    enabled: true,
                    ..Default::default()
                })
                .await?;
            for (i, a) in accounts.enumerate() {
                let input = AccountPatch {
                    name: Some(format!("Account {}", i + 2)),
                    username: Some(a.username.clone()),
                    password: Some(Secret::new(a.password.clone())),
                    priority: Some(i as i64 + 1),
                    ..Default::default()
                };
                store.create_account(p.id, &input).await?;
            }
            p
        }
    };
    // With --keep-data the stored URL may point at an earlier run's port.
    store.set_provider_url(provider.id, &fake.url()).await?;
    let report = sync_provider(&store, &http, provider.id).await?;
    let guide = tunerpool_catalog::epg::refresh_guide(&store, &http, provider.id).await?;
    // A login for players. Its password is printed below on purpose: it is
    // the demo's fixed, well-known credential.
    if store.user_by_name("demo").await?.is_none() {
        store
            .create_user(&UserPatch {
                username: Some("demo".into()),
                password: Some(Secret::new("demo")),
                max_connections: Some(2),
                ..Default::default()
            })
            .await?;
    }

    let listener = tokio::net::TcpListener::bind(config.listen).await.with_context(|| {
        format!("cannot listen on {} (choose another port with --listen 127.0.0.1:PORT)", config.listen)
    })?;
    let addr = listener.local_addr()?;
    let shown = crate::serve::shown_addr(addr);
    let admin = crate::admin_token::load(&config)?;
    println!("tunerpool listening on http://{shown}");
    println!();
    println!(
        "Demo: simulated provider at {} with {} accounts, synced {} live channels, {} movies, {} series.",
        fake.url(),
        fake_config.accounts.len(),
        report.live,
        report.vod,
        report.series
    );
    let api = |path: &str| format!("curl -H 'Authorization: Bearer {}' http://{shown}{path}", admin.text);
    println!(
        "  Watch:      http://{shown}/live/demo/demo/1.ts   (VLC, mpv, ffplay; 2 accounts of 1 connection: 2 channels at once)"
    );
    println!("  Web UI:     http://{shown}/   (log in with the admin token below)");
    println!("  Token:      {}", admin.text);
    println!("Point a player at it as user demo / demo:");
    println!("  M3U:        http://{shown}/get.php?username=demo&password=demo&type=m3u_plus&output=ts");
    println!("  Xtream:     server http://{shown}  username demo  password demo");
    println!("  HDHomeRun:  http://{shown}/hdhr/demo/demo   (Plex, Jellyfin, Emby: add this as the tuner's address)");
    if let Some(g) = guide {
        println!(
            "  Guide:      http://{shown}/xmltv.php?username=demo&password=demo   ({} channels, {} programmes)",
            g.channels, g.programmes
        );
    }
    println!("The admin API (every /api/v1 route wants the token):");
    println!("  Pool:       {}", api("/api/v1/pool"));
    println!("  Channels:   {}", api("/api/v1/channels"));
    println!("  Sessions:   {}", api("/api/v1/sessions"));
    println!("  Providers:  {}", api("/api/v1/providers"));
    println!("  Metrics:    {}", api("/metrics"));
    println!("  Health:     http://{shown}/healthz");
    println!("  Provider's own counters: {}/_control/counters", fake.url());
    println!(
        "Data dir: {}{}",
        config.data_dir.display(),
        if args.keep_data.is_some() { "" } else { " (removed on exit)" }
    );
    println!("Press Ctrl-C to stop.");

    let state = crate::serve::app_state(&config, &store, &http, crate::serve::ledger(&config).await?, admin.token);
    tunerpool_http::serve(listener, state, shutdown_signal()).await?;
    store.close().await;
    fake.shutdown().await;
    Ok(())
}
