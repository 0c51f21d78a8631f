//! `POST /v1/messages`: Anthropic-format clients (Claude Code, the Anthropic SDKs) routed like
//! any other request. The Messages request is translated to an OpenAI chat request
//! (`provider::anthropic::messages_to_openai`), walked by `proxy::forward` over whatever
//! instances the route has (Anthropic, OpenAI, Gemini, ...), and the OpenAI-shaped answer is
//! translated back: a `message` object, or a Messages SSE stream (`message_start`, content
//! blocks, `message_delta`, `message_stop`). Errors come back in Anthropic's shape,
//! `{"type":"error","error":{"type","message"}}`, with the gateway's status.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use crate::error::Error;
use crate::gateway::Gateway;
use crate::provider::Operation;
use crate::provider::anthropic::{
    MessagesStreamWriter, encode_sse, messages_to_openai, openai_to_messages_response,
};
use crate::provider::sse::Parser;
use crate::request::{ClientRequest, RequestOptions};
use crate::upstream::Upstream;

/// Largest OpenAI-shaped reply translated back (the proxy already capped the upstream's).
const MAX_REPLY_BYTES: usize = 64 << 20;

pub async fn messages(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let snap = gw.snapshot();
    let limit = snap.config.max_body_bytes;
    let (parts, body) = req.into_parts();
    let rid = crate::request::request_id(&parts.headers);
    let result = async {
        let mut options = RequestOptions::from_headers(&parts.headers, snap.clients.enabled())?;
        options.request_id = Arc::clone(&rid);
        let body = crate::server::read_body(&parts.headers, body, limit).await?;
        let anthropic: Value = serde_json::from_slice(&body)
            .map_err(|e| Error::BadRequest(format!("request body is not valid JSON: {e}")))?;
        let openai =
            messages_to_openai(&anthropic).map_err(|e| Error::BadRequest(e.to_string()))?;
        let model = anthropic["model"].as_str().unwrap_or_default().to_owned();
        let mut request = ClientRequest::parse(Operation::Chat, Bytes::from(openai.to_string()))?;
        request.options = options;
        request.apply_tools(&snap.config.tools)?;
        let stream = request.stream;
        let response = crate::proxy::forward(Upstream::local(), snap, request).await?;
        Ok::<_, Error>((response, stream, model))
    }
    .await;
    let mut response = match result {
        Err(e) => anthropic_error(e.status(), &e.to_string()),
        Ok((response, true, model)) if response.status() == StatusCode::OK => {
            stream_back(response, model)
        }
        Ok((response, _, _)) => reply_back(response).await,
    };
    if let Ok(v) = HeaderValue::from_str(&rid) {
        response
            .headers_mut()
            .insert(crate::server::REQUEST_ID_HEADER, v);
    }
    response
}

/// A whole OpenAI reply (or error) → a Messages reply (or Anthropic error).
async fn reply_back(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_REPLY_BYTES).await else {
        return anthropic_error(StatusCode::BAD_GATEWAY, "the reply could not be read");
    };
    let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
    if !parts.status.is_success() {
        let message = (parsed.as_ref())
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("upstream answered {}", parts.status));
        return anthropic_error(parts.status, &message);
    }
    let translated = parsed
        .ok_or_else(|| "the reply is not JSON".to_owned())
        .and_then(|v| openai_to_messages_response(&v).map_err(|e| e.to_string()));
    match translated {
        Ok(message) => {
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(message.to_string()))
        }
        Err(e) => anthropic_error(StatusCode::BAD_GATEWAY, &e),
    }
}

/// An OpenAI SSE reply → a Messages SSE stream, event by event.
fn stream_back(response: Response, model: String) -> Response {
    let (parts, body) = response.into_parts();
    struct State {
        parser: Parser,
        writer: MessagesStreamWriter,
        done: bool,
    }
    let state = State {
        parser: Parser::default(),
        writer: MessagesStreamWriter::new(&model),
        done: false,
    };
    let events = body.into_data_stream().scan(state, |st, chunk| {
        let mut out = Vec::new();
        if st.done {
            return std::future::ready(Some(Ok::<_, std::io::Error>(Bytes::new())));
        }
        let events = match chunk {
            Ok(bytes) => st.parser.push(&bytes).unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        for event in events {
            if event.data == b"[DONE]" {
                for (name, data) in st.writer.finish() {
                    out.extend(encode_sse(name, &data));
                }
                st.done = true;
                break;
            }
            let Ok(chunk) = serde_json::from_slice::<Value>(&event.data) else {
                continue;
            };
            if let Some(error) = chunk.get("error") {
                let message = error["message"].as_str().unwrap_or("upstream error");
                let data =
                    json!({"type": "error", "error": {"type": "api_error", "message": message}});
                out.extend(encode_sse("error", &data));
                st.done = true;
                break;
            }
            for (name, data) in st.writer.chunk(&chunk) {
                out.extend(encode_sse(name, &data));
            }
        }
        std::future::ready(Some(Ok(Bytes::from(out))))
    });
    let mut out = Response::new(Body::from_stream(events));
    *out.status_mut() = parts.status;
    let headers = out.headers_mut();
    headers.extend(parts.headers);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    out
}

/// `{"type":"error","error":{"type","message"}}` with `status`.
fn anthropic_error(status: StatusCode, message: &str) -> Response {
    let kind = match status.as_u16() {
        400 | 405 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    };
    let body = json!({"type": "error", "error": {"type": kind, "message": message}});
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
