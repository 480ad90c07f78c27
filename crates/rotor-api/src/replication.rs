//! `/v1/replication`: rules that copy secrets from an owner's namespace into an
//! application's (or merge several into one), and the sync that repairs
//! destinations that drifted.

use crate::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A rule's name: 1–128 letters, digits, `-`, `_` and `.`.
pub const RULE_PATTERN: &str = r"^[A-Za-z0-9_.-]{1,128}$";

crate::endpoint! {
    /// Add a rule; its destinations are brought in step at once.
    AddReplicationRule: Post "/v1/replication" => 201 json(RuleAdded), body NewRule;
    /// Every rule.
    ListReplicationRules: Get "/v1/replication" => 200 json(RuleList);
    /// A rule.
    DescribeReplicationRule: Get "/v1/replication/{name}" => 200 json(Rule);
    /// Remove a rule (its destinations stay as they are).
    RemoveReplicationRule: Delete "/v1/replication/{name}" => 204 empty;
    /// Repair every destination that drifted from its sources.
    SyncReplicas: Post "/v1/replication-sync" => 200 json(Repairs);
}

/// What a rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    /// The destination holds the source's value.
    Copy,
    /// The destination holds a template rendered over several sources.
    Merge,
}

impl RuleKind {
    /// The kind as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Copy => "copy",
            RuleKind::Merge => "merge",
        }
    }
}

/// A new rule.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRule {
    /// Its name.
    #[schemars(extend("pattern" = RULE_PATTERN))]
    pub name: String,
    /// `copy` or `merge`.
    pub kind: RuleKind,
    /// `copy`: a secret name, or a prefix ending in `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// `copy`: a name, or a prefix for a prefix source; `merge`: one secret.
    pub destination: String,
    /// `merge`: the template, with `{vault://...}` references to its sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

/// A rule.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Rule {
    /// Its name.
    pub name: String,
    /// `copy` or `merge`.
    pub kind: RuleKind,
    /// `copy`: the source name or prefix.
    pub source: Option<String>,
    /// The destination name or prefix.
    pub destination: String,
    /// `merge`: the template.
    pub template: Option<String>,
    /// The secrets it reads.
    pub sources: Vec<String>,
    /// When it was added.
    pub created: Timestamp,
    /// Who added it (whose rights it copies with).
    pub created_by: String,
}

/// A rule added, and the destinations it brought in step.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RuleAdded {
    /// The rule.
    pub rule: Rule,
    /// What it wrote.
    pub repairs: Vec<Repair>,
}

/// Every rule.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RuleList {
    /// By name.
    pub rules: Vec<Rule>,
}

/// Destinations brought back in step.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Repairs {
    /// One per destination written.
    pub repairs: Vec<Repair>,
}

/// A destination brought in step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Repair {
    /// The rule.
    pub rule: String,
    /// The destination.
    pub destination: String,
    /// The version it now holds as `AWSCURRENT`.
    pub version: String,
}
