//! Every real-world HLS playlist in `testdata/real/hls/` (see SOURCES.md)
//! parses with the documented content, and so does the fake provider's own
//! `testdata/media/hls/index.m3u8`.

use tunerpool_formats::hls::{self, MasterPlaylist, MediaPlaylist, Playlist};

macro_rules! fixture {
    ($name:literal) => {
        ($name, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/real/hls/", $name)))
    };
}

const FILES: &[(&str, &str)] = &[
    fixture!("grafov-m3u8_master-with-hlsv7.m3u8"),
    fixture!("grafov-m3u8_media-playlist-with-cue-out-in-without-oatcls.m3u8"),
    fixture!("grafov-m3u8_widevine-bitrate.m3u8"),
    fixture!("grafov-m3u8_wowza-master.m3u8"),
    fixture!("grafov-m3u8_wowza-vod-chunklist.m3u8"),
    fixture!("m3u8-rs_master-not-ending-in-newline.m3u8"),
    fixture!("m3u8-rs_master-with-alternatives-2.m3u8"),
    fixture!("m3u8-rs_master-with-offset.m3u8"),
    fixture!("videojs-m3u8-parser_brightcove.m3u8"),
    fixture!("videojs-m3u8-parser_diff-init-key.m3u8"),
    fixture!("videojs-m3u8-parser_llhls.m3u8"),
    fixture!("videojs-m3u8-parser_master-fmp4.m3u8"),
];

fn file(name: &str) -> &'static str {
    FILES.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no fixture {name}")).1
}

fn master(name: &str) -> MasterPlaylist {
    match hls::parse(file(name)) {
        Ok(Playlist::Master(m)) => m,
        other => panic!("{name}: not a master playlist: {other:?}"),
    }
}

fn media(name: &str) -> MediaPlaylist {
    match hls::parse(file(name)) {
        Ok(Playlist::Media(m)) => m,
        other => panic!("{name}: not a media playlist: {other:?}"),
    }
}

fn bandwidths(m: &MasterPlaylist) -> Vec<u64> {
    m.variants.iter().map(|v| v.bandwidth.expect("every fixture variant has BANDWIDTH")).collect()
}

fn uris(m: &MasterPlaylist) -> Vec<&str> {
    m.variants.iter().map(|v| v.uri.as_str()).collect()
}

/// Sequence numbers are consecutive from the media sequence.
fn assert_sequences(m: &MediaPlaylist) {
    for (i, s) in m.segments.iter().enumerate() {
        assert_eq!(s.sequence, m.media_sequence + i as u64);
        assert!(!s.uri.is_empty() && !s.uri.starts_with('#'));
    }
}

