//! Loading the demo tree and refusing broken ones with `file:key: reason`.

use std::collections::HashMap;

use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

/// A small valid tree: one provider with two instances, one group, one pool, one wrapper.
fn tree() -> HashMap<&'static str, String> {
    let mut f = HashMap::new();
    f.insert(
        "_registry.toml",
        r#"
        [providers]
        up = { file = "providers/up.toml" }
        [pools]
        p = { file = "pools/p.toml" }
        [task_groups]
        g = { file = "task-groups/g.toml" }
        [wrappers]
        w = { file = "wrappers/w.toml" }
        "#
        .to_owned(),
    );
    f.insert(
        "providers/up.toml",
        r#"
        [provider]
        type = "openai"
        base_url = "http://127.0.0.1:9/v1/"
        api_key = "${KEY:sk-default}"
        [models.m]
        upstream_model = "real-m"
        [[models.m.instances]]
        id = "m-1"
        [[models.m.instances]]
        id = "m-2"
        weight = 3
        [models.solo]
        "#
        .to_owned(),
    );
    f.insert(
        "task-groups/g.toml",
        r#"
        [task_group]
        fallback_strategy = "echelon_down"
        [task_group.fallback]
        fallback_groups = ["g.e2"]
        [task_group.echelons.e2]
        models = ["up:solo"]
        priority = 2
        [task_group.echelons.e1]
        models = ["up:m"]
        priority = 1
        "#
        .to_owned(),
    );
    f.insert(
        "pools/p.toml",
        r#"
        [pool]
        task_groups = ["g"]
        [pool.rotation_strategy]
        type = "weighted"
        [pool.rotation_strategy.options]
        weights = { "g.e1" = 2 }
        "#
        .to_owned(),
    );
    f.insert(
        "wrappers/w.toml",
        r#"
        [wrappers]
        fast = { type = "pool", pool_name = "p" }
        grp = { type = "task_group", task_group_name = "g" }
        "#
        .to_owned(),
    );
    f
}

fn load(files: HashMap<&'static str, String>) -> Result<Config, ConfigError> {
    Config::load_with_env(
        &MemorySource(files.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()),
        &no_env,
    )
}

fn issues(files: HashMap<&'static str, String>) -> Vec<String> {
    load(files).unwrap_err().issues.iter().map(plain).collect()
}

/// An issue as `file:key: reason` (its line left out; `issues_carry_the_line_of_their_key`
/// checks lines).
fn plain(i: &Issue) -> String {
    Issue {
        line: None,
        ..i.clone()
    }
    .to_string()
}

#[test]
fn the_bundled_demo_is_valid() {
    let demo = Config::demo().unwrap();
    assert_eq!(demo.instances.len(), 8);
    let kinds: Vec<RouteKind> = demo.routes.iter().map(|r| r.kind).collect();
    for kind in [
        RouteKind::Wrapper,
        RouteKind::Pool,
        RouteKind::TaskGroup,
        RouteKind::Echelon,
        RouteKind::Model,
        RouteKind::Instance,
    ] {
        assert!(kinds.contains(&kind), "demo has no {kind:?} route");
    }
}

#[test]
fn resolves_every_kind_of_routing_name() {
    let c = load(tree()).unwrap();
    let route = |name: &str| c.routes.iter().find(|r| r.name == name).unwrap();
    let ids = |t: &TierSpec| -> Vec<&str> {
        t.members
            .iter()
            .map(|m| c.instances[m.instance].id.as_str())
            .collect()
    };
    // Echelons sorted by priority, not by name.
    let g = route("g");
    assert_eq!(g.kind, RouteKind::TaskGroup);
    assert_eq!(
        g.tiers.iter().map(|t| t.label.as_str()).collect::<Vec<_>>(),
        ["g.e1", "g.e2"]
    );
    assert_eq!(ids(&g.tiers[0]), ["m-1", "m-2"]);
    // Pool: all echelons flattened, weights multiplied by the pool's group.echelon weight.
    let p = route("p");
    assert_eq!(ids(&p.tiers[0]), ["m-1", "m-2", "up:solo"]);
    let weights: Vec<u32> = p.tiers[0].members.iter().map(|m| m.weight.get()).collect();
    assert_eq!(weights, [2, 6, 1]);
    assert_eq!(p.tiers[0].strategy, StrategyKind::Weighted);
    assert_eq!(route("fast").kind, RouteKind::Wrapper);
    assert_eq!(route("grp").tiers.len(), 2);
    assert_eq!(route("g.e2").kind, RouteKind::Echelon);
    assert_eq!(route("up:m").kind, RouteKind::Model);
    assert_eq!(route("m-2").kind, RouteKind::Instance);
    // The single implicit instance of up:solo shares the model's name and route.
    assert_eq!(route("up:solo").kind, RouteKind::Model);
    assert_eq!(c.routes.iter().filter(|r| r.name == "up:solo").count(), 1);
    // Env default injected, trailing slash trimmed, upstream name applied.
    let m1 = &c.instances[0];
    assert_eq!(m1.api_key.as_ref().unwrap().expose(), "sk-default");
    assert_eq!(
        m1.endpoint,
        Endpoint::OpenAi {
            base_url: "http://127.0.0.1:9/v1".into()
        }
    );
    assert_eq!(m1.upstream_model, "real-m");
    assert_eq!(format!("{:?}", m1.api_key), "Some(Secret(***))");
}

