//! Every real Xtream Codes response in `testdata/real/xtream/` (see
//! SOURCES.md) must decode with the documented content, both in memory
//! (`parse_list`) and streamed from a reader (`for_each_item`).

use std::collections::BTreeMap;
use tunerpool_formats::xtream::{
    self, for_each_item, parse_auth, parse_list, Category, ItemCounts, LiveStream, Series, VodStream, XtreamError,
};

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/real/xtream/", $name)) as &[u8]
    };
}

const LIVE: &[u8] = fixture!("tellytv_eternal_get_live_streams.json");
const ETERNAL_SERIES: &[u8] = fixture!("tellytv_eternal_get_series.json");
const HELL_AUTH: &[u8] = fixture!("tellytv_hellraiser_auth.json");
const HELL_LIVE_CATS: &[u8] = fixture!("tellytv_hellraiser_get_live_categories.json");
const HELL_SERIES: &[u8] = fixture!("tellytv_hellraiser_get_series.json");
const IRIS_VOD: &[u8] = fixture!("tellytv_iris_get_vod_streams.json");
const TNT_AUTH: &[u8] = fixture!("tellytv_tnt_auth.json");
const TNT_SERIES_CATS: &[u8] = fixture!("tellytv_tnt_get_series_categories.json");
const TNT_VOD_CATS: &[u8] = fixture!("tellytv_tnt_get_vod_categories.json");

#[test]
fn every_fixture_file_is_covered() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/real/xtream");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .expect("testdata/real/xtream exists")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    assert_eq!(
        on_disk,
        [
            "tellytv_eternal_get_live_streams.json",
            "tellytv_eternal_get_series.json",
            "tellytv_hellraiser_auth.json",
            "tellytv_hellraiser_get_live_categories.json",
            "tellytv_hellraiser_get_series.json",
            "tellytv_iris_get_vod_streams.json",
            "tellytv_tnt_auth.json",
            "tellytv_tnt_get_series_categories.json",
            "tellytv_tnt_get_vod_categories.json",
        ],
        "add a test for the new fixture"
    );
}

/// Decodes a list both ways and checks they agree.
fn list<T: serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(body: &[u8]) -> Vec<T> {
    let whole = parse_list::<T>(body).expect("parse_list");
    let mut streamed = Vec::new();
    let counts = for_each_item(body, |t: T| streamed.push(t)).expect("for_each_item");
    assert_eq!(counts, whole.counts);
    assert_eq!(streamed, whole.items);
    assert_eq!(counts, ItemCounts { ok: whole.items.len(), skipped: 0, first_error: None });
    whole.items
}

#[test]
fn eternal_live_streams() {
    let live: Vec<LiveStream> = list(LIVE);
    assert_eq!(live.len(), 2607);
    assert_eq!(live.iter().filter(|s| s.epg_channel_id.is_none()).count(), 1975);
    // 11 nulls and 2596 empty strings: all absent.
    assert!(live.iter().all(|s| s.custom_sid.is_none()));
    assert_eq!(live.iter().filter(|s| s.stream_type.as_deref() == Some("live")).count(), 2596);
    assert_eq!(live.iter().filter(|s| s.stream_type.as_deref() == Some("created_live")).count(), 11);
    assert_eq!(live.iter().filter(|s| s.tv_archive).count(), 18);

    let first = &live[0];
    assert_eq!(first.num, Some(1));
    assert_eq!(first.name, "24/7 COPS (ETV)");
    assert_eq!(first.stream_id, 21467);
    assert_eq!(first.added, Some(1_512_103_894));
    assert_eq!(first.category_id.as_deref(), Some("34"));
    assert_eq!(first.stream_icon, None);
    assert_eq!(first.direct_source, None);
    assert_eq!(first.tv_archive_duration, Some(0));
    assert!(!first.tv_archive);

    let by_id: BTreeMap<i64, &LiveStream> = live.iter().map(|s| (s.stream_id, s)).collect();
    assert_eq!(by_id.len(), 2607, "stream ids are unique");
    // tv_archive_duration sent as a string ("2", "3").
    let abc = by_id[&29891];
    assert_eq!(abc.name, "USA: ABC NY FHD");
    assert_eq!(abc.tv_archive_duration, Some(2));
    assert!(abc.tv_archive);
    assert_eq!(by_id[&14144].tv_archive_duration, Some(3));
    let string_durations = live.iter().filter(|s| s.tv_archive && matches!(s.tv_archive_duration, Some(2 | 3))).count();
    assert_eq!(string_durations, 18);

    assert!(live.iter().any(|s| s.name.contains("Espaæol")));
    assert!(live.iter().any(|s| s.epg_channel_id.is_some() && s.name.starts_with("UK: ")));
    assert!(live.iter().all(|s| s.added.is_some() && s.num.is_some()));
}

#[test]
fn eternal_live_streams_from_file_reader() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/real/xtream/tellytv_eternal_get_live_streams.json");
    let file = std::fs::File::open(path).unwrap();
    let mut ids = Vec::new();
    let counts = for_each_item(file, |s: LiveStream| ids.push(s.stream_id)).unwrap();
    assert_eq!(counts.ok, 2607);
    assert_eq!(counts.skipped, 0);
    assert_eq!(ids[0], 21467);
}

