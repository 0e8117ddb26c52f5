//! `tunerpool inspect m3u` on every real-world playlist, with content checks.

mod common;

use common::{testdata, tunerpool};
use serde_json::Value;

fn inspect(file: &str, extra: &[&str]) -> (i32, Value) {
    let dir = tempfile::tempdir().unwrap();
    let out = tunerpool(dir.path())
        .args(["inspect", "m3u"])
        .arg(testdata(&format!("real/m3u/{file}")))
        .args(extra)
        .output()
        .unwrap();
    let code = out.status.code().unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{file}: {e}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, json)
}

/// Entry counts from testdata/real/SOURCES.md.
const EXPECTED: &[(&str, u64)] = &[
    ("iptv-org_417.m3u", 0),
    ("iptv-org_M3u.txt", 32),
    ("iptv-org_MongolianTVHD_1.m3u8", 71),
    ("iptv-org_al_tring.m3u", 13),
    ("iptv-org_am_vnet.m3u", 10),
    ("iptv-org_az_livetv.m3u", 23),
    ("iptv-org_az_odtv.m3u", 32),
    ("iptv-org_ba_morescreens.m3u", 1),
    ("iptv-org_bz_nexgen.m3u", 20),
    ("iptv-org_ca_kinowatch.m3u", 7),
    ("iptv-org_ca_moveonjoy.m3u", 6),
    ("iptv-org_ca_onetv.m3u", 19),
    ("iptv-org_ch_netplus.m3u", 221),
    ("iptv-org_cn_cgtn.m3u", 9),
    ("iptv-org_es.m3u", 267),
    ("iptv-org_gr.m3u", 115),
    ("iptv-org_it.m3u", 324),
    ("iptv-org_jo.m3u", 30),
    ("iptv-org_lb.m3u", 21),
    ("iptv-org_ua.m3u", 97),
];

#[test]
fn every_fixture_is_summarized_with_the_right_entry_count() {
    let mut files: Vec<String> = std::fs::read_dir(testdata("real/m3u"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut expected: Vec<&str> = EXPECTED.iter().map(|(f, _)| *f).collect();
    expected.sort();
    assert_eq!(files, expected, "a fixture was added or removed: update EXPECTED");
    for (file, count) in EXPECTED {
        let (code, j) = inspect(file, &[]);
        assert_eq!(code, 0, "{file}");
        assert_eq!(j["entries"], *count, "{file}");
        let groups: u64 = j["groups"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
        assert_eq!(groups, *count, "{file}: every entry is in exactly one group bucket");
    }
}

#[test]
fn quirks_show_up_in_the_summary() {
    let (_, j) = inspect("iptv-org_ch_netplus.m3u", &[]);
    assert!(j["header"]["present"].as_bool().unwrap());
    let header = serde_json::to_string(&j["header"]["attrs"]).unwrap();
    assert!(header.contains("x-tvg-url") && header.contains("guide.xml.gz"), "{header}");
    assert_eq!(j["attributes"]["tvg-id"], 221);

    let (_, j) = inspect("iptv-org_az_odtv.m3u", &[]);
    assert_eq!(j["attributes"]["user-agent"], 32);
    assert_eq!(j["vlc_options"]["http-user-agent"], 32);

    let (_, j) = inspect("iptv-org_ca_kinowatch.m3u", &[]);
    assert!(j["vlc_options"]["no-ssl-verify"].as_u64().unwrap() >= 1);

    let (_, j) = inspect("iptv-org_M3u.txt", &[]);
    assert_eq!(j["header"]["present"], false);
    assert!(j["duplicate_urls"].as_u64().unwrap() >= 30, "{}", j["duplicate_urls"]);

    let (_, j) = inspect("iptv-org_MongolianTVHD_1.m3u8", &["--entries"]);
    let items = j["items"].as_array().unwrap();
    assert_eq!(items.len(), 71);
    assert!(items.iter().all(|e| (37..=50).contains(&e["duration"].as_str().unwrap().parse::<i32>().unwrap())));
}

#[test]
fn junk_is_reported_with_line_numbers_and_strict_fails() {
    let (code, j) = inspect("iptv-org_417.m3u", &[]);
    assert_eq!(code, 0);
    assert_eq!(j["entries"], 0);
    let skipped = j["skipped"].as_array().unwrap();
    assert!(!skipped.is_empty());
    assert_eq!(skipped[0]["line"], 1);
    assert!(!skipped[0]["reason"].as_str().unwrap().is_empty());
    let (code, _) = inspect("iptv-org_417.m3u", &["--strict"]);
    assert_eq!(code, 2);
    let (code, _) = inspect("iptv-org_it.m3u", &["--strict"]);
    assert_eq!(code, 0);
}

#[test]
fn missing_file_and_bad_scheme_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = tunerpool(dir.path()).args(["inspect", "m3u", "/nonexistent/list.m3u"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/list.m3u") && err.contains("No such file"), "{err}");
    let out = tunerpool(dir.path()).args(["inspect", "m3u", "rtsp://cam/stream"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unsupported scheme rtsp"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
