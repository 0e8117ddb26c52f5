//! The OpenAPI document of `/api/v1`, generated from the handlers'
//! `#[utoipa::path]` annotations and the types' `ToSchema` derives. The route
//! table in `lib.rs` registers every API route through utoipa-axum's
//! `routes!`, which both routes and documents it, so the two cannot drift.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::ParameterIn;
use utoipa::openapi::schema::{SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder, Schema};
use utoipa::Number;

/// The static part of the document: title, description, tags. Paths and
/// schemas are added by the router (see [`crate::openapi`]).
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "tunerpool admin API",
        description = "Manage providers, accounts and live sessions of a tunerpool gateway. Every route needs \
                       `Authorization: Bearer <admin token>`. Passwords are write-only: accepted, never returned.",
    ),
    tags(
        (name = "providers", description = "IPTV providers and their catalog syncs"),
        (name = "accounts", description = "Logins of a provider that pool their connections"),
        (name = "pool", description = "Who uses how many connections of which account"),
        (name = "sessions", description = "Live sessions: one upstream connection shared by its viewers"),
        (name = "lineup", description = "The user's channels (each with sources at any provider), groups, and their curation"),
        (name = "history", description = "Accounts, the pool and channel views over time; alerts"),
        (name = "quality", description = "Probes: measuring the sources nobody watches, with spare slots"),
        (name = "meta", description = "This document and live updates"),
    )
)]
pub(crate) struct ApiDoc;

/// Name of the bearer scheme in the document.
const SCHEME: &str = "admin_token";

/// Adds what applies to every operation, so no handler can forget it: the
/// bearer security scheme; the 401 answer (the auth layer guards every
/// route of the document); the 400 answer of every operation that takes
/// a body or query parameters (the JSON and parameter extractors refuse
/// malformed input with a 400 naming the field; a path id that is not a
/// number is a 404); the 500 answer (an internal error, with the
/// reference its log line carries); and the range of numeric path ids
/// (1 ..= i64::MAX, as the server parses them).
pub(crate) fn finish(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        SCHEME,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("The admin token: admin.token, or admin-token in the data dir"))
                .build(),
        ),
    );
    doc.security = Some(vec![SecurityRequirement::new(SCHEME, Vec::<String>::new())]);
    let unauthorized = ResponseBuilder::new()
        .description("no or wrong admin token")
        .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("Error"))).build())
        .build();
    let error = |text: &str| {
        ResponseBuilder::new()
            .description(text)
            .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("Error"))).build())
            .build()
    };
    let bad_input = error("bad input: every problem named with its field");
    let internal = error("an internal error; the message carries a reference to the server's log line");
    for item in doc.paths.paths.values_mut() {
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for op in ops.into_iter().flatten() {
            let responses = &mut op.responses.responses;
            responses.entry("401".into()).or_insert_with(|| unauthorized.clone().into());
            responses.entry("500".into()).or_insert_with(|| internal.clone().into());
            // A path id that does not parse names no resource: 404, not 400.
            let queried = op.parameters.iter().flatten().any(|p| p.parameter_in != ParameterIn::Path);
            if queried || op.request_body.is_some() {
                responses.entry("400".into()).or_insert_with(|| bad_input.clone().into());
            }
            for param in op.parameters.iter_mut().flatten().filter(|p| p.parameter_in == ParameterIn::Path) {
                if let Some(RefOr::T(Schema::Object(o))) = &mut param.schema {
                    if o.schema_type == SchemaType::Type(Type::Integer) {
                        o.minimum = Some(Number::Int(1));
                        o.maximum = Some(Number::Int(isize::try_from(i64::MAX).unwrap_or(isize::MAX)));
                    }
                }
            }
        }
    }
}

/// The document as JSON, built once.
fn json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = serde_json::to_value(crate::openapi()).unwrap_or_default();
        tighten(&mut doc);
        serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    })
}

/// Bodies that create with a patch type: the fields creating needs (the
/// handlers' `validate(creating = true)`) become required and non-null in a
/// schema of their own.
const CREATES: &[(&str, &str, &str, &[&str])] = &[
    ("/api/v1/groups", "GroupPatch", "NewGroup", &["name"]),
    ("/api/v1/users", "UserPatch", "NewUser", &["username", "password"]),
];

/// What utoipa's derives cannot say, said in JSON Schema (OpenAPI 3.1), so
/// that the document refuses what the server refuses: creating bodies with
/// their required fields; a new Xtream provider needs a username and a
/// password; an unsaved account test needs a `server_url` or a
/// `provider_id`; a bulk change changes `hidden` or `group_id`; an
/// account's `is_primary` can only be set.
fn tighten(doc: &mut serde_json::Value) {
    use serde_json::{json, Value};
    let schemas = &mut doc["components"]["schemas"];
    for (_, from, to, fields) in CREATES {
        let mut schema = schemas[*from].clone();
        for field in *fields {
            let prop = &mut schema["properties"][*field];
            if let Some(types) = prop["type"].as_array() {
                let kept: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
                prop["type"] = if kept.len() == 1 { kept[0].clone() } else { Value::Array(kept) };
            }
        }
        schema["required"] = json!(fields);
        schemas[*to] = schema;
    }
    let credential = json!({"type": "string", "pattern": "\\S"});
    schemas["NewProvider"]["if"] = json!({"properties": {"kind": {"const": "xtream"}}, "required": ["kind"]});
    schemas["NewProvider"]["then"] = json!({
        "required": ["username", "password"],
        "properties": {"username": credential, "password": {"type": "string", "minLength": 1}}
    });
    schemas["TestInput"]["anyOf"] = json!([
        {"required": ["server_url"], "properties": {"server_url": {"type": "string", "pattern": "\\S"}}},
        {"required": ["provider_id"], "properties": {"provider_id": {"type": "integer"}}}
    ]);
    // Only `true` means something ("make this one primary").
    schemas["AccountPatch"]["properties"]["is_primary"] = json!({"type": ["boolean", "null"], "enum": [true, null]});
    schemas["BulkChange"]["anyOf"] = json!([
        {"required": ["hidden"], "properties": {"hidden": {"type": "boolean"}}},
        {"required": ["group_id"]}
    ]);
    for (path, _, to, _) in CREATES {
        let body = &mut doc["paths"][*path]["post"]["requestBody"]["content"]["application/json"]["schema"];
        *body = json!({"$ref": format!("#/components/schemas/{to}")});
    }
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "the OpenAPI 3.1 document of /api/v1", content_type = "application/json")))]
pub(crate) async fn document() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], json()).into_response()
}
