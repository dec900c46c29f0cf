//! A real ACME CA for tests: Debian's `pebble` plus `pebble-challtestsrv` as
//! its DNS server, on loopback ports.
//!
//! Owns two child processes and a temporary directory (listener PKI, config,
//! logs); touches nothing else. Debian ships no test certificates, so a
//! throw-away CA and a listener certificate for `127.0.0.1`/`localhost` are
//! generated here; tests trust that CA for the directory
//! ([`Pebble::ca_pem_path`]). The challenge test server resolves every name
//! to 127.0.0.1, so Pebble validates http-01 on `127.0.0.1:<http_port>` and
//! tls-alpn-01 on `127.0.0.1:<tls_port>`: the ports where the code under test
//! answers. Certificates Pebble issues chain to a root it regenerates at each
//! start: [`Pebble::issued_root_pem`] fetches it from the management API.
//!
//! Start-up: pick free ports (bind `:0`, read, release), start both
//! processes, poll `GET /dir` (trusting our CA, so it is this Pebble that
//! answers) until a deadline; a port taken in between shows up as "address
//! already in use" in a log and the whole start is retried on new ports. Both
//! processes are killed on [`Pebble::stop`] or drop; their output stays in
//! log files for diagnostics ([`Pebble::log`]). If `pebble` is not on PATH
//! the test fails with one line at its call of [`Pebble::start`], naming
//! `pebble` and `./test.sh` (which installs it).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one start attempt may take until the directory answers.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// Start attempts (each on fresh ports) before giving up.
const START_ATTEMPTS: usize = 5;
/// Interval between two readiness checks.
const POLL: Duration = Duration::from_millis(25);
/// Deadline for one management request.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// What the test needs from Pebble.
#[derive(Clone, Copy, Debug)]
pub struct PebbleOptions {
    /// Port where http-01 challenges are answered (on 127.0.0.1).
    pub http_port: u16,
    /// Port where tls-alpn-01 challenges are answered (on 127.0.0.1).
    pub tls_port: u16,
    /// Lifetime of issued certificates in seconds (`None`: Pebble's default).
    pub validity_secs: Option<u64>,
}

/// A running Pebble and its DNS server; both are killed on drop.
pub struct Pebble {
    dir: tempfile::TempDir,
    pebble: Option<Child>,
    dns: Option<Child>,
    acme_port: u16,
    mgmt_port: u16,
}

enum StartError {
    /// A chosen port was taken: try again on other ports.
    PortInUse,
    /// Anything else: give up with this message.
    Fatal(String),
}

impl Pebble {
    /// Starts Pebble (see the module docs); panics with the logs if it
    /// cannot, and with one line naming `pebble` and `./test.sh` if it is
    /// not installed (at the caller's line: `track_caller`).
    #[track_caller]
    pub fn start(opts: PebbleOptions) -> Pebble {
        let pebble = binary("pebble");
        let challtestsrv = binary("pebble-challtestsrv");
        let dir = tempfile::tempdir().expect("temporary directory for pebble");
        write_listener_pki(dir.path());
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            match try_start(&dir, &pebble, &challtestsrv, &opts) {
                Ok((pebble, dns, acme_port, mgmt_port)) => {
                    return Pebble {
                        dir,
                        pebble: Some(pebble),
                        dns: Some(dns),
                        acme_port,
                        mgmt_port,
                    };
                }
                Err(StartError::PortInUse) => last = "a port was taken".into(),
                Err(StartError::Fatal(msg)) => panic!("{msg}"),
            }
        }
        panic!("pebble did not start in {START_ATTEMPTS} attempts: {last}");
    }

    /// The ACME directory URL.
    pub fn directory_url(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.acme_port)
    }

    /// The PEM of the CA that signed Pebble's listener certificate: trust it
    /// (only it) for [`Pebble::directory_url`].
    pub fn ca_pem_path(&self) -> PathBuf {
        self.dir.path().join("listener-ca.pem")
    }

    /// The root that certificates issued by this Pebble chain to (PEM).
    pub fn issued_root_pem(&self) -> String {
        match https_get(self.mgmt_port, "/roots/0", &self.ca_pem_path()) {
            Ok((200, body)) => String::from_utf8_lossy(&body).into_owned(),
            Ok((status, body)) => panic!(
                "pebble /roots/0 answered {status}: {}",
                String::from_utf8_lossy(&body)
            ),
            Err(e) => panic!("pebble /roots/0 failed: {e}\n{}", self.log()),
        }
    }

    /// Pebble's output so far (stdout and stderr).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }

    /// Accounts Pebble holds ("There are now N accounts in memory").
    pub fn account_count(&self) -> usize {
        self.log()
            .lines()
            .rev()
            .find_map(|l| {
                let rest = l.split("There are now ").nth(1)?;
                let n = rest.strip_suffix(" accounts in memory")?;
                n.trim().parse().ok()
            })
            .unwrap_or(0)
    }

    /// Orders Pebble has received ("Added order ... to the db").
    pub fn order_count(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("Added order") && l.contains("to the db"))
            .count()
    }

    /// Kills both processes (also done on drop).
    pub fn stop(&mut self) {
        for child in [self.pebble.take(), self.dns.take()].into_iter().flatten() {
            kill(child);
        }
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
    }
}

