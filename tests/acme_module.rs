//! `crate::acme` end to end against a real ACME CA (Pebble, see
//! `support::pebble`): issuance over http-01 and tls-alpn-01 with tiny
//! challenge responders written here, account reuse, the errors an operator
//! sees (CA down, CA not trusted, challenge failed), file modes under
//! `umask 000`, and the background service installing a stored certificate
//! without ordering. Every wait is bounded; each test takes a few seconds.
//!
//! Owns its temporary directories, its loopback responders and (through
//! `Pebble`) the CA processes; touches nothing else. Data flow per test:
//! responder bound on a free port ─▶ Pebble told to validate on that port ─▶
//! `AcmeManager` with the responder's `Challenges` ─▶ assertions on the
//! result, the files and Pebble's log.

use crate::support::pebble::{Pebble, PebbleOptions};
use greenlight::acme::{
    AcmeConfig, AcmeError, AcmeManager, AcmeService, AcmeSite, AlpnOutcome, ChallengeKind,
    Challenges, InstallFn, account_path, answer_tls_alpn01, chain, site_paths,
};
use greenlight::tls::LoadedCert;
use pingora::services::background::BackgroundService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Upper bound for one ACME operation against Pebble.
const ACME_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for one responder read/write.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

fn config(pebble: &Pebble, storage: &Path, challenge: ChallengeKind) -> AcmeConfig {
    AcmeConfig {
        email: "ops@example.test".into(),
        directory: pebble.directory_url(),
        ca_root: Some(pebble.ca_pem_path()),
        storage: storage.to_path_buf(),
        challenge,
    }
}

/// What the http-01 responder answers.
#[derive(Clone, Copy)]
enum Answer {
    /// The key authorization from the store (404 when there is none).
    FromStore,
    /// Always a wrong key authorization.
    Wrong,
}

/// A plain HTTP/1.1 server on a fresh port answering
/// `/.well-known/acme-challenge/<token>` from `challenges`; returns its port.
async fn http01_responder(challenges: Challenges, answer: Answer) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    serve_http01(listener, challenges, answer);
    port
}

/// Serves http-01 answers on `listener` in the background.
fn serve_http01(listener: TcpListener, challenges: Challenges, answer: Answer) {
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let challenges = challenges.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(IO_TIMEOUT, async {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                        let n = sock.read(&mut buf).await?;
                        if n == 0 {
                            return Ok::<_, std::io::Error>(());
                        }
                        head.extend_from_slice(&buf[..n]);
                    }
                    let head = String::from_utf8_lossy(&head);
                    let path = head.split_whitespace().nth(1).unwrap_or("/");
                    let host = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("host").then(|| v.trim().to_string())
                        })
                        .unwrap_or_default();
                    let body = match answer {
                        Answer::FromStore => challenges.http01_path(&host, path),
                        Answer::Wrong => Some("wrong-key-authorization".to_string()),
                    };
                    let rsp = match body {
                        Some(b) => format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
                             Connection: close\r\n\r\n{b}",
                            b.len()
                        ),
                        None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\
                                 Connection: close\r\n\r\n"
                            .to_string(),
                    };
                    sock.write_all(rsp.as_bytes()).await?;
                    sock.shutdown().await
                })
                .await;
            });
        }
    });
}

/// A TLS port answering `acme-tls/1` handshakes with the challenge
/// certificate (greenlight's own pre-TLS helper); returns its port.
async fn tls_alpn01_responder(challenges: Challenges) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let challenges = challenges.clone();
            tokio::spawn(async move {
                let outcome =
                    tokio::time::timeout(IO_TIMEOUT, answer_tls_alpn01(&mut sock, &challenges))
                        .await;
                if let Ok(Ok(AlpnOutcome::NotAcme(_))) = outcome {
                    eprintln!("tls responder: a handshake that was not acme-tls/1");
                }
            });
        }
    });
    port
}

/// An unused loopback port (nothing listens there).
fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

async fn obtain(m: &AcmeManager, site: &str, n: &[String]) -> Result<LoadedCert, AcmeError> {
    tokio::time::timeout(ACME_TIMEOUT, m.obtain(site, n))
        .await
        .expect("obtain finished in time")
}

