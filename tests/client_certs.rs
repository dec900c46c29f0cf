//! Client certificates (mutual TLS, a site's `client_auth:`) through the real
//! binary: certificates from a throw-away client CA made here (rcgen), real
//! rustls clients over HTTP/1.1 and h2, curl `--cert/--key`, and openssl to
//! say what the subject and fingerprint variables must read.
//!
//! A certificate from another CA is answered 400 at HTTP level, not refused
//! in the handshake: listeners are shared by sites with and without
//! `client_auth` (SNI), so the TLS layer only asks and records, and the
//! routed site judges (as nginx answers 400 after its handshake).

use crate::support::tls::provider;
use crate::support::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::ClientConfig;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

const YAML: &str = r#"
listeners:
  http: {address: "127.0.0.1:{HTTP}"}
  https: {address: "127.0.0.1:{HTTPS}", tls: true}
admin: {address: "127.0.0.1:{ADMIN}"}
upstreams:
  app: {active: p, pools: {p: ["127.0.0.1:{APP}"]}}
sites:
  open:
    hosts: [open.test]
    default: true
    tls: {cert: "{DIR}/mtls.crt", key: "{DIR}/mtls.key"}
    request_headers: {set: {X-Verify: "$ssl_client_verify"}}
    routes: [{path: /, upstream: app}]
CLIENT_AUTH_SITES"#;

const CLIENT_AUTH_SITES: &str = r#"
  required:
    hosts: [mtls.test]
    tls: {cert: "{DIR}/mtls.crt", key: "{DIR}/mtls.key"}
    client_auth: {ca: "CLIENT_CA"}
    request_headers:
      set:
        X-Verify: "$ssl_client_verify"
        X-Dn: "$ssl_client_s_dn"
        X-Issuer: "$ssl_client_i_dn"
        X-Fp: "$ssl_client_fingerprint"
        X-Serial: "$ssl_client_serial"
    routes: [{path: /, upstream: app}]
  optional:
    hosts: [opt.test]
    tls: {cert: "{DIR}/mtls.crt", key: "{DIR}/mtls.key"}
    client_auth: {ca: "CLIENT_CA", verify: optional}
    request_headers: {set: {X-Verify: "$ssl_client_verify"}}
    routes: [{path: /, upstream: app}]
  noca:
    hosts: [noca.test]
    tls: {cert: "{DIR}/mtls.crt", key: "{DIR}/mtls.key"}
    client_auth: {verify: optional_no_ca}
    request_headers: {set: {X-Verify: "$ssl_client_verify", X-Dn: "$ssl_client_s_dn"}}
    routes: [{path: /, upstream: app}]
"#;

const NAMES: [&str; 4] = ["open.test", "mtls.test", "opt.test", "noca.test"];

/// A throw-away CA for client certificates, its PEM in `ca.pem`.
struct ClientCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    dir: tempfile::TempDir,
}

/// A client certificate and its key, also as files (for curl).
struct ClientCert {
    cert_pem: String,
    key_pem: String,
    cert_path: PathBuf,
    key_path: PathBuf,
}

impl ClientCa {
    fn new(name: &str) -> ClientCa {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer =
            CertifiedIssuer::self_signed(p, KeyPair::generate().expect("key")).expect("ca");
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("ca.pem"), issuer.pem()).expect("write");
        ClientCa { issuer, dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn issue(&self, cn: &str) -> ClientCert {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.distinguished_name.push(DnType::CountryName, "FR");
        p.distinguished_name
            .push(DnType::OrganizationName, "Acme, Inc.");
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().expect("key");
        let cert = p.signed_by(&key, &*self.issuer).expect("sign");
        let cert_path = self.dir.path().join(format!("{cn}.crt"));
        let key_path = self.dir.path().join(format!("{cn}.key"));
        std::fs::write(&cert_path, cert.pem()).expect("write");
        std::fs::write(&key_path, key.serialize_pem()).expect("write");
        ClientCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_path,
            key_path,
        }
    }
}

/// A client trusting `server_ca`, presenting `cert` when asked.
fn client(server_ca: &TestCa, cert: Option<&ClientCert>, alpn: &[&str]) -> Arc<ClientConfig> {
    let Some(c) = cert else {
        return server_ca.client_config(alpn);
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server_ca.cert_der()).expect("root");
    let key = PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).expect("key");
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(crate::support::tls::certs_from_pem(&c.cert_pem), key)
        .expect("client cert");
    config.alpn_protocols = alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
    Arc::new(config)
}

