//! Running the real `greenlight` binary.
//!
//! [`ProxyProcess::start`] writes the YAML to `config.yaml` in a fresh
//! temporary directory and runs `greenlight run -c <that file>` with that
//! directory as working directory, stdout and stderr going to `stdout.log` and
//! `stderr.log` beside it. [`ProxyProcess::wait_ready`] then polls TCP connects
//! to the listener addresses the test put in the YAML, failing early with the
//! captured stderr if the process exits. The process is killed on drop, and if
//! the test is panicking its stderr is printed to help diagnose the failure.
//!
//! [`run_cli`] runs one-shot commands such as `greenlight check -c FILE` with a
//! time limit. [`fill_ports`] substitutes `{NAME}` placeholders in YAML templates.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use super::{POLL_INTERVAL, deadline_in, wait_until_async};

/// How long [`ProxyProcess::wait_ready`] waits for the listeners.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`run_cli`] lets a command run.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(10);

/// Path of the `greenlight` binary under test.
pub fn greenlight_bin() -> PathBuf {
    // The only place naming the binary. Cargo sets CARGO_BIN_EXE_<name> when
    // compiling integration tests of a package that has a [[bin]] <name>, and
    // builds that binary first.
    PathBuf::from(env!("CARGO_BIN_EXE_greenlight"))
}

/// Why [`ProxyProcess::start`] or [`ProxyProcess::wait_ready`] failed.
pub enum StartError {
    /// Writing the config or spawning the process failed.
    Spawn(io::Error),
    /// The process exited before all listeners accepted connections.
    Exited {
        /// Its exit status.
        status: ExitStatus,
        /// Everything it wrote to stderr.
        stderr: String,
    },
    /// A listener still refused connections when the deadline passed.
    NotReady {
        /// The first address that never accepted.
        addr: SocketAddr,
        /// How long we waited.
        waited: Duration,
        /// Everything the process wrote to stderr so far.
        stderr: String,
    },
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Spawn(e) => write!(f, "could not start greenlight: {e}"),
            StartError::Exited { status, stderr } => {
                write!(
                    f,
                    "greenlight exited during startup ({status}); stderr:\n{stderr}"
                )
            }
            StartError::NotReady {
                addr,
                waited,
                stderr,
            } => write!(
                f,
                "greenlight not accepting on {addr} after {waited:?}; stderr:\n{stderr}"
            ),
        }
    }
}

// `unwrap()`/`expect()` print Debug: show the readable form with real newlines.
impl fmt::Debug for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for StartError {}

/// A running proxy process; killed on drop.
pub struct ProxyProcess {
    child: Child,
    pid: u32,
    dir: TempDir,
    config_path: PathBuf,
    exit: Option<ExitStatus>,
}

impl ProxyProcess {
    /// Runs `greenlight run -c <config>` with `yaml` as the config. Call
    /// [`ProxyProcess::wait_ready`] next. Must be called inside a tokio runtime.
    pub fn start(yaml: &str) -> Result<ProxyProcess, StartError> {
        Self::start_with_bin(&greenlight_bin(), yaml, &["run", "-c", "{config}"], &[])
    }

    /// [`ProxyProcess::start`] followed by [`ProxyProcess::wait_ready`] on `addrs`.
    pub async fn start_ready(yaml: &str, addrs: &[SocketAddr]) -> Result<ProxyProcess, StartError> {
        let mut proxy = Self::start(yaml)?;
        proxy.wait_ready(addrs).await?;
        Ok(proxy)
    }

