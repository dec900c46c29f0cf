//! Fleet ACME, the watching side: every member serves the answers and
//! installs the certificates stored under `<prefix>/acme/`.
//!
//! Owns the translation of `<prefix>/acme/` keys into this member's state:
//! `certs/<site>` → checked (directory, names, loads), written to the local
//! storage, handed to the site's ACME task (which installs it: the same
//! install callback and hot swap as an own order); `challenges/…` → an
//! answer added to the proxy's `Challenges` store while the key exists.
//! Touches no other key, except publishing this member's certificate when
//! it is newer than the fleet's (see [`FleetAcme::start_watch`]).
//!
//! Runs inside the member's etcd session (`service.rs`): at every (re)connect
//! [`FleetAcme::start_watch`] converges on what etcd holds, then the session
//! feeds each watch message to [`FleetAcme::on_watch`]. After applying
//! answers the member records the revision in its status key
//! (`acme_challenges`), which the orderer waits for before it lets the CA
//! validate.

use super::acme::{FleetAcme, StoredCert, unix_secs};
use super::timed;
use crate::acme::{ChallengeAnswer, name_set};
use etcd_client::{
    Client, Compare, CompareOp, EventType, GetOptions, KeyValue, Txn, TxnOp, WatchOptions,
    WatchResponse, WatchStream,
};
use std::collections::{HashMap, HashSet};

/// What a key under `<prefix>/acme/` is.
enum AcmeKey<'a> {
    Cert(&'a str),
    Answer,
    Other,
}

