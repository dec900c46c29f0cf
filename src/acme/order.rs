//! Issuance: [`AcmeManager::obtain`] runs one ACME order for all of a site's
//! names and stores the result.
//!
//! Owns the order flow and `<storage>/<site>/`'s files; uses
//! `account.rs` for the account, `challenges.rs` to publish answers (removed
//! again when the order ends, whatever the outcome), `http.rs` to reach the
//! CA. Must not touch the proxy: the caller gets a `LoadedCert` and decides.
//!
//! Flow: names normalised ─▶ account (lazy, once) ─▶ new order ─▶ per pending
//! authorization: publish the answer, "ready" ─▶ poll until ready/invalid
//! (bounded exponential backoff under a deadline; `Retry-After` honoured) ─▶
//! on invalid: the CA's problem for the failed challenge ─▶ finalize with a
//! CSR for a fresh P-256 key ─▶ poll for the chain (same policy) ─▶ write
//! key (0600), chain (0644) and `issued.json` (the directory) atomically ─▶
//! load them back (the same checks as any certificate file). Orders run one
//! at a time per manager.
//!
//! Fleet mode uses three more doors, all on the same files: [`AcmeManager::
//! obtain_with`] also hands each answer to a [`ChallengeSink`] before the CA
//! is told it is ready; [`AcmeManager::save_issued`] stores a certificate
//! another member ordered (so a restart without etcd still has it);
//! [`AcmeManager::issued_pem`] reads the stored PEM back to share it.