#[test]
fn dangling_references_name_file_and_key() {
    let mut f = tree();
    f.insert(
        "task-groups/g.toml",
        r#"
        [task_group]
        [task_group.fallback]
        fallback_groups = ["nope.e1"]
        [task_group.echelons.e1]
        models = ["up:m", "up:missing", "ghost:x"]
        "#
        .to_owned(),
    );
    f.insert(
        "wrappers/w.toml",
        "[wrappers]\nfast = { type = \"pool\", pool_name = \"nowhere\" }\n".to_owned(),
    );
    let found = issues(f);
    let expect = [
        "task-groups/g.toml:task_group.echelons.e1.models[1]: unknown model \"up:missing\": provider \"up\" has no model \"missing\" (it has: m, solo)",
        "task-groups/g.toml:task_group.echelons.e1.models[2]: unknown model \"ghost:x\": no provider \"ghost\" is registered in _registry.toml",
        "task-groups/g.toml:task_group.fallback.fallback_groups[0]: unknown task group or group.echelon \"nope.e1\": it is not registered in _registry.toml",
        "wrappers/w.toml:wrappers.fast.pool_name: unknown pool \"nowhere\": it is not registered in _registry.toml",
    ];
    for e in expect {
        assert!(found.iter().any(|f| f == e), "missing {e:?} in {found:#?}");
    }
}

#[test]
fn reports_syntax_types_env_and_missing_files() {
    let mut f = tree();
    f.insert("pools/p.toml", "[pool\ntask_groups = 1".to_owned());
    f.insert(
        "providers/up.toml",
        "[provider]\ntype = \"openai\"\nbase_url = \"${UPSTREAM_URL}\"\n[models.m]\nweight = \"heavy\"\n".to_owned(),
    );
    f.remove("wrappers/w.toml");
    let found = issues(f);
    let has = |needle: &str| found.iter().any(|f| f.contains(needle));
    assert!(has("pools/p.toml: invalid TOML: line 1"), "{found:#?}");
    assert!(
        has("providers/up.toml:provider.base_url: environment variable UPSTREAM_URL is not set"),
        "{found:#?}"
    );
    assert!(
        has("providers/up.toml:models.m.weight: invalid type"),
        "{found:#?}"
    );
    assert!(has("wrappers/w.toml: cannot read file"), "{found:#?}");
}

#[test]
fn refuses_bad_values_and_clashing_names() {
    let mut f = tree();
    f.insert(
        "providers/up.toml",
        r#"
        [provider]
        type = "openai"
        base_url = "ftp://x"
        [models.m]
        weight = 0
        [models.g]
        "#
        .to_owned(),
    );
    f.insert(
        "pools/p.toml",
        "[pool]\ntask_groups = [\"g\"]\n[pool.rotation_strategy]\ntype = \"fastest\"\n".to_owned(),
    );
    let found = issues(f);
    let has = |needle: &str| found.iter().any(|f| f.contains(needle));
    assert!(
        has("providers/up.toml:provider.base_url: \"ftp://x\" must be an http:// or https:// URL"),
        "{found:#?}"
    );
    assert!(
        has("pools/p.toml:pool.rotation_strategy.type: unknown strategy \"fastest\""),
        "{found:#?}"
    );
    let mut f = tree();
    f.insert(
        "wrappers/w.toml",
        "[wrappers]\np = { type = \"task_group\", task_group_name = \"g\" }\n".to_owned(),
    );
    let found = issues(f);
    assert!(
        found
            .iter()
            .any(|f| f.contains("routing name \"p\" is both a wrapper and a pool")),
        "{found:#?}"
    );
}

