//! The generated catalog: live channels, movies, series and EPG, computed on demand.
//!
//! Nothing is stored per item: every channel, movie, series and episode is a pure function of
//! its index, so a 200 000-channel catalog costs no memory and is rendered as it is sent.
//!
//! Id layout (ids are unique across kinds, like a real panel's shared streams table):
//!
//! * live channel `i` (1..=N): stream id `i`, "Channel i", category `((i-1) % L) + 1`
//! * movie `k` (1..=V): stream id `N + k`, "Movie k", category `L + ((k-1) % VC) + 1`
//! * series `s` (1..=S): series id `s`, "Series s", category `L + VC + ((s-1) % SC) + 1`,
//!   2 seasons x 3 episodes; episode stream id `N + V + (s-1)*6 + (season-1)*3 + episode`
//!
//! Deliberate messiness, as seen on real panels: every 7th channel has
//! `"epg_channel_id": null` (and no XMLTV channel), every 11th has an empty `stream_icon`,
//! every 5th has `tv_archive: 1` with `tv_archive_duration` 3 (every 10th as the string `"7"`),
//! every 3rd channel without archive has `tv_archive_duration` as the string `"0"`;
//! category names contain `&`, `|` and non-ASCII letters.

use serde::Serialize;

use crate::clock::format_datetime;
use crate::config::FakeConfig;
use crate::escape::base64;

/// Seasons per series.
pub(crate) const SEASONS: u64 = 2;
/// Episodes per season.
pub(crate) const EPISODES_PER_SEASON: u64 = 3;
const EPISODES_PER_SERIES: u64 = SEASONS * EPISODES_PER_SEASON;
/// EPG programmes per channel: hourly from now-6h to now+24h.
pub(crate) const EPG_HOURS_BEFORE: i64 = 6;
pub(crate) const EPG_HOURS_AFTER: i64 = 24;

const LIVE_CATEGORY_NAMES: [&str; 8] =
    ["News", "Sports & Events", "Movies", "Kids", "Música", "UK | Entertainment", "Documentaries", "Ελληνικά"];
const VOD_CATEGORY_NAMES: [&str; 4] = ["Action", "Comedy", "Drama & Romance", "Science-Fiction"];
const SERIES_CATEGORY_NAMES: [&str; 3] = ["TV Shows", "Crime | Thriller", "Animation"];

/// Which part of the catalog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Live,
    Vod,
    Series,
}

/// The sizes of the generated catalog and the functions that derive every item from them.
///
/// Exists so all endpoints (player_api, get.php, xmltv.php, stream URLs) agree on one
/// catalog without storing it.
#[derive(Clone, Debug)]
pub(crate) struct Catalog {
    live: u64,
    live_cats: u64,
    vod: u64,
    vod_cats: u64,
    series: u64,
    series_cats: u64,
    /// Unix time the catalog items claim to have been added around.
    created: i64,
    /// Live channel names, `{i}` = index.
    name_template: std::sync::Arc<str>,
    /// Added to every stream id; shared by the clones, so a renumbering shows everywhere.
    offset: std::sync::Arc<std::sync::atomic::AtomicU64>,
    epg_ids: bool,
    /// Added to the index in names and EPG ids.
    name_offset: u64,
}

/// One episode of a series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Episode {
    pub(crate) series: u64,
    pub(crate) season: u64,
    pub(crate) episode: u64,
}

impl Catalog {
    pub(crate) fn new(cfg: &FakeConfig, start_unix: i64) -> Self {
        Catalog {
            live: cfg.live_channels as u64,
            live_cats: (cfg.live_categories as u64).max(1),
            vod: cfg.vod_count as u64,
            vod_cats: (cfg.vod_categories as u64).max(1),
            series: cfg.series_count as u64,
            series_cats: (cfg.series_categories as u64).max(1),
            created: start_unix - 90 * 86_400,
            name_template: cfg.live_name_template.as_str().into(),
            offset: std::sync::Arc::new(cfg.stream_id_offset.into()),
            epg_ids: cfg.live_epg_ids,
            name_offset: cfg.live_name_offset,
        }
    }

