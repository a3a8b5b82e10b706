//! The template's least-privilege promises, checked: every function runs with
//! a role of its own, written out in the template, whose statements name
//! specific resources and grant only what the function's promise says.
//!
//! What each function may do is the table [`PROMISES`]; a function without a
//! promise, an action no promise covers, a `*` where a narrower resource
//! exists, a policy this check cannot read (an AWS-managed one, SAM's
//! generated roles) are all violations.

use std::fmt;

use serde_json::Value;

use crate::template::{get_att_target, ref_target, sub_template, Resource, Template};

/// What one function may do.
#[derive(Debug, Clone, Copy)]
pub struct Promise {
    /// The function's logical id.
    pub function: &'static str,
    /// Key prefixes it may read (`s3:GetObject`, `s3:GetObjectVersion`).
    pub s3_read: &'static [&'static str],
    /// Key prefixes (ending in `/`) or exact keys it may write (`s3:PutObject`,
    /// `s3:AbortMultipartUpload`).
    pub s3_write: &'static [&'static str],
    /// The queue (logical id) it consumes through its SQS event source.
    pub consumes_queue: Option<&'static str>,
    /// The parameter holding its own database secret: its
    /// `DATABASE_SECRET_ARN` names it, and it may read it.
    pub database_secret: &'static str,
    /// Other functions' secrets it may read (the migrate function makes
    /// their database users); none for everyone else.
    pub provisions_secrets: &'static [&'static str],
}

/// The project's promises (issue 5): ingest reads `incoming/*` and writes
/// `processed/*` and `reports/*`; analytics reads `processed/*` and
/// `reports/*` (to presign downloads) and writes exactly one key, the export
/// it republishes when a sale made it stale; orders and migrate touch no S3.
/// Each function connects to PostgreSQL with a secret of its own (issue 11:
/// its own database role); migrate, the schema owner, also reads the others
/// to create their users.
pub const PROMISES: &[Promise] = &[
    Promise {
        function: "IngestFunction",
        s3_read: &["incoming/"],
        s3_write: &["processed/", "reports/"],
        consumes_queue: Some("IngestQueue"),
        database_secret: "IngestDatabaseSecretArn",
        provisions_secrets: &[],
    },
    Promise {
        function: "AnalyticsFunction",
        s3_read: &["processed/", "reports/"],
        s3_write: &["processed/processed_orders.csv"],
        consumes_queue: None,
        database_secret: "AnalyticsDatabaseSecretArn",
        provisions_secrets: &[],
    },
    Promise {
        function: "OrdersFunction",
        s3_read: &[],
        s3_write: &[],
        consumes_queue: None,
        database_secret: "OrdersDatabaseSecretArn",
        provisions_secrets: &[],
    },
    Promise {
        function: "MigrateFunction",
        s3_read: &[],
        s3_write: &[],
        consumes_queue: None,
        database_secret: "DatabaseSecretArn",
        provisions_secrets: &[
            "IngestDatabaseSecretArn",
            "OrdersDatabaseSecretArn",
            "AnalyticsDatabaseSecretArn",
        ],
    },
];

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
const S3_WRITE_ACTIONS: &[&str] = &["s3:putobject", "s3:abortmultipartupload"];
const QUEUE_CONSUMER_ACTIONS: &[&str] = &[
    "sqs:receivemessage",
    "sqs:deletemessage",
    "sqs:changemessagevisibility",
    "sqs:getqueueattributes",
];
const SECRET_ACTIONS: &[&str] = &["secretsmanager:getsecretvalue"];

const FUNCTION_KINDS: &[&str] = &["AWS::Serverless::Function", "AWS::Lambda::Function"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The logical id of the function (or role) at fault.
    pub subject: String,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.subject, self.message)
    }
}

/// Every broken promise in `template`; empty when all hold.
pub fn check(template: &Template, promises: &[Promise]) -> Vec<Violation> {
    let mut found = Violations::default();
    let functions: Vec<_> = template
        .resources()
        .filter(|r| FUNCTION_KINDS.contains(&r.kind))
        .collect();
    for function in &functions {
        let Some(promise) = promises.iter().find(|p| p.function == function.logical_id) else {
            found.add(
                function.logical_id,
                "has no least-privilege promise: add one to infracheck's PROMISES",
            );
            continue;
        };
        check_function(template, function, promise, &functions, &mut found);
    }
    found.0
}

#[derive(Default)]
struct Violations(Vec<Violation>);

impl Violations {
    fn add(&mut self, subject: &str, message: impl Into<String>) {
        self.0.push(Violation {
            subject: subject.to_owned(),
            message: message.into(),
        });
    }
}

