use super::*;
use secrecy::ExposeSecret;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn defaults_run_the_embedded_suite() {
    let config = load(None, env(&[])).unwrap();
    assert!(config.storage.database_url.is_none());
    assert_eq!(config.listen_addr(ServiceName::Gateway).port(), 7400);
    assert_eq!(config.listen_addr(ServiceName::AuthVault).port(), 7401);
}

#[test]
fn env_overrides_file_which_overrides_defaults() {
    let dir = std::env::temp_dir().join(format!("syncline-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("syncline.toml");
    std::fs::write(
        &file,
        "[gateway.jwt]\naudience = \"from-file\"\nleeway_secs = 5\n[storage]\nmax_connections = 3\n",
    )
    .unwrap();
    let config = load(
        Some(&file),
        env(&[
            ("SYNCLINE_GATEWAY__JWT__AUDIENCE", "from-env"),
            (
                "SYNCLINE_STORAGE__DATABASE_URL",
                "postgres://postgres@127.0.0.1/test",
            ),
            ("UNRELATED", "ignored"),
        ]),
    )
    .unwrap();
    assert_eq!(config.gateway.jwt.audience, "from-env");
    assert_eq!(config.gateway.jwt.leeway_secs, 5);
    assert_eq!(config.storage.max_connections, 3);
    assert_eq!(
        config.storage.database_url.unwrap().expose_secret(),
        "postgres://postgres@127.0.0.1/test"
    );
}

#[test]
fn an_unknown_key_fails_and_is_named() {
    let error = load(None, env(&[("SYNCLINE_GATEWAY__JWT__AUDIENSE", "x")])).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("gateway.jwt"), "{text}");
    assert!(text.contains("audiense"), "{text}");
}

#[test]
fn a_wrong_type_fails_and_is_named() {
    let error = load(None, env(&[("SYNCLINE_STORAGE__MAX_CONNECTIONS", "many")])).unwrap_err();
    assert!(
        error.to_string().contains("storage.max_connections"),
        "{error}"
    );
}

#[test]
fn validation_names_the_offending_key() {
    let error = load(
        None,
        env(&[("SYNCLINE_GATEWAY__JWT__HS256_SECRET", "short")]),
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("gateway.jwt.hs256_secret"),
        "{error}"
    );
    let error = load(
        None,
        env(&[("SYNCLINE_STORAGE__DATABASE_URL", "mysql://x")]),
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("storage.database_url"),
        "{error}"
    );
}

#[test]
fn a_missing_config_file_is_an_error() {
    let error = load(
        Some(std::path::Path::new("/nonexistent/syncline.toml")),
        env(&[]),
    )
    .unwrap_err();
    assert!(error.to_string().contains("does not exist"));
}

#[test]
fn the_distributed_deployment_example_loads() {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/distributed.example.toml");
    let config = load(
        Some(&file),
        env(&[
            (
                "SYNCLINE_INTERNAL_AUTH__SECRET",
                "0123456789abcdef0123456789abcdef",
            ),
            (
                "SYNCLINE_STORAGE__DATABASE_URL",
                "postgres://syncline@db/syncline",
            ),
        ]),
    )
    .unwrap();
    assert_eq!(config.listen_addr(ServiceName::Mapping).port(), 7403);
    assert_eq!(
        config.listen_addr(ServiceName::SchemaDiscovery).port(),
        7402
    );
    assert_eq!(config.schema_discovery.refresh_interval_secs, 21600);
    assert!(config.gateway.jwt.jwks_url.is_some());
    assert!(!config.sandbox.enabled);
}

#[test]
fn auth_vault_settings_load_from_env_and_keys_stay_secret() {
    let config = load(
        None,
        env(&[
            ("SYNCLINE_AUTH_VAULT__LISTEN_ADDR", "127.0.0.1:9401"),
            (
                "SYNCLINE_AUTH_VAULT__KEYS",
                "kek-1=c2VjcmV0LWtleS1tYXRlcmlhbA",
            ),
            ("SYNCLINE_AUTH_VAULT__REFRESH_MARGIN_SECS", "120"),
            (
                "SYNCLINE_AUTH_VAULT__SALESFORCE_SESSION_LIFETIME_SECS",
                "900",
            ),
        ]),
    )
    .unwrap();
    assert_eq!(config.listen_addr(ServiceName::AuthVault).port(), 9401);
    assert_eq!(config.auth_vault.refresh_margin_secs, 120);
    assert_eq!(config.auth_vault.salesforce_session_lifetime_secs, 900);
    let debug = format!("{config:?}");
    assert!(!debug.contains("c2VjcmV0"), "{debug}");
    let mut config = config;
    config.set_listen_addr(ServiceName::AuthVault, "127.0.0.1:0".parse().unwrap());
    assert_eq!(config.auth_vault.listen_addr.port(), 0);
}

#[test]
fn auth_vault_validation_names_the_key() {
    let error = load(
        None,
        env(&[("SYNCLINE_AUTH_VAULT__SALESFORCE_SESSION_LIFETIME_SECS", "5")]),
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("auth_vault.salesforce_session_lifetime_secs"),
        "{error}"
    );
}

#[test]
fn schema_discovery_settings_load_from_env() {
    let config = load(
        None,
        env(&[
            ("SYNCLINE_SCHEMA_DISCOVERY__LISTEN_ADDR", "127.0.0.1:9402"),
            ("SYNCLINE_SCHEMA_DISCOVERY__REFRESH_INTERVAL_SECS", "0"),
        ]),
    )
    .unwrap();
    assert_eq!(
        config.listen_addr(ServiceName::SchemaDiscovery),
        "127.0.0.1:9402".parse().unwrap()
    );
    assert_eq!(config.schema_discovery.refresh_interval_secs, 0);
    assert_eq!(
        SynclineConfig::default()
            .schema_discovery
            .refresh_interval_secs,
        6 * 3600
    );
}

#[test]
fn auth_vault_refresher_settings_load_and_are_validated() {
    let config = load(
        None,
        env(&[
            ("SYNCLINE_AUTH_VAULT__REFRESHER__INTERVAL_SECS", "0"),
            ("SYNCLINE_AUTH_VAULT__REFRESHER__HUBSPOT_RPS", "3"),
        ]),
    )
    .unwrap();
    assert_eq!(config.auth_vault.refresher.interval_secs, 0);
    assert_eq!(config.auth_vault.refresher.hubspot_rps, 3);
    assert_eq!(config.auth_vault.refresher.lookahead_secs, 600);
    let error = load(
        None,
        env(&[("SYNCLINE_AUTH_VAULT__REFRESHER__JITTER_SECS", "400")]),
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("auth_vault.refresher.jitter_secs"),
        "{error}"
    );
}

#[test]
fn sync_engine_delivery_settings_load_and_are_validated() {
    let config = load(
        None,
        env(&[
            ("SYNCLINE_SYNC_ENGINE__RETENTION_DAYS", "30"),
            (
                "SYNCLINE_SYNC_ENGINE__DELIVERY__RETRY_SCHEDULE_SECS",
                "[1, 60]",
            ),
        ]),
    )
    .unwrap();
    assert_eq!(config.sync_engine.retention_days, 30);
    assert_eq!(config.sync_engine.delivery.retry_schedule_secs, vec![1, 60]);
    assert_eq!(config.sync_engine.delivery.disable_after_dead_messages, 5);
    let error = load(None, env(&[("SYNCLINE_SYNC_ENGINE__RETENTION_DAYS", "0")])).unwrap_err();
    assert!(
        error.to_string().contains("sync_engine.retention_days"),
        "{error}"
    );
}

#[test]
fn sync_run_settings_load_from_env_and_are_validated() {
    let config = load(
        None,
        env(&[
            ("SYNCLINE_SYNC_ENGINE__RUNS__WORKERS", "8"),
            ("SYNCLINE_SYNC_ENGINE__RUNS__PER_TENANT_CONCURRENCY", "1"),
            ("SYNCLINE_SYNC_ENGINE__RUNS__LEASE_SECS", "5"),
            ("SYNCLINE_SYNC_ENGINE__RUNS__SCHEDULE_POLL_SECS", "3"),
        ]),
    )
    .unwrap();
    let runs = &config.sync_engine.runs;
    assert_eq!(
        (runs.workers, runs.per_tenant_concurrency, runs.lease_secs),
        (8, 1, 5)
    );
    assert_eq!(runs.daily_quota_share_percent, 50);
    assert_eq!((runs.schedule_poll_secs, runs.schedule_speedup), (3, 1));
    for (key, value, named) in [
        (
            "SYNCLINE_SYNC_ENGINE__RUNS__PAGE_SIZE",
            "0",
            "sync_engine.runs.page_size",
        ),
        (
            "SYNCLINE_SYNC_ENGINE__RUNS__DAILY_QUOTA_SHARE_PERCENT",
            "101",
            "sync_engine.runs.daily_quota_share_percent",
        ),
        (
            "SYNCLINE_SYNC_ENGINE__RUNS__SCHEDULE_POLL_SECS",
            "0",
            "sync_engine.runs.schedule_poll_secs",
        ),
    ] {
        let error = load(None, env(&[(key, value)])).unwrap_err();
        assert!(error.to_string().contains(named), "{error}");
    }
}

#[test]
fn embed_page_settings_load_from_env_and_are_validated() {
    let config = load(
        None,
        env(&[
            (
                "SYNCLINE_GATEWAY__EMBED__FRAME_ANCESTORS",
                "[\"'self'\", \"https://app.example.com\"]",
            ),
            ("SYNCLINE_GATEWAY__EMBED__TOKEN_TTL_SECS", "600"),
        ]),
    )
    .unwrap();
    assert_eq!(
        config.gateway.embed.frame_ancestors,
        ["'self'", "https://app.example.com"]
    );
    assert_eq!(config.gateway.embed.token_ttl_secs, 600);
    assert_eq!(
        load(None, env(&[])).unwrap().gateway.embed.frame_ancestors,
        ["'self'"]
    );
    for (key, value, named) in [
        (
            "SYNCLINE_GATEWAY__EMBED__FRAME_ANCESTORS",
            "[\"https://ok.example\", \"*; script-src *\"]",
            "gateway.embed.frame_ancestors",
        ),
        (
            "SYNCLINE_GATEWAY__EMBED__TOKEN_TTL_SECS",
            "7200",
            "gateway.embed.token_ttl_secs",
        ),
        (
            "SYNCLINE_GATEWAY__EMBED__MAX_TOKEN_TTL_SECS",
            "604800",
            "gateway.embed.max_token_ttl_secs",
        ),
    ] {
        let text = load(None, env(&[(key, value)])).unwrap_err().to_string();
        assert!(text.contains(named), "{key}={value}: {text}");
    }
}

#[test]
fn plan_check_defaults_to_a_minute_and_zero_checks_every_page() {
    assert_eq!(
        load(None, env(&[]))
            .unwrap()
            .sync_engine
            .runs
            .plan_check_secs,
        60
    );
    let config = load(
        None,
        env(&[("SYNCLINE_SYNC_ENGINE__RUNS__PLAN_CHECK_SECS", "0")]),
    )
    .unwrap();
    assert_eq!(config.sync_engine.runs.plan_check_secs, 0);
}