    /// The current stream id offset (see `FakeConfig::stream_id_offset`).
    fn off(&self) -> u64 {
        self.offset.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Renumbers every stream: ids become `offset + …`.
    pub(crate) fn renumber(&self, offset: u64) {
        self.offset.store(offset, std::sync::atomic::Ordering::Relaxed);
    }

    /// The stream id of live channel `i`.
    pub(crate) fn live_id(&self, i: u64) -> u64 {
        self.off() + i
    }

    /// The live channel index of a stream id, if it is a live channel.
    pub(crate) fn live_index(&self, id: u64) -> Option<u64> {
        let i = id.checked_sub(self.off())?;
        (1..=self.live).contains(&i).then_some(i)
    }

    fn cats(&self, kind: Kind) -> (u64, u64) {
        // (first id - 1, count)
        match kind {
            Kind::Live => (0, self.live_cats),
            Kind::Vod => (self.live_cats, self.vod_cats),
            Kind::Series => (self.live_cats + self.vod_cats, self.series_cats),
        }
    }

    /// Category ids of a kind.
    pub(crate) fn category_ids(&self, kind: Kind) -> std::ops::RangeInclusive<u64> {
        let (base, n) = self.cats(kind);
        base + 1..=base + n
    }

    /// Display name of a category id of a kind.
    pub(crate) fn category_name(&self, kind: Kind, id: u64) -> String {
        let (base, _) = self.cats(kind);
        let k = id.saturating_sub(base).max(1) - 1;
        let names: &[&str] = match kind {
            Kind::Live => &LIVE_CATEGORY_NAMES,
            Kind::Vod => &VOD_CATEGORY_NAMES,
            Kind::Series => &SERIES_CATEGORY_NAMES,
        };
        let name = names[(k % names.len() as u64) as usize];
        let round = k / names.len() as u64;
        if round == 0 {
            name.to_string()
        } else {
            format!("{name} {}", round + 1)
        }
    }

    /// The category of item `index` (1-based) of a kind.
    fn category_of(&self, kind: Kind, index: u64) -> u64 {
        let (base, n) = self.cats(kind);
        base + (index.saturating_sub(1) % n) + 1
    }

    /// Item indexes of a kind, optionally only those in one category (given as the raw
    /// `category_id` parameter; unknown or unparsable ids give nothing).
    pub(crate) fn indexes(&self, kind: Kind, category: Option<&str>) -> Box<dyn Iterator<Item = u64> + Send> {
        let count = match kind {
            Kind::Live => self.live,
            Kind::Vod => self.vod,
            Kind::Series => self.series,
        };
        match category.map(str::trim).filter(|c| !c.is_empty()) {
            None => Box::new(1..=count),
            Some(c) => {
                let (base, n) = self.cats(kind);
                match c.parse::<u64>() {
                    Ok(id) if id > base && id <= base + n => {
                        let first = id - base;
                        Box::new((first..=count).step_by(n as usize))
                    }
                    _ => Box::new(std::iter::empty()),
                }
            }
        }
    }

    pub(crate) fn live_count(&self) -> u64 {
        self.live
    }

    pub(crate) fn is_live(&self, id: u64) -> bool {
        self.live_index(id).is_some()
    }

    /// Whether live channel index `i` has an archive (`tv_archive: 1`).
    pub(crate) fn has_archive(&self, i: u64) -> bool {
        i.is_multiple_of(5)
    }

    pub(crate) fn vod_stream_id(&self, k: u64) -> u64 {
        self.off() + self.live + k
    }

    /// Movie index of a stream id, if it is a movie.
    pub(crate) fn vod_index(&self, id: u64) -> Option<u64> {
        let k = id.checked_sub(self.off() + self.live)?;
        (1..=self.vod).contains(&k).then_some(k)
    }

    pub(crate) fn is_series(&self, s: u64) -> bool {
        (1..=self.series).contains(&s)
    }

    pub(crate) fn episode_id(&self, e: Episode) -> u64 {
        self.off()
            + self.live
            + self.vod
            + (e.series - 1) * EPISODES_PER_SERIES
            + (e.season - 1) * EPISODES_PER_SEASON
            + e.episode
    }

    /// The episode a stream id stands for, if any.
    pub(crate) fn episode_of(&self, id: u64) -> Option<Episode> {
        let n = id.checked_sub(self.off() + self.live + self.vod)?.checked_sub(1)?;
        let series = n / EPISODES_PER_SERIES + 1;
        if series > self.series {
            return None;
        }
        let within = n % EPISODES_PER_SERIES;
        Some(Episode { series, season: within / EPISODES_PER_SEASON + 1, episode: within % EPISODES_PER_SEASON + 1 })
    }

    /// All episodes of a series, in order.
    pub(crate) fn episodes(s: u64) -> impl Iterator<Item = Episode> {
        (1..=SEASONS).flat_map(move |season| {
            (1..=EPISODES_PER_SEASON).map(move |episode| Episode { series: s, season, episode })
        })
    }

    /// EPG channel id of live channel `i` (`None` for every 7th channel, and for all
    /// without `live_epg_ids`).
    pub(crate) fn epg_id(&self, i: u64) -> Option<String> {
        let n = i + self.name_offset;
        (self.epg_ids && !n.is_multiple_of(7)).then(|| format!("ch{n}.fake"))
    }

    pub(crate) fn live_name(&self, i: u64) -> String {
        self.name_template.replace("{i}", &(i + self.name_offset).to_string())
    }

    pub(crate) fn logo(base: &str, i: u64) -> String {
        if i.is_multiple_of(11) {
            String::new()
        } else {
            format!("{base}/logos/{i}.png")
        }
    }

    fn added(&self, index: u64) -> String {
        (self.created + (index % 10_000) as i64 * 60).to_string()
    }

    pub(crate) fn live_category(&self, i: u64) -> u64 {
        self.category_of(Kind::Live, i)
    }

    pub(crate) fn vod_category(&self, k: u64) -> u64 {
        self.category_of(Kind::Vod, k)
    }

    pub(crate) fn series_category(&self, s: u64) -> u64 {
        self.category_of(Kind::Series, s)
    }
}

#[derive(Serialize)]
struct CategoryRow<'a> {
    category_id: &'a str,
    category_name: &'a str,
    parent_id: u8,
}

