#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Checks profiles/profile.schema.json: it is a valid JSON Schema, every
example profile in profiles/examples/ passes it, and documents that break
each kind of rule fail it. Run by ctest as `profile_schema`.

Usage: schema_check.py SOURCE_DIR
"""
import copy
import json
import pathlib
import sys

import jsonschema


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def minimal():
    return {
        "apiVersion": "cordon/v1",
        "identity": {
            "agentId": "a",
            "agentType": "t",
            "version": "1",
            "expiresAt": "2030-01-01T00:00:00Z",
        },
        "allowedTools": ["t1"],
        "tools": {"t1": {"endpoints": ["127.0.0.1:80"], "credentials": ["c1"]}},
        "credentials": {"c1": {"source": {"file": "x"}, "deliver": {"env": "C1"}}},
    }


def mutated(change):
    doc = copy.deepcopy(minimal())
    change(doc)
    return doc


# Each of these must fail the schema; the name says which rule.
INVALID = {
    "unknown launchers key": lambda d: d.update(launchers={"roles": ["x"]}),
    "launcher user not a name": lambda d: d.update(launchers={"users": ["Alice Smith"]}),
    "launcher group twice": lambda d: d.update(launchers={"groups": ["agents", "agents"]}),
    "unknown top-level key": lambda d: d.update(quotas={"pids": 1}),
    "unknown identity key": lambda d: d["identity"].update(name="x"),
    "unknown tool key": lambda d: d["tools"]["t1"].update(url="http://x"),
    "unknown source key": lambda d: d["credentials"]["c1"]["source"].update(vault="x"),
    "wrong apiVersion": lambda d: d.update(apiVersion="cordon/v2"),
    "missing expiresAt": lambda d: d["identity"].pop("expiresAt"),
    "missing identity": lambda d: d.pop("identity"),
    "expiresAt not RFC 3339": lambda d: d["identity"].update(expiresAt="2030-01-01"),
    "agentId with a space": lambda d: d["identity"].update(agentId="a b"),
    "bad duration": lambda d: d.update(session={"maxDuration": "30 minutes"}),
    "duration out of order": lambda d: d.update(session={"maxDuration": "30m1h"}),
    "endpoint without port": lambda d: d["tools"]["t1"].update(endpoints=["127.0.0.1"]),
    "endpoint unknown scheme": lambda d: d["tools"]["t1"].update(endpoints=["http://x:80"]),
    "IPv6 without brackets": lambda d: d["tools"]["t1"].update(endpoints=["::1:80"]),
    "risk not in enum": lambda d: d["tools"]["t1"].update(risk="critical"),
    "duplicate allowed tool": lambda d: d.update(allowedTools=["t1", "t1"]),
    "source with file and env": lambda d: d["credentials"]["c1"].update(
        source={"file": "x", "env": "X"}),
    "source empty": lambda d: d["credentials"]["c1"].update(source={}),
    "deliver env with dash": lambda d: d["credentials"]["c1"].update(deliver={"env": "A-B"}),
    "oauth with tokenUrl and issuer": lambda d: d["credentials"]["c1"].update(
        source={"oauth": {"tokenUrl": "https://a/t", "issuer": "https://a", "clientId": "c",
                          "clientSecretFile": "s"}}),
    "oauth without tokenUrl or issuer": lambda d: d["credentials"]["c1"].update(
        source={"oauth": {"clientId": "c", "clientSecretFile": "s"}}),
    "private_key_jwt without privateKeyFile": lambda d: d["credentials"]["c1"].update(
        source={"tokenExchange": {"tokenUrl": "https://a/t", "clientId": "c",
                                  "auth": "private_key_jwt", "clientSecretFile": "s"}}),
    "keyId with a client secret": lambda d: d["credentials"]["c1"].update(
        source={"oauth": {"tokenUrl": "https://a/t", "clientId": "c", "clientSecretFile": "s",
                          "keyId": "k"}}),
    "optional not a boolean": lambda d: d["credentials"]["c1"].update(optional="yes"),
    "syscall in capitals": lambda d: d.update(syscalls={"deny": ["PTRACE"]}),
    "egressBudget with an unknown unit": lambda d: d.update(session={"egressBudget": "10MB"}),
    "egressBudget zero": lambda d: d.update(session={"egressBudget": "0K"}),
    "egressBudget negative": lambda d: d.update(session={"egressBudget": -1}),
    "filesystem path relative": lambda d: d.update(filesystem={"read": ["data"]}),
    "filesystem unknown list": lambda d: d.update(filesystem={"exec": ["/bin"]}),
    "filesystem path twice": lambda d: d.update(filesystem={"write": ["/w", "/w"]}),
    "limits.pids below the init and the agent": lambda d: d.update(limits={"pids": 1}),
    "limits.memory with an unknown unit": lambda d: d.update(limits={"memory": "1GB"}),
    "limits.cpu without percent": lambda d: d.update(limits={"cpu": "0.5"}),
    "limits.cpu zero": lambda d: d.update(limits={"cpu": "0%"}),
    "limits unknown key": lambda d: d.update(limits={"files": 10}),
}


def check_schema_documents_every_property(schema, where="schema"):
    """Every property carries a description: the schema is documentation."""
    errors = []
    if isinstance(schema, dict):
        for name, sub in schema.get("properties", {}).items():
            if "description" not in sub:
                errors.append(f"{where}.properties.{name}: no description")
        for key, sub in schema.items():
            errors += check_schema_documents_every_property(sub, f"{where}.{key}")
    elif isinstance(schema, list):
        for i, sub in enumerate(schema):
            errors += check_schema_documents_every_property(sub, f"{where}[{i}]")
    return errors


def main():
    source = pathlib.Path(sys.argv[1])
    schema = load(source / "profiles" / "profile.schema.json")
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    failures = check_schema_documents_every_property(schema)

    examples = sorted((source / "profiles" / "examples").glob("*.json"))
    if not examples:
        failures.append("no example profiles in profiles/examples")
    for path in examples:
        for error in validator.iter_errors(load(path)):
            failures.append(f"{path.name}: {error.json_path}: {error.message}")

    if list(validator.iter_errors(minimal())):
        failures.append("the minimal valid document fails the schema")
    for name, change in INVALID.items():
        if validator.is_valid(mutated(change)):
            failures.append(f"invalid document passes the schema: {name}")

    for failure in failures:
        print(failure, file=sys.stderr)
    print(f"{len(examples)} examples, {len(INVALID)} invalid documents, "
          f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
