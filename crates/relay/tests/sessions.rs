//! Live sessions against the simulated provider over real sockets, with the
//! catalog in memory: failover, zapping on a one-connection account, and
//! limits that hold. No HTTP server of ours, no database.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fakeprovider::{AccountSpec, FakeConfig, FakeProvider, Fault, FaultKind};
use support::{fast, keep_watching, relay, relay_with_ledger, wait_for, watch, MemoryCatalog};
use tunerpool_domain::Level;
use tunerpool_ledger::MemoryLedger;
use tunerpool_relay::relay::WatchError;
use tunerpool_relay::session::State;
use tunerpool_relay::settings::RelaySettings;
use tunerpool_relay::Viewer;

fn viewer() -> Viewer {
    Viewer::anonymous("127.0.0.1:40000")
}

async fn provider(accounts: &[(&str, &str, u32)]) -> FakeProvider {
    let specs = accounts.iter().map(|(u, p, max)| AccountSpec::new(u, p, *max)).collect();
    FakeProvider::start(FakeConfig::with_accounts(specs)).await.expect("the simulated provider starts")
}

/// A catalog with one provider at `fake` (accounts as the panel reports
/// them) and channels 1..=5, each played from the provider's stream of the
/// same number.
fn catalog(fake: &FakeProvider, accounts: &[(&str, &str, u32)]) -> Arc<MemoryCatalog> {
    let catalog = Arc::new(MemoryCatalog::default());
    let accounts: Vec<_> = accounts.iter().map(|(u, p, max)| (*u, *p, i64::from(*max))).collect();
    catalog.add_xtream(1, "Fake", fake, &accounts);
    for ch in 1..=5 {
        catalog.add_channel(ch, 1, &[ch]);
    }
    catalog
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_upstream_fails_over_to_the_next_account_and_the_viewer_keeps_receiving() {
    let accounts = [("a", "pa", 1), ("b", "pb", 1)];
    let fake = provider(&accounts).await;
    let catalog = catalog(&fake, &accounts);
    let relay = relay(&catalog, fast());
    // Account a's streams (its reconnect included) are cut after 300 KB, about 1.3 s of the sample.
    fake.set_fault(Fault::new(FaultKind::CutAfter { bytes: 300_000 }).for_user("a"));

    let mut stream = relay.watch(1, viewer()).await.unwrap_or_else(|e| panic!("channel 1 plays: {e}"));
    // Past both cuts at a (600 KB) and well into b.
    let w = watch(&mut stream, Duration::from_secs(15), |w| w.bytes > 1_000_000).await;
    assert!(w.bytes > 1_000_000 && !w.ended, "the viewer kept receiving: {w:?}");
    assert!(w.aligned, "aligned TS throughout");
    assert!(w.longest_gap < Duration::from_secs(2), "longest gap {:?}", w.longest_gap);

    let c = fake.counters();
    assert_eq!(c.accounts["a"].opened, 2, "one reconnect on the same account: {c:?}");
    assert_eq!(c.accounts["b"].opened, 1, "then the next account: {c:?}");
    let sessions = relay.sessions();
    assert_eq!((sessions.len(), sessions[0].failovers), (1, 1), "{sessions:?}");
    assert_eq!(sessions[0].upstream.as_ref().map(|u| u.account.as_str()), Some("b"));

    // The events log tells the story, without the password.
    let failovers = catalog.events_of("failover");
    assert_eq!(failovers.len(), 1, "{failovers:?}");
    let e = &failovers[0];
    assert_eq!((e.level, e.channel_id, e.account_id), (Level::Warn, Some(1), Some(catalog.account_id("a"))));
    assert!(e.message.contains("next source") && !e.message.contains("pa"), "{}", e.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_source_fails_over_to_the_channels_next_source() {
    let accounts = [("a", "pa", 1)];
    let fake = provider(&accounts).await;
    let catalog = catalog(&fake, &accounts);
    // Channel 10: the provider's stream 3 first, stream 4 second; stream 3 is cut after 300 KB every time.
    catalog.add_channel(10, 1, &[3, 4]);
    fake.set_fault(Fault::new(FaultKind::CutAfter { bytes: 300_000 }).for_stream(3));
    let relay = relay(&catalog, fast());

    let mut stream = relay.watch(10, viewer()).await.unwrap_or_else(|e| panic!("channel 10 plays: {e}"));
    let w = watch(&mut stream, Duration::from_secs(15), |w| w.bytes > 1_000_000).await;
    assert!(w.bytes > 1_000_000 && !w.ended && w.aligned, "{w:?}");
    assert!(w.longest_gap < Duration::from_secs(2), "longest gap {:?}", w.longest_gap);
    let failovers = catalog.events_of("failover");
    assert_eq!(failovers.len(), 1, "{failovers:?}");
    assert_eq!(relay.sessions()[0].failovers, 1);
    let c = fake.counters();
    assert_eq!(c.accounts["a"].max_concurrent, 1, "the one slot, handed from source to source: {c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zapping_on_a_one_connection_account_takes_the_lingering_sessions_slot_at_once() {
    let accounts = [("a", "pa", 1)];
    let fake = provider(&accounts).await;
    let catalog = catalog(&fake, &accounts);
    // A long linger and a long wait: only preemption can make the zap quick.
    let settings = RelaySettings { linger: Duration::from_secs(30), acquire_wait: Duration::from_secs(10), ..fast() };
    // With the default release cool-down: without one, the provider may not have noticed the close yet.
    let ledger =
        MemoryLedger::new(Duration::from_secs(15)).with_release_cooldown(tunerpool_ledger::DEFAULT_RELEASE_COOLDOWN);
    let relay = relay_with_ledger(&catalog, settings, ledger);

    let mut one = relay.watch(1, viewer()).await.unwrap_or_else(|e| panic!("channel 1 plays: {e}"));
    let w = watch(&mut one, Duration::from_secs(5), |w| w.bytes > 0).await;
    assert!(w.bytes > 0 && w.aligned, "{w:?}");
    drop(one);
    let lingering = || relay.sessions().iter().any(|s| s.channel_id == 1 && s.state == State::Lingering);
    assert!(wait_for(lingering, Duration::from_secs(2)).await, "channel 1 lingers: {:?}", relay.sessions());
    assert_eq!(fake.counters().accounts["a"].open, 1, "and holds the account's one connection");

    let asked = Instant::now();
    let mut two = relay.watch(2, viewer()).await.unwrap_or_else(|e| panic!("channel 2 plays: {e}"));
    let w = watch(&mut two, Duration::from_secs(5), |w| w.bytes > 0).await;
    assert!(w.bytes > 0 && w.aligned, "{w:?}");
    assert!(asked.elapsed() < Duration::from_secs(3), "channel 2 within {:?}, not after the wait", asked.elapsed());
    let channels: Vec<i64> = relay.sessions().iter().map(|s| s.channel_id).collect();
    assert_eq!(channels, vec![2], "channel 1's session yielded");
    let c = fake.counters();
    assert_eq!((c.accounts["a"].max_concurrent, c.accounts["a"].refused), (1, 0), "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_slot_held_another_channel_waits_then_is_refused_and_the_limit_holds() {
    let accounts = [("a", "pa", 1), ("b", "pb", 1)];
    let fake = provider(&accounts).await;
    let catalog = catalog(&fake, &accounts);
    let acquire_wait = Duration::from_millis(500);
    let relay = relay(&catalog, RelaySettings { acquire_wait, ..fast() });

    // Two viewers hold both slots and keep watching.
    let mut held = Vec::new();
    for ch in [1, 2] {
        let s = relay.watch(ch, viewer()).await.unwrap_or_else(|e| panic!("channel {ch} plays: {e}"));
        held.push(keep_watching(s));
    }
    let both_open = || fake.counters().accounts.values().all(|a| a.open == 1);
    assert!(wait_for(both_open, Duration::from_secs(2)).await, "{:?}", fake.counters());

    let asked = Instant::now();
    match relay.watch(3, viewer()).await {
        Err(WatchError::NoCapacity(why)) => {
            assert!(why.contains("Fake") && why.contains("1/1"), "says why: {why}");
            assert!(!why.contains("pa") && !why.contains("pb"), "no password: {why}");
        }
        Err(other) => panic!("refused for no capacity, not {other:?}"),
        Ok(_) => panic!("a third channel cannot play on two one-connection accounts"),
    }
    assert!(asked.elapsed() >= acquire_wait - Duration::from_millis(50), "waited {:?} first", asked.elapsed());
    assert!(catalog.has_event("refused", Level::Warn), "the refusal is recorded: {:?}", catalog.events_of("refused"));
    // A channel that does not exist is an unknown channel, not a refusal.
    assert!(matches!(relay.watch(999, viewer()).await, Err(WatchError::UnknownChannel(999))));

    let c = fake.counters();
    for (user, a) in &c.accounts {
        assert_eq!((a.max_concurrent, a.refused), (1, 0), "account {user} never over its limit nor refused: {c:?}");
    }
    assert_eq!(c.total_opened, 2, "the refused channel never reached the provider: {c:?}");
    for h in held {
        h.abort();
    }
}

/// Whether `m` says the simulated provider's sample: H.264 1280x720 at 25 fps.
fn is_sample(m: &tunerpool_relay::SourceMeasurement) -> bool {
    let Some(v) = &m.report.video else { return false };
    m.report.verdict == tunerpool_relay::Verdict::Ok
        && v.codec == tunerpool_relay::quality::VideoCodec::H264
        && (v.width, v.height) == (Some(1280), Some(720))
        && v.fps.is_some_and(|f| (f - 25.0).abs() < 0.1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_session_hands_its_sources_measurement_to_the_catalog_while_it_runs_and_when_it_ends() {
    let accounts = [("a", "pa", 1)];
    let fake = provider(&accounts).await;
    let catalog = catalog(&fake, &accounts);
    let settings = RelaySettings { quality_first_after: Duration::from_millis(1500), ..fast() };
    let relay = relay(&catalog, settings);
    let mut stream = relay.watch(2, viewer()).await.unwrap_or_else(|e| panic!("channel 2 plays: {e}"));
    // The first report, while the session runs: once the stream said what it is.
    watch(&mut stream, Duration::from_secs(10), |_| catalog.measurements().iter().any(|m| m.ended.is_none())).await;
    assert!(
        catalog.measurements().iter().any(|m| m.ended.is_none()),
        "a report while running: {:?}",
        catalog.measurements()
    );
    let first = catalog.measurements().into_iter().find(|m| m.ended.is_none()).expect("a running report");
    assert!(is_sample(&first), "the sample, measured: {first:?}");
    assert_eq!((first.stream_id, first.account_id), (1002, catalog.account_id("a")));
    assert!(first.ttfb_ms.is_some() && first.streamed_ms >= 1500 && !first.failed, "{first:?}");
    assert!(first.report.total_bitrate.is_some_and(|b| b > 100_000), "{first:?}");
    // The last one, when the session ends for lack of viewers (after lingering).
    drop(stream);
    assert!(
        wait_for(
            || catalog.measurements().iter().any(|m| m.ended.as_deref() == Some("no viewers")),
            Duration::from_secs(5)
        )
        .await,
        "a report at the end: {:?}",
        catalog.measurements()
    );
    let all = catalog.measurements();
    assert_eq!(all.len(), 2, "one while running (the next is minutes away), one at the end: {all:?}");
    assert!(is_sample(&all[1]) && !all[1].failed && all[1].streamed_ms >= first.streamed_ms, "{:?}", all[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_upstream_connection_is_measured_with_why_it_failed() {
    let accounts = [("a", "pa", 1), ("b", "pb", 1)];
    let fake = provider(&accounts).await;
    let catalog = catalog(&fake, &accounts);
    let relay = relay(&catalog, fast());
    fake.set_fault(Fault::new(FaultKind::CutAfter { bytes: 300_000 }).for_user("a"));
    let mut stream = relay.watch(1, viewer()).await.unwrap_or_else(|e| panic!("channel 1 plays: {e}"));
    let a = catalog.account_id("a");
    let failed_at_a = || catalog.measurements().iter().filter(|m| m.account_id == a && m.failed).count();
    watch(&mut stream, Duration::from_secs(10), |_| failed_at_a() == 2).await;
    assert_eq!(failed_at_a(), 2, "both connections of a measured as failed: {:?}", catalog.measurements());
    for m in catalog.measurements().iter().filter(|m| m.account_id == a) {
        assert!(m.ended.is_some() && m.report.bytes > 0 && m.ttfb_ms.is_some(), "{m:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_that_orders_itself_starts_on_its_best_measured_source() {
    use tunerpool_domain::quality::SourceQuality;
    let accounts = [("a", "pa", 1)];
    let fake = provider(&accounts).await;
    let catalog = catalog(&fake, &accounts);
    // Channel 10: streams 3 then 4. Stream 3 was found dead (no video), 4 is a clean 1080p50.
    catalog.add_channel(10, 1, &[3, 4]);
    catalog.quality.lock().unwrap().extend([
        (1003, SourceQuality { verdict: "no_video".into(), ..Default::default() }),
        (
            1004,
            SourceQuality {
                verdict: "ok".into(),
                video_codec: Some("h264".into()),
                height: Some(1080),
                fps: Some(50.0),
                ..Default::default()
            },
        ),
    ]);
    let relay = relay(&catalog, fast());
    let upstream_of = |relay: &tunerpool_relay::relay::Relay| {
        relay.sessions()[0].upstream.as_ref().map(|u| u.url.clone()).unwrap_or_default()
    };

    // Ordered by hand (the default of this catalog): the channel's order wins.
    let stream = relay.watch(10, viewer()).await.unwrap();
    assert!(upstream_of(&relay).ends_with("/3.ts"), "{}", upstream_of(&relay));
    drop(stream);
    assert!(wait_for(|| relay.sessions().is_empty(), Duration::from_secs(5)).await, "the session did not end");

    // Ordering itself: the dead source goes behind the measured one.
    catalog.channels.lock().unwrap().get_mut(&10).unwrap().auto_order = true;
    let _stream = relay.watch(10, viewer()).await.unwrap();
    assert!(upstream_of(&relay).ends_with("/4.ts"), "{}", upstream_of(&relay));
}
