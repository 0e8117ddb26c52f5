//! `tunerpool demo`: everything a newcomer needs to see tunerpool work, with
//! no provider of their own — a simulated Xtream provider in-process (2
//! accounts of 1 connection, 20 live channels), a second one that carries
//! the same channels under other names and stream ids ("UK: CHANNEL 1 HD")
//! plus five of its own (2 accounts of 1 connection), a temporary data dir,
//! both providers added and synced (so the lineup shows channels with two
//! sources), a downstream user `demo` / `demo` to point a player at, and the
//! gateway serving, probing the sources nobody watches.

use anyhow::Context;
use fakeprovider::{FakeConfig, FakeProvider};
use tunerpool_catalog::sync::sync_provider;
use tunerpool_catalog::{AccountPatch, NewProvider, ProviderKind, Secret, Store, UserPatch};

use crate::cli::DemoArgs;
use crate::config::Config;
use crate::serve::{shutdown_signal, upstream_http};

/// The second simulated provider: the first one's 20 channels under other
/// names ("UK: CHANNEL 1 HD") and stream ids (1001…), and 5 of its own.
/// Some send other pictures (HEVC 360p, SD interlaced H.264 and MPEG-2) and
/// three of its own are dead (audio only, a web page, a 10 s placeholder
/// clip), so that measurement, probes and the score have something to tell.
fn second_config() -> FakeConfig {
    use fakeprovider::{ChannelMedia, LiveMedia};
    let media = [
        (1, LiveMedia::Hevc360p25),
        (2, LiveMedia::H264_576i25),
        (3, LiveMedia::Mpeg2_576i25),
        (21, LiveMedia::RadioAac),
        (22, LiveMedia::Html),
        (23, LiveMedia::Placeholder),
    ];
    FakeConfig {
        live_media: media.into_iter().map(|(channel, media)| ChannelMedia { channel, media }).collect(),
        accounts: vec![
            fakeprovider::AccountSpec::new("second1", "second-pass1", 1),
            fakeprovider::AccountSpec::new("second2", "second-pass2", 1),
        ],
        live_channels: 25,
        live_name_template: "UK: CHANNEL {i} HD".into(),
        stream_id_offset: 1000,
        ..FakeConfig::demo()
    }
}

