//! `/v1/sys/...`: principals, policies, tokens, access keys and rotators, each behind
//! the `admin` capability on the matching `sys/...` path (a token may look itself
//! up). Secrets (tokens, secret access keys, webhook signing keys) appear once, in
//! the answer that creates them.

use crate::{Deleted, Sensitive, Timestamp};
use rotor_core::policy::{Policy, Statement};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A principal's or policy's name: 1–128 letters, digits and `-_.@`.
pub const PRINCIPAL_PATTERN: &str = r"^[A-Za-z0-9_.@-]{1,128}$";
/// A rotator's name: 1–64 letters, digits, `-` and `_`.
pub const ROTATOR_PATTERN: &str = r"^[A-Za-z0-9_-]{1,64}$";
/// The longest lifetime a token may be given: ten years.
pub const MAX_TOKEN_TTL_SECS: i64 = 10 * 366 * 24 * 3600;

crate::endpoint! {
    /// Create a principal.
    CreatePrincipal: Post "/v1/sys/principals" => 201 json(NewPrincipal), body NewPrincipal;
    /// Every principal with its policies, token ids and access key ids.
    ListPrincipals: Get "/v1/sys/principals" => 200 json(PrincipalList);
    /// Delete a principal with its tokens and keys.
    DeletePrincipal: Delete "/v1/sys/principals/{name}" => 200 json(Deleted);
    /// Attach a policy to a principal.
    AttachPolicy: Put "/v1/sys/principals/{name}/policies/{policy}" => 200 json(Attachment);
    /// Detach a policy from a principal.
    DetachPolicy: Delete "/v1/sys/principals/{name}/policies/{policy}" => 200 json(Detachment);
    /// Every policy.
    ListPolicies: Get "/v1/sys/policies" => 200 json(PolicyList);
    /// Create or replace a policy.
    PutPolicy: Put "/v1/sys/policies/{name}" => 200 json(Policy), body PolicyBody;
    /// A policy.
    GetPolicy: Get "/v1/sys/policies/{name}" => 200 json(Policy);
    /// Delete a policy.
    DeletePolicy: Delete "/v1/sys/policies/{name}" => 200 json(Deleted);
    /// A new token for a principal.
    CreateToken: Post "/v1/sys/tokens" => 201 json(NewToken), body TokenRequest;
    /// A token's details, by id or by the token; the caller's own when left out.
    LookupToken: Post "/v1/sys/tokens/lookup" => 200 json(Token), optional body TokenRef;
    /// Revoke a token, by id or by the token.
    RevokeToken: Post "/v1/sys/tokens/revoke" => 200 json(Token), body TokenToRevoke;
    /// A new access key pair (for the AWS API) for a principal.
    CreateAccessKey: Post "/v1/sys/access-keys" => 201 json(NewAccessKey), body AccessKeyRequest;
    /// Delete an access key.
    DeleteAccessKey: Delete "/v1/sys/access-keys/{id}" => 200 json(Deleted);
    /// Register a rotator (or replace one, with `replace`).
    CreateRotator: Post "/v1/sys/rotators" => 201 json(Rotator), body NewRotator;
    /// Every rotator.
    ListRotators: Get "/v1/sys/rotators" => 200 json(RotatorList);
    /// A rotator's settings.
    DescribeRotator: Get "/v1/sys/rotators/{name}" => 200 json(Rotator);
    /// Delete a rotator.
    DeleteRotator: Delete "/v1/sys/rotators/{name}" => 200 json(Deleted);
}

/// What a principal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    /// An application.
    #[default]
    Service,
    /// A person.
    Person,
}

impl PrincipalKind {
    /// The kind as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::Service => "service",
            PrincipalKind::Person => "person",
        }
    }
}

/// A new principal.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPrincipal {
    /// Its name.
    #[schemars(extend("pattern" = PRINCIPAL_PATTERN))]
    pub name: String,
    /// `service` when left out.
    #[serde(default)]
    pub kind: PrincipalKind,
}

/// Every principal.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PrincipalList {
    /// By name.
    pub principals: Vec<Principal>,
}

