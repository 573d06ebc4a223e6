//! Where log lines go and how they look: standard error, as text for people or as JSON
//! lines for collectors. Colours only on a terminal, and never with `NO_COLOR` set.

use std::cell::RefCell;
use std::io::IsTerminal;

use crate::config::log::{LogFormat, LogSettings};

/// Sets up the process's log output; called once, before the command runs. `settings` are the
/// config file's `[log]` section, if the command has a config; the command line's
/// `--log-format` and the `CANOPY_LOG` variable take precedence over it.
pub fn init(format: Option<LogFormat>, settings: LogSettings, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CANOPY_LOG").unwrap_or_else(|_| {
        let level = settings.level.as_deref().unwrap_or(default_filter);
        tracing_subscriber::EnvFilter::new(level)
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format.or(settings.format).unwrap_or_default() {
        LogFormat::Human => builder.with_ansi(colours_wanted()).init(),
        // Each line one object: time, level, target, the event's fields and the spans it is
        // in, outermost first (the server, then the secondary, device, task or request).
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .init(),
    }
}

/// Whether standard error shows colours: a terminal, and `NO_COLOR` unset or empty
/// (https://no-color.org).
pub fn colours_wanted() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stderr().is_terminal()
}

thread_local! {
    /// The span every log line of this thread is in (see [`runtime`]).
    static ROOT: RefCell<Option<tracing::span::EnteredSpan>> = const { RefCell::new(None) };
}

/// The process's async runtime. For `canopy serve` (`server` names the server), each of its
/// threads and the main thread are in the span `server{server=NAME}`, so that every line
/// the server logs says so, whatever task wrote it.
pub fn runtime(server: Option<String>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(name) = server {
        let span = tracing::info_span!("server", server = %name);
        ROOT.with(|root| *root.borrow_mut() = Some(span.clone().entered()));
        builder
            .on_thread_start(move || {
                ROOT.with(|root| *root.borrow_mut() = Some(span.clone().entered()));
            })
            .on_thread_stop(|| ROOT.with(|root| drop(root.borrow_mut().take())));
    }
    builder.build()
}
