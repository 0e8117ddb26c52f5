//! Alerts end to end over real sockets: the simulated provider's account
//! details, the store's conditions and outbox, and a webhook receiver (a
//! tiny axum server) that records what it gets.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use fakeprovider::{AccountSpec, FakeConfig, FakeProvider};
use parking_lot::Mutex;
use tunerpool_alerts::{check, Backoff, Rules, Sender, Webhook};
use tunerpool_catalog::alerts::AlertState;
use tunerpool_catalog::Store;
use tunerpool_testkit::eventually;
use tunerpool_upstream::UpstreamHttp;

/// What a receiver got: headers and body of each request.
type Received = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// A webhook receiver on `listener`, answering 200 to every POST.
fn receive(listener: tokio::net::TcpListener) -> (Received, tokio::task::JoinHandle<()>) {
    let got: Received = Arc::default();
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/{*path}",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let seen = seen.clone();
            async move {
                seen.lock().push((headers, body));
                StatusCode::OK
            }
        }),
    );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (got, task)
}

async fn receiver() -> (String, Received, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (got, task) = receive(listener);
    (base, got, task)
}

fn fast_backoff() -> Backoff {
    Backoff {
        first: Duration::from_millis(100),
        max: Duration::from_millis(400),
        give_up_after: Duration::from_secs(3600),
    }
}

/// Refreshes every account's details, as the details job does.
async fn refresh(store: &Store, http: &UpstreamHttp, pid: i64) {
    let provider = store.provider(pid).await.unwrap();
    for a in store.accounts(pid).await.unwrap() {
        let _ = tunerpool_catalog::details::refresh_account(store, http, &provider, &a).await;
    }
}

#[tokio::test]
async fn an_expiring_account_is_announced_once_then_its_renewal() {
    let now = tunerpool_catalog::now();
    let mut spec = AccountSpec::new("a", "pa", 2);
    spec.exp_date = Some(now + 3 * 86_400 + 3600);
    let fake = FakeProvider::start(FakeConfig::with_accounts(vec![spec])).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (store, http) = tunerpool_testkit::open_store(dir.path()).await;
    let pid = tunerpool_testkit::add_xtream(&store, &fake, &[("a", "pa")]).await;
    let (base, got, _rx) = receiver().await;
    let hooks: Vec<Webhook> = vec![format!("ntfy:{base}/alerts-topic").parse().unwrap()];
    let sender = Sender::new(hooks.clone(), fast_backoff(), Duration::from_secs(5)).unwrap();
    let rules = Rules { expiry_warning_days: 7, ..Default::default() };

    // Several refreshes, each followed by a check and a delivery round: one alert, sent once.
    for _ in 0..4 {
        refresh(&store, &http, pid).await;
        check(&store, rules, &hooks, true, tunerpool_catalog::now()).await.unwrap();
        sender.deliver_due(&store).await.unwrap();
    }
    {
        let got = got.lock();
        assert_eq!(got.len(), 1, "exactly one delivery for the open condition");
        let (headers, body) = &got[0];
        assert_eq!(headers["title"], "Account Fake / Primary expires in 3 days");
        assert_eq!(headers["tags"], "warning");
        let text = String::from_utf8_lossy(body);
        assert!(text.contains("Account Primary of provider Fake expires in 3 days"), "{text}");
    }
    let open = store.alerts(AlertState::Open, 10).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!((open[0].kind.as_str(), open[0].account_id.is_some()), ("account_expiring", true));
    // One history sample per refresh.
    let samples =
        store.account_history(tunerpool_catalog::history::Range { from: 0, to: i64::MAX }, None, 100).await.unwrap();
    assert_eq!(samples.len(), 4);
    assert!(samples
        .iter()
        .all(|s| s.ok && s.max_connections == Some(2) && s.exp_date == Some(now + 3 * 86_400 + 3600)));

    // Renewed: the alert resolves, and that is told once too.
    fake.update_account("a", |a| a.exp_date = Some(now + 90 * 86_400));
    for _ in 0..2 {
        refresh(&store, &http, pid).await;
        check(&store, rules, &hooks, true, tunerpool_catalog::now()).await.unwrap();
        sender.deliver_due(&store).await.unwrap();
    }
    let got = got.lock();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].0["title"], "Resolved: Account Fake / Primary expires in 3 days");
    assert_eq!(got[1].0["tags"], "white_check_mark");
}

#[tokio::test]
async fn a_receiver_that_is_down_gets_the_alert_once_it_is_up() {
    let fake = FakeProvider::start(FakeConfig::with_accounts(vec![AccountSpec::new("a", "pa", 1)])).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (store, http) = tunerpool_testkit::open_store(dir.path()).await;
    // A wrong password: the panel refuses the account.
    let pid = tunerpool_testkit::add_xtream(&store, &fake, &[("a", "wrong")]).await;
    refresh(&store, &http, pid).await;

    // A port nobody listens on (yet).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let hooks: Vec<Webhook> = vec![format!("json:http://{addr}/hook?token=SECRET-TOKEN").parse().unwrap()];
    let sender = Sender::new(hooks.clone(), fast_backoff(), Duration::from_secs(5)).unwrap();
    let wake = Arc::new(tokio::sync::Notify::new());
    let _task = sender.clone().spawn(store.clone(), wake.clone());

    let opened = check(&store, Rules::default(), &hooks, true, tunerpool_catalog::now()).await.unwrap().opened;
    assert_eq!(opened.iter().map(|a| a.kind.as_str()).collect::<Vec<_>>(), ["account_auth"]);
    wake.notify_one();

    // It fails, and is kept for another try, with an error that hides the token.
    let error: String = eventually("two failed attempts", Duration::from_secs(10), || async {
        let row: Option<(i64, Option<String>)> =
            sqlx_row(&store, "SELECT attempts, last_error FROM alert_deliveries").await;
        row.filter(|(n, _)| *n >= 2).and_then(|(_, e)| e)
    })
    .await;
    assert!(!error.contains("SECRET-TOKEN"), "{error}");

    // The receiver comes up on that port: the alert arrives, once.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let (got, _rx) = receive(listener);
    eventually("the alert is delivered", Duration::from_secs(10), || async { (got.lock().len() == 1).then_some(()) })
        .await;
    let body: serde_json::Value = serde_json::from_slice(&got.lock()[0].1).unwrap();
    assert_eq!((body["event"].as_str(), body["kind"].as_str()), (Some("opened"), Some("account_auth")));
    assert_eq!(body["severity"], "critical");
    let delivered: Option<(i64, Option<String>)> =
        sqlx_row(&store, "SELECT delivered_at, last_error FROM alert_deliveries").await;
    assert!(matches!(delivered, Some((at, None)) if at > 0));
    // Checking again sends nothing more.
    check(&store, Rules::default(), &hooks, true, tunerpool_catalog::now()).await.unwrap();
    assert_eq!(sender.deliver_due(&store).await.unwrap(), Default::default());
    assert_eq!(got.lock().len(), 1);
}

/// The first row of `sql` as two columns.
async fn sqlx_row<A, B>(store: &Store, sql: &str) -> Option<(A, B)>
where
    for<'r> A: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite> + Send + Unpin,
    for<'r> B: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite> + Send + Unpin,
{
    sqlx::query_as::<_, (A, B)>(sql).fetch_optional(store.pool()).await.unwrap()
}
