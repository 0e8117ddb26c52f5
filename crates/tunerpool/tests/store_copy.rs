//! `tunerpool store copy`: an operator's single instance on SQLite moved to PostgreSQL. The SQLite catalog is
//! built through the real paths (the provider added and synced against the simulated one with testkit's helpers,
//! then users and lineup edits through a running `serve`), copied by the real binary into a fresh PostgreSQL
//! database, and `serve` on that database must show players and the admin exactly what the SQLite instance
//! showed, let the users log in with their passwords, and hand out new ids past the copied ones. The refusals
//! (a target that holds data, schemas at other versions, bad URLs) are tested on the same binary.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{get_json_as, get_text, send, start_server, tunerpool, Server};
use fakeprovider::{AccountSpec, FakeConfig, FakeProvider};
use serde_json::{json, Value};
use tunerpool_testkit::postgres::PgServer;

const TOKEN: &str = "store-copy-admin-token-0123456789";

/// The password in the PostgreSQL URL: the test server trusts local connections, so it checks nothing; it is
/// there to be looked for in the output, which must never show it.
const PG_PASSWORD: &str = "pg-secret-for-the-copy-0123456789";

/// A fresh PostgreSQL database on the test binary's server, its URL with [`PG_PASSWORD`] in it.
async fn fresh_pg() -> String {
    let url = PgServer::shared().fresh_database().await;
    let with_password = url.replacen("postgres://tunerpool@", &format!("postgres://tunerpool:{PG_PASSWORD}@"), 1);
    assert_ne!(with_password, url, "the test server's URL changed form: {url}");
    with_password
}

/// `tunerpool store copy` with `args`, from the data dir `data`.
fn store_copy(cwd: &Path, data: &Path, args: &[&str]) -> Output {
    let mut cmd = tunerpool(cwd);
    cmd.args(["store", "copy", "--from", data.to_str().unwrap()]).args(args);
    cmd.output().unwrap()
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// `serve` on `data_dir`, on the PostgreSQL catalog `store_url` if given (else the SQLite file in the data dir).
fn serve(cwd: &Path, data_dir: &Path, store_url: Option<&str>) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cmd: Command = tunerpool(cwd);
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir", data_dir.to_str().unwrap()])
        .env("TUNERPOOL_ADMIN_TOKEN", TOKEN)
        // Nothing re-synced or refreshed behind the test's back: what is compared is what was copied.
        .env("TUNERPOOL_SYNC_CATALOG_INTERVAL", "24h")
        .env("TUNERPOOL_SYNC_DETAILS_INITIAL_DELAY", "1h")
        .env("TUNERPOOL_SYNC_DETAILS_INTERVAL", "1h");
    if let Some(url) = store_url {
        cmd.env("TUNERPOOL_STORE_URL", url);
    }
    start_server(cmd)
}