    /// The general form: runs `bin` with `args`, in which an argument equal to
    /// `{config}` is replaced by the config file path, and with extra
    /// environment variables `env`. `RUST_LOG` defaults to `info` and
    /// `RUST_BACKTRACE` to `1` unless set here or in the test's environment.
    pub fn start_with_bin(
        bin: &Path,
        yaml: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<ProxyProcess, StartError> {
        let dir = tempfile::Builder::new()
            .prefix("greenlight-proxy-")
            .tempdir()
            .map_err(StartError::Spawn)?;
        let config_path = dir.path().join("config.yaml");
        std::fs::write(&config_path, yaml).map_err(StartError::Spawn)?;
        let stdout =
            std::fs::File::create(dir.path().join("stdout.log")).map_err(StartError::Spawn)?;
        let stderr =
            std::fs::File::create(dir.path().join("stderr.log")).map_err(StartError::Spawn)?;

        let args: Vec<OsString> = args
            .iter()
            .map(|a| match *a {
                "{config}" => config_path.clone().into_os_string(),
                other => other.into(),
            })
            .collect();
        let mut cmd = Command::new(bin);
        cmd.args(&args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true);
        for (key, default) in [("RUST_LOG", "info"), ("RUST_BACKTRACE", "1")] {
            if std::env::var_os(key).is_none() {
                cmd.env(key, default);
            }
        }
        cmd.envs(env.iter().copied());
        let child = cmd.spawn().map_err(|e| {
            StartError::Spawn(io::Error::new(e.kind(), format!("{}: {e}", bin.display())))
        })?;
        let pid = child.id().expect("a just-spawned child has a pid");
        Ok(ProxyProcess {
            child,
            pid,
            dir,
            config_path,
            exit: None,
        })
    }

    /// Waits (up to [`READY_TIMEOUT`]) until every address accepts a TCP
    /// connection. Fails early, with stderr, if the process exits.
    ///
    /// Each probe is a bare connect-then-close, which a TLS listener may log
    /// as a failed handshake.
    pub async fn wait_ready(&mut self, addrs: &[SocketAddr]) -> Result<(), StartError> {
        self.wait_ready_for(addrs, READY_TIMEOUT).await
    }

    /// [`ProxyProcess::wait_ready`] with an explicit time limit.
    pub async fn wait_ready_for(
        &mut self,
        addrs: &[SocketAddr],
        limit: Duration,
    ) -> Result<(), StartError> {
        let start = Instant::now();
        let mut pending: Vec<SocketAddr> = addrs.to_vec();
        loop {
            if let Some(status) = self.try_exit_status() {
                return Err(StartError::Exited {
                    status,
                    stderr: self.stderr(),
                });
            }
            let mut still = Vec::new();
            for addr in pending {
                let probe =
                    tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(addr));
                if !matches!(probe.await, Ok(Ok(_))) {
                    still.push(addr);
                }
            }
            pending = still;
            if pending.is_empty() {
                return Ok(());
            }
            if start.elapsed() >= limit {
                return Err(StartError::NotReady {
                    addr: pending[0],
                    waited: start.elapsed(),
                    stderr: self.stderr(),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The temporary directory holding the config and logs (also the
    /// process's working directory); a handy place for test certificates.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Path of the config file passed with `-c`.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Atomically replaces the config file (write + rename), e.g. before
    /// `signal("HUP")` in reload tests.
    pub fn write_config(&self, yaml: &str) -> io::Result<()> {
        let tmp = self.dir.path().join("config.yaml.tmp");
        std::fs::write(&tmp, yaml)?;
        std::fs::rename(&tmp, &self.config_path)
    }

    /// Sends signal `sig` (`"HUP"`, `"TERM"`, `"INT"`, ...) by running
    /// `kill -s SIG PID`. Refuses if the process has already exited, so a
    /// recycled pid is never signalled.
    pub fn signal(&mut self, sig: &str) -> io::Result<()> {
        if let Some(status) = self.try_exit_status() {
            return Err(io::Error::other(format!(
                "greenlight already exited ({status})"
            )));
        }
        let status = std::process::Command::new("kill")
            .args(["-s", sig, &self.pid.to_string()])
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "kill -s {sig} {} failed: {status}",
                self.pid
            )))
        }
    }

    /// The exit status if the process has exited, without waiting.
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    /// Waits up to `timeout` for the process to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.exit.is_none()
            && let Ok(Ok(status)) = tokio::time::timeout(timeout, self.child.wait()).await
        {
            self.exit = Some(status);
        }
        self.exit
    }

    /// Sends SIGTERM and waits up to `timeout` for a graceful exit; kills the
    /// process if it is still running then. Returns the graceful exit status,
    /// or `None` if it had to be killed.
    pub async fn stop(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.signal("TERM").is_err() {
            return self.try_exit_status();
        }
        let status = self.wait_exit(timeout).await;
        if status.is_none() {
            self.kill().await;
        }
        status
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub async fn kill(&mut self) {
        if self.try_exit_status().is_none() {
            let _ = self.child.start_kill();
            self.wait_exit(Duration::from_secs(5)).await;
        }
    }

    /// Everything written to stderr so far (the proxy's log).
    pub fn stderr(&self) -> String {
        read_lossy(&self.dir.path().join("stderr.log"))
    }

    /// Everything written to stdout so far.
    pub fn stdout(&self) -> String {
        read_lossy(&self.dir.path().join("stdout.log"))
    }

    /// The current length of stderr, to pass to
    /// [`ProxyProcess::wait_for_stderr_after`] so only later lines count.
    pub fn log_mark(&self) -> usize {
        self.stderr().len()
    }

    /// Waits up to `timeout` until stderr contains `needle`.
    pub async fn wait_for_stderr(&self, needle: &str, timeout: Duration) -> bool {
        self.wait_for_stderr_after(0, needle, timeout).await
    }

    /// Waits up to `timeout` until stderr written after `mark` contains `needle`.
    pub async fn wait_for_stderr_after(
        &self,
        mark: usize,
        needle: &str,
        timeout: Duration,
    ) -> bool {
        wait_until_async(deadline_in(timeout), || async {
            self.stderr()
                .get(mark..)
                .is_some_and(|s| s.contains(needle))
        })
        .await
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        if self.try_exit_status().is_none() {
            // kill_on_drop also does this; being explicit costs nothing.
            let _ = self.child.start_kill();
        }
        if std::thread::panicking() {
            let stderr = self.stderr();
            let lines: Vec<&str> = stderr.lines().collect();
            let tail = &lines[lines.len().saturating_sub(200)..];
            eprintln!(
                "---- greenlight (pid {}) stderr, last {} lines ----\n{}\n---- end ----",
                self.pid,
                tail.len(),
                tail.join("\n")
            );
        }
    }
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Runs `greenlight <args>` to completion (at most [`CLI_TIMEOUT`]) and
/// returns its output. Blocking; panics if it cannot be run or times out.
pub fn run_cli(args: &[&str]) -> Output {
    run_cli_with_bin(&greenlight_bin(), args, CLI_TIMEOUT)
}

/// Kills a process the test did not spawn itself (the successor a SIGUSR2
/// upgrade started), also when the test fails.
pub struct KillOnDrop(pub i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    }
}

/// The pid of the successor a SIGUSR2 upgrade started, from the log line
/// `upgrade: new process PID ...` in `log`.
pub fn successor_pid(log: &str) -> i32 {
    log.split("upgrade: new process ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .expect("the successor's pid is logged")
}

/// Runs the real CLI against the admin API at `admin` (`--admin` appended),
/// off the async runtime: the command blocks, and a test's runtime may have
/// only two workers.
pub async fn admin_cli(admin: SocketAddr, args: &[&str]) -> Output {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.push("--admin".into());
    all.push(admin.to_string());
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        run_cli(&refs)
    })
    .await
    .expect("cli task")
}

/// [`run_cli`] for any binary and time limit. Output goes through temporary
/// files, so a chatty command cannot block on a full pipe.
pub fn run_cli_with_bin(bin: &Path, args: &[&str], limit: Duration) -> Output {
    let dir = tempfile::tempdir().expect("tempdir for CLI output");
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let mut child = std::process::Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("create stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("create stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} {args:?} still running after {limit:?}; stderr:\n{}",
                bin.display(),
                read_lossy(&err_path)
            );
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    Output {
        status,
        stdout: std::fs::read(&out_path).unwrap_or_default(),
        stderr: std::fs::read(&err_path).unwrap_or_default(),
    }
}

