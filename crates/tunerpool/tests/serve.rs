//! The binary end to end: provider CLI, `serve`, `demo`, `config check`,
//! against the simulated provider over real sockets.

mod common;

use common::{get_json, get_json_as, get_start, get_text, get_text_as, start_server, testdata, tunerpool};
use fakeprovider::{FakeConfig, FakeProvider};

#[test]
fn demo_serves_the_simulated_channels() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = tunerpool(dir.path());
    cmd.args(["demo", "--listen", "127.0.0.1:0"]);
    let mut server = start_server(cmd);
    let (status, _) = get_json(&format!("{}/api/v1/channels", server.base));
    assert_eq!(status, 401, "the API wants the admin token");
    let (status, j) = get_json_as(&server.token, &format!("{}/api/v1/channels", server.base));
    assert_eq!(status, 200);
    // The first provider's 20 channels, each with a second source at the
    // second provider ("UK: CHANNEL 1 HD"), and the second's 5 of its own.
    assert_eq!(j["total"], 25);
    assert_eq!(j["items"].as_array().unwrap().len(), 25);
    assert_eq!(j["items"][0]["name"], "Channel 1");
    let sources: Vec<&str> =
        j["items"][0]["sources"].as_array().unwrap().iter().map(|s| s["provider"].as_str().unwrap()).collect();
    assert_eq!(sources, ["Demo provider", "Second demo provider"]);
    let (_, providers) = get_json_as(&server.token, &format!("{}/api/v1/providers", server.base));
    assert_eq!(providers[0]["accounts"].as_array().unwrap().len(), 2);
    let text = serde_json::to_string(&providers).unwrap();
    assert!(!text.contains("pass1") && !text.contains("pass2"), "passwords leaked: {text}");
    assert!(server.stdout.iter().any(|l| l.contains("/api/v1/channels")), "{:?}", server.stdout);
    assert!(server.stdout.iter().any(|l| l.contains("Web UI:")), "{:?}", server.stdout);
    let guide = server.stdout.iter().find_map(|l| l.trim().strip_prefix("Guide:")).expect("a Guide line");
    assert!(guide.contains("(18 channels, 540 programmes)"), "{guide}");
    let (status, xml) = get_text(guide.split_whitespace().next().unwrap());
    assert_eq!(status, 200);
    // 22 of the lineup's 25 channels have a guide id (7, 14, 21 have none).
    assert_eq!(xml.matches("<channel ").count(), 22);
    // The admin's guide wants the token.
    assert_eq!(get_text(&format!("{}/epg.xml", server.base)).0, 401);
    assert_eq!(get_text_as(&server.token, &format!("{}/epg.xml", server.base)).0, 200);

    // The lineup's logos are pictures a player can show, not 404s.
    let (_, channels) = get_text_as(&server.token, &format!("{}/api/v1/channels", server.base));
    let channels: serde_json::Value = serde_json::from_str(&channels).unwrap();
    let logo = channels["items"][0]["logo"].as_str().expect("channel 1 has a logo").to_string();
    let (status, first) = get_start("", &logo);
    assert_eq!(status, 200, "{logo}");
    assert!(first.starts_with(b"\x89PNG"), "{logo} is not a PNG");

    // Every URL the demo prints answers: plain ones as they are, the
    // curl lines with the token they show.
    let mut checked = 0;
    for line in &server.stdout {
        let token = match line.split("Bearer ").nth(1) {
            Some(rest) => rest.split('\'').next().unwrap().to_string(),
            None => String::new(),
        };
        for url in line.split_whitespace().filter(|w| w.starts_with("http://")) {
            // A tuner's base address, not a page: players add /discover.json
            // (checked below); the simulated provider's own address is there
            // for reference (its counters line is checked).
            if line.trim().starts_with("HDHomeRun:") || line.starts_with("Demo:") {
                continue;
            }
            let (status, first) = get_start(&token, url);
            assert_eq!(status, 200, "printed {url} ({line})");
            assert!(!first.is_empty(), "printed {url} sent nothing");
            checked += 1;
        }
    }
    assert!(checked >= 12, "only {checked} printed URLs");
    // The printed stream URL plays: MPEG-TS through the pool.
    let watch = server.stdout.iter().find_map(|l| l.trim().strip_prefix("Watch:")).expect("a Watch line");
    let url = watch.split_whitespace().next().unwrap().to_string();
    let first = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async { reqwest::get(&url).await.unwrap().chunk().await.unwrap().unwrap() })
    })
    .join()
    .unwrap();
    assert_eq!(first[0], 0x47);

    // The printed channel with two sources plays when the first provider's
    // accounts are all in use: channels 2, 3 and 4 take the first's two
    // connections and one of the second's (ranked by availability); channel
    // 1 then plays from the second provider.
    let two = server.stdout.iter().find_map(|l| l.trim().strip_prefix("2 sources:")).expect("a 2 sources line");
    let url = two.split_whitespace().next().unwrap().to_string();
    let (base, token) = (server.base.clone(), server.token.clone());
    let (first, sessions) = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let client = reqwest::Client::new();
            let list = |client: reqwest::Client| {
                let (base, token) = (base.clone(), token.clone());
                async move {
                    let r = client.get(format!("{base}/api/v1/sessions")).bearer_auth(&token).send().await.unwrap();
                    r.json::<serde_json::Value>().await.unwrap()
                }
            };
            // The sessions of the streams played above end first (linger).
            for _ in 0..100 {
                if list(client.clone()).await == serde_json::json!([]) {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            let mut held = Vec::new();
            for ch in [2, 3, 4] {
                let mut r = client.get(format!("{base}/stream/{ch}.ts")).bearer_auth(&token).send().await.unwrap();
                assert_eq!(r.status(), 200, "channel {ch}");
                r.chunk().await.unwrap();
                held.push(r);
            }
            let first = reqwest::get(&url).await.unwrap().chunk().await.unwrap().unwrap();
            (first, list(client.clone()).await)
        })
    })
    .join()
    .unwrap();
    assert_eq!(first[0], 0x47);
    let by_provider = |p: &str| sessions.as_array().unwrap().iter().filter(|s| s["upstream"]["provider"] == p).count();
    let one = sessions.as_array().unwrap().iter().find(|s| s["channel_id"] == 1).expect("channel 1 plays");
    assert_eq!(one["upstream"]["provider"], "Second demo provider", "{sessions}");
    assert_eq!(by_provider("Demo provider"), 2, "{sessions}");

    // The printed player URLs work for the demo user: the M3U parses and its
    // first channel plays, the Xtream login succeeds, the tuner answers.
    let line = |prefix: &str| {
        let l = server.stdout.iter().find_map(|l| l.trim().strip_prefix(prefix)).unwrap_or_else(|| panic!("{prefix}"));
        l.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    let m3u_url = line("M3U:");
    let xtream = line("Xtream:");
    assert_eq!(xtream, format!("server {} username demo password demo", server.base));
    let hdhr = line("HDHomeRun:").split_whitespace().next().unwrap().to_string();
    let (m3u, first, login, discover) = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let body = reqwest::get(&m3u_url).await.unwrap().bytes().await.unwrap();
            let m3u = tunerpool_formats::m3u::parse(&body);
            let first = reqwest::get(&m3u.entries[0].url).await.unwrap().chunk().await.unwrap().unwrap();
            let base = m3u_url.split("/get.php").next().unwrap().to_string();
            let login: serde_json::Value = reqwest::get(format!("{base}/player_api.php?username=demo&password=demo"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let discover: serde_json::Value =
                reqwest::get(format!("{hdhr}/discover.json")).await.unwrap().json().await.unwrap();
            (m3u, first, login, discover)
        })
    })
    .join()
    .unwrap();
    assert_eq!(m3u.entries.len(), 25);
    assert_eq!(m3u.entries[0].title, "Channel 1");
    assert_eq!(first[0], 0x47);
    assert_eq!(login["user_info"]["auth"], 1);
    assert_eq!(discover["TunerCount"], 2);

    // SIGTERM stops it cleanly and the temporary data dir goes with it.
    let data_dir = server
        .stdout
        .iter()
        .find_map(|l| l.strip_prefix("Data dir: ").map(|d| d.trim_end_matches(" (removed on exit)").to_string()))
        .expect("the demo prints its data dir");
    assert!(std::path::Path::new(&data_dir).exists());
    assert!(server.terminate(), "demo did not exit cleanly on SIGTERM");
    assert!(!std::path::Path::new(&data_dir).exists(), "{data_dir} left behind");
}