fn kill(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// `<name>` on PATH. When it is missing the test fails with one line that
/// names it and the fix, reported at the test's call of [`Pebble::start`]
/// (`track_caller`) rather than as a panic somewhere in this helper.
#[track_caller]
fn binary(name: &str) -> PathBuf {
    match find_program(name, std::env::var_os("PATH").as_deref()) {
        Ok(path) => path,
        Err(line) => panic!("{line}"),
    }
}

/// The first executable file `name` in the directories of `path` (a PATH
/// value), like `command -v`; or the one-line explanation of its absence.
/// Only PATH is searched, so hiding a program from PATH hides it from the
/// tests too (how a machine without it is checked).
fn find_program(name: &str, path: Option<&OsStr>) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    path.into_iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|c| fs::metadata(c).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
        .ok_or_else(|| {
            format!(
                "`{name}` is not installed (not on PATH): the ACME tests need Debian's \
                 pebble package; run ./test.sh, which installs it, or apt-get install pebble"
            )
        })
}

/// `n` distinct loopback ports that were free a moment ago.
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("local_addr").port())
        .collect()
}

fn try_start(
    dir: &tempfile::TempDir,
    pebble_bin: &Path,
    challtestsrv_bin: &Path,
    opts: &PebbleOptions,
) -> Result<(Child, Child, u16, u16), StartError> {
    let ports = free_ports(4);
    let (acme_port, mgmt_port, dns_port, dns_mgmt_port) = (ports[0], ports[1], ports[2], ports[3]);
    let fatal = |what: &str, e: io::Error| StartError::Fatal(format!("{what}: {e}"));
    let dns_log = dir.path().join("challtestsrv.log");
    let dns_out = File::create(&dns_log).map_err(|e| fatal("dns log", e))?;
    let dns_err = dns_out.try_clone().map_err(|e| fatal("dns log", e))?;
    let dns = Command::new(challtestsrv_bin)
        .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
        .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
        .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
        .args(["-management", &format!("127.0.0.1:{dns_mgmt_port}")])
        .stdin(Stdio::null())
        .stdout(dns_out)
        .stderr(dns_err)
        .spawn()
        .map_err(|e| fatal("starting pebble-challtestsrv", e))?;

    let mut config = serde_json::json!({
        "pebble": {
            "listenAddress": format!("127.0.0.1:{acme_port}"),
            "managementListenAddress": format!("127.0.0.1:{mgmt_port}"),
            "certificate": dir.path().join("listener.pem"),
            "privateKey": dir.path().join("listener.key"),
            "httpPort": opts.http_port,
            "tlsPort": opts.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }
    });
    if let Some(secs) = opts.validity_secs {
        config["pebble"]["certificateValidityPeriod"] = secs.into();
    }
    let config_path = dir.path().join("pebble-config.json");
    fs::write(&config_path, config.to_string()).map_err(|e| fatal("pebble config", e))?;
    let log_path = dir.path().join("pebble.log");
    let out = File::create(&log_path).map_err(|e| fatal("pebble log", e))?;
    let err = out.try_clone().map_err(|e| fatal("pebble log", e))?;
    let pebble = match Command::new(pebble_bin)
        .arg("-config")
        .arg(&config_path)
        .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
        .env("PEBBLE_VA_NOSLEEP", "1")
        .env("PEBBLE_WFE_NONCEREJECT", "0")
        .env("PEBBLE_AUTHZREUSE", "0")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
    {
        Ok(p) => p,
        Err(e) => {
            kill(dns);
            return Err(fatal("starting pebble", e));
        }
    };
    let (mut pebble, mut dns) = (pebble, dns);
    let ca = dir.path().join("listener-ca.pem");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let exited = match (pebble.try_wait(), dns.try_wait()) {
            (Ok(Some(s)), _) => Some(format!("pebble exited ({s})")),
            (_, Ok(Some(s))) => Some(format!("pebble-challtestsrv exited ({s})")),
            _ => None,
        };
        let ready = exited.is_none()
            && TcpStream::connect_timeout(&loopback(dns_mgmt_port), POLL).is_ok()
            && matches!(https_get(acme_port, "/dir", &ca), Ok((200, _)));
        if ready {
            return Ok((pebble, dns, acme_port, mgmt_port));
        }
        if exited.is_some() || Instant::now() >= deadline {
            kill(pebble);
            kill(dns);
            let logs = format!(
                "--- pebble.log ---\n{}\n--- challtestsrv.log ---\n{}",
                fs::read_to_string(&log_path).unwrap_or_default(),
                fs::read_to_string(&dns_log).unwrap_or_default()
            );
            if logs.contains("address already in use") {
                return Err(StartError::PortInUse);
            }
            return Err(StartError::Fatal(format!(
                "pebble did not become ready within {START_TIMEOUT:?} ({})\n{logs}",
                exited.unwrap_or_else(|| "still running".into())
            )));
        }
        std::thread::sleep(POLL);
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// A throw-away CA and a listener certificate for 127.0.0.1 / localhost.
fn write_listener_pki(dir: &Path) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "greenlight test pebble listener CA",
    );
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().expect("listener key");
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("listener params");
    params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress(Ipv4Addr::LOCALHOST.into()));
    let cert = params.signed_by(&key, &issuer).expect("listener cert");
    fs::write(dir.join("listener-ca.pem"), ca_cert.pem()).expect("write CA");
    fs::write(dir.join("listener.pem"), cert.pem()).expect("write listener cert");
    fs::write(dir.join("listener.key"), key.serialize_pem()).expect("write listener key");
}

