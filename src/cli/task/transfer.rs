//! `task export` and `task import`: the files are written and read here; the server makes
//! and checks them (`model::export`).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::args::ImportArgs;
use super::{print_task_answer, task_call};
use crate::cli::{print_json, table};
use crate::model::export::MAX_FILE_BYTES;
use crate::wire::msg::{AdminResponse, ImportView, TaskRequest};

/// `task export TASK [--out FILE|DIR]`: to standard output, a new file, or a new file named
/// after the task in a directory. An existing file is never overwritten.
pub(super) async fn export(
    session: &Path,
    task: String,
    out: Option<PathBuf>,
) -> anyhow::Result<()> {
    let (file, file_name) = match task_call(session, TaskRequest::Export { task }).await? {
        AdminResponse::Exported { file, file_name } => (file, file_name),
        _ => bail!("unexpected answer from the server"),
    };
    let Some(out) = out else {
        print!("{file}");
        return Ok(());
    };
    let path = if out.is_dir() {
        out.join(file_name)
    } else {
        out
    };
    let mut written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    written
        .write_all(file.as_bytes())
        .and_then(|()| written.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("exported to {}", path.display());
    Ok(())
}

/// `task import FILE [--commit SCOPE]`.
pub(super) async fn import(session: &Path, args: &ImportArgs) -> anyhow::Result<()> {
    let scope = args.scope.build()?;
    match (&scope, args.commit) {
        (None, true) => bail!(
            "--commit needs the task's scope: give --group PATH, --devices LIST, \
             --devices-file FILE or --where KEY=VALUE"
        ),
        (Some(_), false) => {
            bail!("a scope is used only with --commit; without it nothing is created")
        }
        _ => {}
    }
    let file = read_capped(&args.file)?;
    let request = TaskRequest::Import {
        file,
        commit: args.commit,
        scope,
    };
    let view = match task_call(session, request).await? {
        AdminResponse::Imported(view) => view,
        response => return print_task_answer(response, false, false),
    };
    if args.json {
        return print_json(&view);
    }
    table::show(&import_text(&view));
    Ok(())
}

/// The file's bytes, refused if it is over the size of any export file.
fn read_capped(path: &Path) -> anyhow::Result<Vec<u8>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() > MAX_FILE_BYTES {
        bail!(
            "{} is over {} KiB: it is not a task export file",
            path.display(),
            MAX_FILE_BYTES / 1024
        );
    }
    Ok(bytes)
}

fn import_text(v: &ImportView) -> String {
    let mut rows: Vec<(&str, String)> = vec![
        ("name", v.name.clone()),
        ("type", v.task_type.type_name().to_string()),
        ("application", v.application.clone()),
        ("schedule", v.schedule.to_string()),
        ("random delay", v.schedule_options.random_delay.to_string()),
        (
            "account",
            v.account
                .clone()
                .unwrap_or_else(|| "default account".into()),
        ),
        (
            "exported",
            format!("from {} at {}", v.exported_from, v.exported_at),
        ),
    ];
    for warning in &v.warnings {
        rows.push(("warning", warning.clone()));
    }
    rows.push((
        "result",
        match &v.created {
            Some(task) => format!("created task {:?} (#{})", task.name, task.id),
            None => "nothing created: add --commit and a scope to create it".into(),
        },
    ));
    crate::cli::table::fields(&rows)
}