#[test]
fn every_fixture_file_is_covered() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/real/hls");
    let mut on_disk: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    on_disk.sort();
    let mut listed: Vec<String> = FILES.iter().map(|(n, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
    for (name, text) in FILES {
        assert!(hls::parse(text).is_ok(), "{name}");
        // CRLF line endings and a BOM change nothing.
        let crlf = format!("\u{feff}{}", text.replace('\n', "\r\n"));
        assert_eq!(hls::parse(&crlf), hls::parse(text), "{name}");
    }
}

#[test]
fn master_with_hlsv7_comment_before_header_and_hevc_only() {
    let m = master("grafov-m3u8_master-with-hlsv7.m3u8");
    // 9 STREAM-INF; the 9 I-FRAME-STREAM-INF are not variants.
    assert_eq!(bandwidths(&m), [3971374, 10022043, 28058971, 5327059, 12876596, 30041698, 5280654, 12886714, 29983769]);
    assert_eq!(m.variants[0].uri, "sdr_720/prog_index.m3u8");
    assert_eq!(m.variants[0].resolution, Some((1280, 720)));
    assert_eq!(m.variants[0].codecs.as_deref(), Some("hvc1.2.4.L123.B0"));
    assert_eq!(m.variants[8].uri, "hdr10_2160/prog_index.m3u8");
    assert_eq!(m.variants[8].resolution, Some((3840, 2160)));
    assert!(m.variants.iter().all(|v| !v.uri.contains("iframe")));
    // Everything is HEVC or Dolby Vision: fall back to the highest bandwidth.
    assert_eq!(hls::choose_variant(&m).unwrap().uri, "dolby_2160/prog_index.m3u8");
}

#[test]
fn wowza_master() {
    let m = master("grafov-m3u8_wowza-master.m3u8");
    assert_eq!(bandwidths(&m), [300000, 600000, 850000, 1300000, 2000000]);
    assert_eq!(m.variants[0].uri, "chunklist-b300000.m3u8?wowzasessionid=1359287668");
    assert!(m.variants.iter().all(|v| v.codecs.is_none() && v.resolution.is_none()));
    let chosen = hls::choose_variant(&m).unwrap();
    assert_eq!(chosen.uri, "chunklist-b2000000.m3u8?wowzasessionid=1359287668");
    assert_eq!(
        hls::resolve("http://wowza.example:1935/live/ch/playlist.m3u8?wowzasessionid=1", &chosen.uri),
        "http://wowza.example:1935/live/ch/chunklist-b2000000.m3u8?wowzasessionid=1359287668"
    );
}

#[test]
fn master_not_ending_in_newline_ignores_stray_uris() {
    let m = master("m3u8-rs_master-not-ending-in-newline.m3u8");
    assert_eq!(bandwidths(&m), [395000, 963000, 1695000]);
    assert_eq!(uris(&m), ["01.m3u8", "02.m3u8", "03.m3u8"]);
    assert_eq!(m.variants[2].resolution, Some((640, 480)));
    assert_eq!(m.variants[2].codecs.as_deref(), Some("avc1.4d001f,mp4a.40.2"));
    assert_eq!(hls::choose_variant(&m).unwrap().uri, "03.m3u8");
}

#[test]
fn master_with_alternatives() {
    let m = master("m3u8-rs_master-with-alternatives-2.m3u8");
    assert_eq!(bandwidths(&m), [263851, 577610, 915905, 1030138, 1924009, 41457]);
    assert_eq!(
        uris(&m),
        [
            "gear1/prog_index.m3u8",
            "gear2/prog_index.m3u8",
            "gear3/prog_index.m3u8",
            "gear4/prog_index.m3u8",
            "gear5/prog_index.m3u8",
            "gear0/prog_index.m3u8"
        ]
    );
    assert_eq!(m.variants[0].codecs.as_deref(), Some("mp4a.40.2, avc1.4d400d"));
    assert_eq!(m.variants[5].resolution, None);
    assert_eq!(hls::choose_variant(&m).unwrap().uri, "gear5/prog_index.m3u8");
}

#[test]
fn master_with_offset_and_commas_in_uris() {
    let m = master("m3u8-rs_master-with-offset.m3u8");
    assert_eq!(bandwidths(&m), [181000, 318000, 592000, 1179000, 1915000, 3404000, 55000]);
    let prefix = "http://hls.tagesschau.de/i/video/2015/0902/TV-20150902-1214-0601.,webs,websm,webm,webml,webl,webxl,.h264.mp4.csmil/";
    for (v, tail) in m.variants.iter().zip(["0_av", "1_av", "2_av", "3_av", "4_av", "5_av", "0_a"]) {
        assert_eq!(v.uri, format!("{prefix}index_{tail}.m3u8"));
    }
    assert_eq!(m.variants[0].codecs.as_deref(), Some("avc1.66.30, mp4a.40.2"));
    assert_eq!(m.variants[5].resolution, Some((1280, 720)));
    let chosen = hls::choose_variant(&m).unwrap();
    assert_eq!(chosen.bandwidth, Some(3404000));
    // Absolute variant URIs are not touched by resolve.
    assert_eq!(hls::resolve("https://other.example/master.m3u8", &chosen.uri), chosen.uri);
}

#[test]
fn brightcove_master() {
    let m = master("videojs-m3u8-parser_brightcove.m3u8");
    assert_eq!(bandwidths(&m), [240000, 40000, 440000, 1928000]);
    assert_eq!(m.variants[1].resolution, None);
    assert_eq!(m.variants[3].resolution, Some((960, 540)));
    let chosen = hls::choose_variant(&m).unwrap();
    assert_eq!(
        chosen.uri,
        "http://c.brightcove.com/services/mobile/streaming/index/rendition.m3u8?assetId=1824687660001&videoId=1824650741001"
    );
}

#[test]
fn master_fmp4() {
    let m = master("videojs-m3u8-parser_master-fmp4.m3u8");
    assert_eq!(m.variants.len(), 24);
    assert!(m.variants.iter().all(|v| v.uri.ends_with("/prog_index.m3u8") && !v.uri.contains("iframe")));
    assert_eq!(m.variants[0].uri, "v4/prog_index.m3u8");
    assert_eq!(m.variants[0].bandwidth, Some(2215219));
    assert_eq!(m.variants[0].codecs.as_deref(), Some("avc1.640020,mp4a.40.2"));
    assert_eq!(m.variants[0].resolution, Some((960, 540)));
    assert_eq!(m.variants[23].bandwidth, Some(571311));
    let chosen = hls::choose_variant(&m).unwrap();
    assert_eq!((chosen.uri.as_str(), chosen.bandwidth), ("v8/prog_index.m3u8", Some(8201540)));
}

#[test]
fn wowza_vod_chunklist() {
    let m = media("grafov-m3u8_wowza-vod-chunklist.m3u8");
    assert_eq!(m.segments.len(), 522);
    assert!(m.ended && !m.encrypted && !m.fmp4);
    assert_eq!(m.target_duration, Some(12.0));
    assert_eq!(m.media_sequence, 1);
    assert_sequences(&m);
    assert_eq!(m.segments[0].uri, "media-b2000000_1.ts?wowzasessionid=2029972411");
    assert_eq!(m.segments[0].duration, 12.0);
    assert_eq!(m.segments[521].uri, "media-b2000000_522.ts?wowzasessionid=2029972411");
    assert_eq!(m.segments[521].sequence, 522);
    assert_eq!(m.segments[521].duration, 7.2);
    assert!(m.segments.iter().all(|s| !s.discontinuity));
}

#[test]
fn live_playlist_with_cue_out_in() {
    let m = media("grafov-m3u8_media-playlist-with-cue-out-in-without-oatcls.m3u8");
    assert_eq!(m.media_sequence, 275163116);
    assert_eq!(m.target_duration, Some(9.0));
    // 63 #EXTINF, but the last one has no URI line yet.
    assert_eq!(m.segments.len(), 62);
    assert!(!m.ended && !m.encrypted && !m.fmp4);
    assert_sequences(&m);
    assert_eq!(m.segments[0].uri, "364992-275163141.ts");
    assert_eq!(m.segments[1].duration, 5.1666);
    assert_eq!(m.segments[61].uri, "364992-275163207.ts");
    assert_eq!(m.segments[61].sequence, 275163116 + 61);
}

#[test]
fn widevine_is_encrypted() {
    let m = media("grafov-m3u8_widevine-bitrate.m3u8");
    assert!(m.encrypted && !m.ended && !m.fmp4);
    assert_eq!(m.media_sequence, 3080);
    assert_eq!(m.target_duration, Some(9.0));
    assert_eq!(m.segments.len(), 10);
    assert_sequences(&m);
    assert_eq!(m.segments[0].uri, "01-3079.ts");
    assert_eq!(m.segments[9].uri, "01-3088.ts");
    let durations: Vec<f64> = m.segments.iter().map(|s| s.duration).collect();
    assert_eq!(durations, [6.0, 6.0, 6.0, 8.0, 6.0, 8.0, 6.0, 7.0, 9.0, 7.0]);
}

#[test]
fn diff_init_key_is_fmp4_and_encrypted() {
    let m = media("videojs-m3u8-parser_diff-init-key.m3u8");
    assert!(m.fmp4 && m.encrypted && !m.ended);
    assert_eq!(m.media_sequence, 7794);
    assert_eq!(m.target_duration, Some(15.0));
    assert_eq!(m.segments.len(), 11);
    assert_sequences(&m);
    assert_eq!(m.segments[0].uri, "http://media.example.com/fileSequence52-A.m4s");
    assert_eq!(m.segments[0].duration, 2.833);
    assert_eq!(m.segments[10].duration, 12.0);
}

#[test]
fn llhls_is_fmp4_and_parts_are_not_segments() {
    let m = media("videojs-m3u8-parser_llhls.m3u8");
    assert!(m.fmp4 && !m.encrypted && !m.ended);
    assert_eq!(m.media_sequence, 266);
    assert_eq!(m.target_duration, Some(4.0));
    let uris: Vec<&str> = m.segments.iter().map(|s| s.uri.as_str()).collect();
    assert_eq!(
        uris,
        (266..=272)
            .map(|n| format!("fileSequence{n}.mp4"))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    assert_sequences(&m);
    assert_eq!(m.segments[6].sequence, 272);
    assert!(m.segments.iter().all(|s| s.duration == 4.00008));
}

#[test]
fn fake_provider_media_playlist() {
    let text = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/media/hls/index.m3u8"));
    let Ok(Playlist::Media(m)) = hls::parse(text) else { panic!("not a media playlist") };
    assert!(m.ended && !m.encrypted && !m.fmp4);
    assert_eq!(m.media_sequence, 0);
    assert_eq!(m.target_duration, Some(2.0));
    let uris: Vec<&str> = m.segments.iter().map(|s| s.uri.as_str()).collect();
    assert_eq!(uris, ["seg000.ts", "seg001.ts", "seg002.ts", "seg003.ts", "seg004.ts"]);
    assert_sequences(&m);
    for s in &m.segments {
        assert!((s.duration - 2.0).abs() < 0.01, "{s:?}");
        assert!(!s.discontinuity);
    }
    assert_eq!(
        hls::resolve("http://127.0.0.1:8080/live/u/p/7.m3u8?token=x", &m.segments[4].uri),
        "http://127.0.0.1:8080/live/u/p/seg004.ts"
    );
}
