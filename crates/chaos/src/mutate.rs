//! Mutations of real documents for the fuzz scenario: what a broken panel, a truncated
//! download or a hostile playlist looks like, made from the real-world files in
//! `testdata/real/` by byte- and line-level edits, reproducible from a seed.

use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::Rng;

/// Largest mutated document (a duplicated range cannot grow it past this).
const MAX_LEN: usize = 4 << 20;

/// Fragments that parsers of these formats trip on.
const TOKENS: &[&[u8]] = &[
    b"\"",
    b",",
    b"=",
    b"\n",
    b"\r\n",
    b"\0",
    b"\xff\xfe",
    b"\xc3\x28",
    b"#EXTINF:-1",
    b"#EXTINF:",
    b"#EXTM3U",
    b"#EXT-X-STREAM-INF:BANDWIDTH=",
    b"#EXT-X-KEY:METHOD=AES-128,URI=\"",
    b"#EXT-X-MEDIA-SEQUENCE:18446744073709551615",
    b"tvg-id=\"",
    b"group-title=",
    b"http://",
    b"<",
    b">",
    b"&",
    b"&#x0;",
    b"]]>",
    b"<programme start=\"",
    b"<channel id=",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b"null",
    b"true",
    b"\"stream_id\":",
    b"99999999999999999999999",
    b"-1",
    b"1e308",
    b"NaN",
];

/// The real documents of one kind, read once.
///
/// Exists so the fuzz scenario picks seeds by kind (playlist, guide, HLS, Xtream JSON).
#[derive(Debug, Clone)]
pub struct Corpus {
    /// (file name, contents).
    pub files: Vec<(String, Vec<u8>)>,
}

impl Corpus {
    /// Every file of `testdata/real/{kind}` (`m3u`, `xmltv`, `hls`, `xtream`), each cut to at
    /// most `max_len` bytes.
    pub fn load(kind: &str, max_len: usize) -> anyhow::Result<Corpus> {
        let dir = testdata().join("real").join(kind);
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))? {
            let path = entry?.path();
            let mut bytes = std::fs::read(&path)?;
            bytes.truncate(max_len);
            files.push((path.file_name().unwrap_or_default().to_string_lossy().into_owned(), bytes));
        }
        files.sort();
        if files.is_empty() {
            anyhow::bail!("no files in {}", dir.display());
        }
        Ok(Corpus { files })
    }

    /// A random file's name and a mutation of it.
    pub fn mutant(&self, rng: &mut StdRng) -> (&str, Vec<u8>) {
        let (name, bytes) = &self.files[rng.random_range(0..self.files.len())];
        (name, mutate(bytes, rng))
    }
}

/// `testdata/` of the repository: `$CHAOS_TESTDATA`, else the one beside this crate.
pub fn testdata() -> PathBuf {
    std::env::var_os("CHAOS_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata"))
}

/// One to four random edits of `input`.
pub fn mutate(input: &[u8], rng: &mut StdRng) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        edit(&mut out, rng);
        out.truncate(MAX_LEN);
    }
    out
}

fn edit(data: &mut Vec<u8>, rng: &mut StdRng) {
    let len = data.len();
    let pos = if len == 0 { 0 } else { rng.random_range(0..len) };
    match rng.random_range(0..9) {
        // Flip a few bits.
        0 => {
            for _ in 0..rng.random_range(1..8) {
                if len > 0 {
                    let i = rng.random_range(0..len);
                    data[i] ^= 1 << rng.random_range(0..8);
                }
            }
        }
        // Insert a token, or random bytes.
        1 | 2 => {
            let insert: Vec<u8> = if rng.random_bool(0.7) {
                TOKENS[rng.random_range(0..TOKENS.len())].to_vec()
            } else {
                (0..rng.random_range(1..64)).map(|_| rng.random()).collect()
            };
            data.splice(pos..pos, insert);
        }
        // Delete a range.
        3 => {
            let end = (pos + rng.random_range(1..256)).min(len);
            data.drain(pos..end);
        }
        // Repeat a range many times (long lines, huge attributes, deep nesting).
        4 => {
            let end = (pos + rng.random_range(1..64)).min(len);
            let piece = data[pos..end].to_vec();
            let times = rng.random_range(2..2048);
            let mut grown = Vec::with_capacity(piece.len() * times);
            for _ in 0..times {
                grown.extend_from_slice(&piece);
            }
            data.splice(end..end, grown);
        }
        // Truncate (a download cut short).
        5 => data.truncate(pos),
        // Swap two lines.
        6 => {
            let mut lines: Vec<Vec<u8>> = data.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
            if lines.len() > 1 {
                let (a, b) = (rng.random_range(0..lines.len()), rng.random_range(0..lines.len()));
                lines.swap(a, b);
                *data = lines.join(&b'\n');
            }
        }
        // A number becomes an extreme one.
        7 => {
            if let Some(start) = data[pos..].iter().position(u8::is_ascii_digit).map(|i| pos + i) {
                let end = data[start..].iter().position(|b| !b.is_ascii_digit()).map_or(len, |i| start + i);
                let extreme: &[u8] =
                    [&b"-1"[..], b"0", b"18446744073709551616", b"9999999999", b"1e999"][rng.random_range(0..5)];
                data.splice(start..end, extreme.iter().copied());
            }
        }
        // Drop every quote of a stretch.
        _ => {
            let end = (pos + rng.random_range(1..4096)).min(len);
            let kept: Vec<u8> = data[pos..end].iter().copied().filter(|b| *b != b'"').collect();
            data.splice(pos..end, kept);
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn mutations_are_reproducible_and_bounded() {
        let input = b"#EXTM3U\n#EXTINF:-1 tvg-id=\"a\",A\nhttp://x/1.ts\n".repeat(100);
        let a = mutate(&input, &mut StdRng::seed_from_u64(7));
        let b = mutate(&input, &mut StdRng::seed_from_u64(7));
        assert_eq!(a, b);
        let mut rng = StdRng::seed_from_u64(1);
        let mut changed = 0;
        for _ in 0..500 {
            let m = mutate(&input, &mut rng);
            assert!(m.len() <= MAX_LEN);
            changed += usize::from(m != input);
        }
        assert!(changed > 450, "mutations change the input: {changed}/500");
    }

    #[test]
    fn corpus_of_each_kind_loads() {
        for kind in ["m3u", "xmltv", "hls", "xtream"] {
            let c = Corpus::load(kind, 1 << 20).unwrap();
            assert!(!c.files.is_empty(), "{kind}");
        }
    }
}
