//! Device tasks under a specified account, end to end: real `canopy agent` processes, one at
//! the primary, one below a secondary and one at the primary's virtual server, check the
//! account's password with PAM and run the command as that account. The machine's own accounts are never touched: the agents run
//! with Debian's PAM and NSS test wrappers preloaded (`make test-deps` installs them), which
//! give them an account "canopy-runner" (user id 4242, groups 4242 and 4343) and a PAM
//! service "canopy" that checks passwords against a file of the test's.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use canopy::cli::client::AdminClient;
use canopy::cli::deployment::Deployment;
use canopy::model::task::DeviceRunRecord;
use canopy::model::task::{DeviceState, TaskPayload, TaskType};
use canopy::wire::msg::{
    AccountSpec, AdminRequest, AdminResponse, CredentialChoice, CredentialOutcome,
    CredentialsChange, DEVICE_PAGE_MAX, DeviceRequest, Secret, TaskChanges, TaskRequest,
};
use common::{create_task, start_task, task_spec, until};

const TOKEN: &str = "account-runs-tests-token-0123456789";
/// The account's password, planted: no file of the deployment may hold it.
const PASSWORD: &str = "Pl4nted-account-pw-7Qx";
/// The account's password after the rotation the wizard test makes.
const NEW_PASSWORD: &str = "Pl4nted-rotated-pw-5Kv";
const RUNNER_UID: &str = "4242";

const LIB: &str = "/usr/lib/x86_64-linux-gnu";

/// The PAM and NSS wrappers' files, and the environment that makes a process use them.
struct TestAccounts {
    env: Vec<(String, String)>,
}

impl TestAccounts {
    fn new(dir: &Path) -> TestAccounts {
        let preload = [
            format!("{LIB}/libpam_wrapper.so"),
            format!("{LIB}/libnss_wrapper.so"),
        ];
        for lib in &preload {
            assert!(
                Path::new(lib).exists(),
                "{lib} is missing: `make test` installs it (make test-deps)"
            );
        }
        let home = dir.join("runner-home");
        std::fs::create_dir_all(&home).unwrap();
        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let passwd = write(
            "passwd",
            format!(
                "root:x:0:0:root:/root:/bin/sh\n\
                 canopy-runner:x:{RUNNER_UID}:4242:Canopy runner:{}:/bin/sh\n",
                home.display()
            ),
        );
        let group = write(
            "group",
            "root:x:0:\ncanopy-runner:x:4242:\ncanopy-ops:x:4343:canopy-runner\n".into(),
        );
        let passdb = write("passdb", format!("canopy-runner:{PASSWORD}:canopy\n"));
        let services = dir.join("pam.d");
        std::fs::create_dir_all(&services).unwrap();
        let module = format!("{LIB}/pam_wrapper/pam_matrix.so");
        std::fs::write(
            services.join("canopy"),
            format!(
                "auth required {module} passdb={p}\naccount required {module} passdb={p}\n",
                p = passdb.display()
            ),
        )
        .unwrap();
        let env = [
            ("LD_PRELOAD", preload.join(":")),
            ("PAM_WRAPPER", "1".into()),
            ("PAM_WRAPPER_SERVICE_DIR", services.display().to_string()),
            ("NSS_WRAPPER_PASSWD", passwd.display().to_string()),
            ("NSS_WRAPPER_GROUP", group.display().to_string()),
        ];
        TestAccounts {
            env: env.into_iter().map(|(k, v)| (k.into(), v)).collect(),
        }
    }
}

/// A `canopy agent` process, killed when dropped.
struct AgentProcess(Child);

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A real agent named `name` enrolled at `address` with `token`, in the test accounts'
/// environment.
fn agent(
    d: &Deployment,
    accounts: &TestAccounts,
    name: &str,
    address: &str,
    token: &str,
) -> AgentProcess {
    drop(d.agent_config_at(name, address, Some(token)).unwrap());
    let config: PathBuf = d.dir.join(format!("{name}.agent.toml"));
    let log = std::fs::File::create(d.dir.join(format!("{name}.log"))).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_canopy"))
        .args(["agent", "--config"])
        .arg(&config)
        .envs(accounts.env.iter().map(|(k, v)| (k, v)))
        .env("CANOPY_LOG", "trace")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    AgentProcess(child)
}

async fn records(admin: &AdminClient, task: &str, server: Option<&str>) -> Vec<DeviceRunRecord> {
    let request = TaskRequest::Results {
        task: task.into(),
        run: None,
        state: None,
        details: true,
        server: server.map(Into::into),
        after: None,
        limit: canopy::wire::msg::PAGE_MAX,
    };
    admin.results(request).await.unwrap().1
}

/// The devices of the tree: one at the primary, one below the secondary, one at the
/// primary's virtual server.
const DEVICES: usize = 3;

