//! `tunerpool inspect m3u`: read a playlist the way a sync would and print
//! what is in it, so users can validate a playlist before adding it.

use std::collections::BTreeMap;
use std::process::ExitCode;

use serde::Serialize;
use tunerpool_formats::m3u::{Entry, Header, Skipped};
use tunerpool_upstream::m3u::{fetch, M3uSource};

use crate::cli::InspectCommand;
use crate::config::Config;

/// The JSON summary `inspect m3u` prints.
#[derive(Debug, Default, Serialize)]
pub struct M3uSummary {
    pub source: String,
    pub header: Header,
    pub lines: usize,
    pub entries: usize,
    /// Entries by kind, recognised from Xtream-style URL paths.
    pub kinds: BTreeMap<&'static str, usize>,
    /// Entries per group (group-title, else #EXTGRP); entries without one under "".
    pub groups: BTreeMap<String, usize>,
    /// How many entries carry each #EXTINF attribute.
    pub attributes: BTreeMap<String, usize>,
    /// How many entries carry each #EXTVLCOPT key.
    pub vlc_options: BTreeMap<String, usize>,
    pub kodi_props: usize,
    /// URL schemes (http, https, rtmp, ...; "relative" for paths).
    pub url_schemes: BTreeMap<String, usize>,
    pub with_tvg_id: usize,
    pub duplicate_urls: usize,
    /// How many lines were skipped.
    pub skipped_lines: usize,
    /// The first skipped lines (at most `MAX_SKIPPED_KEPT`), with line numbers and reasons.
    pub skipped: Vec<Skipped>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<Entry>>,
}

pub async fn run(config: &Config, cmd: &InspectCommand) -> anyhow::Result<ExitCode> {
    let InspectCommand::M3u { source, entries, strict } = cmd;
    let parsed = M3uSource::parse(source).map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
    let mut http_settings = crate::serve::upstream_http(config)?.settings().clone();
    http_settings.spool_dir = std::env::temp_dir();
    let http = tunerpool_upstream::UpstreamHttp::new(http_settings)?;
    let mut batches = fetch(&http, &parsed, &[]).await?;
    let mut s = M3uSummary {
        source: tunerpool_upstream::redact::redact_url(source, &[]),
        items: entries.then(Vec::new),
        ..Default::default()
    };
    let mut urls = std::collections::HashSet::new();
    while let Some(batch) = batches.next().await {
        for e in batch {
            add(&mut s, &e, &mut urls);
            if let Some(items) = s.items.as_mut() {
                items.push(e);
            }
        }
    }
    let summary = batches.finish().await?;
    s.header = summary.header;
    s.lines = summary.lines;
    s.skipped_lines = summary.skipped_count;
    s.skipped = summary.skipped;
    println!("{}", serde_json::to_string_pretty(&s)?);
    if *strict && (s.entries == 0 || s.skipped_lines > 0) {
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

fn add(s: &mut M3uSummary, e: &Entry, urls: &mut std::collections::HashSet<u64>) {
    use std::hash::{Hash, Hasher};
    s.entries += 1;
    let kind = tunerpool_catalog::MediaKind::from_url(&e.url).as_str();
    *s.kinds.entry(kind).or_default() += 1;
    *s.groups.entry(e.group_title().unwrap_or_default().to_string()).or_default() += 1;
    for (k, _) in &e.attrs {
        *s.attributes.entry(k.to_ascii_lowercase()).or_default() += 1;
    }
    for (k, _) in &e.vlc_opts {
        *s.vlc_options.entry(k.to_ascii_lowercase()).or_default() += 1;
    }
    s.kodi_props += e.kodi_props.len();
    let scheme = match e.url.split_once("://") {
        Some((scheme, _)) => scheme.to_ascii_lowercase(),
        None => "relative".to_string(),
    };
    *s.url_schemes.entry(scheme).or_default() += 1;
    if e.tvg_id().is_some() {
        s.with_tvg_id += 1;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    e.url.hash(&mut h);
    if !urls.insert(h.finish()) {
        s.duplicate_urls += 1;
    }
}
