//! Replication between namespaces (seed 000, Figgy): an owner keeps a secret under
//! its own path (`/dba/...`), and a rule keeps a destination under an application's
//! path (`/app/<service>/...`) in step with it.
//!
//! - `copy`: the destination's value is the source's. A source ending in `/` is a
//!   prefix, mapped path by path onto a destination prefix. A destination version
//!   has the source version's id, so `AWSPREVIOUS` follows `AWSCURRENT` on both.
//! - `merge`: the destination's value is a template over several sources:
//!   `${/path}`, `${/path#field}` (a field of a JSON value), with `|urlencode`.
//!
//! Replicas are written in the same store transaction as the source change that
//! causes them, and record where they came from. A destination is read-only except
//! through its rule. Rules never form a cycle, and no two rules own one path.
//!
//! A rule copies for its owner, the principal that added it, and is authorized as
//! that principal each time it copies: `read` on each concrete source secret and
//! `share` on each concrete destination, with the owner's policies as they are at
//! that moment. A prefix rule therefore never copies a secret its owner is denied,
//! nor one created later that the owner may not read; and a rule whose owner is
//! gone, or lost a right, stops copying what it may no longer copy (a destination
//! that stops this way gets a `replication.denied` event).

use crate::caller::Caller;
use crate::service::SecretService;
use chrono::{DateTime, Utc};
use rotor_core::label::AWSCURRENT;
use rotor_core::policy::Capability;
use rotor_core::value::SecretValue;
use rotor_core::{Error, ErrorKind, Result};
use rotor_store::{Listing, Mutation, RuleRow, SecretRecord};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

/// What a rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The destination holds the source's value.
    Copy,
    /// The destination holds a template rendered over several sources.
    Merge,
}

/// One piece of a merge template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    Text(String),
    Ref {
        path: String,
        field: Option<String>,
        urlencode: bool,
    },
}

/// A parsed merge template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template(pub(crate) Vec<Piece>);

impl Template {
    /// Parses `mongodb://${/dba/u}:${/dba/p|urlencode}@host`. `$$` is a literal `$`.
    pub(crate) fn parse(text: &str) -> Result<Self> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            literal.push_str(&rest[..at]);
            rest = &rest[at..];
            if let Some(after) = rest.strip_prefix("$$") {
                literal.push('$');
                rest = after;
                continue;
            }
            let Some(inner) = rest.strip_prefix("${") else {
                literal.push('$');
                rest = &rest[1..];
                continue;
            };
            let end = inner.find('}').ok_or_else(|| {
                Error::invalid_parameter(format!(
                    "Template: a reference starting at {:?} has no closing }}",
                    rest.chars().take(30).collect::<String>()
                ))
            })?;
            let body = &inner[..end];
            rest = &inner[end + 1..];
            let (target, modifier) = match body.split_once('|') {
                Some((t, m)) => (t, Some(m)),
                None => (body, None),
            };
            let urlencode = match modifier {
                None => false,
                Some("urlencode") => true,
                Some(other) => {
                    return Err(Error::invalid_parameter(format!(
                        "Template: unknown modifier |{other} in ${{{body}}}; the one modifier is |urlencode"
                    )));
                }
            };
            let (path, field) = match target.split_once('#') {
                Some((p, f)) if !f.is_empty() => (p, Some(f.to_string())),
                Some(_) => {
                    return Err(Error::invalid_parameter(format!(
                        "Template: empty field after # in ${{{body}}}"
                    )));
                }
                None => (target, None),
            };
            rotor_core::name::validate_name(path).map_err(|e| {
                Error::invalid_parameter(format!("Template: ${{{body}}}: {}", e.message))
            })?;
            if !literal.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut literal)));
            }
            pieces.push(Piece::Ref {
                path: path.to_string(),
                field,
                urlencode,
            });
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        if !pieces.iter().any(|p| matches!(p, Piece::Ref { .. })) {
            return Err(Error::invalid_parameter(
                "Template: a merge template needs at least one ${/path} reference",
            ));
        }
        Ok(Template(pieces))
    }

    /// The secrets it reads, each once, in order of appearance.
    pub(crate) fn sources(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for p in &self.0 {
            if let Piece::Ref { path, .. } = p
                && !out.contains(path)
            {
                out.push(path.clone());
            }
        }
        out
    }

    /// Renders with `value(path)` giving each source's current text.
    pub(crate) fn render(&self, value: impl Fn(&str) -> Option<String>) -> Result<String> {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Ref {
                    path,
                    field,
                    urlencode,
                } => {
                    let whole = value(path).ok_or_else(|| {
                        Error::invalid_request(format!(
                            "Template: {path} has no current text value"
                        ))
                    })?;
                    let text = match field {
                        None => whole,
                        Some(f) => serde_json::from_str::<serde_json::Value>(&whole)
                            .ok()
                            .and_then(|doc| match doc.get(f) {
                                Some(serde_json::Value::String(s)) => Some(s.clone()),
                                Some(
                                    v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)),
                                ) => Some(v.to_string()),
                                _ => None,
                            })
                            .ok_or_else(|| {
                                Error::invalid_request(format!("Template: {path} has no field {f}"))
                            })?,
                    };
                    if *urlencode {
                        out.extend(percent_encoding::utf8_percent_encode(
                            &text,
                            percent_encoding::NON_ALPHANUMERIC,
                        ));
                    } else {
                        out.push_str(&text);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// A replication rule, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    pub(crate) name: String,
    pub(crate) kind: Kind,
    /// `copy`: a name or a prefix ending in `/`.
    pub(crate) source: String,
    /// `copy`: a name, or a prefix for a prefix source; `merge`: the destination.
    pub(crate) destination: String,
    pub(crate) template: Option<Template>,
    /// The template as written.
    pub(crate) template_text: Option<String>,
    /// The principal that added the rule, which every copy is authorized as.
    pub(crate) owner: String,
}

