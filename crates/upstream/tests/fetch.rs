//! The upstream clients against the simulated provider (real sockets) and
//! against files on disk.

use std::io::Write;

use fakeprovider::{AccountSpec, FakeConfig, FakeProvider, Fault, FaultKind};
use tunerpool_formats::xtream::LiveStream;
use tunerpool_upstream::m3u::{fetch, M3uSource};
use tunerpool_upstream::xtream::{parse_items, Section, XtreamClient};
use tunerpool_upstream::{HttpSettings, UpstreamError, UpstreamHttp};

const PW: &str = "pa/ss+w%rd";

fn http(dir: &std::path::Path) -> UpstreamHttp {
    UpstreamHttp::new(HttpSettings { spool_dir: dir.to_path_buf(), ..Default::default() }).unwrap()
}

async fn fake(channels: usize) -> FakeProvider {
    FakeProvider::start(FakeConfig {
        live_channels: channels,
        live_categories: 3,
        ..FakeConfig::with_accounts(vec![AccountSpec::new("bob", PW, 3)])
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn xtream_client_reads_details_categories_and_streams_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake(2500).await;
    let c = XtreamClient::new(http(dir.path()), &fake.url(), "bob", PW).unwrap();
    let auth = c.authenticate().await.unwrap();
    assert!(auth.user_info.auth);
    assert_eq!(auth.user_info.max_connections, Some(3));
    assert_eq!(auth.user_info.active_cons, Some(0));
    assert_eq!(c.categories(Section::Live).await.unwrap().len(), 3);

    let spooled = c.download_items(Section::Live).await.unwrap();
    let mut batches = parse_items::<LiveStream>(spooled);
    let mut sizes = Vec::new();
    let mut ids = Vec::new();
    while let Some(b) = batches.next().await {
        sizes.push(b.len());
        ids.extend(b.iter().map(|s| s.stream_id));
    }
    let counts = batches.finish().await.unwrap();
    assert_eq!(counts.ok, 2500);
    assert_eq!(sizes, [1000, 1000, 500], "bounded batches");
    assert_eq!(ids, (1..=2500).collect::<Vec<i64>>());
    // The spool file is anonymous: nothing is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn bad_credentials_are_auth_false_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake(5).await;
    let c = XtreamClient::new(http(dir.path()), &fake.url(), "bob", "wrong").unwrap();
    let auth = c.authenticate().await.unwrap();
    assert!(!auth.user_info.auth);
}

#[tokio::test]
async fn errors_name_the_problem_and_never_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake(5).await;
    let c = XtreamClient::new(http(dir.path()), &fake.url(), "bob", PW).unwrap();
    fake.set_fault(Fault::new(FaultKind::ApiHtml));
    let e = c.authenticate().await.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, UpstreamError::BadBody { .. }), "{msg}");
    assert!(msg.contains("non-JSON") && msg.contains("password=***"), "{msg}");
    assert!(!msg.contains("pa/ss") && !msg.contains("pa%2Fss"), "{msg}");
    fake.clear_faults();

    // 404 from a wrong path says what to check.
    let c = XtreamClient::new(http(dir.path()), &format!("{}/nothere", fake.url()), "bob", PW).unwrap();
    let msg = c.authenticate().await.unwrap_err().to_string();
    assert!(msg.contains("HTTP 404") && msg.contains("check the server URL"), "{msg}");

    // Nothing listens: a connection error, redacted.
    let url = fake.url();
    fake.shutdown().await;
    let c = XtreamClient::new(http(dir.path()), &url, "bob", PW).unwrap();
    let msg = c.authenticate().await.unwrap_err().to_string();
    assert!(msg.contains("cannot reach"), "{msg}");
    assert!(!msg.contains("pa/ss") && !msg.contains("pa%2Fss"), "{msg}");
}

#[tokio::test]
async fn m3u_from_gzip_file_and_from_http() {
    let dir = tempfile::tempdir().unwrap();
    let plain = "#EXTM3U\n#EXTINF:-1 tvg-id=\"a\" group-title=\"G\",A\nhttp://h/a.ts\n#EXTINF:-1,B\nhttp://h/b.ts\n";
    let gz_path = dir.path().join("list.m3u.gz");
    let mut enc =
        flate2::write::GzEncoder::new(std::fs::File::create(&gz_path).unwrap(), flate2::Compression::default());
    enc.write_all(plain.as_bytes()).unwrap();
    enc.finish().unwrap();
    let mut b = fetch(&http(dir.path()), &M3uSource::File(gz_path), &[]).await.unwrap();
    let mut names = Vec::new();
    while let Some(batch) = b.next().await {
        names.extend(batch.into_iter().map(|e| e.title));
    }
    b.finish().await.unwrap();
    assert_eq!(names, ["A", "B"]);

    // get.php over HTTP (the client asks for gzip; the panel compresses).
    let fake = fake(42).await;
    let url = format!("{}/get.php?username=bob&password=pa%2Fss%2Bw%25rd&type=m3u_plus&output=ts", fake.url());
    let mut b = fetch(&http(dir.path()), &M3uSource::parse(&url).unwrap(), &[PW]).await.unwrap();
    let mut n = 0;
    while let Some(batch) = b.next().await {
        n += batch.len();
    }
    let summary = b.finish().await.unwrap();
    assert!(n >= 42, "{n}");
    assert!(summary.skipped.is_empty(), "{:?}", summary.skipped);

    // Wrong password: the panel refuses the playlist; the error is redacted.
    let bad = url.replace("pa%2Fss", "xx");
    let Err(e) = fetch(&http(dir.path()), &M3uSource::parse(&bad).unwrap(), &[]).await else { panic!("accepted") };
    let msg = e.to_string();
    assert!(msg.contains("password=***") && (msg.contains("401") || msg.contains("403")), "{msg}");
}

#[tokio::test]
async fn xtream_guide_is_stored_plain_and_gzip_bodies_are_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake(20).await;
    let c = XtreamClient::new(http(&dir.path().join("tmp")), &fake.url(), "bob", PW).unwrap();
    assert!(c.xmltv_url().ends_with("/xmltv.php?username=bob&password=pa%2Fss%2Bw%25rd"), "{}", c.xmltv_url());
    let dest = dir.path().join("epg").join("provider-1.xml");
    let summary = c.download_guide(&dest).await.unwrap();
    // 20 channels, every 7th without an EPG id; 30 hourly programmes each.
    assert_eq!((summary.channels, summary.programmes, summary.skipped), (18, 18 * 30, 0));
    assert!(!summary.gzip, "Content-Encoding: gzip is decoded by the client");
    let text = std::fs::read_to_string(&dest).unwrap();
    assert!(text.starts_with("<?xml") && text.contains("<channel id=\"ch1.fake\">"));
    assert_eq!(summary.bytes, text.len() as u64);
    // The spool file is gone and nothing but the guide is in its directory.
    assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(dir.path().join("epg")).unwrap().count(), 1);
}

#[tokio::test]
async fn a_refused_guide_download_names_no_password_and_keeps_the_old_guide() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake(5).await;
    let dest = dir.path().join("provider-1.xml");
    std::fs::write(&dest, "<tv><channel id=\"old\"/></tv>").unwrap();
    let c = XtreamClient::new(http(dir.path()), &fake.url(), "bob", "wr/ong+pw").unwrap();
    let e = c.download_guide(&dest).await.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, UpstreamError::Status { status: 401, .. }), "{msg}");
    assert!(!msg.contains("wr/ong") && !msg.contains("wr%2Fong"), "{msg}");
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "<tv><channel id=\"old\"/></tv>");
}
