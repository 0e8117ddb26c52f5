//! Every real-world playlist in `testdata/real/m3u/` (see SOURCES.md there)
//! must parse with the documented entry count and quirks, parse identically
//! when fed in random chunks, and survive a write → parse round trip.

use tunerpool_formats::m3u::{self, Entry, Parser, Playlist};

macro_rules! fixture {
    ($name:literal, $entries:literal) => {
        (
            $name,
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/real/m3u/", $name)) as &[u8],
            $entries,
        )
    };
}

/// (file name, bytes, "entries" column of SOURCES.md)
const FILES: &[(&str, &[u8], usize)] = &[
    fixture!("iptv-org_417.m3u", 0),
    fixture!("iptv-org_M3u.txt", 32),
    fixture!("iptv-org_MongolianTVHD_1.m3u8", 71),
    fixture!("iptv-org_al_tring.m3u", 13),
    fixture!("iptv-org_am_vnet.m3u", 10),
    fixture!("iptv-org_az_livetv.m3u", 23),
    fixture!("iptv-org_az_odtv.m3u", 32),
    fixture!("iptv-org_ba_morescreens.m3u", 1),
    fixture!("iptv-org_bz_nexgen.m3u", 20),
    fixture!("iptv-org_ca_kinowatch.m3u", 7),
    fixture!("iptv-org_ca_moveonjoy.m3u", 6),
    fixture!("iptv-org_ca_onetv.m3u", 19),
    fixture!("iptv-org_ch_netplus.m3u", 221),
    fixture!("iptv-org_cn_cgtn.m3u", 9),
    fixture!("iptv-org_es.m3u", 267),
    fixture!("iptv-org_gr.m3u", 115),
    fixture!("iptv-org_it.m3u", 324),
    fixture!("iptv-org_jo.m3u", 30),
    fixture!("iptv-org_lb.m3u", 21),
    fixture!("iptv-org_ua.m3u", 97),
];

fn file(name: &str) -> Playlist {
    let (_, bytes, _) =
        FILES.iter().find(|(n, _, _)| *n == name).unwrap_or_else(|| panic!("fixture {name} not in FILES"));
    m3u::parse(bytes)
}

fn by_title<'a>(p: &'a Playlist, title: &str) -> &'a Entry {
    p.entries.iter().find(|e| e.title == title).unwrap_or_else(|| panic!("no entry titled {title:?}"))
}

#[test]
fn every_fixture_file_is_covered() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/real/m3u");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .expect("testdata/real/m3u exists")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = FILES.iter().map(|(n, _, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "add new fixtures to FILES with their entry count");
}

#[test]
fn entry_counts_and_general_sanity() {
    for (name, bytes, expected) in FILES {
        let p = m3u::parse(bytes);
        assert_eq!(p.entries.len(), *expected, "{name}: entry count");
        if *expected > 0 {
            assert!(p.skipped.is_empty(), "{name}: unexpected skips {:?}", p.skipped);
        }
        let mut last_line = 0;
        for e in &p.entries {
            assert!(e.line > last_line, "{name}: line numbers increase");
            last_line = e.line;
            assert!(e.url.starts_with("http://") || e.url.starts_with("https://"), "{name}: url {:?}", e.url);
            assert!(!e.url.ends_with('\r') && !e.title.ends_with('\r'), "{name}: CR leaked");
            assert!(!e.title.is_empty(), "{name}: every fixture entry has a title");
            assert_eq!(e.name(), e.title);
        }
    }
}

#[test]
fn html_file_yields_nothing_but_a_skip() {
    let p = file("iptv-org_417.m3u");
    assert!(p.entries.is_empty());
    assert!(!p.header.present);
    assert_eq!(p.skipped.len(), 1);
    assert_eq!(p.skipped[0].line, 1);
    assert!(p.skipped[0].text.starts_with("<div style='position: relative;"));
    assert!(p.skipped[0].text.chars().count() <= 121);
}

#[test]
fn headerless_txt_playlist() {
    let p = file("iptv-org_M3u.txt");
    assert!(!p.header.present);
    assert_eq!(p.entries.len(), 32);
    let first = &p.entries[0];
    assert_eq!(first.line, 1);
    assert_eq!(first.duration, "-1");
    assert_eq!(first.tvg_id(), Some("GDrive.Us"));
    assert_eq!(first.tvg_name(), Some("Bojhena Se Bojhena"));
    assert_eq!(first.group_title(), Some("Season 1"));
    assert_eq!(first.tvg_logo(), Some("https://i.ibb.co/RywBwPD/1000032134-h-copy-1280x1280.jpg"));
    assert_eq!(first.title, "Bojhena Se Bojhena - Watch Episode 01 - Aranya buys hotel Rajmahal");
    assert!(first.url.contains("%20S01%20E01%20H.264x720P.mkv"));
    let keys: Vec<&str> = first.attrs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["tvg-id", "tvg-name", "tvg-logo", "group-title"]);
    // Apostrophes in titles do not confuse the attribute scanner.
    assert!(p.entries.iter().any(|e| e.title.ends_with("Pakhi damages Aranya's car")));
    assert_eq!(p.entries.iter().filter(|e| e.url == "http://example.com/stream.m3u8").count(), 15);
    assert_eq!(p.entries.last().unwrap().title, "Bojhena Se Bojhena - Watch Episode 32 - Pakhi's resignation");
}