/// The provider called `name` (added on the first run, kept with
/// `--keep-data`), its URL pointed at `fake`, and its accounts those of `cfg`.
async fn ensure_provider(
    store: &Store,
    name: &str,
    fake: &FakeProvider,
    cfg: &FakeConfig,
) -> anyhow::Result<tunerpool_catalog::Provider> {
    let mut accounts = cfg.accounts.iter();
    let first = accounts.next().context("the demo provider has no accounts")?;
    let provider = match store.find_provider(name).await {
        Ok(p) => p,
        Err(_) => {
            let p = store
                .add_provider(&NewProvider {
                    name: name.into(),
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
    Ok(provider)
}

pub async fn run(mut config: Config, args: &DemoArgs) -> anyhow::Result<()> {
    // Probing shows itself in the demo (unless configured otherwise): its accounts have one connection each,
    // so probes may use them all; a viewer takes a probe's slot within a second.
    if config.probe == crate::config::ProbeConfig::default() {
        config.probe.auto = true;
        config.probe.reserve = 0;
        config.probe.interval = std::time::Duration::from_secs(10);
    }
    let fake_config = FakeConfig::demo();
    let fake = FakeProvider::start(fake_config.clone()).await.context("cannot start the simulated provider")?;
    let second_cfg = second_config();
    let second = FakeProvider::start(second_cfg.clone()).await.context("cannot start the second simulated provider")?;
    let (_tmp, data_dir) = match &args.keep_data {
        Some(dir) => (None, dir.clone()),
        None => {
            let tmp = tempfile::Builder::new().prefix("tunerpool-demo-").tempdir()?;
            let dir = tmp.path().to_path_buf();
            (Some(tmp), dir)
        }
    };
    config.data_dir = data_dir;
    let store = crate::serve::open_store(&config).await?;
    let http = upstream_http(&config)?;

    let provider = ensure_provider(&store, "Demo provider", &fake, &fake_config).await?;
    let report = sync_provider(&store, &http, provider.id).await?;
    let other = ensure_provider(&store, "Second demo provider", &second, &second_cfg).await?;
    let other_report = sync_provider(&store, &http, other.id).await?;
    tunerpool_catalog::epg::refresh_guide(&store, &http, other.id).await?;
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
    // A TV or a phone on the LAN cannot use 127.0.0.1: players get the
    // machine's LAN address when the demo listens on every interface.
    let lan = addr.ip().is_unspecified().then(lan_address).flatten();
    let player = lan.map(|ip| std::net::SocketAddr::new(ip, addr.port()).to_string()).unwrap_or_else(|| shown.clone());
    println!("tunerpool listening on http://{shown}");
    if player != shown {
        println!("  and on the LAN at http://{player}");
    }
    println!();
    println!(
        "Demo: simulated provider at {} with {} accounts, synced {} live channels, {} movies, {} series.",
        fake.url(),
        fake_config.accounts.len(),
        report.live,
        report.vod,
        report.series
    );
    println!(
        "Demo: a second simulated provider at {} with {} live channels, {} of them joined the first's channels (same tvg-id or name).",
        second.url(),
        other_report.live,
        other_report.lineup.joined + other_report.lineup.reattached
    );
    let merged = store
        .channels(&tunerpool_catalog::ChannelQuery { per_page: Some(100), ..Default::default() })
        .await?
        .items
        .into_iter()
        .find(|c| c.sources.len() >= 2);
    println!();
    println!("Point a player at it as user demo / demo:");
    println!(
        "  Watch:      http://{player}/live/demo/demo/1.ts   (VLC, mpv, ffplay; 2 accounts of 1 connection: 2 channels at once)"
    );
    if let Some(c) = merged {
        println!(
            "  2 sources:  http://{player}/live/demo/demo/{}.ts   ({}: {}; plays from the second provider when the first's accounts are all in use)",
            c.id,
            c.name,
            c.sources.iter().map(|s| format!("{} at {}", s.name, s.provider)).collect::<Vec<_>>().join(", ")
        );
    }
    println!("  M3U:        http://{player}/get.php?username=demo&password=demo&type=m3u_plus&output=ts");
    println!("  Xtream:     server http://{player}  username demo  password demo");
    println!("  HDHomeRun:  http://{player}/hdhr/demo/demo   (Plex, Jellyfin, Emby: add this as the tuner's address)");
    if let Some(g) = guide {
        println!(
            "  Guide:      http://{player}/xmltv.php?username=demo&password=demo   ({} channels, {} programmes)",
            g.channels, g.programmes
        );
    }
    println!();
    println!("Administer it with the admin token (the web UI asks for it; every /api/v1 route wants it):");
    println!("  Web UI:     http://{shown}/");
    println!("  Token:      {}", admin.text);
    let api = |path: &str| format!("curl -H 'Authorization: Bearer {}' http://{shown}{path}", admin.text);
    println!("  Pool:       {}", api("/api/v1/pool"));
    println!("  Channels:   {}", api("/api/v1/channels"));
    println!("  Sessions:   {}", api("/api/v1/sessions"));
    println!("  Providers:  {}", api("/api/v1/providers"));
    println!("  Metrics:    {}", api("/metrics"));
    println!("  Health:     http://{shown}/healthz");
    println!("  Provider's own counters: {}/_control/counters", fake.url());
    println!();
    println!(
        "Data dir: {}{}",
        config.data_dir.display(),
        if args.keep_data.is_some() { "" } else { " (removed on exit)" }
    );
    println!("Press Ctrl-C to stop.");

    let state = crate::serve::app_state(&config, &store, &http, crate::serve::ledger(&config).await?, admin.token)?;
    crate::serve::start_always_on(&state).await;
    // History and alerts, as `serve` keeps them.
    let (alerting, _sender) = crate::serve::alerting(&config, &store).await?;
    let _history_job = crate::scheduler::spawn_history(
        state.clone(),
        crate::serve::history_job(&config, alerting),
        crate::cluster::Jobs::standalone(),
    );
    tunerpool_http::serve(listener, state, shutdown_signal()).await?;
    store.close().await;
    fake.shutdown().await;
    second.shutdown().await;
    Ok(())
}

/// The address this machine is reached at on its LAN: the source address of
/// its default route. std is enough: connecting a UDP socket sends nothing,
/// it only makes the OS choose the interface. `None` without a route.
fn lan_address() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    Some(socket.local_addr().ok()?.ip()).filter(|ip| !ip.is_unspecified() && !ip.is_loopback())
}