#[tokio::test(flavor = "multi_thread")]
async fn provider_cli_then_serve() {
    let fake = FakeProvider::start(FakeConfig::demo()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();

    // Bad input: each problem named by its flag, nothing stored.
    let out = tunerpool(dir.path())
        .args([
            "provider",
            "add",
            "--data-dir",
            data_s,
            "--name",
            "P",
            "--kind",
            "xtream",
            "--url",
            "host:80",
            "--max-streams",
            "-3",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in ["--url:", "--username:", "--password:", "--max-streams:"] {
        assert!(err.contains(needle), "{needle} missing in {err}");
    }

    // Add with the password from the environment; the first sync runs at once.
    let out = tunerpool(dir.path())
        .args([
            "provider",
            "add",
            "--data-dir",
            data_s,
            "--name",
            "Fake",
            "--kind",
            "xtream",
            "--url",
            &fake.url(),
            "--username",
            "user1",
        ])
        .env("TUNERPOOL_PROVIDER_PASSWORD", "pass1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["live"], 20);

    let out = tunerpool(dir.path()).args(["provider", "list", "--data-dir", data_s]).output().unwrap();
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(list.contains("\"name\": \"Fake\"") && !list.contains("pass1"), "{list}");

    let mut cmd = tunerpool(dir.path());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir", data_s]);
    let server = start_server(cmd);
    let (status, health) = get_json(&format!("{}/healthz", server.base));
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    let (_, page) = get_json_as(&server.token, &format!("{}/api/v1/channels?per_page=5&page=2", server.base));
    assert_eq!(page["total"], 20);
    assert_eq!(page["items"][0]["name"], "Channel 6");
    let (_, groups) = get_json_as(&server.token, &format!("{}/api/v1/groups", server.base));
    let first_group = groups[0]["name"].as_str().unwrap().to_string();
    let (_, by_group) = get_json_as(
        &server.token,
        &format!("{}/api/v1/channels?group={}", server.base, first_group.replace('&', "%26").replace(' ', "%20")),
    );
    assert_eq!(by_group["total"], groups[0]["channels"]);
    let (_, by_name) = get_json_as(&server.token, &format!("{}/api/v1/channels?q=channel%201", server.base));
    assert_eq!(by_name["total"], 11, "Channel 1 and 10..19");
    let (status, bad) = get_json_as(&server.token, &format!("{}/api/v1/channels?page=zero&per_page=5000", server.base));
    assert_eq!(status, 400);
    let fields: Vec<&str> = bad["fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
    assert!(fields.contains(&"page"), "{bad}");
    let (status, _) = get_json_as(&server.token, &format!("{}/api/v1/providers/999", server.base));
    assert_eq!(status, 404);
    // The guide job fetches the never-fetched guide at start-up.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let guide = loop {
        let (status, xml) = get_text_as(&server.token, &format!("{}/epg.xml", server.base));
        assert_eq!(status, 200);
        if xml.contains("<programme ") || std::time::Instant::now() > deadline {
            break xml;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(guide.matches("<channel ").count(), 18, "{guide}");
    assert_eq!(guide.matches("<programme ").count(), 18 * 30);
    assert!(data.join("epg").join("provider-1.xml").exists());
    let (_, epg) = get_json_as(&server.token, &format!("{}/api/v1/epg", server.base));
    assert_eq!(epg[0]["ok"], true, "{epg}");
    drop(server);

    let out = tunerpool(dir.path()).args(["provider", "remove", "Fake", "--data-dir", data_s]).output().unwrap();
    assert!(out.status.success());
}

#[test]
fn config_check_names_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let out =
        tunerpool(dir.path()).args(["config", "check"]).arg(testdata("../tunerpool.example.toml")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "listen = \"8080\"\nlgo_level = \"info\"\n[sync]\ncatalog_interval = \"12x\"\n").unwrap();
    let out = tunerpool(dir.path()).args(["config", "check"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("listen:"), "{text}");
    assert!(text.contains("lgo_level") && text.contains("log_level"), "{text}");
    assert!(text.contains("sync.catalog_interval"), "{text}");
    // A bad file stops serve with the same messages.
    let out = tunerpool(dir.path()).args(["serve", "--config"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sync.catalog_interval"));
}

#[test]
fn user_cli_adds_lists_and_removes_without_showing_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    let out = tunerpool(dir.path())
        .args(["user", "add", "--data-dir", data_s, "--username", "a b", "--max-connections", "-1"])
        .env("TUNERPOOL_USER_PASSWORD", "x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--username:") && err.contains("--max-connections:"), "{err}");
    let out = tunerpool(dir.path())
        .args(["user", "add", "--data-dir", data_s, "--username", "kim", "--max-connections", "2"])
        .env("TUNERPOOL_USER_PASSWORD", "hunter22")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = tunerpool(dir.path()).args(["user", "list", "--data-dir", data_s]).output().unwrap();
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["username"], "kim");
    assert_eq!(list[0]["max_connections"], 2);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("hunter22") && !text.contains("argon2"), "{text}");
    let out = tunerpool(dir.path()).args(["user", "remove", "kim", "--data-dir", data_s]).output().unwrap();
    assert!(out.status.success());
    let out = tunerpool(dir.path()).args(["user", "list", "--data-dir", data_s]).output().unwrap();
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(), serde_json::json!([]));
}

#[test]
fn an_unreachable_redis_stops_serve_before_it_listens_naming_the_key_not_the_password() {
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = tunerpool(dir.path())
        .args(["serve", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0"])
        .env("TUNERPOOL_POOL_LEDGER", "redis")
        .env("TUNERPOOL_POOL_REDIS_URL", format!("redis://:hunter2secret@127.0.0.1:{port}/0"))
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("pool.redis_url") && stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert!(!stdout.contains("listening"), "nothing announced before the ledger is there: {stdout}");
    assert!(!stdout.contains("hunter2secret") && !stderr.contains("hunter2secret"), "{stdout}{stderr}");
}