pub(crate) fn is_prefix(path: &str) -> bool {
    path.ends_with('/')
}

/// Whether two paths (names or prefixes ending in `/`) can name the same secret.
fn overlap(a: &str, b: &str) -> bool {
    match (is_prefix(a), is_prefix(b)) {
        (false, false) => a == b,
        (true, false) => b.starts_with(a),
        (false, true) => a.starts_with(b),
        (true, true) => a.starts_with(b) || b.starts_with(a),
    }
}

impl Rule {
    /// Builds and checks a rule.
    pub(crate) fn new(
        name: &str,
        kind: Kind,
        source: Option<&str>,
        destination: &str,
        template: Option<&str>,
    ) -> Result<Rule> {
        rotor_core::name::validate_identifier("rule", name, 128, "-_.")?;
        let check = |what: &str, path: &str| {
            let bare = path.strip_suffix('/').unwrap_or(path);
            rotor_core::name::validate_name(bare)
                .map_err(|e| Error::invalid_parameter(format!("{what}: {}", e.message)))
        };
        check("destination", destination)?;
        let rule = match kind {
            Kind::Copy => {
                let source =
                    source.ok_or_else(|| Error::invalid_parameter("A copy rule needs a source"))?;
                check("source", source)?;
                if template.is_some() {
                    return Err(Error::invalid_parameter("Only a merge rule has a template"));
                }
                if is_prefix(source) != is_prefix(destination) {
                    return Err(Error::invalid_parameter(
                        "A prefix source (ending in /) maps onto a prefix destination, and a name onto a name",
                    ));
                }
                Rule {
                    name: name.into(),
                    kind,
                    source: source.into(),
                    destination: destination.into(),
                    template: None,
                    template_text: None,
                    owner: String::new(),
                }
            }
            Kind::Merge => {
                if is_prefix(destination) {
                    return Err(Error::invalid_parameter(
                        "A merge rule's destination is one secret, not a prefix",
                    ));
                }
                let text = template
                    .ok_or_else(|| Error::invalid_parameter("A merge rule needs a template"))?;
                Rule {
                    name: name.into(),
                    kind,
                    source: String::new(),
                    destination: destination.into(),
                    template: Some(Template::parse(text)?),
                    template_text: Some(text.to_string()),
                    owner: String::new(),
                }
            }
        };
        for s in rule.sources() {
            if overlap(&s, &rule.destination) {
                return Err(Error::invalid_parameter(format!(
                    "Rule {}: the destination {} overlaps its own source {s}",
                    rule.name, rule.destination
                )));
            }
        }
        Ok(rule)
    }

