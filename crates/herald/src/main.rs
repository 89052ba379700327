//! `herald`: the embedded mode (design sections 1 and 8). Auth, tasks-api, notifier and
//! gateway in one process on one port: the four [`herald_service::Service`]s on the one
//! runner the standalone binaries use ([`Composition`]), sharing one broker (in memory unless
//! `--redis-url`) and one database (a SQLite file unless `--database-url`), with one set of
//! `/healthz`, `/readyz` (one check per service) and `/metrics`. The public paths are the
//! distributed mode's; stopping is the gateway's (the first signal drains, a second stops at
//! once).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use herald_auth::AuthState;
use herald_broker::{Broker, RedisConfig};
use herald_gateway::Gateway;
use herald_notifier::Notifier;
use herald_service::{Composition, ConfigArgs, Context, Secret, config};
use herald_tasks_api::TasksApi;

/// Default database of the embedded mode: a SQLite file beside the working directory.
const DEFAULT_DATABASE_URL: &str = "sqlite://./herald-data/herald.db";

/// Name of the signing key file kept beside a SQLite database.
const SIGNING_KEY_FILE: &str = "signing-key.pem";

/// Herald in one process: auth, tasks-api, notifier and gateway on one port, with the
/// in-memory broker and a SQLite file by default.
///
/// Every setting of the four services applies (HERALD_* environment variables over an
/// optional TOML file over defaults; see docs/configuration.md). The options below override
/// the settings all four share. Migrations are applied at start. With a SQLite file and no
/// HERALD_JWT_PRIVATE_KEY_FILE, the token signing key is kept beside the database
/// (signing-key.pem, made on first start), so restarts keep everyone signed in.
#[derive(Debug, Parser)]
#[command(name = "herald", version, about, long_about)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
    /// `host:port` to bind (port 0 = any free port).
    #[arg(
        long,
        env = "HERALD_LISTEN",
        default_value = "0.0.0.0:8080",
        global = true
    )]
    listen: String,
    /// Redis URL; without it the broker lives in this process's memory.
    #[arg(long, env = "HERALD_REDIS_URL", global = true, hide_env_values = true)]
    redis_url: Option<String>,
    /// `sqlite://FILE` (its folder is created) or `postgres://...`.
    #[arg(long, env = "HERALD_DATABASE_URL", default_value = DEFAULT_DATABASE_URL, global = true, hide_env_values = true)]
    database_url: String,
    /// Folder of the web client served at `/`.
    #[arg(
        long,
        env = "HERALD_WEB_DIR",
        default_value = "web/dist",
        global = true
    )]
    web_dir: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply the migrations, then serve (the default).
    Serve,
    /// Apply the migrations of auth and tasks-api, then exit.
    Migrate,
}

/// The settings of the four services, with the shared ones taken from the command line.
struct Settings {
    auth: herald_auth::Settings,
    tasks: herald_tasks_api::Settings,
    notifier: herald_notifier::Settings,
    gateway: herald_gateway::Settings,
    redis_url: Option<String>,
    database_url: String,
}

impl Settings {
    fn load(cli: &Cli) -> anyhow::Result<Self> {
        let file = cli.config.config.as_deref();
        let mut auth: herald_auth::Settings = config::load(file).context("auth settings")?;
        let mut tasks: herald_tasks_api::Settings =
            config::load(file).context("tasks-api settings")?;
        let mut notifier: herald_notifier::Settings =
            config::load(file).context("notifier settings")?;
        let mut gateway = herald_gateway::Settings::load(file).context("gateway settings")?;
        let redis_url = cli
            .redis_url
            .as_deref()
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(str::to_owned);
        let database_url = cli.database_url.trim().to_owned();
        auth.listen.clone_from(&cli.listen);
        tasks.listen.clone_from(&cli.listen);
        notifier.listen.clone_from(&cli.listen);
        gateway.listen.clone_from(&cli.listen);
        auth.database_url = Secret::new(database_url.clone());
        tasks.database_url = Secret::new(database_url.clone());
        auth.redis_url = redis_url.clone().map(Secret::new);
        tasks.redis_url = redis_url.clone().map(Secret::new);
        notifier.redis_url = redis_url.clone().map(Secret::new);
        if let Some(url) = &redis_url {
            gateway.redis_url = Secret::new(url.clone());
        }
        gateway.web_dir.clone_from(&cli.web_dir);
        Ok(Self {
            auth,
            tasks,
            notifier,
            gateway,
            redis_url,
            database_url,
        })
    }

