//! Where the admin token comes from: `admin.token` (file or environment), else
//! `{data_dir}/admin-token`, else a new random one written there (mode 0600)
//! and shown once.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rand::RngCore;

use crate::config::Config;

/// Name of the token file in the data dir.
pub const FILE: &str = "admin-token";

/// Where the token in use came from, so the caller can say so (once).
#[derive(Debug)]
pub enum Origin {
    /// `admin.token` in the configuration.
    Config,
    /// Read from `{data_dir}/admin-token`.
    File,
    /// Just generated and written to this file: show it to the operator.
    Generated(PathBuf),
}

/// The token in use and where it came from.
pub struct Loaded {
    pub token: tunerpool_http::AdminToken,
    /// The token text, for printing when it was just generated (and by the demo).
    pub text: String,
    pub origin: Origin,
}

/// The admin token to require, creating `{data_dir}/admin-token` when neither
/// the configuration nor the data dir has one.
pub fn load(config: &Config) -> anyhow::Result<Loaded> {
    if let Some(t) = &config.admin.token {
        return Ok(loaded(t.expose().to_owned(), Origin::Config));
    }
    let path = config.data_dir.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let text = text.trim().to_owned();
            if text.len() < 16 || !text.bytes().all(|b| b.is_ascii_graphic()) {
                anyhow::bail!(
                    "{}: not a usable admin token (it needs at least 16 printable characters without spaces); \
                     delete the file to have a new one generated, or set admin.token",
                    path.display()
                );
            }
            Ok(loaded(text, Origin::File))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let text = generate();
            write_new(&path, &text)?;
            Ok(loaded(text, Origin::Generated(path)))
        }
        Err(e) => Err(e).with_context(|| format!("cannot read the admin token from {}", path.display())),
    }
}

fn loaded(text: String, origin: Origin) -> Loaded {
    Loaded { token: tunerpool_http::AdminToken::new(text.clone()), text, origin }
}

/// 32 random bytes from the OS generator, as 64 hex digits.
fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes a new file only the owner can read; never overwrites one.
fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(format!("{text}\n").as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config { data_dir: dir.path().join("data"), ..Config::default() };
        let first = load(&config).unwrap();
        assert!(matches!(first.origin, Origin::Generated(_)));
        assert_eq!(first.text.len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("data").join(FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = load(&config).unwrap();
        assert!(matches!(again.origin, Origin::File));
        assert_eq!(again.text, first.text);
        std::fs::write(dir.path().join("data").join(FILE), "short\n").unwrap();
        let err = load(&config).err().unwrap().to_string();
        assert!(err.contains("admin-token") && !err.contains("short"), "{err}");
    }
}
