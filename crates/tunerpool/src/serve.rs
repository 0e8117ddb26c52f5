//! `tunerpool serve`: open the store, start the scheduler, serve HTTP until
//! Ctrl-C or SIGTERM.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tunerpool_catalog::Store;
use tunerpool_http::realip::TrustedProxies;
use tunerpool_http::{
    AccessSettings, AdminToken, AppState, ClientAuth, ClipSettings, DiscoverySettings, HdhrSettings, PoolSettings,
    RefusalClip,
};
use tunerpool_ledger::{AnyLedger, MemoryLedger, RedisLedger};
use tunerpool_upstream::{HttpSettings, UpstreamHttp};

use tunerpool_pool::select::AccountPolicy;
use tunerpool_relay::relay::Relay;
use tunerpool_relay::settings::RelaySettings;

use crate::config::{ClientIpHeader, Config, LedgerBackend, PoolPolicy, UserLimitPolicy};

/// The upstream HTTP client as configured.
pub fn upstream_http(config: &Config) -> anyhow::Result<UpstreamHttp> {
    let settings = HttpSettings {
        timeout: config.upstream.timeout,
        connect_timeout: config.upstream.connect_timeout,
        user_agent: config.upstream.user_agent.clone(),
        max_redirects: config.upstream.max_redirects,
        spool_dir: config.data_dir.join("tmp"),
        caps: tunerpool_upstream::Caps {
            playlist: config.sync.max_playlist_bytes,
            api: config.sync.max_api_bytes,
            guide: config.epg.max_guide_bytes,
        },
    };
    Ok(UpstreamHttp::new(settings)?)
}

/// The lease ledger the configuration asks for. Cluster mode always uses Redis, with leases that live no longer
/// than `cluster.ttl`: a dead instance's slots come back as soon as its channels can be taken over.
pub async fn ledger(config: &Config) -> anyhow::Result<Arc<AnyLedger>> {
    let (mut ttl, cooldown) = (config.pool.lease_ttl, config.pool.release_cooldown);
    let backend = if config.cluster_mode() {
        ttl = ttl.min(config.cluster.ttl);
        LedgerBackend::Redis
    } else {
        config.pool.ledger
    };
    Ok(Arc::new(match (backend, &config.pool.redis_url) {
        (LedgerBackend::Redis, Some(url)) => {
            let ledger = RedisLedger::connect(url, ttl, "tunerpool:")
                .await
                .context("cannot use the Redis ledger (check pool.redis_url and that Redis is running)")?
                .with_release_cooldown(cooldown);
            tracing::info!(ttl = ?ttl, "lease ledger: redis");
            AnyLedger::Redis(ledger)
        }
        _ => AnyLedger::Memory(MemoryLedger::new(ttl).with_release_cooldown(cooldown)),
    }))
}

/// The state every HTTP handler shares. Fails only on a refusal clip file
/// that cannot be read or is not a clip (the error names the key).
pub fn app_state(
    config: &Config,
    store: &Store,
    http: &UpstreamHttp,
    ledger: Arc<AnyLedger>,
    admin_token: AdminToken,
) -> anyhow::Result<AppState> {
    let r = &config.relay;
    let settings = RelaySettings {
        linger: r.linger,
        acquire_wait: r.acquire_wait,
        stall_timeout: r.stall_timeout,
        buffer_seconds: r.buffer_seconds,
        buffer_bytes: usize::try_from(r.buffer_max).unwrap_or(usize::MAX),
        max_switches: r.max_switches,
        wake_interval: r.wake_interval,
        viewer_stall: r.viewer_stall,
        user_limit_policy: match r.user_limit_policy {
            UserLimitPolicy::ReplaceOldest => tunerpool_relay::UserLimitPolicy::ReplaceOldest,
            UserLimitPolicy::Refuse => tunerpool_relay::UserLimitPolicy::Refuse,
        },
        policy: match config.pool.policy {
            PoolPolicy::Priority => AccountPolicy::Priority,
            PoolPolicy::LeastLoaded => AccountPolicy::LeastLoaded,
        },
        quality_weights: config.quality.weights(),
        quality_policy: config.quality.policy,
        transcode: tunerpool_relay::transcode::TranscodeSettings {
            ffmpeg: config.transcode.ffmpeg.clone().into(),
            input_args: config.transcode.input_args.split_whitespace().map(str::to_owned).collect(),
            max_running: config.transcode.max_running,
            ..Default::default()
        }
        .with_profiles(&config.transcode.profiles),
        probe: tunerpool_relay::probe::ProbeSettings {
            auto: config.probe.auto,
            reserve: config.probe.reserve,
            duration: config.probe.duration,
            interval: config.probe.interval,
            remeasure_after: config.probe.remeasure_after,
        },
        reserved_slots: config.pool.reserved_slots,
        reserved_priority: u8::try_from(config.pool.reserved_priority).unwrap_or(u8::MAX),
        preempt: config.pool.preempt,
        max_viewers_per_session: r.max_viewers_per_session,
        warm_linger: r.warm_linger,
        warm_after_starts: r.warm_after_starts,
        always_on_yields: r.always_on_yields,
        ..RelaySettings::default()
    };
    Ok(AppState {
        store: store.clone(),
        http: http.clone(),
        relay: Relay::new(
            tunerpool_http::StoreCatalog::shared(store.clone()),
            ledger.clone(),
            http.client().clone(),
            settings,
        ),
        ledger,
        pool: PoolSettings { expiry_warning_days: config.pool.expiry_warning_days },
        started: Instant::now(),
        public_url: config.public_url.clone(),
        admin_token,
        access: access_settings(config),
        logins: Arc::new(ClientAuth::default()),
        hdhr: HdhrSettings {
            root_user: Some(config.hdhomerun.root_user.clone()).filter(|u| !u.is_empty()),
            friendly_name: config.hdhomerun.friendly_name.clone(),
        },
        clip: clip_settings(config)?,
    })
}

