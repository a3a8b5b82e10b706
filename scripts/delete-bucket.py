"""Deletes a local benchmark bucket (its objects first) and its ingest queues
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
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})
    s3.delete_bucket(Bucket=bucket)
except bx.ClientError as e:
    if e.response["Error"]["Code"] != "NoSuchBucket":
        raise
for q in (f"{bucket}-ingest", f"{bucket}-ingest-dlq"):
    try:
        sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=q)["QueueUrl"])
    except bx.ClientError:
        pass
