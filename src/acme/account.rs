//! The ACME account: created once, stored, reused across restarts.
//!
//! Owns `<storage>/account.json` (mode 0600, written through a tmp file,
//! fsync and rename): the directory URL the account lives on, the contact
//! e-mail, the account URL and instant-acme's credentials (the account's
//! private key). Must not touch anything else in the storage.
//!
//! Data flow: `AcmeManager` calls [`load_or_create`] on its first order. A
//! stored account for the configured directory is restored (no request
//! creates a new one; Let's Encrypt limits account creation); a changed
//! e-mail is sent to the CA and stored; a missing file — or one for another
//! directory, e.g. after moving from staging to production — leads to a new
//! account, saved before it is used.

use super::AcmeConfig;
use super::error::{AcmeError, classify};
use super::http::AcmeHttp;
use super::storage::{PRIVATE_MODE, account_path, ensure_private_dir, write_file};
use instant_acme::{Account, AccountCredentials, NewAccount};
use serde::{Deserialize, Serialize};
use std::io;
use std::path::Path;

/// The JSON stored in `account.json`.
#[derive(Serialize, Deserialize)]
struct StoredAccount {
    /// Directory URL the account was created on.
    directory: String,
    /// Contact e-mail last registered with the CA.
    email: String,
    /// The account URL (the CA's name for the account).
    account_url: String,
    /// instant-acme's `AccountCredentials` (key, id, directory).
    credentials: serde_json::Value,
}

