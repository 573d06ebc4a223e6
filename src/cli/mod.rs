//! The `canopy` command line: argument parsing, tables and `--json`. Everything a server does
//! lives elsewhere; this module only asks and prints.

mod agent;
pub mod bench;
pub mod client;
pub mod demo;
pub mod deployment;
mod device;
mod docs;
mod event;
pub mod exit;
mod group;
pub mod logging;
mod login;
mod notify;
mod pki_cmd;
mod rights;
mod session;
pub mod table;
mod task;
mod vserver;

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use crate::clock::now_ms;
use crate::config::ServerConfig;
use crate::model::{self, Account, Fingerprint, Role};
use crate::net::pki;
use crate::server::{RunningServer, auth};
use crate::store::Store;
use crate::wire::msg::{AdminRequest, AdminResponse, Secret};
use client::AdminClient;
use session::SessionFile;

#[derive(Parser, Debug)]
#[command(
    name = "canopy",
    version,
    about = "Administration Server federation daemon"
)]
pub struct Cli {
    /// Where `canopy login` keeps the session the other commands use.
    #[arg(long, global = true, env = "CANOPY_SESSION")]
    session: Option<PathBuf>,
    /// Run the command on the server at PATH below the one logged in to, e.g.
    /// branch-1/branch-1a or a virtual server's name.
    ///
    /// PATH is as the PATH column of `server list` shows it, without its first name (the
    /// server logged in to). The request is relayed down the tree and served there with
    /// your role. Not for login and logout.
    #[arg(long, global = true, value_name = "PATH", value_parser = parse_at)]
    at: Option<String>,
    /// How log lines are written on standard error: `human` (the default) or `json`, one
    /// object per line. Overrides the config's `[log] format`.
    #[arg(long, global = true, value_enum, env = "CANOPY_LOG_FORMAT")]
    pub log_format: Option<crate::config::log::LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run an Administration Server.
    Serve {
        /// The server's config file (TOML); SIGINT or SIGTERM shuts the server down cleanly.
        #[arg(long)]
        config: PathBuf,
    },
    /// The deployment's certificate authority and server certificates.
    #[command(subcommand)]
    Pki(pki_cmd::PkiCommand),
    /// Log in to a server, or to one of its virtual servers; the session is used by the
    /// other commands.
    Login {
        /// The server's address, e.g. 127.0.0.1:13000; `host:port/NAME` logs in to its
        /// virtual server NAME (as --vserver does).
        #[arg(long, value_name = "ADDRESS", value_parser = parse_login_address)]
        server: LoginAddress,
        /// Log in to this virtual server of the server, with one of its own accounts.
        #[arg(long, value_name = "NAME")]
        vserver: Option<String>,
        /// The deployment CA the server's certificate must chain to.
        #[arg(long, default_value = "certs/ca.pem")]
        ca: PathBuf,
        /// The name the server's certificate must carry (the name it was issued for, as in
        /// `canopy pki issue --name`).
        #[arg(long, value_name = "NAME")]
        server_name: Option<String>,
        /// The fingerprint the server's certificate must have (`canopy pki fingerprint`).
        /// Without this or --server-name, the first login to an address trusts the server's
        /// certificate and remembers its fingerprint; later logins refuse another one.
        #[arg(long, value_name = "SHA256")]
        fingerprint: Option<Fingerprint>,
        #[arg(long)]
        user: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// End the session.
    Logout,
    /// The tree of Administration Servers.
    #[command(subcommand)]
    Server(ServerCommand),
    /// The event log: the server's own events and those of every server below it.
    #[command(subcommand)]
    Event(event::EventCommand),
    /// Administrator accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Run a device agent (or, with --simulate N, N simulated devices); `agent local-task`
    /// is for the device's user.
    Agent(agent::AgentCommand),
    /// Managed devices.
    #[command(subcommand)]
    Device(device::DeviceCommand),
    /// Administration groups.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// Tasks: what runs on devices or on the server, where and when; their runs and results.
    #[command(subcommand)]
    Task(task::TaskCommand),
    /// Virtual servers of the server: tenants with their own accounts, groups and devices.
    #[command(subcommand)]
    Vserver(vserver::VserverCommand),
    /// Notification channels: events sent by email and webhook (administrators only).
    #[command(subcommand)]
    Notify(notify::NotifyCommand),
    /// Measure scenarios on loopback (see BENCHMARKS.md).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Run a small tree of servers on loopback and print it.
    Demo {
        #[arg(long)]
        json: bool,
        /// Keep the tree running until interrupted (Ctrl-C), the primary serving the REST
        /// API over HTTPS, so that a person can log in and look.
        #[arg(long)]
        serve: bool,
        /// With --serve: where the primary serves HTTPS.
        #[arg(long, default_value = "127.0.0.1:13299", requires = "serve")]
        web_listen: std::net::SocketAddr,
    },
    #[command(flatten)]
    Docs(docs::DocsCommand),
}

#[derive(Args, Debug)]
struct JsonFlag {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum ServerCommand {
    /// Every server of the tree below the one you are logged in to.
    List(JsonFlag),
    /// This server and its link to its parent.
    Status(JsonFlag),
    /// Register a secondary: it may connect once registered.
    AddSecondary {
        #[arg(long)]
        name: String,
        /// The administration group it is placed in.
        #[arg(long, default_value = "Managed devices")]
        group: String,
        /// The secondary's certificate (PEM), as issued by `canopy pki issue`.
        #[arg(long)]
        cert: PathBuf,
        /// A passive secondary (in a DMZ, not allowed to connect out): this server connects
        /// to it at HOST:PORT. Its config says `[parent] passive = true`.
        #[arg(long, value_name = "HOST:PORT")]
        passive: Option<String>,
    },
    /// Remove a secondary's registration (it keeps running on its own).
    RemoveSecondary {
        #[arg(long)]
        name: String,
    },
    /// Revoke a server certificate for this server and every server below it, registered
    /// here or not (run it at the primary to revoke it in the whole deployment).
    Revoke {
        /// The certificate (PEM).
        #[arg(long)]
        cert: PathBuf,
        /// The name it is known by, for the events and the refusals that quote it.
        #[arg(long)]
        name: String,
        /// Why, as the refusals will say.
        #[arg(long, default_value = "")]
        reason: String,
    },
}

#[derive(Subcommand, Debug)]
enum AccountCommand {
    /// Create the first administrator in a stopped server's database.
    Bootstrap {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, default_value = "admin")]
        user: String,
        #[arg(long)]
        password_stdin: bool,
    },
    List(JsonFlag),
    Create {
        #[arg(long)]
        user: String,
        /// administrator, operator or auditor.
        #[arg(long, value_parser = Role::parse)]
        role: Role,
        #[arg(long)]
        password_stdin: bool,
    },
    Delete {
        #[arg(long)]
        user: String,
    },
    /// Change a password (your own unless --user is given).
    Passwd {
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        password_stdin: bool,
    },
}

