//! Lakehouse configuration: defaults in code, then `strata.toml`, then `STRATA_*` variables.
//! Unknown keys are errors, so a typo never silently falls back to a default.

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The file name of the configuration at the lakehouse root.
pub const CONFIG_FILE: &str = "strata.toml";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub metastore: MetastoreConfig,
    pub limits: Limits,
    pub server: ServerConfig,
}

/// `strata serve`: where it listens and what it accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    /// The token every request but `GET /health` must carry when the server listens on
    /// anything but loopback (Bearer, or the password of HTTP Basic). `STRATA_TOKEN` overrides.
    pub token: Option<String>,
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "127.0.0.1".into(),
            port: 8081,
            token: None,
            max_body_bytes: 64 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetastoreConfig {
    /// How long a writer waits for a locked metastore before failing, in milliseconds.
    pub busy_timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_record_bytes: u64,
    pub max_columns: u32,
    pub max_nesting: u32,
}

impl Default for MetastoreConfig {
    fn default() -> Self {
        MetastoreConfig {
            busy_timeout_ms: 30_000,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_record_bytes: 64 * 1024 * 1024,
            max_columns: 1000,
            max_nesting: 64,
        }
    }
}

impl Config {
    /// Parses `strata.toml` text; `origin` names the file in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, Error> {
        toml::from_str(text).map_err(|e| Error::Config(format!("{origin}: {e}")))
    }

    /// Applies `STRATA_*` overrides from `vars` (the process environment in practice).
    pub fn apply_env<I: IntoIterator<Item = (String, String)>>(
        mut self,
        vars: I,
    ) -> Result<Self, Error> {
        for (k, v) in vars {
            let parse = |v: &str| -> Result<u64, Error> {
                v.parse()
                    .map_err(|_| Error::Config(format!("{k}: '{v}' is not a whole number")))
            };
            match k.as_str() {
                "STRATA_METASTORE_BUSY_TIMEOUT_MS" => self.metastore.busy_timeout_ms = parse(&v)?,
                "STRATA_MAX_RECORD_BYTES" => self.limits.max_record_bytes = parse(&v)?,
                "STRATA_MAX_COLUMNS" => self.limits.max_columns = parse(&v)? as u32,
                "STRATA_MAX_NESTING" => self.limits.max_nesting = parse(&v)? as u32,
                "STRATA_TOKEN" if !v.is_empty() => self.server.token = Some(v.clone()),
                "STRATA_MAX_BODY_BYTES" => self.server.max_body_bytes = parse(&v)?,
                _ => {}
            }
        }
        Ok(self)
    }

    /// The text `strata init` writes: every setting with its default, commented.
    pub fn default_toml() -> String {
        let d = Config::default();
        format!(
            "# Strata lakehouse configuration. Environment variables STRATA_* override these.\n\
             \n\
             [metastore]\n\
             # how long a writer waits for a locked metastore, in milliseconds\n\
             busy_timeout_ms = {}\n\
             \n\
             [limits]\n\
             max_record_bytes = {}\n\
             max_columns = {}\n\
             max_nesting = {}\n\
             \n\
             [server]\n\
             # `strata serve`: off loopback every request but GET /health needs the token\n\
             # (token = \"...\", or STRATA_TOKEN); HTTP Basic sends it as the password\n\
             host = \"{}\"\n\
             port = {}\n\
             max_body_bytes = {}\n",
            d.metastore.busy_timeout_ms,
            d.limits.max_record_bytes,
            d.limits.max_columns,
            d.limits.max_nesting,
            d.server.host,
            d.server.port,
            d.server.max_body_bytes
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_text_round_trips() {
        let c = Config::from_toml(&Config::default_toml(), "strata.toml").unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn unknown_keys_fail() {
        let e = Config::from_toml("[limits]\nmax_colums = 3\n", "x/strata.toml").unwrap_err();
        assert!(e.to_string().contains("max_colums"), "{e}");
    }

    #[test]
    fn env_overrides() {
        let c = Config::default()
            .apply_env([("STRATA_MAX_COLUMNS".to_string(), "7".to_string())])
            .unwrap();
        assert_eq!(c.limits.max_columns, 7);
    }
}
