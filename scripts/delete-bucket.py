"""Deletes a local benchmark bucket (every version of its objects first: the
bucket is versioned, as in AWS) and its ingest queues
in LocalStack. Run with the boto3 of LocalStack's own venv:

    .local/localstack-venv/bin/python scripts/delete-bucket.py BUCKET

A bucket or queue that is already gone is not an error. Talks only to
127.0.0.1:4566.
"""
import sys

import boto3
import botocore.exceptions as bx

bucket = sys.argv[1]
kw = dict(endpoint_url="http://127.0.0.1:4566", region_name="us-east-1",
          aws_access_key_id="test", aws_secret_access_key="test")
s3, sqs = boto3.client("s3", **kw), boto3.client("sqs", **kw)
try:
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        versions = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                    for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        if versions:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": versions})
    s3.delete_bucket(Bucket=bucket)
except bx.ClientError as e:
    if e.response["Error"]["Code"] != "NoSuchBucket":
        raise
for q in (f"{bucket}-ingest", f"{bucket}-ingest-dlq"):
    try:
        sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=q)["QueueUrl"])
    except bx.ClientError:
        pass
