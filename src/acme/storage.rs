//! The on-disk layout of the ACME storage directory and its permissions.
//!
//! ```text
//! <storage>/              0700
//!   account.json          0600  account key + URL (see account.rs)
//!   <site>/               0700
//!     fullchain.pem       0644  leaf first, then the CA's intermediates
//!     privkey.pem         0600  the leaf's P-256 key (PKCS#8)
//!     issued.json         0644  which directory issued it (a certificate from
//!                               another directory, e.g. staging, is re-ordered)
//! ```
//!
//! Owns path building (a site name must be one plain path component, so no
//! name can escape `storage`), directory creation with explicit modes (the
//! umask cannot widen them) and the writability probe. Files are written by
//! greenlight's `write_atomic` (tmp file created with its mode, fsync,
//! rename). Touches nothing outside `storage`.

use super::AcmeError;
use crate::tls::TlsError;
use crate::tls::selfsigned::write_atomic;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// Mode of the storage and site directories.
const DIR_MODE: u32 = 0o700;
/// Mode of private keys and the account file.
pub(crate) const PRIVATE_MODE: u32 = 0o600;
/// Mode of certificate chains.
pub(crate) const PUBLIC_MODE: u32 = 0o644;

/// `<storage>/account.json`.
pub fn account_path(storage: &Path) -> PathBuf {
    storage.join("account.json")
}

/// `(<storage>/<site>/fullchain.pem, <storage>/<site>/privkey.pem)`; an error
/// for a site name that is not a single plain path component.
pub fn site_paths(storage: &Path, site: &str) -> Result<(PathBuf, PathBuf), AcmeError> {
    let dir = site_dir(storage, site)?;
    Ok((dir.join("fullchain.pem"), dir.join("privkey.pem")))
}

/// `<storage>/<site>/issued.json`.
pub(crate) fn issued_path(storage: &Path, site: &str) -> Result<PathBuf, AcmeError> {
    Ok(site_dir(storage, site)?.join("issued.json"))
}

fn site_dir(storage: &Path, site: &str) -> Result<PathBuf, AcmeError> {
    let mut parts = Path::new(site).components();
    match (parts.next(), parts.next()) {
        (Some(Component::Normal(_)), None) if !site.contains('/') => Ok(storage.join(site)),
        _ => Err(AcmeError::Invalid(format!(
            "site name {site:?} cannot be used as a directory name"
        ))),
    }
}

/// Creates `dir` (and missing parents) with mode 0700 and checks that a file
/// can be created in it, so an unwritable storage is reported before the CA
/// is asked for anything.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<(), AcmeError> {
    let err = |source| AcmeError::Storage {
        path: dir.to_path_buf(),
        source,
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(err)?;
    // An existing directory keeps its mode on create: narrow it (keys live
    // here).
    use std::os::unix::fs::PermissionsExt;
    let was = fs::metadata(dir).map_err(err)?.permissions().mode() & 0o777;
    if was & 0o077 != 0 {
        log::warn!(
            "ACME storage {} had mode {was:o}; narrowed to 700 (it holds private keys)",
            dir.display()
        );
        fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE)).map_err(err)?;
    }
    let probe = dir.join(".greenlight-write-test");
    let _ = fs::remove_file(&probe);
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE_MODE)
        .open(&probe)
        .map_err(err)?;
    fs::remove_file(&probe).map_err(err)?;
    Ok(())
}

/// Creates the site's directory (0700) and returns its file paths.
pub(crate) fn prepare_site(storage: &Path, site: &str) -> Result<(PathBuf, PathBuf), AcmeError> {
    ensure_private_dir(storage)?;
    let dir = site_dir(storage, site)?;
    ensure_private_dir(&dir)?;
    site_paths(storage, site)
}

/// `write_atomic` with its error as [`AcmeError::Storage`].
pub(crate) fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), AcmeError> {
    write_atomic(path, bytes, mode).map_err(|e| match e {
        TlsError::Write { path, source } => AcmeError::Storage { path, source },
        other => AcmeError::Storage {
            path: path.to_path_buf(),
            source: io::Error::other(other.to_string()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn site_names_cannot_escape_the_storage() {
        let s = Path::new("/var/acme");
        assert_eq!(
            site_paths(s, "app").expect("plain").0,
            PathBuf::from("/var/acme/app/fullchain.pem")
        );
        for bad in ["", ".", "..", "a/b", "/abs", "../x", "a/"] {
            assert!(site_paths(s, bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn directories_and_files_get_their_modes() {
        let tmp = tempfile::tempdir().expect("tmp");
        let storage = tmp.path().join("certs/acme");
        let (chain, key) = prepare_site(&storage, "app").expect("prepared");
        assert_eq!(mode(&storage), 0o700);
        // A directory that exists with a wider mode is narrowed.
        fs::set_permissions(&storage, fs::Permissions::from_mode(0o755)).expect("widen");
        ensure_private_dir(&storage).expect("again");
        assert_eq!(mode(&storage), 0o700);
        assert_eq!(mode(&storage.join("app")), 0o700);
        write_file(&key, b"k", PRIVATE_MODE).expect("key");
        write_file(&chain, b"c", PUBLIC_MODE).expect("chain");
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(&chain), 0o644);
        assert!(!storage.join(".greenlight-write-test").exists());
    }

    #[test]
    fn an_unwritable_storage_is_a_storage_error() {
        let tmp = tempfile::tempdir().expect("tmp");
        let file = tmp.path().join("file");
        fs::write(&file, b"x").expect("write");
        let e = ensure_private_dir(&file.join("acme")).expect_err("not a directory");
        assert!(matches!(e, AcmeError::Storage { .. }), "{e}");
        assert!(e.to_string().contains("is not writable"), "{e}");
    }
}
