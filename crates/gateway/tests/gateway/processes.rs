//! Real processes for the multi-node scenarios: the `herald-gateway` binary, a dedicated
//! `redis-server` that a test may kill, and nginx in front of several gateways. Each
//! process is killed when its handle is dropped; its output goes to a file in the test's
//! scratch folder, shown when a start fails.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use herald_common::ids::UserId;
use tokio::process::{Child, Command};

use crate::support::WAIT;

/// A scratch folder, removed on drop.
pub struct Scratch {
    pub path: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("herald-{name}-{}", UserId::new()));
        std::fs::create_dir_all(&path).unwrap();
        Self { path }
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; the caller binds it right away).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process, killed (SIGKILL) on drop.
pub struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `program` with `args` and `env`, its output going to `<scratch>/<name>.log`.
    pub fn start(
        scratch: &Scratch,
        name: &str,
        program: impl AsRef<std::ffi::OsStr>,
        args: &[&str],
        env: &[(&str, String)],
    ) -> Self {
        let log = scratch.file(&format!("{name}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let err = out.try_clone().unwrap();
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Self {
            name: name.to_owned(),
            child,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("the process is running")
    }

    /// Sends `signal` (`TERM`, `KILL`) with kill(1).
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {}", self.name);
    }

    /// SIGKILL, and waits for the end.
    pub async fn kill9(&mut self) {
        self.signal("KILL");
        let _ = self.child.wait().await;
    }

    /// Waits up to `limit` for the process to exit.
    pub async fn exited_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(limit, self.child.wait())
            .await
            .ok()
            .map(Result::unwrap)
    }

    /// The process's output so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Polls `url` until it answers 200 (or `process` exits).
async fn wait_http_ok(process: &mut Process, url: &str) {
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + WAIT * 3;
    loop {
        if let Ok(response) = client.get(url).send().await
            && response.status().is_success()
        {
            return;
        }
        if let Some(status) = process.exited_within(Duration::from_millis(50)).await {
            panic!(
                "{} exited with {status}:\n{}",
                process.name(),
                process.output()
            );
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} not ready at {url}:\n{}",
            process.name(),
            process.output()
        );
    }
}

/// A `herald-gateway` process.
pub struct GatewayProcess {
    pub process: Process,
    pub port: u16,
}

impl GatewayProcess {
    /// Starts the binary on a free port with the test environment plus `env`, and waits
    /// until it is ready.
    pub async fn start(
        scratch: &Scratch,
        name: &str,
        redis_url: &str,
        prefix: &str,
        env: &[(&str, String)],
    ) -> Self {
        let port = free_port();
        let mut all = vec![
            ("HERALD_LISTEN", format!("127.0.0.1:{port}")),
            ("HERALD_REDIS_URL", redis_url.to_owned()),
            ("HERALD_REDIS_PREFIX", prefix.to_owned()),
            ("HERALD_WEB_DIR", "/nonexistent".to_owned()),
            ("HERALD_WORKERS", "1".to_owned()),
            ("HERALD_NODE_NAME", name.to_owned()),
            ("RUST_LOG", "info".to_owned()),
        ];
        all.extend(env.iter().cloned());
        let mut process = Process::start(
            scratch,
            name,
            env!("CARGO_BIN_EXE_herald-gateway"),
            &[],
            &all,
        );
        wait_http_ok(&mut process, &format!("http://127.0.0.1:{port}/readyz")).await;
        Self { process, port }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/connection/websocket", self.port)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// A dedicated `redis-server` without persistence, on its own port, that a test may kill
/// and start again on the same port.
pub struct RedisProcess {
    pub process: Process,
    pub port: u16,
    starts: u32,
}

impl RedisProcess {
    pub async fn start(scratch: &Scratch) -> Self {
        let port = free_port();
        let process = Self::spawn(scratch, port, 0).await;
        Self {
            process,
            port,
            starts: 1,
        }
    }

    async fn spawn(scratch: &Scratch, port: u16, start: u32) -> Process {
        let port_arg = port.to_string();
        let dir = scratch.path.to_string_lossy().into_owned();
        let process = Process::start(
            scratch,
            &format!("redis-{start}"),
            "redis-server",
            &[
                "--port",
                &port_arg,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                &dir,
            ],
            &[],
        );
        let deadline = tokio::time::Instant::now() + WAIT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not start:\n{}",
                process.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        process
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: everything in it is lost.
    pub async fn kill9(&mut self) {
        self.process.kill9().await;
    }

    /// Starts a new, empty server on the same port.
    pub async fn restart(&mut self, scratch: &Scratch) {
        self.process = Self::spawn(scratch, self.port, self.starts).await;
        self.starts += 1;
    }
}

/// nginx (Debian's package) proxying HTTP and WebSockets to gateways: `primary` takes every
/// request while it is up; `backups` take over when it fails. It runs as a single process
/// (`master_process off`), so killing it leaves no worker behind.
pub struct NginxProcess {
    /// Held for the test's length: dropping it stops nginx.
    _process: Process,
    pub port: u16,
}

impl NginxProcess {
    pub async fn start(scratch: &Scratch, primary: u16, backups: &[u16]) -> Self {
        let port = free_port();
        let root = scratch.path.join("nginx");
        std::fs::create_dir_all(root.join("logs")).unwrap();
        let mut servers = format!("server 127.0.0.1:{primary} max_fails=1 fail_timeout=30s;\n");
        for backup in backups {
            servers.push_str(&format!("        server 127.0.0.1:{backup} backup;\n"));
        }
        let config = format!(
            r#"master_process off;
pid {root}/nginx.pid;
error_log {root}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      '';
    }}
    upstream gateways {{
        {servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://gateways;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 300s;
            proxy_connect_timeout 1s;
            proxy_next_upstream error timeout http_502 http_503;
        }}
    }}
}}
"#,
            root = root.display(),
        );
        let conf = root.join("nginx.conf");
        std::fs::write(&conf, config).unwrap();
        let mut process = Process::start(
            scratch,
            "nginx",
            nginx_binary(),
            &[
                "-p",
                &root.to_string_lossy(),
                "-c",
                &conf.to_string_lossy(),
                "-g",
                "daemon off;",
            ],
            &[],
        );
        wait_http_ok(&mut process, &format!("http://127.0.0.1:{port}/healthz")).await;
        Self {
            _process: process,
            port,
        }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/connection/websocket", self.port)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

fn nginx_binary() -> PathBuf {
    for candidate in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    panic!("nginx is required for the failover tests (apt-get install nginx-light)");
}
