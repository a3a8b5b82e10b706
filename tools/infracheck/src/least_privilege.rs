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

mod statement;

use statement::Context;

use crate::template::{get_att_target, ref_target, Resource, Template};

/// What one function may do.
#[derive(Debug, Clone, Copy)]
pub struct Promise {
    /// The function's logical id.
    pub function: &'static str,
    /// Key prefixes it may read (`s3:GetObject`, `s3:GetObjectVersion`).
    pub s3_read: &'static [&'static str],
    /// Key prefixes (ending in `/`) or exact keys it may write (`s3:PutObject`,
    /// `s3:AbortMultipartUpload`, `s3:DeleteObject`).
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

/// The project's promises (issue 5): ingest reads `incoming/*` and its own
/// `processed/*` (the export's segments, copied into the file on S3's side,
/// and the file's ETag), and writes `processed/*` and `reports/*`; analytics
/// reads `processed/*` and `reports/*` (to presign downloads) and writes
/// the export it republishes when a sale made it stale, with its segments
/// (issue 14), and signs the dashboard's uploads to `incoming/*.csv`
/// (issue 15); orders and migrate touch no S3.
/// Each function connects to PostgreSQL with a secret of its own (issue 11:
/// its own database role); migrate, the schema owner, also reads the others
/// to create their users.
pub const PROMISES: &[Promise] = &[
    Promise {
        function: "IngestFunction",
        s3_read: &["incoming/", "processed/"],
        s3_write: &["processed/", "reports/"],
        consumes_queue: Some("IngestQueue"),
        database_secret: "IngestDatabaseSecretArn",
        provisions_secrets: &[],
    },
    Promise {
        function: "AnalyticsFunction",
        s3_read: &["processed/", "reports/"],
        s3_write: &[
            "processed/processed_orders.csv",
            "processed/segments/",
            "incoming/",
        ],
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
