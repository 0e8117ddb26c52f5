//! Password checks give argon2's working memory back once idle.
//!
//! One test in its own binary (its own process), because it reads the
//! process's resident memory from `/proc/self/status`: nothing else may
//! allocate tens of MiB beside it.

use std::time::{Duration, Instant};

use tunerpool_catalog::users::PasswordChecks;

/// The process's resident memory in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_thread_frees_its_19_mib_once_idle_and_keeps_it_while_checks_keep_coming() {
    let checks = PasswordChecks::with_idle_release(1, Duration::from_secs(5), Duration::from_millis(1500));
    let before = rss_kib();
    // An unknown user is checked against a dummy hash with the default
    // parameters: argon2id with 19 MiB of working memory.
    assert!(!checks.verify(None, "wrong").await.unwrap());
    let after_check = rss_kib();
    assert!(
        after_check >= before + 15 * 1024,
        "a check should hold argon2's ~19 MiB while checks keep coming: {before} KiB before, {after_check} KiB after"
    );
    // A second check soon after reuses the memory: no new 19 MiB.
    assert!(!checks.verify(None, "wrong again").await.unwrap());
    let after_second = rss_kib();
    assert!(
        after_second < after_check + 8 * 1024,
        "the second check should reuse the first one's memory: {after_check} KiB, then {after_second} KiB"
    );
    // Idle for longer than idle_release: the memory goes back.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = rss_kib();
        if now + 15 * 1024 <= after_second {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "an idle check thread still holds argon2's memory 10 s after its last check: {after_second} KiB then, {now} KiB now"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And a later check still works.
    assert!(!checks.verify(None, "later").await.unwrap());
    assert_eq!(checks.done(), 3);
}
