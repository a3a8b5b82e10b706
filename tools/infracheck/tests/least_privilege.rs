//! The least-privilege promises hold on infra/template.yaml, and the check
//! catches each way of breaking them (small inline templates).

use infracheck::least_privilege::{check, Promise, Violation, PROMISES};
use infracheck::template::Template;

#[test]
fn the_project_template_keeps_every_promise() {
    let template = Template::load_project(env!("CARGO_MANIFEST_DIR")).expect("infra/template.yaml");
    let violations = check(&template, PROMISES);
    assert!(violations.is_empty(), "{violations:#?}");
    // Every function of the template has a promise, and every promise a function.
    for promise in PROMISES {
        assert!(
            template.resource(promise.function).is_some(),
            "{} is not in the template",
            promise.function
        );
    }
}

const PROMISES_UNDER_TEST: &[Promise] = &[
    Promise {
        function: "Worker",
        s3_read: &["incoming/"],
        s3_write: &["processed/"],
        consumes_queue: Some("Queue"),
        database_secret: "SecretArn",
        provisions_secrets: &[],
    },
    Promise {
        function: "Api",
        s3_read: &["processed/"],
        s3_write: &[],
        consumes_queue: None,
        database_secret: "ApiSecretArn",
        provisions_secrets: &[],
    },
];

/// A template that keeps its promises; each test breaks one thing in it.
const GOOD: &str = r#"
Parameters:
  SecretArn:
    Type: String
  ApiSecretArn:
    Type: String
Globals:
  Function:
    Environment:
      Variables:
        DATABASE_SECRET_ARN: !Ref SecretArn
Resources:
  Bucket:
    Type: AWS::S3::Bucket
    Properties:
      BucketName: !Sub "${AWS::StackName}-data"
  Queue:
    Type: AWS::SQS::Queue
  OtherQueue:
    Type: AWS::SQS::Queue
  WorkerLogs:
    Type: AWS::Logs::LogGroup
  ApiLogs:
    Type: AWS::Logs::LogGroup
  Network:
    Type: AWS::IAM::ManagedPolicy
    Properties:
      PolicyDocument:
        Statement:
          - Effect: Allow
            Action: [ec2:CreateNetworkInterface, ec2:DescribeNetworkInterfaces, ec2:DeleteNetworkInterface]
            Resource: "*"
  WorkerRole:
    Type: AWS::IAM::Role
    Properties:
      ManagedPolicyArns: [!Ref Network]
      Policies:
        - PolicyName: worker
          PolicyDocument:
            Statement:
              - Effect: Allow
                Action: [logs:CreateLogStream, logs:PutLogEvents]
                Resource: !GetAtt WorkerLogs.Arn
              - Effect: Allow
                Action: s3:GetObject
                Resource: !Sub "arn:${AWS::Partition}:s3:::${AWS::StackName}-data/incoming/*"
              - Effect: Allow
                Action: [s3:PutObject]
                Resource: [!Sub "${Bucket.Arn}/processed/*"]
              - Effect: Allow
                Action: [sqs:ReceiveMessage, sqs:DeleteMessage, sqs:GetQueueAttributes]
                Resource: !GetAtt Queue.Arn
              - Effect: Allow
                Action: secretsmanager:GetSecretValue
                Resource: !Ref SecretArn
              - Effect: Deny
                Action: "*"
                Resource: "*"
  ApiRole:
    Type: AWS::IAM::Role
    Properties:
      Policies:
        - PolicyName: api
          PolicyDocument:
            Statement:
              - Effect: Allow
                Action: [logs:CreateLogStream, logs:PutLogEvents]
                Resource: !GetAtt ApiLogs.Arn
              - Effect: Allow
                Action: s3:GetObject
                Resource: !Sub "arn:${AWS::Partition}:s3:::${AWS::StackName}-data/processed/*"
              - Effect: Allow
                Action: secretsmanager:GetSecretValue
                Resource: !If [HasOther, !Ref ApiSecretArn, !Ref ApiSecretArn]
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      Role: !GetAtt WorkerRole.Arn
      LoggingConfig:
        LogGroup: !Ref WorkerLogs
      Events:
        Work:
          Type: SQS
          Properties:
            Queue: !GetAtt Queue.Arn
  Api:
    Type: AWS::Serverless::Function
    Properties:
      Role: !GetAtt ApiRole.Arn
      Environment:
        Variables:
          DATABASE_SECRET_ARN: !Ref ApiSecretArn
      LoggingConfig:
        LogGroup: !Ref ApiLogs
      Events:
        Get:
          Type: HttpApi
          Properties:
            Path: /x
            Method: GET
"#;

