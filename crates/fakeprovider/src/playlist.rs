//! The `get.php` M3U playlist and the `xmltv.php` guide, rendered lazily in chunks.

use crate::body::Chunks;
use crate::catalog::{programme_text, Catalog, Episode, Kind, EPG_HOURS_AFTER, EPG_HOURS_BEFORE};
use crate::clock::format_xmltv;
use crate::escape::{m3u_attr, url_segment, xml};

/// What `get.php` should render.
///
/// Exists to keep the request parsing (api) apart from the rendering (here).
#[derive(Clone, Debug)]
pub(crate) struct M3uRequest {
    /// `http://host:port`
    pub(crate) base: String,
    pub(crate) username: String,
    pub(crate) password: String,
    /// `type=m3u_plus` (attributes) vs `type=m3u` (bare `#EXTINF:-1,Name`).
    pub(crate) plus: bool,
    /// `output=m3u8|hls` makes live URLs end in `.m3u8`.
    pub(crate) hls: bool,
}

enum Entry {
    Live(u64),
    Vod(u64),
    Episode(Episode),
}

/// The extended M3U: live channels, then movies, then series episodes.
pub(crate) fn m3u(catalog: Catalog, req: M3uRequest) -> impl Iterator<Item = Vec<u8>> + Send {
    let u = url_segment(&req.username);
    let p = url_segment(&req.password);
    let head = if req.plus {
        format!(
            "#EXTM3U x-tvg-url=\"{}/xmltv.php?username={u}&password={p}\" url-tvg=\"{}/xmltv.php?username={u}&password={p}\"\n",
            req.base, req.base
        )
    } else {
        "#EXTM3U\n".to_string()
    };
    let live_ext = if req.hls { "m3u8" } else { "ts" };
    let series_count = catalog.indexes(Kind::Series, None).count() as u64;
    let entries = catalog
        .indexes(Kind::Live, None)
        .map(Entry::Live)
        .chain(catalog.indexes(Kind::Vod, None).map(Entry::Vod))
        .chain((1..=series_count).flat_map(|s| Catalog::episodes(s).map(Entry::Episode)));
    let base = req.base.clone();
    let plus = req.plus;
    Chunks::new(head.as_bytes(), entries, b"", move |entry, _first: bool, out: &mut Vec<u8>| {
        let (tvg_id, name, logo, group, url) = match entry {
            Entry::Live(i) => (
                catalog.epg_id(i).unwrap_or_default(),
                catalog.live_name(i),
                Catalog::logo(&base, i),
                catalog.category_name(Kind::Live, catalog.live_category(i)),
                format!("{base}/live/{u}/{p}/{}.{live_ext}", catalog.live_id(i)),
            ),
            Entry::Vod(k) => (
                String::new(),
                format!("Movie {k}"),
                format!("{base}/posters/movie{k}.png"),
                catalog.category_name(Kind::Vod, catalog.vod_category(k)),
                format!("{base}/movie/{u}/{p}/{}.ts", catalog.vod_stream_id(k)),
            ),
            Entry::Episode(e) => (
                String::new(),
                format!("Series {} S{:02} E{:02}", e.series, e.season, e.episode),
                format!("{base}/posters/series{}.png", e.series),
                catalog.category_name(Kind::Series, catalog.series_category(e.series)),
                format!("{base}/series/{u}/{p}/{}.ts", catalog.episode_id(e)),
            ),
        };
        let line = if plus {
            format!(
                "#EXTINF:-1 tvg-id=\"{}\" tvg-name=\"{}\" tvg-logo=\"{}\" group-title=\"{}\",{}\n{}\n",
                m3u_attr(&tvg_id),
                m3u_attr(&name),
                m3u_attr(&logo),
                m3u_attr(&group),
                name,
                url
            )
        } else {
            format!("#EXTINF:-1,{name}\n{url}\n")
        };
        out.extend_from_slice(line.as_bytes());
    })
}

enum Item {
    Channel(u64),
    Programme(u64, i64),
}