/// `canopy login --server`: an address, and the virtual server after a '/' if any.
#[derive(Clone, Debug, PartialEq, Eq)]
struct LoginAddress {
    /// An IP address or a DNS name, resolved when logging in.
    host: String,
    port: u16,
    virtual_server: Option<String>,
}

fn parse_login_address(text: &str) -> Result<LoginAddress, String> {
    let text = text.trim();
    let (addr, virtual_server) = match text.split_once('/') {
        None => (text, None),
        Some((addr, name)) => {
            check_vserver_name(name)?;
            (addr, Some(name.to_string()))
        }
    };
    let (host, port) = crate::agent::config::split_host_port(addr).ok_or_else(|| {
        format!("{addr:?} is not a host and port, e.g. 127.0.0.1:13000 or localhost:13000")
    })?;
    Ok(LoginAddress {
        host,
        port,
        virtual_server,
    })
}

/// The virtual server of `--server host:port/NAME` and `--vserver NAME`; both may be given
/// only if they agree.
fn login_vserver(address: &LoginAddress, flag: Option<String>) -> anyhow::Result<Option<String>> {
    if let Some(name) = &flag {
        check_vserver_name(name).map_err(|e| anyhow::anyhow!("--vserver: {e}"))?;
    }
    match (address.virtual_server.clone(), flag) {
        (Some(a), Some(b)) if a != b => {
            bail!("--server names virtual server {a:?} and --vserver names {b:?}: give one of them")
        }
        (a, b) => Ok(a.or(b)),
    }
}

fn check_vserver_name(name: &str) -> Result<(), String> {
    model::check_display_name("the virtual server's name", name)
}

/// `--at PATH`: names joined by '/', none empty; slashes at either end are dropped.
fn parse_at(text: &str) -> Result<String, String> {
    let path = text.trim().trim_matches('/');
    if path.is_empty() {
        return Err("the path must name a server below the one logged in to".into());
    }
    if path.split('/').any(|name| name.trim().is_empty()) {
        return Err(format!("{text:?} has an empty name between two '/'"));
    }
    Ok(path.to_string())
}

tokio::task_local! {
    /// `--at`, for [`connect`]: the commands reach the server through it, so none of them
    /// has to carry the option.
    static AT: Option<String>;
}