/// Waits for the one record of the task's last run at each place, finished.
async fn finished(admin: &AdminClient, task: &str) -> [DeviceRunRecord; DEVICES] {
    common::wait_tree_finished(admin, task, DEVICES as u64).await;
    let mut out = Vec::new();
    for server in [None, Some("branch-1"), Some("tenant-a")] {
        let list = records(admin, task, server).await;
        assert_eq!(list.len(), 1, "{server:?}: {list:#?}");
        out.push(list.into_iter().next().unwrap());
    }
    out.try_into().unwrap()
}

fn stdout_of(record: &DeviceRunRecord) -> String {
    match &record.details {
        Some(canopy::model::task::Details::Command { stdout, .. }) => stdout.clone(),
        other => panic!("no command output: {other:?} in {record:#?}"),
    }
}

/// A primary, its secondary and its virtual server "tenant-a", each with one real agent
/// connected, in the test accounts' environment.
struct Tree {
    tmp: tempfile::TempDir,
    admin: AdminClient,
    _servers: [canopy::server::RunningServer; 2],
    _agents: [AgentProcess; DEVICES],
}

async fn tree() -> Tree {
    let tmp = tempfile::tempdir().unwrap();
    let d = Deployment::create(tmp.path()).unwrap();
    let accounts = TestAccounts::new(&tmp.path().join("accounts"));
    let (primary, branch, admin) = common::two_tiers(&d, TOKEN).await;
    let tenant_token = common::create_vserver(&admin, "tenant-a", "Managed devices").await;
    let hq = primary.local_addr().to_string();
    let agents = [
        agent(&d, &accounts, "pc-hq", &hq, TOKEN),
        agent(
            &d,
            &accounts,
            "pc-branch",
            &branch.local_addr().to_string(),
            TOKEN,
        ),
        agent(
            &d,
            &accounts,
            "pc-tenant",
            &format!("{hq}/tenant-a"),
            &tenant_token,
        ),
    ];
    for server in [None, Some("branch-1"), Some("tenant-a")] {
        until(&format!("the agent at {server:?} connected"), || async {
            let list = DeviceRequest::List {
                group: None,
                recursive: true,
                after: None,
                limit: DEVICE_PAGE_MAX,
            };
            match admin.call_at(server, AdminRequest::Device(list)).await {
                Ok(AdminResponse::Devices { devices, .. }) => {
                    devices.iter().filter(|d| d.connected).count() == 1
                }
                _ => false,
            }
        })
        .await;
    }
    Tree {
        tmp,
        admin,
        _servers: [primary, branch],
        _agents: agents,
    }
}

/// A command task across the tree that prints who it runs as, under `account` if given.
async fn who_am_i(admin: &AdminClient, name: &str, account: Option<(&str, &str)>) {
    let mut spec = task_spec(
        name,
        TaskType::Device(TaskPayload::Command {
            program: "/bin/sh".into(),
            // The programs whose output is checked run without pam_wrapper: they need only
            // NSS, and a process that loads it races the others for a config dir in /tmp
            // (once, `id -G` printed nothing beside a pam_wrapper error).
            args: vec!["-c".into(), "unset PAM_WRAPPER; id -u; id -G; pwd".into()],
            time_limit_secs: 30,
        }),
        common::tree_scope("Managed devices"),
    );
    spec.account = account.map(|(name, password)| AccountSpec {
        name: name.into(),
        password: Some(Secret(password.into())),
    });
    create_task(admin, spec).await;
}

/// Runs the task on both devices; each one's record.
async fn run(admin: &AdminClient, task: &str) -> [DeviceRunRecord; DEVICES] {
    start_task(admin, task, None).await;
    finished(admin, task).await
}

/// Asserts that both records ran as the test account.
fn ran_as_runner(tree: &Tree, records: &[DeviceRunRecord; DEVICES]) {
    let home = tree.tmp.path().join("accounts/runner-home");
    for record in records {
        assert_eq!(record.state, DeviceState::Succeeded, "{record:#?}");
        assert_eq!(
            stdout_of(record),
            format!("{RUNNER_UID}\n4242 4343\n{}\n", home.display()),
            "{record:#?}"
        );
    }
}

fn password_not_valid(records: &[DeviceRunRecord; DEVICES]) {
    for record in records {
        assert_eq!(record.state, DeviceState::Failed, "{record:#?}");
        assert_eq!(record.description, "the account's password is not valid");
    }
}

