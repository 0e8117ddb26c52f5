//! History and alerts in the admin API, over real sockets: viewers watch
//! channels of the simulated provider, one is refused for capacity, the pool
//! is sampled, and the history endpoints show it.

mod common;

use std::time::Duration;

use common::{admin_get, api_client, gateway};
use futures_util::StreamExt;
use serde_json::Value;
use tunerpool_catalog::alerts::{Condition, Severity};
use tunerpool_relay::settings::RelaySettings;

async fn get_json(url: String) -> (u16, Value) {
    let resp = api_client().get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn history_endpoints_show_the_pool_views_and_account_samples() {
    let settings = RelaySettings { acquire_wait: Duration::from_millis(200), ..RelaySettings::default() };
    let g = gateway(settings, |_| {}).await;

    // Two viewers take both accounts' single connections; a third channel is refused.
    let mut watching = Vec::new();
    for channel in [1, 2] {
        let resp = admin_get(format!("{}/stream/{channel}.ts", g.base)).await.unwrap();
        assert_eq!(resp.status(), 200);
        let mut body = resp.bytes_stream();
        assert!(body.next().await.unwrap().is_ok(), "channel {channel} delivers");
        watching.push(body);
    }
    let refused = admin_get(format!("{}/stream/3.ts", g.base)).await.unwrap();
    assert_eq!(refused.status(), 503);

    assert_eq!(tunerpool_http::history::sample_pool(&g.state).await.unwrap(), 1);

    let (status, pool) = get_json(format!("{}/api/v1/history/pool", g.base)).await;
    assert_eq!(status, 200, "{pool}");
    let samples = pool.as_array().unwrap();
    assert_eq!(samples.len(), 1, "{pool}");
    let s = &samples[0];
    assert_eq!(
        [&s["slots_used"], &s["slots_max"], &s["sessions"], &s["viewers"], &s["refusals"], &s["resolution"]],
        [2, 2, 2, 2, 1, 0],
        "{s}"
    );

    let (status, views) = get_json(format!("{}/api/v1/history/channels", g.base)).await;
    assert_eq!(status, 200);
    let mut watched: Vec<(i64, i64)> = views
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["channel_id"].as_i64().unwrap(), v["views"].as_i64().unwrap()))
        .collect();
    watched.sort();
    assert_eq!(watched, [(1, 1), (2, 1)], "{views}");
    assert!(views[0]["name"].is_string());

    // A second sample: the tally was taken, so no refusal is counted twice.
    tunerpool_http::history::sample_pool(&g.state).await.unwrap();
    let (_, pool) = get_json(format!("{}/api/v1/history/pool?provider_id=1&limit=10", g.base)).await;
    let refusals: Vec<i64> = pool.as_array().unwrap().iter().map(|s| s["refusals"].as_i64().unwrap()).collect();
    assert_eq!(refusals, [1, 0]);

    // Account samples: one per details refresh (the sync asked the panel about the primary account, then the
    // details of both were fetched).
    let (status, accounts) = get_json(format!("{}/api/v1/history/accounts", g.base)).await;
    assert_eq!(status, 200);
    let accounts = accounts.as_array().unwrap();
    assert_eq!(accounts.len(), 3, "{accounts:?}");
    assert!(accounts.iter().all(|a| a["ok"] == true && a["max_connections"] == 1));
    let second = accounts.iter().map(|a| a["account_id"].as_i64().unwrap()).max().unwrap();
    let (_, only) = get_json(format!("{}/api/v1/history/accounts?account_id={second}", g.base)).await;
    assert_eq!(only.as_array().unwrap().len(), 1, "{only}");

    // Ranges: one before everything is empty, one that ends before it starts is empty too.
    let (_, none) = get_json(format!("{}/api/v1/history/pool?from=0&to=1000", g.base)).await;
    assert_eq!(none, Value::Array(vec![]));
    let (status, none) = get_json(format!("{}/api/v1/history/pool?from=2000&to=1000", g.base)).await;
    assert_eq!((status, none), (200, Value::Array(vec![])));
    // Bad parameters are named.
    for (query, field) in
        [("from=yesterday", "from"), ("to=-1", "to"), ("limit=0", "limit"), ("provider_id=x", "provider_id")]
    {
        let (status, err) = get_json(format!("{}/api/v1/history/pool?{query}", g.base)).await;
        assert_eq!(status, 400, "{query}: {err}");
        assert!(err.to_string().contains(field), "{query}: {err}");
    }
    drop(watching);
}

#[tokio::test]
async fn alerts_are_listed_open_first() {
    let g = gateway(RelaySettings::default(), |_| {}).await;
    let (status, empty) = get_json(format!("{}/api/v1/alerts", g.base)).await;
    assert_eq!((status, empty), (200, Value::Array(vec![])));

    let cond = |key: &str| Condition {
        key: key.into(),
        kind: "sync_failed",
        severity: Severity::Critical,
        title: format!("{key} failing"),
        message: "cannot reach http://u:secretpw@panel.example/get.php?username=u&password=secretpw".into(),
        provider_id: Some(1),
        account_id: None,
        user_id: None,
    };
    let store = &g.state.store;
    store.reconcile_alerts(100, &[cond("a")], &[], true).await.unwrap();
    store.reconcile_alerts(200, &[cond("b")], &[], true).await.unwrap();

    let (_, all) = get_json(format!("{}/api/v1/alerts", g.base)).await;
    let keys: Vec<(&str, bool)> =
        all.as_array().unwrap().iter().map(|a| (a["key"].as_str().unwrap(), a["resolved_at"].is_null())).collect();
    assert_eq!(keys, [("b", true), ("a", false)]);
    assert!(!all.to_string().contains("secretpw"), "{all}");
    let (_, open) = get_json(format!("{}/api/v1/alerts?state=open", g.base)).await;
    assert_eq!(open.as_array().unwrap().len(), 1);
    let (status, err) = get_json(format!("{}/api/v1/alerts?state=closed", g.base)).await;
    assert_eq!(status, 400, "{err}");
}