#[test]
fn mongolian_crlf_durations_and_vlcopts() {
    let p = file("iptv-org_MongolianTVHD_1.m3u8");
    assert!(p.header.present);
    assert!(p.header.attrs.is_empty());
    for e in &p.entries {
        let d: i32 = e.duration.parse().expect("numeric duration");
        assert!((37..=50).contains(&d), "duration {d}");
        assert!(e.attrs.is_empty());
        assert_eq!(e.vlc_opts, vec![("network-caching".to_string(), Some("1000".to_string()))]);
        assert!(e.url.starts_with("https://cdn"));
    }
    assert_eq!(p.entries[0].title, "MNB HD");
    assert_eq!(p.entries[0].duration, "40");
    assert_eq!(p.entries[0].line, 2);
    // Last line has no final newline.
    let last = p.entries.last().unwrap();
    assert_eq!(last.title, "NHK World Premium (Japan)");
    assert_eq!(last.url, "https://cdn1.skygo.mn/live/disk1/NHK_World_Premium/HLS-FTA/NHK_World_Premium.m3u8");
}

#[test]
fn tring_status_and_non_ascii() {
    let p = file("iptv-org_al_tring.m3u");
    let e = &p.entries[0];
    assert_eq!(e.tvg_id(), Some("Eurochannel.uk"));
    assert_eq!(e.attr("status"), Some("online"));
    let tv = by_title(&p, "Tëvë1");
    assert_eq!(tv.attr("tvg-id"), Some(""));
    assert_eq!(tv.tvg_id(), None);
    assert_eq!(p.entries.iter().filter(|e| e.title == "Vizion Plus").count(), 4);
}

#[test]
fn cyrillic_names() {
    let p = file("iptv-org_am_vnet.m3u");
    assert_eq!(by_title(&p, "Детский мир").tvg_id(), Some("Detskimir.ru"));
    assert!(p.entries.iter().all(|e| e.url.ends_with("/mono.m3u8")));
    assert_eq!(p.entries.iter().filter(|e| e.url.starts_with("https://")).count(), 1);

    let p = file("iptv-org_az_livetv.m3u");
    assert_eq!(p.entries[0].tvg_id(), Some("NasheNovoeKino.ru"));
    assert_eq!(p.entries[0].title, "Наше Новое Кино (1080p)");
    assert_eq!(p.entries.iter().filter(|e| e.tvg_id().is_none()).count(), 22);
    by_title(&p, "Первый канал");
}

#[test]
fn odtv_user_agent_attr_and_vlcopt() {
    let p = file("iptv-org_az_odtv.m3u");
    for e in &p.entries {
        assert_eq!(e.attr("user-agent"), Some("ExoPlayer2/2.37"));
        assert_eq!(e.vlc_opts, vec![("http-user-agent".to_string(), Some("ExoPlayer2/2.37".to_string()))]);
        assert_eq!(e.user_agent(), Some("ExoPlayer2/2.37"));
    }
    assert_eq!(p.entries[0].tvg_id(), Some("ARB24.az"));
    assert_eq!(p.entries[0].title, "ARB 24 HD");
    assert_eq!(p.entries.iter().filter(|e| e.tvg_id().is_none()).count(), 1);
}

#[test]
fn small_crlf_files() {
    let p = file("iptv-org_ba_morescreens.m3u");
    assert!(p.header.present);
    let e = &p.entries[0];
    assert_eq!(e.tvg_id(), Some("SenatoTV.it@SD"));
    assert_eq!(e.title, "Senato TV (1080p)");
    assert_eq!(e.url, "https://senato-live.morescreens.com/SENATO_1_001/playlist.m3u8");
    assert_eq!(e.line, 2);

    let p = file("iptv-org_ca_moveonjoy.m3u");
    assert!(p.entries.iter().all(|e| e.url.ends_with("/mpegts") && e.tvg_id().is_none()));
    assert_eq!(p.entries[0].title, "CBLTDT CBC (Toronto ON)");

    let p = file("iptv-org_ca_onetv.m3u");
    assert!(p.entries.iter().all(|e| e.url.ends_with("/index-0.m3u8")));
    assert_eq!(p.entries.iter().filter(|e| e.title == "GEM Series").count(), 2);
    assert_eq!(p.entries[1].line, 4);
}

