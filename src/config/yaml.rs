//! Seed 003's YAML layout (`task_groups:` and `polling_pools:` in one file) read into the same
//! model as the TOML tree: each group and pool becomes a virtual `task-groups` / `pools` file
//! (`FILE#task_groups.NAME`), so it is validated, reported and resolved exactly like the TOML
//! ones. In a YAML task group, every key that is a mapping and not a known group key is an
//! echelon; a pool's `rotation_strategy: "round_robin"` is the TOML `[pool.rotation_strategy]
//! type`.

use toml::{Table, Value};

/// Known keys of a task group; any other mapping is an echelon.
const GROUP_KEYS: &[&str] = &[
    "name",
    "description",
    "fallback_strategy",
    "circuit_breaker",
    "fallback",
    "concurrency_limit",
    "rpm_limit",
    "metrics",
    "metadata",
];

/// What one YAML file holds: `(name, TOML text of its file)` for groups and pools.
#[derive(Debug, Default)]
pub struct Converted {
    pub groups: Vec<(String, String)>,
    pub pools: Vec<(String, String)>,
}

/// Convert `text`; `Err((key, reason))` when it is not seed 003's layout.
pub fn convert(text: &str) -> Result<Converted, Vec<(String, String)>> {
    let doc: serde_yaml::Value = serde_yaml::from_str(text)
        .map_err(|e| vec![(String::new(), format!("invalid YAML: {e}"))])?;
    let mut errors = Vec::new();
    let mut out = Converted::default();
    let Some(top) = doc.as_mapping() else {
        return Err(vec![(
            String::new(),
            "expected a mapping with task_groups and polling_pools".to_owned(),
        )]);
    };
    for (k, v) in top {
        let key = k.as_str().unwrap_or_default();
        let Some(entries) = v.as_mapping() else {
            errors.push((key.to_owned(), "must be a mapping of names".to_owned()));
            continue;
        };
        for (name, body) in entries {
            let name = name.as_str().unwrap_or_default().to_owned();
            let path = format!("{key}.{name}");
            let table = match to_toml(body) {
                Some(Value::Table(t)) => t,
                _ => {
                    errors.push((path, "must be a mapping".to_owned()));
                    continue;
                }
            };
            match key {
                "task_groups" => out
                    .groups
                    .push((name, file_text("task_group", group(table)))),
                "polling_pools" => out.pools.push((name, file_text("pool", pool(table)))),
                _ => errors.push((
                    key.to_owned(),
                    "unknown section; expected task_groups or polling_pools".to_owned(),
                )),
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn group(t: Table) -> Table {
    let mut group = Table::new();
    let mut echelons = Table::new();
    for (k, v) in t {
        if !GROUP_KEYS.contains(&k.as_str()) && v.is_table() {
            echelons.insert(k, v);
        } else {
            group.insert(k, v);
        }
    }
    group.insert("echelons".to_owned(), Value::Table(echelons));
    group
}

fn pool(mut t: Table) -> Table {
    if let Some(Value::String(kind)) = t.get("rotation_strategy").cloned() {
        let mut rs = Table::new();
        rs.insert("type".to_owned(), Value::String(kind));
        t.insert("rotation_strategy".to_owned(), Value::Table(rs));
    }
    t
}

fn file_text(section: &str, body: Table) -> String {
    let mut file = Table::new();
    file.insert(section.to_owned(), Value::Table(body));
    toml::to_string(&file).unwrap_or_default()
}

/// YAML → TOML values (nulls dropped: TOML has none).
fn to_toml(v: &serde_yaml::Value) -> Option<Value> {
    use serde_yaml::Value as Y;
    Some(match v {
        Y::Null => return None,
        Y::Bool(b) => Value::Boolean(*b),
        Y::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Value::Integer(i),
            (None, Some(f)) => Value::Float(f),
            _ => return None,
        },
        Y::String(s) => Value::String(s.clone()),
        Y::Sequence(items) => Value::Array(items.iter().filter_map(to_toml).collect()),
        Y::Mapping(m) => Value::Table(
            m.iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), to_toml(v)?)))
                .collect(),
        ),
        Y::Tagged(t) => return to_toml(&t.value),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echelons_are_the_mappings_and_a_strategy_string_becomes_its_type() {
        let c = convert("task_groups:\n  g:\n    description: d\n    e1:\n      models: [a]\n    fallback_strategy: echelon_down\npolling_pools:\n  p:\n    task_groups: [g]\n    rotation_strategy: round_robin\n").unwrap_or_default();
        let g: Table = toml::from_str(&c.groups[0].1).unwrap_or_default();
        assert_eq!(
            g["task_group"]["echelons"]["e1"]["models"][0].as_str(),
            Some("a")
        );
        assert_eq!(
            g["task_group"]["fallback_strategy"].as_str(),
            Some("echelon_down")
        );
        let p: Table = toml::from_str(&c.pools[0].1).unwrap_or_default();
        assert_eq!(
            p["pool"]["rotation_strategy"]["type"].as_str(),
            Some("round_robin")
        );
        assert!(convert("- just\n- a list\n").is_err());
        assert!(convert("task_groups: 3\n").is_err());
    }
}