#[test]
fn empty_series_array() {
    let series: Vec<Series> = list(ETERNAL_SERIES);
    assert!(series.is_empty());
}

#[test]
fn hellraiser_auth_numbers_as_strings() {
    let a = parse_auth(HELL_AUTH).unwrap();
    let u = &a.user_info;
    assert!(u.auth);
    assert_eq!(u.username.as_deref(), Some("HELLRAISER_USERNAME"));
    assert_eq!(u.password.as_deref(), Some("HELLRAISER_PASSWORD"));
    assert_eq!(u.message, None);
    assert_eq!(u.status.as_deref(), Some("Active"));
    assert_eq!(u.exp_date, Some(1_550_619_710));
    assert!(!u.is_trial);
    assert_eq!(u.active_cons, Some(0));
    assert_eq!(u.created_at, Some(1_519_083_710));
    assert_eq!(u.max_connections, Some(2));
    assert_eq!(u.allowed_output_formats, ["m3u8", "ts", "rtmp"]);
    let s = a.server_info.expect("server_info");
    assert_eq!(s.url.as_deref(), Some("liquidit.info"));
    assert_eq!(s.port.as_deref(), Some("8080"));
    assert_eq!(s.https_port.as_deref(), Some("25463"));
    assert_eq!(s.server_protocol.as_deref(), Some("http"));
    assert_eq!(s.rtmp_port.as_deref(), Some("25462"));
    assert_eq!(s.timezone.as_deref(), Some("Europe/London"));
    assert_eq!(s.timestamp_now, Some(1_535_230_020));
    assert_eq!(s.time_now.as_deref(), Some("2018-08-25 21:47:00"));
}

#[test]
fn tnt_auth() {
    let a = parse_auth(TNT_AUTH).unwrap();
    assert!(a.user_info.auth);
    assert_eq!(a.user_info.max_connections, Some(3));
    assert_eq!(a.user_info.exp_date, Some(1_539_670_803));
    assert_eq!(a.user_info.allowed_output_formats, ["m3u8", "ts"]);
    let s = a.server_info.unwrap();
    assert_eq!(s.url.as_deref(), Some("thesenutz.xyz"));
    assert_eq!(s.port.as_deref(), Some("2052"));
    assert_eq!(s.https_port.as_deref(), Some("2053"));
    assert_eq!(s.rtmp_port.as_deref(), Some("8001"));
    assert_eq!(s.timezone.as_deref(), Some("America/New_York"));
}

#[test]
fn categories() {
    let live: Vec<Category> = list(HELL_LIVE_CATS);
    assert_eq!(live.len(), 50);
    assert_eq!(
        live[0],
        Category { category_id: "36".into(), category_name: "ENTERTAINMENT & LIFESTYLE UK".into(), parent_id: Some(0) }
    );
    assert_eq!(live[49].category_name, "LATINO");
    assert!(live.iter().all(|c| c.parent_id == Some(0)));
    assert!(live.iter().any(|c| c.category_name == "24/7 SERIES UK"));

    let series: Vec<Category> = list(TNT_SERIES_CATS);
    assert_eq!(series.len(), 7);
    assert_eq!(series[0].category_id, "113");
    assert_eq!(series[6].category_name, "REALITY TV");

    let vod: Vec<Category> = list(TNT_VOD_CATS);
    assert_eq!(vod.len(), 16);
    assert_eq!(vod[3].category_name, "4K");
    assert_eq!(vod[15].category_id, "102");
}

#[test]
fn hellraiser_series() {
    let series: Vec<Series> = list(HELL_SERIES);
    assert_eq!(series.len(), 52);
    let cm = &series[0];
    assert_eq!(cm.name, "Criminal Minds");
    assert_eq!(cm.series_id, 3);
    assert_eq!(cm.num, Some(1));
    assert_eq!(cm.release_date.as_deref(), Some("2005-09-22"), "from releaseDate");
    assert_eq!(cm.last_modified, Some(1_530_461_599));
    assert_eq!(cm.rating.as_deref(), Some("7"));
    assert_eq!(cm.rating_5based, Some(3.5));
    assert_eq!(cm.genre.as_deref(), Some("Crime / Drama / Mystery"));
    assert_eq!(cm.director.as_deref(), Some("Jeff Davis"));
    assert!(cm.cast.as_deref().unwrap().contains("Adam Rodríguez"));
    assert_eq!(cm.youtube_trailer.as_deref(), Some("XJAjw42JjZs"));
    assert_eq!(cm.episode_run_time.as_deref(), Some("42"));
    assert_eq!(cm.category_id.as_deref(), Some("365"));
    assert_eq!(cm.cover.as_deref(), Some("http://liquidit.info:8080/images/decs76l3VZiOtZ8BNp7KPPj2vcw_small.jpg"));
    assert_eq!(cm.backdrop_path.len(), 5);
    assert_eq!(cm.backdrop_path[0], "http://liquidit.info:8080/images/4057_tv_backdrop_0.jpg");
    // Integer rating_5based is read as a float too.
    assert_eq!(series[1].name, "Sons Of Anarchy");
    assert_eq!(series[1].rating_5based, Some(4.0));
    assert!(series[1].plot.as_deref().unwrap().contains("club\u{2019}s"));
    let mut lens = BTreeMap::new();
    for s in &series {
        *lens.entry(s.backdrop_path.len()).or_insert(0) += 1;
    }
    assert_eq!(lens, BTreeMap::from([(2, 1), (4, 2), (5, 49)]));
    assert!(series.iter().all(|s| s.rating_5based.is_some() && s.release_date.is_some()));
    let halves = series.iter().filter(|s| s.rating_5based.is_some_and(|r| r.fract() != 0.0)).count();
    assert!(halves > 0 && halves <= 20, "{halves}");
}