impl Command {
    /// Whether the command sends requests with the session, so `--at` applies to it.
    fn asks_a_server(&self) -> bool {
        match self {
            Command::Server(_)
            | Command::Event(_)
            | Command::Device(_)
            | Command::Group(_)
            | Command::Task(_)
            | Command::Vserver(_)
            | Command::Notify(_) => true,
            Command::Account(cmd) => !matches!(cmd, AccountCommand::Bootstrap { .. }),
            Command::Serve { .. }
            | Command::Pki(_)
            | Command::Login { .. }
            | Command::Logout
            | Command::Agent(_)
            | Command::Bench(_)
            | Command::Demo { .. }
            | Command::Docs(_) => false,
        }
    }
}

impl Cli {
    /// What logging needs of the command's config, read once before it is set up: the
    /// `[log]` section of `serve`'s and the agent's, and the name of the server `serve` runs.
    pub fn peek_config(&self) -> (crate::config::log::LogSettings, Option<String>) {
        use crate::config::log::peek;
        match &self.command {
            Command::Serve { config } => {
                let peeked = peek(config);
                (peeked.log, peeked.name)
            }
            Command::Agent(agent) => (
                agent.config().map(|c| peek(c).log).unwrap_or_default(),
                None,
            ),
            _ => Default::default(),
        }
    }

    /// The log filter when `CANOPY_LOG` is not set: the demo and the benchmarks print their
    /// own results, and the servers they run in-process should not bury them.
    pub fn default_log_filter(&self) -> &'static str {
        match self.command {
            Command::Demo { .. } | Command::Bench(_) => "error",
            _ => "warn,canopy=info",
        }
    }
}

/// Runs the command line; the binary's `main` only sets up logging and calls this.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let session_path = cli.session.clone().unwrap_or_else(session::default_path);
    if cli.at.is_some() && !cli.command.asks_a_server() {
        bail!(
            "--at applies to the commands that ask a server (server, event, account, device, \
             group, task, vserver, notify), not to login, logout or local commands"
        );
    }
    AT.scope(cli.at, dispatch(session_path, cli.command)).await
}

async fn dispatch(session_path: PathBuf, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve { config } => serve(&config).await,
        Command::Pki(cmd) => pki_cmd::pki_command(cmd),
        Command::Login {
            server,
            vserver,
            ca,
            server_name,
            fingerprint,
            user,
            password_stdin,
        } => {
            let args = login::LoginArgs {
                server,
                vserver,
                ca,
                server_name,
                fingerprint,
                user,
                password_stdin,
            };
            login::run(&session_path, args).await
        }
        Command::Logout => {
            if let Ok(client) = connect(&session_path).await {
                let _ = client.call(AdminRequest::Logout).await;
                client.close().await;
            }
            session::remove(&session_path)?;
            println!("logged out");
            Ok(())
        }
        Command::Server(cmd) => server_command(&session_path, cmd).await,
        Command::Event(cmd) => event::run(&session_path, cmd).await,
        Command::Account(cmd) => account_command(&session_path, cmd).await,
        Command::Group(cmd) => group::run(&session_path, cmd).await,
        Command::Agent(cmd) => agent::run(cmd).await,
        Command::Device(cmd) => device::run(&session_path, cmd).await,
        Command::Task(cmd) => task::run(&session_path, cmd).await,
        Command::Vserver(cmd) => vserver::run(&session_path, cmd).await,
        Command::Notify(cmd) => notify::run(&session_path, cmd).await,
        Command::Demo {
            json,
            serve,
            web_listen,
        } => demo::run(json, serve.then_some(web_listen)).await,
        Command::Bench(cmd) => bench::run(cmd).await,
        Command::Docs(cmd) => docs::run(cmd),
    }
}

async fn serve(config_path: &Path) -> anyhow::Result<()> {
    let config = ServerConfig::load(config_path)?;
    let server = RunningServer::start(config).await?;
    tracing::info!("serving on {} (udp)", server.local_addr());
    server.run_until_signal().await
}

pub(crate) async fn connect(session_path: &Path) -> anyhow::Result<AdminClient> {
    let session = SessionFile::load(session_path)?;
    if session.expires <= now_ms() {
        bail!(
            "the session expired at {}: run `canopy login` again",
            model::format_time(session.expires)
        );
    }
    let ca = pki::load_certs(&session.ca)?;
    let identity = session.identity()?;
    let mut client =
        AdminClient::connect_checked(session.server, ca, session.virtual_server, &identity)
            .await
            .map_err(|e| match (&identity.fingerprint, e) {
                (Some(_), client::ClientError::Connect { addr, message }) => anyhow::anyhow!(
                    "cannot connect to {addr}: {message} (the fingerprint was pinned at login: \
                     if the server's certificate was renewed, run `canopy login` again)"
                ),
                (_, e) => e.into(),
            })?;
    client.set_token(Secret(session.token));
    client.forward_to(AT.try_with(Clone::clone).ok().flatten());
    Ok(client)
}

