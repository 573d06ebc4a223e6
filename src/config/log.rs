//! The `[log]` section a server's and an agent's config share: the log lines' format and
//! which lines are written. The binary sets logging up before it loads a config, so `peek`
//! reads this section alone; the full load checks it again and names the key on an error.

use std::path::Path;

use serde::Deserialize;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One line of text per event, for people (the default).
    #[default]
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The checked `[log]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogSettings {
    pub format: Option<LogFormat>,
    /// A filter as `CANOPY_LOG` takes it (`info`, `warn,canopy=debug`).
    pub level: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLog {
    format: Option<LogFormat>,
    level: Option<String>,
}

impl RawLog {
    /// Checks the section; the error is the key at fault and what is wrong with it.
    pub(crate) fn check(self) -> Result<LogSettings, (&'static str, String)> {
        if let Some(level) = &self.level {
            tracing_subscriber::EnvFilter::builder()
                .parse(level)
                .map_err(|e| ("log.level", format!("{level:?}: {e}")))?;
        }
        Ok(LogSettings {
            format: self.format,
            level: self.level,
        })
    }
}

/// What the binary reads of a config before logging is set up: its `[log]` section and its
/// `name` (a server's, for the span every line of `canopy serve` is in).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Peeked {
    pub log: LogSettings,
    pub name: Option<String>,
}

/// Reads the config file at `path` once for [`Peeked`]. What cannot be read, or a `[log]`
/// that is not valid, is for the full load to report, with the key at fault.
pub fn peek(path: &Path) -> Peeked {
    #[derive(Deserialize)]
    struct OnlyThese {
        #[serde(default)]
        log: RawLog,
        name: Option<String>,
    }
    let Ok(text) = std::fs::read_to_string(path) else {
        return Peeked::default();
    };
    // A table with other keys: serde ignores them here, as this struct names only two.
    match toml::from_str::<OnlyThese>(&text) {
        Ok(c) => Peeked {
            log: c.log.check().unwrap_or_default(),
            name: c.name,
        },
        Err(_) => Peeked::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peek_reads_the_log_section_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "name = \"x\"\n[tls]\nca = \"a\"\n[log]\nformat = \"json\"\nlevel = \"debug\"\n",
        )
        .unwrap();
        let peeked = peek(&path);
        assert_eq!(peeked.log.format, Some(LogFormat::Json));
        assert_eq!(peeked.log.level.as_deref(), Some("debug"));
        assert_eq!(peeked.name.as_deref(), Some("x"));
        std::fs::write(&path, "[log]\nformat = \"xml\"\n").unwrap();
        assert_eq!(peek(&path), Peeked::default());
        assert_eq!(peek(&dir.path().join("missing.toml")), Peeked::default());
    }

    #[test]
    fn a_bad_level_names_the_key() {
        let raw = RawLog {
            format: None,
            level: Some("canopy=loud".into()),
        };
        let (key, problem) = raw.check().unwrap_err();
        assert_eq!(key, "log.level");
        assert!(problem.contains("canopy=loud"), "{problem}");
    }
}