#[test]
fn iris_vod_streams() {
    let vod: Vec<VodStream> = list(IRIS_VOD);
    assert_eq!(vod.len(), 360);
    let mut ext = BTreeMap::new();
    for v in &vod {
        *ext.entry(v.container_extension.clone().unwrap()).or_insert(0) += 1;
    }
    assert_eq!(
        ext,
        BTreeMap::from([
            ("MKV".to_string(), 2),
            ("avi".to_string(), 47),
            ("mkv".to_string(), 292),
            ("mp4".to_string(), 19),
        ])
    );
    let first = &vod[0];
    assert_eq!(first.stream_id, 303_099);
    assert_eq!(first.name, "Madagascar: Escape 2 Africa (2008)");
    assert_eq!(first.stream_type.as_deref(), Some("movie"));
    assert_eq!(first.rating, None, "rating \"\" is absent");
    assert_eq!(first.rating_5based, Some(0.0));
    assert_eq!(first.added, Some(1_531_194_708));
    assert_eq!(first.category_id.as_deref(), Some("7713"));
    assert!(first.stream_icon.as_deref().unwrap().starts_with("https://m.media-amazon.com/images/M/"));
    assert!(vod.iter().all(|v| v.stream_type.as_deref() == Some("movie")));
}

// ----- synthetic bodies -----

#[test]
fn html_body_is_not_json() {
    let body =
        b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n<body><h1>Not Found</h1></body></html>\n";
    let err = parse_list::<LiveStream>(body).unwrap_err();
    match &err {
        XtreamError::NotJson { snippet } => {
            assert!(snippet.starts_with("<!DOCTYPE html> <html><head><title>404 Not Found"));
            assert!(snippet.chars().count() <= 80);
            assert!(!snippet.contains('\n'));
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("not JSON"), "{err}");
    let err = for_each_item(&body[..], |_: LiveStream| {}).unwrap_err();
    assert!(matches!(err, XtreamError::NotJson { .. }));
    assert!(matches!(parse_auth(body), Err(XtreamError::NotJson { .. })));
    assert!(matches!(for_each_item(&b""[..], |_: LiveStream| {}), Err(XtreamError::NotJson { .. })));
}

#[test]
fn empty_object_is_empty_list() {
    let r = parse_list::<LiveStream>(b"{}").unwrap();
    assert!(r.items.is_empty());
    assert_eq!(r.counts, ItemCounts::default());
    let r = parse_list::<Category>(b" [ ] ").unwrap();
    assert!(r.items.is_empty());
}

#[test]
fn object_keyed_by_id() {
    let body = br#"{"101":{"stream_id":101,"name":"A"},"102":{"stream_id":"102","name":"B","tv_archive":"1"}}"#;
    let r = parse_list::<LiveStream>(body).unwrap();
    assert_eq!(r.items.len(), 2);
    assert_eq!(r.items[1].stream_id, 102);
    assert!(r.items[1].tv_archive);
    let mut names = Vec::new();
    for_each_item(&body[..], |s: LiveStream| names.push(s.name)).unwrap();
    assert_eq!(names, ["A", "B"]);
}

#[test]
fn one_bad_element_is_skipped() {
    let body = br#"[{"stream_id":1,"name":"ok"},{"name":"no id"},{"stream_id":"x"},{"stream_id":3,"name":"ok too"}]"#;
    let r = parse_list::<LiveStream>(body).unwrap();
    assert_eq!(r.items.iter().map(|s| s.stream_id).collect::<Vec<_>>(), [1, 3]);
    assert_eq!(r.counts.ok, 2);
    assert_eq!(r.counts.skipped, 2);
    let err = r.counts.first_error.unwrap();
    assert!(err.starts_with("element 1:") && err.contains("stream_id"), "{err}");

    let body = br#"[{"series_id":1},{"series_id":null},{"series_id":2.0}]"#;
    let r = parse_list::<Series>(body).unwrap();
    assert_eq!((r.counts.ok, r.counts.skipped), (2, 1));
}

#[test]
fn bad_credentials_parse() {
    let a = parse_auth(br#"{"user_info":{"auth":0}}"#).unwrap();
    assert!(!a.user_info.auth);
    assert_eq!(a.server_info, None);
    let _: xtream::AuthResponse = parse_auth(b"[]").unwrap();
}
