//! How long a rate-limited instance should rest, from its 429 reply's headers:
//! `retry-after-ms` (OpenAI, Azure), `Retry-After` in seconds, or OpenAI's
//! `x-ratelimit-reset-requests` / `x-ratelimit-reset-tokens` (`"1s"`, `"6m0s"`, `"20ms"`),
//! taking the reset of the limit whose `x-ratelimit-remaining-*` is 0.

use std::time::Duration;

use http::HeaderMap;

/// Rest after a 429 that says nothing about when to come back.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(1);
/// Longest rest a header can ask for: a bogus value must not take an instance out for a day.
pub const MAX_COOLDOWN: Duration = Duration::from_secs(15 * 60);

/// The rest a 429 reply with `headers` asks for (at least 1 ms, at most [`MAX_COOLDOWN`]).
pub fn from_headers(headers: &HeaderMap) -> Duration {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let asked = text("retry-after-ms")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
        .map(|ms| Duration::from_secs_f64(ms / 1e3))
        .or_else(|| {
            text("retry-after")
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Duration::from_secs_f64)
        })
        .or_else(|| {
            let reset =
                |kind: &str| text(&format!("x-ratelimit-reset-{kind}")).and_then(go_duration);
            let exhausted = |kind: &str| {
                text(&format!("x-ratelimit-remaining-{kind}")).map(str::trim) == Some("0")
            };
            let (requests, tokens) = (reset("requests"), reset("tokens"));
            match (exhausted("requests"), exhausted("tokens")) {
                (true, false) => requests,
                (false, true) => tokens,
                _ => requests.max(tokens),
            }
        });
    asked
        .unwrap_or(DEFAULT_COOLDOWN)
        .clamp(Duration::from_millis(1), MAX_COOLDOWN)
}

/// A successful reply's headroom headers (OpenAI's and Azure's `x-ratelimit-remaining-*`,
/// Anthropic's `anthropic-ratelimit-*-remaining`) say the instance is about to refuse: at most
/// `in_flight` left (the requests already on their way will use them). Then: rest until the
/// reset, so it is treated as full before it starts answering 429.
pub fn exhausted(headers: &HeaderMap, in_flight: u64) -> Option<Duration> {
    // One pass comparing names (a reply without these headers costs no hashing).
    let low = headers.iter().any(|(name, value)| {
        let watched = matches!(
            name.as_str(),
            "x-ratelimit-remaining-requests"
                | "x-ratelimit-remaining-tokens"
                | "anthropic-ratelimit-requests-remaining"
                | "anthropic-ratelimit-tokens-remaining"
        );
        watched
            && (value.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .is_some_and(|left| left <= in_flight)
    });
    low.then(|| from_headers(headers))
}

/// A Go-style duration as OpenAI writes it: `"1h2m3.5s"`, `"6m0s"`, `"20ms"`, `"0.5s"`.
fn go_duration(s: &str) -> Option<Duration> {
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit..];
    }
    (total.is_finite() && total >= 0.0).then(|| Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn reads_every_header_providers_send_in_priority_order() {
        let ms = Duration::from_millis;
        assert_eq!(from_headers(&headers(&[("retry-after", "7")])), ms(7000));
        assert_eq!(
            from_headers(&headers(&[("retry-after-ms", "250"), ("retry-after", "7")])),
            ms(250)
        );
        let openai = [
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "1m30s"),
            ("x-ratelimit-remaining-tokens", "1200"),
            ("x-ratelimit-reset-tokens", "20ms"),
        ];
        assert_eq!(from_headers(&headers(&openai)), ms(90_000));
        let both = [
            ("x-ratelimit-reset-requests", "2s"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ];
        assert_eq!(from_headers(&headers(&both)), ms(360_000));
    }

    #[test]
    fn a_reply_with_no_headroom_left_says_rest_until_the_reset() {
        let low = [
            ("x-ratelimit-remaining-requests", "1"),
            ("x-ratelimit-reset-requests", "2s"),
            ("x-ratelimit-remaining-tokens", "5000"),
            ("x-ratelimit-reset-tokens", "20ms"),
        ];
        // One left and one already in flight: full.
        assert_eq!(exhausted(&headers(&low), 1), Some(Duration::from_secs(2)));
        // One left, nothing in flight: still room.
        assert_eq!(exhausted(&headers(&low), 0), None);
        assert_eq!(exhausted(&HeaderMap::new(), 5), None);
        let anthropic = [("anthropic-ratelimit-requests-remaining", "0")];
        assert_eq!(exhausted(&headers(&anthropic), 0), Some(DEFAULT_COOLDOWN));
    }

    #[test]
    fn missing_or_bogus_values_fall_back_and_huge_ones_are_capped() {
        assert_eq!(from_headers(&HeaderMap::new()), DEFAULT_COOLDOWN);
        assert_eq!(
            from_headers(&headers(&[("retry-after", "soon")])),
            DEFAULT_COOLDOWN
        );
        assert_eq!(
            from_headers(&headers(&[("retry-after", "-3")])),
            DEFAULT_COOLDOWN
        );
        assert_eq!(
            from_headers(&headers(&[("retry-after", "99999999")])),
            MAX_COOLDOWN
        );
        assert_eq!(
            go_duration("1h2m3.5s"),
            Some(Duration::from_secs_f64(3723.5))
        );
        assert_eq!(go_duration("12x"), None);
    }
}