    /// The rule as stored.
    pub(crate) fn from_row(row: &rotor_store::RuleRow) -> Result<Rule> {
        let kind = match row.kind.as_str() {
            "copy" => Kind::Copy,
            "merge" => Kind::Merge,
            other => return Err(Error::internal(format!("stored rule kind {other:?}"))),
        };
        let source = (kind == Kind::Copy).then_some(row.source.as_str());
        let mut rule = Rule::new(
            &row.name,
            kind,
            source,
            &row.destination,
            row.template.as_deref(),
        )?;
        rule.owner = row.created_by.clone();
        Ok(rule)
    }

    /// Source paths: the copy source (a name or a prefix), or the template's names.
    pub(crate) fn sources(&self) -> Vec<String> {
        match &self.template {
            Some(t) => t.sources(),
            None => vec![self.source.clone()],
        }
    }

    /// The source secret that destination `name` is copied from (copy rules).
    pub(crate) fn source_of(&self, name: &str) -> Option<String> {
        match self.kind {
            Kind::Copy if is_prefix(&self.source) => name
                .strip_prefix(self.destination.as_str())
                .filter(|rest| !rest.is_empty())
                .map(|rest| format!("{}{rest}", self.source)),
            Kind::Copy => (self.destination == name).then(|| self.source.clone()),
            Kind::Merge => None,
        }
    }

    /// The destination that source secret `name` maps to, if this rule reads it.
    pub(crate) fn destination_of(&self, name: &str) -> Option<String> {
        match self.kind {
            Kind::Copy if is_prefix(&self.source) => name
                .strip_prefix(self.source.as_str())
                .filter(|rest| !rest.is_empty())
                .map(|rest| format!("{}{rest}", self.destination)),
            Kind::Copy => (self.source == name).then(|| self.destination.clone()),
            Kind::Merge => self
                .sources()
                .iter()
                .any(|s| s == name)
                .then(|| self.destination.clone()),
        }
    }
}

/// Refuses `rule` when its destination overlaps another rule's, or when adding it
/// would close a cycle (a destination that, through rules, feeds its own source).
pub(crate) fn check_new(rule: &Rule, existing: &[Rule]) -> Result<()> {
    if let Some(other) = existing.iter().find(|r| r.name == rule.name) {
        return Err(Error::exists(format!(
            "A replication rule named {} already exists",
            other.name
        )));
    }
    if let Some(other) = existing
        .iter()
        .find(|r| overlap(&r.destination, &rule.destination))
    {
        return Err(Error::invalid_request(format!(
            "Rule {} would write to {}, which rule {} owns ({})",
            rule.name, rule.destination, other.name, other.destination
        )));
    }
    // Walk from the new rule's destination through rules whose sources it feeds;
    // reaching one of the new rule's sources closes a cycle.
    let mut frontier = vec![rule.destination.clone()];
    let mut seen: Vec<String> = Vec::new();
    while let Some(path) = frontier.pop() {
        if rule.sources().iter().any(|s| overlap(s, &path)) {
            return Err(Error::invalid_request(format!(
                "Rule {} would form a cycle: {} feeds back into its source",
                rule.name, rule.destination
            )));
        }
        if seen.contains(&path) {
            continue;
        }
        seen.push(path.clone());
        for r in existing {
            if r.sources().iter().any(|s| overlap(s, &path)) {
                frontier.push(r.destination.clone());
            }
        }
    }
    Ok(())
}

/// Refuses a direct write to a destination.
pub(crate) fn refuse_replica(name: &str, rule: Option<&str>) -> Result<()> {
    match rule {
        Some(rule) => Err(Error::invalid_request(format!(
            "{name} is a replica kept by replication rule {rule}: change its source instead"
        ))),
        None => Ok(()),
    }
}

/// The writes that carry a source change to its destinations, and the
/// destinations they touch.
#[derive(Debug, Default)]
pub(crate) struct Replicas {
    pub(crate) mutations: Vec<Mutation>,
    pub(crate) touched: Vec<String>,
}

/// A rule as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleInfo {
    /// Name.
    pub name: String,
    /// `copy` or `merge`.
    pub kind: Kind,
    /// `copy`: the source name or prefix.
    pub source: Option<String>,
    /// The destination name (or prefix).
    pub destination: String,
    /// `merge`: the template.
    pub template: Option<String>,
    /// The secrets it reads.
    pub sources: Vec<String>,
    /// When it was added.
    pub created: DateTime<Utc>,
    /// Who added it.
    pub created_by: String,
}

