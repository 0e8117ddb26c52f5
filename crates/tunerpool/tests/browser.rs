//! The web UI in a real browser: headless Chromium driven over WebDriver by
//! Debian's `chromedriver`, against the real `tunerpool` binary and the
//! simulated provider. A person's path through it: log in, add a provider,
//! add an account and Test it, watch the dashboard count a viewer live (no
//! reload), stop the session. Screenshots go to
//! `$CARGO_TARGET_DIR/browser-screenshots/` (or `target/browser-screenshots/`).
//!
//! Needs `chromium` and `chromium-driver` (`apt-get install -y chromium
//! chromium-driver`; `.ci/run` installs them): without them this test fails,
//! it never skips.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{get_json_as, send, start_server, tunerpool};
use fakeprovider::{AccountSpec, FakeConfig, FakeProvider};
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::StreamExt;
use serde_json::json;

const TOKEN: &str = "browser-test-admin-token-0123456789";
const PW1: &str = "first-Pa55word!";
const PW2: &str = "second-Pa55word?";
/// Generous: the CI machine has 2 cores shared with the build.
const WAIT: Duration = Duration::from_secs(60);

/// chromedriver on a free loopback port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start_chromedriver() -> Driver {
    let port = free_port();
    let child = match Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!(
            "cannot run chromedriver ({e}): the browser tests need Chromium and its driver; install them with \
             `apt-get install -y chromium chromium-driver` (.ci/run does)"
        ),
    };
    let driver = Driver { child, url: format!("http://127.0.0.1:{port}") };
    let deadline = Instant::now() + WAIT;
    loop {
        let ready = reqwest::get(format!("{}/status", driver.url)).await;
        if let Ok(r) = ready {
            let status: serde_json::Value = r.json().await.unwrap_or_default();
            if status["value"]["ready"] == true {
                return driver;
            }
        }
        assert!(Instant::now() < deadline, "chromedriver did not become ready on port {port}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn browser(driver: &Driver) -> Client {
    let mut options = json!({
        "args": [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-extensions",
            "--no-first-run",
            "--window-size=1280,1000",
        ]
    });
    for bin in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if std::path::Path::new(bin).exists() {
            options["binary"] = json!(bin);
            break;
        }
    }
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert("goog:chromeOptions".into(), options);
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .unwrap_or_else(|e| panic!("chromedriver could not start Chromium: {e}"))
}

