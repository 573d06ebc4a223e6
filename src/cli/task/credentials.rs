//! `task credentials`: the Change tasks password wizard. On a terminal it walks through the
//! spec's three steps (the account and its passwords; the tasks found, with a choice for each
//! whose password the previous one did not replace; the results). For scripts the same is
//! one call: passwords from standard input, one choice per task by flag, `--json` results.

use std::collections::HashSet;
use std::io::{BufRead, IsTerminal};
use std::path::Path;

use anyhow::{Context, bail};
use clap::Args;

use super::settings::first_line;
use super::task_call;
use crate::cli::{print_json, table};
use crate::wire::msg::{
    AdminResponse, CredentialChoice, CredentialOutcome, CredentialsChange, CredentialsResult,
    Secret, TaskRequest,
};

pub(super) const CREDENTIALS_EXAMPLES: &str = "\
Examples:
  canopy task credentials                       (on a terminal: asks, step by step)
  printf '%s\\n%s\\n' \"$NEW\" \"$OLD\" | canopy task credentials --account svc-backup \\
      --password-stdin --with-previous --force 'Nightly backup' --delete-credentials 14 --json

With --password-stdin, the first line of standard input is the new password and, with
--with-previous, the second is the previous one. A task whose password the previous one
did not replace, and that no flag names, is left as it is and listed as needing a choice.";

#[derive(Args, Debug)]
pub struct CredentialsArgs {
    /// The account name the tasks run under (asked for on a terminal if not given).
    #[arg(long)]
    account: Option<String>,
    /// Read the new password (and, with --with-previous, the previous one) from standard
    /// input, one per line, instead of asking on the terminal.
    #[arg(long)]
    password_stdin: bool,
    /// Standard input's second line is the previous password: tasks it matches get the new
    /// one at once.
    #[arg(long, requires = "password_stdin")]
    with_previous: bool,
    /// Give this task (name or id) the new password although the previous one did not
    /// match or was not given. Repeatable.
    #[arg(long, value_name = "TASK")]
    force: Vec<String>,
    /// Delete this task's credentials: it runs under the default account. Repeatable.
    #[arg(long, value_name = "TASK")]
    delete_credentials: Vec<String>,
    /// Leave this task as it is. Repeatable.
    #[arg(long, value_name = "TASK")]
    no_action: Vec<String>,
    /// Why, for each changed task's revision history.
    #[arg(long)]
    comment: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Asks the administrator, on a terminal or (in tests) from a script.
pub(super) trait Prompter {
    fn line(&mut self, prompt: &str) -> anyhow::Result<String>;
    fn secret(&mut self, prompt: &str) -> anyhow::Result<String>;
    fn say(&mut self, text: &str);
}

struct Terminal;

impl Prompter for Terminal {
    fn line(&mut self, prompt: &str) -> anyhow::Result<String> {
        eprint!("{prompt}");
        first_line(std::io::stdin().lock()).context("reading the terminal")
    }

    fn secret(&mut self, prompt: &str) -> anyhow::Result<String> {
        Ok(rpassword::prompt_password(prompt)?)
    }