/// A new rule.
#[derive(Debug, Clone, Deserialize)]
pub struct RuleSpec {
    /// Name.
    pub name: String,
    /// `copy` or `merge`.
    pub kind: Kind,
    /// `copy`: a secret name, or a prefix ending in `/`.
    pub source: Option<String>,
    /// `copy`: a name, or a prefix for a prefix source; `merge`: one secret.
    pub destination: String,
    /// `merge`: the template.
    pub template: Option<String>,
}

/// A destination brought back in step by a sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Repair {
    /// The rule.
    pub rule: String,
    /// The destination repaired.
    pub destination: String,
    /// The source version it now holds as `AWSCURRENT` (a merge: the new version).
    pub version: String,
}

fn text_of(value: &SecretValue) -> Option<String> {
    match value {
        SecretValue::String(s) => Some(s.expose_secret().to_string()),
        SecretValue::Binary(_) => None,
    }
}

fn system() -> Caller {
    Caller::system("rotor-replication")
}

fn current_of(record: &SecretRecord) -> Option<&str> {
    record
        .versions
        .iter()
        .find(|v| v.labels.iter().any(|l| l == AWSCURRENT))
        .map(|v| v.id.as_str())
}

/// Whether `caller` has `capability` on `path`; on a prefix, on every name under it
/// (compared as languages of globs: `/app/mp/*` does not cover `/app/mp/`).
pub(crate) fn may_all(caller: &Caller, capability: Capability, path: &str) -> bool {
    if is_prefix(path) {
        caller.covers(capability, &format!("{path}**"))
    } else {
        caller.may(capability, path)
    }
}

/// `Ok` when [`may_all`], else the refusal naming what is missing.
pub(crate) fn authorize_all(caller: &Caller, capability: Capability, path: &str) -> Result<()> {
    if is_prefix(path) {
        if may_all(caller, capability, path) {
            return Ok(());
        }
        return Err(Error::new(
            ErrorKind::AccessDenied,
            format!(
                "{} is not allowed to {capability} every secret under {path}",
                caller.name()
            ),
        ));
    }
    caller.authorize(capability, path)
}

/// What a repair of one destination writes, planned.
pub(crate) struct PlannedRepair {
    /// The destination.
    pub(crate) destination: String,
    /// The writes, to apply together.
    pub(crate) mutations: Vec<Mutation>,
    /// The version the destination holds as `AWSCURRENT` after them; none when they
    /// only mark it as the rule's (it already holds the value).
    pub(crate) version: Option<String>,
}

/// Plans replication: reads through the service it is given and answers with the
/// [`Mutation`]s to write. It writes nothing and keeps no cache; the service applies
/// what it plans, and owns every cache that the writes invalidate.
pub(crate) struct Planner<'a> {
    service: &'a SecretService,
}

impl<'a> Planner<'a> {
    pub(crate) fn new(service: &'a SecretService) -> Self {
        Planner { service }
    }

    /// The replicas of source `name`'s version `version_id`, whose value is `value`,
    /// becoming `AWSCURRENT`.
    pub(crate) async fn replicas(
        &self,
        name: &str,
        arn: &str,
        version_id: &str,
        value: &SecretValue,
    ) -> Result<Replicas> {
        let rules = self.service.rule_set().await?;
        let mut out = Replicas::default();
        for rule in rules.iter() {
            let Some(destination) = rule.destination_of(name) else {
                continue;
            };
            self.replicate_into(rule, &destination, name, arn, version_id, value, &mut out)
                .await?;
        }
        Ok(out)
    }

    /// The replicas of an existing version of a source becoming `AWSCURRENT`.
    pub(crate) async fn replicas_of_version(
        &self,
        record: &SecretRecord,
        version_id: &str,
    ) -> Result<Replicas> {
        let rules = self.service.rule_set().await?;
        if !rules
            .iter()
            .any(|r| r.destination_of(&record.meta.name).is_some())
        {
            return Ok(Replicas::default());
        }
        let value = self
            .service
            .get_value(&system(), &record.meta.arn, Some(version_id), None)
            .await?
            .value;
        self.replicas(&record.meta.name, &record.meta.arn, version_id, &value)
            .await
    }