#[derive(Serialize)]
struct VodRow<'a> {
    num: u64,
    name: &'a str,
    stream_type: &'static str,
    stream_id: u64,
    stream_icon: &'a str,
    rating: &'a str,
    rating_5based: f64,
    added: &'a str,
    is_adult: &'static str,
    category_id: &'a str,
    category_ids: [u64; 1],
    container_extension: &'static str,
    custom_sid: Option<&'static str>,
    direct_source: &'static str,
}

#[derive(Serialize)]
struct SeriesRow<'a> {
    num: u64,
    name: &'a str,
    series_id: u64,
    cover: &'a str,
    plot: &'a str,
    cast: &'static str,
    director: &'static str,
    genre: &'a str,
    #[serde(rename = "releaseDate")]
    release_date: &'static str,
    last_modified: &'a str,
    rating: &'a str,
    rating_5based: f64,
    backdrop_path: [&'a str; 1],
    youtube_trailer: &'static str,
    episode_run_time: &'static str,
    category_id: &'a str,
    category_ids: [u64; 1],
}

/// A JSON string literal (escaped).
fn json_str(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(out, s);
}

fn write_json<T: Serialize>(out: &mut Vec<u8>, row: &T) {
    // Serializing these plain structs into a Vec cannot fail.
    let _ = serde_json::to_writer(out, row);
}

fn rating(index: u64) -> (String, f64) {
    let r10 = 5.0 + (index % 50) as f64 / 10.0;
    (format!("{r10:.1}"), r10 / 2.0)
}

impl Catalog {
    /// One `get_*_categories` row.
    pub(crate) fn write_category(&self, kind: Kind, id: u64, out: &mut Vec<u8>) {
        let name = self.category_name(kind, id);
        write_json(out, &CategoryRow { category_id: &id.to_string(), category_name: &name, parent_id: 0 });
    }

