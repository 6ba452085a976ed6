#!/usr/bin/env python3
"""Check deploy/k8s/plan-job.yaml without a cluster: one line per problem, exit 1 if any.

    python3 scripts/check_k8s.py [MANIFEST]

Checks what Kubernetes would refuse or a sharded plan would get wrong: each document's
apiVersion and kind; the Indexed Job (completionMode Indexed, completions = parallelism = the N
of its `--shard auto/N`, backoffLimitPerIndex and maxFailedIndexes set); restartPolicy Never;
volume mounts naming declared volumes, claims naming the declared PersistentVolumeClaim
(ReadWriteMany); one prepare Job, one shard Job and one merge Job, all running the same triage
plan arguments apart from --shard, with --cache inside a mounted volume.

Needs PyYAML: without it in this Python, it makes tools/k8s-venv (pip install pyyaml from PyPI)
and runs itself again there.
"""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

try:
    import yaml
except ImportError:
    venv = os.path.join(ROOT, "tools", "k8s-venv")
    py = os.path.join(venv, "bin", "python")
    if os.environ.get("CHECK_K8S_REEXEC"):
        sys.exit("check_k8s: PyYAML is missing and could not be installed")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    if subprocess.run([py, "-c", "import yaml"], capture_output=True).returncode != 0:
        subprocess.run([py, "-m", "pip", "install", "--quiet", "pyyaml"], check=True)
    os.environ["CHECK_K8S_REEXEC"] = "1"
    os.execv(py, [py, os.path.abspath(__file__)] + sys.argv[1:])

KNOWN = {("v1", "PersistentVolumeClaim"), ("batch/v1", "Job")}


def argv_of(container):
    return [str(x) for x in (container.get("command") or []) + (container.get("args") or [])]


def shard_of(argv):
    """(the --shard value or None, argv without --shard and its value)."""
    rest, shard, i = [], None, 0
    while i < len(argv):
        a = argv[i]
        if a == "--shard" and i + 1 < len(argv):
            shard, i = argv[i + 1], i + 2
            continue
        if a.startswith("--shard="):
            shard = a.split("=", 1)[1]
        else:
            rest.append(a)
        i += 1
    return shard, rest


def option(argv, name):
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def check(path):
    problems = []
    with open(path) as f:
        try:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
        except yaml.YAMLError as e:
            return [f"{path}: not YAML: {e}".replace("\n", " ")]
    claims = {}  # PVC name -> access modes
    jobs = []  # (name, spec)
    for n, d in enumerate(docs, 1):
        where = f"document {n}"
        if not isinstance(d, dict):
            problems.append(f"{where}: not a mapping")
            continue
        api, kind = d.get("apiVersion"), d.get("kind")
        name = (d.get("metadata") or {}).get("name")
        if name:
            where = f"{kind} {name}"
        else:
            problems.append(f"{where}: no metadata.name")
        if (api, kind) not in KNOWN:
            problems.append(f"{where}: apiVersion {api!r} kind {kind!r} is not one of {sorted(KNOWN)}")
            continue
        if kind == "PersistentVolumeClaim":
            modes = (d.get("spec") or {}).get("accessModes") or []
            claims[name] = modes
            if "ReadWriteMany" not in modes:
                problems.append(f"{where}: accessModes {modes} lack ReadWriteMany (shard pods on several nodes share it)")
        else:
            jobs.append((where, d.get("spec") or {}))

    runs = {}  # "prepare" / "auto/N" / None -> [(where, argv without --shard)]
    for where, spec in jobs:
        pod = (spec.get("template") or {}).get("spec") or {}
        if pod.get("restartPolicy") != "Never":
            problems.append(f"{where}: restartPolicy is {pod.get('restartPolicy')!r}, not Never")
        volumes = {v.get("name"): v for v in pod.get("volumes") or []}
        used = set()
        containers = pod.get("containers") or []
        if len(containers) != 1:
            problems.append(f"{where}: {len(containers)} containers, not 1")
        for c in containers:
            mounts = {}
            for m in c.get("volumeMounts") or []:
                used.add(m.get("name"))
                mounts[m.get("mountPath")] = m
                if m.get("name") not in volumes:
                    problems.append(f"{where}: mount {m.get('mountPath')} names volume {m.get('name')!r}, not declared")
            argv = argv_of(c)
            if "triage" not in os.path.basename(argv[0] if argv else ""):
                problems.append(f"{where}: command {argv[:1]} is not the triage binary")
            if argv[1:2] != ["plan"]:
                problems.append(f"{where}: runs {argv[1:2]}, not `triage plan`")
            cache = option(argv, "--cache")
            if cache is None:
                problems.append(f"{where}: no --cache (the shards share their work through it)")
            elif not any(cache == p or cache.startswith(p.rstrip("/") + "/") for p in mounts):
                problems.append(f"{where}: --cache {cache} is not inside a mounted volume")
            elif mounts.get(cache, {}).get("readOnly"):
                problems.append(f"{where}: --cache {cache} is mounted read-only")
            shard, rest = shard_of(argv)
            runs.setdefault(shard, []).append((where, rest))
            if shard is not None and shard.startswith("auto/"):
                count = shard.split("/", 1)[1]
                if spec.get("completionMode") != "Indexed":
                    problems.append(f"{where}: --shard {shard} but completionMode is {spec.get('completionMode')!r}, not Indexed")
                for key in ("completions", "parallelism"):
                    if str(spec.get(key)) != count:
                        problems.append(f"{where}: {key} is {spec.get(key)!r}, not {count} as in --shard {shard}")
                if spec.get("backoffLimitPerIndex") is None:
                    problems.append(f"{where}: no backoffLimitPerIndex (a failed index would fail the whole Job)")
                mfi = spec.get("maxFailedIndexes")
                if mfi is None:
                    problems.append(f"{where}: no maxFailedIndexes")
                elif not str(mfi).isdigit() or int(mfi) > int(spec.get("completions") or 0):
                    problems.append(f"{where}: maxFailedIndexes {mfi!r} is not between 0 and completions")
            elif spec.get("completionMode") == "Indexed":
                problems.append(f"{where}: an Indexed Job whose command has no --shard auto/N")
        for name, v in volumes.items():
            if name not in used:
                problems.append(f"{where}: volume {name!r} is declared but not mounted")
            claim = (v.get("persistentVolumeClaim") or {}).get("claimName")
            if "persistentVolumeClaim" in v and claims and claim not in claims:
                problems.append(f"{where}: volume {name!r} claims {claim!r}, not the declared {sorted(claims)}")

    auto = [s for s in runs if s and s.startswith("auto/")]
    for what, present in (("--shard prepare", "prepare" in runs), ("--shard auto/N", bool(auto)), ("no --shard (the merge)", None in runs)):
        if not present:
            problems.append(f"{path}: no Job runs triage plan with {what}")
    for s in runs:
        if s is not None and s != "prepare" and not s.startswith("auto/"):
            problems.append(f"{runs[s][0][0]}: --shard {s}: a Job should run prepare or auto/N (an Indexed Job)")
    everyone = [r for rs in runs.values() for r in rs]
    if everyone:
        first_where, first = everyone[0]
        for where, rest in everyone[1:]:
            if rest != first:
                diff = sorted(set(rest) ^ set(first)) or ["the order"]
                problems.append(f"{where}: plan arguments differ from {first_where}'s (apart from --shard): {' '.join(diff)}")
    return problems


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "deploy", "k8s", "plan-job.yaml")
    problems = check(path)
    for p in problems:
        print(p)
    if problems:
        sys.exit(1)
    print(f"check_k8s: {path}: ok")


if __name__ == "__main__":
    main()
