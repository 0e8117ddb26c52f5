//! The panel API: player_api.php, get.php, xmltv.php and the control endpoints.

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::*;
use fakeprovider::{Counters, FakeConfig};
use serde_json::Value;

async fn api(p: &fakeprovider::FakeProvider, query: &str) -> Value {
    client().get(format!("{}/player_api.php?{query}", p.url())).send().await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn login_shape_and_active_cons() {
    let p = start(config(&[("u", "p", 2)])).await;
    let v = api(&p, "username=u&password=p").await;
    let ui = &v["user_info"];
    assert_eq!(ui["auth"], 1);
    assert_eq!(ui["status"], "Active");
    assert_eq!(ui["max_connections"], "2");
    assert_eq!(ui["active_cons"], "0");
    assert_eq!(ui["is_trial"], "0");
    assert_eq!(ui["username"], "u");
    assert!(ui["exp_date"].as_str().unwrap().parse::<i64>().unwrap() > 1_700_000_000);
    assert!(ui["created_at"].as_str().unwrap().parse::<i64>().is_ok());
    assert_eq!(ui["allowed_output_formats"], serde_json::json!(["m3u8", "ts"]));
    let si = &v["server_info"];
    assert_eq!(si["url"], "127.0.0.1");
    assert_eq!(si["port"], p.addr().port().to_string());
    assert_eq!(si["server_protocol"], "http");
    for k in ["https_port", "rtmp_port", "timezone", "time_now"] {
        assert!(si[k].is_string(), "{k}");
    }
    assert!(si["timestamp_now"].is_i64());

    let c = client();
    let _a = c.get(format!("{}/live/u/p/1.ts", p.url())).send().await.unwrap();
    let _b = c.get(format!("{}/live/u/p/2.ts", p.url())).send().await.unwrap();
    let v = api(&p, "username=u&password=p").await;
    assert_eq!(v["user_info"]["active_cons"], "2");

    // POST with form credentials works too.
    let v: Value = c
        .post(format!("{}/player_api.php", p.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("username=u&password=p")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["user_info"]["auth"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_credentials_and_account_changes() {
    let p = start(config(&[("u", "p", 1)])).await;
    for q in ["username=u&password=x", "username=x&password=p", "", "username=u"] {
        let r = client().get(format!("{}/player_api.php?{q}", p.url())).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v, serde_json::json!({"user_info": {"auth": 0}}), "{q}");
    }
    p.update_account("u", |a| a.auth = false);
    assert_eq!(api(&p, "username=u&password=p").await["user_info"]["auth"], 0);
    p.update_account("u", |a| {
        a.auth = true;
        a.status = "Banned".into();
        a.is_trial = true;
    });
    let v = api(&p, "username=u&password=p").await;
    assert_eq!(v["user_info"]["status"], "Banned");
    assert_eq!(v["user_info"]["is_trial"], "1");

    // Over HTTP control.
    let r = client()
        .post(format!("{}/_control/accounts/u", p.url()))
        .json(&serde_json::json!({"status": "Active", "max_connections": 4, "exp_date": 1767225600}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v = api(&p, "username=u&password=p").await;
    assert_eq!(v["user_info"]["max_connections"], "4");
    assert_eq!(v["user_info"]["exp_date"], "1767225600");
    let r = client()
        .post(format!("{}/_control/accounts/nobody", p.url()))
        .json(&serde_json::json!({"auth": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn catalog_actions() {
    let p = start(FakeConfig::demo()).await;
    let q = "username=user1&password=pass1&action=";
    let cats = api(&p, &format!("{q}get_live_categories")).await;
    let cats = cats.as_array().unwrap();
    assert_eq!(cats.len(), 4);
    assert_eq!(cats[0]["category_id"], "1");
    assert_eq!(cats[0]["parent_id"], 0);
    assert!(cats[0]["category_name"].is_string());

    let streams = api(&p, &format!("{q}get_live_streams")).await;
    let streams = streams.as_array().unwrap();
    assert_eq!(streams.len(), 20);
    let s1 = &streams[0];
    assert_eq!(s1["stream_id"], 1);
    assert_eq!(s1["num"], 1);
    assert_eq!(s1["name"], "Channel 1");
    assert_eq!(s1["stream_type"], "live");
    assert!(s1["category_id"].is_string());
    assert!(s1["added"].is_string());
    assert_eq!(s1["custom_sid"], "");
    assert_eq!(s1["direct_source"], "");
    assert!(s1["stream_icon"].is_string());
    assert!(s1["epg_channel_id"].is_string());
    assert!(streams[6]["epg_channel_id"].is_null(), "every 7th has no EPG id");
    assert!(streams.iter().any(|s| s["tv_archive_duration"].is_string()));
    assert!(streams.iter().any(|s| s["tv_archive"] == 1));

    let in2 = api(&p, &format!("{q}get_live_streams&category_id=2")).await;
    let in2 = in2.as_array().unwrap();
    assert_eq!(in2.len(), 5);
    assert!(in2.iter().all(|s| s["category_id"] == "2"));
    assert_eq!(api(&p, &format!("{q}get_live_streams&category_id=99")).await, serde_json::json!([]));

    let vod_cats = api(&p, &format!("{q}get_vod_categories")).await;
    assert_eq!(vod_cats.as_array().unwrap().len(), 2);
    let vods = api(&p, &format!("{q}get_vod_streams")).await;
    let vods = vods.as_array().unwrap();
    assert_eq!(vods.len(), 10);
    assert_eq!(vods[0]["stream_type"], "movie");
    assert_eq!(vods[0]["container_extension"], "ts");
    let vod_id = vods[0]["stream_id"].as_u64().unwrap();
    let info = api(&p, &format!("{q}get_vod_info&vod_id={vod_id}")).await;
    assert_eq!(info["movie_data"]["stream_id"], vod_id);
    assert_eq!(info["info"]["duration_secs"], 10);

    let series = api(&p, &format!("{q}get_series")).await;
    let series = series.as_array().unwrap();
    assert_eq!(series.len(), 3);
    assert_eq!(api(&p, &format!("{q}get_series_categories")).await.as_array().unwrap().len(), 1);
    let sid = series[1]["series_id"].as_u64().unwrap();
    let info = api(&p, &format!("{q}get_series_info&series_id={sid}")).await;
    assert_eq!(info["seasons"].as_array().unwrap().len(), 2);
    let ep = &info["episodes"]["1"][0];
    assert_eq!(ep["episode_num"], 1);
    let ep_id: u64 = ep["id"].as_str().unwrap().parse().unwrap();
    let r = client()
        .get(format!("{}/series/user1/pass1/{ep_id}.ts", p.url()))
        .header("Range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);

    let epg = api(&p, &format!("{q}get_short_epg&stream_id=1&limit=3")).await;
    let list = epg["epg_listings"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0]["channel_id"], "ch1.fake");
    assert!(list[0]["start_timestamp"].is_string());
    let none = api(&p, &format!("{q}get_short_epg&stream_id=7")).await;
    assert_eq!(none["epg_listings"], serde_json::json!([]));
    assert_eq!(api(&p, &format!("{q}get_vod_info&vod_id=1")).await["movie_data"], serde_json::json!([]));
    assert_eq!(api(&p, &format!("{q}nonsense")).await, serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gzip_when_asked() {
    let p = start(FakeConfig::demo()).await;
    let raw = raw_client();
    let url = format!("{}/player_api.php?username=user1&password=pass1&action=get_live_streams", p.url());
    let plain = raw.get(&url).send().await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.bytes().await.unwrap();
    let gz = raw.get(&url).header("Accept-Encoding", "gzip").send().await.unwrap();
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    let gz = gz.bytes().await.unwrap();
    assert!(gz.len() < plain.len());
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut out).unwrap();
    assert_eq!(out, plain);
    // Small responses and playlists are compressed too.
    for path in [
        "/player_api.php?username=user1&password=pass1",
        "/get.php?username=user1&password=pass1&type=m3u_plus&output=ts",
        "/xmltv.php?username=user1&password=pass1",
    ] {
        let r = raw.get(format!("{}{path}", p.url())).header("Accept-Encoding", "gzip, deflate").send().await.unwrap();
        assert_eq!(r.headers()["content-encoding"], "gzip", "{path}");
        let body = r.bytes().await.unwrap();
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut out).unwrap();
        assert!(!out.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_thousand_channels() {
    let mut cfg = FakeConfig::demo();
    cfg.live_channels = 200_000;
    cfg.live_categories = 50;
    let p = start(cfg).await;
    let t = Instant::now();
    let body = client()
        .get(format!("{}/player_api.php?username=user1&password=pass1&action=get_live_streams", p.url()))
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let elapsed = t.elapsed();
    let rows: Vec<serde::de::IgnoredAny> = serde_json::from_slice(&body).unwrap();
    assert_eq!(rows.len(), 200_000);
    eprintln!("200k channels: {} bytes in {elapsed:?}", body.len());
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
    let in_cat = api(&p, "username=user1&password=pass1&action=get_live_streams&category_id=50").await;
    assert_eq!(in_cat.as_array().unwrap().len(), 4000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn m3u_playlist() {
    let p = start(FakeConfig::demo()).await;
    let c = client();
    let r = c
        .get(format!("{}/get.php?username=user1&password=pass1&type=m3u_plus&output=ts", p.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let mut lines = text.lines();
    let head = lines.next().unwrap();
    assert!(head.starts_with("#EXTM3U x-tvg-url=\""));
    assert!(head.contains("/xmltv.php?username=user1&password=pass1"));
    assert_eq!(
        lines.next().unwrap(),
        "#EXTINF:-1 tvg-id=\"ch1.fake\" tvg-name=\"Channel 1\" tvg-logo=\"".to_string()
            + &p.url()
            + "/logos/1.png\" group-title=\"News\",Channel 1"
    );
    assert_eq!(lines.next().unwrap(), format!("{}/live/user1/pass1/1.ts", p.url()));
    assert_eq!(text.matches("#EXTINF").count(), 20 + 10 + 3 * 6);
    assert!(text.contains("/movie/user1/pass1/21.ts"));
    assert!(text.contains("/series/user1/pass1/31.ts"));
    let hls = c
        .get(format!("{}/get.php?username=user1&password=pass1&type=m3u_plus&output=m3u8", p.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(hls.contains("/live/user1/pass1/1.m3u8"));
    for q in ["username=user1&password=nope", "username=nobody&password=x"] {
        let r = c.get(format!("{}/get.php?{q}&type=m3u_plus", p.url())).send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert!(r.bytes().await.unwrap().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn xmltv_matches_epg_ids() {
    let p = start(FakeConfig::demo()).await;
    let text = client()
        .get(format!("{}/xmltv.php?username=user1&password=pass1", p.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.starts_with("<?xml"));
    assert!(text.trim_end().ends_with("</tv>"));
    let streams = api(&p, "username=user1&password=pass1&action=get_live_streams").await;
    for s in streams.as_array().unwrap() {
        if let Some(id) = s["epg_channel_id"].as_str() {
            assert!(text.contains(&format!("<channel id=\"{id}\">")), "{id}");
            assert_eq!(text.matches(&format!("channel=\"{id}\"")).count(), 30);
        }
    }
    // "20261121180000 +0000"-style times
    let start = text.split("start=\"").nth(1).unwrap();
    let stamp = &start[..20];
    assert!(stamp[..14].bytes().all(|b| b.is_ascii_digit()) && stamp.ends_with(" +0000"), "{stamp}");
    let r = client().get(format!("{}/xmltv.php?username=user1&password=bad", p.url())).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn control_counters_match_library_and_reset() {
    let p = start(config(&[("u", "p", 1)])).await;
    let c = client();
    api(&p, "username=u&password=p").await;
    let _s = c.get(format!("{}/live/u/p/1.ts", p.url())).send().await.unwrap();
    let over_http: Counters =
        c.get(format!("{}/_control/counters", p.url())).send().await.unwrap().json().await.unwrap();
    let mut lib = p.counters();
    // bytes_sent moves while the stream runs
    lib.accounts.get_mut("u").unwrap().bytes_sent = over_http.accounts["u"].bytes_sent;
    assert_eq!(over_http, lib);
    assert_eq!(over_http.api_requests, 1);
    assert_eq!(over_http.total_opened, 1);
    let r = c.post(format!("{}/_control/reset_counters", p.url())).send().await.unwrap();
    assert!(r.status().is_success());
    let after = p.counters();
    assert_eq!(after.api_requests, 0);
    assert_eq!(after.total_opened, 0);
    assert_eq!(after.accounts["u"].open, 1);
}

/// Every picture the catalog points at is there: a player or the web UI
/// shows a logo or a poster, not a broken image.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logos_and_posters_are_served() {
    let p = start(FakeConfig::demo()).await;
    let live = api(&p, "username=user1&password=pass1&action=get_live_streams").await;
    let vod = api(&p, "username=user1&password=pass1&action=get_vod_streams").await;
    let series = api(&p, "username=user1&password=pass1&action=get_series").await;
    let mut urls: Vec<String> =
        live.as_array().unwrap().iter().take(3).map(|s| s["stream_icon"].as_str().unwrap().into()).collect();
    urls.push(vod[0]["stream_icon"].as_str().unwrap().into());
    urls.push(series[0]["cover"].as_str().unwrap().into());
    for url in &urls {
        let r = client().get(url).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        assert_eq!(r.headers()["content-type"], "image/png", "{url}");
        assert!(r.bytes().await.unwrap().starts_with(b"\x89PNG\r\n\x1a\n"), "{url}");
    }
    let r = client().get(format!("{}/logos/1.gif", p.url())).send().await.unwrap();
    assert_eq!(r.status(), 404);
}