    /// One `get_live_streams` row. Written by hand (not via a derived `Serialize`) because it
    /// is the hot path of huge catalogs; the field order and types match real panels.
    pub(crate) fn write_live(&self, base: &str, i: u64, out: &mut Vec<u8>) {
        use std::io::Write;
        let cat = self.live_category(i);
        let archive = self.has_archive(i);
        let duration = match (archive, i.is_multiple_of(10), i.is_multiple_of(3)) {
            (true, true, _) => "\"7\"",
            (true, false, _) => "3",
            (false, _, true) => "\"0\"",
            (false, _, false) => "0",
        };
        // Writing into a Vec cannot fail.
        let _ = write!(out, "{{\"num\":{i},\"name\":");
        json_str(out, &self.live_name(i));
        let _ = write!(out, ",\"stream_type\":\"live\",\"stream_id\":{},\"stream_icon\":", self.live_id(i));
        json_str(out, &Self::logo(base, i));
        out.extend_from_slice(b",\"epg_channel_id\":");
        match self.epg_id(i) {
            Some(id) => json_str(out, &id),
            None => out.extend_from_slice(b"null"),
        }
        let _ = write!(
            out,
            ",\"added\":\"{}\",\"is_adult\":\"0\",\"category_id\":\"{cat}\",\"category_ids\":[{cat}],\"custom_sid\":\"\",\"tv_archive\":{},\"direct_source\":\"\",\"tv_archive_duration\":{duration}}}",
            self.added(i),
            u8::from(archive),
        );
    }

    /// One `get_vod_streams` row.
    pub(crate) fn write_vod(&self, base: &str, k: u64, out: &mut Vec<u8>) {
        let name = format!("Movie {k}");
        let icon = format!("{base}/posters/movie{k}.png");
        let (r, r5) = rating(k);
        let added = self.added(k);
        let cat = self.vod_category(k);
        write_json(
            out,
            &VodRow {
                num: k,
                name: &name,
                stream_type: "movie",
                stream_id: self.vod_stream_id(k),
                stream_icon: &icon,
                rating: &r,
                rating_5based: r5,
                added: &added,
                is_adult: "0",
                category_id: &cat.to_string(),
                category_ids: [cat],
                container_extension: "ts",
                custom_sid: if k.is_multiple_of(4) { None } else { Some("") },
                direct_source: "",
            },
        );
    }

    /// One `get_series` row.
    pub(crate) fn write_series(&self, base: &str, s: u64, out: &mut Vec<u8>) {
        let name = format!("Series {s}");
        let cover = format!("{base}/posters/series{s}.png");
        let plot = format!("The adventures of test pattern number {s}.");
        let cat = self.series_category(s);
        let genre = self.category_name(Kind::Series, cat);
        let (r, r5) = rating(s);
        let modified = self.added(s);
        write_json(
            out,
            &SeriesRow {
                num: s,
                name: &name,
                series_id: s,
                cover: &cover,
                plot: &plot,
                cast: "",
                director: "",
                genre: &genre,
                release_date: "2020-01-01",
                last_modified: &modified,
                rating: &r,
                rating_5based: r5,
                backdrop_path: [&cover],
                youtube_trailer: "",
                episode_run_time: "10",
                category_id: &cat.to_string(),
                category_ids: [cat],
            },
        );
    }

