//! What one API request asks for: its [`Dialect`] (the wire format of the reply and of its
//! errors) and its operation ([`Call`]), read off the route. Also the dialect of a URL that
//! matched no route, so that even a 404 is in the shape its client expects.

use http::HeaderMap;

use super::request::Endpoint;

/// The API a request is written in; its reply and errors are in the same one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// OpenAI's (`/v1/chat/completions`, ...): `{"error":{"message","type","code"}}`.
    OpenAi,
    /// Anthropic's Messages API: `{"type":"error","error":{"type","message"}}`.
    Anthropic,
    /// Google's Gemini API: `{"error":{"code","message","status"}}`.
    Gemini,
}

/// The header every Anthropic request carries (and the mock requires on `/v1/messages`).
pub(crate) const ANTHROPIC_VERSION: &str = "anthropic-version";

impl Dialect {
    /// The dialect of a request that matched no route (or not with its method), by path.
    pub(crate) fn of_path(path: &str) -> Self {
        if path == "/v1beta" || path.starts_with("/v1beta/") {
            Self::Gemini
        } else if path == "/v1/messages" || path.starts_with("/v1/messages/") {
            Self::Anthropic
        } else {
            Self::OpenAi
        }
    }

    /// `GET /v1/models` is shared by OpenAI and Anthropic; Anthropic's clients send
    /// `anthropic-version`.
    pub(crate) fn of_models_request(headers: &HeaderMap) -> Self {
        if headers.contains_key(ANTHROPIC_VERSION) {
            Self::Anthropic
        } else {
            Self::OpenAi
        }
    }
}

/// One API operation in one dialect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Call {
    /// `POST /v1/chat/completions`.
    Chat,
    /// `POST /v1/completions`.
    Completions,
    /// `POST /v1/embeddings`.
    Embeddings,
    /// `GET /v1/models`, in OpenAI's shape or (with `anthropic-version`) Anthropic's.
    Models(Dialect),
    /// `POST /v1/messages`.
    Messages,
    /// `POST /v1beta/models/{model}:generateContent`, or `:streamGenerateContent` (`stream`),
    /// as SSE with `?alt=sse` (`sse`), else as a streamed JSON array.
    GeminiGenerate {
        model: String,
        stream: bool,
        sse: bool,
    },
    /// `POST /v1beta/models/{model}:embedContent`, or `:batchEmbedContents` (`batch`).
    GeminiEmbed { batch: bool },
    /// `GET /v1beta/models` (`None`) or `GET /v1beta/models/{model}`.
    GeminiModels(Option<String>),
}

impl Call {
    /// The counter it bumps: a Messages or Gemini generate call is a chat, and so on.
    pub(crate) fn endpoint(&self) -> Endpoint {
        match self {
            Self::Chat | Self::Messages | Self::GeminiGenerate { .. } => Endpoint::Chat,
            Self::Completions => Endpoint::Completions,
            Self::Embeddings | Self::GeminiEmbed { .. } => Endpoint::Embeddings,
            Self::Models(_) | Self::GeminiModels(_) => Endpoint::Models,
        }
    }

    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Self::Chat | Self::Completions | Self::Embeddings => Dialect::OpenAi,
            Self::Models(dialect) => *dialect,
            Self::Messages => Dialect::Anthropic,
            Self::GeminiGenerate { .. } | Self::GeminiEmbed { .. } | Self::GeminiModels(_) => {
                Dialect::Gemini
            }
        }
    }

    /// Whether the reply would be a stream (as far as can be told before validation, for
    /// `garbage`): Gemini says so in the path, the others in the body.
    pub(crate) fn wants_stream(&self, body: &[u8]) -> bool {
        match self {
            Self::GeminiGenerate { stream, .. } => *stream,
            Self::Chat | Self::Completions | Self::Messages => super::request::wants_stream(body),
            _ => false,
        }
    }

    /// Whether a streamed reply is SSE (else a JSON array: Gemini without `alt=sse`).
    pub(crate) fn streams_sse(&self) -> bool {
        !matches!(self, Self::GeminiGenerate { sse: false, .. })
    }

    /// The POST call below `/v1beta/models/`: `rest` is `{model}:{method}` (decoded) and
    /// `query` the URL's query. `None` for a method the mock does not serve.
    pub(crate) fn gemini_post(rest: &str, query: Option<&str>) -> Option<Self> {
        let (model, method) = rest.rsplit_once(':')?;
        if model.is_empty() {
            return None;
        }
        let sse = query.is_some_and(|q| q.split('&').any(|pair| pair == "alt=sse"));
        let model = model.to_owned();
        Some(match method {
            "generateContent" => Self::GeminiGenerate {
                model,
                stream: false,
                sse: false,
            },
            "streamGenerateContent" => Self::GeminiGenerate {
                model,
                stream: true,
                sse,
            },
            "embedContent" => Self::GeminiEmbed { batch: false },
            "batchEmbedContents" => Self::GeminiEmbed { batch: true },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemini_paths_split_on_the_last_colon() {
        let stream = Call::gemini_post("gemini-2.0-flash:streamGenerateContent", Some("alt=sse"));
        assert_eq!(
            stream,
            Some(Call::GeminiGenerate {
                model: "gemini-2.0-flash".into(),
                stream: true,
                sse: true,
            })
        );
        let array = Call::gemini_post("a:b:streamGenerateContent", Some("x=1&alt=json"));
        assert!(matches!(
            array,
            Some(Call::GeminiGenerate { ref model, stream: true, sse: false }) if model == "a:b"
        ));
        assert_eq!(
            Call::gemini_post("m:batchEmbedContents", None),
            Some(Call::GeminiEmbed { batch: true })
        );
        assert_eq!(Call::gemini_post("m:countTokens", None), None);
        assert_eq!(Call::gemini_post("m", None), None);
        assert_eq!(Call::gemini_post(":generateContent", None), None);
    }

    #[test]
    fn dialects_and_counters() {
        assert_eq!(Dialect::of_path("/v1beta/models/x:nope"), Dialect::Gemini);
        assert_eq!(Dialect::of_path("/v1/messages"), Dialect::Anthropic);
        assert_eq!(Dialect::of_path("/v1/messagesx"), Dialect::OpenAi);
        assert_eq!(Dialect::of_path("/v1/chat"), Dialect::OpenAi);
        assert_eq!(Call::Messages.endpoint(), Endpoint::Chat);
        assert_eq!(
            Call::GeminiEmbed { batch: true }.endpoint(),
            Endpoint::Embeddings
        );
        assert_eq!(Call::GeminiModels(None).endpoint(), Endpoint::Models);
        assert_eq!(
            Call::Models(Dialect::Anthropic).dialect(),
            Dialect::Anthropic
        );
        let mut headers = HeaderMap::new();
        assert_eq!(Dialect::of_models_request(&headers), Dialect::OpenAi);
        headers.insert(
            ANTHROPIC_VERSION,
            http::HeaderValue::from_static("2023-06-01"),
        );
        assert_eq!(Dialect::of_models_request(&headers), Dialect::Anthropic);
    }
}
