//! A private etcd server for tests: started from the `etcd` binary on ephemeral loopback ports with a temporary data
//! dir (on `/dev/shm` when there is one), stopped (kill + wait) on drop, restartable on the same ports and data; and a
//! private cluster of such servers ([`EtcdCluster`]); and a TCP proxy that can cut a client off ([`Proxy`]).
//!
//! Tests that need etcd **fail** with a clear message when it cannot be started; they are never skipped.

use crate::TestBackend;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use taskflow::backend::etcd::{EtcdBackend, EtcdConfig};

mod cluster;
mod proxy;
pub use cluster::{EtcdCluster, Paused};
pub use proxy::Proxy;

/// The etcd binary: `$ETCD_BIN`, else `etcd` on the `PATH`.
pub fn etcd_binary() -> String {
    std::env::var("ETCD_BIN").unwrap_or_else(|_| "etcd".to_owned())
}

/// A private etcd server (alone, or a member of an [`EtcdCluster`]).
pub struct EtcdServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// The member name (`--name`).
    name: String,
    /// Every member's `name=peer URL` (`--initial-cluster`).
    initial_cluster: String,
    client_port: u16,
    peer_port: u16,
    /// Health and metrics are served here (plain HTTP, also when the client port uses TLS).
    metrics_port: u16,
    /// Server certificate and key (PEM files) when the client port uses TLS.
    tls: Option<(PathBuf, PathBuf)>,
    /// More command-line flags for etcd.
    flags: Vec<String>,
}

/// `n` distinct ephemeral loopback ports: all are bound at once (so the kernel hands out `n` different ones), then
/// released for etcd to bind. Another process may take one in between: a start that fails is retried on fresh ports.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("cannot bind an ephemeral loopback port"))
        .collect();
    listeners
        .iter()
        .map(|listener| listener.local_addr().expect("no local address").port())
        .collect()
}

/// A fresh temporary data dir under `root`.
fn data_dir(root: &Path) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("taskflow-etcd-")
        .tempdir_in(root)
        .or_else(|_| tempfile::tempdir())
        .expect("cannot create a temporary data dir for etcd")
}

/// The message of a test that cannot start its etcd.
fn cannot_start(reason: &str) -> String {
    format!(
        "cannot start a private etcd server for the tests ({reason}). Install it (Debian: `apt-get install \
         etcd-server`) or set ETCD_BIN to the etcd binary."
    )
}

fn temp_root() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

impl EtcdServer {
    /// Starts a fresh server and waits until it is healthy. Panics with a clear message when it cannot start.
    pub fn start() -> Self {
        Self::start_in(&temp_root())
    }

    /// [`start`](Self::start) with the data dir under `root` (e.g. the normal disk, for a benchmark with real fsyncs).
    pub fn start_in(root: &Path) -> Self {
        Self::start_with(root, None, Vec::new())
    }

    /// Starts a fresh server whose client port uses TLS with this certificate and key (PEM files).
    pub fn start_tls(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self::start_with(&temp_root(), Some((cert.into(), key.into())), Vec::new())
    }

    /// [`start`](Self::start) with more command-line flags for etcd (e.g. `--quota-backend-bytes=2097152`); they are
    /// kept for [`restart`](Self::restart).
    pub fn start_with_flags<S: Into<String>>(flags: impl IntoIterator<Item = S>) -> Self {
        let flags = flags.into_iter().map(Into::into).collect();
        Self::start_with(&temp_root(), None, flags)
    }

    fn start_with(root: &Path, tls: Option<(PathBuf, PathBuf)>, flags: Vec<String>) -> Self {
        let mut last_error = String::new();
        for _ in 0..3 {
            let mut server = Self::member(root, "taskflow-test", &free_ports(3));
            server.tls = tls.clone();
            server.flags = flags.clone();
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("{}", cannot_start(&last_error));
    }

    /// A server not started yet, named `name`, on `ports` (client, peer, metrics), alone in its cluster until
    /// `initial_cluster` is set.
    fn member(root: &Path, name: &str, ports: &[u16]) -> Self {
        let mut server = Self {
            child: None,
            dir: data_dir(root),
            name: name.to_owned(),
            initial_cluster: String::new(),
            client_port: ports[0],
            peer_port: ports[1],
            metrics_port: ports[2],
            tls: None,
            flags: Vec::new(),
        };
        server.initial_cluster = server.peer();
        server
    }

    /// `name=peer URL`, this member's entry in `--initial-cluster`.
    fn peer(&self) -> String {
        format!("{}=http://127.0.0.1:{}", self.name, self.peer_port)
    }

    /// The client endpoint (`http://127.0.0.1:PORT`, `https://` with TLS).
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// The server process id (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The data dir.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Runs the server and waits until it is healthy.
    fn spawn(&mut self) -> Result<(), String> {
        self.launch()?;
        self.wait_healthy(Duration::from_secs(15))
    }

    /// Runs the server process (without waiting for it to be ready).
    fn launch(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| format!("cannot create the etcd log: {e}"))?;
        let err_log = log.try_clone().map_err(|e| e.to_string())?;
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut command = Command::new(etcd_binary());
        if let Some((cert, key)) = &self.tls {
            command
                .arg(format!("--cert-file={}", cert.display()))
                .arg(format!("--key-file={}", key.display()));
        }
        let child = command
            .arg(format!("--name={}", self.name))
            .arg(format!(
                "--data-dir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster={}", self.initial_cluster))
            .arg("--initial-cluster-state=new")
            .arg(format!(
                "--listen-metrics-urls=http://127.0.0.1:{}",
                self.metrics_port
            ))
            .arg("--logger=zap")
            .arg("--log-level=warn")
            .args(&self.flags)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .spawn()
            .map_err(|e| format!("cannot run `{}`: {e}", etcd_binary()))?;
        self.child = Some(child);
        Ok(())
    }