impl FleetAcme {
    fn classify<'k>(&self, key: &'k str) -> AcmeKey<'k> {
        let prefix = self.cluster.acme_prefix();
        let Some(rest) = key.strip_prefix(prefix.as_str()) else {
            return AcmeKey::Other;
        };
        if let Some(site) = rest.strip_prefix("certs/") {
            AcmeKey::Cert(site)
        } else if rest.starts_with("challenges/") {
            AcmeKey::Answer
        } else {
            AcmeKey::Other
        }
    }

    /// Converges on everything under `<prefix>/acme/` (certificates,
    /// exactly the answers present), publishes this member's certificates
    /// that are newer than the fleet's (an order whose result could not be
    /// stored, a member moved into fleet mode with its certificate), and
    /// watches from there.
    pub(crate) async fn start_watch(&self, client: &mut Client) -> Result<WatchStream, String> {
        let prefix = self.cluster.acme_prefix();
        let got = timed(
            "read the fleet's ACME keys",
            client.get(prefix.clone(), Some(GetOptions::new().with_prefix())),
        )
        .await?;
        let revision = got.header().map_or(0, |h| h.revision());
        let mut present = HashSet::new();
        // site → (expiry, mod revision) of the fleet's certificate.
        let mut fleet_certs = HashMap::new();
        for kv in got.kvs() {
            let Ok(key) = kv.key_str() else { continue };
            match self.classify(key) {
                AcmeKey::Cert(site) => {
                    let not_after = self.on_cert(site, kv.value());
                    fleet_certs.insert(site.to_string(), (not_after, kv.mod_revision()));
                }
                AcmeKey::Answer => {
                    present.insert(key.to_string());
                    self.on_answer(kv);
                }
                AcmeKey::Other => {}
            }
        }
        // Answers withdrawn while this member was not looking.
        super::lock(&self.answers).retain(|k, _| present.contains(k));
        self.cluster.mark_acme_challenges(revision);
        self.publish_newer(client, &fleet_certs).await;
        timed(
            "watch the fleet's ACME keys",
            client.watch(
                prefix,
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(revision + 1),
                ),
            ),
        )
        .await
    }

    /// Applies one watch message.
    pub(crate) fn on_watch(&self, msg: &WatchResponse) {
        let mut answers_at = None;
        for ev in msg.events() {
            let Some(kv) = ev.kv() else { continue };
            let Ok(key) = kv.key_str() else { continue };
            match (self.classify(key), ev.event_type()) {
                (AcmeKey::Cert(site), EventType::Put) => {
                    self.on_cert(site, kv.value());
                }
                (AcmeKey::Cert(site), EventType::Delete) => {
                    if self.sites.contains_key(site) {
                        log::info!(
                            "ACME site '{site}': the fleet's certificate was deleted from etcd; \
                             serving the current one until its renewal"
                        );
                    }
                }
                (AcmeKey::Answer, EventType::Put) => {
                    self.on_answer(kv);
                    answers_at = Some(kv.mod_revision());
                }
                (AcmeKey::Answer, EventType::Delete) => {
                    super::lock(&self.answers).remove(key);
                    answers_at = Some(kv.mod_revision());
                }
                (AcmeKey::Other, _) => {}
            }
        }
        if let Some(revision) = answers_at {
            self.cluster.mark_acme_challenges(revision);
        }
    }

    /// A stored certificate for `site`: installed (via the site's task) and
    /// kept locally when it fits and is not older than the local one.
    /// Returns its expiry in seconds (0 when it does not parse).
    fn on_cert(&self, site: &str, value: &[u8]) -> u64 {
        let stored: StoredCert = match serde_json::from_slice(value) {
            Ok(s) => s,
            Err(e) => {
                log::warn!("ACME site '{site}': ignoring the fleet's certificate: {e}");
                return 0;
            }
        };
        if !self.sites.contains_key(site) {
            return stored.not_after;
        }
        let cert = match self.check(site, &stored) {
            Ok(c) => c,
            Err(why) => {
                log::warn!("ACME site '{site}': ignoring the fleet's certificate: {why}");
                return stored.not_after;
            }
        };
        if let Some(local) = self.manager.stored(site)
            && local.info.not_after > cert.info.not_after
        {
            // This member has a newer one (published by `publish_newer`).
            return stored.not_after;
        }
        self.keep_locally(site, &stored);
        self.announce(site, cert);
        stored.not_after
    }

    /// Serves the answer in `kv` while the key exists.
    fn on_answer(&self, kv: &KeyValue) {
        let Ok(key) = kv.key_str() else { return };
        let answer: ChallengeAnswer = match serde_json::from_slice(kv.value()) {
            Ok(a) => a,
            Err(e) => {
                log::warn!("ACME: ignoring the challenge answer at {key}: {e}");
                return;
            }
        };
        let mut answers = super::lock(&self.answers);
        // The old guard first: dropping it after adding would remove the
        // new entry for the same host and token.
        answers.remove(key);
        match self.challenges.add(&answer) {
            Ok(guard) => {
                log::info!(
                    "ACME: serving the fleet's {} answer for {}",
                    match answer {
                        ChallengeAnswer::Http01 { .. } => "http-01",
                        ChallengeAnswer::TlsAlpn01 { .. } => "tls-alpn-01",
                    },
                    answer.host()
                );
                answers.insert(key.to_string(), guard);
            }
            Err(e) => log::warn!(
                "ACME: cannot serve the challenge answer at {key}: {}",
                crate::acme::chain(&e)
            ),
        }
    }

    /// Puts this member's certificate for each site where it is newer than
    /// the fleet's (or the fleet has none), compared against the revision
    /// read so a concurrent store wins.
    async fn publish_newer(&self, client: &mut Client, fleet: &HashMap<String, (u64, i64)>) {
        for (site, names) in &self.sites {
            let Some(local) = self.manager.stored(site) else {
                continue;
            };
            if name_set(&local.info.dns_names) != name_set(names) {
                continue;
            }
            let (theirs, revision) = fleet.get(site).copied().unwrap_or((0, 0));
            if unix_secs(local.info.not_after) <= theirs {
                continue;
            }
            let Some((chain, key)) = self.manager.issued_pem(site) else {
                continue;
            };
            let stored = self.stored_cert(site, &local, chain, key);
            let k = self.cert_key(site);
            let txn = Txn::new()
                .when([Compare::mod_revision(k.clone(), CompareOp::Equal, revision)])
                .and_then([TxnOp::put(
                    k,
                    serde_json::to_string(&stored).unwrap_or_default(),
                    None,
                )]);
            match timed("publish this member's certificate", client.txn(txn)).await {
                Ok(r) if r.succeeded() => log::info!(
                    "ACME site '{site}': published this member's certificate (serial {}) for the \
                     fleet: {}",
                    local.info.serial,
                    if revision == 0 {
                        "the fleet had none"
                    } else {
                        "newer than the fleet's"
                    }
                ),
                Ok(_) => log::info!(
                    "ACME site '{site}': another member stored a certificate meanwhile; not \
                     publishing this member's"
                ),
                Err(e) => {
                    log::warn!("ACME site '{site}': cannot publish this member's certificate: {e}")
                }
            }
        }
    }
}
