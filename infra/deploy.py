"""Deploy helpers for scripts/infra.sh, run with the SAM CLI's Python (which
brings boto3).

  deploy.py setting NAME   prints a saved deploy setting (stack_name, region,
                           or a template parameter such as Architecture) from
                           infra/samconfig.toml, or nothing
  deploy.py migrate        invokes the stack's migrate function (migrations,
                           then the functions' database users) and fails
                           unless it succeeded (idempotent: run it any time)
"""

import json
import pathlib
import shlex
import sys
import tomllib

SAMCONFIG = pathlib.Path(__file__).with_name("samconfig.toml")


def deploy_settings():
    """The [default.deploy.parameters] table `sam deploy --guided` saved."""
    if not SAMCONFIG.exists():
        return {}
    config = tomllib.loads(SAMCONFIG.read_text())
    return config.get("default", {}).get("deploy", {}).get("parameters", {})


def setting(name):
    settings = deploy_settings()
    if name in settings:
        return str(settings[name])
    overrides = settings.get("parameter_overrides", "")
    if isinstance(overrides, list):
        overrides = " ".join(overrides)
    for pair in shlex.split(overrides):
        key, _, value = pair.partition("=")
        if key == name:
            return value
    return ""


def migrate():
    import boto3

    stack = setting("stack_name")
    region = setting("region") or None
    if not stack:
        sys.exit(f"error: {SAMCONFIG} names no stack_name; run make deploy first")
    session = boto3.session.Session(region_name=region)
    outputs = session.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
    names = [o["OutputValue"] for o in outputs if o["OutputKey"] == "MigrateFunctionName"]
    if not names:
        sys.exit(f"error: stack {stack} has no MigrateFunctionName output; is it deployed from infra/template.yaml?")
    response = session.client("lambda").invoke(FunctionName=names[0], Payload=b"{}")
    payload = response["Payload"].read().decode()
    if response.get("FunctionError"):
        sys.exit(
            f"error: migrating failed in {names[0]}: {payload}\n"
            f"(its log group is /order-pipeline/{stack}/migrate; fix the cause and run make migrate-aws)"
        )
    answer = json.loads(payload)
    users = ", ".join(answer.get("users", [])) or "none"
    print(f"migrations: {answer.get('applied')} applied; function database users current: {users} ({names[0]})")


def main(argv):
    if len(argv) == 3 and argv[1] == "setting":
        print(setting(argv[2]))
    elif len(argv) == 2 and argv[1] == "migrate":
        migrate()
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
