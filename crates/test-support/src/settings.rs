//! Settings checks every service shares: a section given only in part keeps its documented
//! defaults for the rest.

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

/// Loads `T` as its binary does (`herald_service::config::load`) with only `vars` in the
/// environment, and returns the dotted paths (`channels.chat.history_ttl`) whose value differs
/// from `T::default()`. Fields that are not serialized (secrets) are not compared.
// `figment::Jail`'s closures return its (large) error type by design.
#[allow(clippy::result_large_err)]
pub fn changed_paths<T: Serialize + DeserializeOwned + Default>(
    vars: &[(&str, &str)],
) -> Vec<String> {
    let mut loaded = None;
    figment::Jail::expect_with(|jail| {
        jail.clear_env();
        for (name, value) in vars {
            jail.set_env(name, value);
        }
        loaded = Some(herald_service::config::load::<T>(None).map_err(|e| e.to_string())?);
        Ok(())
    });
    let loaded = serde_json::to_value(loaded.expect("the jail ran")).expect("settings serialize");
    let defaults = serde_json::to_value(T::default()).expect("settings serialize");
    let mut paths = Vec::new();
    diff(String::new(), &defaults, &loaded, &mut paths);
    paths
}

fn diff(path: String, defaults: &Value, loaded: &Value, paths: &mut Vec<String>) {
    match (defaults, loaded) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let inner = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                diff(inner, value, b.get(key).unwrap_or(&Value::Null), paths);
            }
        }
        (a, b) if a != b => paths.push(path),
        _ => {}
    }
}