pub(crate) async fn call(
    session_path: &Path,
    request: AdminRequest,
) -> anyhow::Result<AdminResponse> {
    let client = connect(session_path).await?;
    let response = client.call(request).await;
    client.close().await;
    Ok(response?)
}

pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub(crate) fn print_done(response: AdminResponse) -> anyhow::Result<()> {
    match response {
        AdminResponse::Done { message } => {
            crate::cli::table::show(&format!("{message}\n"));
            Ok(())
        }
        _ => bail!("unexpected answer from the server"),
    }
}

async fn server_command(session_path: &Path, cmd: ServerCommand) -> anyhow::Result<()> {
    match cmd {
        ServerCommand::List(JsonFlag { json }) => {
            let client = connect(session_path).await?;
            let rows = client.servers().await;
            client.close().await;
            let rows = rows?;
            if json {
                return print_json(&rows);
            }
            crate::cli::table::show(&table::servers(&rows));
            Ok(())
        }
        ServerCommand::Status(JsonFlag { json }) => {
            let AdminResponse::Status(status) =
                call(session_path, AdminRequest::ServerStatus).await?
            else {
                bail!("unexpected answer")
            };
            if json {
                return print_json(&status);
            }
            crate::cli::table::show(&table::status(&status));
            Ok(())
        }
        ServerCommand::AddSecondary {
            name,
            group,
            cert,
            passive,
        } => {
            let cert_pem = std::fs::read_to_string(&cert)
                .with_context(|| format!("reading {}", cert.display()))?;
            print_done(
                call(
                    session_path,
                    AdminRequest::AddSecondary {
                        name,
                        group,
                        cert_pem,
                        passive,
                    },
                )
                .await?,
            )
        }
        ServerCommand::RemoveSecondary { name } => {
            print_done(call(session_path, AdminRequest::RemoveSecondary { name }).await?)
        }
        ServerCommand::Revoke { cert, name, reason } => {
            let cert_pem = std::fs::read_to_string(&cert)
                .with_context(|| format!("reading {}", cert.display()))?;
            let request = AdminRequest::RevokeCertificate {
                name,
                cert_pem,
                reason,
            };
            print_done(call(session_path, request).await?)
        }
    }
}

async fn account_command(session_path: &Path, cmd: AccountCommand) -> anyhow::Result<()> {
    match cmd {
        AccountCommand::Bootstrap {
            config,
            user,
            password_stdin,
        } => {
            let config = ServerConfig::load(&config)?;
            model::check_display_name("account name", &user).map_err(anyhow::Error::msg)?;
            let password = read_password("New administrator password: ", password_stdin, true)?;
            let hash = auth::hash_password(&password).map_err(anyhow::Error::msg)?;
            let account = Account {
                name: user.clone(),
                role: Role::Administrator,
                password_hash: hash,
                created: now_ms(),
            };
            let data = config.data.clone();
            tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                crate::store::private::create_parent(&data)?;
                let store = Store::open_server(&data)?;
                let result = store.bootstrap_account(account);
                store.close()?;
                Ok(result?)
            })
            .await??;
            println!("administrator {user} created in {}", config.data.display());
            Ok(())
        }
        AccountCommand::List(JsonFlag { json }) => {
            let client = connect(session_path).await?;
            let accounts = client.accounts().await;
            client.close().await;
            let accounts = accounts?;
            if json {
                return print_json(&accounts);
            }
            crate::cli::table::show(&table::accounts(&accounts));
            Ok(())
        }
        AccountCommand::Create {
            user,
            role,
            password_stdin,
        } => {
            let password = read_password("Password for the new account: ", password_stdin, true)?;
            let request = AdminRequest::AccountCreate {
                name: user,
                password: Secret(password),
                role,
            };
            print_done(call(session_path, request).await?)
        }
        AccountCommand::Delete { user } => {
            print_done(call(session_path, AdminRequest::AccountDelete { name: user }).await?)
        }
        AccountCommand::Passwd {
            user,
            password_stdin,
        } => {
            let name = match user {
                Some(user) => user,
                // Your account is one of the server logged in to, not of the one `--at` names.
                None if AT.try_with(Option::is_some).unwrap_or(false) => {
                    bail!("with --at, name the account to change with --user")
                }
                None => SessionFile::load(session_path)?.user,
            };
            let password = read_password("New password: ", password_stdin, true)?;
            print_done(
                call(
                    session_path,
                    AdminRequest::AccountSetPassword {
                        name,
                        password: Secret(password),
                    },
                )
                .await?,
            )
        }
    }
}