#[test]
fn nexgen_empty_ids() {
    let p = file("iptv-org_bz_nexgen.m3u");
    assert!(p.entries.iter().all(|e| e.tvg_id().is_none() && e.attr("tvg-id") == Some("")));
    assert_eq!(p.entries[0].title, "Bravo");
    assert_eq!(p.entries[0].url, "http://170.254.18.106/BRAVO/index.m3u8");
}

#[test]
fn kinowatch_multiple_vlcopts_and_bare_option() {
    let p = file("iptv-org_ca_kinowatch.m3u");
    let e = &p.entries[0];
    assert_eq!(e.tvg_id(), Some("ActiveFamily.pl@SD"));
    assert_eq!(
        e.vlc_opts,
        vec![("http-user-agent".to_string(), Some("VAVOO/2.6".to_string())), ("no-ssl-verify".to_string(), None),]
    );
    assert_eq!(e.user_agent(), Some("VAVOO/2.6"));
    let antena = by_title(&p, "Antena HD");
    assert_eq!(antena.vlc_opts.len(), 3);
    assert_eq!(antena.vlc_opts[2], ("network-caching".to_string(), Some("1000".to_string())));
    assert_eq!(p.entries.iter().filter(|e| e.vlc_opts.len() == 3).count(), 4);
    assert!(p.entries.iter().any(|e| e.tvg_id() == Some("AMCEurope.uk@Poland")));
    assert!(p.entries.iter().all(|e| e.extra_lines.is_empty()));
}

#[test]
fn netplus_header_and_feeds() {
    let p = file("iptv-org_ch_netplus.m3u");
    assert!(p.header.present);
    assert_eq!(p.header.attr("x-tvg-url"), Some("https://worker-9dd4.onrender.com/guide.xml.gz"));
    assert_eq!(p.header.epg_urls(), vec!["https://worker-9dd4.onrender.com/guide.xml.gz"]);
    let first = &p.entries[0];
    assert_eq!(first.tvg_id(), Some("3sat.de@HD"));
    assert_eq!(first.title, "3sat HD (1080p) [Geo-Blocked]");
    let mpd = p.entries.iter().filter(|e| e.url.ends_with(".mpd")).count();
    assert!(mpd > 60 && mpd < 120, "~40% DASH, got {mpd}");
    let rtp = by_title(&p, "RTP Mundo (1080p) [Geo-Blocked]");
    assert_eq!(rtp.line, 334);
    assert!(rtp.user_agent().unwrap().starts_with("Mozilla/5.0 (Windows NT 10.0"));
    assert_eq!(p.entries.iter().filter(|e| !e.vlc_opts.is_empty()).count(), 1);
    assert!(p.entries.iter().any(|e| e.title.contains("[Geo-blocked] [Geo-Blocked]")));
}

#[test]
fn cgtn_odd_query_and_languages() {
    let p = file("iptv-org_cn_cgtn.m3u");
    assert!(p.entries[1].url.ends_with("&Pcontent_id=&Provider_id="));
    assert_eq!(p.entries[1].attr("status"), Some("timeout"));
    by_title(&p, "CGTN Français (576p) [Not 24/7]");
    assert!(p.entries.iter().any(|e| e.title.starts_with("CGTN Русский")));
}

#[test]
fn spain_accents_and_odd_urls() {
    let p = file("iptv-org_es.m3u");
    assert_eq!(p.entries[0].tvg_id(), Some("7NN.es"));
    assert_eq!(p.entries[0].attr("status"), Some("timeout"));
    by_title(&p, "7 Televisión Región de Murcia (1080p)");
    assert!(p.entries.iter().any(|e| e.url.contains("edge.xn--tbnespaa-j3a.es")));
    assert_eq!(p.entries.iter().filter(|e| e.tvg_id().is_none()).count(), 2);
}

#[test]
fn greece_and_italy() {
    let p = file("iptv-org_gr.m3u");
    assert!(p.entries.iter().any(|e| e.url == "http://flashcloud.mediacdn.com/live/kontratv/.m3u8"));
    assert_eq!(p.entries[0].url, "http://eu2.tv4e.gr:554/live/smil:myStream.sdp.smil/playlist.m3u8");
    assert_eq!(p.entries.iter().filter(|e| e.tvg_id().is_none()).count(), 21);

    let p = file("iptv-org_it.m3u");
    assert!(p.entries.iter().all(|e| e.attr("status").is_none()));
    let pluto = by_title(&p, "Pluto TV Top Gear");
    assert_eq!(pluto.line, 254);
    assert_eq!(pluto.referrer(), Some("https://pluto.tv/it/live-tv/64c109a4798def0008a6e03e"));
    assert!(pluto.url.contains("advertisingId={PSID}"));
    assert!(p.entries[1].url.contains("/channel(lb)/"));
    assert_eq!(p.entries.iter().filter(|e| e.referrer().is_some()).count(), 1);
}

