//! A headless browser for the web console's tests: Chromium driven over WebDriver by
//! chromedriver (both from `make test-deps`), through the fantoccini client.
//!
//! [`Browser::start`] runs `/usr/bin/chromedriver` on a free 127.0.0.1 port and opens a session
//! in a fresh profile (a temporary `--user-data-dir`), with Chromium's background networking
//! off: the browser only goes where a test sends it, on loopback. Certificates that the system
//! does not trust (a deployment's own CA) are accepted only by their pinned public key
//! ([`BrowserOptions::trust_spki`], from [`spki_hash_of_cert_pem`]); checks are never turned
//! off wholesale. The methods are thin wrappers whose errors name the page's URL and the start
//! of its source. [`Browser::close`] ends the session; dropping a `Browser` kills chromedriver
//! and every process below it, so no Chromium outlives a test, even a failed one.
//!
//! A test uses it with `#[path = "common/browser.rs"] mod browser;` (as tests/browser.rs does).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use fantoccini::wd::{Capabilities, TimeoutConfiguration};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::json;

/// The browser, as Debian's `chromium` package installs it (a launcher script).
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Its WebDriver server, from `chromium-driver`.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long chromedriver has to answer on its port once started.
const DRIVER_START: Duration = Duration::from_secs(20);
/// How long chromedriver has to start Chromium and open the session.
const SESSION_START: Duration = Duration::from_secs(30);
/// How long a page may take to load before a navigation fails.
const PAGE_LOAD: Duration = Duration::from_secs(30);
/// How many ports are tried, when chromedriver cannot start on the one picked.
const ATTEMPTS: usize = 3;
/// How much of the page's source an error shows.
const SNIPPET: usize = 600;

/// What [`Browser::start`] adds to its defaults.
#[derive(Clone, Debug, Default)]
pub struct BrowserOptions {
    /// Public keys whose certificates are accepted although no trusted CA issued them:
    /// base64(SHA-256(SubjectPublicKeyInfo DER)), as [`spki_hash_of_cert_pem`] computes them.
    /// Passed to Chromium as `--ignore-certificate-errors-spki-list`.
    pub trust_spki: Vec<String>,
    /// More Chromium command-line arguments, after the defaults.
    pub args: Vec<String>,
}

/// A cookie of the current page, as the browser holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CookieInfo {
    pub name: String,
    pub value: String,
    pub secure: bool,
    pub http_only: bool,
    /// `Strict`, `Lax` or `None`, when the browser reports it.
    pub same_site: Option<String>,
}

/// Chromium in a WebDriver session, with the chromedriver that runs it.
pub struct Browser {
    /// `None` once closed.
    client: Option<Client>,
    /// chromedriver, in a process group of its own. It is reaped only once every process of
    /// the browser is gone: until then its pid, the group's id, cannot be reused.
    driver: Child,
    /// Whether `driver` was reaped (its pid may since belong to another process).
    reaped: bool,
    /// chromedriver's port on 127.0.0.1.
    pub port: u16,
    /// The profile (`--user-data-dir`) and chromedriver's output, removed on drop.
    dir: tempfile::TempDir,
}