use super::account::{adopt_account_json, load_or_create, stored_account_json, stored_account_url};
use super::challenges::{ChallengeAnswer, ChallengeGuard, ChallengeSink, Challenges, to_hex};
use super::error::{AcmeError, chain, classify, problem_text};
use super::http::AcmeHttp;
use super::schedule::fmt_utc;
use super::storage::{
    PRIVATE_MODE, PUBLIC_MODE, issued_path, prepare_site, site_paths, write_file,
};
use super::{AcmeConfig, ChallengeKind};
use crate::tls::{LoadedCert, TlsError, load_pem_bytes, load_pem_pair};
use instant_acme::{
    Account, AuthorizationStatus, Identifier, NewOrder, Order, OrderStatus, Problem, RetryPolicy,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long the CA may take to validate all challenges of an order.
const VALIDATION_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the CA may take to issue the certificate after finalization.
const ISSUANCE_TIMEOUT: Duration = Duration::from_secs(120);

const RATE_LIMITED: &str = "urn:ietf:params:acme:error:rateLimited";

/// Obtains certificates from one ACME CA with one account.
pub struct AcmeManager {
    config: AcmeConfig,
    challenges: Challenges,
    http: AcmeHttp,
    /// The account once loaded; the lock also runs orders one at a time.
    account: tokio::sync::Mutex<Option<Account>>,
    orders: AtomicU64,
}

impl AcmeManager {
    /// A manager for `config` publishing challenge answers in `challenges`
    /// (the same store the proxy reads). Nothing is sent to the CA yet; this
    /// fails only when the trust roots cannot be set up.
    pub fn new(config: AcmeConfig, challenges: Challenges) -> Result<AcmeManager, AcmeError> {
        let http = AcmeHttp::new(config.ca_root.as_deref())?;
        Ok(AcmeManager {
            config,
            challenges,
            http,
            account: tokio::sync::Mutex::new(None),
            orders: AtomicU64::new(0),
        })
    }

    /// The configuration this manager runs on.
    pub fn config(&self) -> &AcmeConfig {
        &self.config
    }

    /// The challenge store answers are published in.
    pub fn challenges(&self) -> &Challenges {
        &self.challenges
    }

    /// How many orders this manager has started (for tests and status).
    pub fn orders_started(&self) -> u64 {
        self.orders.load(Ordering::Relaxed)
    }

    /// The account URL, loading or creating the account if needed.
    pub async fn account_url(&self) -> Result<String, AcmeError> {
        let mut slot = self.account.lock().await;
        Ok(self.account_in(&mut slot).await?.id().to_string())
    }

    /// The account URL stored on disk, without contacting the CA.
    pub fn stored_account_url(&self) -> Option<String> {
        stored_account_url(&self.config.storage)
    }

    /// The site's stored certificate if it loads, is in date and was issued
    /// by the configured directory (no network). A missing one is `None`
    /// quietly; a broken one or one from another directory (e.g. staging
    /// before a switch to production) is logged.
    pub fn stored(&self, site: &str) -> Option<LoadedCert> {
        let (chain_path, key_path) = site_paths(&self.config.storage, site).ok()?;
        if let Some(directory) = self.issued_by(site)
            && directory != self.config.directory
        {
            log::info!(
                "ACME site '{site}': the stored certificate comes from {directory}, not {}; \
                 ordering a new one",
                self.config.directory
            );
            return None;
        }
        match load_pem_pair(&chain_path, &key_path) {
            Ok(cert) => Some(cert),
            Err(TlsError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                None
            }
            Err(e) => {
                log::warn!(
                    "ACME site '{site}': stored certificate not usable, ordering a new one: {}",
                    chain(&e)
                );
                None
            }
        }
    }

    /// Orders a certificate for all `names` of `site` with the configured
    /// challenge, stores it as `<storage>/<site>/fullchain.pem` + `privkey.pem`
    /// and returns it loaded. Every wait has a deadline.
    pub async fn obtain(&self, site: &str, names: &[String]) -> Result<LoadedCert, AcmeError> {
        self.obtain_with(site, names, None).await
    }

    /// [`AcmeManager::obtain`], also publishing every challenge answer in
    /// `sink` (and waiting for it) before the CA is told to validate.
    pub async fn obtain_with(
        &self,
        site: &str,
        names: &[String],
        sink: Option<&dyn ChallengeSink>,
    ) -> Result<LoadedCert, AcmeError> {
        let names = order_names(names)?;
        let joined = names.join(", ");
        prepare_site(&self.config.storage, site)?;
        let mut slot = self.account.lock().await;
        let account = self.account_in(&mut slot).await?;
        self.orders.fetch_add(1, Ordering::Relaxed);
        log::info!(
            "ACME site '{site}': ordering a certificate for {joined} from {} ({})",
            self.config.directory,
            self.config.challenge
        );
        let (chain_pem, key_pem) = self.run_order(&account, &names, &joined, sink).await?;
        let cert = self.write_issued(site, &names, &chain_pem, &key_pem)?;
        log::info!(
            "ACME site '{site}': obtained a certificate for {joined}, serial {}, issued by {}, \
             valid until {}",
            cert.info.serial,
            cert.info.issuer,
            fmt_utc(cert.info.not_after)
        );
        Ok(cert)
    }

    /// Stores a certificate for `site` that was ordered elsewhere (another
    /// member) from this manager's directory, exactly as an own order would,
    /// and returns it loaded. Checked before anything is written: a chain
    /// and key that do not load leave the stored files as they were.
    pub fn save_issued(
        &self,
        site: &str,
        names: &[String],
        chain_pem: &str,
        key_pem: &str,
    ) -> Result<LoadedCert, AcmeError> {
        let names = order_names(names)?;
        let (chain_path, key_path) = site_paths(&self.config.storage, site)?;
        load_pem_bytes(
            chain_pem.as_bytes(),
            &chain_path,
            key_pem.as_bytes(),
            &key_path,
            std::time::SystemTime::now(),
        )
        .map_err(|source| AcmeError::Certificate {
            site: site.to_string(),
            source,
        })?;
        prepare_site(&self.config.storage, site)?;
        self.write_issued(site, &names, chain_pem, key_pem)
    }

    /// The stored chain and key PEM of `site` when they come from this
    /// manager's directory (or are unrecorded), for sharing with the fleet.
    pub fn issued_pem(&self, site: &str) -> Option<(String, String)> {
        if self
            .issued_by(site)
            .is_some_and(|d| d != self.config.directory)
        {
            return None;
        }
        let (chain_path, key_path) = site_paths(&self.config.storage, site).ok()?;
        let chain = std::fs::read_to_string(chain_path).ok()?;
        let key = std::fs::read_to_string(key_path).ok()?;
        Some((chain, key))
    }

    /// The stored account file's bytes when it belongs to the configured
    /// directory (fleet mode shares it), without contacting the CA.
    pub fn account_json(&self) -> Option<Vec<u8>> {
        stored_account_json(&self.config)
    }

    /// Makes `json` (another member's `account.json`) this manager's account
    /// from its next order on; true if it changed anything. Refused (with the
    /// reason) when it does not parse or belongs to another directory.
    pub async fn adopt_account(&self, json: &[u8]) -> Result<bool, AcmeError> {
        let mut slot = self.account.lock().await;
        let changed = adopt_account_json(&self.config, json)?;
        if changed {
            // Loaded again from the new file by the next order.
            *slot = None;
        }
        Ok(changed)
    }

    /// Writes key (0600), chain and `issued.json`, then loads them back.
    fn write_issued(
        &self,
        site: &str,
        names: &[String],
        chain_pem: &str,
        key_pem: &str,
    ) -> Result<LoadedCert, AcmeError> {
        let (chain_path, key_path) = site_paths(&self.config.storage, site)?;
        write_file(&key_path, key_pem.as_bytes(), PRIVATE_MODE)?;
        write_file(&chain_path, chain_pem.as_bytes(), PUBLIC_MODE)?;
        let issued = serde_json::json!({ "directory": self.config.directory, "names": names });
        write_file(
            &issued_path(&self.config.storage, site)?,
            issued.to_string().as_bytes(),
            PUBLIC_MODE,
        )?;
        load_pem_pair(&chain_path, &key_path).map_err(|source| AcmeError::Certificate {
            site: site.to_string(),
            source,
        })
    }

    /// The directory recorded as the issuer of the site's certificate (`None`
    /// when unrecorded, e.g. files put there by hand: those are trusted).
    fn issued_by(&self, site: &str) -> Option<String> {
        let bytes = std::fs::read(issued_path(&self.config.storage, site).ok()?).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        v.get("directory")?.as_str().map(str::to_string)
    }

    async fn account_in(&self, slot: &mut Option<Account>) -> Result<Account, AcmeError> {
        if let Some(a) = slot {
            return Ok(a.clone());
        }
        let account = load_or_create(&self.config, &self.http).await?;
        *slot = Some(account.clone());
        Ok(account)
    }

    /// One order, from creation to the PEM chain; returns (chain, key) PEM.
    async fn run_order(
        &self,
        account: &Account,
        names: &[String],
        joined: &str,
        sink: Option<&dyn ChallengeSink>,
    ) -> Result<(String, String), AcmeError> {
        let retry = self.http.retry_after();
        let order_err = |stage: &'static str| {
            move |source| AcmeError::Order {
                names: joined.to_string(),
                stage,
                source,
            }
        };
        let ids: Vec<Identifier> = names.iter().map(|n| Identifier::Dns(n.clone())).collect();
        let mut order = account
            .new_order(&NewOrder::new(&ids))
            .await
            .map_err(|e| classify(e, retry, order_err("creating the order")))?;

        // Answers stay published until this function returns.
        let _guards = self.publish_answers(&mut order, joined, sink).await?;

        let polling = |timeout| {
            RetryPolicy::new()
                .initial_delay(Duration::from_millis(250))
                .backoff(1.5)
                .timeout(timeout)
        };
        match order.poll_ready(&polling(VALIDATION_TIMEOUT)).await {
            Ok(OrderStatus::Ready) => {}
            Ok(_) => return Err(self.validation_failure(&mut order, None, joined).await),
            Err(instant_acme::Error::Api(p)) if p.r#type.as_deref() != Some(RATE_LIMITED) => {
                return Err(self.validation_failure(&mut order, Some(p), joined).await);
            }
            Err(instant_acme::Error::Timeout(_)) => {
                return Err(AcmeError::Timeout {
                    what: "validate the challenges",
                    after: VALIDATION_TIMEOUT,
                });
            }
            Err(e) => return Err(classify(e, retry, order_err("waiting for validation"))),
        }

        let fin_err = |stage: &'static str| {
            move |source| AcmeError::Finalize {
                names: joined.to_string(),
                stage,
                source,
            }
        };
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| fin_err("generating the key")(Box::new(e)))?;
        let mut params = rcgen::CertificateParams::new(names.to_vec())
            .map_err(|e| AcmeError::Invalid(format!("names {joined}: {e}")))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        let csr = params
            .serialize_request(&key)
            .map_err(|e| fin_err("building the CSR")(Box::new(e)))?;
        order
            .finalize_csr(csr.der())
            .await
            .map_err(|e| classify(e, retry, fin_err("finalizing the order")))?;
        let chain_pem = order
            .poll_certificate(&polling(ISSUANCE_TIMEOUT))
            .await
            .map_err(|e| match e {
                instant_acme::Error::Timeout(_) => AcmeError::Timeout {
                    what: "issue the certificate",
                    after: ISSUANCE_TIMEOUT,
                },
                e => classify(e, retry, fin_err("downloading the certificate")),
            })?;
        Ok((chain_pem, key.serialize_pem()))
    }

    /// Publishes an answer for every pending authorization and tells the CA.
    async fn publish_answers(
        &self,
        order: &mut Order,
        joined: &str,
        sink: Option<&dyn ChallengeSink>,
    ) -> Result<Vec<ChallengeGuard>, AcmeError> {
        let retry = self.http.retry_after();
        let kind = self.config.challenge;
        let mut guards = Vec::new();
        let mut authorizations = order.authorizations();
        while let Some(result) = authorizations.next().await {
            let mut authz = result.map_err(|e| {
                classify(e, retry, |source| AcmeError::Order {
                    names: joined.to_string(),
                    stage: "fetching an authorization",
                    source,
                })
            })?;
            let identifier = authz.identifier().to_string();
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => {
                    return Err(AcmeError::ChallengeSetup {
                        identifier,
                        detail: format!("the CA reports the authorization as {other:?}"),
                    });
                }
            }
            let Some(mut challenge) = authz.challenge(kind.acme_type()) else {
                return Err(AcmeError::ChallengeSetup {
                    identifier,
                    detail: format!("the CA offers no {kind} challenge"),
                });
            };
            let key_auth = challenge.key_authorization();
            let answer = match kind {
                ChallengeKind::Http01 => ChallengeAnswer::Http01 {
                    host: identifier.clone(),
                    token: challenge.token.clone(),
                    key_authorization: key_auth.as_str().to_string(),
                },
                ChallengeKind::TlsAlpn01 => ChallengeAnswer::TlsAlpn01 {
                    host: identifier.clone(),
                    digest: to_hex(key_auth.digest().as_ref()),
                },
            };
            guards.push(self.challenges.add(&answer)?);
            if let Some(sink) = sink {
                sink.publish(&answer).await?;
            }
            challenge.set_ready().await.map_err(|e| {
                classify(e, retry, |source| AcmeError::Order {
                    names: joined.to_string(),
                    stage: "telling the CA the challenge is ready",
                    source,
                })
            })?;
        }
        Ok(guards)
    }

    /// The most precise reason for an invalid order: the failed challenge's
    /// problem if the CA reports one, else the order's own problem.
    async fn validation_failure(
        &self,
        order: &mut Order,
        order_problem: Option<Problem>,
        joined: &str,
    ) -> AcmeError {
        let kind = self.config.challenge;
        let mut authorizations = order.authorizations();
        while let Some(result) = authorizations.next().await {
            let Ok(mut authz) = result else { continue };
            if authz.refresh().await.is_err() {
                continue;
            }
            let identifier = authz.identifier().to_string();
            let failed = authz
                .challenges
                .iter()
                .filter(|c| c.r#type == kind.acme_type())
                .find_map(|c| c.error.as_ref());
            if let Some(p) = failed {
                return AcmeError::Challenge {
                    identifier,
                    kind,
                    detail: problem_text(p),
                };
            }
        }
        AcmeError::Order {
            names: joined.to_string(),
            stage: "validation",
            source: match order_problem {
                Some(p) => Box::new(instant_acme::Error::Api(p)),
                None => "the CA marked the order invalid without a reason".into(),
            },
        }
    }
}

/// Lowercased, trailing dots removed, duplicates dropped (first wins);
/// errors for no names, empty names and wildcards (which need dns-01).
fn order_names(names: &[String]) -> Result<Vec<String>, AcmeError> {
    let mut out: Vec<String> = Vec::new();
    for n in names {
        let n = n.trim().trim_end_matches('.').to_ascii_lowercase();
        if n.is_empty() {
            return Err(AcmeError::Invalid("an empty host name".into()));
        }
        if n.contains('*') {
            return Err(AcmeError::Invalid(format!(
                "{n}: wildcard names need the dns-01 challenge, which greenlight does not answer"
            )));
        }
        if !out.contains(&n) {
            out.push(n);
        }
    }
    if out.is_empty() {
        return Err(AcmeError::Invalid(
            "no host names to order a certificate for".into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn order_names_are_normalised_and_checked() {
        assert_eq!(
            order_names(&s(&["A.test.", "a.test", "b.test"])).expect("ok"),
            s(&["a.test", "b.test"])
        );
        assert!(order_names(&[]).is_err());
        assert!(order_names(&s(&[" "])).is_err());
        let e = order_names(&s(&["*.a.test"])).expect_err("wildcard");
        assert!(e.to_string().contains("dns-01"), "{e}");
    }
}