    /// `get_vod_info` for a movie stream id.
    pub(crate) fn vod_info(&self, base: &str, id: u64) -> serde_json::Value {
        let Some(k) = self.vod_index(id) else {
            return serde_json::json!({"info": [], "movie_data": []});
        };
        let (r, _) = rating(k);
        let cat = self.vod_category(k);
        let image = format!("{base}/posters/movie{k}.png");
        serde_json::json!({
            "info": {
                "kinopoisk_url": "",
                "tmdb_id": (1000 + k).to_string(),
                "name": format!("Movie {k}"),
                "o_name": format!("Movie {k}"),
                "cover_big": image,
                "movie_image": image,
                "releasedate": "2020-01-01",
                "episode_run_time": 0,
                "youtube_trailer": "",
                "director": "",
                "actors": "",
                "cast": "",
                "description": "Ten seconds of test pattern.",
                "plot": "Ten seconds of test pattern.",
                "age": "",
                "country": "",
                "genre": self.category_name(Kind::Vod, cat),
                "backdrop_path": [image],
                "duration_secs": 10,
                "duration": "00:00:10",
                "bitrate": 1821,
                "rating": r,
                "video": {"codec_name": "h264", "width": 1280, "height": 720},
                "audio": {"codec_name": "aac", "sample_rate": "48000"},
            },
            "movie_data": {
                "stream_id": id,
                "name": format!("Movie {k}"),
                "added": self.added(k),
                "category_id": cat.to_string(),
                "category_ids": [cat],
                "container_extension": "ts",
                "custom_sid": "",
                "direct_source": "",
            }
        })
    }

    /// `get_series_info` for a series id.
    pub(crate) fn series_info(&self, base: &str, s: u64) -> serde_json::Value {
        if !self.is_series(s) {
            return serde_json::json!({"seasons": [], "info": [], "episodes": []});
        }
        let cover = format!("{base}/posters/series{s}.png");
        let cat = self.series_category(s);
        let (r, r5) = rating(s);
        let seasons: Vec<serde_json::Value> = (1..=SEASONS)
            .map(|season| {
                serde_json::json!({
                    "air_date": format!("{}-01-01", 2019 + season),
                    "episode_count": EPISODES_PER_SEASON,
                    "id": s * 100 + season,
                    "name": format!("Season {season}"),
                    "overview": "",
                    "season_number": season,
                    "cover": cover,
                    "cover_big": cover,
                })
            })
            .collect();
        let mut episodes = serde_json::Map::new();
        for season in 1..=SEASONS {
            let list: Vec<serde_json::Value> = Self::episodes(s)
                .filter(|e| e.season == season)
                .map(|e| {
                    serde_json::json!({
                        "id": self.episode_id(e).to_string(),
                        "episode_num": e.episode,
                        "title": format!("Series {s} - S{:02}E{:02}", e.season, e.episode),
                        "container_extension": "ts",
                        "info": {
                            "duration_secs": 10,
                            "duration": "00:00:10",
                            "movie_image": cover,
                            "plot": "",
                        },
                        "custom_sid": "",
                        "added": self.added(s),
                        "season": e.season,
                        "direct_source": "",
                    })
                })
                .collect();
            episodes.insert(season.to_string(), serde_json::Value::Array(list));
        }
        serde_json::json!({
            "seasons": seasons,
            "info": {
                "name": format!("Series {s}"),
                "cover": cover,
                "plot": format!("The adventures of test pattern number {s}."),
                "cast": "",
                "director": "",
                "genre": self.category_name(Kind::Series, cat),
                "releaseDate": "2020-01-01",
                "last_modified": self.added(s),
                "rating": r,
                "rating_5based": r5,
                "backdrop_path": [cover],
                "youtube_trailer": "",
                "episode_run_time": "10",
                "category_id": cat.to_string(),
                "category_ids": [cat],
            },
            "episodes": episodes,
        })
    }

    /// `get_short_epg`: the next `limit` hourly programmes of a channel, from the current hour.
    pub(crate) fn short_epg(&self, id: u64, now: i64, limit: u64) -> serde_json::Value {
        let Some(index) = self.live_index(id) else {
            return serde_json::json!({"epg_listings": []});
        };
        let Some(epg) = self.epg_id(index) else {
            return serde_json::json!({"epg_listings": []});
        };
        let hour = now - now.rem_euclid(3600);
        let listings: Vec<serde_json::Value> = (0..limit.min(EPG_HOURS_AFTER as u64))
            .map(|h| {
                let start = hour + h as i64 * 3600;
                let (title, desc) = programme_text(index, start);
                serde_json::json!({
                    "id": (start / 3600).to_string(),
                    "epg_id": id.to_string(),
                    "title": base64(title.as_bytes()),
                    "lang": "en",
                    "start": format_datetime(start),
                    "end": format_datetime(start + 3600),
                    "description": base64(desc.as_bytes()),
                    "channel_id": epg,
                    "start_timestamp": start.to_string(),
                    "stop_timestamp": (start + 3600).to_string(),
                })
            })
            .collect();
        serde_json::json!({ "epg_listings": listings })
    }
}

