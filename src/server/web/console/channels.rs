//! Notification channels of this server: the list with where each is in the event log; an
//! email or webhook channel added, one removed, and "Send test message" with whether the
//! receiver accepted it. A webhook's secret goes to the server once, in the form that adds
//! the channel, and no page shows it again.

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::html;

use super::tasks::unexpected;
use super::{Refusal, Session, csrf_field, field, layout, problem, time};
use crate::model::notify::{ChannelFilter, ChannelTarget};
use crate::model::{EventKind, Severity};
use crate::server::web::Web;
use crate::wire::msg::{
    AdminRequest, AdminResponse, NotifyChannelSpec, NotifyChannelView, NotifyRequest, PAGE_MAX,
    Secret,
};

pub(super) fn router() -> Router<Web> {
    Router::new()
        .route("/notifications", get(list))
        .route("/notifications/add", post(add))
        .route("/notifications/remove", post(remove))
        .route("/notifications/test", post(test))
}

/// Every channel (page by page, as the CLI reads them).
async fn all_channels(session: &Session) -> Result<Vec<NotifyChannelView>, Refusal> {
    let request = |after| {
        AdminRequest::Notify(NotifyRequest::List {
            after,
            limit: PAGE_MAX,
        })
    };
    session
        .all(request, |answer| match answer {
            AdminResponse::NotifyChannels { channels, next } => Some((channels, next)),
            _ => None,
        })
        .await
}

/// What the Add form held when it was refused: every field but the secret.
#[derive(Default)]
struct Draft {
    name: String,
    kind: String,
    to: String,
    url: String,
    ca_pem: String,
    kinds: String,
    min_severity: String,
}

/// What the page says above the list: a problem, or the answer of a test.
enum Said {
    Problem(StatusCode, String),
    Notice(String),
}

async fn list(session: Session) -> Result<Response, Refusal> {
    page(&session, None, &Draft::default()).await
}