/// Restores the stored account, or creates and stores a new one.
pub(crate) async fn load_or_create(
    config: &AcmeConfig,
    http: &AcmeHttp,
) -> Result<Account, AcmeError> {
    ensure_private_dir(&config.storage)?;
    let path = account_path(&config.storage);
    let file_err = |source: Box<dyn std::error::Error + Send + Sync>| AcmeError::AccountFile {
        path: path.clone(),
        source,
    };
    let stored = match std::fs::read(&path) {
        Ok(bytes) => Some(
            serde_json::from_slice::<StoredAccount>(&bytes).map_err(|e| file_err(Box::new(e)))?,
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(file_err(Box::new(e))),
    };
    match stored {
        Some(s) if s.directory == config.directory => restore(config, http, &path, s).await,
        Some(s) => {
            log::warn!(
                "ACME account in {} belongs to {}, not {}: creating a new account",
                path.display(),
                s.directory,
                config.directory
            );
            create(config, http, &path).await
        }
        None => create(config, http, &path).await,
    }
}

async fn restore(
    config: &AcmeConfig,
    http: &AcmeHttp,
    path: &Path,
    mut stored: StoredAccount,
) -> Result<Account, AcmeError> {
    let credentials: AccountCredentials = serde_json::from_value(stored.credentials.clone())
        .map_err(|e| AcmeError::AccountFile {
            path: path.to_path_buf(),
            source: Box::new(e),
        })?;
    let account = Account::builder_with_http(Box::new(http.clone()))
        .from_credentials(credentials)
        .await
        .map_err(|e| {
            classify(e, http.retry_after(), |source| AcmeError::Account {
                directory: config.directory.clone(),
                stage: "loading the stored account",
                source,
            })
        })?;
    log::debug!(
        "using ACME account {} from {}",
        account.id(),
        path.display()
    );
    if stored.email != config.email {
        let contact = contact(&config.email);
        let refs: Vec<&str> = contact.iter().map(String::as_str).collect();
        account.update_contacts(&refs).await.map_err(|e| {
            classify(e, http.retry_after(), |source| AcmeError::Account {
                directory: config.directory.clone(),
                stage: "updating the contact e-mail",
                source,
            })
        })?;
        stored.email = config.email.clone();
        save(path, &stored)?;
        log::info!(
            "ACME account {}: contact changed to '{}'",
            account.id(),
            config.email
        );
    }
    Ok(account)
}

async fn create(config: &AcmeConfig, http: &AcmeHttp, path: &Path) -> Result<Account, AcmeError> {
    let contact = contact(&config.email);
    let refs: Vec<&str> = contact.iter().map(String::as_str).collect();
    let (account, credentials) = Account::builder_with_http(Box::new(http.clone()))
        .create(
            &NewAccount {
                contact: &refs,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            config.directory.clone(),
            None,
        )
        .await
        .map_err(|e| {
            classify(e, http.retry_after(), |source| AcmeError::Account {
                directory: config.directory.clone(),
                stage: "creating the account",
                source,
            })
        })?;
    let stored = StoredAccount {
        directory: config.directory.clone(),
        email: config.email.clone(),
        account_url: account.id().to_string(),
        credentials: serde_json::to_value(&credentials).map_err(|e| AcmeError::AccountFile {
            path: path.to_path_buf(),
            source: Box::new(e),
        })?,
    };
    save(path, &stored)?;
    log::info!(
        "created ACME account {} on {} (stored in {})",
        account.id(),
        config.directory,
        path.display()
    );
    Ok(account)
}

fn save(path: &Path, stored: &StoredAccount) -> Result<(), AcmeError> {
    let json = serde_json::to_vec_pretty(stored).map_err(|e| AcmeError::AccountFile {
        path: path.to_path_buf(),
        source: Box::new(e),
    })?;
    write_file(path, &json, PRIVATE_MODE)
}

fn contact(email: &str) -> Vec<String> {
    let email = email.trim();
    if email.is_empty() {
        Vec::new()
    } else {
        vec![format!("mailto:{email}")]
    }
}

/// The bytes of `<storage>/account.json` when it parses and belongs to the
/// configured directory (fleet mode shares them through etcd).
pub(crate) fn stored_account_json(config: &AcmeConfig) -> Option<Vec<u8>> {
    let bytes = std::fs::read(account_path(&config.storage)).ok()?;
    let stored: StoredAccount = serde_json::from_slice(&bytes).ok()?;
    (stored.directory == config.directory).then_some(bytes)
}

/// Writes `json` (an account file from another member) as
/// `<storage>/account.json` (0600) unless the file already says the same;
/// true if written. Refused when it does not parse as an account or belongs
/// to another directory: the file stays as it was.
pub(crate) fn adopt_account_json(config: &AcmeConfig, json: &[u8]) -> Result<bool, AcmeError> {
    let path = account_path(&config.storage);
    let theirs: StoredAccount =
        serde_json::from_slice(json).map_err(|e| AcmeError::AccountFile {
            path: path.clone(),
            source: format!("the fleet's account does not parse: {e}").into(),
        })?;
    if theirs.directory != config.directory {
        return Err(AcmeError::AccountFile {
            path,
            source: format!(
                "the fleet's account belongs to {}, not {}",
                theirs.directory, config.directory
            )
            .into(),
        });
    }
    let ours = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<StoredAccount>(&b).ok());
    if ours.is_some_and(|o| o.account_url == theirs.account_url && o.email == theirs.email) {
        return Ok(false);
    }
    ensure_private_dir(&config.storage)?;
    write_file(&path, json, PRIVATE_MODE)?;
    log::info!(
        "ACME: using the fleet's account {} (stored in {})",
        theirs.account_url,
        path.display()
    );
    Ok(true)
}

/// The account URL recorded in `<storage>/account.json`, if any.
pub(crate) fn stored_account_url(storage: &Path) -> Option<String> {
    let bytes = std::fs::read(account_path(storage)).ok()?;
    serde_json::from_slice::<StoredAccount>(&bytes)
        .ok()
        .map(|s| s.account_url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_are_mailto_uris_or_none() {
        assert_eq!(contact(" ops@example.com "), vec!["mailto:ops@example.com"]);
        assert!(contact("").is_empty());
    }

    #[test]
    fn an_account_from_the_fleet_is_adopted_only_for_the_same_directory() {
        let tmp = tempfile::tempdir().expect("tmp");
        let config = AcmeConfig {
            email: String::new(),
            directory: "https://ca.test/dir".into(),
            ca_root: None,
            storage: tmp.path().join("acme"),
            challenge: super::super::ChallengeKind::Http01,
        };
        let account = |dir: &str, url: &str| {
            serde_json::to_vec(&StoredAccount {
                directory: dir.into(),
                email: String::new(),
                account_url: url.into(),
                credentials: serde_json::json!({}),
            })
            .expect("json")
        };
        assert_eq!(stored_account_json(&config), None);
        let mine = account("https://ca.test/dir", "https://ca.test/acct/1");
        assert!(adopt_account_json(&config, &mine).expect("adopted"));
        assert!(
            !adopt_account_json(&config, &mine).expect("same"),
            "unchanged"
        );
        assert_eq!(stored_account_json(&config), Some(mine.clone()));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(account_path(&config.storage))
            .expect("file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let other = account("https://staging.test/dir", "https://staging.test/acct/9");
        let e = adopt_account_json(&config, &other).expect_err("other directory");
        assert!(e.to_string().contains("cannot be used"), "{e}");
        assert!(adopt_account_json(&config, b"{").is_err(), "not json");
        assert_eq!(stored_account_json(&config), Some(mine), "kept");
    }

    #[tokio::test]
    async fn a_corrupt_account_file_is_reported_not_replaced() {
        let tmp = tempfile::tempdir().expect("tmp");
        let config = AcmeConfig {
            email: String::new(),
            directory: "https://127.0.0.1:1/dir".into(),
            ca_root: None,
            storage: tmp.path().to_path_buf(),
            challenge: super::super::ChallengeKind::Http01,
        };
        std::fs::write(account_path(tmp.path()), b"{not json").expect("write");
        let http = AcmeHttp::new(None).expect("client");
        let e = load_or_create(&config, &http).await.err().expect("refused");
        assert!(matches!(e, AcmeError::AccountFile { .. }), "{e}");
        assert_eq!(
            std::fs::read(account_path(tmp.path())).expect("kept"),
            b"{not json"
        );
    }
}
