//! Turns `SYNCLINE_A__B__C=value` entries into a nested dictionary `{a: {b: {c: value}}}`.

use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};

/// The `SYNCLINE_*` environment as a figment provider, so errors say where a value came from.
pub(crate) struct EnvProvider(pub(crate) Dict);

impl Provider for EnvProvider {
    fn metadata(&self) -> Metadata {
        Metadata::named("SYNCLINE_* environment variables")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.0.clone()))
    }
}

pub(crate) fn nested(env: impl IntoIterator<Item = (String, String)>, prefix: &str) -> Dict {
    let mut root = Dict::new();
    for (key, raw) in env {
        let Some(rest) = key.strip_prefix(prefix) else {
            continue;
        };
        let path: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
        if path.iter().any(|p| p.is_empty()) {
            continue;
        }
        let value: Value = raw.parse().unwrap_or_else(|never| match never {});
        insert(&mut root, &path, value);
    }
    root
}

fn insert(dict: &mut Dict, path: &[String], value: Value) {
    match path {
        [] => {}
        [last] => {
            dict.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = dict
                .entry(first.clone())
                .or_insert_with(|| Value::from(Dict::new()));
            if let Value::Dict(_, inner) = entry {
                insert(inner, rest, value);
            } else {
                let mut inner = Dict::new();
                insert(&mut inner, rest, value);
                *entry = Value::from(inner);
            }
        }
    }
}
