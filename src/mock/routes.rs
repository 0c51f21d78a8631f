//! The URL table of a mock server: the API endpoints of each dialect (handed to the pipeline
//! as a [`Call`]) and the control endpoints under `/mock/` (stats, behaviour, last request,
//! die), which are not counted as requests and never have failure modes applied.
//!
//! - OpenAI: `POST /v1/chat/completions`, `POST /v1/completions`, `POST /v1/embeddings`,
//!   `GET /v1/models` (in Anthropic's shape when the request has `anthropic-version`);
//! - Anthropic: `POST /v1/messages`;
//! - Gemini: `GET /v1beta/models`, `GET /v1beta/models/{model}` and
//!   `POST /v1beta/models/{model}:{generateContent|streamGenerateContent|embedContent|
//!   batchEmbedContents}` (one catch-all split on the last `:`, since a route segment cannot
//!   hold a parameter and a literal).
//!
//! A URL no route serves gets a 404 (or 405) in the dialect its path belongs to.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::response::Response;
use axum::routing::{get, post};
use http::{Method, StatusCode, Uri};

use super::behavior::Behavior;
use super::call::{Call, Dialect};
use super::error::{api_error, error_response, invalid_request, json_response};
use super::lifecycle::ConnId;
use super::pipeline::serve_api;
use super::state::Shared;

type St = State<Arc<Shared>>;
type Conn = ConnectInfo<ConnId>;

/// All routes of one mock server.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .route("/v1/messages", post(messages))
        // Azure OpenAI's deployment URLs (`?api-version=` is recorded, not checked).
        .route(
            "/openai/deployments/{deployment}/chat/completions",
            post(chat),
        )
        .route(
            "/openai/deployments/{deployment}/embeddings",
            post(embeddings),
        )
        .route("/v1beta/models", get(gemini_models))
        .route("/v1beta/models/{*rest}", get(gemini_get).post(gemini_post))
        .route("/mock/stats", get(stats))
        .route("/mock/behavior", get(get_behavior).put(put_behavior))
        .route("/mock/last", get(last))
        .route("/mock/die", post(die))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(shared)
}

async fn chat(State(s): St, ConnectInfo(c): Conn, req: Request) -> Response {
    serve_api(s, c, Call::Chat, req).await
}

async fn completions(State(s): St, ConnectInfo(c): Conn, req: Request) -> Response {
    serve_api(s, c, Call::Completions, req).await
}

async fn embeddings(State(s): St, ConnectInfo(c): Conn, req: Request) -> Response {
    serve_api(s, c, Call::Embeddings, req).await
}

async fn models(State(s): St, ConnectInfo(c): Conn, req: Request) -> Response {
    let dialect = Dialect::of_models_request(req.headers());
    serve_api(s, c, Call::Models(dialect), req).await
}

async fn messages(State(s): St, ConnectInfo(c): Conn, req: Request) -> Response {
    serve_api(s, c, Call::Messages, req).await
}

async fn gemini_models(State(s): St, ConnectInfo(c): Conn, req: Request) -> Response {
    serve_api(s, c, Call::GeminiModels(None), req).await
}

/// `GET /v1beta/models/{model}`; a `{model}:{method}` is POST only.
async fn gemini_get(
    State(s): St,
    ConnectInfo(c): Conn,
    Path(rest): Path<String>,
    req: Request,
) -> Response {
    if rest.contains(':') {
        return method_not_allowed(req.method().clone(), req.uri().clone()).await;
    }
    serve_api(s, c, Call::GeminiModels(Some(rest)), req).await
}

/// `POST /v1beta/models/{model}:{method}`, for the methods [`Call::gemini_post`] knows.
async fn gemini_post(
    State(s): St,
    ConnectInfo(c): Conn,
    Path(rest): Path<String>,
    req: Request,
) -> Response {
    if !rest.contains(':') {
        return method_not_allowed(req.method().clone(), req.uri().clone()).await;
    }
    match Call::gemini_post(&rest, req.uri().query()) {
        Some(call) => serve_api(s, c, call, req).await,
        None => not_found(req.method().clone(), req.uri().clone()).await,
    }
}

/// `GET /mock/stats`: the counters.
async fn stats(State(s): St) -> Response {
    json_response(StatusCode::OK, &s.stats.snapshot())
}

/// `GET /mock/behavior`: the current behaviour.
async fn get_behavior(State(s): St) -> Response {
    json_response(StatusCode::OK, &*s.behavior())
}

/// `PUT /mock/behavior`: replace the behaviour with a full (validated) one; echoes it back.
async fn put_behavior(State(s): St, body: Bytes) -> Response {
    // Parse as an object first: serde would also accept a struct written as an array.
    let parsed = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&body)
        .and_then(|map| serde_json::from_value::<Behavior>(serde_json::Value::Object(map)));
    let behavior = match parsed {
        Ok(b) => b,
        Err(err) => return invalid_request(&format!("invalid behavior: {err}")),
    };
    if let Err(message) = behavior.validate() {
        return invalid_request(&format!("invalid behavior: {message}"));
    }
    let reply = json_response(StatusCode::OK, &behavior);
    tracing::debug!(?behavior, "mock: behavior replaced");
    s.set_behavior(behavior);
    reply
}

/// `GET /mock/last`: the last API request as received, 404 before the first.
async fn last(State(s): St) -> Response {
    match s.last() {
        Some(last) => json_response(StatusCode::OK, &*last),
        None => error_response(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "no API request received yet",
        ),
    }
}

/// `POST /mock/die`: reply 200, then stop serving.
async fn die(State(s): St) -> Response {
    tracing::debug!("mock: told to die");
    s.life.stop_graceful();
    json_response(StatusCode::OK, &serde_json::json!({ "status": "stopping" }))
}

async fn not_found(method: Method, uri: Uri) -> Response {
    api_error(
        Dialect::of_path(uri.path()),
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        &format!("Invalid URL ({method} {})", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    api_error(
        Dialect::of_path(uri.path()),
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        &format!("Method {method} not allowed on {}", uri.path()),
    )
}
