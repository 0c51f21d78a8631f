//! The line a key is on: `pool.health_check.interval` → the `interval = …` line under
//! `[pool.health_check]`; `models.m.instances[1].weight` → under the second
//! `[[models.m.instances]]`. When the key itself is not written (a missing one), the line of
//! the nearest enclosing table or key that is.

/// One segment of a key path: a name and, for `[[array]]` tables, which one.
#[derive(Debug, Clone, PartialEq)]
struct Seg {
    name: String,
    index: Option<usize>,
}

fn segments(key: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    let mut rest = key.trim();
    while !rest.is_empty() {
        let (name, tail) = if let Some(r) = rest.strip_prefix('"') {
            let end = r.find('"').unwrap_or(r.len());
            (r[..end].to_owned(), r.get(end + 1..).unwrap_or(""))
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            (rest[..end].trim().to_owned(), &rest[end..])
        };
        let mut tail = tail;
        let mut index = None;
        if let Some(r) = tail.strip_prefix('[') {
            let end = r.find(']').unwrap_or(r.len());
            index = r[..end].parse().ok();
            tail = r.get(end + 1..).unwrap_or("");
        }
        out.push(Seg { name, index });
        rest = tail.strip_prefix('.').unwrap_or(tail).trim();
    }
    out
}

/// 1-based line of `key` in `text`, or of its nearest written ancestor.
pub fn line_of(text: &str, key: &str) -> Option<usize> {
    let want = segments(key);
    if want.is_empty() {
        return None;
    }
    let matches = |path: &[Seg]| {
        path.iter()
            .zip(&want)
            .take_while(|(p, w)| {
                p.name == w.name && (w.index.is_none() || p.index.is_none() || p.index == w.index)
            })
            .count()
    };
    let mut header: Vec<Seg> = Vec::new();
    let mut counts: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut best: Option<(usize, usize)> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        let path = if let Some(h) = line.strip_prefix("[[").and_then(|h| h.strip_suffix("]]")) {
            let mut segs = segments(h);
            let name = h.trim().to_owned();
            let i = counts.entry(name).or_insert(0);
            if let Some(last) = segs.last_mut() {
                last.index = Some(*i);
            }
            *i += 1;
            header = segs.clone();
            segs
        } else if let Some(h) = line.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            header = segments(h);
            header.clone()
        } else if let Some((k, v)) = line.split_once('=') {
            let mut p = header.clone();
            p.extend(segments(k));
            // An inline table on this line holds the key if it names the next segment.
            let m = matches(&p);
            if m == p.len() && m < want.len() && v.contains(&format!("{} ", want[m].name)) {
                return Some(n + 1);
            }
            p
        } else {
            continue;
        };
        let m = matches(&path);
        if m == want.len() && path.len() == want.len() {
            return Some(n + 1);
        }
        if m == path.len() && m > 0 && best.is_none_or(|(bm, _)| m > bm) {
            best = Some((m, n + 1));
        }
    }
    best.map(|(_, line)| line)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[pool]\ntask_groups = [\"g\"]\n\n[pool.health_check]\n# comment\ninterval = 0\n\n[models.m]\n[[models.m.instances]]\nid = \"a\"\n[[models.m.instances]]\nid = \"b\"\nweight = 0\n[wrappers]\nfast = { type = \"pool\", pool_name = \"p\" }\n";

    #[test]
    fn finds_keys_under_their_tables_arrays_and_inline_tables() {
        assert_eq!(line_of(TEXT, "pool.health_check.interval"), Some(6));
        assert_eq!(line_of(TEXT, "pool.task_groups[0]"), Some(2));
        assert_eq!(line_of(TEXT, "models.m.instances[1].weight"), Some(13));
        assert_eq!(line_of(TEXT, "models.m.instances[0].id"), Some(10));
        assert_eq!(line_of(TEXT, "wrappers.fast.pool_name"), Some(15));
        // Not written: the nearest enclosing table.
        assert_eq!(line_of(TEXT, "pool.health_check.timeout"), Some(4));
        assert_eq!(line_of(TEXT, "nothing.here"), None);
    }
}