/// Writes `yaml` to `config.yaml` in a new temporary directory, e.g. for
/// `run_cli(&["check", "-c", path])`. Keep the `TempDir` alive while using the path.
pub fn temp_config(yaml: &str) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir for config");
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, yaml).expect("write config");
    (dir, path)
}

/// Replaces each `{NAME}` in `template` by its value, e.g.
/// `fill_ports(YAML, &[("HTTP", http_port), ("UP", upstream.port())])`.
/// Panics if a `{UPPER_CASE}` placeholder is left over (a typo in the test).
pub fn fill_ports(template: &str, values: &[(&str, u16)]) -> String {
    let mut out = template.to_string();
    for (name, value) in values {
        out = out.replace(&format!("{{{name}}}"), &value.to_string());
    }
    for (i, _) in out.match_indices('{') {
        let rest = &out[i + 1..];
        if let Some(end) = rest.find('}') {
            let name = &rest[..end];
            let placeholder = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            assert!(
                !placeholder,
                "unfilled placeholder {{{name}}} in YAML template"
            );
        }
    }
    out
}

/// greenlight with one plain listener and an admin address, whose one
/// (default) site sends everything to the upstream `name`; `upstream` is
/// that upstream's YAML body (`active`, `pools`, other keys), indented four
/// spaces. Returns the process, the listener and the admin address.
pub async fn start_single_upstream(
    name: &str,
    upstream: &str,
) -> (ProxyProcess, SocketAddr, SocketAddr) {
    let ports = crate::support::free_ports(2);
    let (http, admin) = (ports[0], ports[1]);
    let yaml = format!(
        "listeners:\n  http: {{address: \"127.0.0.1:{http}\"}}\nadmin: {{address: \"127.0.0.1:{admin}\"}}\nsites:\n  s: {{hosts: [a.test], default: true, routes: [{{path: /, upstream: {name}}}]}}\nupstreams:\n  {name}:\n{upstream}"
    );
    let http: SocketAddr = ([127, 0, 0, 1], http).into();
    let admin: SocketAddr = ([127, 0, 0, 1], admin).into();
    let p = ProxyProcess::start_ready(&yaml, &[http, admin])
        .await
        .expect("greenlight starts");
    (p, http, admin)
}