/// Where screenshots go: `$CARGO_TARGET_DIR/browser-screenshots`, else the workspace's `target/`.
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("browser-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The browser session, with the helpers a scenario needs.
struct Page {
    c: Client,
    shots: PathBuf,
}

impl Page {
    async fn shot(&self, name: &str) {
        let png = self.c.screenshot().await.expect("screenshot");
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    /// Runs `js` (an expression) in the page and returns its value.
    async fn eval(&self, js: &str) -> serde_json::Value {
        self.c.execute(&format!("return ({js});"), vec![]).await.unwrap_or(serde_json::Value::Null)
    }

    /// Waits until the expression `js` is truthy; on timeout saves a screenshot and fails with the page text.
    async fn wait_for(&self, what: &str, js: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let v = self.eval(js).await;
            if !(v.is_null() || v == false || v == "" || v == 0) {
                return;
            }
            if Instant::now() > deadline {
                self.shot(&format!("FAILED-{}", what.replace(' ', "-"))).await;
                let text = self.eval("document.body.innerText").await;
                panic!("timed out waiting for {what} ({js}); the page says:\n{}", text.as_str().unwrap_or(""));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The text of the first element matching `css` (empty when none).
    async fn text(&self, css: &str) -> String {
        let js = format!("document.querySelector({})?.textContent ?? ''", json!(css));
        self.eval(&js).await.as_str().unwrap_or_default().to_string()
    }

    async fn wait_text(&self, what: &str, css: &str, contains: &str) {
        let js = format!("(document.querySelector({})?.textContent ?? '').includes({})", json!(css), json!(contains));
        self.wait_for(what, &js).await;
    }

    /// Clicks the element matching `css` once it is there and visible.
    async fn click(&self, css: &str) {
        let js = format!("(e => e && e.offsetParent !== null && !e.disabled)(document.querySelector({}))", json!(css));
        self.wait_for(&format!("{css} to be clickable"), &js).await;
        // In the middle of the window, not under the sticky header.
        self.eval(&format!("document.querySelector({}).scrollIntoView({{block: 'center'}})", json!(css))).await;
        self.c.find(Locator::Css(css)).await.unwrap().click().await.unwrap();
    }

    /// Types into a form field (found by its API field name) after clearing it.
    async fn fill(&self, form: &str, field: &str, value: &str) {
        let css = format!("{form} .field[data-field=\"{field}\"] input");
        self.wait_for(&format!("field {field}"), &format!("document.querySelector({})", json!(css))).await;
        let input = self.c.find(Locator::Css(&css)).await.unwrap();
        input.clear().await.unwrap();
        input.send_keys(value).await.unwrap();
    }

    /// The error shown next to a form field.
    async fn field_error(&self, form: &str, field: &str) -> String {
        self.text(&format!("{form} .field[data-field=\"{field}\"] .error")).await
    }
}

/// A player of the admin's GET /stream/{channel}.ts (with the admin token),
/// reading bytes until the stream ends.
fn viewer(url: String, bytes: Arc<AtomicU64>) -> tokio::task::JoinHandle<Result<(), String>> {
    tokio::spawn(async move {
        let resp = reqwest::Client::new().get(&url).bearer_auth(TOKEN).send().await.map_err(|e| e.to_string())?;
        if resp.status() != 200 {
            return Err(format!("{url}: HTTP {}", resp.status()));
        }
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(c) => {
                    bytes.fetch_add(c.len() as u64, Ordering::Relaxed);
                }
                Err(_) => break,
            }
        }
        Ok(())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_adds_a_provider_and_an_account_and_watches_the_pool_live() {
    let fake = FakeProvider::start(FakeConfig::with_accounts(vec![
        AccountSpec::new("one", PW1, 1),
        AccountSpec::new("two", PW2, 2),
    ]))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = tunerpool(dir.path());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("TUNERPOOL_ADMIN_TOKEN", TOKEN);
    let server = start_server(cmd);
    let base = server.base.clone();
    let driver = start_chromedriver().await;
    let page = Page { c: browser(&driver).await, shots: screenshot_dir() };

    // Log in: a wrong token is refused next to the field, the right one opens the dashboard.
    page.c.goto(&format!("{base}/")).await.unwrap();
    page.wait_for("the login screen", "document.querySelector('#login:not([hidden]) #token')").await;
    page.fill("#login-form", "token", "not-the-admin-token").await;
    page.click("#login-form button[type=submit]").await;
    page.wait_text("the wrong token message", "#login-form .field[data-field=token] .error", "not the admin token")
        .await;
    page.shot("01-login-wrong-token").await;
    page.fill("#login-form", "token", TOKEN).await;
    page.click("#login-form button[type=submit]").await;
    page.wait_text("the empty dashboard", "#pool-total", "Total: 0/0 active | 0 available").await;
    page.wait_for("live updates", "document.querySelector('#live-state').dataset.state === 'on'").await;

    // Add the provider; a bad URL is named next to its field first.
    page.click("#nav a[data-page=providers]").await;
    page.click("[data-action=add-provider]").await;
    let form = "form[data-form=provider]";
    page.fill(form, "name", "Fake IPTV").await;
    page.fill(form, "url", "panel-without-scheme:80").await;
    page.fill(form, "username", "one").await;
    page.fill(form, "password", PW1).await;
    page.click(&format!("{form} button[type=submit]")).await;
    page.wait_for(
        "the url error",
        &format!("document.querySelector('{form} .field[data-field=url] .error:not([hidden])')"),
    )
    .await;
    assert!(page.field_error(form, "url").await.contains("scheme"), "{}", page.field_error(form, "url").await);
    page.shot("02-provider-validation").await;
    page.fill(form, "url", &fake.url()).await;
    page.click(&format!("{form} button[type=submit]")).await;
    page.wait_text("the first sync", "[data-provider-id] [data-sync=ok]", "20 live").await;
    page.shot("03-provider-synced").await;

    // Its accounts: add one, Test shows the detected limit before saving.
    page.click("[data-provider-id] [data-action=accounts]").await;
    page.click("[data-action=add-account]").await;
    let form = "form[data-form=account]";
    let placeholder = page.eval(&format!("document.querySelector('{form} [name=server_url]').placeholder")).await;
    assert_eq!(placeholder, json!(fake.url()), "the provider's URL is the server URL placeholder");
    page.fill(form, "name", "Backup").await;
    page.fill(form, "username", "two").await;
    page.fill(form, "password", PW2).await;
    page.click(&format!("{form} [data-action=test]")).await;
    page.wait_text("the Test result", &format!("{form} [data-detected=max_connections]"), "Max connections: 2").await;
    page.shot("04-account-test").await;
    page.click(&format!("{form} [data-action=save]")).await;
    page.wait_for("two accounts", "document.querySelectorAll('#accounts .item.account').length === 2").await;
    page.wait_text("the backup's usage", "#accounts .item.account:nth-child(2) .usage", "0/2 active").await;
    page.shot("05-accounts").await;

    // The dashboard counts a viewer live, without a reload.
    page.click("#nav a[data-page=dashboard]").await;
    page.wait_text("the idle pool", "#pool-total", "Total: 0/3 active | 3 available").await;
    page.eval("window.__sameDocument = 'yes'").await;
    page.shot("06-dashboard-idle").await;
    let (_, channels) = get_json_as(TOKEN, &format!("{base}/api/v1/channels?per_page=1"));
    let channel = channels["items"][0]["id"].as_i64().unwrap();
    let bytes = Arc::new(AtomicU64::new(0));
    let player = viewer(format!("{base}/stream/{channel}.ts"), bytes.clone());
    page.wait_text("the viewer on the dashboard", "#pool-total", "Total: 1/3 active | 2 available").await;
    page.wait_text("the provider card", "[data-provider-id] [data-total=provider]", "Total: 1/3 active").await;
    assert_eq!(page.eval("window.__sameDocument").await, json!("yes"), "the dashboard updated without a reload");
    page.shot("07-dashboard-one-viewer").await;

    // Stop the session from the sessions page: the player's stream ends, the slot comes back.
    page.click("#nav a[data-page=sessions]").await;
    page.wait_text("the session", "#sessions .item.session", "1 viewer").await;
    page.shot("08-sessions").await;
    let before = bytes.load(Ordering::Relaxed);
    assert!(before > 0, "the player received the stream");
    page.click("#sessions .item.session [data-action=stop]").await;
    page.wait_for("the session to go", "document.querySelectorAll('#sessions .item.session').length === 0").await;
    let ended = tokio::time::timeout(WAIT, player).await;
    assert!(matches!(ended, Ok(Ok(Ok(())))), "the player's stream ended: {ended:?}");
    page.shot("09-session-stopped").await;
    page.click("#nav a[data-page=dashboard]").await;
    page.wait_text("the slot to come back", "#pool-total", "Total: 0/3 active | 3 available").await;

    // Users: add one; its player URLs are shown with the password just typed, and they work.
    page.click("#nav a[data-page=users]").await;
    page.click("[data-action=add-user]").await;
    page.fill("[data-form=user]", "username", "kim").await;
    page.fill("[data-form=user]", "password", "has a space").await;
    page.click("[data-form=user] button[type=submit]").await;
    page.wait_for(
        "the field error",
        "document.querySelector('[data-form=user] .field[data-field=password] .error:not([hidden])')",
    )
    .await;
    page.fill("[data-form=user]", "password", "kim-pass-1").await;
    page.fill("[data-form=user]", "max_connections", "2").await;
    page.click("[data-form=user] button[type=submit]").await;
    page.wait_text("the new user", "#users .item.user", "0/2 connections").await;
    let m3u = page.eval("document.querySelector('#users .item.user input.url').value").await;
    let m3u = m3u.as_str().unwrap().to_string();
    assert_eq!(m3u, format!("{base}/get.php?username=kim&password=kim-pass-1&type=m3u_plus&output=ts"));
    page.shot("10-users").await;
    let playlist = reqwest::get(&m3u).await.unwrap();
    assert_eq!(playlist.status(), 200);
    assert!(playlist.text().await.unwrap().starts_with("#EXTM3U"));

    // Channels: search, and a stream URL to copy — a user's, with the
    // password the admin types (the server cannot know it), and it plays.
    page.click("#nav a[data-page=channels]").await;
    page.wait_for("the channel list", "document.querySelectorAll('#channels .item.channel').length === 20").await;
    let search = page.c.find(Locator::Css("main input[type=search]")).await.unwrap();
    search.send_keys("Channel 1").await.unwrap();
    page.wait_for("the search", "document.querySelectorAll('#channels .item.channel').length === 11").await;
    page.wait_text("the user to pick", "#url-user", "kim").await;
    let url_of_first = "document.querySelector('#channels .item.channel input.url').value";
    let id = page.eval("document.querySelector('#channels .item.channel').dataset.channelId").await;
    let id = id.as_str().unwrap().to_string();
    assert_eq!(page.eval(url_of_first).await, json!(format!("{base}/live/kim/PASSWORD/{id}.ts")));
    page.c.find(Locator::Css("#url-password")).await.unwrap().send_keys("kim-pass-1").await.unwrap();
    let url = format!("{base}/live/kim/kim-pass-1/{id}.ts");
    page.wait_for("the password in the URLs", &format!("{url_of_first} === {}", json!(url))).await;
    page.shot("11-channels").await;
    let resp = reqwest::get(&url).await.unwrap();
    assert_eq!(resp.status(), 200, "the copied URL plays");
    assert_eq!(resp.bytes_stream().next().await.unwrap().unwrap()[0], 0x47);

    // A phone-width screen: nothing wider than the screen.
    page.c.set_window_size(390, 844).await.unwrap();
    page.click("#nav a[data-page=dashboard]").await;
    page.wait_text("the phone dashboard", "#pool-total", "Total: 0/3").await;
    let overflow = page.eval("document.documentElement.scrollWidth - document.documentElement.clientWidth").await;
    page.shot("12-phone-dashboard").await;
    assert!(overflow.as_i64().unwrap_or(1) <= 0, "the dashboard scrolls sideways on a phone by {overflow}px");
    page.click("#nav a[data-page=providers]").await;
    page.wait_text("the phone providers page", "[data-provider-id] [data-sync=ok]", "20 live").await;
    let overflow = page.eval("document.documentElement.scrollWidth - document.documentElement.clientWidth").await;
    page.shot("13-phone-providers").await;
    assert!(overflow.as_i64().unwrap_or(1) <= 0, "the providers page scrolls sideways on a phone by {overflow}px");

    // The passwords typed were sent, never shown back.
    let html = page.c.source().await.unwrap();
    assert!(!html.contains(PW1) && !html.contains(PW2), "a password is in the page");
    page.c.close().await.unwrap();
    drop(server);
}

/// The lineup's curation in the browser: two providers whose catalogs
/// overlap (matching off, so each stream is a channel), the person merges
/// "Channel 1" and "UK: CHANNEL 1 HD" and numbers the News group from 101;
/// a player's get.php shows both at once, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_merges_channels_and_renumbers_a_group() {
    let a = FakeProvider::start(FakeConfig::with_accounts(vec![AccountSpec::new("one", PW1, 1)])).await.unwrap();
    let b = FakeProvider::start(FakeConfig {
        live_channels: 25,
        live_name_template: "UK: CHANNEL {i} HD".into(),
        stream_id_offset: 1000,
        ..FakeConfig::with_accounts(vec![AccountSpec::new("two", PW2, 1)])
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = tunerpool(dir.path());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("TUNERPOOL_ADMIN_TOKEN", TOKEN)
        .env("TUNERPOOL_LINEUP_MATCH", "false");
    let server = start_server(cmd);
    let base = server.base.clone();
    for (name, fake, user, pw) in [("A", &a, "one", PW1), ("B", &b, "two", PW2)] {
        let body = json!({"name": name, "kind": "xtream", "url": fake.url(), "username": user, "password": pw});
        let (status, _, text) = send(TOKEN, "POST", &format!("{base}/api/v1/providers"), Some(body));
        assert_eq!(status, 201, "{text}");
        let (status, _, text) =
            send(TOKEN, "POST", &format!("{base}/api/v1/providers/{}/sync", if name == "A" { 1 } else { 2 }), None);
        assert_eq!(status, 200, "{text}");
    }
    let (status, _, text) = send(
        TOKEN,
        "POST",
        &format!("{base}/api/v1/users"),
        Some(json!({"username": "kim", "password": "kim-pass-1"})),
    );
    assert_eq!(status, 201, "{text}");
    let (_, page1) = get_json_as(TOKEN, &format!("{base}/api/v1/channels?per_page=100"));
    assert_eq!(page1["total"], 45, "matching is off: every stream is a channel");
    let playlist = || {
        let (_, text) = common::get_text(&format!("{base}/get.php?username=kim&password=kim-pass-1&type=m3u_plus"));
        tunerpool_formats::m3u::parse(text.as_bytes()).entries
    };
    assert_eq!(playlist().len(), 45);

    let driver = start_chromedriver().await;
    let page = Page { c: browser(&driver).await, shots: screenshot_dir() };
    page.c.goto(&format!("{base}/")).await.unwrap();
    page.wait_for("the login screen", "document.querySelector('#login:not([hidden]) #token')").await;
    page.fill("#login-form", "token", TOKEN).await;
    page.click("#login-form button[type=submit]").await;
    page.wait_for("the dashboard", "document.querySelector('#pool-total')").await;
    page.click("#nav a[data-page=channels]").await;
    page.wait_for("the channel list", "document.querySelectorAll('#channels .item.channel').length === 45").await;

    // Merge: search "CHANNEL 1 HD"'s twin, pick both, merge into the first picked.
    let one = page1["items"][0]["id"].as_i64().unwrap();
    let uk_one = page1["items"].as_array().unwrap().iter().find(|c| c["name"] == "UK: CHANNEL 1 HD").unwrap()["id"]
        .as_i64()
        .unwrap();
    page.click(&format!("#channels input.pick[data-channel-id='{one}']")).await;
    page.click(&format!("#channels input.pick[data-channel-id='{uk_one}']")).await;
    page.shot("21-lineup-picked").await;
    page.click("#selection [data-action=merge]").await;
    page.wait_text("the merge", "#lineup-status", "Merged 1 channel(s)").await;
    page.wait_for("44 channels", "document.querySelectorAll('#channels .item.channel').length === 44").await;
    page.wait_text(
        "two sources",
        &format!("#channels .item.channel[data-channel-id='{one}'] .sources summary"),
        "2 sources",
    )
    .await;
    page.click(&format!("#channels .item.channel[data-channel-id='{one}'] .sources summary")).await;
    page.wait_text(
        "B's source",
        &format!("#channels .item.channel[data-channel-id='{one}'] .sources"),
        "UK: CHANNEL 1 HD",
    )
    .await;
    page.shot("22-lineup-merged").await;
    let entries = playlist();
    assert_eq!(entries.len(), 44, "get.php shows the merge at once");
    assert!(!entries.iter().any(|e| e.title == "UK: CHANNEL 1 HD"));

    // Renumber the News group from 101; a number taken outside it is refused, named.
    let (_, groups) = get_json_as(TOKEN, &format!("{base}/api/v1/groups"));
    let news = groups.as_array().unwrap().iter().find(|g| g["name"] == "News").unwrap();
    let news_id = news["id"].as_i64().unwrap().to_string();
    page.wait_for("the groups", &format!("document.querySelector('#group-filter option[value=\"{news_id}\"]')")).await;
    page.c.execute(&format!("const s = document.querySelector('#group-filter'); s.value = '{news_id}'; s.dispatchEvent(new Event('change'));"), vec![]).await.unwrap();
    let in_news = news["channels"].as_i64().unwrap();
    page.wait_for(
        "the News channels",
        &format!("document.querySelectorAll('#channels .item.channel').length === {in_news}"),
    )
    .await;
    let start = page.c.find(Locator::Css("#renumber-start")).await.unwrap();
    start.send_keys("2").await.unwrap();
    page.click("#group-tools [data-action=renumber]").await;
    page.wait_text("the refusal", "#lineup-status", "(start)").await;
    start.clear().await.unwrap();
    start.send_keys("101").await.unwrap();
    page.click("#group-tools [data-action=renumber]").await;
    page.wait_text("the renumbering", "#lineup-status", "from 101").await;
    page.wait_text("the new first number", "#channels .item.channel .title", "101").await;
    page.shot("23-lineup-renumbered").await;
    let entries = playlist();
    let news_numbers: Vec<u32> = entries
        .iter()
        .filter(|e| e.group_title() == Some("News"))
        .map(|e| e.tvg_chno().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        news_numbers,
        (101..101 + in_news as u32).collect::<Vec<_>>(),
        "get.php lists the new numbers, in order"
    );
    let first = entries.iter().find(|e| e.title == "Channel 1").unwrap();
    assert_eq!(first.tvg_chno(), Some("101"));
    page.c.close().await.unwrap();
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_sees_what_each_source_is_and_the_pool_history() {
    // Two providers carry "Channel 1": A sends the 720p H.264 sample, B the
    // HEVC one. A's only account expires in 3 days: an alert.
    let in_3_days = tunerpool_catalog::now() + 3 * 86_400;
    let a = FakeProvider::start(FakeConfig::with_accounts(vec![AccountSpec {
        exp_date: Some(in_3_days),
        ..AccountSpec::new("one", PW1, 1)
    }]))
    .await
    .unwrap();
    let b = FakeProvider::start(FakeConfig {
        live_media: vec![fakeprovider::ChannelMedia { channel: 1, media: fakeprovider::LiveMedia::Hevc360p25 }],
        ..FakeConfig::with_accounts(vec![AccountSpec::new("two", PW2, 1)])
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = tunerpool(dir.path());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("TUNERPOOL_ADMIN_TOKEN", TOKEN)
        .env("TUNERPOOL_HISTORY_SAMPLE_INTERVAL", "5s")
        .env("TUNERPOOL_RELAY_LINGER", "0s")
        // B's account has one connection: probes may use it (nobody watches), briefly.
        .env("TUNERPOOL_PROBE_RESERVE", "0")
        .env("TUNERPOOL_PROBE_INTERVAL", "0s")
        .env("TUNERPOOL_PROBE_DURATION", "3s");
    let server = start_server(cmd);
    let base = server.base.clone();
    for (id, name, fake, user, pw) in [(1, "A", &a, "one", PW1), (2, "B", &b, "two", PW2)] {
        let body = json!({"name": name, "kind": "xtream", "url": fake.url(), "username": user, "password": pw});
        let (status, _, text) = send(TOKEN, "POST", &format!("{base}/api/v1/providers"), Some(body));
        assert_eq!(status, 201, "{text}");
        let (status, _, text) = send(TOKEN, "POST", &format!("{base}/api/v1/providers/{id}/sync"), None);
        assert_eq!(status, 200, "{text}");
    }
    let (_, found) = get_json_as(TOKEN, &format!("{base}/api/v1/channels?q=Channel%201&per_page=100"));
    let channel = found["items"].as_array().unwrap().iter().find(|c| c["name"] == "Channel 1").unwrap().clone();
    assert_eq!(channel["sources"].as_array().unwrap().len(), 2, "matched by name: {channel}");
    let id = channel["id"].as_i64().unwrap();

    // Watch it for 2 s: A (the Xtream provider ranked first) is measured when
    // the session ends.
    let bytes = Arc::new(AtomicU64::new(0));
    let watching = viewer(format!("{base}/stream/{id}.ts"), bytes.clone());
    let deadline = Instant::now() + WAIT;
    while bytes.load(Ordering::Relaxed) < 500_000 {
        assert!(Instant::now() < deadline, "the stream did not play");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    watching.abort();
    let deadline = Instant::now() + WAIT;
    let detail = loop {
        let (_, d) = get_json_as(TOKEN, &format!("{base}/api/v1/channels/{id}"));
        if d["sources"].as_array().unwrap().iter().any(|s| !s["quality"].is_null()) {
            break d;
        }
        assert!(Instant::now() < deadline, "no measurement recorded: {d}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let measured = detail["sources"].as_array().unwrap().iter().find(|s| !s["quality"].is_null()).unwrap();
    assert!(measured["badge"].as_str().unwrap().starts_with("720p25 H.264"), "{measured}");
    // The pool is sampled every 5 s.
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, rows) = get_json_as(TOKEN, &format!("{base}/api/v1/history/pool"));
        if rows.as_array().is_some_and(|r| !r.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "no pool sample");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let driver = start_chromedriver().await;
    let page = Page { c: browser(&driver).await, shots: screenshot_dir() };
    page.c.goto(&format!("{base}/")).await.unwrap();
    page.wait_for("the login screen", "document.querySelector('#login:not([hidden]) #token')").await;
    page.fill("#login-form", "token", TOKEN).await;
    page.click("#login-form button[type=submit]").await;
    page.wait_for("the dashboard", "document.querySelector('#pool-total')").await;
    page.click("#nav a[data-page=channels]").await;
    let item = format!("#channels .item.channel[data-channel-id='{id}']");
    page.wait_for("the channel", &format!("document.querySelector(\"{item}\")")).await;
    page.click(&format!("{item} .sources summary")).await;
    page.wait_text("the measured source's badge", &format!("{item} .sources"), "720p25 H.264").await;
    page.wait_text("the unmeasured source", &format!("{item} .sources"), "not measured").await;
    page.wait_text("the order", &format!("{item} .try-order"), "Tried now in this order").await;
    page.shot("31-source-quality").await;
    // Probe the channel's sources: B's becomes known without anyone watching it.
    page.click(&format!("{item} [data-action=probe]")).await;
    page.wait_text("the probe request", "#lineup-status", "queued").await;
    page.wait_for("the list again", &format!("document.querySelector(\"{item} .sources summary\")")).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, d) = get_json_as(TOKEN, &format!("{base}/api/v1/channels/{id}"));
        if d["sources"].as_array().unwrap().iter().all(|s| s["quality"]["probe"] == true) {
            break;
        }
        assert!(Instant::now() < deadline, "the probes measured nothing: {d}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    page.click(&format!("{item} .sources summary")).await;
    page.wait_text("the probed source's badge", &format!("{item} .sources"), "360p25 HEVC").await;
    page.wait_text("when it was probed", &format!("{item} .sources"), "probed ").await;
    page.shot("31b-probed").await;

    page.click("#nav a[data-page=history]").await;
    page.wait_for("a pool chart", "document.querySelector('.charts .chart canvas')").await;
    page.wait_for("the chart's series", "document.querySelectorAll('.charts .chart .u-legend .u-series').length >= 5")
        .await;
    page.wait_text("the expiry alert", "#alerts", "expires").await;
    page.shot("32-history").await;
    page.c.close().await.unwrap();
    drop(server);
}