struct Fixture {
    site: TlsSite,
    app: HttpUpstream,
    clients: ClientCa,
}

impl Fixture {
    async fn start(with_client_auth: bool) -> Fixture {
        let app = HttpUpstream::start("app").await;
        let clients = ClientCa::new("greenlight clients CA");
        let sites = if with_client_auth {
            CLIENT_AUTH_SITES
        } else {
            ""
        };
        let template = YAML
            .replace("CLIENT_AUTH_SITES", sites)
            .replace("CLIENT_CA", &clients.path().display().to_string());
        let site = TlsSite::start(&template, &NAMES, "mtls", &[("APP", app.port())]).await;
        Fixture { site, app, clients }
    }

    /// One HTTP/1.1 request over a new connection with SNI and Host `host`.
    async fn h1(&self, host: &str, cert: Option<&ClientCert>) -> Response {
        let config = client(&self.site.ca, cert, &["http/1.1"]);
        let mut c = H1Conn::connect_tls_with(self.site.https, host, config)
            .await
            .expect("TLS");
        c.get("/", host).await.expect("response")
    }

    /// The headers the app saw on its last request.
    fn last_seen(&self) -> RecordedRequest {
        self.app.requests().pop().expect("the app saw a request")
    }
}

/// What `openssl x509` says of a certificate file (`-subject`,
/// `-fingerprint`), after its `name=` prefix.
fn openssl_x509(path: &std::path::Path, what: &[&str]) -> String {
    let out = Command::new("openssl")
        .arg("x509")
        .arg("-noout")
        .args(what)
        .arg("-in")
        .arg(path)
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    text.split_once('=')
        .map(|(_, v)| v.to_string())
        .unwrap_or(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_the_sites_ca_passes_over_h1_and_h2_and_the_app_sees_it() {
    let f = Fixture::start(true).await;
    let alice = f.clients.issue("alice");
    let r = f.h1("mtls.test", Some(&alice)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = f.last_seen();
    assert_eq!(seen.header("x-verify"), Some("SUCCESS"));
    // What nginx would pass: RFC 2253 names and the SHA-1 of the DER, as
    // openssl prints them.
    let subject = openssl_x509(&alice.cert_path, &["-subject", "-nameopt", "RFC2253"]);
    assert!(
        subject.contains("CN=alice") && subject.contains(r"O=Acme\, Inc."),
        "{subject}"
    );
    assert_eq!(seen.header("x-dn"), Some(subject.as_str()));
    assert_eq!(seen.header("x-issuer"), Some("CN=greenlight clients CA"));
    let fp = openssl_x509(&alice.cert_path, &["-fingerprint", "-sha1"])
        .replace(':', "")
        .to_ascii_lowercase();
    assert_eq!(seen.header("x-fp"), Some(fp.as_str()));
    let serial = openssl_x509(&alice.cert_path, &["-serial"]);
    assert_eq!(seen.header("x-serial"), Some(serial.as_str()));

    // A resumed TLS session (same client config, TLS 1.3 ticket) still
    // carries the certificate.
    let config = client(&f.site.ca, Some(&alice), &["http/1.1"]);
    let mut kinds = Vec::new();
    for _ in 0..2 {
        let tcp = tokio::net::TcpStream::connect(f.site.https)
            .await
            .expect("tcp");
        let name = rustls::pki_types::ServerName::try_from("mtls.test").expect("name");
        let tls = tokio_rustls::TlsConnector::from(config.clone())
            .connect(name, tcp)
            .await
            .expect("TLS");
        kinds.push(tls.get_ref().1.handshake_kind());
        let mut c = H1Conn::from_stream(tls);
        let r = c.get("/", "mtls.test").await.expect("response");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(f.last_seen().header("x-verify"), Some("SUCCESS"));
    }
    assert_eq!(
        kinds[1],
        Some(rustls::HandshakeKind::Resumed),
        "the second session was resumed: {kinds:?}"
    );

    // h2: several streams on one connection, judged once, all passed.
    let config = client(&f.site.ca, Some(&alice), &["h2"]);
    let mut c = H2Conn::connect_with(f.site.https, "mtls.test", config)
        .await
        .expect("h2");
    for _ in 0..3 {
        let r = c.get("/").await.expect("response");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(f.last_seen().header("x-verify"), Some("SUCCESS"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_foreign_certificate_is_answered_400_as_nginx_does() {
    let f = Fixture::start(true).await;
    let alice = f.clients.issue("alice");
    let other = ClientCa::new("another CA");
    let stranger = other.issue("mallory");
    let before = f.app.request_count();

    let r = f.h1("mtls.test", None).await;
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("No required SSL certificate was sent"),
        "{}",
        r.text()
    );
    let r = f.h1("mtls.test", Some(&stranger)).await;
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("The SSL certificate error"),
        "{}",
        r.text()
    );
    let mut h2 = H2Conn::connect_with(f.site.https, "mtls.test", client(&f.site.ca, None, &["h2"]))
        .await
        .expect("h2");
    assert_eq!(h2.get("/").await.expect("response").status, 400);
    // optional: none passes (NONE), a foreign one does not.
    let r = f.h1("opt.test", Some(&stranger)).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        f.app.request_count(),
        before,
        "no refused request reached the app"
    );
    let r = f.h1("opt.test", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(f.last_seen().header("x-verify"), Some("NONE"));
    let r = f.h1("opt.test", Some(&alice)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(f.last_seen().header("x-verify"), Some("SUCCESS"));
    // optional_no_ca: asks, refuses nothing, says what it found.
    let r = f.h1("noca.test", Some(&stranger)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = f.last_seen();
    assert_eq!(
        seen.header("x-verify"),
        Some("FAILED:unable to get local issuer certificate")
    );
    let subject = openssl_x509(&stranger.cert_path, &["-subject", "-nameopt", "RFC2253"]);
    assert_eq!(seen.header("x-dn"), Some(subject.as_str()));
    // The site without client_auth on the same listener: served, with or
    // without a certificate, and judges none.
    for cert in [None, Some(&stranger)] {
        let r = f.h1("open.test", cert).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(f.last_seen().header("x-verify"), Some("NONE"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_site_the_request_is_routed_to_judges_not_the_sni() {
    let f = Fixture::start(true).await;
    // A TLS session set up for the open site, then a request for the
    // protected one: the router answers 421 before any site is served.
    let config = client(&f.site.ca, None, &["http/1.1"]);
    let mut c = H1Conn::connect_tls_with(f.site.https, "open.test", config)
        .await
        .expect("TLS");
    let r = c.get("/", "mtls.test").await.expect("response");
    assert_eq!(r.status, 421, "{}", r.text());
    // The other way round: a good certificate on the protected site's
    // session does not open the optional site's Host either.
    let alice = f.clients.issue("alice");
    let config = client(&f.site.ca, Some(&alice), &["http/1.1"]);
    let mut c = H1Conn::connect_tls_with(f.site.https, "mtls.test", config)
        .await
        .expect("TLS");
    assert_eq!(c.get("/", "opt.test").await.expect("response").status, 421);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_with_cert_and_key_gets_through_and_without_gets_400() {
    let f = Fixture::start(true).await;
    let alice = f.clients.issue("alice");
    let ca = f.site.ca.ca_path();
    let url = format!("https://mtls.test:{}/", f.site.https.port());
    let resolve = format!("mtls.test:{}:127.0.0.1", f.site.https.port());
    let curl = |extra: &[&std::ffi::OsStr]| {
        let out = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "10",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{http_version}",
            ])
            .arg("--cacert")
            .arg(&ca)
            .args(["--resolve", &resolve])
            .args(extra)
            .arg(&url)
            .output()
            .expect("curl runs");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let with = [
        "--cert".as_ref(),
        alice.cert_path.as_os_str(),
        "--key".as_ref(),
        alice.key_path.as_os_str(),
    ];
    assert_eq!(curl(&with), "200 2");
    assert_eq!(f.last_seen().header("x-verify"), Some("SUCCESS"));
    let mut h1 = with.to_vec();
    h1.push("--http1.1".as_ref());
    assert_eq!(curl(&h1), "200 1.1");
    assert_eq!(curl(&[]), "400 2");
}

/// A client that records the CA names of every certificate request it gets
/// and sends no certificate.
#[derive(Debug, Default)]
struct RecordRequests(Mutex<Vec<Vec<Vec<u8>>>>);

impl rustls::client::ResolvesClientCert for RecordRequests {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        _schemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let names = root_hint_subjects.iter().map(|s| s.to_vec()).collect();
        self.0.lock().expect("lock").push(names);
        None
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Connects to `host` and reports the certificate requests seen (none, or
/// one with its CA names).
async fn requests_seen(f: &Fixture, host: &str) -> (u16, Vec<Vec<Vec<u8>>>) {
    let record = Arc::new(RecordRequests::default());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(f.site.ca.cert_der()).expect("root");
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_client_cert_resolver(record.clone());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut c = H1Conn::connect_tls_with(f.site.https, host, Arc::new(config))
        .await
        .expect("TLS");
    let status = c.get("/", host).await.expect("response").status;
    let seen = record.0.lock().expect("lock").clone();
    (status, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_certificate_is_asked_until_a_site_wants_one_and_a_broken_ca_keeps_the_old_state() {
    let mut f = Fixture::start(false).await;
    let (status, seen) = requests_seen(&f, "open.test").await;
    assert_eq!(status, 200);
    assert!(
        seen.is_empty(),
        "no site has client_auth: no CertificateRequest"
    );

    // Reload with the client_auth sites: now every handshake of the
    // listener asks, naming the client CA.
    let yaml = std::fs::read_to_string(f.site.proxy.config_path()).expect("config");
    let more = CLIENT_AUTH_SITES
        .replace("{DIR}", &f.site.ca.dir().display().to_string())
        .replace("CLIENT_CA", &f.clients.path().display().to_string());
    f.site
        .proxy
        .write_config(&format!("{yaml}{more}"))
        .expect("write");
    let mark = f.site.proxy.log_mark();
    f.site.proxy.signal("HUP").expect("hup");
    assert!(
        f.site
            .proxy
            .wait_for_stderr_after(mark, "configuration reloaded", IO_TIMEOUT)
            .await,
        "{}",
        f.site.proxy.stderr()
    );
    let (status, seen) = requests_seen(&f, "open.test").await;
    assert_eq!(
        status, 200,
        "the open site still serves a client without one"
    );
    assert_eq!(seen.len(), 1, "asked once");
    let named = seen[0].iter().any(|n| {
        n.windows(b"greenlight clients CA".len())
            .any(|w| w == b"greenlight clients CA")
    });
    assert!(named, "the client CA is named: {seen:?}");
    assert_eq!(requests_seen(&f, "mtls.test").await.0, 400);

    // A CA file that went bad: the reload is refused at its line, and the
    // old CA keeps judging.
    std::fs::write(f.clients.path(), "not a certificate\n").expect("write");
    let mark = f.site.proxy.log_mark();
    f.site.proxy.signal("HUP").expect("hup");
    assert!(
        f.site
            .proxy
            .wait_for_stderr_after(mark, "reload rejected", IO_TIMEOUT)
            .await,
        "{}",
        f.site.proxy.stderr()
    );
    let log = f.site.proxy.stderr();
    assert!(log[mark..].contains("client_auth ca:"), "{log}");
    let alice = f.clients.issue("alice");
    assert_eq!(f.h1("mtls.test", Some(&alice)).await.status, 200);
    assert_eq!(f.h1("mtls.test", None).await.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_certificate_pinned_in_the_ca_file_passes_like_in_nginx() {
    let mut f = Fixture::start(true).await;
    // What an nginx user makes for one client and lists in
    // ssl_client_certificate: `openssl req -x509` (CA:TRUE, self-signed).
    let dir = f.clients.dir.path();
    let (crt, key) = (dir.join("pinned.crt"), dir.join("pinned.key"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-subj", "/CN=pinned client", "-days", "2"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "{out:?}");
    let pinned = ClientCert {
        cert_pem: std::fs::read_to_string(&crt).expect("crt"),
        key_pem: std::fs::read_to_string(&key).expect("key"),
        cert_path: crt,
        key_path: key,
    };
    assert_eq!(
        f.h1("mtls.test", Some(&pinned)).await.status,
        400,
        "not listed yet"
    );
    let mut ca = std::fs::read_to_string(f.clients.path()).expect("ca");
    ca.push_str(&pinned.cert_pem);
    std::fs::write(f.clients.path(), ca).expect("write");
    let mark = f.site.proxy.log_mark();
    f.site.proxy.signal("HUP").expect("hup");
    assert!(
        f.site
            .proxy
            .wait_for_stderr_after(mark, "configuration reloaded", IO_TIMEOUT)
            .await,
        "{}",
        f.site.proxy.stderr()
    );
    let r = f.h1("mtls.test", Some(&pinned)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = f.last_seen();
    assert_eq!(seen.header("x-verify"), Some("SUCCESS"));
    assert_eq!(seen.header("x-dn"), Some("CN=pinned client"));
    // The CA's own clients still pass.
    let alice = f.clients.issue("alice");
    assert_eq!(f.h1("mtls.test", Some(&alice)).await.status, 200);
    assert!(pinned.cert_path.exists() && pinned.key_path.exists());
}
