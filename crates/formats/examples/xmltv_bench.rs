//! XMLTV merge benchmark (run by `bench/xmltv.sh`).
//!
//! `xmltv_bench generate FILE MB [CHANNELS]` writes a synthetic guide of
//! about MB megabytes, and `FILE.m3u`, a playlist of three channels in four
//! of it (the catalog a gateway would have), for the end-to-end run. The
//! guide has CHANNELS channels (default: 42 per MB), each with as many
//! programmes as make up the size (42 at the default: 31.5 hours of
//! hour-long slots and 15-minute fillers), with titles, sub-titles, descriptions in several
//! scripts, categories, episode numbers, icons and entities, and start/stop
//! times in seven different offsets (`+0000`, `+0100`, `-0500`, `+0530`,
//! `-0330`, `+0545` and none).
//!
//! `xmltv_bench merge OUT CHANNELS FILE...` merges the files the way the
//! gateway does: three channels in four of the first CHANNELS are in the
//! catalog, one in two of those under another id. It prints one JSON line: elements written, seconds, and the
//! process's peak RSS (`VmHWM`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::time::Instant;

use tunerpool_formats::xmltv::{self, ChannelMap, MergeSource};

const CHANNELS_PER_MB: usize = 42;
const PROGRAMMES_PER_CHANNEL: usize = 42;
const OFFSETS: [&str; 7] = [" +0000", " +0100", " -0500", " +0530", " -0330", " +0545", ""];
const WORDS: [&str; 16] = [
    "news",
    "weather",
    "Noticias",
    "Новости",
    "Журнал",
    "ニュース",
    "café",
    "Primera",
    "finale",
    "live",
    "Tëvë",
    "documentary",
    "Q&amp;A",
    "موجز",
    "sport",
    "cinéma",
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("generate") if args.len() >= 4 => {
            let mb: usize = args[3].parse().expect("MB is a number");
            let channels = args.get(4).map(|c| c.parse().expect("CHANNELS is a number"));
            generate(&args[2], mb, channels).expect("writing the guide");
        }
        Some("merge") if args.len() >= 5 => merge(&args[2], args[3].parse().expect("CHANNELS is a number"), &args[4..]),
        _ => {
            eprintln!("usage: xmltv_bench generate FILE MB [CHANNELS] | xmltv_bench merge OUT CHANNELS FILE...");
            std::process::exit(2);
        }
    }
}

fn channel_id(i: usize) -> String {
    format!("Channel{i}.example@HD")
}

/// `YYYYMMDDhhmmss` for minutes after the start of the guide (a calendar of
/// 28-day months, so that any length of guide has valid dates).
fn stamp(minutes: usize) -> String {
    let (day, rest) = (minutes / 1440, minutes % 1440);
    let month = 10 + day / 28; // months since January 2026, from November
    format!("{}{:02}{:02}{:02}{:02}00", 2026 + month / 12, month % 12 + 1, day % 28 + 1, rest / 60, rest % 60)
}

/// Bytes of one generated programme element, on average.
const PROGRAMME_BYTES: usize = 560;
/// Bytes of one generated channel element, on average.
const CHANNEL_BYTES: usize = 230;

fn generate(path: &str, mb: usize, channels: Option<usize>) -> std::io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    out.write_all(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE tv SYSTEM \"xmltv.dtd\">\n")?;
    out.write_all(b"<tv generator-info-name=\"xmltv_bench\" generator-info-url=\"http://example.com/\">\n")?;
    let channels = channels.unwrap_or(mb * CHANNELS_PER_MB).max(1);
    let per_channel = match channels * CHANNEL_BYTES {
        _ if channels == mb * CHANNELS_PER_MB => PROGRAMMES_PER_CHANNEL,
        fixed => (mb * 1_000_000).saturating_sub(fixed) / PROGRAMME_BYTES / channels,
    };
    for i in 0..channels {
        writeln!(
            out,
            "  <channel id=\"{id}\">\n    <display-name lang=\"en\">Channel {i} HD</display-name>\n    <display-name>{i}</display-name>\n    <icon src=\"http://logos.example.com/{i}.png\"/>\n    <url>http://www.example.com/{i}</url>\n  </channel>",
            id = channel_id(i)
        )?;
    }
    for i in 0..channels {
        let offset = OFFSETS[i % OFFSETS.len()];
        let mut at = 0;
        for p in 0..per_channel {
            let len = if p % 3 == 2 { 15 } else { 60 };
            let w = |k: usize| WORDS[(i * 7 + p * 3 + k) % WORDS.len()];
            writeln!(
                out,
                "  <programme start=\"{}{offset}\" stop=\"{}{offset}\" channel=\"{}\">\n    <title lang=\"en\">{} {} {p}</title>\n    <sub-title>{} &amp; {}</sub-title>\n    <desc lang=\"en\">Episode {p} of {} {}: {} {} {} — a programme about {} and {}, with {} guests, {} reports and the {} of the day.</desc>\n    <category lang=\"en\">{}</category>\n    <episode-num system=\"xmltv_ns\">{}.{}.</episode-num>\n    <icon src=\"http://img.example.com/{i}/{p}.jpg\"/>\n  </programme>",
                stamp(at),
                stamp(at + len),
                channel_id(i),
                w(0), w(1), w(2), w(3), w(4), w(5), w(6), w(7), w(8), w(9), w(10), w(11), w(12), w(13), w(14),
                p / 10,
                p % 10,
            )?;
            at += len;
        }
    }
    out.write_all(b"</tv>\n")?;
    out.flush()?;
    let mut m3u = BufWriter::new(File::create(format!("{path}.m3u"))?);
    writeln!(m3u, "#EXTM3U")?;
    for i in (0..channels).filter(|i| i % 4 != 3) {
        writeln!(
            m3u,
            "#EXTINF:-1 tvg-id=\"{}\" group-title=\"Group {}\",Channel {i} HD\nhttp://127.0.0.1:9/live/{i}.ts",
            channel_id(i),
            i % 50
        )?;
    }
    m3u.flush()
}

fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn merge(out_path: &str, channels: usize, files: &[String]) {
    let started = Instant::now();
    let mut sources: Vec<MergeSource<File>> = files
        .iter()
        .map(|f| {
            let mut map = ChannelMap::new();
            for i in (0..channels).filter(|i| i % 4 != 3) {
                let out = if i % 2 == 0 { channel_id(i) } else { format!("out{i}.{f}") };
                map.insert(channel_id(i), out);
            }
            MergeSource::new(f.clone(), File::open(f).expect("guide file"), map)
        })
        .collect();
    let out = BufWriter::with_capacity(64 * 1024, File::create(out_path).expect("output file"));
    let stats = xmltv::merge(&mut sources, out).expect("merge");
    println!(
        "{{\"channels\": {}, \"programmes\": {}, \"seconds\": {:.3}, \"peak_rss_kb\": {}}}",
        stats.channels,
        stats.programmes,
        started.elapsed().as_secs_f64(),
        vm_hwm_kb()
    );
}
