//! `canopy completions SHELL` and `canopy man [--dir DIR]`: the shell completion scripts and
//! the manual pages, generated from the clap definitions of [`Cli`] so they never drift from
//! the command line. The package build (`packaging/deb/build.sh`) runs both.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;

/// `canopy completions` and `canopy man`, flattened into the top-level commands.
#[derive(clap::Subcommand, Debug)]
pub enum DocsCommand {
    /// Print the shell completion script for SHELL (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell the script is for.
        shell: Shell,
    },
    /// Print the manual page canopy.1, or with --dir write it and one page per subcommand.
    #[command(hide = true)]
    Man {
        /// Write canopy.1 and canopy-SUBCOMMAND.1 (canopy-task-create.1, ...) into DIR.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

pub fn run(command: DocsCommand) -> anyhow::Result<()> {
    match command {
        DocsCommand::Completions { shell } => completions(shell),
        DocsCommand::Man { dir } => man(dir),
    }
}

/// Prints the completion script for `shell` to stdout.
fn completions(shell: Shell) -> anyhow::Result<()> {
    let mut command = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "canopy", &mut out);
    write_stdout(&out)
}

/// Without `dir`, prints `canopy.1` to stdout. With it, writes there `canopy.1` and one page
/// per subcommand at every depth (`canopy-task-create.1`, ...), and prints their names.
fn man(dir: Option<PathBuf>) -> anyhow::Result<()> {
    let command = Cli::command();
    let Some(dir) = dir else {
        let mut out = Vec::new();
        page(command).render(&mut out)?;
        return write_stdout(&out);
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    write_pages(command, &dir, &mut written)?;
    for path in written {
        println!("{}", path.display());
    }
    Ok(())
}

/// The page of `command` (named as clap names it: `canopy-task-create`), then those of its
/// visible subcommands, depth first. Hidden commands (`man` itself) get no page.
fn write_pages(
    command: clap::Command,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> anyhow::Result<()> {
    let mut command = command;
    command.build();
    let name = command
        .get_display_name()
        .unwrap_or(command.get_name())
        .to_string();
    let path = dir.join(format!("{name}.1"));
    let mut text = Vec::new();
    page(command.clone()).render(&mut text)?;
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    written.push(path);
    for sub in command.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        write_pages(sub.clone(), dir, written)?;
    }
    Ok(())
}

/// The page of `command`, titled in capitals as manual pages are (`CANOPY-TASK-CREATE`).
fn page(mut command: clap::Command) -> clap_mangen::Man {
    command.build();
    let title = command
        .get_display_name()
        .unwrap_or(command.get_name())
        .to_uppercase();
    clap_mangen::Man::new(command).title(title)
}

/// Writes `bytes` to stdout; a closed pipe (`canopy man | head`) is not an error.
fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shell_gets_a_script_naming_the_subcommands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "canopy", &mut out);
            let text = String::from_utf8(out).unwrap();
            for word in ["serve", "agent", "completions", "local-task"] {
                assert!(text.contains(word), "{shell}: no {word}");
            }
        }
    }

    #[test]
    fn one_page_per_visible_subcommand() {
        let dir = tempfile::tempdir().unwrap();
        let mut written = Vec::new();
        write_pages(Cli::command(), dir.path(), &mut written).unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for page in [
            "canopy.1",
            "canopy-serve.1",
            "canopy-task-create.1",
            "canopy-agent-local-task-edit.1",
        ] {
            assert!(names.iter().any(|n| n == page), "{page} not in {names:?}");
        }
        assert!(
            !names.iter().any(|n| n.starts_with("canopy-man")),
            "{names:?}"
        );
        assert!(!names.iter().any(|n| n.contains("-help")), "{names:?}");
        let serve = std::fs::read_to_string(dir.path().join("canopy-serve.1")).unwrap();
        assert!(serve.contains("\\-\\-config"), "{serve}");
    }
}