fn api(base: &str, path: &str) -> Value {
    let (status, body) = get_json_as(TOKEN, &format!("{base}{path}"));
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

fn post(base: &str, path: &str, body: Value) -> Value {
    let (status, json, text) = send(TOKEN, "POST", &format!("{base}{path}"), Some(body));
    assert!((200..300).contains(&status), "POST {path}: HTTP {status}: {text}");
    json
}

/// What players and the admin see of a running instance, with its own address taken out of it.
fn everything(base: &str) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    let mut client = |what: &str, path: &str| {
        let (status, body) = get_text(&format!("{base}{path}"));
        assert_eq!(status, 200, "{what}: {body}");
        seen.push((what.to_owned(), body.replace(base, "{base}")));
    };
    for user in [("kim", "kim-password"), ("kids", "kids-password")] {
        let login = format!("username={}&password={}", user.0, user.1);
        client(&format!("{} m3u_plus", user.0), &format!("/get.php?{login}&type=m3u_plus&output=ts"));
        client(&format!("{} m3u", user.0), &format!("/get.php?{login}&type=m3u"));
        for action in ["get_live_categories", "get_live_streams", "get_vod_streams", "get_series"] {
            client(&format!("{} {action}", user.0), &format!("/player_api.php?{login}&action={action}"));
        }
    }
    let (status, discover) = get_text(&format!("{base}/hdhr/kim/kim-password/discover.json"));
    assert_eq!(status, 200, "{discover}");
    let device: Value = serde_json::from_str(&discover).unwrap();
    seen.push(("hdhomerun device id".into(), device["DeviceID"].to_string()));

    let mut admin = |path: &str| seen.push((path.to_owned(), api(base, path).to_string()));
    admin("/api/v1/providers");
    let providers = api(base, "/api/v1/providers");
    for p in providers.as_array().unwrap() {
        admin(&format!("/api/v1/providers/{}/accounts", p["id"]));
    }
    admin("/api/v1/users");
    for page in 1..=3 {
        admin(&format!("/api/v1/channels?per_page=1000&page={page}"));
    }
    admin("/api/v1/groups");
    admin("/api/v1/guide/channels?q=&limit=1000");
    admin("/api/v1/alerts");
    admin("/api/v1/history/channels");
    seen
}

/// Events up to `last_id` (the new instance writes its own on top).
fn events_up_to(base: &str, last_id: i64) -> Vec<Value> {
    let events = api(base, "/api/v1/events?limit=1000");
    events.as_array().unwrap().iter().filter(|e| e["id"].as_i64().unwrap() <= last_id).cloned().collect()
}

fn ids(list: &Value) -> Vec<i64> {
    list.get("items").unwrap_or(list).as_array().unwrap().iter().map(|v| v["id"].as_i64().unwrap()).collect()
}

