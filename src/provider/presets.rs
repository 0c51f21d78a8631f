//! Provider presets: what `[provider] type = "NAME"` means — which wire API, the default base
//! URL, and the environment variable an API key is taken from when the file sets none. Adding
//! a provider that speaks one of the four APIs is one line here.

/// Which adapter a preset uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    OpenAi,
    Azure,
    Anthropic,
    Gemini,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    pub name: &'static str,
    pub wire: Wire,
    /// Used when neither the provider, the model nor the instance sets `base_url`.
    pub base_url: Option<&'static str>,
    /// Read for `api_key` when none is set.
    pub key_env: Option<&'static str>,
}

const fn p(
    name: &'static str,
    wire: Wire,
    base_url: Option<&'static str>,
    key_env: Option<&'static str>,
) -> Preset {
    Preset {
        name,
        wire,
        base_url,
        key_env,
    }
}

/// Every `type` switchyard knows, besides `mock`.
pub const PRESETS: &[Preset] = &[
    p(
        "openai",
        Wire::OpenAi,
        Some("https://api.openai.com/v1"),
        Some("OPENAI_API_KEY"),
    ),
    p("openai_compatible", Wire::OpenAi, None, None),
    p(
        "deepseek",
        Wire::OpenAi,
        Some("https://api.deepseek.com/v1"),
        Some("DEEPSEEK_API_KEY"),
    ),
    p(
        "moonshot",
        Wire::OpenAi,
        Some("https://api.moonshot.cn/v1"),
        Some("MOONSHOT_API_KEY"),
    ),
    p(
        "qwen",
        Wire::OpenAi,
        Some("https://dashscope.aliyuncs.com/compatible-mode/v1"),
        Some("DASHSCOPE_API_KEY"),
    ),
    p(
        "ernie",
        Wire::OpenAi,
        Some("https://qianfan.baidubce.com/v2"),
        Some("QIANFAN_API_KEY"),
    ),
    p(
        "ollama",
        Wire::OpenAi,
        Some("http://127.0.0.1:11434/v1"),
        None,
    ),
    p("vllm", Wire::OpenAi, Some("http://127.0.0.1:8000/v1"), None),
    p(
        "llamacpp",
        Wire::OpenAi,
        Some("http://127.0.0.1:8080/v1"),
        None,
    ),
    p("azure", Wire::Azure, None, Some("AZURE_OPENAI_API_KEY")),
    p(
        "anthropic",
        Wire::Anthropic,
        Some("https://api.anthropic.com/v1"),
        Some("ANTHROPIC_API_KEY"),
    ),
    p(
        "claude",
        Wire::Anthropic,
        Some("https://api.anthropic.com/v1"),
        Some("ANTHROPIC_API_KEY"),
    ),
    p(
        "gemini",
        Wire::Gemini,
        Some("https://generativelanguage.googleapis.com/v1beta"),
        Some("GEMINI_API_KEY"),
    ),
];

pub fn find(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

/// The names, for "expected one of" messages.
pub fn names() -> Vec<&'static str> {
    PRESETS.iter().map(|p| p.name).chain(["mock"]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_found_by_name_and_names_are_unique() {
        for preset in PRESETS {
            assert_eq!(find(preset.name), Some(preset));
            if let Some(url) = preset.base_url {
                assert!(url.starts_with("http") && !url.ends_with('/'), "{url}");
            }
        }
        let mut names = names();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
        assert_eq!(find("deepseek").map(|p| p.wire), Some(Wire::OpenAi));
        assert_eq!(find("claude").map(|p| p.wire), Some(Wire::Anthropic));
        assert!(find("telepathy").is_none());
    }
}