    /// One broker for the whole process.
    fn broker(&self) -> anyhow::Result<Broker> {
        match &self.redis_url {
            Some(url) => {
                let redis =
                    RedisConfig::new(url.clone()).with_prefix(self.gateway.redis_prefix.clone());
                Broker::redis(&redis).context("configuring Redis")
            }
            None => Ok(Broker::memory()),
        }
    }

    /// Both services' migrations, each with its own history table.
    async fn migrate(&self) -> anyhow::Result<()> {
        create_sqlite_folder(&self.database_url)?;
        herald_auth::migrate(&self.auth)
            .await
            .context("auth migrations")?;
        herald_tasks_api::migrate(&self.tasks)
            .await
            .context("tasks-api migrations")?;
        Ok(())
    }
}

/// The file of a `sqlite://` database URL (`None` for other databases and in-memory SQLite).
fn sqlite_file(database_url: &str) -> Option<&Path> {
    let path = database_url
        .strip_prefix("sqlite:")?
        .trim_start_matches("//");
    let path = path.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| Path::new(path))
}

/// The folder of a `sqlite://` database file (`.` for a bare file name).
fn sqlite_folder(database_url: &str) -> Option<PathBuf> {
    let file = sqlite_file(database_url)?;
    Some(match file.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder.to_owned(),
        _ => PathBuf::from("."),
    })
}

/// Creates the folder of a `sqlite://` database file (SQLite creates the file, not folders).
fn create_sqlite_folder(database_url: &str) -> anyhow::Result<()> {
    if let Some(folder) = sqlite_folder(database_url) {
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("creating {}", folder.display()))?;
    }
    Ok(())
}

/// With a SQLite file and no `HERALD_JWT_PRIVATE_KEY_FILE`, the signing key lives beside the
/// database (`signing-key.pem`, made on first start), so a restart keeps everyone signed in.
fn ensure_local_signing_key(
    settings: &mut herald_auth::Settings,
    database_url: &str,
) -> anyhow::Result<()> {
    if settings.jwt_private_key_file.is_some() {
        return Ok(());
    }
    let Some(folder) = sqlite_folder(database_url) else {
        return Ok(());
    };
    let file = folder.join(SIGNING_KEY_FILE);
    if !file.exists() {
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("creating {}", folder.display()))?;
        let pem = herald_auth::keys::SigningKey::generate_pem();
        anyhow::ensure!(!pem.is_empty(), "could not generate a signing key");
        write_private(&file, &pem).with_context(|| format!("writing {}", file.display()))?;
        tracing::info!(file = %file.display(), "generated the signing key of this installation");
    }
    settings.jwt_private_key_file = Some(file);
    Ok(())
}

/// Writes `contents` to a new file only its owner can read.
fn write_private(file: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(file)?.write_all(contents.as_bytes())
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    herald_service::telemetry::init("herald");
    let settings = Settings::load(&cli)?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => {
            settings.migrate().await?;
            println!(
                "Migrations applied to {}",
                describe_database(&settings.database_url)
            );
            Ok(())
        }
        Command::Serve => serve(settings).await,
    }
}

async fn serve(mut settings: Settings) -> anyhow::Result<()> {
    settings.migrate().await?;
    ensure_local_signing_key(&mut settings.auth, &settings.database_url)?;
    let mut context = Context::new(settings.broker()?);

    // The four services, built the same way, on the one runner. With several components
    // `/readyz` has one check per service, named after it.
    let mut herald = Composition::new();
    let auth = herald
        .build::<AuthState>(&settings.auth, &context)
        .await
        .context("starting auth")?;
    // Auth's verifier follows the key set it publishes, so the others accept new keys at once.
    context = context.with_verifier(auth.verifier().clone());
    herald
        .build::<TasksApi>(&settings.tasks, &context)
        .await
        .context("starting tasks-api")?;
    herald
        .build::<Notifier>(&settings.notifier, &context)
        .await
        .context("starting the notifier")?;
    herald
        .build::<Gateway>(&settings.gateway, &context)
        .await
        .context("starting the gateway")?;

    let process = herald.start(&settings.gateway.listen, settings.gateway.workers)?;
    tracing::info!(addr = %process.address(), "herald listening");
    print_banner(process.address(), &settings);
    process.run_until_stopped().await
}

