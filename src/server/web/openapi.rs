//! The OpenAPI 3.1 document of the REST API, made from the operations table (`ops`) and the
//! JSON Schemas schemars derives from the request and answer types: what is served is what
//! is documented.

use std::sync::OnceLock;

use axum::response::{IntoResponse, Response};
use schemars::generate::SchemaSettings;
use schemars::{Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

use super::ops::{Auth, OPERATIONS, Operation};
use crate::wire::SOFTWARE_VERSION;
use crate::wire::msg::AdminResponse;

pub(super) async fn serve() -> Response {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    axum::Json(DOCUMENT.get_or_init(document).clone()).into_response()
}

/// The whole document.
pub(super) fn document() -> Value {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|s| s.definitions_path = "/components/schemas".into())
        .into_generator();
    let responses = generator.subschema_for::<AdminResponse>();
    let mut paths = Map::new();
    for op in OPERATIONS {
        let operation = operation(op, &mut generator, &responses);
        let entry = paths
            .entry(op.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(methods) = entry {
            methods.insert(op.method.as_str().to_ascii_lowercase(), operation);
        }
    }
    let mut schemas: Map<String, Value> = generator.take_definitions(true).into_iter().collect();
    schemas.insert(
        "Error".into(),
        json!({
            "type": "object",
            "description": "Every error: a stable code and words for people.",
            "required": ["error"],
            "properties": { "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": { "type": "string", "examples": ["not_found", "invalid_body", "forbidden"] },
                    "message": { "type": "string" }
                }
            }}
        }),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Canopy REST API",
            "version": SOFTWARE_VERSION,
            "description": "The Administration Server's API: the requests of the `canopy` CLI over HTTPS, \
                with the same roles and rights. Log in (POST /login) for a bearer token. Lists are \
                paged: ask again with `after` set to the answer's `next` until it is null. Every \
                operation takes `at=NAME/NAME` to be served by a server below this one, as the \
                CLI's `--at`."
        },
        "servers": [{ "url": "/api/v1" }],
        "security": [{ "bearer": [] }],
        "components": {
            "schemas": schemas,
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } }
        },
        "paths": paths,
    })
}

fn operation(op: &Operation, generator: &mut SchemaGenerator, responses: &Schema) -> Value {
    let mut parameters = Vec::new();
    for name in path_parameters(op.path) {
        parameters.push(json!({
            "name": name, "in": "path", "required": true, "schema": { "type": "string" }
        }));
    }
    if op.auth == Auth::Session {
        parameters.push(json!({
            "name": "at", "in": "query", "required": false, "schema": { "type": "string" },
            "description": "The server below this one that serves the request: its path from \
                here, names joined by '/' (as `server list` shows it without its first name)."
        }));
    }
    if let Some(query) = op.query {
        let schema = query(generator);
        let object = resolve(generator, &schema);
        let required: Vec<&str> = object
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(Value::Object(properties)) = object.get("properties") {
            for (name, schema) in properties {
                let mut parameter = json!({
                    "name": name, "in": "query",
                    "required": required.contains(&name.as_str()),
                    "schema": schema,
                });
                if let Some(description) = schema.get("description") {
                    parameter["description"] = description.clone();
                }
                parameters.push(parameter);
            }
        }
    }
    let answer = variant_schema(generator, responses, op.response);
    let mut value = json!({
        "operationId": op.id,
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": parameters,
        "responses": {
            op.status.as_str(): {
                "description": op.summary,
                "content": { "application/json": { "schema": answer } }
            },
            "4XX": {
                "description": "Refused: bad input, not logged in, not allowed, not found, ...",
                "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
            },
            "5XX": {
                "description": "The server could not serve it",
                "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
            }
        }
    });
    if let Some(body) = op.body {
        let schema = body(generator);
        value["requestBody"] = json!({
            "required": true,
            "content": { "application/json": { "schema": schema } }
        });
    }
    if op.auth == Auth::Login {
        value["security"] = json!([]);
    }
    value
}

/// `{task}` and the like, in order.
pub(super) fn path_parameters(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

/// The schema itself when `schema` is a `$ref` to a definition.
fn resolve(generator: &SchemaGenerator, schema: &Schema) -> Value {
    let value = schema.as_value();
    if let Some(reference) = value.get("$ref").and_then(Value::as_str)
        && let Some(name) = reference.strip_prefix("#/components/schemas/")
        && let Some(definition) = generator.definitions().get(name)
    {
        return definition.clone();
    }
    value.clone()
}

/// The schema of one variant's content in `AdminResponse`'s (an externally tagged enum:
/// one object with one property per variant).
fn variant_schema(generator: &SchemaGenerator, responses: &Schema, variant: &str) -> Value {
    let all = resolve(generator, responses);
    let found = all
        .get("oneOf")
        .and_then(Value::as_array)
        .and_then(|variants| {
            variants
                .iter()
                .find_map(|v| v.get("properties").and_then(|p| p.get(variant)).cloned())
        });
    found.unwrap_or_else(|| json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_documented_with_its_answer() {
        let document = document();
        for op in OPERATIONS {
            let method = op.method.as_str().to_ascii_lowercase();
            let documented = &document["paths"][op.path][&method];
            assert_eq!(documented["operationId"], op.id);
            let answer = &documented["responses"][op.status.as_str()]["content"]["application/json"]
                ["schema"];
            assert!(
                answer.as_object().is_some_and(|o| !o.is_empty()),
                "{}: no schema for {}",
                op.id,
                op.response
            );
        }
        assert_eq!(path_parameters("/tasks/{task}/results"), vec!["task"]);
    }
}