#[test]
fn disabled_entries_are_not_routable_and_references_say_so() {
    let mut f = tree();
    f.insert(
        "_registry.toml",
        r#"
        [providers]
        up = { file = "providers/up.toml" }
        [pools]
        p = { file = "pools/p.toml", enabled = false }
        [task_groups]
        g = { file = "task-groups/g.toml" }
        [wrappers]
        w = { file = "wrappers/w.toml" }
        "#
        .to_owned(),
    );
    let found = issues(f);
    assert!(
        found.iter().any(|f| f
            == "wrappers/w.toml:wrappers.fast.pool_name: pool \"p\" is disabled in _registry.toml"),
        "{found:#?}"
    );
}

#[test]
fn unknown_keys_are_refused_in_strict_mode_and_warned_in_lenient() {
    let mut f = tree();
    f.insert(
        "pools/p.toml",
        "[pool]\ntask_groups = [\"g\"]\n[pool.rotation_strategy]\ntyp = \"random\"\n".to_owned(),
    );
    let found = issues(f.clone());
    assert!(
        found
            .iter()
            .any(|i| i.starts_with("pools/p.toml:pool.rotation_strategy.typ: unknown key")),
        "{found:#?}"
    );
    let registry = f["_registry.toml"].clone();
    f.insert(
        "_registry.toml",
        format!("[global]\nconfig_validation = \"lenient\"\n{registry}"),
    );
    let c = load(f).unwrap();
    let unknown: Vec<&Issue> = (c.warnings.iter())
        .filter(|w| w.reason.starts_with("unknown key"))
        .collect();
    assert_eq!(unknown.len(), 1, "{:#?}", c.warnings);
    assert_eq!(unknown[0].key, "pool.rotation_strategy.typ");
    assert!(
        unknown[0].reason.contains("did you mean \"type\"?"),
        "{}",
        unknown[0]
    );
}

#[test]
fn a_missing_dependency_is_an_error_when_strict_and_a_warning_when_lenient() {
    let mut f = tree();
    let registry = f["_registry.toml"].clone();
    let deps = "\n[dependencies]\np = [\"g\", \"ghost\"]\n";
    f.insert("_registry.toml", format!("{registry}{deps}"));
    let found = issues(f.clone());
    assert_eq!(
        found,
        ["_registry.toml:dependencies.p[1]: depends on \"ghost\", which is not registered"],
    );
    f.insert(
        "_registry.toml",
        format!("[global]\nconfig_validation = \"lenient\"\n{registry}{deps}"),
    );
    let c = load(f).unwrap();
    let warned: Vec<String> = c.warnings.iter().map(plain).collect();
    assert!(
        warned.contains(
            &"_registry.toml:dependencies.p[1]: depends on \"ghost\", which is not registered"
                .to_owned()
        ),
        "{warned:#?}"
    );
}