fn violations_after(replace: &str, with: &str) -> Vec<Violation> {
    assert!(
        GOOD.contains(replace),
        "the good template has no {replace:?}"
    );
    let template = Template::from_yaml(&GOOD.replacen(replace, with, 1)).expect("valid YAML");
    check(&template, PROMISES_UNDER_TEST)
}

#[track_caller]
fn assert_caught(replace: &str, with: &str, subject: &str, words: &str) {
    let violations = violations_after(replace, with);
    assert!(
        violations
            .iter()
            .any(|v| v.subject == subject && v.message.contains(words)),
        "expected a violation of {subject} saying {words:?}, got {violations:#?}"
    );
}

#[test]
fn the_good_template_passes() {
    let template = Template::from_yaml(GOOD).unwrap();
    assert_eq!(check(&template, PROMISES_UNDER_TEST), vec![]);
}

#[test]
fn a_star_resource_is_caught_where_a_narrower_one_exists() {
    assert_caught(
        "Resource: !Ref SecretArn\n",
        "Resource: \"*\"\n",
        "Worker",
        "on \"*\"",
    );
    assert_caught(
        "Resource: !GetAtt Queue.Arn",
        "Resource: \"*\"",
        "Worker",
        "on \"*\"",
    );
}

#[test]
fn wildcard_actions_are_caught() {
    assert_caught("Action: s3:GetObject\n                Resource: !Sub \"arn:${AWS::Partition}:s3:::${AWS::StackName}-data/incoming/*\"",
        "Action: s3:Get*\n                Resource: !Sub \"arn:${AWS::Partition}:s3:::${AWS::StackName}-data/incoming/*\"",
        "Worker", "wildcard action s3:Get*");
}

#[test]
fn ingest_style_reads_outside_its_prefix_are_caught() {
    assert_caught(
        "-data/incoming/*",
        "-data/*",
        "Worker",
        "its promise is [\"incoming/\"]",
    );
    assert_caught(
        "-data/incoming/*",
        "-data/processed/*",
        "Worker",
        "its promise is",
    );
    assert_caught(
        "${Bucket.Arn}/processed/*",
        "${Bucket.Arn}/incoming/*",
        "Worker",
        "s3:PutObject",
    );
}

#[test]
fn another_bucket_or_the_bucket_itself_is_caught() {
    assert_caught(
        "${AWS::StackName}-data/incoming/*",
        "someone-elses-bucket/incoming/*",
        "Worker",
        "outside the pipeline's bucket",
    );
    assert_caught(
        "${Bucket.Arn}/processed/*",
        "${Bucket.Arn}",
        "Worker",
        "the bucket",
    );
}

#[test]
fn http_functions_that_write_or_delete_are_caught() {
    assert_caught("Action: s3:GetObject\n                Resource: !Sub \"arn:${AWS::Partition}:s3:::${AWS::StackName}-data/processed/*\"",
        "Action: [s3:GetObject, s3:PutObject]\n                Resource: !Sub \"arn:${AWS::Partition}:s3:::${AWS::StackName}-data/processed/*\"",
        "Api", "must not write to S3");
    assert_caught("Action: s3:GetObject\n                Resource: !Sub \"arn:${AWS::Partition}:s3:::${AWS::StackName}-data/processed/*\"",
        "Action: [s3:GetObject, s3:DeleteObject]\n                Resource: !Sub \"arn:${AWS::Partition}:s3:::${AWS::StackName}-data/processed/*\"",
        "Api", "s3:DeleteObject");
}

#[test]
fn queue_access_beyond_the_consumed_queue_is_caught() {
    assert_caught(
        "Resource: !GetAtt Queue.Arn",
        "Resource: !GetAtt OtherQueue.Arn",
        "Worker",
        "not the queue it consumes",
    );
    assert_caught(
        "[sqs:ReceiveMessage, sqs:DeleteMessage",
        "[sqs:SendMessage, sqs:DeleteMessage",
        "Worker",
        "sqs:SendMessage",
    );
    assert_caught(
        "Queue: !GetAtt Queue.Arn",
        "Queue: !GetAtt OtherQueue.Arn",
        "Worker",
        "consumes",
    );
}

#[test]
fn logs_beyond_the_own_log_group_are_caught() {
    assert_caught(
        "Resource: !GetAtt WorkerLogs.Arn",
        "Resource: !GetAtt ApiLogs.Arn",
        "Worker",
        "its own log group",
    );
}