/// Reads a password from stdin's first line (`--password-stdin`), `CANOPY_PASSWORD`, or a
/// prompt on the terminal (twice for a new password).
fn read_password(prompt: &str, from_stdin: bool, confirm: bool) -> anyhow::Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    if let Ok(password) = std::env::var("CANOPY_PASSWORD") {
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        bail!("no password: use --password-stdin, set CANOPY_PASSWORD, or run on a terminal");
    }
    let password = rpassword::prompt_password(prompt)?;
    if confirm && rpassword::prompt_password("Again: ")? != password {
        bail!("the two passwords differ");
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(["canopy"].iter().chain(args))
    }

    #[test]
    fn at_is_a_global_option() {
        for args in [
            &["--at", "branch-1/branch-1a", "device", "list"][..],
            &["device", "list", "--at", "/branch-1/branch-1a/"],
        ] {
            let cli = parse(args).unwrap();
            assert_eq!(cli.at.as_deref(), Some("branch-1/branch-1a"), "{args:?}");
            assert!(cli.command.asks_a_server());
        }
        let cli = parse(&["--at", "tenant-a", "account", "list"]).unwrap();
        assert_eq!(cli.at.as_deref(), Some("tenant-a"));
        assert_eq!(parse(&["server", "list"]).unwrap().at, None);
        for bad in ["", "/", "a//b", "a/ /b"] {
            assert!(parse(&["--at", bad, "server", "list"]).is_err(), "{bad:?}");
        }
        // Accepted by clap everywhere, refused by `run` where it means nothing.
        for args in [
            &["logout"][..],
            &["login", "--server", "127.0.0.1:13000", "--user", "a"],
            &["demo"],
            &["account", "bootstrap", "--config", "c.toml"],
        ] {
            assert!(!parse(args).unwrap().command.asks_a_server(), "{args:?}");
        }
    }

    #[test]
    fn login_addresses() {
        let at = |host: &str, virtual_server: Option<&str>| LoginAddress {
            host: host.into(),
            port: 13000,
            virtual_server: virtual_server.map(Into::into),
        };
        assert_eq!(
            parse_login_address("127.0.0.1:13000"),
            Ok(at("127.0.0.1", None))
        );
        assert_eq!(
            parse_login_address("127.0.0.1:13000/tenant-a"),
            Ok(at("127.0.0.1", Some("tenant-a")))
        );
        assert_eq!(
            parse_login_address("localhost:13000"),
            Ok(at("localhost", None))
        );
        let v6 = parse_login_address("[::1]:13000/t").unwrap();
        assert_eq!(v6, at("::1", Some("t")));
        for bad in [
            "nowhere",
            "127.0.0.1",
            "127.0.0.1:13000/",
            "127.0.0.1:13000/a/b",
        ] {
            assert!(parse_login_address(bad).is_err(), "{bad:?}");
        }

        let plain = parse_login_address("127.0.0.1:13000").unwrap();
        let named = parse_login_address("127.0.0.1:13000/tenant-a").unwrap();
        assert_eq!(login_vserver(&plain, None).unwrap(), None);
        assert_eq!(
            login_vserver(&plain, Some("tenant-a".into())).unwrap(),
            Some("tenant-a".into())
        );
        assert_eq!(
            login_vserver(&named, None).unwrap(),
            Some("tenant-a".into())
        );
        assert_eq!(
            login_vserver(&named, Some("tenant-a".into())).unwrap(),
            Some("tenant-a".into())
        );
        let e = login_vserver(&named, Some("tenant-b".into())).unwrap_err();
        assert!(e.to_string().contains("give one of them"), "{e}");
        let e = login_vserver(&plain, Some("a/b".into())).unwrap_err();
        assert!(e.to_string().contains("--vserver"), "{e}");

        let cli = parse(&[
            "login",
            "--server",
            "127.0.0.1:13000",
            "--vserver",
            "tenant-a",
            "--user",
            "alice",
        ])
        .unwrap();
        let Command::Login {
            server, vserver, ..
        } = cli.command
        else {
            panic!()
        };
        assert_eq!((server.host.as_str(), server.port), ("127.0.0.1", 13000));
        assert_eq!(vserver.as_deref(), Some("tenant-a"));
        let e = parse(&["login", "--server", "127.0.0.1:13000/a/b", "--user", "a"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--server"), "{e}");
    }
}