/// The SPKI pin of the first certificate in `pem`: base64 of the SHA-256 of its
/// SubjectPublicKeyInfo (DER), as `--ignore-certificate-errors-spki-list` takes it.
pub fn spki_hash_of_cert_pem(pem: &str) -> anyhow::Result<String> {
    let der = CertificateDer::from_pem_slice(pem.as_bytes())
        .context("no PEM certificate in the text given")?;
    let anchor = webpki::anchor_from_trusted_cert(&der)
        .map_err(|e| anyhow::anyhow!("cannot parse the certificate: {e}"))?;
    let spki = webpki::spki_for_anchor(&anchor);
    let digest = ring::digest::digest(&ring::digest::SHA256, spki.as_ref());
    Ok(base64::engine::general_purpose::STANDARD.encode(digest.as_ref()))
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// The last `n` characters of `text`, on whole characters.
fn tail(text: &str, n: usize) -> &str {
    let start = text.len().saturating_sub(n);
    let start = (start..=text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    &text[start..]
}

/// The first `n` characters of `text`, its runs of white space made one space.
fn snippet(text: &str, n: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(n) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

/// A process as /proc shows it.
struct Proc {
    pid: u32,
    ppid: u32,
    pgid: u32,
    /// Its command line, arguments joined by spaces.
    cmdline: String,
}

/// Every process that runs (zombies left out).
fn all_processes() -> Vec<Proc> {
    let mut all = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return all;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        // /proc/PID/stat: "PID (COMM) STATE PPID PGID ..."; COMM may hold spaces and parens.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(fields) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let fields: Vec<&str> = fields.split_whitespace().take(3).collect();
        let [state, ppid, pgid] = fields[..] else {
            continue;
        };
        let (Ok(ppid), Ok(pgid)) = (ppid.parse(), pgid.parse()) else {
            continue;
        };
        if state == "Z" || state == "X" {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        all.push(Proc {
            pid,
            ppid,
            pgid,
            cmdline,
        });
    }
    all
}

/// Whether process `pid` still runs (exists and is not a zombie).
pub fn is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

fn kill(pid: u32, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) on a process that this harness started, directly or not.
        unsafe { libc::kill(pid, signal) };
    }
}

impl Browser {
    /// Starts chromedriver on a free 127.0.0.1 port and a headless Chromium session in a new
    /// profile. Fails (never skips) when Chromium or chromedriver is not installed.
    pub async fn start(opts: BrowserOptions) -> anyhow::Result<Browser> {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            if !Path::new(binary).exists() {
                bail!(
                    "chromium and chromium-driver are not installed: run `make test-deps` \
                     ({binary} is missing)"
                );
            }
        }
        let mut errors = Vec::new();
        for _ in 0..ATTEMPTS {
            match Self::try_start(&opts).await {
                Ok(browser) => return Ok(browser),
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        bail!(
            "could not start the browser in {ATTEMPTS} attempts:\n{}",
            errors.join("\n")
        )
    }

    /// One attempt at [`Browser::start`], on one port.
    async fn try_start(opts: &BrowserOptions) -> anyhow::Result<Browser> {
        let dir = tempfile::Builder::new()
            .prefix("canopy-browser-")
            .tempdir()
            .context("creating the browser's temporary directory")?;
        let profile = dir.path().join("profile");
        let log = dir.path().join("chromedriver.log");
        let port = free_port()?;
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        // Chromium's own files (its crash database, caches) go there too, not to $HOME; its
        // crash handler, which detaches from chromedriver, is then known by that path.
        // (`--disable-crashpad-for-testing` would do without it, but then pages do not load.)
        let home = dir.path().join("home");
        let mut command = Command::new(CHROMEDRIVER);
        command
            .arg(format!("--port={port}"))
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let driver = command
            .spawn()
            .with_context(|| format!("starting {CHROMEDRIVER}"))?;
        // From here on, dropping `browser` (on any error) kills chromedriver and Chromium.
        let mut browser = Browser {
            client: None,
            driver,
            reaped: false,
            port,
            dir,
        };
        browser.wait_for_driver(&log).await?;

        let mut args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--window-size=1280,900".into(),
            format!("--user-data-dir={}", profile.display()),
            // No host resolves but localhost and 127.0.0.1: nothing leaves loopback by
            // mistake. (A `--host-resolver-rules` in `BrowserOptions::args` replaces it.)
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1".into(),
        ];
        if !opts.trust_spki.is_empty() {
            args.push(format!(
                "--ignore-certificate-errors-spki-list={}",
                opts.trust_spki.join(",")
            ));
        }
        args.extend(opts.args.iter().cloned());
        let mut capabilities = Capabilities::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": args,
                // No password manager: its prompts and breach checks are not under test.
                "prefs": {
                    "credentials_enable_service": false,
                    "profile.password_manager_enabled": false,
                    "profile.password_manager_leak_detection": false,
                },
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities);
        let connect = builder.connect(&url);
        let client = match tokio::time::timeout(SESSION_START, connect).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => bail!(
                "chromedriver on port {port} did not open a session: {e}\n{}",
                browser.driver_log()
            ),
            Err(_) => bail!(
                "chromedriver on port {port} opened no session in {SESSION_START:?}\n{}",
                browser.driver_log()
            ),
        };
        let timeouts = TimeoutConfiguration::new(
            Some(Duration::from_secs(10)),
            Some(PAGE_LOAD),
            Some(Duration::ZERO),
        );
        client
            .update_timeouts(timeouts)
            .await
            .context("setting the session's timeouts")?;
        browser.client = Some(client);
        Ok(browser)
    }

    /// Waits until chromedriver accepts connections on its port; fails if it exits first or
    /// after [`DRIVER_START`].
    async fn wait_for_driver(&mut self, log: &Path) -> anyhow::Result<()> {
        let deadline = Instant::now() + DRIVER_START;
        loop {
            if let Some(status) = self.driver.try_wait()? {
                // It had not started Chromium: nothing else of this browser runs.
                self.reaped = true;
                bail!(
                    "chromedriver exited ({status}) before answering on port {}: {}",
                    self.port,
                    std::fs::read_to_string(log).unwrap_or_default().trim()
                );
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "chromedriver did not answer on port {} within {DRIVER_START:?}\n{}",
                    self.port,
                    self.driver_log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The end of chromedriver's output, for errors.
    fn driver_log(&self) -> String {
        let text =
            std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default();
        format!(
            "chromedriver's output ends with:\n{}",
            tail(text.trim(), 2000)
        )
    }

    fn client(&self) -> anyhow::Result<&Client> {
        self.client
            .as_ref()
            .context("the browser's session is closed")
    }

    /// Where the browser is and the start of the page's source (from its `<body`, past the
    /// head's styles and scripts), for an error message.
    async fn context(&self) -> String {
        let Ok(client) = self.client() else {
            return "(session closed)".into();
        };
        let url = match client.current_url().await {
            Ok(url) => url.to_string(),
            Err(e) => format!("(no URL: {e})"),
        };
        let source = match client.source().await {
            Ok(source) => {
                let body = source.find("<body").map_or(&source[..], |i| &source[i..]);
                snippet(body, SNIPPET)
            }
            Err(e) => format!("(no source: {e})"),
        };
        format!("at {url}, page: {source}")
    }

    /// `result`, its error with `what` and [`Browser::context`].
    async fn check<T>(
        &self,
        result: Result<T, fantoccini::error::CmdError>,
        what: impl FnOnce() -> String,
    ) -> anyhow::Result<T> {
        match result {
            Ok(value) => Ok(value),
            Err(e) => bail!("{}: {e}\n{}", what(), self.context().await),
        }
    }

    /// Loads `url` and waits for the page to load. A page that does not load is an error:
    /// chromedriver reports network errors (`net::ERR_CONNECTION_REFUSED`), and Chromium's
    /// own error pages, such as its interstitial for a certificate it does not accept, are
    /// caught by [`Browser::error_page`].
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        let result = self.client()?.goto(url).await;
        self.check(result, || format!("loading {url}")).await?;
        if let Some(code) = self.error_page().await? {
            bail!(
                "loading {url}: the browser shows its error page {code}\n{}",
                self.context().await
            );
        }
        Ok(())
    }

    /// The error code (e.g. `net::ERR_CERT_AUTHORITY_INVALID`) when the browser shows its own
    /// error page rather than a site's page: a failed load or a certificate interstitial,
    /// which Chromium commits as `chrome-error://chromewebdata/` under the URL asked for.
    pub async fn error_page(&self) -> anyhow::Result<Option<String>> {
        let script = "if (!window.location.href.startsWith('chrome-error:')) return null; \
                      const code = document.querySelector('#error-code, .error-code'); \
                      return code ? code.textContent.trim() : document.title || 'unknown';";
        let result = self.client()?.execute(script, Vec::new()).await;
        let value = self
            .check(result, || "checking for an error page".into())
            .await?;
        Ok(value.as_str().map(str::to_string))
    }

    async fn find(&self, css: &str) -> anyhow::Result<fantoccini::elements::Element> {
        let result = self.client()?.find(Locator::Css(css)).await;
        self.check(result, || format!("finding {css:?}")).await
    }

    /// Clicks the first element matching the CSS selector `css`.
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        let element = self.find(css).await?;
        let result = element.click().await;
        self.check(result, || format!("clicking {css:?}")).await
    }

    /// Clears the first field matching `css`, then types `text` into it.
    pub async fn fill(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let element = self.find(css).await?;
        let result = element.clear().await;
        self.check(result, || format!("clearing {css:?}")).await?;
        let result = element.send_keys(text).await;
        self.check(result, || format!("typing into {css:?}")).await
    }

    /// The rendered text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> anyhow::Result<String> {
        let element = self.find(css).await?;
        let result = element.text().await;
        self.check(result, || format!("reading the text of {css:?}"))
            .await
    }

    /// The rendered texts of every element matching `css`, in document order (none: empty).
    pub async fn texts(&self, css: &str) -> anyhow::Result<Vec<String>> {
        let result = self.client()?.find_all(Locator::Css(css)).await;
        let elements = self.check(result, || format!("finding {css:?}")).await?;
        let mut texts = Vec::with_capacity(elements.len());
        for element in elements {
            let result = element.text().await;
            texts.push(
                self.check(result, || format!("reading the text of {css:?}"))
                    .await?,
            );
        }
        Ok(texts)
    }

    /// Waits until an element matching `css` has a text containing `needle` (polling every
    /// 100 ms, through page loads); that text. After `timeout`, an error with what was seen.
    pub async fn wait_for_text(
        &self,
        css: &str,
        needle: &str,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        let client = self.client()?;
        loop {
            // Errors while the page changes (a stale element, a navigation) are retried.
            let last = match client.find_all(Locator::Css(css)).await {
                Ok(elements) => {
                    let mut texts = Vec::new();
                    for element in elements {
                        if let Ok(text) = element.text().await {
                            if text.contains(needle) {
                                return Ok(text);
                            }
                            texts.push(text);
                        }
                    }
                    format!("texts {texts:?}")
                }
                Err(e) => format!("error {e}"),
            };
            if Instant::now() >= deadline {
                bail!(
                    "no {css:?} with {needle:?} after {timeout:?}; last seen: {last}\n{}",
                    self.context().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until nothing on the page matches `css` (the row of something deleted). An
    /// error reading the page (an element gone stale while the next page loads) is asked
    /// again, not taken as an answer.
    pub async fn wait_gone(&self, css: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while !self.texts(css).await.is_ok_and(|texts| texts.is_empty()) {
            if Instant::now() >= deadline {
                bail!(
                    "{css:?} still shown after {timeout:?}\n{}",
                    self.context().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// Waits until the page shown is `url` (a form's answer redirected there).
    pub async fn wait_for_url(&self, url: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.current_url().await.is_ok_and(|now| now == url) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("not at {url} after {timeout:?}\n{}", self.context().await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Logs in to the web console at `base` (https://ADDRESS), to the virtual server
    /// `tenant` if given, and waits for the task list.
    pub async fn log_in(
        &self,
        base: &str,
        user: &str,
        password: &str,
        tenant: Option<&str>,
    ) -> anyhow::Result<()> {
        self.goto(&format!("{base}/login")).await?;
        self.fill("input[name=user]", user).await?;
        self.fill("input[name=password]", password).await?;
        if let Some(tenant) = tenant {
            self.fill("input[name=virtual_server]", tenant).await?;
        }
        self.click("button[type=submit]").await?;
        self.wait_for_text("h1", "Tasks", Duration::from_secs(30))
            .await
            .map(|_| ())
    }

    /// The URL of the current page.
    pub async fn current_url(&self) -> anyhow::Result<String> {
        let url = self
            .client()?
            .current_url()
            .await
            .context("reading the current URL")?;
        Ok(url.to_string())
    }

    /// The current page's HTML, as the browser serializes its DOM.
    pub async fn source(&self) -> anyhow::Result<String> {
        let result = self.client()?.source().await;
        self.check(result, || "reading the page's source".into())
            .await
    }

    /// Saves a PNG screenshot of the window to `path`.
    pub async fn screenshot(&self, path: &Path) -> anyhow::Result<()> {
        let result = self.client()?.screenshot().await;
        let png = self.check(result, || "taking a screenshot".into()).await?;
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
    }

    /// The cookies the browser holds for the current page.
    pub async fn cookies(&self) -> anyhow::Result<Vec<CookieInfo>> {
        let result = self.client()?.get_all_cookies().await;
        let cookies = self.check(result, || "reading the cookies".into()).await?;
        Ok(cookies
            .iter()
            .map(|c| CookieInfo {
                name: c.name().to_string(),
                value: c.value().to_string(),
                secure: c.secure().unwrap_or(false),
                http_only: c.http_only().unwrap_or(false),
                same_site: c.same_site().map(|s| s.to_string()),
            })
            .collect())
    }

    /// The processes of this browser that still run: chromedriver, those in its process
    /// group, those below it, and any whose command line names the browser's temporary
    /// directory (Chromium's crash handler, which detaches). For checks that none is left.
    pub fn processes(&self) -> Vec<u32> {
        let driver = self.driver.id();
        let dir = self.dir.path().to_string_lossy().into_owned();
        let all = all_processes();
        // chromedriver's pid, as a process, a group or a parent, is ours until it is reaped.
        let mut ours: Vec<u32> = all
            .iter()
            .filter(|p| {
                (!self.reaped && (p.pid == driver || p.pgid == driver)) || p.cmdline.contains(&dir)
            })
            .map(|p| p.pid)
            .collect();
        if !self.reaped && !ours.contains(&driver) {
            ours.push(driver); // As a parent only: it has exited, unreaped.
        }
        let mut i = 0;
        while i < ours.len() {
            let parent = ours[i];
            for p in &all {
                if p.ppid == parent && !ours.contains(&p.pid) {
                    ours.push(p.pid);
                }
            }
            i += 1;
        }
        ours.retain(|&pid| is_running(pid));
        ours
    }

    /// SIGKILLs [`Browser::processes`] until none is left (5 s at most), then reaps
    /// chromedriver.
    fn kill_all(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = self.processes();
            if left.is_empty() || Instant::now() >= deadline {
                break;
            }
            for pid in left {
                kill(pid, libc::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if !self.reaped {
            let _ = self.driver.kill();
            let _ = self.driver.wait();
            self.reaped = true;
        }
    }

    /// The browser's temporary directory: its profile (`profile/`) and chromedriver's output
    /// (`chromedriver.log`).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Ends the session (Chromium quits), then stops chromedriver; waits (5 s at most) for
    /// their processes to be gone, then kills any left.
    pub async fn close(mut self) -> anyhow::Result<()> {
        let closed = match self.client.take() {
            Some(client) => tokio::time::timeout(Duration::from_secs(10), client.close())
                .await
                .map_err(|_| anyhow::anyhow!("the session did not close within 10 s"))
                .and_then(|r| r.context("closing the session")),
            None => Ok(()),
        };
        kill(self.driver.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.processes().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Drop kills whatever is left, and reaps chromedriver.
        closed
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Without `close`, the session cannot be ended here (no await): its processes are
        // killed instead.
        drop(self.client.take());
        self.kill_all();
    }
}