fn check_function(
    template: &Template,
    function: &Resource<'_>,
    promise: &Promise,
    all_functions: &[Resource<'_>],
    found: &mut Violations,
) {
    let name = function.logical_id;
    if function.properties.get("Policies").is_some() {
        found.add(
            name,
            "uses SAM Policies: give it its own AWS::IAM::Role instead",
        );
    }
    let Some(role) = own_role(template, function) else {
        found.add(
            name,
            "has no Role of its own in the template (Role: !GetAtt <AWS::IAM::Role>.Arn); \
             SAM's generated role cannot be checked, and an SQS event adds \
             AWSLambdaSQSQueueExecutionRole, which reaches every queue",
        );
        return;
    };
    let sharing: Vec<_> = all_functions
        .iter()
        .filter(|other| other.logical_id != name)
        .filter(|other| own_role(template, other).map(|r| r.logical_id) == Some(role.logical_id))
        .map(|other| other.logical_id)
        .collect();
    if !sharing.is_empty() {
        found.add(
            name,
            format!("shares its role {} with {sharing:?}", role.logical_id),
        );
    }
    let log_group = template
        .function_property(function, "LoggingConfig")
        .and_then(|config| config.get("LogGroup"))
        .and_then(ref_target);
    if log_group.is_none() {
        found.add(
            name,
            "has no LoggingConfig.LogGroup: its logs would go to a group the template does not \
             own (no retention), and need a wider logs permission",
        );
    }
    check_database_secret_setting(template, function, promise, found);
    let is_http = events(function).any(|(kind, _)| kind == "HttpApi" || kind == "Api");
    for (kind, properties) in events(function) {
        if kind == "SQS" {
            let queue = properties
                .get("Queue")
                .and_then(get_att_target)
                .map(|(id, _)| id);
            if queue.is_none() || queue != promise.consumes_queue {
                found.add(
                    name,
                    format!(
                        "consumes {queue:?}, but its promise is {:?}",
                        promise.consumes_queue
                    ),
                );
            }
        }
    }

    let context = Context {
        template,
        function: name,
        promise,
        log_group,
        is_http,
    };
    for statement in role_statements(template, &role, found, name) {
        context.check_statement(statement, found);
    }
}

/// The function's `DATABASE_SECRET_ARN` must name its own secret. SAM
/// merges `Globals.Function.Environment.Variables` into each function's, so
/// the function's own setting wins, else the global one counts.
fn check_database_secret_setting(
    template: &Template,
    function: &Resource<'_>,
    promise: &Promise,
    found: &mut Violations,
) {
    const VARIABLE: &str = "/Environment/Variables/DATABASE_SECRET_ARN";
    let setting = function.properties.pointer(VARIABLE).or_else(|| {
        template
            .root
            .pointer(&format!("/Globals/Function{VARIABLE}"))
    });
    let named = setting.and_then(ref_target);
    if named != Some(promise.database_secret) {
        found.add(
            function.logical_id,
            format!(
                "its DATABASE_SECRET_ARN is {}, not its own secret !Ref {}: each function \
                 connects as its own database role",
                setting.map_or("unset".to_owned(), Value::to_string),
                promise.database_secret
            ),
        );
    }
}

/// The role a function names with `Role: !GetAtt <id>.Arn`, when `<id>` is an
/// `AWS::IAM::Role` of this template.
fn own_role<'a>(template: &'a Template, function: &Resource<'_>) -> Option<Resource<'a>> {
    let (id, attribute) = get_att_target(function.properties.get("Role")?)?;
    let role = template.resource(id)?;
    (attribute == "Arn" && role.kind == "AWS::IAM::Role").then_some(role)
}

fn events<'a>(function: &Resource<'a>) -> impl Iterator<Item = (&'a str, &'a Value)> {
    function
        .properties
        .get("Events")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(_, event)| {
            (
                event["Type"].as_str().unwrap_or_default(),
                event.get("Properties").unwrap_or(&Value::Null),
            )
        })
}

/// The statements of a role's inline policies and of the template's own
/// managed policies it attaches.
fn role_statements<'a>(
    template: &'a Template,
    role: &Resource<'a>,
    found: &mut Violations,
    function: &str,
) -> Vec<&'a Value> {
    let mut statements = Vec::new();
    for policy in role.properties["Policies"].as_array().into_iter().flatten() {
        statements.extend(document_statements(&policy["PolicyDocument"]));
    }
    for arn in role.properties["ManagedPolicyArns"]
        .as_array()
        .into_iter()
        .flatten()
    {
        match ref_target(arn).and_then(|id| template.resource(id)) {
            Some(policy) if policy.kind == "AWS::IAM::ManagedPolicy" => {
                statements.extend(document_statements(&policy.properties["PolicyDocument"]));
            }
            _ => found.add(
                function,
                format!(
                    "its role {} attaches {arn}, which this check cannot read: write the \
                     statements out in the template",
                    role.logical_id
                ),
            ),
        }
    }
    statements
}

fn document_statements(document: &Value) -> Vec<&Value> {
    match &document["Statement"] {
        Value::Array(statements) => statements.iter().collect(),
        single @ Value::Object(_) => vec![single],
        _ => Vec::new(),
    }
}

struct Context<'a> {
    template: &'a Template,
    function: &'a str,
    promise: &'a Promise,
    log_group: Option<&'a str>,
    is_http: bool,
}

impl Context<'_> {
    fn check_statement(&self, statement: &Value, found: &mut Violations) {
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
            // HTTP functions may write only exact keys their promise names,
            // never a whole prefix.
            let exact_keys: Vec<&str> = self
                .promise
                .s3_write
                .iter()
                .copied()
                .filter(|entry| !entry.ends_with('/'))
                .collect();
            if !self.is_http {
                self.check_s3(action, resources, self.promise.s3_write, found);
            } else if exact_keys.is_empty() {
                found.add(name, format!("is an HTTP function and allows {action}: HTTP functions must not write to S3"));
            } else {
                self.check_s3(action, resources, &exact_keys, found);
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