/// Title and description of the programme on channel `i` starting at `start`.
pub(crate) fn programme_text(i: u64, start: i64) -> (String, String) {
    let hour = start.rem_euclid(86_400) / 3600;
    (format!("Channel {i} at {hour:02}:00"), format!("Hourly test programme of Channel {i}."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat() -> Catalog {
        let cfg = FakeConfig {
            live_channels: 20,
            live_categories: 4,
            vod_count: 10,
            vod_categories: 2,
            series_count: 3,
            series_categories: 1,
            ..FakeConfig::demo()
        };
        Catalog::new(&cfg, 1_700_000_000)
    }

    #[test]
    fn names_and_guide_ids_follow_the_offsets() {
        let c = Catalog::new(
            &FakeConfig {
                live_name_template: "UK: CHANNEL {i} HD".into(),
                live_name_offset: 100,
                stream_id_offset: 5000,
                ..FakeConfig::demo()
            },
            1_700_000_000,
        );
        assert_eq!((c.live_name(1), c.live_id(1)), ("UK: CHANNEL 101 HD".to_string(), 5001));
        assert_eq!((c.epg_id(1), c.epg_id(5)), (Some("ch101.fake".to_string()), None), "105 is a 7th");
        let bare = Catalog::new(&FakeConfig { live_epg_ids: false, ..FakeConfig::demo() }, 1_700_000_000);
        assert_eq!((bare.live_name(3), bare.epg_id(3)), ("Channel 3".to_string(), None));
    }

    #[test]
    fn ids_round_trip() {
        let c = cat();
        assert!(c.is_live(20) && !c.is_live(21) && !c.is_live(0));
        assert_eq!(c.vod_index(21), Some(1));
        assert_eq!(c.vod_index(30), Some(10));
        assert_eq!(c.vod_index(31), None);
        for s in 1..=3 {
            for e in Catalog::episodes(s) {
                assert_eq!(c.episode_of(c.episode_id(e)), Some(e));
            }
        }
        assert_eq!(c.episode_of(30), None);
        assert_eq!(c.episode_of(31).unwrap().series, 1);
        assert_eq!(c.episode_of(48).unwrap().series, 3);
        assert_eq!(c.episode_of(49), None);
    }

    #[test]
    fn categories() {
        let c = cat();
        assert_eq!(c.category_ids(Kind::Live), 1..=4);
        assert_eq!(c.category_ids(Kind::Vod), 5..=6);
        assert_eq!(c.category_ids(Kind::Series), 7..=7);
        let in2: Vec<u64> = c.indexes(Kind::Live, Some("2")).collect();
        assert_eq!(in2, vec![2, 6, 10, 14, 18]);
        assert!(in2.iter().all(|&i| c.live_category(i) == 2));
        assert_eq!(c.indexes(Kind::Live, Some("5")).count(), 0);
        assert_eq!(c.indexes(Kind::Live, Some("x")).count(), 0);
        assert_eq!(c.indexes(Kind::Vod, Some("6")).collect::<Vec<_>>(), vec![2, 4, 6, 8, 10]);
        assert_eq!(c.category_name(Kind::Live, 2), "Sports & Events");
    }

    #[test]
    fn live_row_shape() {
        let c = cat();
        let mut out = Vec::new();
        c.write_live("http://h", 7, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["epg_channel_id"], serde_json::Value::Null);
        assert_eq!(v["stream_id"], 7);
        assert_eq!(v["category_id"], "3");
        assert_eq!(v["added"].as_str().map(|s| s.parse::<i64>().is_ok()), Some(true));
        out.clear();
        c.write_live("http://h", 10, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["tv_archive"], 1);
        assert_eq!(v["tv_archive_duration"], "7");
    }
}
