//! The REST API over real HTTPS on loopback: a primary and its secondary with simulated
//! fleets, a virtual server, every operation of the OpenAPI document the server serves called
//! once at least, each answer (and each body sent) validated against the document's schema;
//! the role checks, paging, drill-down through the tree and a tenant's isolation; bad input
//! (malformed JSON, unknown fields, wrong types, an oversized body, a wrong content type, an
//! unknown query parameter) refused with a clear 4xx and nothing changed.

mod common;
// Each test binary uses part of the shared client.
#[allow(dead_code)]
#[path = "common/rest.rs"]
mod rest;

use std::collections::BTreeSet;

use canopy::cli::deployment::{ADMIN_PASSWORD, ADMIN_USER, Deployment};
use canopy::model::Role;
use canopy::model::rights::{Grant, Principal, Rights};
use canopy::wire::msg::{CredentialsChange, RightsChange, ScopeSpec, Secret};
use common::{simulate_spec, tree_scope, until};
use rest::{Answer, Rest};
use serde_json::{Value, json};

const TOKEN: &str = "api-tests-token-0123456789";
const WEB: &str = "\n[web]\nlisten = \"127.0.0.1:0\"\n";

/// Calls operations by their OpenAPI id and checks each answer against the document.
struct Walk {
    document: Value,
    called: BTreeSet<String>,
}

impl Walk {
    /// The method and path template of the operation `id`.
    fn find(&self, id: &str) -> (String, String) {
        for (path, methods) in self.document["paths"].as_object().unwrap() {
            for (method, op) in methods.as_object().unwrap() {
                if op["operationId"] == id {
                    return (method.to_uppercase(), path.clone());
                }
            }
        }
        panic!("no operation {id} in the document");
    }

    /// A schema of the document, with the document's components beside it for its `$ref`s.
    fn validator(&self, schema: &Value) -> jsonschema::Validator {
        let mut root = schema.as_object().cloned().unwrap_or_default();
        root.insert("components".into(), self.document["components"].clone());
        jsonschema::draft202012::new(&Value::Object(root))
            .unwrap_or_else(|e| panic!("the document's schema does not compile: {e}"))
    }

    fn check(&self, what: &str, schema: &Value, value: &Value) {
        let validator = self.validator(schema);
        let errors: Vec<String> = validator
            .iter_errors(value)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{what} does not match its schema:\n{}\n{value:#}",
            errors.join("\n")
        );
    }

    /// Calls `id` at `url` (its path filled in, with a query) with `body`; the answer must
    /// have `status` and match what the document says of that status.
    async fn call(
        &mut self,
        rest: &Rest,
        id: &str,
        url: &str,
        body: Option<Value>,
        status: u16,
    ) -> Value {
        let (method, template) = self.find(id);
        let op = self.document["paths"][&template][method.to_lowercase()].clone();
        if let Some(body) = &body {
            let schema = &op["requestBody"]["content"]["application/json"]["schema"];
            assert!(schema.is_object(), "{id} documents no body");
            self.check(&format!("{id}'s body"), schema, body);
        }
        let answer = rest
            .call(&method, &format!("/api/v1{url}"), body.as_ref())
            .await;
        assert_eq!(
            answer.status,
            status,
            "{method} {url} ({id}): {}",
            String::from_utf8_lossy(&answer.body)
        );
        let documented = if (200..300).contains(&status) {
            &op["responses"][status.to_string()]
        } else if status < 500 {
            &op["responses"]["4XX"]
        } else {
            &op["responses"]["5XX"]
        };
        let schema = &documented["content"]["application/json"]["schema"];
        assert!(
            schema.is_object(),
            "{id}: status {status} is not documented"
        );
        let value = answer.json();
        self.check(&format!("{id}'s answer ({status})"), schema, &value);
        self.called.insert(id.to_string());
        value
    }

    fn every_id(&self) -> BTreeSet<String> {
        let mut ids = BTreeSet::new();
        for methods in self.document["paths"].as_object().unwrap().values() {
            for op in methods.as_object().unwrap().values() {
                ids.insert(op["operationId"].as_str().unwrap().to_string());
            }
        }
        ids
    }
}

fn enc(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap()
}