/// The XMLTV guide: one `<channel>` per live channel that has an EPG id, then hourly
/// programmes from now-6h to now+24h for each of them.
pub(crate) fn xmltv(catalog: Catalog, base: String, now: i64) -> impl Iterator<Item = Vec<u8>> + Send {
    let hour = now - now.rem_euclid(3600);
    let n = catalog.live_count();
    let c = catalog.clone();
    let with_epg = move || {
        let c = c.clone();
        (1..=n).filter(move |&i| c.epg_id(i).is_some())
    };
    let items = with_epg().map(Item::Channel).chain(
        with_epg()
            .flat_map(move |i| (-EPG_HOURS_BEFORE..EPG_HOURS_AFTER).map(move |h| Item::Programme(i, hour + h * 3600))),
    );
    let head = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE tv SYSTEM \"xmltv.dtd\">\n<tv generator-info-name=\"fakeprovider\" generator-info-url=\"{}\">\n",
        xml(&base)
    );
    Chunks::new(head.as_bytes(), items, b"</tv>\n", move |item, _first: bool, out: &mut Vec<u8>| {
        let text = match item {
            Item::Channel(i) => {
                let id = catalog.epg_id(i).unwrap_or_default();
                let logo = Catalog::logo(&base, i);
                let icon = if logo.is_empty() { String::new() } else { format!("<icon src=\"{}\"/>", xml(&logo)) };
                format!(
                    "  <channel id=\"{}\"><display-name>{}</display-name>{icon}</channel>\n",
                    xml(&id),
                    xml(&catalog.live_name(i))
                )
            }
            Item::Programme(i, start) => {
                let id = catalog.epg_id(i).unwrap_or_default();
                let (title, desc) = programme_text(i, start);
                format!(
                        "  <programme start=\"{}\" stop=\"{}\" channel=\"{}\"><title lang=\"en\">{}</title><desc lang=\"en\">{}</desc></programme>\n",
                        format_xmltv(start),
                        format_xmltv(start + 3600),
                        xml(&id),
                        xml(&title),
                        xml(&desc)
                    )
            }
        };
        out.extend_from_slice(text.as_bytes());
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FakeConfig;

    fn catalog() -> Catalog {
        Catalog::new(&FakeConfig::demo(), 1_700_000_000)
    }

    #[test]
    fn m3u_lines() {
        let text: Vec<u8> = m3u(
            catalog(),
            M3uRequest {
                base: "http://h:1".into(),
                username: "u".into(),
                password: "p w".into(),
                plus: true,
                hls: false,
            },
        )
        .flatten()
        .collect();
        let text = String::from_utf8(text).unwrap();
        assert!(text.starts_with("#EXTM3U x-tvg-url=\"http://h:1/xmltv.php?username=u&password=p%20w\""));
        assert!(text.contains("#EXTINF:-1 tvg-id=\"ch1.fake\" tvg-name=\"Channel 1\" tvg-logo=\"http://h:1/logos/1.png\" group-title=\"News\",Channel 1\nhttp://h:1/live/u/p%20w/1.ts\n"));
        assert!(text.contains("tvg-id=\"\" tvg-name=\"Channel 7\""));
        assert!(text.contains("http://h:1/movie/u/p%20w/21.ts"));
        assert!(text.contains("http://h:1/series/u/p%20w/31.ts"));
        // 20 live + 10 movies + 3 series * 6 episodes
        assert_eq!(text.matches("#EXTINF").count(), 48);
    }

    #[test]
    fn xmltv_doc() {
        let text: Vec<u8> = xmltv(catalog(), "http://h".into(), 1_795_284_000).flatten().collect();
        let text = String::from_utf8(text).unwrap();
        assert!(text.ends_with("</tv>\n"));
        assert_eq!(text.matches("<channel ").count(), 18); // 20 minus ch7, ch14
        assert_eq!(text.matches("<programme ").count(), 18 * 30);
        assert!(text.contains("start=\"20261121180000 +0000\" stop=\"20261121190000 +0000\" channel=\"ch1.fake\""));
        assert!(text.contains("start=\"20261121120000 +0000\""));
        assert!(!text.contains("channel=\"ch7.fake\""));
    }
}
