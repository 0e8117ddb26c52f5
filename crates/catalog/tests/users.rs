//! Downstream users in the store: create, read by id and name, change,
//! refuse a taken name or an unknown group, delete; the installation's id.
//! On both backends.

use tunerpool_catalog::{CatalogError, Secret, UserPatch};
use tunerpool_testkit::{backend_tests, Backend};

backend_tests!(users_are_stored_changed_and_removed, the_instance_id_is_eight_hex_digits);

fn named(username: &str, password: &str) -> UserPatch {
    UserPatch { username: Some(username.into()), password: Some(Secret::new(password)), ..Default::default() }
}

fn refused_field(e: CatalogError) -> String {
    match e {
        CatalogError::Refused(f) => f.into_iter().map(|f| f.field).collect::<Vec<_>>().join(","),
        other => panic!("expected a refusal, got {other}"),
    }
}

async fn users_are_stored_changed_and_removed(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = backend.open(dir.path()).await;
    let input = UserPatch {
        max_connections: Some(3),
        priority: Some(40),
        expires_at: Some(Some(2_000_000_000)),
        ..named("kim", "k1m")
    };
    let kim = store.create_user(&input).await.unwrap();
    assert_eq!((kim.username.as_str(), kim.enabled, kim.max_connections, kim.priority), ("kim", true, 3, 40));
    assert_eq!((kim.expires_at, kim.allowed_groups.as_ref()), (Some(2_000_000_000), None));
    assert_eq!(store.user_by_name("kim").await.unwrap().map(|u| u.id), Some(kim.id));
    assert_eq!(store.find_user(&kim.id.to_string()).await.unwrap().username, "kim");
    assert_eq!(refused_field(store.create_user(&named("kim", "other")).await.unwrap_err()), "username");
    let groups = UserPatch { allowed_groups: Some(Some(vec![999_999])), ..Default::default() };
    assert_eq!(refused_field(store.update_user(kim.id, &groups).await.unwrap_err()), "allowed_groups");

    let lee = store.create_user(&named("lee", "l33")).await.unwrap();
    let taken = UserPatch { username: Some("kim".into()), ..Default::default() };
    assert_eq!(refused_field(store.update_user(lee.id, &taken).await.unwrap_err()), "username");
    let changed = store
        .update_user(
            kim.id,
            &UserPatch { enabled: Some(false), password: Some(Secret::new("new")), ..Default::default() },
        )
        .await
        .unwrap();
    assert!(!changed.enabled && changed.updated_at > kim.updated_at);
    assert_ne!(changed.password_hash.expose(), kim.password_hash.expose());
    assert_eq!(store.users().await.unwrap().iter().map(|u| u.username.as_str()).collect::<Vec<_>>(), ["kim", "lee"]);

    store.delete_user(kim.id).await.unwrap();
    assert!(store.user_by_name("kim").await.unwrap().is_none());
    assert!(matches!(store.delete_user(kim.id).await, Err(CatalogError::NotFound { what: "user", .. })));
}

async fn the_instance_id_is_eight_hex_digits(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = backend.open(dir.path()).await;
    let id = store.instance_id().await.unwrap();
    assert!(id.len() == 8 && id.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()), "{id}");
    assert_eq!(store.instance_id().await.unwrap(), id, "stable");
}