/// A greenlight serving one plain and one TLS listener, with a test CA's
/// certificate for `names` written to `{DIR}/{cert}.crt|.key`.
pub struct TlsSite {
    /// The CA (for clients' trust).
    pub ca: crate::support::TestCa,
    /// The plain listener.
    pub http: SocketAddr,
    /// The TLS listener.
    pub https: SocketAddr,
    /// The running proxy.
    pub proxy: ProxyProcess,
}

impl TlsSite {
    /// Starts greenlight on `template`, whose `{HTTP}`, `{HTTPS}`, `{ADMIN}`
    /// and `{DIR}` (the CA's directory) are filled here, `extra` ports
    /// (upstreams) too; `cert` names the key pair issued to `names`.
    pub async fn start(
        template: &str,
        names: &[&str],
        cert: &str,
        extra: &[(&str, u16)],
    ) -> TlsSite {
        let ca = crate::support::TestCa::new();
        ca.issue_to(names, ca.dir(), cert);
        let ports = crate::support::free_ports(3);
        let mut fills = vec![("HTTP", ports[0]), ("HTTPS", ports[1]), ("ADMIN", ports[2])];
        fills.extend_from_slice(extra);
        let yaml = fill_ports(
            &template.replace("{DIR}", &ca.dir().display().to_string()),
            &fills,
        );
        let http: SocketAddr = ([127, 0, 0, 1], ports[0]).into();
        let https: SocketAddr = ([127, 0, 0, 1], ports[1]).into();
        let proxy = ProxyProcess::start_ready(&yaml, &[http, https])
            .await
            .expect("greenlight starts");
        TlsSite {
            ca,
            http,
            https,
            proxy,
        }
    }
}
