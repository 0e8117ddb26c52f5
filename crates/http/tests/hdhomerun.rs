//! The HDHomeRun tuner at the root and its discovery, over real sockets:
//! the gateway in-process over the simulated provider, apps' requests as
//! Plex and Jellyfin send them, SSDP and SiliconDust searches on loopback.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::{api_client, gateway, Gateway};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tunerpool_catalog::quality::NewQuality;
use tunerpool_http::{DiscoverySettings, HdhrSettings};
use tunerpool_relay::settings::RelaySettings;
use tunerpool_relay::UserLimitPolicy;

/// The root tuner's user and its password (which no root answer may show).
const USER: &str = "livingroom";
const PASS: &str = "L1ving-Secret-7q";

fn settings() -> RelaySettings {
    RelaySettings {
        user_limit_policy: UserLimitPolicy::Refuse,
        acquire_wait: Duration::from_millis(300),
        ..RelaySettings::default()
    }
}

/// A gateway whose root tuner serves as `root_user`.
async fn rooted(root_user: Option<&str>) -> Gateway {
    let root_user = root_user.map(str::to_owned);
    gateway(settings(), move |st| st.hdhr = HdhrSettings { root_user, friendly_name: "Living Room".into() }).await
}

async fn get_json(url: String) -> Value {
    let resp = reqwest::get(&url).await.unwrap();
    assert_eq!(resp.status(), 200, "{url}");
    let text = resp.text().await.unwrap();
    // A user's own tuner at /hdhr/{user}/{pass} carries its password by design; the root's never.
    assert!(url.contains("/hdhr/") || !text.contains(PASS), "{url} shows the password: {text}");
    serde_json::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_tuner_serves_as_its_user_and_shows_no_password() {
    let g = rooted(Some(USER)).await;
    // One connection: the root tuner's streams count against it.
    g.user(USER, PASS, 1).await;

    // What Plex and Jellyfin read of discover.json.
    let d = get_json(format!("{}/discover.json", g.base)).await;
    for field in ["FriendlyName", "ModelNumber", "FirmwareName", "FirmwareVersion", "DeviceID", "DeviceAuth"] {
        assert!(d[field].as_str().is_some_and(|v| !v.is_empty()), "{field}: {d}");
    }
    assert_eq!(d["FriendlyName"], "Living Room");
    assert_eq!(d["BaseURL"], g.base, "root URLs, no user or password");
    assert_eq!(d["LineupURL"], format!("{}/lineup.json", g.base));
    assert_eq!(d["TunerCount"], 1, "capped by the user's own limit");
    let id = d["DeviceID"].as_str().unwrap();
    assert!(id.len() == 8 && id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
    // Not the user's own tuner at /hdhr/…: apps would take the two for one device.
    let own = get_json(format!("{}/hdhr/{USER}/{PASS}/discover.json", g.base)).await;
    assert_ne!(own["DeviceID"], d["DeviceID"]);
    let xml = reqwest::get(format!("{}/device.xml", g.base)).await.unwrap().text().await.unwrap();
    assert!(xml.contains(&format!("<URLBase>{}</URLBase>", g.base)) && xml.contains(id), "{xml}");
    assert!(!xml.contains(PASS));
    let status = get_json(format!("{}/lineup_status.json", g.base)).await;
    assert_eq!(status["ScanInProgress"], 0);
    let post = reqwest::Client::new().post(format!("{}/lineup.post?scan=start", g.base)).send().await.unwrap();
    assert_eq!(post.status(), 200);

    // The lineup is the user's: the same channels as its own tuner's, tuned at the root.
    let lineup = get_json(format!("{}/lineup.json", g.base)).await;
    let own = get_json(format!("{}/hdhr/{USER}/{PASS}/lineup.json", g.base)).await;
    let rows = lineup.as_array().unwrap();
    assert!(!rows.is_empty());
    assert_eq!(rows.len(), own.as_array().unwrap().len());
    for (root, own) in rows.iter().zip(own.as_array().unwrap()) {
        assert_eq!(root["GuideNumber"], own["GuideNumber"]);
        let url = root["URL"].as_str().unwrap();
        assert!(url.starts_with(&format!("{}/auto/v", g.base)), "{url}");
    }
    // No measurement yet: nothing claimed about the picture.
    assert!(rows.iter().all(|r| r.get("HD").is_none() && r.get("VideoCodec").is_none()), "{lineup}");

    // Tuned (transcode=none, as Channels DVR asks), it plays as the user…
    let url = rows[0]["URL"].as_str().unwrap();
    let first = reqwest::get(format!("{url}?transcode=none")).await.unwrap();
    assert_eq!(first.status(), 200);
    let mut first = first.bytes_stream();
    assert_eq!(first.next().await.unwrap().unwrap()[0], 0x47);
    // …whose limit of 1 is now used, whichever way it asks.
    let second = rows[1]["URL"].as_str().unwrap();
    for refused in [format!("{second}?transcode=mobile"), format!("{}/live/{USER}/{PASS}/1.ts", g.base)] {
        let resp = reqwest::get(&refused).await.unwrap();
        assert_eq!(resp.status(), 403, "{refused}");
        assert!(resp.text().await.unwrap().contains("limit of 1 connection"));
    }
    drop(first);
    assert_eq!(reqwest::get(format!("{}/auto/vnothing", g.base)).await.unwrap().status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_lineup_is_what_the_user_may_see_with_measured_formats() {
    let g = rooted(Some("kid")).await;
    g.user("all", "a11", 0).await;
    let cats =
        get_json(format!("{}/player_api.php?username=all&password=a11&action=get_live_categories", g.base)).await;
    let group: i64 = cats[1]["category_id"].as_str().unwrap().parse().unwrap();
    let resp = api_client()
        .post(format!("{}/api/v1/users", g.base))
        .json(&json!({"username": "kid", "password": "k1d", "allowed_groups": [group]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let root = get_json(format!("{}/lineup.json", g.base)).await;
    let own = get_json(format!("{}/hdhr/kid/k1d/lineup.json", g.base)).await;
    let all = get_json(format!("{}/hdhr/all/a11/lineup.json", g.base)).await;
    let numbers = |v: &Value| v.as_array().unwrap().iter().map(|r| r["GuideNumber"].clone()).collect::<Vec<_>>();
    assert_eq!(numbers(&root), numbers(&own), "the root lineup is the user's");
    assert!(numbers(&root).len() < numbers(&all).len(), "and not everyone's");

    // A channel outside its groups cannot be tuned at the root.
    let outside = all.as_array().unwrap().iter().find(|r| !numbers(&root).contains(&r["GuideNumber"])).unwrap();
    let channel = outside["URL"].as_str().unwrap().rsplit("/auto/v").next().unwrap();
    assert_eq!(reqwest::get(format!("{}/auto/v{channel}", g.base)).await.unwrap().status(), 404);

    // A measured source: HD, its codecs; the others still say nothing.
    let first = &root.as_array().unwrap()[0];
    let channel: i64 = first["URL"].as_str().unwrap().rsplit("/auto/v").next().unwrap().parse().unwrap();
    let detail = g.state.store.channel(channel).await.unwrap();
    let report = json!({"report": {"audio": [{"codec": "ac3", "pid": 257}]}}).to_string();
    let measured = NewQuality {
        stream_id: detail.sources[0].stream_id,
        measured_at: tunerpool_catalog::now(),
        verdict: "ok".into(),
        video_codec: Some("h264".into()),
        width: Some(1280),
        height: Some(720),
        fps: Some(50.0),
        bitrate: Some(6_000_000),
        report,
    };
    g.state.store.record_quality(&measured).await.unwrap();
    let root = get_json(format!("{}/lineup.json", g.base)).await;
    let rows = root.as_array().unwrap();
    assert_eq!(
        (&rows[0]["HD"], &rows[0]["VideoCodec"], &rows[0]["AudioCodec"]),
        (&json!(1), &json!("H264"), &json!("AC3"))
    );
    assert!(rows[1..].iter().all(|r| r.get("HD").is_none()), "{root}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_root_user_the_root_routes_are_404() {
    let root = ["/discover.json", "/lineup.json", "/lineup_status.json", "/lineup.post", "/device.xml", "/auto/v1"];
    // Not configured; configured with a user that does not exist.
    for g in [rooted(None).await, rooted(Some("ghost")).await] {
        g.user(USER, PASS, 0).await;
        for path in root {
            for method in ["GET", "POST"] {
                let resp = reqwest::Client::new().request(method.parse().unwrap(), format!("{}{path}", g.base));
                let status = resp.send().await.unwrap().status().as_u16();
                let want: &[u16] = if method == "POST" && path != "/lineup.post" { &[404, 405] } else { &[404] };
                assert!(want.contains(&status), "{method} {path}: {status}");
            }
        }
        assert!(g.state.relay.sessions().is_empty());
        assert_eq!(g.provider_connections(), 0);
    }
    // A disabled root user: refused, as its own URLs are.
    let g = rooted(Some(USER)).await;
    let resp = api_client()
        .post(format!("{}/api/v1/users", g.base))
        .json(&json!({"username": USER, "password": PASS, "enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let resp = reqwest::get(format!("{}/lineup.json", g.base)).await.unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await.unwrap().contains("disabled"));
}

/// Waits (bounded) for one datagram on `socket`.
async fn receive(socket: &tokio::net::UdpSocket) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(10), socket.recv_from(&mut buf))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    buf.truncate(n);
    buf
}

/// The tags of a SiliconDust packet, checked as a client checks them.
fn tags(packet: &[u8]) -> (u16, Vec<(u8, Vec<u8>)>) {
    let (body, crc) = packet.split_at(packet.len() - 4);
    assert_eq!(crc32fast::hash(body).to_le_bytes(), crc, "the CRC");
    let kind = u16::from_be_bytes([body[0], body[1]]);
    assert_eq!(usize::from(u16::from_be_bytes([body[2], body[3]])), body.len() - 4, "the payload length");
    let (mut rest, mut out) = (&body[4..], Vec::new());
    while !rest.is_empty() {
        let tag = rest[0];
        let (len, skip) = if rest[1] & 0x80 == 0 {
            (usize::from(rest[1]), 2)
        } else {
            (usize::from(rest[1] & 0x7F) | usize::from(rest[2]) << 7, 3)
        };
        out.push((tag, rest[skip..skip + len].to_vec()));
        rest = &rest[skip + len..];
    }
    (kind, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssdp_and_hdhomerun_searches_are_answered_on_loopback() {
    let g = rooted(Some(USER)).await;
    g.user(USER, PASS, 0).await;
    let http_port: u16 = g.base.rsplit(':').next().unwrap().parse().unwrap();
    let stop = CancellationToken::new();
    let settings = DiscoverySettings { interface: Ipv4Addr::LOCALHOST, ssdp_port: 0, hdhomerun_port: 0, http_port };
    let discovery = tunerpool_http::start_discovery(g.state.clone(), settings, stop.clone()).await.unwrap();
    let at = |a: SocketAddr| SocketAddr::from((Ipv4Addr::LOCALHOST, a.port()));
    let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let discover = get_json(format!("{}/discover.json", g.base)).await;

    // SSDP: the standard search for the MediaServer type, then for everything.
    let search = |st: &str| {
        format!(
            "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: {st}\r\n\r\n"
        )
    };
    client.send_to(search("urn:schemas-upnp-org:device:MediaServer:1").as_bytes(), at(discovery.ssdp)).await.unwrap();
    let answer = String::from_utf8(receive(&client).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("\r\nST: urn:schemas-upnp-org:device:MediaServer:1\r\n"), "{answer}");
    let location =
        answer.lines().find_map(|l| l.strip_prefix("LOCATION: ")).unwrap_or_else(|| panic!("no LOCATION: {answer}"));
    assert_eq!(location, format!("http://127.0.0.1:{http_port}/device.xml"));
    let xml = reqwest::get(location).await.unwrap().text().await.unwrap();
    assert!(xml.contains(discover["DeviceID"].as_str().unwrap()), "{xml}");
    client.send_to(search("ssdp:all").as_bytes(), at(discovery.ssdp)).await.unwrap();
    let mut targets = Vec::new();
    for _ in 0..3 {
        let a = String::from_utf8(receive(&client).await).unwrap();
        targets.push(a.lines().find_map(|l| l.strip_prefix("ST: ")).unwrap().to_owned());
    }
    assert!(targets.contains(&"upnp:rootdevice".to_owned()), "{targets:?}");

    // SiliconDust: libhdhomerun's discover request for any tuner.
    let mut request =
        vec![0x00, 0x02, 0x00, 0x0c, 0x01, 0x04, 0x00, 0x00, 0x00, 0x01, 0x02, 0x04, 0xff, 0xff, 0xff, 0xff];
    let crc = crc32fast::hash(&request);
    request.extend_from_slice(&crc.to_le_bytes());
    client.send_to(&request, at(discovery.hdhomerun)).await.unwrap();
    let (kind, reply) = tags(&receive(&client).await);
    assert_eq!(kind, 0x0003, "a discover reply");
    let tag = |t: u8| reply.iter().find(|(k, _)| *k == t).map(|(_, v)| v.clone()).unwrap_or_else(|| panic!("{t:#x}"));
    assert_eq!(tag(0x01), 1u32.to_be_bytes(), "a tuner");
    let id = u32::from_be_bytes(tag(0x02).try_into().unwrap());
    assert_eq!(format!("{id:08X}"), discover["DeviceID"].as_str().unwrap());
    assert_eq!(tag(0x10), [2], "the tuner count: the pool's 2 accounts (the user has no limit of its own)");
    assert_eq!(discover["TunerCount"], 2);
    let base = String::from_utf8(tag(0x2A)).unwrap();
    assert_eq!(base, format!("http://127.0.0.1:{http_port}"));
    assert_eq!(String::from_utf8(tag(0x27)).unwrap(), format!("{base}/lineup.json"));
    assert!(!String::from_utf8(tag(0x2B)).unwrap().is_empty());
    // What the reply names answers.
    assert_eq!(get_json(format!("{base}/discover.json")).await["DeviceID"], discover["DeviceID"]);

    // A corrupted request is ignored, and the responder still answers the next one.
    let mut bad = request.clone();
    bad[19] ^= 0xFF;
    client.send_to(&bad, at(discovery.hdhomerun)).await.unwrap();
    client.send_to(&request, at(discovery.hdhomerun)).await.unwrap();
    assert_eq!(tags(&receive(&client).await).0, 0x0003);
    stop.cancel();
}
