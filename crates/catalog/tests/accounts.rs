//! Accounts: validation, CRUD, primary, and details from the simulated panel.

use fakeprovider::{AccountSpec, FakeConfig, FakeProvider};
use tunerpool_catalog::details::{refresh_account, test_xtream};
use tunerpool_catalog::{AccountPatch, CatalogError, NewProvider, ProviderKind, Secret, Store};
use tunerpool_testkit::{backend_tests, Backend};
use tunerpool_upstream::UpstreamHttp;

backend_tests!(
    account_crud_with_field_errors,
    m3u_providers_get_a_credentialless_primary_and_reject_server_urls,
    details_are_refreshed_from_the_panel_and_errors_recorded,
);

async fn setup(backend: Backend) -> (tempfile::TempDir, Store, UpstreamHttp, FakeProvider) {
    let (dir, store, http) = backend.open_in_temp_dir().await;
    let fake = FakeProvider::start(FakeConfig::with_accounts(vec![
        AccountSpec::new("main", "m/p+w$", 2),
        AccountSpec::new("extra", "e%p", 3),
    ]))
    .await
    .unwrap();
    (dir, store, http, fake)
}

async fn xtream(store: &Store, fake: &FakeProvider) -> i64 {
    store
        .add_provider(&NewProvider {
            name: "P".into(),
            kind: Some(ProviderKind::Xtream),
            url: fake.url(),
            username: Some("main".into()),
            password: Some(Secret::new("m/p+w$")),
            enabled: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .id
}

fn invalid_fields(e: CatalogError) -> Vec<String> {
    match e {
        CatalogError::Invalid(f) => f.into_iter().map(|f| f.field).collect(),
        other => panic!("expected invalid input, got {other}"),
    }
}

fn refused_fields(e: CatalogError) -> Vec<String> {
    match e {
        CatalogError::Refused(f) => f.into_iter().map(|f| f.field).collect(),
        other => panic!("expected a refusal, got {other}"),
    }
}

async fn account_crud_with_field_errors(backend: Backend) {
    let (_dir, store, _http, fake) = setup(backend).await;
    let pid = xtream(&store, &fake).await;
    let bad = AccountPatch {
        server_url: Some(Some("backup.example:8080".into())),
        max_streams: Some(Some(-1)),
        priority: Some(-2),
        ..Default::default()
    };
    let fields = invalid_fields(store.create_account(pid, &bad).await.unwrap_err());
    assert_eq!(fields, ["server_url", "max_streams", "priority", "username", "password"]);

    let input = AccountPatch {
        username: Some("extra".into()),
        password: Some(Secret::new("e%p")),
        server_url: Some(Some(format!("{}/", fake.url()))),
        ..Default::default()
    };
    let a = store.create_account(pid, &input).await.unwrap();
    assert_eq!((a.name.as_str(), a.priority, a.is_primary), ("extra", 1, false));
    assert_eq!(a.server_url.as_deref(), Some(fake.url().as_str()), "normalized");
    let fields = refused_fields(store.create_account(pid, &input).await.unwrap_err());
    assert_eq!(fields, ["username"], "duplicate username");

    // PATCH: null clears max_streams; absent keeps the rest.
    let a = store
        .update_account(a.id, &serde_json::from_str(r#"{"max_streams": 4, "enabled": false}"#).unwrap())
        .await
        .unwrap();
    assert_eq!((a.max_streams, a.enabled, a.password.expose()), (Some(4), false, "e%p"));
    let a = store.update_account(a.id, &serde_json::from_str(r#"{"max_streams": null}"#).unwrap()).await.unwrap();
    assert_eq!(a.max_streams, None);
    assert!(serde_json::from_str::<AccountPatch>(r#"{"passwrd": "x"}"#).is_err(), "unknown fields are refused");

    // Primary moves; the primary cannot be deleted.
    let a = store.update_account(a.id, &AccountPatch { is_primary: Some(true), ..Default::default() }).await.unwrap();
    assert!(a.is_primary);
    let accounts = store.accounts(pid).await.unwrap();
    assert_eq!(accounts.iter().filter(|a| a.is_primary).count(), 1);
    assert!(matches!(store.delete_account(a.id).await, Err(CatalogError::Conflict(_))));
    let old = accounts.iter().find(|x| !x.is_primary).unwrap();
    store.delete_account(old.id).await.unwrap();
    assert_eq!(store.accounts(pid).await.unwrap().len(), 1);

    // The API view never carries the password.
    let json = serde_json::to_string(&store.accounts(pid).await.unwrap()).unwrap();
    assert!(!json.contains("e%p") && !json.contains("password"), "{json}");
}

async fn m3u_providers_get_a_credentialless_primary_and_reject_server_urls(backend: Backend) {
    let (dir, store, _http, _fake) = setup(backend).await;
    let p = store
        .add_provider(&NewProvider {
            name: "M".into(),
            kind: Some(ProviderKind::M3u),
            url: dir.path().join("x.m3u").display().to_string(),
            ..Default::default()
        })
        .await
        .unwrap();
    let primary = store.primary_account(p.id).await.unwrap().unwrap();
    assert_eq!(primary.username, None);
    let input = AccountPatch {
        server_url: Some(Some("http://other".into())),
        search_pattern: Some(Some("u1/p1".into())),
        replace_pattern: Some(Some("u2/p2".into())),
        ..Default::default()
    };
    assert_eq!(invalid_fields(store.create_account(p.id, &input).await.unwrap_err()), ["server_url"]);
    let ok = AccountPatch { server_url: None, ..input };
    let a = store.create_account(p.id, &ok).await.unwrap();
    assert_eq!(a.search_pattern.as_deref(), Some("u1/p1"));
}

async fn details_are_refreshed_from_the_panel_and_errors_recorded(backend: Backend) {
    let (_dir, store, http, fake) = setup(backend).await;
    let pid = xtream(&store, &fake).await;
    let provider = store.provider(pid).await.unwrap();
    let primary = store.primary_account(pid).await.unwrap().unwrap();
    let d = refresh_account(&store, &http, &provider, &primary).await.unwrap();
    assert_eq!((d.auth, d.max_connections, d.active_cons), (Some(true), Some(2), Some(0)));
    assert_eq!(d.status.as_deref(), Some("Active"));
    assert!(d.last_checked.is_some() && d.last_error.is_none());

    fake.update_account("main", |a| a.auth = false);
    let d = refresh_account(&store, &http, &provider, &primary).await.unwrap();
    assert_eq!(d.auth, Some(false));
    assert!(d.last_error.unwrap().contains("rejected"));

    let url = fake.url();
    fake.shutdown().await;
    let err = refresh_account(&store, &http, &provider, &primary).await.unwrap_err().to_string();
    assert!(err.contains("cannot reach") && !err.contains("m/p+w$") && !err.contains("m%2Fp"), "{err}");
    let d = store.account(primary.id).await.unwrap().details;
    assert_eq!(d.max_connections, Some(2), "last known details kept");
    assert!(d.last_error.unwrap().contains(&url));
}

#[tokio::test]
async fn test_reports_limits_and_precise_reasons() {
    let (_dir, _store, http, fake) = setup(Backend::Sqlite).await;
    let r = test_xtream(&http, &fake.url(), "extra", "e%p").await;
    assert!(r.ok, "{r:?}");
    assert_eq!((r.max_connections, r.suggested_max_streams), (Some(3), Some(3)));
    assert!(r.days_left.unwrap() >= 29);

    let r = test_xtream(&http, &fake.url(), "extra", "wrong").await;
    assert!(!r.ok && r.reason.unwrap().contains("rejected"));

    fake.update_account("extra", |a| a.exp_date = Some(1_000_000_000));
    let r = test_xtream(&http, &fake.url(), "extra", "e%p").await;
    assert!(!r.ok && r.reason.as_deref().unwrap().contains("expired"), "{r:?}");

    let r = test_xtream(&http, "panel.example:80", "u", "p").await;
    assert!(r.reason.unwrap().contains("http://"));
    let url = fake.url();
    fake.shutdown().await;
    let r = test_xtream(&http, &url, "extra", "e%p").await;
    assert!(r.reason.unwrap().contains("cannot reach"));
}
