//! Downloading a provider's XMLTV guide into a file of the data dir.
//!
//! A guide is spooled to disk as it arrives (see [`UpstreamHttp::download`]),
//! decompressed if it is a gzip file (many guides are served as `.xml.gz`
//! without `Content-Encoding`; a `Content-Encoding: gzip` body is already
//! decoded by the HTTP client), checked to be a guide at all, and only then
//! moved over the previous copy with a rename. A failed or junk download
//! therefore never replaces a good guide, and a reader of the file always
//! sees a whole guide, old or new.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use tunerpool_formats::xmltv::GuideReader;

use crate::cap::BodyKind;
use crate::error::UpstreamError;
use crate::http::UpstreamHttp;
use crate::redact::{redact_text, redact_url};

/// Copy buffer size.
const CHUNK: usize = 256 * 1024;
/// How much of a body that is not a guide is quoted in the error.
const SNIPPET_CHARS: usize = 80;

/// What a guide download stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuideSummary {
    /// Size of the stored (uncompressed) guide.
    pub bytes: u64,
    /// `<channel>` elements in it.
    pub channels: u64,
    /// `<programme>` elements in it.
    pub programmes: u64,
    /// Elements that could not be used (see `tunerpool_formats::xmltv::ReadStats`).
    pub skipped: u64,
    /// The body was a gzip file.
    pub gzip: bool,
}

/// Downloads the guide at `url` and stores it, uncompressed, at `dest`
/// (replacing it atomically, mode 0600; the directory is created 0700 if
/// needed). `secrets`
/// are masked in every error. A body with no channel and no programme in it
/// (an error page, an empty answer) is refused and `dest` is left as it was.
pub async fn download_guide(
    http: &UpstreamHttp,
    url: &str,
    secrets: &[&str],
    dest: &Path,
) -> Result<GuideSummary, UpstreamError> {
    let spooled = http.download(url, secrets, BodyKind::Guide).await?;
    let shown = redact_url(url, secrets);
    let secrets: Vec<String> = secrets.iter().map(|s| s.to_string()).collect();
    let dest = dest.to_path_buf();
    let failed_url = shown.clone();
    let limit = http.settings().caps.guide;
    tokio::task::spawn_blocking(move || store_guide(spooled, &dest, &shown, &secrets, limit)).await.map_err(|e| {
        UpstreamError::BadBody {
            url: failed_url,
            expected: "an XMLTV guide",
            detail: format!("storing it failed: {e}"),
        }
    })?
}

/// Stores a guide read from `input` (plain or gzip) at `dest`: the blocking
/// part of [`download_guide`], also usable for a guide that is a local file.
/// A guide larger than `max_bytes` once decompressed is refused
/// (`epg.max_guide_bytes`).
pub fn store_guide(
    input: File,
    dest: &Path,
    shown_url: &str,
    secrets: &[String],
    max_bytes: u64,
) -> Result<GuideSummary, UpstreamError> {
    let dir = dest.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    let file_err = |what: &str, e: io::Error| UpstreamError::File {
        path: dest.display().to_string(),
        reason: format!("cannot {what}: {e}"),
    };
    crate::owner_only::create_dir(&dir).map_err(|e| file_err("create the guide directory", e))?;
    let mut body = BufReader::with_capacity(CHUNK, input);
    let gzip = body.fill_buf().map_err(|e| file_err("read the download", e))?.starts_with(&[0x1f, 0x8b]);
    let mut source: Box<dyn Read> =
        if gzip { Box::new(flate2::bufread::MultiGzDecoder::new(body)) } else { Box::new(body) };

    let tmp = tempfile::Builder::new()
        .prefix(".guide-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|e| file_err("create a temporary file", e))?;
    let mut out = BufWriter::with_capacity(CHUNK, tmp);
    let mut buf = vec![0u8; CHUNK];
    let mut bytes = 0u64;
    loop {
        let n = match source.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(UpstreamError::BadBody {
                    url: shown_url.to_string(),
                    expected: "an XMLTV guide",
                    detail: if gzip {
                        format!("the gzip file is corrupt or cut off: {e}")
                    } else {
                        format!("reading the download failed: {e}")
                    },
                })
            }
        };
        bytes += n as u64;
        if bytes > max_bytes {
            return Err(BodyKind::Guide.too_large(shown_url, max_bytes));
        }
        out.write_all(&buf[..n]).map_err(|e| file_err("write the guide", e))?;
    }
    let tmp = out.into_inner().map_err(|e| file_err("write the guide", e.into_error()))?;

    // Is it a guide? Read it through once (it is in the page cache now).
    let check = tmp.reopen().map_err(|e| file_err("read the guide back", e))?;
    let back = |e| file_err("read the guide back", xml_io(e));
    let mut reader = GuideReader::new(BufReader::with_capacity(CHUNK, check)).map_err(back)?;
    while reader.next_element_where(|_| false).map_err(back)?.is_some() {}
    let stats = reader.stats();
    if stats.channels + stats.programmes == 0 {
        let start = snippet(tmp.path());
        return Err(UpstreamError::BadBody {
            url: shown_url.to_string(),
            expected: "an XMLTV guide",
            detail: redact_text(
                &if start.is_empty() {
                    "the body is empty".to_string()
                } else {
                    format!("no <channel> or <programme> in it; it starts with {start:?}")
                },
                &secrets.iter().map(String::as_str).collect::<Vec<_>>(),
            ),
        });
    }
    let summary =
        GuideSummary { bytes, channels: stats.channels, programmes: stats.programmes, skipped: stats.skipped, gzip };
    tmp.persist(dest).map_err(|e| file_err("replace the guide", e.error))?;
    Ok(summary)
}