/// What a person starting `herald` needs to know, on stdout.
fn print_banner(address: SocketAddr, settings: &Settings) {
    let host = if address.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else if address.is_ipv6() {
        format!("[{}]", address.ip())
    } else {
        address.ip().to_string()
    };
    let url = format!("http://{host}:{}", address.port());
    let broker = match &settings.redis_url {
        Some(_) => "Redis",
        None => "in memory (this process)",
    };
    let web = if herald_gateway::web::has_web_client(&settings.gateway.web_dir) {
        String::new()
    } else {
        format!(
            "\n  The web client is not built ({} has no index.html): run `make run`, or `cd web && npm ci && npm run build`.",
            settings.gateway.web_dir.display()
        )
    };
    println!(
        "\nHerald is running at {url}\n  \
         Open it in a browser, choose a username and a password, and press \"Create account\" to sign up.\n  \
         Data: {}; broker: {broker}. API docs: {url}/docs. Stop with Ctrl-C.{web}\n",
        describe_database(&settings.database_url),
    );
}

/// The database without credentials.
fn describe_database(url: &str) -> String {
    if let Some(path) = sqlite_file(url) {
        return format!("SQLite file {}", path.display());
    }
    if url.starts_with("sqlite:") {
        return "SQLite in memory".to_owned();
    }
    match url.split_once('@') {
        Some((_, host)) => format!("Postgres at {host}"),
        None => "Postgres".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_descriptions_hide_credentials() {
        assert_eq!(
            describe_database("sqlite://./herald-data/herald.db"),
            "SQLite file ./herald-data/herald.db"
        );
        assert_eq!(
            describe_database("postgres://user:secret@db:5432/herald"),
            "Postgres at db:5432/herald"
        );
    }

    #[test]
    fn the_sqlite_folder_is_created() -> anyhow::Result<()> {
        let root = std::env::temp_dir().join(format!("herald-folder-{}", std::process::id()));
        let file = root.join("a/b/herald.db");
        create_sqlite_folder(&format!("sqlite://{}?mode=rwc", file.display()))?;
        assert!(root.join("a/b").is_dir());
        std::fs::remove_dir_all(&root)?;
        create_sqlite_folder("postgres://localhost/herald")?;
        create_sqlite_folder("sqlite::memory:")?;
        assert_eq!(
            sqlite_folder("sqlite://herald.db"),
            Some(PathBuf::from("."))
        );
        assert_eq!(sqlite_folder("sqlite::memory:"), None);
        Ok(())
    }

    #[test]
    fn the_signing_key_is_kept_beside_the_database() -> anyhow::Result<()> {
        let root = std::env::temp_dir().join(format!("herald-key-{}", std::process::id()));
        let url = format!("sqlite://{}/herald.db", root.display());
        let mut first = herald_auth::Settings::default();
        ensure_local_signing_key(&mut first, &url)?;
        let file = root.join(SIGNING_KEY_FILE);
        assert_eq!(first.jwt_private_key_file.as_deref(), Some(file.as_path()));
        let pem = std::fs::read_to_string(&file)?;
        assert!(herald_auth::keys::SigningKey::from_pem(&pem).is_some());
        let mut second = herald_auth::Settings::default();
        ensure_local_signing_key(&mut second, &url)?;
        assert_eq!(
            std::fs::read_to_string(&file)?,
            pem,
            "an existing key is kept"
        );
        std::fs::remove_dir_all(&root)?;

        let mut postgres = herald_auth::Settings::default();
        ensure_local_signing_key(&mut postgres, "postgres://localhost/herald")?;
        assert_eq!(postgres.jwt_private_key_file, None);
        Ok(())
    }
}
