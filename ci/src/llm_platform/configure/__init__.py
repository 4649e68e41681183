"""`llm-platform configure`: give a fork its identity (git URL, revision, GCP project, region, modelcar
registry) by rewriting the template's placeholders in gitops/ and modelcars/, byte-minimally and proven.

Scan (compose each YAML/JSON file, find every placeholder with its exact characters) -> splice only those
characters -> re-parse and prove nothing else changed (`llm_platform.bump.splice.verify_edit`) -> write
every file atomically, all or nothing. `--check` runs the same scan and writes nothing.
"""