/// The refusal clip (built in, or `outputs.refusal_clip_file`) looped for
/// `outputs.refusal_clip_seconds`, and the outputs that send it.
fn clip_settings(config: &Config) -> anyhow::Result<ClipSettings> {
    let o = &config.outputs;
    let clip = if o.refusal_clip_file.is_empty() {
        RefusalClip::built_in(o.refusal_clip_seconds)
    } else {
        let path = &o.refusal_clip_file;
        let bytes = std::fs::read(path).with_context(|| format!("outputs.refusal_clip_file: cannot read {path:?}"))?;
        RefusalClip::new(&bytes, o.refusal_clip_seconds)
            .map_err(|e| anyhow::anyhow!("outputs.refusal_clip_file: {path:?} is not a usable clip: {e}"))?
    };
    Ok(ClipSettings {
        clip: Some(Arc::new(clip)),
        live: o.refusal_clip_live,
        hdhomerun: o.refusal_clip_hdhomerun,
        stream: o.refusal_clip_stream,
    })
}

/// Starts the keepers of the channels marked always-on (a failure to read
/// them is logged: the gateway serves without them).
pub async fn start_always_on(state: &AppState) {
    match state.store.always_on_channels().await {
        Ok(ids) => {
            for id in ids {
                state.relay.set_always_on(id, true);
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot read the always-on channels; none kept on"),
    }
}

/// Where HDHomeRun discovery listens, as configured, announcing the port
/// the HTTP server listens on.
pub fn discovery_settings(config: &Config, http: std::net::SocketAddr) -> DiscoverySettings {
    DiscoverySettings {
        interface: config.hdhomerun.discovery_bind,
        ssdp_port: config.hdhomerun.ssdp_port,
        hdhomerun_port: config.hdhomerun.discovery_port,
        http_port: http.port(),
    }
}

/// Who may use what without the admin token, as configured.
fn access_settings(config: &Config) -> AccessSettings {
    let header = match config.http.client_ip_header {
        ClientIpHeader::XForwardedFor => tunerpool_http::realip::ClientIpHeader::XForwardedFor,
        ClientIpHeader::Forwarded => tunerpool_http::realip::ClientIpHeader::Forwarded,
    };
    AccessSettings {
        anonymous_streams: config.outputs.anonymous_streams,
        anonymous_max_connections: config.outputs.anonymous_max_connections,
        open_metrics: config.http.open_metrics,
        proxies: TrustedProxies::new(config.http.trusted_proxies.clone(), header),
    }
}

/// The address to show for `addr`: 127.0.0.1 instead of "all interfaces".
pub fn shown_addr(addr: std::net::SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("127.0.0.1:{}", addr.port())
    } else {
        addr.to_string()
    }
}

/// The store in the data dir, with the `lineup.*` settings its syncs follow.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let store = Store::open_url(config.store.url.as_deref(), &config.data_dir).await.with_context(|| match &config
        .store
        .url
    {
        Some(url) => {
            format!("cannot open the store at store.url = {}", tunerpool_upstream::redact::redact_url(url, &[]))
        }
        None => format!("cannot open the store in {}", config.data_dir.display()),
    })?;
    store.set_lineup_settings(config.lineup.settings());
    Ok(store)
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let http = upstream_http(&config)?;
    let admin = crate::admin_token::load(&config)?;
    // Before the port is taken and anything is announced: an unreachable Redis is a start-up error, named.
    let ledger = ledger(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen).await.with_context(|| {
        format!("cannot listen on {} (is another program using the port? choose another with --listen)", config.listen)
    })?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "tunerpool listening");
    if let crate::admin_token::Origin::Generated(path) = &admin.origin {
        // Shown this once; afterwards it is only in the file.
        println!("admin token: {}, stored in {}", admin.text, path.display());
    }
    if config.outputs.anonymous_streams {
        tracing::warn!(
            max_connections = config.outputs.anonymous_max_connections,
            "outputs.anonymous_streams is on: anyone who reaches this port can watch through /stream, /movie and \
             /series and read /epg.xml (keep it to a trusted LAN)"
        );
    }
    println!("tunerpool listening on http://{addr}");
    println!("Web UI: http://{}/ (log in with the admin token)", shown_addr(addr));
    let (alerting, _sender) = alerting(&config, &store).await?;
    let state = app_state(&config, &store, &http, ledger, admin.token)?;
    // Before any session starts: in cluster mode every channel's session is owned by one instance, and the
    // scheduled jobs run on one instance at a time.
    let (jobs, _cluster) = crate::cluster::join(&config, &state.relay).await?;
    if let Some(cluster) = jobs.cluster() {
        // The failed-login limit counts across the cluster.
        state.logins.set_cluster(cluster.clone());
    }
    let _catalog_job = crate::scheduler::spawn(store.clone(), http.clone(), config.sync.catalog_interval, jobs.clone());
    let _details_job = crate::scheduler::spawn_details(
        store.clone(),
        http.clone(),
        config.sync.details_initial_delay,
        config.sync.details_interval,
        config.pool.expiry_warning_days,
        alerting.clone(),
        jobs.clone(),
    );
    let _epg_job = crate::scheduler::spawn_epg(store.clone(), http.clone(), config.epg.refresh, jobs.clone());
    // The materialized live listing, rebuilt within ~2 s of any change (at
    // start too): the client listings read it instead of the lineup's query.
    // In cluster mode by the instance that runs the scheduled jobs only.
    let listing_jobs = jobs.clone();
    let _listing_job = crate::scheduler::CancelOnDrop::new(tunerpool_http::keep_live_listing_fresh(
        store.clone(),
        std::time::Duration::from_secs(2),
        move || listing_jobs.runs_jobs(),
    ));
    start_always_on(&state).await;
    let _history_job = crate::scheduler::spawn_history(state.clone(), history_job(&config, alerting), jobs);
    if let Some(user) = &state.hdhr.root_user {
        tracing::warn!(user = %user, "hdhomerun.root_user is set: anyone who reaches this port can use the HDHomeRun \
            tuner at / as this user, without a password (keep it to a trusted LAN)");
        println!("HDHomeRun tuner: add http://{} in Plex, Jellyfin or Channels DVR", shown_addr(addr));
    }
    // Discovery stops with the server: cancelled when serving ends, however it ends.
    let stop_discovery = tokio_util::sync::CancellationToken::new();
    let _discovery = match config.hdhomerun.discovery {
        true => Some(
            tunerpool_http::start_discovery(state.clone(), discovery_settings(&config, addr), stop_discovery.clone())
                .await
                .context(
                    "cannot start HDHomeRun discovery (hdhomerun.discovery; is another program using the port?)",
                )?,
        ),
        false => None,
    };
    let served = tunerpool_http::serve(listener, state, shutdown_signal()).await;
    stop_discovery.cancel();
    served?;
    store.close().await;
    tracing::info!("tunerpool stopped");
    Ok(())
}