#[test]
fn jordan_lebanon_ukraine() {
    let p = file("iptv-org_jo.m3u");
    assert!(p
        .entries
        .iter()
        .any(|e| e.url == "http://free.fullspeed.tv/iptv-query?streaming-ip=https://www.dailymotion.com/ammantv"));

    let p = file("iptv-org_lb.m3u");
    let tl = by_title(&p, "Tele Liban (720p) [Not 24/7]");
    assert_eq!(tl.referrer(), Some("https://www.teleliban.com.lb/live"));
    assert_eq!(tl.attr("status"), Some("error"));
    assert_eq!(tl.line, 40);

    let p = file("iptv-org_ua.m3u");
    let uas = p.entries.iter().filter(|e| e.user_agent().is_some()).count();
    assert_eq!(uas, 9);
    let k11 = by_title(&p, "11 Kanal (720p)");
    assert_eq!(
        k11.attr("user-agent"),
        Some("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:97.0) Gecko/20100101 Firefox/97.0")
    );
    assert_eq!(k11.user_agent(), k11.vlc_opts[0].1.as_deref());
    by_title(&p, "100% News (576p)");
    assert_eq!(p.entries[1].title, "5 Канал");
}

/// Small deterministic PRNG so the chunking is random but reproducible.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_chunking_matches_whole_parse() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for (name, bytes, _) in FILES {
        let whole = m3u::parse(bytes);
        for round in 0..8 {
            let max_chunk = [1, 2, 3, 7, 16, 64, 300, 5000][round];
            let mut parser = Parser::new();
            let mut entries = Vec::new();
            let mut rest: &[u8] = bytes;
            while !rest.is_empty() {
                let n = (rng.next() as usize % max_chunk + 1).min(rest.len());
                parser.feed(&rest[..n], &mut entries);
                rest = &rest[n..];
            }
            if whole.header.present {
                assert!(parser.header().present, "{name}: header visible before finish");
            }
            let summary = parser.finish(&mut entries);
            assert_eq!(entries, whole.entries, "{name}: chunk size ≤ {max_chunk}");
            assert_eq!(summary.header, whole.header, "{name}");
            assert_eq!(summary.skipped, whole.skipped, "{name}");
            assert_eq!(summary.entries, whole.entries.len(), "{name}");
        }
    }
}

#[test]
fn line_counts() {
    let p = |name: &str| {
        let (_, bytes, _) = FILES.iter().find(|(n, _, _)| *n == name).unwrap();
        let mut parser = Parser::new();
        let mut out = Vec::new();
        parser.feed(bytes, &mut out);
        parser.finish(&mut out)
    };
    // 213 CRLF lines + a last line without newline.
    assert_eq!(p("iptv-org_MongolianTVHD_1.m3u8").lines, 214);
    assert_eq!(p("iptv-org_ch_netplus.m3u").lines, 444);
    assert_eq!(p("iptv-org_ba_morescreens.m3u").lines, 3);
}

fn without_lines(entries: &[Entry]) -> Vec<Entry> {
    entries
        .iter()
        .cloned()
        .map(|mut e| {
            e.line = 0;
            e
        })
        .collect()
}

#[test]
fn write_then_parse_round_trips() {
    for (name, bytes, _) in FILES {
        let first = m3u::parse(bytes);
        let text = m3u::write(&first);
        let second = m3u::parse(text.as_bytes());
        assert_eq!(without_lines(&second.entries), without_lines(&first.entries), "{name}");
        assert_eq!(second.header.attrs, first.header.attrs, "{name}");
        assert!(second.header.present, "{name}: writer always emits #EXTM3U");
        assert!(second.skipped.is_empty(), "{name}: {:?}", second.skipped);
        // Writing is stable: a second write gives the same text.
        assert_eq!(m3u::write(&second), text, "{name}");
    }
}

#[test]
fn writer_output_shape() {
    let p = file("iptv-org_ca_kinowatch.m3u");
    let text = m3u::write(&p);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("#EXTM3U"));
    assert_eq!(lines.next(), Some("#EXTINF:-1 tvg-id=\"ActiveFamily.pl@SD\",Active Family"));
    assert_eq!(lines.next(), Some("#EXTVLCOPT:http-user-agent=VAVOO/2.6"));
    assert_eq!(lines.next(), Some("#EXTVLCOPT:no-ssl-verify"));
    assert_eq!(lines.next(), Some("https://kinowatch.com/iptv/stream/e1572e90cf4111622dcfcc.m3u8"));
}