/// No file under `dir` holds `secret`, but the PAM wrapper's password file.
fn in_no_file(dir: &Path, secret: &str) {
    let files = common::assert_in_no_file(dir, secret, &["passdb"]);
    assert!(files.len() > 10, "{files:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_runs_as_its_account_below_a_secondary_and_fails_with_a_wrong_password() {
    let tree = tree().await;
    let admin = &tree.admin;
    who_am_i(admin, "Who am I", Some(("canopy-runner", PASSWORD))).await;
    ran_as_runner(&tree, &run(admin, "Who am I").await);

    // A wrong password: each device's record fails, saying why.
    let changes = TaskChanges {
        account: Some(Some(AccountSpec {
            name: "canopy-runner".into(),
            password: Some(Secret("not-the-password".into())),
        })),
        ..TaskChanges::default()
    };
    let edited = admin
        .call(AdminRequest::Task(TaskRequest::Edit {
            task: "Who am I".into(),
            changes: Box::new(changes),
        }))
        .await
        .unwrap();
    assert!(matches!(edited, AdminResponse::Task(_)), "{edited:?}");
    password_not_valid(&run(admin, "Who am I").await);

    // The password is in no file of the deployment: databases of the primary, the
    // secondary and both agents, their keys, configs and logs.
    tokio::time::sleep(Duration::from_millis(200)).await;
    in_no_file(tree.tmp.path(), PASSWORD);
}

async fn wizard(
    admin: &AdminClient,
    change: CredentialsChange,
) -> Vec<(String, CredentialOutcome)> {
    let request = TaskRequest::Credentials(Box::new(change));
    match admin.call(AdminRequest::Task(request)).await.unwrap() {
        AdminResponse::Credentials(results) => results
            .into_iter()
            .map(|r| (r.task_name, r.outcome))
            .collect(),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_tasks_password_wizard_replaces_forces_and_deletes_then_the_tasks_run() {
    let tree = tree().await;
    let admin = &tree.admin;
    // Four tasks under the account: the current password, two others, a wrong one.
    who_am_i(admin, "Matches", Some(("canopy-runner", PASSWORD))).await;
    who_am_i(admin, "Forced", Some(("canopy-runner", "stale-1"))).await;
    who_am_i(admin, "Deleted", Some(("canopy-runner", "stale-2"))).await;
    who_am_i(admin, "Left", Some(("canopy-runner", "stale-3"))).await;
    who_am_i(admin, "Other account", Some(("someone-else", PASSWORD))).await;

    // The account's password changes on the devices.
    let passdb = tree.tmp.path().join("accounts/passdb");
    std::fs::write(&passdb, format!("canopy-runner:{NEW_PASSWORD}:canopy\n")).unwrap();
    password_not_valid(&run(admin, "Matches").await);

    // Steps 1 and 2: the previous password matches one task, replaced at once; the others
    // wait for a choice.
    let change =
        |previous: Option<&str>, choices: Vec<(&str, CredentialChoice)>| CredentialsChange {
            account: "canopy-runner".into(),
            new_password: Secret(NEW_PASSWORD.into()),
            previous_password: previous.map(|p| Secret(p.into())),
            choices: choices
                .into_iter()
                .map(|(t, c)| (t.to_string(), c))
                .collect(),
            comment: Some("quarterly rotation".into()),
        };
    let needed = || CredentialOutcome::ChoiceNeeded {
        reason: "the previous password does not match".into(),
    };
    let found = wizard(admin, change(Some(PASSWORD), Vec::new())).await;
    assert_eq!(
        found,
        vec![
            (
                "Matches".into(),
                CredentialOutcome::Replaced { revision: 2 }
            ),
            ("Forced".into(), needed()),
            ("Deleted".into(), needed()),
            ("Left".into(), needed()),
        ]
    );
    // The administrator's choices; step 3, the results.
    let choices = vec![
        ("Forced", CredentialChoice::ForceNewPassword),
        ("Deleted", CredentialChoice::DeleteCredentials),
        ("Left", CredentialChoice::NoAction),
    ];
    let done = wizard(admin, change(None, choices)).await;
    assert_eq!(
        done,
        vec![
            (
                "Matches".into(),
                CredentialOutcome::ChoiceNeeded {
                    reason: "no previous password was given".into()
                }
            ),
            ("Forced".into(), CredentialOutcome::Forced { revision: 2 }),
            (
                "Deleted".into(),
                CredentialOutcome::CredentialsDeleted { revision: 2 }
            ),
            ("Left".into(), CredentialOutcome::NoAction),
        ]
    );
    // Each change is a revision, with its comment.
    let history = match admin
        .call(AdminRequest::Task(TaskRequest::History {
            task: "Forced".into(),
        }))
        .await
        .unwrap()
    {
        AdminResponse::Revisions(revisions) => revisions,
        other => panic!("unexpected {other:?}"),
    };
    let last = history.last().unwrap();
    assert_eq!(last.action.to_string(), "password changed (forced)");
    assert_eq!(last.comment.as_deref(), Some("quarterly rotation"));

    // The tasks run with the new password; the deleted credentials mean the default account
    // (the agent's own, root here); the task left alone still fails.
    ran_as_runner(&tree, &run(admin, "Matches").await);
    ran_as_runner(&tree, &run(admin, "Forced").await);
    for record in run(admin, "Deleted").await {
        assert_eq!(record.state, DeviceState::Succeeded, "{record:#?}");
        let uid = own_uid();
        assert!(
            stdout_of(&record).starts_with(&format!("{uid}\n")),
            "{record:#?}"
        );
    }
    password_not_valid(&run(admin, "Left").await);
    in_no_file(tree.tmp.path(), NEW_PASSWORD);
}

/// This process's effective user id, as `id -u` prints it.
fn own_uid() -> String {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