/// The alert rules and webhooks as configured, and the running sender of
/// their deliveries (stopped when the guard is dropped).
pub async fn alerting(
    config: &Config,
    store: &Store,
) -> anyhow::Result<(crate::scheduler::Alerting, crate::scheduler::CancelOnDrop)> {
    let a = &config.alerts;
    let targets: Vec<String> = a.webhooks.iter().map(tunerpool_alerts::Webhook::target).collect();
    // Deliveries to webhooks removed from the configuration have nowhere to go.
    let dropped = store.drop_deliveries_except(&targets).await?;
    if dropped > 0 {
        tracing::info!(dropped, "alerts: dropped deliveries to webhooks no longer configured");
    }
    let backoff = tunerpool_alerts::Backoff { give_up_after: a.retry_for, ..Default::default() };
    let sender = tunerpool_alerts::Sender::new(a.webhooks.clone(), backoff, std::time::Duration::from_secs(10))?;
    let wake = Arc::new(tokio::sync::Notify::new());
    let guard = crate::scheduler::CancelOnDrop::new(sender.spawn(store.clone(), wake.clone()));
    for w in &a.webhooks {
        tracing::info!(webhook = %w, "alerts go to this webhook");
    }
    let alerting = crate::scheduler::Alerting {
        rules: tunerpool_alerts::Rules { expiry_warning_days: config.pool.expiry_warning_days, ..Default::default() },
        webhooks: a.webhooks.clone(),
        notify_resolved: a.notify_resolved,
        wake,
    };
    Ok((alerting, guard))
}

/// The history job as configured.
pub fn history_job(config: &Config, alerting: crate::scheduler::Alerting) -> crate::scheduler::HistoryJob {
    let secs = |d: std::time::Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    crate::scheduler::HistoryJob {
        interval: config.history.sample_interval,
        retention: tunerpool_catalog::history::Retention {
            raw_secs: secs(config.history.raw_retention),
            keep_secs: secs(config.history.retention),
        },
        alerting,
    }
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