/// A principal.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Principal {
    /// Its name.
    pub name: String,
    /// `service` or `person`.
    pub kind: String,
    /// When it was created.
    pub created: Timestamp,
    /// Its policies.
    pub policies: Vec<String>,
    /// Ids of its live tokens.
    pub tokens: Vec<String>,
    /// Its access key ids.
    pub access_keys: Vec<String>,
}

/// A policy attached.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Attachment {
    /// The principal.
    pub principal: String,
    /// The policy.
    pub attached: String,
}

/// A policy detached.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Detachment {
    /// The principal.
    pub principal: String,
    /// The policy.
    pub detached: String,
}

/// `PUT /v1/sys/policies/NAME`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyBody {
    /// At least one statement.
    #[schemars(length(min = 1))]
    pub statements: Vec<Statement>,
}

/// Every policy.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PolicyList {
    /// By name.
    pub policies: Vec<Policy>,
}

/// `POST /v1/sys/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// Whose token.
    #[schemars(length(min = 1))]
    pub principal: String,
    /// Its lifetime in seconds (up to ten years); no expiry when left out.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "rotor_core::number::optional"
    )]
    #[schemars(range(min = 1, max = MAX_TOKEN_TTL_SECS))]
    pub ttl_secs: Option<i64>,
}

/// A token as shown after its creation (never the token itself).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Token {
    /// Its public id.
    pub id: String,
    /// Its owner.
    pub principal: String,
    /// When it was created.
    pub created: Timestamp,
    /// When it expires.
    pub expires: Option<Timestamp>,
    /// When it was revoked.
    pub revoked: Option<Timestamp>,
}

/// A new token: the only answer that holds it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct NewToken {
    /// Its details.
    #[serde(flatten)]
    pub info: Token,
    /// The token.
    pub token: Sensitive,
}

/// Which token: its id or the token itself.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRef {
    /// A token id or a token; the caller's own when left out (lookup only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Sensitive>,
}

/// Which token to revoke: its id or the token itself.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenToRevoke {
    /// A token id or a token.
    #[schemars(length(min = 1))]
    pub token: Sensitive,
}

/// `POST /v1/sys/access-keys`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessKeyRequest {
    /// Whose key.
    #[schemars(length(min = 1))]
    pub principal: String,
}

/// A new access key pair: the only answer that holds its secret.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct NewAccessKey {
    /// Whose key.
    pub principal: String,
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Sensitive,
}

/// The kinds of rotator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RotatorKind {
    /// Calls a webhook for each step.
    Webhook,
    /// Runs a local command for each step.
    Exec,
    /// Runs an unmodified AWS Lambda rotation function.
    Lambda,
    /// PostgreSQL users.
    Postgres,
    /// MySQL and MariaDB users.
    Mysql,
    /// A random value.
    Random,
}

impl RotatorKind {
    /// The kind as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            RotatorKind::Webhook => "webhook",
            RotatorKind::Exec => "exec",
            RotatorKind::Lambda => "lambda",
            RotatorKind::Postgres => "postgres",
            RotatorKind::Mysql => "mysql",
            RotatorKind::Random => "random",
        }
    }
}

/// A new rotator.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRotator {
    /// Its name.
    #[schemars(extend("pattern" = ROTATOR_PATTERN))]
    pub name: String,
    /// What it rotates with.
    #[serde(rename = "type")]
    pub kind: RotatorKind,
    /// Its settings, by kind (see the README).
    #[serde(default = "empty_object")]
    #[schemars(extend("type" = "object"))]
    pub config: serde_json::Value,
    /// Replace a rotator of the same name.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replace: bool,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

/// A rotator's settings as stored (validated, defaults filled in).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Rotator {
    /// Its name.
    pub name: String,
    /// Its kind.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its settings.
    pub config: serde_json::Value,
    /// When it was registered.
    pub created: Timestamp,
    /// A webhook rotator's signing key: in the answer that creates it, only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<Sensitive>,
}

/// Every rotator.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RotatorList {
    /// By name.
    pub rotators: Vec<Rotator>,
}