/// Live channels of the simulated provider in the move: more than two batches of the copy.
const LIVE: usize = 2500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_instance_moved_to_postgresql_shows_and_does_the_same() {
    // 2500 channels: streams, lineup channels and sources, guide channels go over in several batches.
    let fake = FakeProvider::start(FakeConfig {
        live_channels: LIVE,
        ..FakeConfig::with_accounts(vec![
            AccountSpec::new("main", "pw-main", 2),
            AccountSpec::new("second", "pw-second", 1),
            AccountSpec::new("later", "pw-later", 1),
        ])
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sqlite_dir = dir.path().join("single");

    // The single instance's catalog: the provider with two accounts, synced with their details.
    {
        let (store, http) = tunerpool_testkit::open_store(&sqlite_dir).await;
        let pid = tunerpool_testkit::add_xtream(&store, &fake, &[("main", "pw-main"), ("second", "pw-second")]).await;
        tunerpool_testkit::sync_with_details(&store, &http, pid).await;
        store.close().await;
    }

    // Users and lineup edits through the running instance, and one stream watched (events, history, quality).
    let mut single = serve(dir.path(), &sqlite_dir, None);
    let base = single.base.clone();
    let channels: Vec<i64> =
        (1..=3).flat_map(|page| ids(&api(&base, &format!("/api/v1/channels?per_page=1000&page={page}")))).collect();
    assert_eq!(channels.len(), LIVE);
    let group = post(&base, "/api/v1/groups", json!({"name": "Favourites", "position": 0}));
    let group_id = group["id"].as_i64().unwrap();
    post(&base, &format!("/api/v1/channels/{}/merge", channels[0]), json!({"channels": [channels[1]]}));
    let (status, _, body) = send(
        TOKEN,
        "PATCH",
        &format!("{base}/api/v1/channels/{}", channels[0]),
        Some(json!({"name": "My first", "number": 9001, "group_id": group_id, "tvg_id": "first.tv"})),
    );
    assert_eq!(status, 200, "{body}");
    let (status, _, body) =
        send(TOKEN, "PATCH", &format!("{base}/api/v1/channels/{}", channels[2]), Some(json!({"hidden": true})));
    assert_eq!(status, 200, "{body}");
    // The channel with the highest id goes: its id must never come back (SQLite's AUTOINCREMENT).
    let deleted = *channels.iter().max().unwrap();
    let (status, _, body) = send(TOKEN, "DELETE", &format!("{base}/api/v1/channels/{deleted}"), None);
    assert!(status == 204 || status == 200, "HTTP {status}: {body}");
    post(&base, "/api/v1/users", json!({"username": "kim", "password": "kim-password", "max_connections": 2}));
    post(
        &base,
        "/api/v1/users",
        json!({"username": "kids", "password": "kids-password", "priority": 3, "allowed_groups": [group_id]}),
    );
    let (status, start) = common::get_start("", &format!("{base}/live/kim/kim-password/{}.ts", channels[3]));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&start));
    let before = everything(&base);
    let last_event = api(&base, "/api/v1/events?limit=1")[0]["id"].as_i64().expect("events were recorded");
    let events_before = events_up_to(&base, last_event);
    assert!(single.terminate(), "the single instance stops cleanly");

    // The copy, the password in the environment (store.url), never in the output.
    let pg = fresh_pg().await;
    let out = tunerpool(dir.path())
        .args(["store", "copy", "--data-dir", sqlite_dir.to_str().unwrap()])
        .env("TUNERPOOL_STORE_URL", &pg)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(!stdout.contains(PG_PASSWORD) && !stderr.contains(PG_PASSWORD), "{stdout}\n{stderr}");
    for table in ["providers", "accounts", "streams", "lineup_channels", "lineup_sources", "users", "events"] {
        let line = stdout.lines().find(|l| l.split_whitespace().next() == Some(table)).unwrap_or_else(|| {
            panic!("no line for {table} in the summary:\n{stdout}");
        });
        let rows: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!(rows > 0, "{line}");
        if ["streams", "lineup_channels", "lineup_sources"].contains(&table) {
            assert!(rows > 2000, "{line}: more than two batches");
        }
        assert!(stderr.contains(&format!("  {table}: {rows} of {rows} rows")), "no progress for {table}:\n{stderr}");
    }
    assert!(stdout.contains("lineup_channels.id"), "the sequences set: {stdout}");

    // The cluster's first instance, on PostgreSQL with a data dir of its own: the same for players and the admin.
    let moved = serve(dir.path(), &dir.path().join("moved"), Some(&pg));
    let base = moved.base.clone();
    let after = everything(&base);
    for ((what, was), (_, is)) in before.iter().zip(&after) {
        assert_eq!(was, is, "{what} differs after the move");
    }
    assert_eq!(before.len(), after.len());
    assert_eq!(events_before, events_up_to(&base, last_event), "the events differ after the move");
    // The users log in with their passwords (their argon2 hashes came over), and a wrong one is refused.
    let (status, info) = get_text(&format!("{base}/player_api.php?username=kids&password=kids-password"));
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&info).unwrap()["user_info"]["auth"], 1, "{info}");
    let (status, _) = get_text(&format!("{base}/get.php?username=kim&password=wrong&type=m3u"));
    assert_eq!(status, 401);

    // New rows get ids past the copied ones: a channel split off (never the deleted one's id), a group, a user,
    // and a provider added and synced, with its streams, groups, lineup and events.
    let channel = api(&base, &format!("/api/v1/channels/{}", channels[0]));
    let source = channel["sources"][1]["id"].as_i64().unwrap();
    let split = post(&base, &format!("/api/v1/channels/{}/split", channels[0]), json!({"source_id": source}));
    let split_id = split["id"].as_i64().unwrap();
    assert!(split_id > deleted, "the split channel got id {split_id}, the deleted one had {deleted}");
    let group2 = post(&base, "/api/v1/groups", json!({"name": "Later"}));
    assert!(group2["id"].as_i64().unwrap() > group_id, "{group2}");
    let user = post(&base, "/api/v1/users", json!({"username": "new", "password": "new-password"}));
    let users = ids(&api(&base, "/api/v1/users"));
    assert_eq!(user["id"].as_i64(), users.iter().max().copied(), "{user}");
    let provider = post(
        &base,
        "/api/v1/providers",
        json!({"name": "Later", "kind": "xtream", "url": fake.url(), "username": "later", "password": "pw-later"}),
    );
    let pid = provider["id"].as_i64().unwrap();
    assert!(pid > 1, "{provider}");
    tunerpool_testkit::eventually("the new provider's sync", Duration::from_secs(30), || {
        let p = api(&base, &format!("/api/v1/providers/{pid}"));
        async move { (p["sync"]["ok"] == json!(true)).then_some(()) }
    })
    .await;
    let sources_of_new: usize = (1..=3)
        .map(|page| {
            let listed = api(&base, &format!("/api/v1/channels?per_page=1000&page={page}"));
            listed["items"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|c| c["sources"].as_array().unwrap().iter())
                .filter(|s| s["provider_id"].as_i64() == Some(pid))
                .count()
        })
        .sum();
    assert_eq!(sources_of_new, LIVE, "the new provider's streams joined the lineup");
    let (status, m3u) = get_text(&format!("{base}/get.php?username=new&password=new-password&type=m3u"));
    assert_eq!(status, 200, "{m3u}");
    assert!(m3u.contains("#EXTINF"), "{m3u}");
}