/// `GET path` over HTTPS/1.0 on 127.0.0.1:`port`, trusting only `ca`;
/// returns (status, body).
fn https_get(port: u16, path: &str, ca: &Path) -> io::Result<(u16, Vec<u8>)> {
    let mut roots = rustls::RootCertStore::empty();
    let der = CertificateDer::from_pem_file(ca).map_err(io::Error::other)?;
    roots.add(der).map_err(io::Error::other)?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(io::Error::other)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::IpAddress(Ipv4Addr::LOCALHOST.into());
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(io::Error::other)?;
    let mut sock = TcpStream::connect_timeout(&loopback(port), IO_TIMEOUT)?;
    sock.set_read_timeout(Some(IO_TIMEOUT))?;
    sock.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    write!(tls, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n")?;
    tls.flush()?;
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // Some servers close without close_notify; the body is complete.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e),
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| io::Error::other("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line: {head}")))?;
    Ok((status, raw[split + 4..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::find_program;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_missing_pebble_is_one_line_naming_it_and_test_sh() {
        let empty = tempfile::tempdir().expect("tmp");
        let err = find_program("pebble", Some(empty.path().as_os_str())).unwrap_err();
        assert!(!err.contains('\n'), "one line: {err}");
        assert!(err.contains("`pebble`"), "names the program: {err}");
        assert!(err.contains("./test.sh"), "names the fix: {err}");
        let err = find_program("pebble", None).unwrap_err();
        assert!(err.contains("./test.sh"), "no PATH at all: {err}");
    }

    #[test]
    fn only_an_executable_file_on_path_is_taken() {
        let dirs = [
            tempfile::tempdir().expect("tmp"),
            tempfile::tempdir().expect("tmp"),
        ];
        let plain = dirs[0].path().join("pebble");
        fs::write(&plain, "").expect("write");
        let exe = dirs[1].path().join("pebble");
        fs::write(&exe, "#!/bin/sh\n").expect("write");
        fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).expect("chmod");
        let path = std::env::join_paths(dirs.iter().map(|d| d.path())).expect("PATH");
        assert_eq!(find_program("pebble", Some(&path)), Ok(exe));
    }
}
