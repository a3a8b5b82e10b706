//! One policy statement against its function's promise: each action it
//! allows, on which resources, and the ARN forms a template can spell them in.

use serde_json::Value;

use super::{Promise, Violations};
use crate::template::{get_att_target, ref_target, sub_template, Template};

/// Lambda creates a VPC function's network interfaces with these; IAM offers
/// no narrower resource for them, so `*` is allowed here and only here.
const NETWORK_INTERFACE_ACTIONS: &[&str] = &[
    "ec2:createnetworkinterface",
    "ec2:describenetworkinterfaces",
    "ec2:describesubnets",
    "ec2:deletenetworkinterface",
    "ec2:assignprivateipaddresses",
    "ec2:unassignprivateipaddresses",
];
const LOG_ACTIONS: &[&str] = &["logs:createlogstream", "logs:putlogevents"];
const S3_READ_ACTIONS: &[&str] = &["s3:getobject", "s3:getobjectversion"];
const S3_WRITE_ACTIONS: &[&str] = &["s3:putobject", "s3:abortmultipartupload", "s3:deleteobject"];
const QUEUE_CONSUMER_ACTIONS: &[&str] = &[
    "sqs:receivemessage",
    "sqs:deletemessage",
    "sqs:changemessagevisibility",
    "sqs:getqueueattributes",
];
const SECRET_ACTIONS: &[&str] = &["secretsmanager:getsecretvalue"];

pub(super) struct Context<'a> {
    pub(super) template: &'a Template,
    pub(super) function: &'a str,
    pub(super) promise: &'a Promise,
    pub(super) log_group: Option<&'a str>,
    pub(super) is_http: bool,
}

impl Context<'_> {
    pub(super) fn check_statement(&self, statement: &Value, found: &mut Violations) {
        if statement["Effect"].as_str() != Some("Allow") {
            return;
        }
        for negated in ["NotAction", "NotResource", "NotPrincipal"] {
            if statement.get(negated).is_some() {
                found.add(
                    self.function,
                    format!("a statement uses {negated}, which grants everything else"),
                );
            }
        }
        let actions = match string_list(&statement["Action"]) {
            Some(actions) => actions,
            None => {
                found.add(
                    self.function,
                    format!(
                        "a statement's Action is not a literal list: {}",
                        statement["Action"]
                    ),
                );
                return;
            }
        };
        let resources = leaves(&statement["Resource"]);
        if resources.is_empty() {
            found.add(self.function, "a statement names no Resource");
        }
        for action in actions {
            self.check_action(&action, &resources, found);
        }
    }

    fn check_action(&self, action: &str, resources: &[&Value], found: &mut Violations) {
        let name = self.function;
        let lower = action.to_ascii_lowercase();
        if lower.contains('*') {
            found.add(
                name,
                format!("allows the wildcard action {action}; list the actions it uses"),
            );
            return;
        }
        if NETWORK_INTERFACE_ACTIONS.contains(&lower.as_str()) {
            return;
        }
        if resources.iter().any(|r| r.as_str() == Some("*")) {
            found.add(
                name,
                format!("allows {action} on \"*\" where a narrower resource exists"),
            );
            return;
        }
        let lower = lower.as_str();
        if LOG_ACTIONS.contains(&lower) {
            for resource in resources {
                let target = get_att_target(resource).map(|(id, _)| id);
                if target.is_none() || target != self.log_group {
                    found.add(
                        name,
                        format!("allows {action} on {resource}, not only its own log group"),
                    );
                }
            }
        } else if S3_READ_ACTIONS.contains(&lower) {
            self.check_s3(action, resources, self.promise.s3_read, found);
        } else if S3_WRITE_ACTIONS.contains(&lower) {
            // An HTTP function writes nothing unless its promise names what
            // (the analytics function: the export and its segments).
            if self.is_http && self.promise.s3_write.is_empty() {
                found.add(name, format!("is an HTTP function and allows {action}: HTTP functions must not write to S3"));
            } else {
                self.check_s3(action, resources, self.promise.s3_write, found);
            }
        } else if lower.starts_with("s3:") {
            let why = if self.is_http {
                " (HTTP functions read S3 at most)"
            } else {
                ""
            };
            found.add(
                name,
                format!("allows {action}, which its promise does not cover{why}"),
            );
        } else if QUEUE_CONSUMER_ACTIONS.contains(&lower) {
            for resource in resources {
                let queue = get_att_target(resource).map(|(id, _)| id);
                if queue.is_none() || queue != self.promise.consumes_queue {
                    found.add(
                        name,
                        format!(
                            "allows {action} on {resource}, not the queue it consumes ({:?})",
                            self.promise.consumes_queue
                        ),
                    );
                }
            }
        } else if SECRET_ACTIONS.contains(&lower) {
            for resource in resources {
                if !self.is_specific_secret(resource) {
                    found.add(name, format!("allows {action} on {resource}: name the secret (a parameter or an ARN without wildcards)"));
                } else if !self.may_read_secret(resource) {
                    found.add(
                        name,
                        format!(
                            "allows {action} on {resource}, not only its own secret ({}) {:?}",
                            self.promise.database_secret, self.promise.provisions_secrets
                        ),
                    );
                }
            }
        } else {
            found.add(
                name,
                format!("allows {action}, which its promise does not cover"),
            );
        }
    }

    fn is_specific_secret(&self, resource: &Value) -> bool {
        if let Some(id) = ref_target(resource) {
            return self.template.root["Parameters"].get(id).is_some()
                || self
                    .template
                    .resource(id)
                    .is_some_and(|r| r.kind == "AWS::SecretsManager::Secret");
        }
        resource
            .as_str()
            .is_some_and(|arn| arn.starts_with("arn:") && !arn.contains('*'))
    }

    /// Its own secret, or one it provisions, by `!Ref` of the parameter.
    fn may_read_secret(&self, resource: &Value) -> bool {
        ref_target(resource).is_some_and(|id| {
            id == self.promise.database_secret || self.promise.provisions_secrets.contains(&id)
        })
    }

    /// Each resource must be `<pipeline bucket>/<prefix>*` for an allowed prefix.
    fn check_s3(
        &self,
        action: &str,
        resources: &[&Value],
        allowed: &[&str],
        found: &mut Violations,
    ) {
        let name = self.function;
        if allowed.is_empty() {
            found.add(
                name,
                format!("allows {action}, but its promise gives it no such S3 access"),
            );
            return;
        }
        let buckets = pipeline_bucket_arns(self.template);
        for resource in resources {
            let Some(arn) = arn_text(resource) else {
                found.add(
                    name,
                    format!("allows {action} on {resource}, which this check cannot read"),
                );
                continue;
            };
            let Some((bucket, key_pattern)) = arn.split_once('/') else {
                found.add(name, format!("allows {action} on the bucket {arn} itself"));
                continue;
            };
            if !buckets.iter().any(|b| b == bucket) {
                found.add(
                    name,
                    format!("allows {action} on {arn}, outside the pipeline's bucket"),
                );
                continue;
            }
            // An entry ending in `/` is a prefix (granted as `<prefix>*`);
            // any other entry is one exact key.
            let in_promise = allowed.iter().any(|entry| {
                if entry.ends_with('/') {
                    key_pattern.strip_suffix('*') == Some(*entry)
                } else {
                    key_pattern == *entry
                }
            });
            if !in_promise {
                found.add(
                    name,
                    format!("allows {action} on {arn}; its promise is {allowed:?} (as <prefix>*)"),
                );
            }
        }
    }
}