#[test]
fn roles_this_check_cannot_see_are_caught() {
    assert_caught(
        "Role: !GetAtt ApiRole.Arn",
        "Policies: [AWSLambdaBasicExecutionRole]",
        "Api",
        "no Role of its own",
    );
    assert_caught(
        "ManagedPolicyArns: [!Ref Network]",
        "ManagedPolicyArns: [arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole]",
        "Worker",
        "cannot read",
    );
    assert_caught(
        "Role: !GetAtt ApiRole.Arn",
        "Role: !GetAtt WorkerRole.Arn",
        "Api",
        "shares its role",
    );
}

#[test]
fn functions_without_a_promise_are_caught() {
    let violations = violations_after(
        "  Api:\n    Type: AWS::Serverless::Function",
        "  Stranger:\n    Type: AWS::Serverless::Function",
    );
    assert!(
        violations
            .iter()
            .any(|v| v.subject == "Stranger" && v.message.contains("no least-privilege promise")),
        "{violations:#?}"
    );
}

#[test]
fn unpromised_services_and_negations_are_caught() {
    assert_caught(
        "Action: [ec2:CreateNetworkInterface,",
        "Action: [dynamodb:GetItem, ec2:CreateNetworkInterface,",
        "Worker",
        "dynamodb:GetItem",
    );
    assert_caught("Action: secretsmanager:GetSecretValue\n                Resource: !Ref SecretArn",
        "NotAction: secretsmanager:DeleteSecret\n                Action: secretsmanager:GetSecretValue\n                Resource: !Ref SecretArn", "Worker", "NotAction");
    assert_caught(
        "Resource: !Ref SecretArn\n",
        "Resource: arn:aws:secretsmanager:eu-west-1:123456789012:secret:*\n",
        "Worker",
        "name the secret",
    );
}

#[test]
fn an_exact_key_promise_allows_that_key_and_nothing_wider() {
    let promises: Vec<Promise> = PROMISES_UNDER_TEST
        .iter()
        .map(|p| match p.function {
            "Api" => Promise {
                s3_write: &["processed/export.csv"],
                ..*p
            },
            _ => *p,
        })
        .collect();
    let api_read = "Action: s3:GetObject\n                Resource: !Sub \"arn:${AWS::Partition}:s3:::${AWS::StackName}-data/processed/*\"";
    assert!(GOOD.contains(api_read));
    let api_writes = |key: &str| {
        let yaml = GOOD.replacen(
            api_read,
            &format!("Action: s3:PutObject\n                Resource: !Sub \"arn:${{AWS::Partition}}:s3:::${{AWS::StackName}}-data/{key}\""),
            1,
        );
        check(&Template::from_yaml(&yaml).unwrap(), &promises)
    };
    assert_eq!(api_writes("processed/export.csv"), vec![]);
    let wider = api_writes("processed/*");
    assert!(
        wider
            .iter()
            .any(|v| v.subject == "Api" && v.message.contains("its promise is")),
        "{wider:#?}"
    );
}

#[test]
fn reading_another_functions_database_secret_is_caught() {
    assert_caught(
        "Resource: !If [HasOther, !Ref ApiSecretArn, !Ref ApiSecretArn]",
        "Resource: !If [HasOther, !Ref ApiSecretArn, !Ref SecretArn]",
        "Api",
        "not only its own secret",
    );
    assert_caught(
        "Resource: !Ref SecretArn\n",
        "Resource: [!Ref SecretArn, !Ref ApiSecretArn]\n",
        "Worker",
        "not only its own secret",
    );
}

#[test]
fn connecting_with_another_functions_database_secret_is_caught() {
    // The Api's own setting names the Worker's secret...
    assert_caught(
        "DATABASE_SECRET_ARN: !Ref ApiSecretArn",
        "DATABASE_SECRET_ARN: !Ref SecretArn",
        "Api",
        "not its own secret !Ref ApiSecretArn",
    );
    // ...or it has none and inherits the global one.
    assert_caught(
        "      Environment:\n        Variables:\n          DATABASE_SECRET_ARN: !Ref ApiSecretArn\n",
        "",
        "Api",
        "not its own secret !Ref ApiSecretArn",
    );
}

#[test]
fn every_function_of_the_project_has_a_database_secret_of_its_own() {
    let mut secrets: Vec<&str> = PROMISES.iter().map(|p| p.database_secret).collect();
    secrets.sort_unstable();
    secrets.dedup();
    assert_eq!(secrets.len(), PROMISES.len(), "{PROMISES:#?}");
    let template = Template::load_project(env!("CARGO_MANIFEST_DIR")).expect("infra/template.yaml");
    for promise in PROMISES {
        for secret in std::iter::once(&promise.database_secret).chain(promise.provisions_secrets) {
            assert!(
                template.root["Parameters"].get(*secret).is_some(),
                "{}'s secret {secret} is not a parameter of the template",
                promise.function
            );
        }
    }
}