async fn page(session: &Session, said: Option<Said>, draft: &Draft) -> Result<Response, Refusal> {
    let channels = all_channels(session).await?;
    let kind = if draft.kind == "email" {
        "email"
    } else {
        "webhook"
    };
    let body = html! {
        @match &said {
            Some(Said::Problem(_, message)) => p.error role="alert" { (message) },
            Some(Said::Notice(message)) => p.notice role="status" { (message) },
            None => {}
        }
        @if channels.is_empty() {
            p { "No notification channels." }
        } @else {
            table.channels {
                thead { tr { th { "Channel" } th { "Kind" } th { "Target" } th { "Events" } th { "Source" } th { "Behind" } th { "Pending" } th { "Last delivery" } th { "Last error" } th { "" } } }
                tbody {
                    @for c in &channels {
                        tr data-channel=(c.name) {
                            td { (c.name) }
                            td { (c.target.kind_name()) }
                            td.target { (c.target.describe()) }
                            td { (c.filter.describe()) }
                            td { (c.source) }
                            td { (c.behind) }
                            td { (c.pending) }
                            td { (time(c.last_delivery)) }
                            td { (c.last_error.as_deref().unwrap_or("-")) }
                            td {
                                form.inline method="post" action="/notifications/test" {
                                    (csrf_field(session))
                                    input type="hidden" name="name" value=(c.name);
                                    button type="submit" name="go" value="test" { "Send test message" }
                                }
                                // The config's channels are changed in the config.
                                @if c.source == "admin" {
                                    " "
                                    form.inline method="post" action="/notifications/remove" {
                                        (csrf_field(session))
                                        input type="hidden" name="name" value=(c.name);
                                        button type="submit" name="go" value="remove" { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "New channel" }
        form.block.add method="post" action="/notifications/add" {
            (csrf_field(session))
            p { label { "Name " input name="name" value=(draft.name) autocomplete="off"; } }
            p {
                label { "Kind "
                    select name="kind" {
                        option value="webhook" selected[kind == "webhook"] { "webhook" }
                        option value="email" selected[kind == "email"] { "email" }
                    }
                }
            }
            p { label { "Email recipients (comma-separated; email) " input name="to" size="50" value=(draft.to); } }
            p { label { "URL (https://; webhook) " input name="url" size="50" value=(draft.url); } }
            p { label { "Shared secret (webhook) " input name="secret" type="password" autocomplete="new-password"; } }
            p { label { "CA certificate, PEM (webhook; empty: the system's) " br;
                textarea name="ca_pem" rows="6" cols="70" { (draft.ca_pem) } } }
            p { label { "Event kinds (comma-separated; empty: device-result, run-finished) "
                input name="kinds" size="40" value=(draft.kinds); } }
            p {
                label { "Lowest severity "
                    select name="min_severity" {
                        @for s in [Severity::Info, Severity::Warning, Severity::Error] {
                            option value=(s.as_str()) selected[s.as_str() == draft.min_severity] { (s.as_str()) }
                        }
                    }
                }
            }
            p { button type="submit" { "Add" } }
        }
        details {
            summary { "Event kinds" }
            p { @for k in EventKind::ALL { code { (k.as_str()) } " " } }
        }
    };
    let status = match &said {
        Some(Said::Problem(status, _)) => *status,
        _ => StatusCode::OK,
    };
    Ok((status, layout("Notifications", Some(session), body)).into_response())
}

/// Words separated by commas, spaces or lines.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// The channel the Add form asks for, as `canopy notify add-email` and `add-webhook` make
/// it; the server checks the rest.
fn spec_of(draft: &Draft, secret: String) -> Result<NotifyChannelSpec, String> {
    let severity = Some(draft.min_severity.as_str()).filter(|s| !s.is_empty());
    let filter = ChannelFilter::parse(&words(&draft.kinds), severity)?;
    let (target, secret, ca_pem) = match draft.kind.as_str() {
        "email" => (
            ChannelTarget::Email {
                to: words(&draft.to),
            },
            None,
            None,
        ),
        "webhook" => {
            // A browser sends a text area's lines ended by CRLF; PEM's are LF.
            let ca_pem = draft.ca_pem.replace("\r\n", "\n");
            let ca_pem = Some(ca_pem).filter(|pem| !pem.trim().is_empty());
            let target = ChannelTarget::Webhook {
                url: draft.url.trim().to_string(),
            };
            (target, Some(Secret(secret)), ca_pem)
        }
        other => return Err(format!("no channel kind {other:?}: email or webhook")),
    };
    Ok(NotifyChannelSpec {
        name: draft.name.clone(),
        target,
        filter,
        secret,
        ca_pem,
    })
}

async fn add(session: Session, body: Bytes) -> Result<Response, Refusal> {
    let fields = session.form(&body)?;
    let text = |name: &str| field(&fields, name).unwrap_or_default();
    let draft = Draft {
        name: text("name").trim().to_string(),
        kind: text("kind"),
        to: text("to"),
        url: text("url"),
        ca_pem: text("ca_pem"),
        kinds: text("kinds"),
        min_severity: text("min_severity"),
    };
    let spec = match spec_of(&draft, text("secret")) {
        Ok(spec) => spec,
        Err(e) => {
            let said = Said::Problem(StatusCode::BAD_REQUEST, e);
            return page(&session, Some(said), &draft).await;
        }
    };
    let request = AdminRequest::Notify(NotifyRequest::Add(Box::new(spec)));
    match session.call(Vec::new(), request).await {
        Ok(_) => Ok(Redirect::to("/notifications").into_response()),
        Err(refusal) => {
            let (status, message) = problem(refusal)?;
            page(&session, Some(Said::Problem(status, message)), &draft).await
        }
    }
}

async fn remove(session: Session, body: Bytes) -> Result<Response, Refusal> {
    let fields = session.form(&body)?;
    let name = field(&fields, "name").unwrap_or_default();
    let request = AdminRequest::Notify(NotifyRequest::Remove { name });
    match session.call(Vec::new(), request).await {
        Ok(_) => Ok(Redirect::to("/notifications").into_response()),
        Err(refusal) => {
            let (status, message) = problem(refusal)?;
            let said = Said::Problem(status, message);
            page(&session, Some(said), &Draft::default()).await
        }
    }
}

/// Sends a test message now and shows whether the receiver accepted it.
async fn test(session: Session, body: Bytes) -> Result<Response, Refusal> {
    let fields = session.form(&body)?;
    let name = field(&fields, "name").unwrap_or_default();
    let request = AdminRequest::Notify(NotifyRequest::Test { name });
    let said = match session.call(Vec::new(), request).await {
        Ok(AdminResponse::Done { message }) => Said::Notice(message),
        Ok(_) => return Err(unexpected()),
        Err(refusal) => {
            let (status, message) = problem(refusal)?;
            Said::Problem(status, message)
        }
    };
    page(&session, Some(said), &Draft::default()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_add_form_makes_the_clis_channels() {
        let mut draft = Draft {
            name: "ops".into(),
            kind: "email".into(),
            to: "a@b.c, d@e.f\r\ng@h.i".into(),
            min_severity: "warning".into(),
            ..Draft::default()
        };
        let spec = spec_of(&draft, String::new()).unwrap();
        assert_eq!(
            spec.target,
            ChannelTarget::Email {
                to: vec!["a@b.c".into(), "d@e.f".into(), "g@h.i".into()]
            }
        );
        assert_eq!(
            spec.filter.describe(),
            "device-result,run-finished >= warning"
        );
        assert!(spec.secret.is_none());
        draft.kind = "webhook".into();
        draft.url = " https://127.0.0.1:8443/h ".into();
        draft.kinds = "login-failed".into();
        draft.ca_pem = "-----BEGIN X-----\r\nAA\r\n".into();
        let spec = spec_of(&draft, "s3cret".into()).unwrap();
        assert_eq!(
            spec.target,
            ChannelTarget::Webhook {
                url: "https://127.0.0.1:8443/h".into()
            }
        );
        assert_eq!(spec.ca_pem.as_deref(), Some("-----BEGIN X-----\nAA\n"));
        assert_eq!(spec.secret, Some(Secret("s3cret".into())));
        draft.kinds = "nope".into();
        assert!(spec_of(&draft, String::new()).is_err());
        draft.kinds = String::new();
        draft.kind = "pigeon".into();
        assert!(spec_of(&draft, String::new()).is_err());
    }
}
