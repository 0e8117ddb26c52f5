//! Files and directories that only their owner may read.
//!
//! The data dir holds provider passwords (the SQLite database, in plain
//! text), guides fetched with them, and downloads in progress: nobody but
//! the gateway's own user has any business reading them. Directories are
//! made 0700 and files 0600 when they are created; the data dir and the
//! database are also tightened when they already exist with wider
//! permissions. (On other systems than Unix these are plain creations.)

use std::io;
use std::path::Path;

/// Creates `dir` (and missing parents) with mode 0700 if it does not exist;
/// an existing directory is left as it is (a spool dir may be `/tmp`).
pub fn create_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        if !dir.exists() {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

/// Creates `dir` like [`create_dir`], and makes an existing one 0700.
/// Returns the mode it had when that was wider (open to other users), so
/// the caller can say that it was tightened. For the data dir.
pub fn create_private_dir(dir: &Path) -> io::Result<Option<u32>> {
    create_dir(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
            return Ok(Some(mode));
        }
        Ok(None)
    }
    #[cfg(not(unix))]
    {
        Ok(None)
    }
}

/// Makes `path` 0600 if it exists; if it does not, creates it empty with
/// mode 0600 when `create` is set, else leaves it missing.
pub fn file(path: &Path, create: bool) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        match std::fs::metadata(path) {
            Ok(meta) => {
                if meta.permissions().mode() & 0o077 != 0 {
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(path)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        if create && !path.exists() {
            std::fs::OpenOptions::new().write(true).create(true).truncate(false).open(path)?;
        }
        Ok(())
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn dirs_are_created_owner_only_and_the_private_one_tightened() {
        let tmp = tempfile::tempdir().unwrap();
        let new = tmp.path().join("a/b");
        create_dir(&new).unwrap();
        assert_eq!((mode(&tmp.path().join("a")), mode(&new)), (0o700, 0o700));
        std::fs::set_permissions(&new, std::fs::Permissions::from_mode(0o755)).unwrap();
        create_dir(&new).unwrap();
        assert_eq!(mode(&new), 0o755, "an existing dir is left alone");
        assert_eq!(create_private_dir(&new).unwrap(), Some(0o755));
        assert_eq!(mode(&new), 0o700);
        assert_eq!(create_private_dir(&new).unwrap(), None);
    }

    #[test]
    fn files_are_created_and_tightened() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("db");
        file(&f, false).unwrap();
        assert!(!f.exists(), "not created unless asked");
        file(&f, true).unwrap();
        assert_eq!(mode(&f), 0o600);
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        file(&f, false).unwrap();
        assert_eq!(mode(&f), 0o600);
    }
}
