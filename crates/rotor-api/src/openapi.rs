//! The OpenAPI 3.1 document of a set of endpoints, generated from their [`Spec`]s:
//! paths and methods from the routes, parameters from the query types, bodies and
//! answers from their JSON schemas, every error as [`ErrorBody`](crate::ErrorBody).

use crate::{Answer, ErrorBody, Spec};
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

/// The statuses an error may have on any endpoint.
const ERROR_STATUSES: [&str; 6] = ["400", "401", "403", "404", "409", "413"];

/// The document describing `specs`, titled with `version`.
pub fn document(specs: &[&Spec], version: &str) -> Value {
    let mut generator = settings().into_generator();
    let error = crate::schema_of::<ErrorBody>(&mut generator);
    let mut paths = Map::new();
    for spec in specs {
        let item = paths
            .entry(spec.openapi_path())
            .or_insert_with(|| json!({}));
        item[spec.method.as_str().to_ascii_lowercase()] = operation(spec, &mut generator);
    }
    let mut schemas = generator.take_definitions(true);
    schemas.insert("Error".into(), error.to_value());
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Rotor native API", "version": version},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas,
            "responses": {"Error": {
                "description": "An error",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }},
        },
        "security": [{"bearer": []}],
    })
}

/// JSON Schema 2020-12, as OpenAPI 3.1 takes it, with definitions among the
/// document's components.
fn settings() -> SchemaSettings {
    SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "/components/schemas".into();
        s.meta_schema = None;
    })
}

fn operation(spec: &Spec, generator: &mut SchemaGenerator) -> Value {
    let mut parameters: Vec<Value> = spec
        .params()
        .map(|name| {
            json!({"name": name, "in": "path", "required": true,
                   "schema": path_parameter(spec.route, name)})
        })
        .collect();
    if let Some(query) = spec.query {
        parameters.extend(query_parameters(query));
    }
    let mut responses = Map::new();
    let success = match spec.answer {
        Answer::Json(schema) => json!({
            "description": "Success",
            "content": {"application/json": {"schema": schema(generator).to_value()}},
        }),
        Answer::Empty => json!({"description": "Done"}),
        Answer::EventStream => json!({
            "description": "A stream of Server-Sent Events",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }),
    };
    responses.insert(spec.status.to_string(), success);
    for status in ERROR_STATUSES {
        responses.insert(
            status.into(),
            json!({"$ref": "#/components/responses/Error"}),
        );
    }
    let mut op = json!({
        "operationId": spec.operation,
        "summary": spec.summary.trim(),
        "parameters": parameters,
        "responses": responses,
    });
    if let Some((schema, optional)) = spec.body {
        op["requestBody"] = json!({
            "required": !optional,
            "content": {"application/json": {"schema": schema(generator).to_value()}},
        });
    }
    op
}

/// The schema of a route's path parameter: the name rule of what it names. A secret
/// is named by its name or ARN, which a lookup answers with 404 when unknown.
fn path_parameter(route: &str, parameter: &str) -> Value {
    use crate::{events, replication, sys};
    let under = |prefix: &str| route.starts_with(prefix);
    let pattern = match parameter {
        "policy" => Some(sys::PRINCIPAL_PATTERN),
        "name" if under("/v1/sys/principals/") || under("/v1/sys/policies/") => {
            Some(sys::PRINCIPAL_PATTERN)
        }
        "name" if under("/v1/sys/rotators/") => Some(sys::ROTATOR_PATTERN),
        "name" if under("/v1/sys/subscriptions/") => Some(events::SUBSCRIPTION_PATTERN),
        "name" if under("/v1/replication/") => Some(replication::RULE_PATTERN),
        _ => None,
    };
    match pattern {
        Some(pattern) => json!({"type": "string", "pattern": pattern}),
        None => json!({"type": "string", "minLength": 1, "maxLength": 2048}),
    }
}

/// A query type's fields as query parameters, their schemas inlined.
fn query_parameters(query: crate::SchemaFn) -> Vec<Value> {
    let mut inline = settings()
        .with(|s| s.inline_subschemas = true)
        .into_generator();
    let schema = query(&mut inline).to_value();
    // The query type itself may have been put among the definitions.
    let schema = match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let name = reference.rsplit('/').next().unwrap_or_default();
            inline
                .definitions()
                .get(name)
                .cloned()
                .unwrap_or(Value::Null)
        }
        None => schema,
    };
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = schema["properties"].as_object() else {
        return Vec::new();
    };
    properties
        .iter()
        .map(|(name, field)| {
            let mut field = field.clone();
            let description = field.as_object_mut().and_then(|f| f.remove("description"));
            let mut p = json!({
                "name": name,
                "in": "query",
                "required": required.contains(&name.as_str()),
                "schema": field,
            });
            if let Some(d) = description {
                p["description"] = d;
            }
            p
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Endpoint;

    #[test]
    fn the_document_describes_each_endpoint_with_its_types() {
        let specs = [
            crate::secrets::CreateSecret::spec(),
            crate::secrets::ListSecrets::spec(),
            crate::secrets::GetSecretValue::spec(),
            crate::replication::RemoveReplicationRule::spec(),
        ];
        let doc = document(&specs, "1.2.3");
        let create = &doc["paths"]["/v1/secrets"]["post"];
        assert_eq!(create["operationId"], "CreateSecret");
        assert!(create["responses"]["201"].is_object());
        let body = &create["requestBody"]["content"]["application/json"]["schema"];
        let name = body["$ref"].as_str().unwrap().rsplit('/').next().unwrap();
        let new_secret = &doc["components"]["schemas"][name];
        assert_eq!(new_secret["required"], json!(["name"]));
        assert_eq!(new_secret["additionalProperties"], json!(false));
        let list = &doc["paths"]["/v1/secrets"]["get"]["parameters"];
        let max = list
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "max_results")
            .unwrap();
        assert_eq!(max["schema"]["maximum"], 1000);
        let get = &doc["paths"]["/v1/secrets/{name}"]["get"]["parameters"][0];
        assert_eq!(get["in"], "path");
        assert!(
            doc["paths"]["/v1/replication/{name}"]["delete"]["responses"]["204"]["content"]
                .is_null()
        );
    }
}