#[test]
fn mock_instances_answer_as_their_instance_unless_named() {
    let c = Config::demo().unwrap();
    let sonnet = c
        .instances
        .iter()
        .find(|i| i.id == "mock-claude:claude-sonnet")
        .unwrap();
    match &sonnet.endpoint {
        Endpoint::Mock(b) => {
            assert_eq!(b.name, "mock-claude:claude-sonnet");
            assert_eq!(
                b.latency_ms, 90,
                "model-level mock settings apply to the implicit instance"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_demo_plans_follow_echelons_then_fallback_groups_and_pools() {
    let config = Config::demo().unwrap();
    let plan = |name: &str| -> Vec<(String, &'static str)> {
        let r = config.routes.iter().find(|r| r.name == name).unwrap();
        (r.tiers.iter().zip(&r.steps))
            .map(|(t, s)| (t.label.clone(), s.as_str()))
            .collect()
    };
    let owned = |v: &[(&str, &'static str)]| -> Vec<(String, &'static str)> {
        v.iter().map(|(l, s)| ((*l).to_owned(), *s)).collect()
    };
    // plan_group: its echelons, then fallback_groups (its own echelon2 already in: once).
    assert_eq!(
        plan("plan_group"),
        owned(&[
            ("plan_group.echelon1", "primary"),
            ("plan_group.echelon2", "echelon_down"),
            ("thinking_group.echelon1", "group_fallback"),
        ])
    );
    // A pinned echelon: itself, then the group's fallback_groups.
    assert_eq!(
        plan("plan_group.echelon1"),
        owned(&[
            ("plan_group.echelon1", "primary"),
            ("plan_group.echelon2", "group_fallback"),
            ("thinking_group.echelon1", "group_fallback"),
        ])
    );
    // thinking_pool falls back to fast_pool; the wrapper has the same plan.
    let thinking = owned(&[("thinking_pool", "primary"), ("fast_pool", "pool_fallback")]);
    assert_eq!(plan("thinking_pool"), thinking);
    assert_eq!(plan("thinking"), thinking);
    let fast_group = config
        .routes
        .iter()
        .find(|r| r.name == "fast_group")
        .unwrap();
    assert_eq!(fast_group.max_attempts, Some(3));
    assert!(config.retry.goes_on(crate::provider::ErrorClass::Server));
}

/// The loader on mangled input (seeded, so a failure reproduces): bytes flipped, files cut
/// short, lines shuffled, garbage and TOML-ish noise. It must answer Ok or issues; a panic
/// fails the test.
#[test]
fn mangled_trees_never_panic() {
    let mut rng = fastrand::Rng::with_seed(0x5717_c4ad);
    let noise = [
        "[",
        "]",
        "=",
        "\"",
        "{",
        "}",
        ",",
        "\n",
        "[[",
        "]]",
        "${",
        ":",
        ".",
        "0",
        "-1",
        "1e999",
        "true",
        "\u{0}",
        "é",
        "inherits_from",
        "models",
        "weight",
        "[pool]",
        "[task_group]",
    ];
    let base = tree();
    let paths: Vec<&'static str> = base.keys().copied().collect();
    let mut refused = 0;
    for round in 0..3000 {
        let mut files = base.clone();
        let path = paths[rng.usize(..paths.len())];
        let text = files.get(path).cloned().unwrap_or_default();
        let mut bytes = text.into_bytes();
        match round % 5 {
            0 if !bytes.is_empty() => {
                for _ in 0..rng.usize(1..8) {
                    let i = rng.usize(..bytes.len());
                    bytes[i] = rng.u8(..);
                }
            }
            1 => bytes.truncate(rng.usize(..=bytes.len())),
            2 => {
                let mut lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
                rng.shuffle(&mut lines);
                bytes = lines.join(&b'\n');
            }
            3 => bytes = (0..rng.usize(..200)).map(|_| rng.u8(..)).collect(),
            _ => {
                for _ in 0..rng.usize(1..6) {
                    let at = rng.usize(..=bytes.len());
                    let piece = noise[rng.usize(..noise.len())].as_bytes();
                    bytes.splice(at..at, piece.iter().copied());
                }
            }
        }
        files.insert(path, String::from_utf8_lossy(&bytes).into_owned());
        if load(files).is_err() {
            refused += 1;
        }
    }
    // Most mangled trees are refused (and none panicked getting there).
    assert!(refused > 1000, "{refused}");
}

/// `(file, replace this, with this)` edits of the small valid tree, each breaking it one way.
const BROKEN: &[(&str, &str, &str)] = &[
    (
        "pools/p.toml",
        "task_groups = [\"g\"]",
        "task_groups = [\"g\"",
    ),
    ("pools/p.toml", "type = \"weighted\"", "type = \"weigthed\""),
    ("pools/p.toml", "type = \"weighted\"", "type = 7"),
    (
        "pools/p.toml",
        "task_groups = [\"g\"]",
        "task_groups = [\"nope\"]",
    ),
    ("pools/p.toml", "task_groups = [\"g\"]", "task_groups = []"),
    ("pools/p.toml", "\"g.e1\" = 2", "\"g.e1\" = 0"),
    ("pools/p.toml", "\"g.e1\" = 2", "\"g.e9\" = 2"),
    ("pools/p.toml", "[pool]", "[pool]\ncolour = \"blue\""),
    (
        "pools/p.toml",
        "[pool]",
        "[pool.health_check]\ninterval = 0\n[pool]",
    ),
    (
        "pools/p.toml",
        "[pool]",
        "[pool.health_check]\nerror_rate_threshold = 10\n[pool]",
    ),
    (
        "pools/p.toml",
        "[pool]",
        "[pool.health_check]\nmax_ejection_percent = 150\n[pool]",
    ),
    (
        "pools/p.toml",
        "[pool]",
        "[pool.rate_limiting]\nalgorithm = \"leaky\"\n[pool]",
    ),
    (
        "pools/p.toml",
        "[pool]",
        "[pool.fallback]\nfallback_pools = [\"nope\"]\n[pool]",
    ),
    (
        "task-groups/g.toml",
        "models = [\"up:m\"]",
        "models = [\"up:nope\"]",
    ),
    (
        "task-groups/g.toml",
        "models = [\"up:m\"]",
        "models = [\"down:m\"]",
    ),
    ("task-groups/g.toml", "models = [\"up:m\"]", "models = []"),
    (
        "task-groups/g.toml",
        "fallback_groups = [\"g.e2\"]",
        "fallback_groups = [\"g.e7\"]",
    ),
    (
        "task-groups/g.toml",
        "fallback_strategy = \"echelon_down\"",
        "fallback_strategy = \"sideways\"",
    ),
    (
        "task-groups/g.toml",
        "priority = 1",
        "priority = 1\nconcurrency_limit = 0",
    ),
    (
        "task-groups/g.toml",
        "priority = 1",
        "priority = 1\ntimeout = -3",
    ),
    (
        "task-groups/g.toml",
        "[task_group]",
        "[task_group]\n[task_group.circuit_breaker]\nhalf_open_requests = 0",
    ),
    ("providers/up.toml", "weight = 3", "weight = 0"),
    ("providers/up.toml", "${KEY:sk-default}", "${KEY}"),
    (
        "providers/up.toml",
        "http://127.0.0.1:9/v1/",
        "ftp://127.0.0.1/v1",
    ),
    ("providers/up.toml", "id = \"m-2\"", "id = \"m-1\""),
    (
        "providers/up.toml",
        "type = \"openai\"",
        "type = \"telepathy\"",
    ),
    ("wrappers/w.toml", "pool_name = \"p\"", "pool_name = \"q\""),
    ("wrappers/w.toml", "type = \"pool\"", "type = \"bridge\""),
    (
        "_registry.toml",
        "[pools]",
        "[global]\nconfig_validation = \"loose\"\n[pools]",
    ),
    (
        "_registry.toml",
        "[pools]",
        "[global.error_handling]\nretry_on_errors = [\"gremlins\"]\n[pools]",
    ),
    (
        "_registry.toml",
        "[pools]",
        "[global.cache]\nenabled = true\ntll = 30\n[pools]",
    ),
    (
        "_registry.toml",
        "[pools]",
        "[global.cache]\nenabled = true\nmax_size = 0\n[pools]",
    ),
    (
        "wrappers/w.toml",
        "[wrappers]",
        "[global]\ntool_selection_strategy = \"random\"\n[wrappers]",
    ),
    (
        "_registry.toml",
        "[pools]",
        "[global.logging]\nformat = \"xml\"\n[pools]",
    ),
    (
        "pools/p.toml",
        "[pool]",
        "[pool.metrics]\ninterval = 0\n[pool]",
    ),
    (
        "task-groups/g.toml",
        "[task_group]",
        "[task_group]\n[task_group.metrics]\ncolection_interval = 60",
    ),
];

/// Every broken tree is refused, with one issue at the file and key its edit touched.
#[test]
fn issues_carry_the_line_of_their_key() {
    let mut files = tree();
    let p = files["pools/p.toml"].replace("type = \"weighted\"", "type = \"weigthed\"");
    files.insert("pools/p.toml", p);
    let e = load(files).unwrap_err();
    let i = (e.issues.iter())
        .find(|i| i.key == "pool.rotation_strategy.type")
        .unwrap();
    // Line 5 of the file: a blank first line, then [pool], task_groups, [pool.rotation_strategy].
    assert_eq!(i.line, Some(5));
    assert!(
        i.to_string()
            .starts_with("pools/p.toml:5: pool.rotation_strategy.type: unknown strategy"),
        "{i}"
    );
}

#[test]
fn thirty_six_broken_trees_are_each_refused_naming_file_and_key() {
    let expected = [
        "pools/p.toml: invalid TOML: line 4, column 9: missing comma between array elements",
        "pools/p.toml:pool.rotation_strategy.type: unknown strategy \"weigthed\"",
        "pools/p.toml:pool.rotation_strategy.type: invalid type: integer `7`, expected a string",
        "pools/p.toml:pool.task_groups[0]: unknown task group \"nope\": it is not registered in _registry.toml",
        "pools/p.toml:pool.task_groups: a pool needs at least one task group",
        "pools/p.toml:pool.rotation_strategy.options.weights.\"g.e1\": must be at least 1",
        "pools/p.toml:pool.rotation_strategy.options.weights.\"g.e9\": \"g.e9\" is not a group.echelon of this pool's task groups",
        "pools/p.toml:pool.colour: unknown key",
        "pools/p.toml:pool.health_check.interval: must be a positive number of seconds, got 0",
        "pools/p.toml:pool.health_check.error_rate_threshold: must be a fraction in (0, 1]",
        "pools/p.toml:pool.health_check.max_ejection_percent: must be at most 100",
        "pools/p.toml:pool.rate_limiting.algorithm: unknown algorithm \"leaky\"",
        "pools/p.toml:pool.fallback.fallback_pools[0]: unknown pool \"nope\"",
        "task-groups/g.toml:task_group.echelons.e1.models[0]: unknown model \"up:nope\": provider \"up\" has no model \"nope\"",
        "task-groups/g.toml:task_group.echelons.e1.models[0]: unknown model \"down:m\": no provider \"down\" is registered",
        "task-groups/g.toml:task_group.echelons.e1.models: an echelon needs at least one model",
        "task-groups/g.toml:task_group.fallback.fallback_groups[0]: unknown task group or group.echelon \"g.e7\"",
        "task-groups/g.toml:task_group.fallback_strategy: unknown fallback strategy \"sideways\"",
        "task-groups/g.toml:task_group.echelons.e1.concurrency_limit: must be greater than 0",
        "task-groups/g.toml:task_group.echelons.e1.timeout: must be a positive number of seconds, got -3",
        "task-groups/g.toml:task_group.circuit_breaker.half_open_requests: must be between 1 and 65535",
        "providers/up.toml:models.m.instances[1].weight: must be at least 1",
        "providers/up.toml:provider.api_key: environment variable KEY is not set",
        "providers/up.toml:provider.base_url: \"ftp://127.0.0.1/v1\" must be an http:// or https:// URL",
        "providers/up.toml:models.m.instances[1].id: instance id \"m-1\" is already used by model up:m",
        "providers/up.toml:provider.type: unknown provider type \"telepathy\"; expected one of [\"openai\"",
        "wrappers/w.toml:wrappers.fast.pool_name: unknown pool \"q\"",
        "wrappers/w.toml:wrappers.fast.type: unknown wrapper type \"bridge\"",
        "_registry.toml:global.config_validation: must be \"strict\" or \"lenient\"",
        "_registry.toml:global.error_handling.retry_on_errors: unknown error class \"gremlins\"",
        "_registry.toml:global.cache.tll: unknown key (did you mean \"ttl\"?",
        "_registry.toml:global.cache.max_size: must be a whole number ≥ 1",
        "wrappers/w.toml:global.tool_selection_strategy: must be one of [\"auto\", \"manual\", \"priority\"]",
        "_registry.toml:global.logging.format: must be one of [\"json\", \"text\"]",
        "pools/p.toml:pool.metrics.interval: must be a positive number of seconds, got 0",
        "task-groups/g.toml:task_group.metrics.colection_interval: unknown key (did you mean \"collection_interval\"?",
    ];
    assert!(BROKEN.len() >= 25 && BROKEN.len() == expected.len());
    let mut wrong = Vec::new();
    for ((path, from, to), want) in BROKEN.iter().zip(expected) {
        let mut files = tree();
        let text = files.get(path).cloned().unwrap_or_default();
        assert!(text.contains(from), "{path} has no {from:?}");
        files.insert(path, text.replacen(from, to, 1));
        let got = match load(files) {
            Ok(_) => panic!("{path}: {from:?} → {to:?} was accepted"),
            Err(e) => e.issues,
        };
        let hit = got.iter().find(|i| plain(i).starts_with(want));
        // Every issue at a key says which line of its file the key (or its table) is on.
        if hit.is_some_and(|i| !i.key.is_empty() && i.line.is_none()) {
            wrong.push(format!("{path}: {want}: no line"));
        }
        let got: Vec<String> = got.iter().map(plain).collect();
        if hit.is_none() {
            wrong.push(format!(
                "{path}: {from:?} → {to:?}\n  want: {want}\n  got:  {got:#?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn seed_004s_thinking_pool_weights_its_echelons_ten_five_one() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/seed");
    let config = Config::load_dir(dir).unwrap();
    let pool = config
        .routes
        .iter()
        .find(|r| r.name == "thinking_pool")
        .unwrap();
    let weight_of = |model: &str| {
        let tier = &pool.tiers[0];
        let m = tier
            .members
            .iter()
            .find(|m| config.instances[m.instance].model_ref == model);
        m.map(|m| m.weight.get())
    };
    // echelon1: claude-3-5-sonnet, gpt-4 (× 10); echelon2: gpt-4o, claude-3-sonnet (× 5);
    // echelon3: gpt-3.5-turbo (× 1).
    assert_eq!(weight_of("anthropic:claude-3-5-sonnet"), Some(10));
    assert_eq!(weight_of("anthropic:claude-3-sonnet"), Some(5));
    assert_eq!(weight_of("openai:gpt-3.5-turbo"), Some(1));
    // claude-3-5-sonnet is in both pools: fast_pool's interval (30 s), thinking_pool's
    // failure_threshold (2) and recovery_time (120 s), the strictest of each.
    let sonnet = config
        .instances
        .iter()
        .find(|i| i.model_ref == "anthropic:claude-3-5-sonnet")
        .unwrap();
    let h = sonnet.health;
    assert_eq!(
        (
            h.interval.as_secs(),
            h.failure_threshold,
            h.recovery_time.as_secs()
        ),
        (30, 2, 120)
    );
}

/// Seed 004's inheritance example (with the task group a pool needs): `[pool]` inherits from
/// `[base_pool]`, overriding one value.
#[test]
fn seed_004s_inheritance_example_loads() {
    let mut files = tree();
    files.insert(
        "pools/p.toml",
        r#"
        # 基础配置
        [base_pool]
        health_check_interval = 30
        failure_threshold = 3
        recovery_time = 60
        task_groups = ["g"]

        # 具体配置继承基础配置
        [pool]
        inherits_from = "base_pool"
        name = "p"
        # 可以覆盖基础配置中的值
        health_check_interval = 60
        "#
        .to_owned(),
    );
    let config = load(files).unwrap();
    let pool = config.routes.iter().find(|r| r.name == "p").unwrap();
    let h = config.instances[pool.tiers[0].members[0].instance].health;
    assert_eq!(
        (
            h.interval.as_secs(),
            h.failure_threshold,
            h.recovery_time.as_secs()
        ),
        (60, 3, 60)
    );
}

#[test]
fn the_fallback_graph_lint_warns_about_cycles_skipped_echelons_single_providers_and_deadlines() {
    let mut files = tree();
    let reg = files["_registry.toml"].replace(
        "[pools]",
        "[global]\ndefault_timeout = 5\n[pools]\nq = { file = \"pools/q.toml\" }",
    );
    files.insert("_registry.toml", reg);
    let p = files["pools/p.toml"].replace(
        "[pool]",
        "[pool.fallback]\nfallback_pools = [\"q\"]\n[pool]",
    );
    files.insert("pools/p.toml", p);
    files.insert(
        "pools/q.toml",
        "[pool]\ntask_groups = [\"g\"]\n[pool.fallback]\nfallback_pools = [\"p\"]\n".to_owned(),
    );
    let g = files["task-groups/g.toml"].replace("\"echelon_down\"", "\"group_fallback\"");
    files.insert("task-groups/g.toml", g);
    let config = load(files).unwrap();
    let warnings: Vec<String> = config.warnings.iter().map(ToString::to_string).collect();
    let has = |needle: &str| warnings.iter().any(|w| w.contains(needle));
    assert!(
        has("pools/p.toml:pool.fallback.fallback_pools: fallback cycle p → q → p"),
        "{warnings:#?}"
    );
    assert!(
        has(
            "task-groups/g.toml:task_group.fallback_strategy: group_fallback: the group's plan never reaches echelon(s) e2"
        ),
        "{warnings:#?}"
    );
    assert!(
        has("wrappers/w.toml:wrappers.fast: every step of its plan is provider \"up\""),
        "{warnings:#?}"
    );
    assert!(
        has(
            "_registry.toml:global.default_timeout: route \"p\": when attempts time out, only the first 1 of its 2 steps"
        ),
        "{warnings:#?}"
    );
}

/// Seed 003's `_task_groups.yaml`, as written, loads into the same model (its models are
/// instance ids, defined here).
#[test]
fn seed_003s_yaml_task_groups_and_polling_pools_load() {
    let yaml = include_str!("../../examples/seed/groups/_task_groups.yaml");
    let files = [
        (
            "_registry.toml",
            "[providers]\nup = { file = \"up.toml\" }\n[yaml]\nseed003 = { file = \"groups/_task_groups.yaml\" }\n",
        ),
        (
            "up.toml",
            "[provider]\ntype = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n[models.big]\n[[models.big.instances]]\nid = \"openai-gpt4\"\n[[models.big.instances]]\nid = \"anthropic-claude-opus\"\n[models.small]\n[[models.small.instances]]\nid = \"openai-gpt3.5-turbo\"\n[[models.small.instances]]\nid = \"gemini-pro\"\n",
        ),
        ("groups/_task_groups.yaml", yaml),
    ];
    let config = Config::load_with_env(&MemorySource::new(files), &no_env).unwrap();
    let plan = |name: &str| -> Vec<(String, &'static str)> {
        let r = config.routes.iter().find(|r| r.name == name).unwrap();
        (r.tiers.iter().zip(&r.steps))
            .map(|(t, s)| (t.label.clone(), s.as_str()))
            .collect()
    };
    assert_eq!(
        plan("fast_group"),
        [("fast_group.echelon1".to_owned(), "primary")]
    );
    assert_eq!(
        plan("fast_small_group.translation")[0].0,
        "fast_small_group.translation"
    );
    let pool = config
        .routes
        .iter()
        .find(|r| r.name == "single_turn_pool")
        .unwrap();
    assert_eq!(pool.tiers[0].members.len(), 4);
    let e1 = config
        .routes
        .iter()
        .find(|r| r.name == "fast_group.echelon1")
        .unwrap();
    assert_eq!(e1.tiers[0].max_attempts, 4, "max_retries: 3");
    assert!(e1.tiers[0].limits.concurrency == Some(10));
    // The pool's health_check_interval and token bucket were read.
    let member = &config.instances[pool.tiers[0].members[0].instance];
    assert_eq!(member.health.interval.as_secs(), 30);
    assert!(pool.tiers[0].limits.requests.is_some());
}

#[test]
fn provider_presets_fill_in_the_api_base_url_and_key() {
    let tree = |provider: &str| {
        let files: HashMap<String, String> = [
            (
                "_registry.toml",
                "[providers]\np = { file = \"providers/p.toml\" }\n[task_groups]\ng = { file = \"task-groups/g.toml\" }\n",
            ),
            ("providers/p.toml", provider),
            (
                "task-groups/g.toml",
                "[task_group]\n[task_group.echelons.e1]\nmodels = [\"p:m\"]\n",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        MemorySource(files)
    };
    let env = |name: &str| (name == "DEEPSEEK_API_KEY").then(|| "sk-deep".to_owned());
    let c = Config::load_with_env(&tree("[provider]\ntype = \"deepseek\"\n[models.m]\n"), &env)
        .unwrap();
    let i = &c.instances[0];
    assert_eq!(i.api, crate::provider::Api::OpenAi);
    assert_eq!(
        i.endpoint,
        Endpoint::OpenAi {
            base_url: "https://api.deepseek.com/v1".into()
        }
    );
    assert_eq!(i.api_key.as_ref().map(Secret::expose), Some("sk-deep"));

    let c = Config::load_with_env(
        &tree("[provider]\ntype = \"azure\"\nbase_url = \"https://r.openai.azure.com\"\napi_version = \"2025-01-01\"\napi_key = \"k\"\n[models.m]\nupstream_model = \"gpt4o-prod\"\n"),
        &no_env,
    )
    .unwrap();
    let i = &c.instances[0];
    let api = crate::provider::Api::Azure {
        api_version: "2025-01-01".into(),
    };
    assert_eq!(i.api, api);
    let adapter = i.api.adapter();
    assert_eq!(
        adapter.url(
            "https://r.openai.azure.com",
            i,
            crate::provider::Operation::Chat
        ),
        "https://r.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions?api-version=2025-01-01"
    );
    assert_eq!(adapter.headers(i)["api-key"], "k");

    for (kind, api) in [
        ("claude", crate::provider::Api::Anthropic),
        ("gemini", crate::provider::Api::Gemini),
    ] {
        let c = Config::load_with_env(
            &tree(&format!("[provider]\ntype = \"{kind}\"\n[models.m]\n")),
            &no_env,
        )
        .unwrap();
        assert_eq!(c.instances[0].api, api, "{kind}");
    }
    let e = Config::load_with_env(
        &tree("[provider]\ntype = \"ollama\"\napi_version = \"1\"\n[models.m]\n"),
        &no_env,
    )
    .unwrap_err();
    assert_eq!(
        e.issues.iter().map(plain).collect::<Vec<_>>(),
        ["providers/p.toml:provider.api_version: only type = \"azure\" reads api_version"]
    );
}

#[test]
fn server_edge_timeouts_have_defaults_and_refuse_bad_values() {
    let config = load(tree()).unwrap();
    assert_eq!(config.header_timeout, Duration::from_secs(10));
    assert_eq!(config.body_timeout, Duration::from_secs(30));
    let mut f = tree();
    let registry = f["_registry.toml"].clone();
    f.insert(
        "_registry.toml",
        format!("[server]\nheader_timeout = 0.3\nbody_timeout = 2\n{registry}"),
    );
    let config = load(f).unwrap();
    assert_eq!(config.header_timeout, Duration::from_millis(300));
    assert_eq!(config.body_timeout, Duration::from_secs(2));
    let mut f = tree();
    f.insert(
        "_registry.toml",
        format!("[server]\nheader_timeout = 0\nbody_timeout = 1e300\n{registry}"),
    );
    let found = issues(f);
    let has = |needle: &str| found.iter().any(|f| f.contains(needle));
    assert!(
        has("_registry.toml:server.header_timeout: must be a positive number of seconds"),
        "{found:#?}"
    );
    assert!(
        has("_registry.toml:server.body_timeout: must be"),
        "{found:#?}"
    );
}
