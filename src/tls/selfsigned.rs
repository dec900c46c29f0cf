//! Development certificates: `tls: self_signed` generates a certificate for a
//! site's host names into `<certs_dir>/self-signed/<site>/` at start, and
//! reuses it on later starts while it is valid for at least a week and still
//! names the same hosts. The key is written 0600 in a 0700 directory, through
//! a temporary file and a rename, so a crash never leaves half a key.

use super::{LoadedCert, TlsError, load_pem_pair};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const MIN_LEFT: Duration = Duration::from_secs(7 * 24 * 3600);

/// Loads the site's self-signed certificate, generating it when missing,
/// close to expiry, or issued for other names.
pub fn ensure_self_signed(
    certs_dir: &Path,
    site: &str,
    names: &[String],
) -> Result<LoadedCert, TlsError> {
    let dir = certs_dir.join("self-signed").join(site);
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if let Ok(existing) = load_pem_pair(&cert_path, &key_path) {
        let mut want: Vec<String> = names.to_vec();
        let mut have = existing.info.dns_names.clone();
        want.sort();
        have.sort();
        let fresh = existing
            .info
            .not_after
            .duration_since(SystemTime::now())
            .is_ok_and(|left| left > MIN_LEFT);
        if fresh && want == have {
            return Ok(existing);
        }
    }
    let key = rcgen::KeyPair::generate().map_err(|e| TlsError::Generate(e.to_string()))?;
    let mut params = rcgen::CertificateParams::new(names.to_vec())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("greenlight self-signed ({site})"),
    );
    let now = SystemTime::now();
    params.not_before = (now - Duration::from_secs(3600)).into();
    params.not_after = (now + Duration::from_secs(365 * 24 * 3600)).into();
    let cert = params
        .self_signed(&key)
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|source| TlsError::Write {
            path: dir.clone(),
            source,
        })?;
    write_atomic(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_atomic(&cert_path, cert.pem().as_bytes(), 0o644)?;
    log::info!(
        "generated a self-signed certificate for site '{site}' ({}) in {}",
        names.join(", "),
        dir.display()
    );
    load_pem_pair(&cert_path, &key_path)
}

/// Writes `bytes` to `path` through `path.tmp` + fsync + rename, with `mode`
/// set at creation (so the umask cannot widen a key's permissions).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    let tmp: PathBuf = path.with_extension("tmp");
    let err = |source| TlsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(err)?;
    // The umask only narrows, but an explicit chmod documents intent and
    // covers filesystems that ignore the create mode.
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    fs::rename(&tmp, path).map_err(err)?;
    // The rename itself survives a crash only once the directory is synced.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generates_once_then_reuses_with_a_private_key_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let names = vec!["localhost".to_string()];
        let a = ensure_self_signed(dir.path(), "local", &names).expect("generated");
        let b = ensure_self_signed(dir.path(), "local", &names).expect("reused");
        assert_eq!(
            a.info.serial, b.info.serial,
            "a valid certificate is reused"
        );
        let key = dir.path().join("self-signed/local/key.pem");
        let mode = fs::metadata(&key).expect("key").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let c = ensure_self_signed(dir.path(), "local", &["other.test".to_string()]).expect("new");
        assert_ne!(a.info.serial, c.info.serial, "new names -> new certificate");
    }
}