    fn wait_healthy(&mut self, limit: Duration) -> Result<(), String> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!(
                    "etcd exited with {status} at start; its log:\n{}",
                    self.log()
                ));
            }
            if self
                .get("/health")
                .is_some_and(|body| body.contains("\"health\":\"true\""))
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        Err(format!(
            "etcd did not become healthy within {limit:?}; its log:\n{}",
            self.log()
        ))
    }

    /// A plain HTTP GET on the metrics port (`/health`, `/metrics`); `None` if it fails.
    pub fn get(&self, path: &str) -> Option<String> {
        let mut stream = TcpStream::connect_timeout(
            &format!("127.0.0.1:{}", self.metrics_port).parse().ok()?,
            Duration::from_millis(500),
        )
        .ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        (head.split(' ').nth(1) == Some("200")).then(|| body.to_owned())
    }

    /// The Prometheus metrics of the server.
    pub fn metrics(&self) -> String {
        self.get("/metrics").unwrap_or_default()
    }

    /// The sum of a metric's samples (all label sets) in the server's Prometheus metrics.
    pub fn metric(&self, name: &str) -> f64 {
        self.metric_with(name, "")
    }

    /// The sum of a metric's samples whose labels contain `label` (e.g. `grpc_code="ResourceExhausted"`).
    pub fn metric_with(&self, name: &str, label: &str) -> f64 {
        self.metrics()
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter(|line| line.split(['{', ' ']).next() == Some(name))
            .filter(|line| line.contains(label))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Kills the server (SIGKILL) and waits for it. The data dir stays, so [`restart`](Self::restart) resumes it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same ports with the same data (after [`kill`](Self::kill)).
    pub fn restart(&mut self) {
        self.kill();
        if let Err(e) = self.spawn() {
            panic!("cannot restart the private etcd server: {e}");
        }
    }

    /// Pauses (SIGSTOP) or resumes (SIGCONT) the server.
    pub fn signal(&self, signal: &str) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(pid.to_string())
                .status();
        }
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill();
    }
}

static PREFIX: AtomicU64 = AtomicU64::new(0);

/// A unique key prefix for a test.
pub fn unique_prefix() -> String {
    format!(
        "/taskflow-test/{}-{}",
        std::process::id(),
        PREFIX.fetch_add(1, Ordering::Relaxed)
    )
}

/// The configuration tests use: the server's endpoint, a unique prefix, short timeouts.
pub fn config(server: &EtcdServer) -> EtcdConfig {
    EtcdConfig::new([server.endpoint()])
        .prefix(unique_prefix())
        .connect_timeout(Duration::from_secs(5))
        .request_timeout(Duration::from_secs(3))
}

/// Connects a backend to the server; panics with a clear message if it cannot.
pub async fn connect(config: EtcdConfig) -> EtcdBackend {
    match config.connect().await {
        Ok(backend) => backend,
        Err(e) => panic!("cannot connect to the private etcd server: {e}"),
    }
}

/// A fresh private etcd server and a backend on it, for the semantic suite.
pub async fn backend() -> TestBackend {
    let server = EtcdServer::start();
    let backend = connect(config(&server)).await;
    TestBackend {
        backend: Arc::new(backend),
        guard: Some(Box::new(server)),
    }
}

/// A fresh private etcd server and a backend on it with an adjusted configuration.
pub async fn backend_with(
    configure: impl FnOnce(EtcdConfig) -> EtcdConfig,
) -> (EtcdServer, EtcdBackend) {
    let server = EtcdServer::start();
    let backend = connect(configure(config(&server))).await;
    (server, backend)
}