    fn say(&mut self, text: &str) {
        eprintln!("{text}");
    }
}

pub(super) async fn run(session: &Path, args: CredentialsArgs) -> anyhow::Result<()> {
    let call = async |change: CredentialsChange| match task_call(
        session,
        TaskRequest::Credentials(Box::new(change)),
    )
    .await?
    {
        AdminResponse::Credentials(results) => Ok(results),
        _ => bail!("unexpected answer from the server"),
    };
    let results = if args.password_stdin {
        let change = scripted(&args, std::io::stdin().lock())?;
        call(change).await?
    } else {
        if !std::io::stdin().is_terminal() {
            bail!("not a terminal: give the passwords with --password-stdin (see --help)");
        }
        wizard(&args, &mut Terminal, call).await?
    };
    if args.json {
        return print_json(&results);
    }
    if !args.password_stdin {
        eprintln!("Step 3 of 3: results");
    }
    table::show(&results_text(&results));
    let waiting = results
        .iter()
        .filter(|r| matches!(r.outcome, CredentialOutcome::ChoiceNeeded { .. }))
        .count();
    if waiting > 0 {
        eprintln!(
            "{waiting} task(s) need a choice: --force, --delete-credentials or --no-action TASK"
        );
    }
    Ok(())
}

/// The request the flags and standard input make.
fn scripted(args: &CredentialsArgs, mut input: impl BufRead) -> anyhow::Result<CredentialsChange> {
    let Some(account) = args.account.clone() else {
        bail!("--password-stdin needs --account NAME");
    };
    let new_password = first_line(&mut input).context("reading the new password")?;
    let previous_password = if args.with_previous {
        let previous = first_line(&mut input).context("reading the previous password")?;
        Some(Secret(previous))
    } else {
        None
    };
    Ok(CredentialsChange {
        account,
        new_password: Secret(checked_new(new_password)?),
        previous_password,
        choices: choices(args)?,
        comment: args.comment.clone(),
    })
}

fn checked_new(password: String) -> anyhow::Result<String> {
    if password.is_empty() {
        bail!("the new password is empty");
    }
    Ok(password)
}

/// The flags' choices, each task named once.
fn choices(args: &CredentialsArgs) -> anyhow::Result<Vec<(String, CredentialChoice)>> {
    let flagged = [
        (&args.force, CredentialChoice::ForceNewPassword),
        (
            &args.delete_credentials,
            CredentialChoice::DeleteCredentials,
        ),
        (&args.no_action, CredentialChoice::NoAction),
    ];
    let mut seen = HashSet::new();
    let mut choices = Vec::new();
    for (tasks, choice) in flagged {
        for task in tasks {
            if !seen.insert(task.as_str()) {
                bail!(
                    "task {task:?} is named by more than one of --force, --delete-credentials and --no-action"
                );
            }
            choices.push((task.clone(), choice));
        }
    }
    Ok(choices)
}

/// Steps 1 and 2 on a terminal; returns what step 3 shows.
pub(super) async fn wizard(
    args: &CredentialsArgs,
    prompter: &mut impl Prompter,
    mut call: impl AsyncFnMut(CredentialsChange) -> anyhow::Result<Vec<CredentialsResult>>,
) -> anyhow::Result<Vec<CredentialsResult>> {
    prompter.say("Step 1 of 3: the account and its passwords");
    let account = match &args.account {
        Some(account) => account.clone(),
        None => prompter.line("Account name: ")?.trim().to_string(),
    };
    let new_password = checked_new(prompter.secret("New password: ")?)?;
    if prompter.secret("New password again: ")? != new_password {
        bail!("the two new passwords differ");
    }
    let previous = prompter.secret("Previous password (Enter if not known): ")?;
    let first = CredentialsChange {
        account: account.clone(),
        new_password: Secret(new_password.clone()),
        previous_password: (!previous.is_empty()).then_some(Secret(previous)),
        choices: choices(args)?,
        comment: args.comment.clone(),
    };
    let found = call(first).await?;
    prompter.say(&format!("Step 2 of 3: the tasks that run under {account}"));
    if found.is_empty() {
        prompter.say("  none (local tasks and tasks inherited from a parent are not changed here)");
        return Ok(found);
    }
    let mut asked = Vec::new();
    for result in &found {
        prompter.say(&format!(
            "  #{} {}: {}",
            result.task_id, result.task_name, result.outcome
        ));
        if matches!(result.outcome, CredentialOutcome::ChoiceNeeded { .. }) {
            asked.push((result.task_id.to_string(), ask(prompter)?));
        }
    }
    if asked.is_empty() {
        return Ok(found);
    }
    let chosen: HashSet<String> = asked.iter().map(|(id, _)| id.clone()).collect();
    let second = CredentialsChange {
        account,
        new_password: Secret(new_password),
        previous_password: None,
        choices: asked,
        comment: args.comment.clone(),
    };
    let applied = call(second).await?;
    // Step 3: the first answer for the tasks replaced at once, the second for the others.
    Ok(found
        .into_iter()
        .map(|first| {
            let id = first.task_id.to_string();
            match applied.iter().find(|r| r.task_id == first.task_id) {
                Some(second) if chosen.contains(&id) => second.clone(),
                _ => first,
            }
        })
        .collect())
}

/// The administrator's choice for one task.
fn ask(prompter: &mut impl Prompter) -> anyhow::Result<CredentialChoice> {
    loop {
        let answer = prompter
            .line("    [d] delete the credentials, [f] force the new password, [n] no action? ")?;
        match answer.trim().to_ascii_lowercase().as_str() {
            "d" | "delete" => return Ok(CredentialChoice::DeleteCredentials),
            "f" | "force" => return Ok(CredentialChoice::ForceNewPassword),
            "n" | "no" | "" => return Ok(CredentialChoice::NoAction),
            _ => prompter.say("    d, f or n"),
        }
    }
}

fn results_text(results: &[CredentialsResult]) -> String {
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                format!("#{}", r.task_id),
                r.task_name.clone(),
                r.outcome.to_string(),
            ]
        })
        .collect();
    table::render(&["ID", "TASK", "RESULT"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers from a list, and keeps what was said.
    struct Script {
        answers: Vec<&'static str>,
        said: Vec<String>,
    }

    impl Prompter for Script {
        fn line(&mut self, prompt: &str) -> anyhow::Result<String> {
            self.said.push(prompt.to_string());
            Ok(self.answers.remove(0).to_string())
        }
        fn secret(&mut self, prompt: &str) -> anyhow::Result<String> {
            self.line(prompt)
        }
        fn say(&mut self, text: &str) {
            self.said.push(text.to_string());
        }
    }

    fn args(line: &[&str]) -> CredentialsArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: CredentialsArgs,
        }
        let mut all = vec!["credentials"];
        all.extend_from_slice(line);
        Cli::try_parse_from(all).unwrap().args
    }

    fn result(task_id: u64, outcome: CredentialOutcome) -> CredentialsResult {
        CredentialsResult {
            task_id,
            task_name: format!("Task {task_id}"),
            outcome,
        }
    }

    #[tokio::test]
    async fn the_wizard_asks_for_each_task_the_previous_password_did_not_replace() {
        let mut script = Script {
            answers: vec!["svc", "new-pw", "new-pw", "old-pw", "x", "f", "d"],
            said: Vec::new(),
        };
        let mut calls = Vec::new();
        let results = wizard(
            &args(&[]),
            &mut script,
            async |change: CredentialsChange| {
                calls.push(change.clone());
                let needed = || CredentialOutcome::ChoiceNeeded {
                    reason: "the previous password does not match".into(),
                };
                Ok(if change.choices.is_empty() {
                    vec![
                        result(1, CredentialOutcome::Replaced { revision: 2 }),
                        result(2, needed()),
                        result(3, needed()),
                    ]
                } else {
                    vec![
                        result(1, needed()),
                        result(2, CredentialOutcome::Forced { revision: 5 }),
                        result(3, CredentialOutcome::CredentialsDeleted { revision: 7 }),
                    ]
                })
            },
        )
        .await
        .unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].account, "svc");
        assert_eq!(calls[0].previous_password, Some(Secret("old-pw".into())));
        assert_eq!(calls[1].previous_password, None);
        assert_eq!(
            calls[1].choices,
            vec![
                ("2".to_string(), CredentialChoice::ForceNewPassword),
                ("3".to_string(), CredentialChoice::DeleteCredentials)
            ]
        );
        let outcomes: Vec<_> = results.iter().map(|r| r.outcome.clone()).collect();
        assert_eq!(
            outcomes,
            vec![
                CredentialOutcome::Replaced { revision: 2 },
                CredentialOutcome::Forced { revision: 5 },
                CredentialOutcome::CredentialsDeleted { revision: 7 },
            ]
        );
        // A wrong answer is asked again; no password is ever said back.
        assert!(script.said.iter().any(|s| s == "    d, f or n"));
        assert!(
            !script.said.iter().any(|s| s.contains("pw")),
            "{:?}",
            script.said
        );
    }

    #[tokio::test]
    async fn two_different_new_passwords_stop_the_wizard_before_any_call() {
        let mut script = Script {
            answers: vec!["new-pw", "other"],
            said: Vec::new(),
        };
        let error = wizard(&args(&["--account", "svc"]), &mut script, async |_| {
            panic!("no call")
        })
        .await
        .unwrap_err();
        assert_eq!(error.to_string(), "the two new passwords differ");
    }

    #[test]
    fn scripts_give_passwords_on_stdin_and_one_choice_per_task() {
        let args = args(&[
            "--account",
            "svc",
            "--password-stdin",
            "--with-previous",
            "--force",
            "Nightly",
            "--delete-credentials",
            "14",
            "--no-action",
            "15",
        ]);
        let change = scripted(&args, "new-pw\nold-pw\n".as_bytes()).unwrap();
        assert_eq!(change.new_password, Secret("new-pw".into()));
        assert_eq!(change.previous_password, Some(Secret("old-pw".into())));
        assert_eq!(
            change.choices,
            vec![
                ("Nightly".to_string(), CredentialChoice::ForceNewPassword),
                ("14".to_string(), CredentialChoice::DeleteCredentials),
                ("15".to_string(), CredentialChoice::NoAction),
            ]
        );
        let twice = self::args(&[
            "--account",
            "svc",
            "--password-stdin",
            "--force",
            "7",
            "--no-action",
            "7",
        ]);
        let error = scripted(&twice, "new-pw\n".as_bytes()).unwrap_err();
        assert!(error.to_string().contains("more than one"), "{error}");
        let empty = scripted(
            &self::args(&["--account", "svc", "--password-stdin"]),
            "\n".as_bytes(),
        );
        assert_eq!(empty.unwrap_err().to_string(), "the new password is empty");
    }
}
