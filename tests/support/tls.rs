//! Test PKI and TLS client helpers.
//!
//! [`TestCa`] is a throw-away certificate authority (rcgen, ECDSA P-256) that
//! issues leaf certificates for any DNS names (wildcards and IP addresses
//! included), writes them as PEM files into its own temporary directory or a
//! directory of the caller's choosing, and builds rustls client/server
//! configurations around them.
//!
//! [`tls_connect`] opens a TLS connection to a loopback address with a chosen
//! SNI name and ALPN list, and reports what was negotiated
//! ([`NegotiatedInfo`]: ALPN, the served leaf certificate, its SANs and serial
//! number, parsed with x509-parser).
//!
//! All configs use the `ring` provider explicitly, so they work whichever
//! rustls providers the rest of the dependency graph enables.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::{io_err, timed};

/// The crypto provider every harness config uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A leaf certificate issued by a [`TestCa`].
#[derive(Debug, Clone)]
pub struct IssuedCert {
    /// The leaf certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PKCS#8 PEM.
    pub key_pem: String,
    /// Where `cert_pem` was written.
    pub cert_path: PathBuf,
    /// Where `key_pem` was written.
    pub key_path: PathBuf,
    /// Serial number as lowercase hex without separators (same format as
    /// [`NegotiatedInfo::serial`]).
    pub serial: String,
}

/// A throw-away certificate authority for one test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    dir: TempDir,
    next: AtomicU64,
}

impl TestCa {
    /// Creates a new CA (CN "greenlight test CA") and writes its certificate
    /// to `ca.pem` in a fresh temporary directory.
    pub fn new() -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(DnType::CommonName, "greenlight test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("generate CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("self-sign CA");
        let dir = tempfile::Builder::new()
            .prefix("greenlight-ca-")
            .tempdir()
            .expect("CA tempdir");
        std::fs::write(dir.path().join("ca.pem"), issuer.pem()).expect("write ca.pem");
        TestCa {
            issuer,
            dir,
            next: AtomicU64::new(1),
        }
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// Path of the CA certificate PEM file.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The CA's temporary directory (where [`TestCa::issue_files`] writes).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Issues a leaf certificate for `names` (DNS names, `*.` wildcards or IP
    /// addresses; the first is also the CN) and returns `(cert_pem, key_pem)`.
    pub fn issue(&self, names: &[&str]) -> (String, String) {
        let (cert_pem, key_pem, _) = self.issue_inner(names);
        (cert_pem, key_pem)
    }

    /// Issues a leaf certificate and writes it into the CA's temporary
    /// directory as `<first name>-<n>.crt` / `.key`.
    pub fn issue_files(&self, names: &[&str]) -> IssuedCert {
        let n = self.next.load(Ordering::SeqCst);
        let stem = format!("{}-{n}", names.first().unwrap_or(&"leaf").replace('*', "_"));
        self.issue_to(names, self.dir.path(), &stem)
    }

    /// Issues a leaf certificate and writes it as `<dir>/<stem>.crt` and
    /// `<dir>/<stem>.key` (e.g. into a directory the proxy loads certs from).
    pub fn issue_to(&self, names: &[&str], dir: &Path, stem: &str) -> IssuedCert {
        let (cert_pem, key_pem, serial) = self.issue_inner(names);
        let cert_path = dir.join(format!("{stem}.crt"));
        let key_path = dir.join(format!("{stem}.key"));
        std::fs::write(&cert_path, &cert_pem).expect("write leaf cert");
        std::fs::write(&key_path, &key_pem).expect("write leaf key");
        IssuedCert {
            cert_pem,
            key_pem,
            cert_path,
            key_path,
            serial,
        }
    }

    fn issue_inner(&self, names: &[&str]) -> (String, String, String) {
        let owned: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(owned).expect("leaf params");
        if let Some(first) = names.first() {
            params.distinguished_name.push(DnType::CommonName, *first);
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        // Unique, positive serial: 0x01 marker, issue counter, clock nanos.
        let count = self.next.fetch_add(1, Ordering::SeqCst);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let mut serial = vec![0x01];
        serial.extend_from_slice(&count.to_be_bytes());
        serial.extend_from_slice(&nanos.to_be_bytes());
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        let key = KeyPair::generate().expect("generate leaf key");
        let cert = params.signed_by(&key, &*self.issuer).expect("sign leaf");
        (cert.pem(), key.serialize_pem(), hex(&serial))
    }

    /// A client config trusting this CA, offering `alpn` (e.g. `&["h2", "http/1.1"]`).
    pub fn client_config(&self, alpn: &[&str]) -> Arc<ClientConfig> {
        client_config(&self.cert_pem(), alpn)
    }

    /// A server config presenting a fresh leaf for `names`, offering `alpn`.
    pub fn server_config(&self, names: &[&str], alpn: &[&str]) -> Arc<ServerConfig> {
        let (cert_pem, key_pem) = self.issue(names);
        server_config(&cert_pem, &key_pem, alpn)
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn alpn_list(alpn: &[&str]) -> Vec<Vec<u8>> {
    alpn.iter().map(|p| p.as_bytes().to_vec()).collect()
}

/// Parses every certificate in a PEM string.
pub fn certs_from_pem(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("parse certificate PEM")
}

/// A client config trusting the certificate(s) in `root_pem`, offering `alpn`.
pub fn client_config(root_pem: &str, alpn: &[&str]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in certs_from_pem(root_pem) {
        roots.add(cert).expect("add root certificate");
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn_list(alpn);
    Arc::new(config)
}

/// A client config that accepts ANY server certificate (signatures are still
/// checked), for inspecting certificates the test did not issue, such as a
/// self-signed fallback. Never use it to assert that verification passes.
pub fn insecure_client_config(alpn: &[&str]) -> Arc<ClientConfig> {
    let verifier = AcceptAnyCert(provider().signature_verification_algorithms);
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = alpn_list(alpn);
    Arc::new(config)
}

/// A server config presenting `cert_pem` (leaf first, then any chain) with
/// `key_pem`, offering `alpn`. For test servers standing in for TLS peers.
pub fn server_config(cert_pem: &str, key_pem: &str, alpn: &[&str]) -> Arc<ServerConfig> {
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("parse key PEM");
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs_from_pem(cert_pem), key)
        .expect("server cert/key");
    config.alpn_protocols = alpn_list(alpn);
    Arc::new(config)
}

#[derive(Debug)]
struct AcceptAnyCert(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// What a TLS handshake negotiated, from the client's side.
#[derive(Debug, Clone)]
pub struct NegotiatedInfo {
    /// The ALPN protocol chosen by the server, if any (e.g. `b"h2"`).
    pub alpn: Option<Vec<u8>>,
    /// The served leaf certificate, DER.
    pub peer_cert_der: Vec<u8>,
    /// DNS names and IP addresses from the leaf's subjectAltName, in order.
    pub subject_alt_names: Vec<String>,
    /// The leaf's serial number, lowercase hex without separators.
    pub serial: String,
    /// The leaf's subject CN, if any.
    pub common_name: Option<String>,
    /// The TLS version, e.g. `TLSv1_3`.
    pub protocol_version: String,
}

impl NegotiatedInfo {
    /// The negotiated ALPN protocol as a string (`None` if none was agreed).
    pub fn alpn_str(&self) -> Option<&str> {
        self.alpn
            .as_deref()
            .and_then(|a| std::str::from_utf8(a).ok())
    }
}

/// Parsed identity of a certificate: `(subject_alt_names, serial_hex, common_name)`.
pub fn cert_identity(der: &[u8]) -> io::Result<(Vec<String>, String, Option<String>)> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| io_err("parse peer certificate", e))?;
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(dns) => sans.push(dns.to_string()),
                GeneralName::IPAddress(ip) => match ip.len() {
                    4 => sans.push(
                        std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*ip).unwrap()).to_string(),
                    ),
                    16 => sans.push(
                        std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*ip).unwrap()).to_string(),
                    ),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string);
    Ok((sans, hex(cert.raw_serial()), cn))
}