/// The ways a template can spell its one bucket's ARN.
fn pipeline_bucket_arns(template: &Template) -> Vec<String> {
    let Ok(bucket) = template.only_resource_of_kind("AWS::S3::Bucket") else {
        return Vec::new();
    };
    let id = bucket.logical_id;
    let mut arns = vec![
        format!("${{{id}.Arn}}"),
        format!("arn:${{AWS::Partition}}:s3:::${{{id}}}"),
        format!("arn:aws:s3:::${{{id}}}"),
    ];
    let name = bucket.properties.get("BucketName");
    if let Some(name) = name.and_then(|n| n.as_str().or_else(|| sub_template(n))) {
        arns.push(format!("arn:${{AWS::Partition}}:s3:::{name}"));
        arns.push(format!("arn:aws:s3:::{name}"));
    }
    arns
}

/// An ARN as text, with intrinsic parts written as `${...}` (as in `!Sub`).
fn arn_text(resource: &Value) -> Option<String> {
    match resource {
        Value::String(text) => Some(text.clone()),
        _ if sub_template(resource).is_some() => sub_template(resource).map(str::to_owned),
        _ if get_att_target(resource).is_some() => {
            get_att_target(resource).map(|(id, attribute)| format!("${{{id}.{attribute}}}"))
        }
        _ if ref_target(resource).is_some() => ref_target(resource).map(|id| format!("${{{id}}}")),
        _ => match resource.get("Fn::Join")?.as_array()?.as_slice() {
            [separator, Value::Array(parts)] => {
                let parts: Option<Vec<String>> = parts.iter().map(arn_text).collect();
                Some(parts?.join(separator.as_str()?))
            }
            _ => None,
        },
    }
}

/// A Resource as its alternatives: lists flattened, both branches of `!If`.
fn leaves(value: &Value) -> Vec<&Value> {
    match value {
        Value::Null => Vec::new(),
        Value::Array(items) => items.iter().flat_map(leaves).collect(),
        Value::Object(object) if object.contains_key("Fn::If") => {
            match object["Fn::If"].as_array().map(Vec::as_slice) {
                Some([_, when_true, when_false]) => leaves(when_true)
                    .into_iter()
                    .chain(leaves(when_false))
                    .collect(),
                _ => vec![value],
            }
        }
        Value::Object(object) if ref_target(value) == Some("AWS::NoValue") && object.len() == 1 => {
            Vec::new()
        }
        other => vec![other],
    }
}

fn string_list(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::String(one) => Some(vec![one.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    }
}