fn xml_io(e: tunerpool_formats::xmltv::XmltvError) -> io::Error {
    io::Error::other(e.to_string())
}

/// The start of a file as printable text, whitespace collapsed.
fn snippet(path: &Path) -> String {
    let mut head = Vec::new();
    if let Ok(f) = File::open(path) {
        let _ = f.take(512).read_to_end(&mut head);
    }
    let text = String::from_utf8_lossy(&head);
    let mut out = String::new();
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().filter(|c| !c.is_control()));
        if out.chars().count() >= SNIPPET_CHARS {
            break;
        }
    }
    out.chars().take(SNIPPET_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(body: &[u8]) -> (tempfile::TempDir, Result<GuideSummary, UpstreamError>) {
        let dir = tempfile::tempdir().unwrap();
        let mut input = tempfile::tempfile().unwrap();
        input.write_all(body).unwrap();
        std::io::Seek::rewind(&mut input).unwrap();
        let dest = dir.path().join("epg").join("provider-1.xml");
        let r = store_guide(input, &dest, "http://h/xmltv.php?password=***", &["s3cret".to_string()], 1 << 20);
        (dir, r)
    }

    const GUIDE: &[u8] = b"<tv><channel id=\"a\"/><programme start=\"20250101000000 +0530\" channel=\"a\"/></tv>";

    #[test]
    fn plain_and_gzip_guides_are_stored_plain() {
        let (dir, r) = stored(GUIDE);
        assert_eq!(
            r.unwrap(),
            GuideSummary { bytes: GUIDE.len() as u64, channels: 1, programmes: 1, skipped: 0, gzip: false }
        );
        assert_eq!(std::fs::read(dir.path().join("epg/provider-1.xml")).unwrap(), GUIDE);

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(GUIDE).unwrap();
        let (dir, r) = stored(&gz.finish().unwrap());
        assert!(r.unwrap().gzip);
        assert_eq!(std::fs::read(dir.path().join("epg/provider-1.xml")).unwrap(), GUIDE);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path().join("epg")).unwrap().count(), 1);
    }

    #[test]
    fn junk_is_refused_and_the_old_guide_kept() {
        let (dir, r) = stored(GUIDE);
        r.unwrap();
        let dest = dir.path().join("epg/provider-1.xml");
        for junk in [&b"<html><body>Forbidden for s3cret</body></html>"[..], b"", b"\x1f\x8b\x08\x00garbage"] {
            let mut input = tempfile::tempfile().unwrap();
            input.write_all(junk).unwrap();
            std::io::Seek::rewind(&mut input).unwrap();
            let e = store_guide(input, &dest, "http://h/x", &["s3cret".to_string()], 1 << 20).unwrap_err().to_string();
            assert!(!e.contains("s3cret"), "{e}");
            assert!(e.contains("XMLTV"), "{e}");
            assert_eq!(std::fs::read(&dest).unwrap(), GUIDE, "old guide kept");
        }
        assert_eq!(std::fs::read_dir(dir.path().join("epg")).unwrap().count(), 1, "no temporary files left");
    }

    #[test]
    fn a_gzip_bomb_is_stopped_at_the_cap_and_the_old_guide_kept() {
        let (dir, r) = stored(GUIDE);
        r.unwrap();
        let dest = dir.path().join("epg/provider-1.xml");
        // 64 MiB of zeros compress to ~64 KiB.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(GUIDE).unwrap();
        for _ in 0..64 {
            gz.write_all(&[0u8; 1 << 20]).unwrap();
        }
        let mut input = tempfile::tempfile().unwrap();
        input.write_all(&gz.finish().unwrap()).unwrap();
        std::io::Seek::rewind(&mut input).unwrap();
        let e = store_guide(input, &dest, "http://h/x", &[], 8 << 20).unwrap_err().to_string();
        assert!(e.contains("more than 8 MiB") && e.contains("epg.max_guide_bytes"), "{e}");
        assert_eq!(std::fs::read(&dest).unwrap(), GUIDE, "old guide kept");
        assert_eq!(std::fs::read_dir(dir.path().join("epg")).unwrap().count(), 1, "no temporary files left");
    }
}
