//! perf profiles (`shardpbx run --perf perf/<name>.toml`): a TOML file with one
//! `[runtime]` table holding any of the `[runtime]` keys of the config (and
//! nothing else). Keys it sets replace the config's; the rest stay.

use std::path::Path;

use serde::Deserialize;

use super::locate::SourceDoc;
use super::schema::{Config, RuntimeConfig};
use super::{read, typed, ConfigError};

/// A profile as a whole: only `[runtime]` is allowed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ProfileFile {
    runtime: RuntimeConfig,
}

impl Config {
    /// Applies the perf profile at `path`, then validates the result; on error the
    /// config is unchanged. Errors name the profile file for keys it sets.
    pub fn apply_profile(&mut self, path: impl AsRef<Path>) -> Result<(), ConfigError> {
        let path = path.as_ref();
        let text = read(path)?;
        self.apply_profile_str(path, &text)
    }

    /// `apply_profile` on text; `file` names it in errors.
    pub fn apply_profile_str(
        &mut self,
        file: impl AsRef<Path>,
        text: &str,
    ) -> Result<(), ConfigError> {
        let file = file.as_ref();
        let doc = SourceDoc::parse(file, text)?;
        // Type-check every key against the schema (unknown keys, wrong types).
        let _: ProfileFile = typed(&doc)?;

        let set: toml::Table = toml::from_str(text)
            .map_err(|e| ConfigError::new(file, None, "", e.message().to_string()))?;
        let mut next = self.clone();
        if let Some(toml::Value::Table(overrides)) = set.get("runtime") {
            next.runtime = overlay(&self.runtime, overrides)
                .map_err(|e| ConfigError::new(file, None, "runtime", e))?;
        }
        next.sources.push(doc);
        next.validate()?;
        *self = next;
        Ok(())
    }
}

/// `base` with the keys of `overrides` replaced (keys already type-checked).
fn overlay(base: &RuntimeConfig, overrides: &toml::Table) -> Result<RuntimeConfig, String> {
    let mut table = toml::Table::try_from(base).map_err(|e| e.to_string())?;
    for (k, v) in overrides {
        table.insert(k.clone(), v.clone());
    }
    toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| e.message().to_string())
}