/// Waits until the run of `task` is finished across the tree; its statistics.
async fn finished(walk: &mut Walk, rest: &Rest, task: &str) -> Value {
    let url = format!("/tasks/{}/stats", enc(task));
    let mut last = Value::Null;
    for _ in 0..300 {
        last = walk.call(rest, "taskStats", &url, None, 200).await;
        let by_state = &last["counters"]["by_state"];
        let open = ["pending", "scheduled", "running", "paused"]
            .iter()
            .map(|s| by_state[s].as_u64().unwrap_or(1))
            .sum::<u64>();
        if last["state"] == "completed" && open == 0 {
            return last;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{task} did not finish: {last:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_answers_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let (primary, branch, _admin) = common::two_tiers_with(&d, TOKEN, WEB).await;
    let ca = d.ca().unwrap();
    let mut rest = Rest::new(primary.web_addr().unwrap(), "primary", &ca);
    let address = primary.local_addr().to_string();
    let _fleets = (
        common::named_fleet(&d, "fleet-p", &address, TOKEN, 3, "").await,
        common::named_fleet(
            &d,
            "fleet-b",
            &branch.local_addr().to_string(),
            TOKEN,
            2,
            "",
        )
        .await,
    );

    // The document, served without a session.
    let document = rest.expect(200, "GET", "/api/v1/openapi.json", None).await;
    assert_eq!(document["openapi"], "3.1.0");
    let mut walk = Walk {
        document,
        called: BTreeSet::new(),
    };

    // The schemas are real: an answer of the wrong shape does not pass.
    let (_, tasks) = walk.find("listTasks");
    let schema = &walk.document["paths"][&tasks]["get"]["responses"]["200"]["content"]["application/json"]
        ["schema"];
    let wrong = json!({ "tasks": [{ "name": 7 }], "next": "x" });
    assert!(!walk.validator(schema).is_valid(&wrong));

    // No session, a bad password, then a login.
    let refused = rest.call("GET", "/api/v1/tasks", None).await;
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (401, "unauthenticated")
    );
    assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
    let bad = json!({ "user": ADMIN_USER, "password": "not the password" });
    walk.call(&rest, "login", "/login", Some(bad), 401).await;
    let login = json!({ "user": ADMIN_USER, "password": ADMIN_PASSWORD });
    let session = walk.call(&rest, "login", "/login", Some(login), 200).await;
    rest.token = Some(session["token"].as_str().unwrap().to_string());
    assert_eq!(session["role"], to_json(&Role::Administrator));

    // The server and its tree.
    let status = walk.call(&rest, "serverStatus", "/status", None, 200).await;
    assert_eq!(status["name"], "primary");
    let servers = walk.call(&rest, "listServers", "/servers", None, 200).await;
    let paths: Vec<&str> = servers["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["primary", "primary/branch-1"]);

    // Groups, paged one at a time.
    for path in ["Managed devices/Paris", "Managed devices/Old"] {
        walk.call(
            &rest,
            "createGroup",
            "/groups",
            Some(json!({ "path": path })),
            201,
        )
        .await;
    }
    let rename = json!({ "path": "Managed devices/Old", "new_name": "Older" });
    walk.call(&rest, "renameGroup", "/groups/rename", Some(rename), 200)
        .await;
    let moved = json!({ "path": "Managed devices/Older", "new_parent": "Managed devices/Paris" });
    walk.call(&rest, "moveGroup", "/groups/move", Some(moved), 200)
        .await;
    let mut listed = Vec::new();
    let mut url = "/groups?limit=1".to_string();
    loop {
        let page = walk.call(&rest, "listGroups", &url, None, 200).await;
        let groups = page["groups"].as_array().unwrap();
        assert_eq!(groups.len(), 1, "{page}");
        listed.push(groups[0]["path"].as_str().unwrap().to_string());
        match page["next"].as_str() {
            Some(next) => url = format!("/groups?limit=1&after={}", enc(next)),
            None => break,
        }
    }
    assert_eq!(
        listed,
        [
            "Managed devices",
            "Managed devices/Paris",
            "Managed devices/Paris/Older",
            "Unassigned devices"
        ]
    );
    let older = format!("/groups?path={}", enc("Managed devices/Paris/Older"));
    walk.call(&rest, "deleteGroup", &older, None, 200).await;
    let paris_rights = format!("/groups/rights?path={}", enc("Managed devices/Paris"));
    walk.call(&rest, "groupRights", &paris_rights, None, 200)
        .await;
    let change = RightsChange {
        principal: Principal::Account("paris-op".into()),
        grant: Grant {
            allow: Rights::ALL,
            deny: Rights::NONE,
        },
    };
    let body = json!({ "path": "Managed devices/Paris", "change": to_json(&change) });
    let rights = walk
        .call(&rest, "setGroupRights", "/groups/rights", Some(body), 200)
        .await;
    assert!(rights["lists"].to_string().contains("paris-op"), "{rights}");

    // Accounts; an auditor may read but not create.
    let auditor = json!({ "name": "audit", "password": "auditor-password-1", "role": to_json(&Role::Auditor) });
    walk.call(&rest, "createAccount", "/accounts", Some(auditor), 201)
        .await;
    let accounts = walk
        .call(&rest, "listAccounts", "/accounts", None, 200)
        .await;
    assert_eq!(accounts["accounts"].as_array().unwrap().len(), 2);
    let password = json!({ "password": "auditor-password-2" });
    walk.call(
        &rest,
        "setAccountPassword",
        "/accounts/audit/password",
        Some(password),
        200,
    )
    .await;
    let mut audit = Rest::new(rest.addr, "primary", &ca);
    audit.login("audit", "auditor-password-2", None).await;
    let spec = simulate_spec("Forbidden", tree_scope("Managed devices"), 10, [1, 0, 0]);
    let refused = audit
        .call("POST", "/api/v1/tasks", Some(&to_json(&spec)))
        .await;
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (403, "forbidden")
    );
    assert_eq!(audit.call("GET", "/api/v1/tasks", None).await.status, 200);

    // Devices: the primary's own, one shown, tagged and moved; two pending, one approved
    // and one rejected then deleted.
    let devices = walk.call(&rest, "listDevices", "/devices", None, 200).await;
    assert_eq!(devices["devices"].as_array().unwrap().len(), 3, "{devices}");
    let first = devices["devices"][0]["name"].as_str().unwrap().to_string();
    let url = format!("/devices/{}", enc(&first));
    walk.call(&rest, "showDevice", &url, None, 200).await;
    let tags = json!({ "add": ["lab"] });
    walk.call(&rest, "tagDevice", &format!("{url}/tags"), Some(tags), 200)
        .await;
    let to_paris = json!({ "group": "Managed devices/Paris" });
    walk.call(
        &rest,
        "moveDevice",
        &format!("{url}/move"),
        Some(to_paris),
        200,
    )
    .await;
    let pending_config = d.agent_config_at("pending", &address, None).unwrap();
    let pending = canopy::agent::Agents::start(
        pending_config,
        Some(canopy::agent::Simulation {
            devices: 2,
            seed: 99,
        }),
    )
    .await
    .unwrap();
    until("two devices pending", || async {
        pending.counts().pending == 2
    })
    .await;
    let all = walk
        .call(
            &rest,
            "listDevices",
            "/devices?group=Unassigned%20devices",
            None,
            200,
        )
        .await;
    // Their names are the other fleet's (simulated names repeat): by id.
    let names: Vec<String> = all["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 2, "{all}");
    let approve = format!("/devices/{}/approve", enc(&names[0]));
    walk.call(&rest, "approveDevice", &approve, None, 200).await;
    let reject = format!("/devices/{}/reject", enc(&names[1]));
    walk.call(&rest, "rejectDevice", &reject, None, 200).await;
    let delete = format!("/devices/{}", enc(&names[1]));
    walk.call(&rest, "deleteDevice", &delete, None, 200).await;
    drop(pending);
    // Drill-down: the secondary's devices, through the tree.
    let below = walk
        .call(&rest, "listDevices", "/devices?at=branch-1", None, 200)
        .await;
    assert_eq!(below["devices"].as_array().unwrap().len(), 2, "{below}");

    // A group task over the tree: created, listed, shown, edited, started; its statistics
    // by server and the secondary's per-device results.
    let spec = simulate_spec("Patch", tree_scope("Managed devices"), 50, [1, 0, 0]);
    let created = walk
        .call(&rest, "createTask", "/tasks", Some(to_json(&spec)), 201)
        .await;
    assert_eq!(created["name"], "Patch");
    let list = walk.call(&rest, "listTasks", "/tasks", None, 200).await;
    assert_eq!(list["tasks"].as_array().unwrap().len(), 1);
    walk.call(&rest, "showTask", "/tasks/Patch", None, 200)
        .await;
    let edit = json!({ "store_history_days": 7, "comment": "a week is enough" });
    let edited = walk
        .call(&rest, "editTask", "/tasks/Patch", Some(edit), 200)
        .await;
    assert_eq!(edited["store_history_days"], 7, "{edited}");
    let started = walk
        .call(&rest, "startTask", "/tasks/Patch/start", None, 200)
        .await;
    assert!(started["run"]["run_id"].as_u64().is_some(), "{started}");
    let stats = finished(&mut walk, &rest, "Patch").await;
    let here = walk
        .call(&rest, "taskResults", "/tasks/Patch/results", None, 200)
        .await;
    let here_count = here["records"].as_array().unwrap().len() as u64;
    assert!(here_count >= 3, "{here:#}");
    // The primary's devices and the secondary's two, counted across the tree.
    assert_eq!(
        stats["counters"]["by_state"]["succeeded"],
        here_count + 2,
        "{stats:#}"
    );
    let rows: Vec<&str> = stats["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap())
        .collect();
    assert!(
        rows.contains(&"primary/branch-1"),
        "a row of the secondary: {stats:#}"
    );
    let branch_url = "/tasks/Patch/results?server=branch-1&details=true";
    let there = walk.call(&rest, "taskResults", branch_url, None, 200).await;
    assert_eq!(there["records"].as_array().unwrap().len(), 2, "{there:#}");

    // Export, import (a look, then for real on a device list), copy, history, diff,
    // rollback; rights on the device-list task; the password wizard.
    let exported = walk
        .call(&rest, "exportTask", "/tasks/Patch/export", None, 200)
        .await;
    let file = exported["file"].as_str().unwrap().to_string();
    let look = json!({ "file": file });
    let would = walk
        .call(&rest, "importTask", "/tasks/import", Some(look), 200)
        .await;
    assert_eq!(would["name"], "Patch (1)", "{would}");
    let scope = ScopeSpec::Devices {
        entries: vec![first.clone()],
    };
    let commit = json!({ "file": file, "commit": true, "scope": to_json(&scope) });
    walk.call(&rest, "importTask", "/tasks/import", Some(commit), 200)
        .await;
    let copy = json!({ "name": "Patch copy" });
    walk.call(&rest, "copyTask", "/tasks/Patch/copy", Some(copy), 201)
        .await;
    let history = walk
        .call(&rest, "taskHistory", "/tasks/Patch/history", None, 200)
        .await;
    assert_eq!(history.as_array().unwrap().len(), 2, "{history:#}");
    walk.call(&rest, "taskDiff", "/tasks/Patch/diff?from=1", None, 200)
        .await;
    let back = json!({ "revision": 1, "comment": "back" });
    walk.call(
        &rest,
        "rollbackTask",
        "/tasks/Patch/rollback",
        Some(back),
        200,
    )
    .await;
    let imported = format!("/tasks/{}/rights", enc("Patch (1)"));
    walk.call(&rest, "taskRights", &imported, None, 200).await;
    walk.call(
        &rest,
        "setTaskRights",
        &imported,
        Some(to_json(&change)),
        200,
    )
    .await;
    let wizard = CredentialsChange {
        account: "svc-backup".into(),
        new_password: Secret("a-new-password-1".into()),
        previous_password: None,
        choices: Vec::new(),
        comment: None,
    };
    walk.call(
        &rest,
        "changeTaskCredentials",
        "/task-credentials",
        Some(to_json(&wizard)),
        200,
    )
    .await;

    // A long run paused, resumed and stopped.
    let slow = simulate_spec("Slow", tree_scope("Managed devices"), 60_000, [1, 0, 0]);
    walk.call(&rest, "createTask", "/tasks", Some(to_json(&slow)), 201)
        .await;
    walk.call(&rest, "startTask", "/tasks/Slow/start", None, 200)
        .await;
    walk.call(&rest, "pauseTask", "/tasks/Slow/pause", None, 200)
        .await;
    walk.call(&rest, "resumeTask", "/tasks/Slow/resume", None, 200)
        .await;
    let stopped = walk
        .call(&rest, "stopTask", "/tasks/Slow/stop", None, 200)
        .await;
    assert_eq!(stopped["state"], "stopped", "{stopped:#}");

    // Deleted and restored.
    let url = format!("/tasks/{}?comment=gone", enc("Patch copy"));
    walk.call(&rest, "deleteTask", &url, None, 200).await;
    let deleted = walk
        .call(&rest, "listDeletedTasks", "/deleted-tasks", None, 200)
        .await;
    assert_eq!(deleted.as_array().unwrap().len(), 1, "{deleted:#}");
    let url = format!("/deleted-tasks/{}/restore", enc("Patch copy"));
    walk.call(&rest, "restoreTask", &url, None, 200).await;

    // A virtual server and its administrator, who sees only the tenant.
    let tenant = json!({ "name": "tenant-a", "group": "Managed devices" });
    walk.call(
        &rest,
        "createVirtualServer",
        "/virtual-servers",
        Some(tenant),
        201,
    )
    .await;
    walk.call(&rest, "listVirtualServers", "/virtual-servers", None, 200)
        .await;
    let boss = json!({ "name": "boss", "password": "tenant-password-1", "role": to_json(&Role::Administrator) });
    walk.call(
        &rest,
        "createAccount",
        "/accounts?at=tenant-a",
        Some(boss),
        201,
    )
    .await;
    let mut tenant = Rest::new(rest.addr, "primary", &ca);
    let session = tenant
        .login("boss", "tenant-password-1", Some("tenant-a"))
        .await;
    assert!(session["token"].as_str().unwrap().starts_with("tenant-a:"));
    let theirs = tenant.expect(200, "GET", "/api/v1/tasks", None).await;
    // The group tasks of the host reach the tenant as inherited copies; the host's own
    // device-list task does not.
    let names: Vec<&str> = theirs["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"Patch (1)"), "{theirs}");
    assert!(
        theirs["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["inherited_from"].is_string()
                || t["scope_text"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("inherited")),
        "{theirs}"
    );
    let hidden = tenant.call("GET", "/api/v1/tasks/Patch%20(1)", None).await;
    assert_eq!((hidden.status, hidden.code().as_str()), (404, "not_found"));
    let seen = tenant.expect(200, "GET", "/api/v1/servers", None).await;
    assert_eq!(seen["servers"].as_array().unwrap().len(), 1, "{seen}");
    walk.call(
        &rest,
        "disableVirtualServer",
        "/virtual-servers/tenant-a/disable",
        None,
        200,
    )
    .await;
    assert_eq!(tenant.call("GET", "/api/v1/tasks", None).await.status, 401);
    walk.call(
        &rest,
        "enableVirtualServer",
        "/virtual-servers/tenant-a/enable",
        None,
        200,
    )
    .await;
    walk.call(
        &rest,
        "deleteVirtualServer",
        "/virtual-servers/tenant-a",
        None,
        200,
    )
    .await;

    // Notification channels: a webhook on a loopback port where nothing listens.
    let channel = json!({
        "name": "hook",
        "target": { "Webhook": { "url": "https://127.0.0.1:9/hook" } },
        "filter": to_json(&canopy::model::notify::ChannelFilter::default()),
        "secret": "a-webhook-secret-1",
        "ca_pem": null
    });
    walk.call(
        &rest,
        "addNotificationChannel",
        "/notification-channels",
        Some(channel),
        201,
    )
    .await;
    walk.call(
        &rest,
        "listNotificationChannels",
        "/notification-channels",
        None,
        200,
    )
    .await;
    let test = rest
        .call("POST", "/api/v1/notification-channels/hook/test", None)
        .await;
    assert!(test.status >= 400, "nothing listens: {test:?}");
    walk.call(
        &rest,
        "testNotificationChannel",
        "/notification-channels/hook/test",
        None,
        test.status,
    )
    .await;
    walk.call(
        &rest,
        "removeNotificationChannel",
        "/notification-channels/hook",
        None,
        200,
    )
    .await;

    // A secondary registered, its certificate revoked, the registration removed.
    d.add_server("branch-x", 0, None).await.unwrap();
    let pem = std::fs::read_to_string(d.dir.join("certs/branch-x.pem")).unwrap();
    let secondary = json!({ "name": "branch-x", "group": "Managed devices", "cert_pem": pem });
    walk.call(&rest, "addSecondary", "/servers", Some(secondary), 201)
        .await;
    let revoke = json!({ "name": "branch-x", "cert_pem": pem, "reason": "test" });
    walk.call(
        &rest,
        "revokeCertificate",
        "/revocations",
        Some(revoke),
        200,
    )
    .await;
    walk.call(&rest, "removeSecondary", "/servers/branch-x", None, 200)
        .await;

    // The events of all that, and the last of them: the auditor deleted, then logged out.
    let events = walk
        .call(
            &rest,
            "listEvents",
            "/events?severity=info&limit=50",
            None,
            200,
        )
        .await;
    assert!(!events["events"].as_array().unwrap().is_empty());
    walk.call(&rest, "deleteAccount", "/accounts/audit", None, 200)
        .await;
    assert_eq!(audit.call("GET", "/api/v1/tasks", None).await.status, 401);
    walk.call(&rest, "logout", "/logout", None, 200).await;
    assert_eq!(rest.call("GET", "/api/v1/tasks", None).await.status, 401);

    let missing: Vec<String> = walk.every_id().difference(&walk.called).cloned().collect();
    assert!(missing.is_empty(), "operations never called: {missing:?}");
    primary.shutdown().await.unwrap();
    branch.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_4xx_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::create(dir.path()).unwrap();
    let (primary, branch, _admin) = common::two_tiers_with(&d, TOKEN, WEB).await;
    let mut rest = Rest::new(primary.web_addr().unwrap(), "primary", &d.ca().unwrap());
    rest.login(ADMIN_USER, ADMIN_PASSWORD, None).await;
    let spec = to_json(&simulate_spec(
        "Kept",
        tree_scope("Managed devices"),
        10,
        [1, 0, 0],
    ));
    rest.expect(201, "POST", "/api/v1/tasks", Some(&spec)).await;
    let tasks = || async { rest.expect(200, "GET", "/api/v1/tasks", None).await["tasks"].clone() };
    let before = tasks().await;

    let json = Some("application/json");
    // Method, path, content type, body; the status, code and words of the answer.
    type Case<'a> = (
        &'a str,
        &'a str,
        Option<&'a str>,
        Vec<u8>,
        u16,
        &'a str,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "POST",
            "/api/v1/tasks",
            json,
            b"{\"name\": ".to_vec(),
            400,
            "invalid_body",
            "EOF",
        ),
        (
            "POST",
            "/api/v1/tasks",
            json,
            b"[1, 2".to_vec(),
            400,
            "invalid_body",
            "JSON body",
        ),
        (
            "PATCH",
            "/api/v1/tasks/Kept",
            json,
            b"{\"colour\": \"red\"}".to_vec(),
            400,
            "invalid_body",
            "unknown field `colour`",
        ),
        (
            "PATCH",
            "/api/v1/tasks/Kept",
            json,
            b"{\"store_history_days\": \"many\"}".to_vec(),
            400,
            "invalid_body",
            "invalid type",
        ),
        (
            "PATCH",
            "/api/v1/tasks/Kept",
            json,
            vec![b' '; 300 * 1024],
            413,
            "payload_too_large",
            "larger than",
        ),
        (
            "PATCH",
            "/api/v1/tasks/Kept",
            Some("text/plain"),
            b"{}".to_vec(),
            415,
            "unsupported_media_type",
            "application/json",
        ),
        (
            "GET",
            "/api/v1/tasks?colour=red",
            None,
            Vec::new(),
            400,
            "invalid_query",
            "colour",
        ),
        (
            "GET",
            "/api/v1/tasks?limit=lots",
            None,
            Vec::new(),
            400,
            "invalid_query",
            "invalid digit",
        ),
        (
            "POST",
            "/api/v1/tasks/Kept/stop",
            json,
            b"{\"now\": true}".to_vec(),
            400,
            "invalid_body",
            "takes no body",
        ),
        (
            "GET",
            "/api/v1/no-such-thing",
            None,
            Vec::new(),
            404,
            "no_such_operation",
            "no operation",
        ),
        (
            "GET",
            "/api/v1/tasks/Nope",
            None,
            Vec::new(),
            404,
            "not_found",
            "Nope",
        ),
        (
            "PUT",
            "/api/v1/tasks",
            None,
            Vec::new(),
            405,
            "method_not_allowed",
            "PUT /api/v1/tasks",
        ),
    ];
    for (method, path, content_type, body, status, code, words) in cases {
        let answer: Answer = rest.raw(method, path, content_type, &body).await;
        assert_eq!(answer.status, status, "{method} {path}: {answer:?}");
        let error = answer.json();
        assert_eq!(error["error"]["code"], code, "{method} {path}: {error}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{method} {path}: {message}");
    }
    assert_eq!(tasks().await, before, "nothing changed");

    // A task needs only its name, type and scope: the other settings have their defaults.
    let minimal = serde_json::json!({
        "name": "Minimal",
        "task_type": { "Device": "Inventory" },
        "scope": { "Group": { "path": "Managed devices", "include_subgroups": true, "include_secondaries": false } },
    });
    let created = rest.call("POST", "/api/v1/tasks", Some(&minimal)).await;
    assert!(created.status < 300, "{created:?}");
    let task = created.json();
    assert_eq!(task["schedule"], "Manually", "{task}");
    assert_eq!(task["store_history_days"], 30, "{task}");
    assert_eq!(task["notify"], "ErrorsOnly", "{task}");
    primary.shutdown().await.unwrap();
    branch.shutdown().await.unwrap();
}