    /// Why `rule`'s owner may not copy into `destination` now, if it may not: it must
    /// exist, read every source the copy reads, and share the destination.
    fn copy_refused(&self, rule: &Rule, destination: &str) -> Option<&'static str> {
        let Some(owner) = self.service.principal(&rule.owner) else {
            return Some("the rule's owner no longer exists");
        };
        let sources = match &rule.template {
            Some(t) => t.sources(),
            None => rule
                .source_of(destination)
                .map(|s| vec![s])
                .unwrap_or_default(),
        };
        if sources.is_empty() || !sources.iter().all(|s| owner.may(Capability::Read, s)) {
            return Some("the rule's owner may not read the source");
        }
        if !owner.may(Capability::Share, destination) {
            return Some("the rule's owner may not share the destination");
        }
        None
    }

    #[allow(clippy::too_many_arguments)]
    async fn replicate_into(
        &self,
        rule: &Rule,
        destination: &str,
        source: &str,
        source_arn: &str,
        version_id: &str,
        value: &SecretValue,
        out: &mut Replicas,
    ) -> Result<()> {
        if let Some(why) = self.copy_refused(rule, destination) {
            // Only a destination the rule already keeps is told about: naming one it
            // never made would tell the owner what lies under a source it may not read.
            let kept = matches!(self.service.resolve(destination).await,
                Ok(d) if d.meta.replica_of.as_deref() == Some(rule.name.as_str()));
            tracing::info!(rule = %rule.name, %destination, reason = why, "replication refused");
            if kept {
                out.mutations.push(Mutation::AppendEvent {
                    kind: "replication.denied".into(),
                    secret: Some(destination.to_string()),
                    detail: serde_json::json!({"rule": rule.name, "reason": why}).to_string(),
                });
            }
            return Ok(());
        }
        // The destination's value and version id, and where they came from.
        let (value, id, from) = match &rule.template {
            None => (
                value.clone(),
                version_id.to_string(),
                serde_json::json!([{"secret": source, "version": version_id}]),
            ),
            Some(template) => {
                let mut texts = std::collections::HashMap::new();
                let mut from = Vec::new();
                for path in template.sources() {
                    if path == source {
                        texts.insert(path.clone(), text_of(value));
                        from.push(serde_json::json!({"secret": path, "version": version_id}));
                        continue;
                    }
                    match self
                        .service
                        .get_value(&system(), &path, None, Some(AWSCURRENT))
                        .await
                    {
                        Ok(v) => {
                            from.push(serde_json::json!({"secret": path, "version": v.version_id}));
                            texts.insert(path.clone(), text_of(&v.value));
                        }
                        Err(e) if e.kind == ErrorKind::ResourceNotFound => {
                            tracing::info!(rule = %rule.name, missing = %path, "merge waits for all its sources");
                            return Ok(());
                        }
                        Err(e) => return Err(e),
                    }
                }
                let text = template.render(|p| texts.get(p).cloned().flatten())?;
                (
                    SecretValue::string(text)?,
                    uuid::Uuid::new_v4().to_string(),
                    serde_json::Value::Array(from),
                )
            }
        };
        let from = from.to_string();
        match self.service.resolve(destination).await {
            Ok(dest) => {
                if dest.meta.is_deleted() {
                    tracing::warn!(rule = %rule.name, %destination, "destination is scheduled for deletion; not replicated");
                    return Ok(());
                }
                if dest.meta.replica_of.as_deref() != Some(rule.name.as_str()) {
                    out.mutations.push(Mutation::MarkReplica {
                        name: destination.to_string(),
                        rule: Some(rule.name.clone()),
                    });
                }
                let current = current_of(&dest).map(str::to_string);
                if current.as_deref() == Some(id.as_str()) {
                    return Ok(());
                }
                let exists = self
                    .service
                    .store()
                    .load_version(dest.meta.id, &id)
                    .await?
                    .is_some();
                if exists {
                    out.mutations.push(Mutation::MoveLabel {
                        secret: dest.meta.id,
                        label: AWSCURRENT.to_string(),
                        move_to: Some(id),
                        remove_from: current,
                    });
                } else {
                    let mut version = self.service.new_version(
                        &dest.meta.arn,
                        Some(id),
                        &value,
                        vec![AWSCURRENT.to_string()],
                    )?;
                    version.source = Some(from);
                    out.mutations.push(Mutation::PutVersion {
                        secret: dest.meta.id,
                        version,
                    });
                }
            }
            Err(e) if e.kind == ErrorKind::ResourceNotFound => {
                let region = source_arn.split(':').nth(3).unwrap_or("us-east-1");
                let suffix = rotor_core::name::arn_suffix(rotor_crypto::random::bytes::<6>());
                let arn =
                    rotor_core::name::arn(region, self.service.account_id(), destination, &suffix);
                let mut version = self.service.new_version(
                    &arn,
                    Some(id),
                    &value,
                    vec![AWSCURRENT.to_string()],
                )?;
                version.source = Some(from);
                out.mutations.push(Mutation::CreateSecret {
                    name: destination.to_string(),
                    arn,
                    // Not the source's name: a reader of the replica may not see it.
                    description: Some(format!("Replica kept by replication rule {}", rule.name)),
                    kms_key_id: None,
                    tags: Vec::new(),
                    first_version: Some(version),
                });
                out.mutations.push(Mutation::MarkReplica {
                    name: destination.to_string(),
                    rule: Some(rule.name.clone()),
                });
            }
            Err(e) => return Err(e),
        }
        out.touched.push(destination.to_string());
        Ok(())
    }

    /// The mark a source's deletion (or restore) leaves on its existing destinations.
    pub(crate) async fn source_marks(&self, name: &str, deleted: bool) -> Result<Option<Mutation>> {
        let rules = self.service.rule_set().await?;
        let mut names = Vec::new();
        for rule in rules.iter() {
            if let Some(d) = rule.destination_of(name)
                && self.service.resolve(&d).await.is_ok()
            {
                names.push(d);
            }
        }
        Ok((!names.is_empty()).then_some(Mutation::MarkSourceDeleted { names, deleted }))
    }

    /// What repairing one rule's destinations writes, destination by destination.
    pub(crate) async fn repairs(&self, rule: &Rule) -> Result<Vec<PlannedRepair>> {
        let sources: Vec<String> = match rule.kind {
            Kind::Copy if is_prefix(&rule.source) => self
                .service
                .store()
                .list(&Listing::live().under(&rule.source))
                .await?
                .into_iter()
                .map(|s| s.meta.name)
                .collect(),
            Kind::Copy => vec![rule.source.clone()],
            // A merge re-renders from its first source's current version.
            Kind::Merge => rule.sources().into_iter().take(1).collect(),
        };
        let mut planned = Vec::new();
        for source in sources {
            let Ok(record) = self.service.resolve(&source).await else {
                continue;
            };
            let Some(current) = current_of(&record).map(str::to_string) else {
                continue;
            };
            if record.meta.is_deleted() {
                continue;
            }
            let value = self
                .service
                .get_value(&system(), &record.meta.arn, Some(&current), None)
                .await?
                .value;
            let mut replicas = Replicas::default();
            let Some(destination) = rule.destination_of(&source) else {
                continue;
            };
            if rule.kind == Kind::Merge && self.merge_in_step(rule, &destination).await? {
                continue;
            }
            self.replicate_into(
                rule,
                &destination,
                &source,
                &record.meta.arn,
                &current,
                &value,
                &mut replicas,
            )
            .await?;
            if replicas
                .mutations
                .iter()
                .all(|m| matches!(m, Mutation::MarkReplica { .. }))
            {
                // Only ownership marks: the destination already holds the value.
                if !replicas.mutations.is_empty() {
                    planned.push(PlannedRepair {
                        destination,
                        mutations: replicas.mutations,
                        version: None,
                    });
                }
                continue;
            }
            let version = replicas
                .mutations
                .iter()
                .find_map(|m| match m {
                    Mutation::PutVersion { version, .. } => Some(version.id.clone()),
                    Mutation::CreateSecret {
                        first_version: Some(v),
                        ..
                    } => Some(v.id.clone()),
                    Mutation::MoveLabel {
                        move_to: Some(to), ..
                    } => Some(to.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            let mut mutations = replicas.mutations;
            mutations.push(Mutation::AppendEvent {
                kind: "replication.repaired".into(),
                secret: Some(destination.clone()),
                detail: serde_json::json!({"rule": rule.name, "version": version}).to_string(),
            });
            planned.push(PlannedRepair {
                destination,
                mutations,
                version: Some(version),
            });
        }
        Ok(planned)
    }

    /// Whether a merge destination's current version was rendered from every
    /// source's current version.
    async fn merge_in_step(&self, rule: &Rule, destination: &str) -> Result<bool> {
        let Ok(dest) = self.service.resolve(destination).await else {
            return Ok(false);
        };
        let versions = self.service.store().list_versions(dest.meta.id).await?;
        let Some(source) = versions
            .iter()
            .find(|v| v.labels.iter().any(|l| l == AWSCURRENT))
            .and_then(|v| v.source.clone())
        else {
            return Ok(false);
        };
        let recorded: Vec<serde_json::Value> = serde_json::from_str(&source).unwrap_or_default();
        for path in rule.sources() {
            let Ok(record) = self.service.resolve(&path).await else {
                return Ok(false);
            };
            let current = current_of(&record);
            let listed = recorded.iter().any(|r| {
                r["secret"].as_str() == Some(path.as_str()) && r["version"].as_str() == current
            });
            if !listed {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// A rule as the API shows it, from the rule and its stored row.
pub(crate) fn info(rule: &Rule, row: &RuleRow) -> RuleInfo {
    RuleInfo {
        name: rule.name.clone(),
        kind: rule.kind,
        source: (rule.kind == Kind::Copy).then(|| rule.source.clone()),
        destination: rule.destination.clone(),
        template: rule.template_text.clone(),
        sources: rule.sources(),
        created: row.created,
        created_by: row.created_by.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(name: &str, s: &str, d: &str) -> Rule {
        Rule::new(name, Kind::Copy, Some(s), d, None).unwrap()
    }

    #[test]
    fn templates_parse_and_render() {
        let t =
            Template::parse("mongodb://${/dba/u}:${/dba/p|urlencode}@h/${/dba/j#db}$$").unwrap();
        assert_eq!(t.sources(), vec!["/dba/u", "/dba/p", "/dba/j"]);
        let out = t
            .render(|p| match p {
                "/dba/u" => Some("app".into()),
                "/dba/p" => Some("p@ss:w/rd".into()),
                "/dba/j" => Some(r#"{"db":"orders"}"#.into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(out, "mongodb://app:p%40ss%3Aw%2Frd@h/orders$");
    }

    #[test]
    fn bad_templates_point_at_the_problem() {
        for (text, fragment) in [
            ("x ${/a", "no closing"),
            ("${/a|upper}", "unknown modifier |upper"),
            ("${/a#}", "empty field"),
            ("plain", "at least one"),
            ("${}", "${}"),
        ] {
            let e = Template::parse(text).unwrap_err();
            assert!(e.message.contains(fragment), "{text}: {}", e.message);
        }
        // Found by fuzzing (issue 11): the message cut the text at byte 30, inside
        // a multi-byte character, and panicked.
        let e = Template::parse("${éééééééééééééééééééééééééééééé").unwrap_err();
        assert!(e.message.contains("no closing"), "{}", e.message);
        let t = Template::parse("${/a#missing}").unwrap();
        let e = t.render(|_| Some("{}".into())).unwrap_err();
        assert!(e.message.contains("no field missing"), "{}", e.message);
    }

    #[test]
    fn prefixes_map_path_by_path() {
        let r = copy("mp", "/dba/mp/mongo/", "/app/mp/replicated/mongo/");
        assert_eq!(
            r.destination_of("/dba/mp/mongo/user").as_deref(),
            Some("/app/mp/replicated/mongo/user")
        );
        assert_eq!(r.destination_of("/dba/mp/mongo/"), None);
        assert_eq!(r.destination_of("/dba/other"), None);
        assert!(Rule::new("x", Kind::Copy, Some("/a/"), "/b", None).is_err());
    }

    #[test]
    fn cycles_and_shared_destinations_are_refused() {
        let a = copy("a", "/x", "/y");
        let b = copy("b", "/y", "/z");
        check_new(&b, std::slice::from_ref(&a)).unwrap();
        let back = copy("c", "/z", "/x");
        let e = check_new(&back, &[a.clone(), b.clone()]).unwrap_err();
        assert!(e.message.contains("cycle"), "{}", e.message);
        let prefix_back = copy("d", "/z/", "/w/");
        check_new(&prefix_back, &[a.clone(), b.clone()]).unwrap();
        let clash = copy("e", "/q", "/y");
        let e = check_new(&clash, std::slice::from_ref(&a)).unwrap_err();
        assert!(e.message.contains("owns"), "{}", e.message);
        let own = Rule::new("f", Kind::Copy, Some("/p/"), "/p/q/", None).unwrap_err();
        assert!(
            own.message.contains("overlaps its own source"),
            "{}",
            own.message
        );
        let merge = Rule::new("m", Kind::Merge, None, "/x", Some("${/y}")).unwrap();
        let e = check_new(&merge, &[a]).unwrap_err();
        assert!(e.message.contains("cycle"), "{}", e.message);
    }
}