/// A SQLite catalog with a synced provider in `dir`.
async fn small_catalog(dir: &Path, fake: &FakeProvider) {
    let (store, http) = tunerpool_testkit::open_store(dir).await;
    let pid = tunerpool_testkit::add_xtream(&store, fake, &[("main", "pw-main")]).await;
    tunerpool_testkit::sync_with_details(&store, &http, pid).await;
    store.close().await;
}

/// Applies the first `n` migrations of `migrations` (a directory of this repository) to `pool`: a catalog an
/// older tunerpool left.
async fn migrate_up_to<DB>(pool: &sqlx::Pool<DB>, migrations: &str, n: usize, tmp: &Path)
where
    DB: sqlx::Database,
    <DB as sqlx::Database>::Connection: sqlx::migrate::Migrate,
{
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../catalog").join(migrations);
    let older = tmp.join(format!("{migrations}-{n}"));
    std::fs::create_dir_all(&older).unwrap();
    let mut files: Vec<_> = std::fs::read_dir(&src).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for f in files.iter().take(n) {
        std::fs::copy(f, older.join(f.file_name().unwrap())).unwrap();
    }
    sqlx::migrate::Migrator::new(older.as_path()).await.unwrap().run(pool).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_is_refused_into_a_catalog_with_data_across_versions_and_with_bad_urls() {
    let fake =
        FakeProvider::start(FakeConfig::with_accounts(vec![AccountSpec::new("main", "pw-main", 1)])).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let data = cwd.join("single");
    small_catalog(&data, &fake).await;

    // Into a new database (migrated by the copy), then again: refused, what it holds named, nothing changed.
    let pg = fresh_pg().await;
    let out = store_copy(cwd, &data, &["--to", &pg]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("migrated just now"), "{stdout}");
    let out = store_copy(cwd, &data, &["--to", &pg]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "a second copy into the same catalog went through: {stdout}");
    assert!(stderr.contains("not empty") && stderr.contains("providers: 1 rows"), "{stderr}");
    assert!(stderr.contains("--replace"), "the refusal says what to do: {stderr}");
    assert!(!stderr.contains(PG_PASSWORD), "{stderr}");
    // With --replace it goes through, replacing what was there (the same rows again).
    let out = store_copy(cwd, &data, &["--to", &pg, "--replace"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("replaced") && !stdout.contains("migrated just now"), "{stdout}");
    let pg_pool = sqlx::PgPool::connect(&pg).await.unwrap();
    let providers: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM providers").fetch_one(&pg_pool).await.unwrap();
    assert_eq!(providers, 1);
    // The materialized listing is left to the first `serve`: empty, and stale so that it gets rebuilt.
    let (listed, stale): (i64, bool) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM live_listing), (SELECT version <> built FROM live_listing_state WHERE id = 1)",
    )
    .fetch_one(&pg_pool)
    .await
    .unwrap();
    assert_eq!((listed, stale), (0, true));
    // A catalog in use (here a reader's transaction; a running instance's): refused once its tables stay locked
    // for the lock timeout, nothing changed.
    let mut reader = pg_pool.begin().await.unwrap();
    sqlx::query("SELECT COUNT(*) FROM providers").execute(&mut *reader).await.unwrap();
    let out = store_copy(cwd, &data, &["--to", &pg, "--replace"]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(stderr.contains("is in use") && stderr.contains("stop the tunerpool instances using it"), "{stderr}");
    reader.rollback().await.unwrap();
    pg_pool.close().await;

    // A SQLite catalog an older tunerpool left (migration 10 of 11): refused, saying how to migrate it, and the
    // target stays empty.
    let old = cwd.join("old");
    std::fs::create_dir_all(&old).unwrap();
    let old_pool =
        sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=rwc", old.join("tunerpool.db").display())).await.unwrap();
    migrate_up_to(&old_pool, "migrations", 10, cwd).await;
    old_pool.close().await;
    let empty = fresh_pg().await;
    let out = store_copy(cwd, &old, &["--to", &empty]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(stderr.contains("the SQLite catalog is at schema migration 10, this tunerpool's is 11"), "{stderr}");
    assert!(stderr.contains("run this tunerpool once on it"), "{stderr}");

    // A PostgreSQL catalog an older tunerpool migrated (1 of 2): refused likewise, nothing written to it.
    let older_pg = fresh_pg().await;
    let pool = sqlx::PgPool::connect(&older_pg).await.unwrap();
    migrate_up_to(&pool, "migrations_pg", 1, cwd).await;
    let out = store_copy(cwd, &data, &["--to", &older_pg]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(stderr.contains("the PostgreSQL catalog is at schema migration 1, this tunerpool's is 2"), "{stderr}");
    assert!(stderr.contains("store.url"), "it says how to migrate it: {stderr}");
    let providers: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM providers").fetch_one(&pool).await.unwrap();
    assert_eq!(providers, 0, "a refused copy wrote into the catalog");
    pool.close().await;

    // Bad URLs: the flag or key named, the password never shown.
    let secret = "hunter2-in-the-url";
    let out = store_copy(cwd, &data, &["--to", &format!("mysql://tp:{secret}@db.example/tp")]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with("--to: unsupported scheme \"mysql\""), "{stderr}");
    assert!(!stderr.contains(secret), "{stderr}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let unreachable = format!("postgres://tp:{secret}@127.0.0.1:{closed}/tp");
    let out = store_copy(cwd, &data, &["--to", &unreachable]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("--to: cannot open the PostgreSQL catalog at postgres://***:***@127.0.0.1"), "{stderr}");
    assert!(stderr.contains("refused"), "the reason is the server's, not a pool's timeout: {stderr}");
    assert!(!stderr.contains(secret), "{stderr}");
    let out = tunerpool(cwd)
        .args(["store", "copy", "--from", data.to_str().unwrap()])
        .env("TUNERPOOL_STORE_URL", &unreachable)
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("store.url: cannot open the PostgreSQL catalog"), "{stderr}");
    assert!(!stderr.contains(secret), "{stderr}");
    let out = tunerpool(cwd).args(["store", "copy", "--from", data.to_str().unwrap()]).output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--to: name the PostgreSQL catalog") && stderr.contains("store.url"), "{stderr}");
    let out = store_copy(cwd, &cwd.join("nowhere"), &["--to", &pg]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("--from: ") && stderr.contains("no SQLite catalog here"), "{stderr}");
}
