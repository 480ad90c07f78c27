//! Consumers: who uses which version of a secret (a `rotor agent`, a `rotor run`, an
//! application using the client library, and anyone who read it), and whether they
//! are still there.

use crate::Timestamp;
use crate::secrets::VERSION_ID_PATTERN;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

crate::endpoint! {
    /// Register as a consumer of a secret's version, or renew the registration (a
    /// heartbeat); needs `read` on the secret.
    RegisterConsumer: Post "/v1/consumers" => 200 json(Registered), body Registration;
    /// A secret's consumers by version, live and gone, with those of its replicas.
    ListConsumers: Get "/v1/consumers/{*name}" => 200 json(ConsumerList);
    /// A consumer leaves (a clean exit): it is gone at once and blocks nothing.
    DeregisterConsumer: Delete "/v1/consumers/{*name}" => 200 json(Deregistered), query ConsumerQuery;
}

/// A consumer's report: the version it uses.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// The consumer's id: 1–256 characters, no control characters.
    #[schemars(extend("pattern" = r"^[^\x00-\x1f\x7f-\x9f]{1,256}$"))]
    pub consumer: String,
    /// The secret's name or ARN.
    #[schemars(length(min = 1, max = 2048))]
    pub secret: String,
    /// The version in use.
    #[schemars(extend("pattern" = VERSION_ID_PATTERN))]
    pub version_id: String,
    /// How long the consumer stays live without another report (60 when left out).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "rotor_core::number::optional"
    )]
    #[schemars(range(min = 1, max = 3600))]
    pub lease_secs: Option<i64>,
}

/// A registration recorded.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Registered {
    /// The secret's name.
    pub name: String,
    /// The consumer.
    pub consumer: String,
    /// The version.
    pub version_id: String,
    /// When the consumer is gone unless it reports again.
    pub expires: Timestamp,
}

/// `DELETE /v1/consumers/NAME?consumer=ID`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsumerQuery {
    /// The consumer that leaves.
    #[schemars(extend("pattern" = r"^[^\x00-\x1f\x7f-\x9f]{1,256}$"))]
    pub consumer: String,
}

/// A consumer gone.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Deregistered {
    /// The secret's name.
    pub name: String,
    /// The consumer.
    pub consumer: String,
}

/// A secret's consumers, by version.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ConsumerList {
    /// The secret's name.
    pub name: String,
    /// The version holding `AWSCURRENT`, if any.
    pub current_version: Option<String>,
    /// Each labeled version, then each unlabeled one a consumer still reports.
    pub versions: Vec<VersionConsumers>,
}

/// A version and who uses it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct VersionConsumers {
    /// The version id.
    pub version_id: String,
    /// Its labels now.
    pub stages: Vec<String>,
    /// The live consumers on it.
    pub live: Vec<Consumer>,
    /// The consumers last seen on it that are gone (lease ran out, left, or a reader
    /// past the secret's `assume_adopted_after`).
    pub gone: Vec<Consumer>,
}

/// One consumer.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Consumer {
    /// Its id (a reader's is `PRINCIPAL@ADDRESS`).
    pub consumer: String,
    /// `registered` (it reports and heartbeats) or `reader` (it read the secret).
    pub kind: String,
    /// The version it uses.
    pub version_id: String,
    /// The principal it acts as.
    pub principal: String,
    /// Where it reports from.
    pub host: Option<String>,
    /// When it was first seen.
    pub first_seen: Timestamp,
    /// When it last reported or read.
    pub last_seen: Timestamp,
    /// Until when it counts as live.
    pub live_until: Timestamp,
    /// The replica it uses the secret through, if it reads a destination.
    pub through: Option<String>,
}
