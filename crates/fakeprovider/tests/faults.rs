//! Each injected fault does what it says, to the requests it targets, as often as asked.

mod common;

use std::time::{Duration, Instant};

use common::*;
use fakeprovider::{Fault, FaultKind};

fn live(p: &fakeprovider::FakeProvider, user: &str, id: u32) -> String {
    format!("{}/live/{user}/p/{id}.ts", p.url())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refuse_with_status_and_times() {
    let p = start(config(&[("u", "p", 0)])).await;
    let c = client();
    p.set_fault(Fault::new(FaultKind::Refuse { status: 503 }).times(2));
    assert_eq!(c.get(live(&p, "u", 1)).send().await.unwrap().status(), 503);
    assert_eq!(c.get(live(&p, "u", 2)).send().await.unwrap().status(), 503);
    assert_eq!(c.get(live(&p, "u", 1)).send().await.unwrap().status(), 200);
    for status in [403u16, 404, 502] {
        p.set_fault(Fault::new(FaultKind::Refuse { status }).times(1));
        assert_eq!(c.get(live(&p, "u", 1)).send().await.unwrap().status().as_u16(), status);
    }
    // VOD and HLS are refused too.
    p.set_fault(Fault::new(FaultKind::Refuse { status: 502 }).times(2));
    let vod = c.get(format!("{}/movie/u/p/21.ts", p.url())).send().await.unwrap();
    assert_eq!(vod.status(), 502);
    let hls = c.get(format!("{}/live/u/p/1.m3u8", p.url())).send().await.unwrap();
    assert_eq!(hls.status(), 502);
    // Refusals by fault are not connections and not limit refusals.
    let u = p.counters().accounts["u"].clone();
    assert_eq!((u.opened, u.refused), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scoping_by_username_and_stream() {
    let p = start(config(&[("a", "p", 0), ("b", "p", 0)])).await;
    let c = client();
    p.set_fault(Fault::new(FaultKind::Refuse { status: 404 }).for_user("b"));
    p.set_fault(Fault::new(FaultKind::Refuse { status: 502 }).for_stream(3));
    assert_eq!(c.get(live(&p, "a", 1)).send().await.unwrap().status(), 200);
    assert_eq!(c.get(live(&p, "b", 1)).send().await.unwrap().status(), 404);
    assert_eq!(c.get(live(&p, "a", 3)).send().await.unwrap().status(), 502);
    assert_eq!(c.get(live(&p, "b", 3)).send().await.unwrap().status(), 404);
    p.clear_faults();
    assert_eq!(c.get(live(&p, "b", 3)).send().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stall_keeps_socket_open_without_bytes() {
    let mut cfg = config(&[("u", "p", 1)]);
    cfg.bitrate_bps = Some(8_000_000);
    let p = start(cfg).await;
    p.set_fault(Fault::new(FaultKind::Stall { after_bytes: 20_000 }).times(1));
    let mut r = client().get(live(&p, "u", 1)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let got = read_n(&mut r, 20_000).await;
    assert_eq!(got.len(), 20_000);
    assert!(is_ts(&got));
    // Nothing more for over a second, and the body has not ended.
    let waited = tokio::time::timeout(Duration::from_millis(1200), r.chunk()).await;
    assert!(waited.is_err(), "stalled stream must neither send nor end");
    let u = p.counters().accounts["u"].clone();
    assert_eq!((u.open, u.bytes_sent), (1, 20_000));
    drop(r);
    wait_counters(&p, Duration::from_secs(2), |c| c.accounts["u"].open == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cut_after_bytes() {
    let mut cfg = config(&[("u", "p", 1)]);
    cfg.bitrate_bps = Some(8_000_000);
    let p = start(cfg).await;
    p.set_fault(Fault::new(FaultKind::CutAfter { bytes: 50_000 }).times(1));
    let mut r = client().get(live(&p, "u", 1)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (data, errored) = read_to_end(&mut r, Duration::from_secs(3)).await;
    assert_eq!(data.len(), 50_000);
    assert!(errored, "a cut is an aborted body, not a clean end");
    wait_counters(&p, Duration::from_secs(2), |c| c.accounts["u"].open == 0).await;
    // A VOD cut: fewer bytes than Content-Length.
    p.set_fault(Fault::new(FaultKind::CutAfter { bytes: 100_000 }).times(1));
    let r = client().get(format!("{}/movie/u/p/21.ts", p.url())).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn placeholder_is_not_ts() {
    let p = start(config(&[("u", "p", 1)])).await;
    p.set_fault(Fault::new(FaultKind::Placeholder).for_stream(2));
    let r = client().get(live(&p, "u", 2)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "video/mp2t");
    let body = r.bytes().await.unwrap();
    assert!(body.starts_with(b"<html"));
    assert_ne!(body[0], 0x47);
    assert_eq!(p.counters().accounts["u"].opened, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redirect_token_serves_once() {
    let p = start(config(&[("u", "p", 1)])).await;
    p.set_fault(Fault::new(FaultKind::RedirectToken));
    let raw = raw_client();
    let r = raw.get(live(&p, "u", 4)).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(location.contains("/token/"), "{location}");
    assert!(location.ends_with("/live/u/p/4.ts"), "{location}");
    assert_eq!(p.counters().accounts["u"].opened, 0);

    let mut s = raw.get(&location).send().await.unwrap();
    assert_eq!(s.status(), 200);
    assert!(is_ts(&read_n(&mut s, 1880).await[..1880]));
    assert_eq!(p.counters().accounts["u"].open, 1);
    drop(s);
    wait_counters(&p, Duration::from_secs(2), |c| c.accounts["u"].open == 0).await;
    let again = raw.get(&location).send().await.unwrap();
    assert_eq!(again.status(), 403);

    // A following client just gets the stream.
    let mut s = client().get(live(&p, "u", 4)).send().await.unwrap();
    assert_eq!(s.status(), 200);
    assert!(!read_n(&mut s, 188).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_html_and_api_slow() {
    let p = start(config(&[("u", "p", 1)])).await;
    let c = client();
    let api = format!("{}/player_api.php?username=u&password=p", p.url());
    p.set_fault(Fault::new(FaultKind::ApiHtml).times(1));
    let r = c.get(&api).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(r.text().await.unwrap().starts_with("<!DOCTYPE html>"));
    let r = c.get(&api).send().await.unwrap();
    assert!(r.json::<serde_json::Value>().await.is_ok());

    p.set_fault(Fault::new(FaultKind::ApiSlow { delay_ms: 500 }).times(2));
    let t = Instant::now();
    assert_eq!(c.get(&api).send().await.unwrap().status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(450));
    let t = Instant::now();
    let m3u = format!("{}/get.php?username=u&password=p&type=m3u_plus", p.url());
    assert_eq!(c.get(&m3u).send().await.unwrap().status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(450));
    let t = Instant::now();
    assert_eq!(c.get(&api).send().await.unwrap().status(), 200);
    assert!(t.elapsed() < Duration::from_millis(450));
    // API faults do not touch streams.
    p.set_fault(Fault::new(FaultKind::ApiHtml));
    assert_eq!(c.get(live(&p, "u", 1)).send().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_over_http_control() {
    let p = start(config(&[("u", "p", 0)])).await;
    let c = client();
    let r = c
        .post(format!("{}/_control/faults", p.url()))
        .json(&serde_json::json!({"kind": "refuse", "status": 502, "stream_id": 2, "times": 1}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let list: Vec<Fault> = c.get(format!("{}/_control/faults", p.url())).send().await.unwrap().json().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(c.get(live(&p, "u", 2)).send().await.unwrap().status(), 502);
    assert_eq!(c.get(live(&p, "u", 2)).send().await.unwrap().status(), 200);
    c.post(format!("{}/_control/faults", p.url()))
        .json(&serde_json::json!({"kind": "placeholder"}))
        .send()
        .await
        .unwrap();
    let r = c.delete(format!("{}/_control/faults", p.url())).send().await.unwrap();
    assert!(r.status().is_success());
    let body = c.get(live(&p, "u", 3)).send().await.unwrap();
    assert_eq!(body.status(), 200);
    let bad = c
        .post(format!("{}/_control/faults", p.url()))
        .json(&serde_json::json!({"kind": "nonsense"}))
        .send()
        .await
        .unwrap();
    assert!(bad.status().is_client_error());
}
