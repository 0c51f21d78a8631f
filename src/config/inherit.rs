//! `inherits_from` (seed 004, "配置继承机制"): a table with `inherits_from = "base"` takes
//! every key it does not set from the top-level table `[base]` of the same file (tables are
//! merged key by key, the inheriting side winning), across as many levels as written. Bases
//! are templates: a top-level table something inherits from is removed once merged. Cycles
//! and unknown bases are reported with the key that names them.

use toml::{Table, Value};

const KEY: &str = "inherits_from";

/// Resolve every `inherits_from` of `doc` in place; `(key, reason)` for each problem.
pub fn resolve(doc: &mut Table) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    let mut bases = Vec::new();
    let names: Vec<String> = doc.keys().cloned().collect();
    for name in names {
        let Some(Value::Table(t)) = doc.get(&name) else {
            continue;
        };
        if t.get(KEY).is_none() {
            continue;
        }
        match flatten(doc, &name, &mut vec![name.clone()], &mut bases) {
            Ok(merged) => {
                doc.insert(name, Value::Table(merged));
            }
            Err(e) => errors.push(e),
        }
    }
    for b in bases {
        // A template something inherits from: not a section of the file itself.
        doc.remove(&b);
    }
    errors
}

/// `name`'s table with its bases merged in, following the chain.
fn flatten(
    doc: &Table,
    name: &str,
    chain: &mut Vec<String>,
    bases: &mut Vec<String>,
) -> Result<Table, (String, String)> {
    let Some(Value::Table(t)) = doc.get(name) else {
        return Err((name.to_owned(), "is not a table".to_owned()));
    };
    let mut own = t.clone();
    let Some(parent) = own.remove(KEY) else {
        return Ok(own);
    };
    let key = format!("{name}.{KEY}");
    let Some(parent) = parent.as_str().map(str::to_owned) else {
        return Err((key, "must be the name of a table in this file".to_owned()));
    };
    if chain.contains(&parent) {
        chain.push(parent);
        return Err((key, format!("inheritance cycle: {}", chain.join(" → "))));
    }
    if !matches!(doc.get(&parent), Some(Value::Table(_))) {
        return Err((
            key,
            format!("no table [{parent}] in this file to inherit from"),
        ));
    }
    chain.push(parent.clone());
    let base = flatten(doc, &parent, chain, bases)?;
    if !bases.contains(&parent) {
        bases.push(parent);
    }
    Ok(merge(base, own))
}

/// `over` on top of `base`, tables merged recursively.
fn merge(mut base: Table, over: Table) -> Table {
    for (k, v) in over {
        let merged = match (base.remove(&k), v) {
            (Some(Value::Table(b)), Value::Table(o)) => Value::Table(merge(b, o)),
            (_, v) => v,
        };
        base.insert(k, merged);
    }
    base
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Table {
        toml::from_str(text).unwrap_or_default()
    }

    #[test]
    fn a_table_takes_what_it_does_not_set_from_its_bases_across_levels() {
        let mut d = doc(
            "[root]\ninterval = 10\nthreshold = 3\n[root.nested]\na = 1\nb = 2\n\
             [base_pool]\ninherits_from = \"root\"\ninterval = 30\n[base_pool.nested]\nb = 20\n\
             [pool]\ninherits_from = \"base_pool\"\nname = \"p\"\ninterval = 60\n",
        );
        assert!(resolve(&mut d).is_empty());
        let pool = d["pool"].as_table().unwrap_or_else(|| panic!("no pool"));
        assert_eq!(pool["interval"].as_integer(), Some(60));
        assert_eq!(pool["threshold"].as_integer(), Some(3));
        assert_eq!(pool["nested"]["a"].as_integer(), Some(1));
        assert_eq!(pool["nested"]["b"].as_integer(), Some(20));
        assert!(pool.get("inherits_from").is_none());
        assert!(
            d.get("base_pool").is_none() && d.get("root").is_none(),
            "templates removed"
        );
    }

    #[test]
    fn cycles_and_unknown_bases_are_reported_where_they_are_named() {
        let mut d = doc("[a]\ninherits_from = \"b\"\n[b]\ninherits_from = \"a\"\n");
        let errors = resolve(&mut d);
        assert!(
            errors
                .iter()
                .any(|(k, r)| k.ends_with("inherits_from") && r.contains("cycle")),
            "{errors:?}"
        );
        let mut d = doc("[pool]\ninherits_from = \"nowhere\"\n");
        assert_eq!(
            resolve(&mut d),
            [(
                "pool.inherits_from".to_owned(),
                "no table [nowhere] in this file to inherit from".to_owned()
            )]
        );
    }
}
