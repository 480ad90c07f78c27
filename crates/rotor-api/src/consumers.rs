//! Consumers: which version of a secret each consumer (a `rotor agent`, a
//! `rotor run`, an application using the client library) has in use.

use crate::Timestamp;
use crate::secrets::VERSION_ID_PATTERN;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

crate::endpoint! {
    /// Report the version of a secret a consumer has in use (`read` on the secret).
    AcknowledgeVersion: Post "/v1/consumers" => 200 json(Acknowledged), body Acknowledgement;
    /// Each consumer's latest report on a secret, and whether it is current.
    ListConsumers: Get "/v1/consumers/{*name}" => 200 json(ConsumerList);
}

/// A consumer's report.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Acknowledgement {
    /// The consumer's id: 1–256 characters, no control characters.
    #[schemars(extend("pattern" = r"^[^\x00-\x1f\x7f-\x9f]{1,256}$"))]
    pub consumer: String,
    /// The secret's name or ARN.
    #[schemars(length(min = 1, max = 2048))]
    pub secret: String,
    /// The version in use.
    #[schemars(extend("pattern" = VERSION_ID_PATTERN))]
    pub version_id: String,
}

/// A report recorded.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Acknowledged {
    /// The secret's name.
    pub name: String,
    /// The consumer.
    pub consumer: String,
    /// The version.
    pub version_id: String,
}

/// A secret's consumers.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ConsumerList {
    /// The secret's name.
    pub name: String,
    /// The version holding `AWSCURRENT`, if any.
    pub current_version: Option<String>,
    /// Each consumer's latest report.
    pub consumers: Vec<Consumer>,
    /// Whether every report was seen (false when older ones were beyond the scan).
    pub complete: bool,
    /// How many events back the reports are looked for.
    pub scan_limit: i64,
}

/// A consumer's latest report.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Consumer {
    /// Its id.
    pub consumer: String,
    /// The version it reported.
    pub version_id: String,
    /// That version's labels now.
    pub stages: Vec<String>,
    /// Whether that version is `AWSCURRENT`.
    pub current: bool,
    /// Where the report came from.
    pub host: Option<String>,
    /// When.
    pub at: Timestamp,
    /// The report's event sequence number.
    pub seq: i64,
}