/// Extracts [`NegotiatedInfo`] from an established client connection.
pub fn negotiated_info(conn: &rustls::ClientConnection) -> io::Result<NegotiatedInfo> {
    let leaf = conn
        .peer_certificates()
        .and_then(|certs| certs.first())
        .ok_or_else(|| io::Error::other("server sent no certificate"))?;
    let (subject_alt_names, serial, common_name) = cert_identity(leaf)?;
    Ok(NegotiatedInfo {
        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
        peer_cert_der: leaf.to_vec(),
        subject_alt_names,
        serial,
        common_name,
        protocol_version: conn
            .protocol_version()
            .map(|v| format!("{v:?}"))
            .unwrap_or_default(),
    })
}

/// Connects to `addr` over TLS with SNI `server_name`, offering `alpn` and
/// trusting only the certificate(s) in `root_pem`. Bounded by
/// [`super::IO_TIMEOUT`]; a verification failure is an error.
pub async fn tls_connect(
    addr: SocketAddr,
    server_name: &str,
    alpn: &[&str],
    root_pem: &str,
) -> io::Result<(TlsStream<TcpStream>, NegotiatedInfo)> {
    tls_connect_with(addr, server_name, client_config(root_pem, alpn)).await
}

/// Like [`tls_connect`] with a ready-made client config (e.g.
/// [`insecure_client_config`]). If `server_name` is an IP address no SNI is sent.
pub async fn tls_connect_with(
    addr: SocketAddr,
    server_name: &str,
    config: Arc<ClientConfig>,
) -> io::Result<(TlsStream<TcpStream>, NegotiatedInfo)> {
    tls_connect_prefixed(addr, b"", server_name, config).await
}

/// Like [`tls_connect_with`], sending `prefix` on the TCP connection before
/// the TLS handshake (a PROXY protocol header, as a load balancer would).
pub async fn tls_connect_prefixed(
    addr: SocketAddr,
    prefix: &[u8],
    server_name: &str,
    config: Arc<ClientConfig>,
) -> io::Result<(TlsStream<TcpStream>, NegotiatedInfo)> {
    use tokio::io::AsyncWriteExt;
    let name = ServerName::try_from(server_name.to_string())
        .map_err(|e| io_err(&format!("invalid server name {server_name:?}"), e))?;
    let mut tcp = timed(&format!("TCP connect to {addr}"), TcpStream::connect(addr)).await?;
    tcp.set_nodelay(true)?;
    if !prefix.is_empty() {
        timed("send the prefix", tcp.write_all(prefix)).await?;
    }
    let stream = timed(
        &format!("TLS handshake with {addr} (SNI {server_name})"),
        TlsConnector::from(config).connect(name, tcp),
    )
    .await?;
    let info = negotiated_info(stream.get_ref().1)?;
    Ok((stream, info))
}
