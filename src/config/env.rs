//! `${VAR}` and `${VAR:default}` injection into every string value of a parsed TOML document
//! (seed 004, "环境变量处理"). Runs before the document is deserialised, so any key may use it.

use toml::Value;

/// Expand every string in `value` in place. Returns `(key path, reason)` for each failure.
pub fn expand(value: &mut Value, lookup: &dyn Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    walk(value, &mut String::new(), lookup, &mut errors);
    errors
}

fn walk(
    value: &mut Value,
    path: &mut String,
    lookup: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<(String, String)>,
) {
    match value {
        Value::String(s) if s.contains("${") => match expand_str(s, lookup) {
            Ok(expanded) => *s = expanded,
            Err(reason) => errors.push((path.clone(), reason)),
        },
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk(item, path, lookup, errors);
                path.truncate(len);
            }
        }
        Value::Table(table) => {
            for (key, item) in table.iter_mut() {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                walk(item, path, lookup, errors);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// Expand `${NAME}` / `${NAME:default}` occurrences in one string.
pub fn expand_str(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("unterminated `${{` in {input:?}"));
        };
        let expr = &after[..end];
        let (name, default) = match expr.split_once(':') {
            Some((name, default)) => (name, Some(default)),
            None => (expr, None),
        };
        let valid =
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(format!(
                "`${{{expr}}}` is not a valid environment variable reference"
            ));
        }
        match (lookup(name), default) {
            (Some(value), _) => out.push_str(&value),
            (None, Some(default)) => out.push_str(default),
            (None, None) => {
                return Err(format!(
                    "environment variable {name} is not set (write ${{{name}:default}} to give a default)"
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "KEY").then(|| "sk-123".to_owned())
    }

    #[test]
    fn expands_set_default_and_literal_text() {
        assert_eq!(expand_str("Bearer ${KEY}", &env).unwrap(), "Bearer sk-123");
        assert_eq!(
            expand_str("${URL:https://api.openai.com}/v1", &env).unwrap(),
            "https://api.openai.com/v1"
        );
        assert_eq!(expand_str("${KEY:unused}", &env).unwrap(), "sk-123");
        assert_eq!(expand_str("plain", &env).unwrap(), "plain");
    }

    #[test]
    fn reports_missing_and_malformed_references() {
        assert!(
            expand_str("${NOPE}", &env)
                .unwrap_err()
                .contains("NOPE is not set")
        );
        assert!(
            expand_str("${KEY", &env)
                .unwrap_err()
                .contains("unterminated")
        );
        assert!(
            expand_str("${a-b}", &env)
                .unwrap_err()
                .contains("not a valid")
        );
    }

    #[test]
    fn walks_nested_tables_and_arrays_with_key_paths() {
        let mut doc: Value = toml::from_str(
            r#"
            [provider]
            api_key = "${KEY}"
            list = ["${MISSING}"]
            "#,
        )
        .unwrap();
        let errors = expand(&mut doc, &env);
        assert_eq!(doc["provider"]["api_key"].as_str(), Some("sk-123"));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, "provider.list[0]");
    }
}
