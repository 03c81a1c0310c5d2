//! The OpenAPI 3.1 document of the API. The paths come from the router itself (each route is
//! registered with its `#[utoipa::path]` handler in [`crate::api_routes`]); [`ApiDoc`] adds the
//! title, the error schema and the security schemes; [`complete`] adds to every operation what
//! the layers in front of the handlers answer — 401/403 from the auth guard and the security
//! requirement, by the same [`required_role`] table the guard uses; 429 from the rate limits;
//! 400/413/415 for bodies and parameters — so the document cannot forget a refusal a route
//! really gives.

use axum::http::Method;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    ContentBuilder, Object, ObjectBuilder, OpenApi, Ref, RefOr, ResponseBuilder, Type,
};
use utoipa::{Modify, OpenApi as _};

use crate::auth::{accepts_query_key, required_role};
use crate::error::ErrorBody;
use tradeloom_store::Role;

/// The security scheme of `Authorization: Bearer <key>`.
pub(crate) const BEARER: &str = "api_key";
/// The security scheme of `?api_key=<key>` (`GET /ws` only).
pub(crate) const QUERY_KEY: &str = "api_key_query";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "tradeloom API",
        description = "Backtest runs, simulation jobs of LLM trading agents with their results and \
            leaderboard, durable workflows with approvals, API keys and the kill switch. Every \
            error is JSON `{error, message, details}` (`ErrorBody`). With `--auth required` every \
            route but `/health`, `/metrics`, `/openapi.json` and `/docs` needs \
            `Authorization: Bearer <key>` of a key with the role the route names."
    ),
    components(schemas(ErrorBody)),
    modifiers(&SecuritySchemes)
)]
pub(crate) struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key (`tradeloom keys create --name NAME --role \
                         viewer|operator|admin`, or `POST /keys`) sent as \
                         `Authorization: Bearer <key>`. Reads need `viewer`, writes `operator`, \
                         deleting a workflow and `/keys` need `admin`. Not needed when the \
                         server runs with `--auth off` (the default on a loopback address).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            QUERY_KEY,
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "api_key",
                "The same API key as a query parameter: only `GET /ws`, because browsers \
                 cannot set headers on a WebSocket upgrade.",
            ))),
        );
    }
}

/// The base document, before the routes add their paths.
pub(crate) fn base() -> OpenApi {
    ApiDoc::openapi()
}

/// A string that is one of `values` (for fields the handler parses itself, to say what it takes).
fn one_of(values: &[&str]) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
        .build()
}

/// `viewer`, `operator` or `admin`.
pub(crate) fn role_schema() -> Object {
    one_of(&["viewer", "operator", "admin"])
}

/// `approve` or `reject`.
pub(crate) fn decision_schema() -> Object {
    one_of(&["approve", "reject"])
}

/// Adds to every operation of `doc` its security requirement and the refusals of the layers in
/// front of its handler (see the module doc). A status the handler documents itself is kept.
pub(crate) fn complete(mut doc: OpenApi) -> OpenApi {
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, operation) in operations_mut(item) {
            complete_operation(&method, path, operation);
        }
    }
    doc
}

fn operations_mut(item: &mut PathItem) -> Vec<(Method, &mut Operation)> {
    [
        (Method::GET, item.get.as_mut()),
        (Method::PUT, item.put.as_mut()),
        (Method::POST, item.post.as_mut()),
        (Method::DELETE, item.delete.as_mut()),
        (Method::PATCH, item.patch.as_mut()),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.map(|op| (m, op)))
    .collect()
}

fn complete_operation(method: &Method, path: &str, operation: &mut Operation) {
    if let Some(role) = required_role(method, path) {
        let mut security = vec![SecurityRequirement::new(BEARER, Vec::<String>::new())];
        if accepts_query_key(method, path) {
            security.push(SecurityRequirement::new(QUERY_KEY, Vec::<String>::new()));
        }
        operation.security = Some(security);
        add_error(
            operation,
            "401",
            "No API key, a malformed `Authorization` header, or an unknown or revoked key \
             (`--auth required` only); `details.reason` says which",
        );
        if role != Role::Viewer {
            add_error(
                operation,
                "403",
                &format!("The API key's role is below `{role}`, the role this route needs"),
            );
        }
    }
    add_error(
        operation,
        "429",
        "Rate limited (the global limit, the caller's, or workflow runs per minute): retry after \
         `details.retry_after_s` seconds, also sent as `Retry-After`",
    );
    if let Some(response) = operation.responses.responses.get_mut("429")
        && let RefOr::T(response) = response
    {
        response.headers.insert(
            "Retry-After".into(),
            RefOr::T(
                HeaderBuilder::new()
                    .schema(Some(Object::with_type(Type::Integer)))
                    .description(Some("Seconds to wait, at least 1"))
                    .build(),
            ),
        );
    }
    let has_params = operation.parameters.iter().flatten().any(|p| match p {
        RefOr::T(p) => matches!(p.parameter_in, ParameterIn::Path | ParameterIn::Query),
        RefOr::Ref(_) => true,
    });
    if operation.request_body.is_some() {
        add_error(
            operation,
            "400",
            "Malformed JSON, a body of the wrong shape (`details` names the field), or a bad \
             path or query parameter",
        );
        add_error(
            operation,
            "413",
            "The body is larger than the server accepts",
        );
        add_error(
            operation,
            "415",
            "The body is not sent as `Content-Type: application/json`",
        );
    } else if has_params {
        add_error(
            operation,
            "400",
            "A malformed path or query parameter, or an unknown query parameter",
        );
    }
    add_error(
        operation,
        "503",
        "The store is unreachable (or, on workflow routes, this server runs no workflow runtime)",
    );
}

/// Adds `status` with the JSON error body unless the operation documents it already.
fn add_error(operation: &mut Operation, status: &str, description: &str) {
    operation
        .responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            )
        });
}