/// Checks that `cert` chains to Pebble's issued root for every name.
fn assert_chains_to(cert: &LoadedCert, root_pem: &str, want: &[String]) {
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        roots.add(der.expect("root pem")).expect("root");
    }
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .expect("verifier");
    let chain = &cert.key.cert;
    assert!(chain.len() >= 2, "leaf and intermediate: {}", chain.len());
    for name in want {
        let server = ServerName::try_from(name.clone()).expect("name");
        rustls::client::danger::ServerCertVerifier::verify_server_cert(
            verifier.as_ref(),
            &chain[0],
            &chain[1..],
            &server,
            &[],
            UnixTime::now(),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let mut got = cert.info.dns_names.clone();
    got.sort();
    let mut want = want.to_vec();
    want.sort();
    assert_eq!(got, want, "SANs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_issues_a_chain_that_verifies_against_pebbles_root() {
    let challenges = Challenges::new();
    let http_port = http01_responder(challenges.clone(), Answer::FromStore).await;
    let pebble = Pebble::start(PebbleOptions {
        http_port,
        tls_port: dead_port(),
        validity_secs: None,
    });
    let tmp = tempfile::tempdir().expect("tmp");
    let storage = tmp.path().join("certs/acme");
    let m = AcmeManager::new(
        config(&pebble, &storage, ChallengeKind::Http01),
        challenges.clone(),
    )
    .expect("manager");
    let want = names(&["app.test", "www.app.test"]);
    let cert = match obtain(&m, "app", &want).await {
        Ok(c) => c,
        Err(e) => panic!("{}\n{}", chain(&e), pebble.log()),
    };
    assert_chains_to(&cert, &pebble.issued_root_pem(), &want);
    assert!(challenges.is_empty(), "answers removed after the order");
    let (fullchain, privkey) = site_paths(&storage, "app").expect("paths");
    assert_eq!(mode(&privkey), 0o600);
    assert_eq!(mode(&fullchain), 0o644);
    assert_eq!(mode(&account_path(&storage)), 0o600);
    assert_eq!(mode(&storage), 0o700);
    let reloaded = m.stored("app").expect("stored certificate loads");
    assert_eq!(reloaded.info.serial, cert.info.serial);
    assert_eq!(m.orders_started(), 1);
    assert_eq!(pebble.order_count(), 1);
    // Switching CA (e.g. staging -> production) means a new certificate.
    let mut other = config(&pebble, &storage, ChallengeKind::Http01);
    other.directory = "https://acme.other.test/directory".into();
    let switched = AcmeManager::new(other, Challenges::new()).expect("manager");
    assert!(
        switched.stored("app").is_none(),
        "a certificate from another CA"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alpn01_issues_a_certificate() {
    let challenges = Challenges::new();
    let tls_port = tls_alpn01_responder(challenges.clone()).await;
    let pebble = Pebble::start(PebbleOptions {
        http_port: dead_port(),
        tls_port,
        validity_secs: Some(3600),
    });
    let tmp = tempfile::tempdir().expect("tmp");
    let m = AcmeManager::new(
        config(&pebble, tmp.path(), ChallengeKind::TlsAlpn01),
        challenges.clone(),
    )
    .expect("manager");
    let want = names(&["alpn.test", "api.alpn.test"]);
    let cert = match obtain(&m, "alpn", &want).await {
        Ok(c) => c,
        Err(e) => panic!("{}\n{}", chain(&e), pebble.log()),
    };
    assert_chains_to(&cert, &pebble.issued_root_pem(), &want);
    let lifetime = cert
        .info
        .not_after
        .duration_since(cert.info.not_before)
        .expect("ordered");
    assert!(lifetime <= Duration::from_secs(3600 + 60), "{lifetime:?}");
    assert!(challenges.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_is_created_once_and_reused_by_the_next_manager() {
    let pebble = Pebble::start(PebbleOptions {
        http_port: dead_port(),
        tls_port: dead_port(),
        validity_secs: None,
    });
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = config(&pebble, tmp.path(), ChallengeKind::Http01);
    let first = AcmeManager::new(cfg.clone(), Challenges::new()).expect("first");
    let url1 = tokio::time::timeout(ACME_TIMEOUT, first.account_url())
        .await
        .expect("in time")
        .expect("account created");
    assert_eq!(pebble.account_count(), 1);
    assert_eq!(first.stored_account_url().as_deref(), Some(url1.as_str()));
    let stored = std::fs::read(account_path(tmp.path())).expect("account.json");
    // A restart: a new manager on the same storage.
    let second = AcmeManager::new(cfg, Challenges::new()).expect("second");
    let url2 = tokio::time::timeout(ACME_TIMEOUT, second.account_url())
        .await
        .expect("in time")
        .expect("account loaded");
    assert_eq!(url1, url2, "same account");
    assert_eq!(
        pebble.account_count(),
        1,
        "no second account:\n{}",
        pebble.log()
    );
    assert_eq!(
        std::fs::read(account_path(tmp.path())).expect("account.json"),
        stored,
        "account file untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_that_is_down_reads_as_unreachable() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = AcmeConfig {
        email: String::new(),
        directory: format!("https://127.0.0.1:{}/dir", dead_port()),
        ca_root: None,
        storage: tmp.path().to_path_buf(),
        challenge: ChallengeKind::Http01,
    };
    let m = AcmeManager::new(cfg.clone(), Challenges::new()).expect("manager");
    let e = obtain(&m, "app", &names(&["app.test"]))
        .await
        .expect_err("no CA");
    let text = chain(&e);
    eprintln!("error as reported: {text}");
    assert!(matches!(e, AcmeError::Unreachable { .. }), "{text}");
    assert!(
        text.starts_with(&format!(
            "the ACME CA at {} is unreachable: ",
            cfg.directory
        )),
        "{text}"
    );
    assert!(
        text.contains("Connection refused"),
        "cause chain kept: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_storage_is_reported_before_the_ca_is_contacted() {
    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join("not-a-directory");
    std::fs::write(&file, b"x").expect("file");
    let cfg = AcmeConfig {
        email: String::new(),
        // Nothing listens here: reaching the CA first would read "unreachable".
        directory: format!("https://127.0.0.1:{}/dir", dead_port()),
        ca_root: None,
        storage: file.join("acme"),
        challenge: ChallengeKind::Http01,
    };
    let m = AcmeManager::new(cfg, Challenges::new()).expect("manager");
    let e = obtain(&m, "app", &names(&["app.test"]))
        .await
        .expect_err("storage");
    let text = chain(&e);
    eprintln!("error as reported: {text}");
    assert!(matches!(e, AcmeError::Storage { .. }), "{text}");
    assert!(text.contains("is not writable: "), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_without_a_trusted_certificate_reads_as_not_trusted() {
    let pebble = Pebble::start(PebbleOptions {
        http_port: dead_port(),
        tls_port: dead_port(),
        validity_secs: None,
    });
    let tmp = tempfile::tempdir().expect("tmp");
    let mut cfg = config(&pebble, tmp.path(), ChallengeKind::Http01);
    cfg.ca_root = None;
    let m = AcmeManager::new(cfg, Challenges::new()).expect("manager");
    let e = obtain(&m, "app", &names(&["app.test"]))
        .await
        .expect_err("untrusted");
    let text = chain(&e);
    eprintln!("error as reported: {text}");
    assert!(matches!(e, AcmeError::Untrusted { .. }), "{text}");
    assert!(text.contains("is not trusted"), "{text}");
    assert!(text.contains("UnknownIssuer"), "rustls cause kept: {text}");
    assert_eq!(pebble.account_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_challenge_answer_fails_with_pebbles_detail() {
    let challenges = Challenges::new();
    let http_port = http01_responder(challenges.clone(), Answer::Wrong).await;
    let pebble = Pebble::start(PebbleOptions {
        http_port,
        tls_port: dead_port(),
        validity_secs: None,
    });
    let tmp = tempfile::tempdir().expect("tmp");
    let m = AcmeManager::new(
        config(&pebble, tmp.path(), ChallengeKind::Http01),
        challenges.clone(),
    )
    .expect("manager");
    let e = obtain(&m, "bad", &names(&["bad.test"]))
        .await
        .expect_err("validation fails");
    let text = chain(&e);
    eprintln!("error as reported: {text}");
    match &e {
        AcmeError::Challenge {
            identifier,
            kind,
            detail,
        } => {
            assert_eq!(identifier, "bad.test");
            assert_eq!(*kind, ChallengeKind::Http01);
            assert!(detail.contains("wrong-key-authorization"), "{text}");
            assert!(detail.contains("urn:ietf:params:acme:error:"), "{text}");
        }
        other => panic!("not a challenge error: {}\n{}", chain(other), pebble.log()),
    }
    assert!(
        text.starts_with("http-01 challenge for bad.test failed: "),
        "{text}"
    );
    assert!(challenges.is_empty(), "answers removed after failure");
    assert!(m.stored("bad").is_none(), "nothing stored");
}

/// The child half of `files_are_private_even_under_umask_000`: run by that
/// test in a child process whose umask is 000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by files_are_private_even_under_umask_000 with umask 000"]
async fn umask_000_child() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} not set"));
    let storage = PathBuf::from(var("GL_ACME_STORAGE"));
    // Prove the umask really is 000: a default-mode file keeps 0666.
    let probe = PathBuf::from(var("GL_ACME_TMP")).join("probe");
    std::fs::write(&probe, b"x").expect("probe");
    assert_eq!(mode(&probe), 0o666, "umask is not 000");
    let challenges = Challenges::new();
    let port: u16 = var("GL_ACME_HTTP_PORT").parse().expect("port");
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind the http-01 port");
    serve_http01(listener, challenges.clone(), Answer::FromStore);
    let cfg = AcmeConfig {
        email: String::new(),
        directory: var("GL_ACME_DIRECTORY"),
        ca_root: Some(PathBuf::from(var("GL_ACME_CA"))),
        storage,
        challenge: ChallengeKind::Http01,
    };
    let m = AcmeManager::new(cfg, challenges).expect("manager");
    if let Err(e) = obtain(&m, "site", &names(&["umask.test"])).await {
        panic!("{}", chain(&e));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_private_even_under_umask_000() {
    let http_port = dead_port();
    let pebble = Pebble::start(PebbleOptions {
        http_port,
        tls_port: dead_port(),
        validity_secs: None,
    });
    let tmp = tempfile::tempdir().expect("tmp");
    let storage = tmp.path().join("certs/acme");
    let exe = std::env::current_exe().expect("test binary");
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    let test = format!("{module}::umask_000_child");
    let mut child = std::process::Command::new("sh")
        .args(["-c", "umask 000 && exec \"$@\"", "sh"])
        .arg(&exe)
        .args([test.as_str(), "--exact", "--ignored", "--nocapture"])
        .env("GL_ACME_STORAGE", &storage)
        .env("GL_ACME_TMP", tmp.path())
        .env("GL_ACME_HTTP_PORT", http_port.to_string())
        .env("GL_ACME_DIRECTORY", pebble.directory_url())
        .env("GL_ACME_CA", pebble.ca_pem_path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("child test");
    let deadline = std::time::Instant::now() + ACME_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the umask child did not finish in {ACME_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let out = child.wait_with_output().expect("output");
    assert!(
        status.success(),
        "child failed:\n{}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        pebble.log()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 passed"), "the child test ran: {stdout}");
    let (fullchain, privkey) = site_paths(&storage, "site").expect("paths");
    assert_eq!(mode(&storage), 0o700, "storage directory");
    assert_eq!(mode(&storage.join("site")), 0o700, "site directory");
    assert_eq!(mode(&account_path(&storage)), 0o600, "account.json");
    assert_eq!(mode(&privkey), 0o600, "privkey.pem");
    assert_eq!(mode(&fullchain), 0o644, "fullchain.pem");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_installs_a_stored_certificate_without_ordering() {
    let challenges = Challenges::new();
    let http_port = http01_responder(challenges.clone(), Answer::FromStore).await;
    let pebble = Pebble::start(PebbleOptions {
        http_port,
        tls_port: dead_port(),
        validity_secs: None,
    });
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = config(&pebble, tmp.path(), ChallengeKind::Http01);
    let want = names(&["svc.test"]);
    let first = AcmeManager::new(cfg.clone(), challenges.clone()).expect("first");
    let issued = match obtain(&first, "svc", &want).await {
        Ok(c) => c,
        Err(e) => panic!("{}\n{}", chain(&e), pebble.log()),
    };
    assert_eq!(pebble.order_count(), 1);

    // A restart: a fresh manager and service on the same storage.
    let manager = Arc::new(AcmeManager::new(cfg, challenges).expect("second"));
    let (tx, mut installed) = tokio::sync::mpsc::unbounded_channel();
    let install: InstallFn = Arc::new(move |site: &str, cert: LoadedCert| {
        let _ = tx.send((site.to_string(), cert.info.serial.clone()));
    });
    let service = Arc::new(AcmeService::new(
        manager.clone(),
        vec![AcmeSite {
            name: "svc".into(),
            names: want,
        }],
        install,
    ));
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let running = tokio::spawn({
        let service = service.clone();
        async move { service.start(shutdown).await }
    });
    let got = tokio::time::timeout(IO_TIMEOUT, installed.recv())
        .await
        .expect("installed in time");
    assert_eq!(got, Some(("svc".to_string(), issued.info.serial.clone())));
    let status = tokio::time::timeout(IO_TIMEOUT, async {
        loop {
            let s = service.status().remove(0);
            if s.next_attempt.is_some() {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("scheduled");
    assert!(status.next_attempt > Some(SystemTime::now() + Duration::from_secs(3600)));
    assert_eq!(status.issuer.as_deref(), Some(issued.info.issuer.as_str()));
    assert_eq!(status.failures, 0);
    assert_eq!(
        manager.orders_started(),
        0,
        "no order while the stored one is valid"
    );
    assert_eq!(pebble.order_count(), 1, "Pebble saw no new order");
    stop.send(true).expect("shutdown");
    tokio::time::timeout(IO_TIMEOUT, running)
        .await
        .expect("service stops on shutdown")
        .expect("joined");
}
