//! Connection limits: the counters must be exact under concurrency.

mod common;

use std::time::Duration;

use common::*;
use fakeprovider::{Fault, FaultKind, LimitMode};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refuse_at_limit_and_release_on_drop() {
    let p = start(config(&[("u", "p", 2)])).await;
    let c = client();
    let url = |id: u32| format!("{}/live/u/p/{id}.ts", p.url());

    let mut a = c.get(url(1)).send().await.unwrap();
    let mut b = c.get(url(2)).send().await.unwrap();
    assert_eq!(a.status(), 200);
    assert_eq!(b.status(), 200);
    assert_eq!(a.headers()["content-type"], "video/mp2t");
    assert!(is_ts(&read_n(&mut a, 4096).await[..3760]));
    assert!(is_ts(&read_n(&mut b, 4096).await[..3760]));

    let third = c.get(url(3)).send().await.unwrap();
    assert_eq!(third.status(), 403);

    let cnt = p.counters();
    let u = &cnt.accounts["u"];
    assert_eq!((u.open, u.max_concurrent, u.refused, u.opened), (2, 2, 1, 2));
    assert_eq!(cnt.total_opened, 2);

    drop(a);
    wait_counters(&p, Duration::from_secs(2), |c| c.accounts["u"].open == 1).await;
    let mut again = c.get(url(3)).send().await.unwrap();
    assert_eq!(again.status(), 200);
    assert!(!read_n(&mut again, 1000).await.is_empty());
    let u = p.counters().accounts["u"].clone();
    assert_eq!((u.open, u.max_concurrent, u.opened, u.refused), (2, 2, 3, 1));
    assert!(u.bytes_sent >= 3 * 1000);
    drop(b);
    drop(again);
    wait_counters(&p, Duration::from_secs(2), |c| c.accounts["u"].open == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refuse_status_is_configurable() {
    let mut cfg = config(&[("u", "p", 1)]);
    cfg.limit_mode = LimitMode::Refuse { status: 458 };
    let p = start(cfg).await;
    let c = client();
    let _a = c.get(format!("{}/live/u/p/1.ts", p.url())).send().await.unwrap();
    let b = c.get(format!("{}/live/u/p/1.ts", p.url())).send().await.unwrap();
    assert_eq!(b.status().as_u16(), 458);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cut_oldest_hands_slot_over() {
    let mut cfg = config(&[("u", "p", 1)]);
    cfg.limit_mode = LimitMode::CutOldest;
    let p = start(cfg).await;
    let c = client();
    let mut first = c.get(format!("{}/live/u/p/1.ts", p.url())).send().await.unwrap();
    assert_eq!(first.status(), 200);
    read_n(&mut first, 2000).await;

    let mut second = c.get(format!("{}/live/u/p/2.ts", p.url())).send().await.unwrap();
    assert_eq!(second.status(), 200);
    // The first body ends (with an error: the connection is aborted) promptly.
    let (_, _errored) = read_to_end(&mut first, Duration::from_secs(1)).await;
    assert!(!read_n(&mut second, 2000).await.is_empty());

    let u = p.counters().accounts["u"].clone();
    assert_eq!((u.cut, u.open, u.max_concurrent, u.opened, u.refused), (1, 1, 1, 2, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_requests_admit_exactly_three() {
    let p = start(config(&[("u", "p", 3)])).await;
    let c = client();
    let url = format!("{}/live/u/p/1.ts", p.url());
    let futures = (0..50).map(|_| {
        let c = c.clone();
        let url = url.clone();
        async move { c.get(url).send().await.unwrap() }
    });
    let responses = futures_util::future::join_all(futures).await;
    let ok = responses.iter().filter(|r| r.status() == 200).count();
    let refused = responses.iter().filter(|r| r.status() == 403).count();
    assert_eq!((ok, refused), (3, 47));
    let u = p.counters().accounts["u"].clone();
    assert_eq!((u.open, u.opened, u.refused, u.max_concurrent), (3, 3, 47, 3));
    drop(responses);
    wait_counters(&p, Duration::from_secs(2), |c| c.accounts["u"].open == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cut_oldest_under_concurrency_never_exceeds_limit() {
    let mut cfg = config(&[("u", "p", 2)]);
    cfg.limit_mode = LimitMode::CutOldest;
    let p = start(cfg).await;
    let c = client();
    let url = format!("{}/live/u/p/1.ts", p.url());
    let futures = (0..30).map(|_| {
        let c = c.clone();
        let url = url.clone();
        async move { c.get(url).send().await }
    });
    let responses = futures_util::future::join_all(futures).await;
    // A connection cut before its headers went out shows up as a transport error.
    assert!(responses.iter().all(|r| r.as_ref().map_or(true, |r| r.status() == 200)));
    let u = p.counters().accounts["u"].clone();
    assert_eq!((u.open, u.opened, u.cut, u.max_concurrent), (2, 30, 28, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unlimited_accounts_and_accounts_are_independent() {
    let p = start(config(&[("free", "x", 0), ("one", "y", 1)])).await;
    let c = client();
    let mut held = Vec::new();
    for id in 1..=5 {
        let r = c.get(format!("{}/live/free/x/{id}.ts", p.url())).send().await.unwrap();
        assert_eq!(r.status(), 200);
        held.push(r);
    }
    let r = c.get(format!("{}/live/one/y/1.ts", p.url())).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let cnt = p.counters();
    assert_eq!(cnt.accounts["free"].open, 5);
    assert_eq!(cnt.accounts["one"].open, 1);
    assert_eq!(cnt.total_opened, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vod_counts_while_body_in_flight_and_runtime_limit_change() {
    let p = start(config(&[("u", "p", 1)])).await;
    // Keep the movie body in flight (a 2 MB file would otherwise fit in loopback buffers).
    p.set_fault(Fault::new(FaultKind::Stall { after_bytes: 100_000 }).for_stream(21).times(1));
    let c = client();
    let mut movie = c.get(format!("{}/movie/u/p/21.ts", p.url())).send().await.unwrap();
    assert_eq!(movie.status(), 200);
    let first = read_n(&mut movie, 1000).await.len();
    assert_eq!(p.counters().accounts["u"].open, 1);
    let refused = c.get(format!("{}/series/u/p/31.ts", p.url())).send().await.unwrap();
    assert_eq!(refused.status(), 403);

    assert!(p.update_account("u", |a| a.max_connections = 2));
    let ep = c.get(format!("{}/series/u/p/31.ts", p.url())).send().await.unwrap();
    assert_eq!(ep.status(), 200);
    // (the episode body may already be complete: it is not paced)
    let u = p.counters().accounts["u"].clone();
    assert_eq!((u.max_concurrent, u.opened, u.refused), (2, 2, 1));

    assert_eq!(first + read_n(&mut movie, 100_000 - first).await.len(), 100_000);
    // Dropping the bodies releases the slots.
    drop(movie);
    drop(ep);
    wait_counters(&p, Duration::from_secs(2), |c| c.accounts["u"].open == 0).await;
    // An unpaced movie fetched completely is released when its body is done.
    let full = c.get(format!("{}/movie/u/p/22.ts", p.url())).send().await.unwrap();
    assert_eq!(full.bytes().await.unwrap().len(), 2_277_244);
    wait_counters(&p, Duration::from_secs(2), |c| c.accounts["u"].open == 0).await;
    assert!(!p.update_account("nobody", |_| {}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn credentials_and_unknown_streams_are_not_connections() {
    let mut cfg = config(&[("u", "p", 1), ("old", "p", 1), ("banned", "p", 1)]);
    cfg.accounts[1].exp_date = Some(1_000_000);
    cfg.accounts[2].status = "Banned".into();
    let p = start(cfg).await;
    let c = client();
    let get = |path: String| {
        let c = c.clone();
        let url = format!("{}{}", p.url(), path);
        async move { c.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(get("/live/u/wrong/1.ts".into()).await, 401);
    assert_eq!(get("/live/nobody/p/1.ts".into()).await, 401);
    assert_eq!(get("/live/old/p/1.ts".into()).await, 403);
    assert_eq!(get("/live/banned/p/1.ts".into()).await, 403);
    assert_eq!(get("/live/u/p/999.ts".into()).await, 404);
    assert_eq!(get("/live/u/p/abc.ts".into()).await, 404);
    assert_eq!(get("/movie/u/p/1.ts".into()).await, 404);
    assert_eq!(get("/series/u/p/21.ts".into()).await, 404);
    assert_eq!(get("/u/p/999".into()).await, 404);
    assert_eq!(get("/a/b/c/d/e/f".into()).await, 404);
    p.update_account("u", |a| a.auth = false);
    assert_eq!(get("/live/u/p/1.ts".into()).await, 401);
    let cnt = p.counters();
    assert_eq!(cnt.total_opened, 0);
    assert!(cnt.accounts.values().all(|a| a.refused == 0 && a.open == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn url_forms_and_shutdown_ends_streams() {
    let p = start(config(&[("u", "p", 0)])).await;
    let c = client();
    let mut streams = Vec::new();
    for path in ["/live/u/p/1.ts", "/live/u/p/1", "/u/p/2.ts", "/u/p/3"] {
        let mut r = c.get(format!("{}{path}", p.url())).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(is_ts(&read_n(&mut r, 188 * 10).await[..1880]), "{path}");
        streams.push(r);
    }
    assert_eq!(p.counters().accounts["u"].open, 4);
    p.shutdown().await;
    for mut r in streams {
        read_to_end(&mut r, Duration::from_secs(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reset_counters_keeps_open_connections() {
    let p = start(config(&[("u", "p", 1)])).await;
    let c = client();
    let _a = c.get(format!("{}/live/u/p/1.ts", p.url())).send().await.unwrap();
    let _b = c.get(format!("{}/live/u/p/1.ts", p.url())).send().await.unwrap();
    p.reset_counters();
    let u = p.counters().accounts["u"].clone();
    assert_eq!((u.open, u.opened, u.refused, u.max_concurrent), (1, 0, 0, 1));
}

/// Slow to notice, set at start: a closed connection keeps counting for `release_delay_ms`, so a new one in
/// that window is refused; switched at run time over `/_control/limits` to cut-oldest, the late close is
/// evicted as a cut instead; with the delay set to 0 the next close is noticed at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_to_notice_and_cut_oldest_set_at_start_and_at_run_time() {
    let mut cfg = config(&[("u", "p", 1)]);
    cfg.release_delay_ms = 60_000;
    let p = start(cfg).await;
    let c = client();
    let url = format!("{}/live/u/p/1.ts", p.url());
    let limits = format!("{}/_control/limits", p.url());
    let shown: serde_json::Value = c.get(&limits).send().await.unwrap().json().await.unwrap();
    assert_eq!(shown, serde_json::json!({"limit_mode": {"mode": "refuse", "status": 403}, "release_delay_ms": 60000}));

    let mut a = c.get(&url).send().await.unwrap();
    assert!(!read_n(&mut a, 1000).await.is_empty());
    drop(a);
    // The close reaches the provider (its body is dropped), but it keeps counting the connection.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(c.get(&url).send().await.unwrap().status(), 403);
    assert_eq!(p.counters().accounts["u"].open, 1);

    let set = c.post(&limits).json(&serde_json::json!({"limit_mode": {"mode": "cut_oldest"}})).send().await.unwrap();
    assert_eq!(set.status(), 200);
    let mut b = c.get(&url).send().await.unwrap();
    assert_eq!(b.status(), 200);
    assert!(!read_n(&mut b, 1000).await.is_empty());
    let u = p.counters().accounts["u"].clone();
    assert_eq!((u.open, u.cut, u.refused, u.max_concurrent), (1, 1, 1, 1));

    let set = c.post(&limits).json(&serde_json::json!({"release_delay_ms": 0})).send().await.unwrap();
    let shown: serde_json::Value = set.json().await.unwrap();
    assert_eq!(shown, serde_json::json!({"limit_mode": {"mode": "cut_oldest"}, "release_delay_ms": 0}));
    drop(b);
    wait_counters(&p, Duration::from_secs(2), |c| c.accounts["u"].open == 0).await;
}
